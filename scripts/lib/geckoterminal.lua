-- geckoterminal: what the GeckoTerminal scripts (scripts/geckoterminal/*.lua) share: options,
-- the budgeted client, the tables, and storing the pools and tokens of a JSON:API answer.
--
-- Every request goes through budget `geckoterminal` (30 requests/min, keyless and per IP;
-- config.lua's budgets.geckoterminal wins, e.g. to add a daily cap). Options, HTTP shaping and
-- candle storage come from the source kit (lib/source.lua). Ids are canonical `<network>_<address>`; addresses are
-- case-sensitive and used raw only in URLs. Numbers arrive as decimal strings, null or "NaN":
-- they are stored as REAL, or NULL when not a finite number.
local alert = require "rt.alert"
local budget = require "rt.budget"
local config = require "rt.config"
local db = require "rt.db"
local kit = require "lib.source"
local time = require "rt.time"

local M = {}

M.SOURCE = "geckoterminal"
M.BUDGET = {
  windows = { { per = "1m", limit = 30 } },
  backoff = { base = 15, cap = 300 },          -- no Retry-After is documented; the peer waited 60 s
  breaker = { failures = 5, cooldown = "5m" },
  ban = { after_429s = 4, duration = "15m" },
}
M.MAX_MULTI = 30                               -- addresses per pools/multi call (free plan)
M.MAX_LIMIT = 1000                             -- OHLCV rows per call
M.FREE_PAGES = 10                              -- top pools pages without a paid plan

-- timeframe -> OHLCV path segment, aggregate, bar length in seconds
M.TIMEFRAMES = {
  ["1m"] = { "minute", 1, 60 }, ["5m"] = { "minute", 5, 300 }, ["15m"] = { "minute", 15, 900 },
  ["1h"] = { "hour", 1, 3600 }, ["4h"] = { "hour", 4, 14400 }, ["12h"] = { "hour", 12, 43200 },
  ["1d"] = { "day", 1, 86400 },
}
M.TIMEFRAME_ORDER = { "1m", "5m", "15m", "1h", "4h", "12h", "1d" }

-- sources.geckoterminal keys: default value and the check each value gets.
local string_, number_, boolean_ = kit.check.string, kit.check.number, kit.check.boolean
local list_of, one_of = kit.check.list_of, kit.check.one_of
local function timeframe_(v)
  if not M.TIMEFRAMES[v] then
    return ("must be one of %s, not %s"):format(table.concat(M.TIMEFRAME_ORDER, " "), tostring(v))
  end
end

local OPTIONS = {
  enabled = { true, boolean_ },
  base_url = { "https://api.geckoterminal.com/api/v2", string_ },
  ws_url = { false, string_ },
  budget = { "geckoterminal", string_ },
  network = { "solana", string_ },
  dexes = { { "heaven", "pumpswap" }, list_of(string_) },
  top_pools_pages = { 1, number_(0, M.FREE_PAGES) },
  watchlist = { "watchlist.csv", string_ },
  timeframes = { M.TIMEFRAME_ORDER, list_of(timeframe_) },
  currency = { "usd", one_of("usd", "token") },
  token = { "base", one_of("base", "quote") },
  include_empty_intervals = { false, boolean_ },
  history_days = { 180, number_(0) },
  refresh_min = { 300, number_(0) },
  backfill_concurrency = { 2, number_(1, 16) },
  trades_min_usd = { 100, number_(0) },
  trades_per_run = { 10, number_(1) },
}

-- The validated options of a script's config section (defaults filled in). Raises naming the
-- key, e.g. "sources.geckoterminal.timeframes: [2] must be one of 1m 5m ..., not 2h".
function M.options(cfg)
  local o = kit.options(M.SOURCE, OPTIONS, cfg)
  budget.define(o.budget, M.BUDGET)
  return o
end

-- The watchlist file, resolved against the config file's directory.
function M.watchlist_path(o)
  local p = o.watchlist
  if p:sub(1, 1) == "/" then return p end
  local file = config.file()
  local dir = file and file:match("^(.*)/[^/]*$") or "."
  return dir .. "/" .. p
end

M.num = kit.num

function M.pool_id(o, address) return o.network .. "_" .. address end

-- The raw address of a canonical id (or of a raw address), checked: base58, 32 to 44 chars.
function M.address_of(o, id)
  local prefix = o.network .. "_"
  local a = id:sub(1, #prefix) == prefix and id:sub(#prefix + 1) or id
  if not a:match("^[1-9A-HJ-NP-Za-km-z]+$") or #a < 32 or #a > 44 then
    return nil, ("'%s' is not a %s address (base58, 32 to 44 characters)"):format(id, o.network)
  end
  return a
end

-- GET base_url .. path through the budget -> decoded JSON, or nil, message, code. Codes: the
-- transport's (TIMEOUT, BANNED, ...), NOT_FOUND, HTTP (other statuses), JSON.
function M.get(o, path, query, priority)
  return kit.get(o.base_url .. path, path, { query = query, budget = o.budget, priority = priority,
                                            source = M.SOURCE })
end

-- ---- tables --------------------------------------------------------------------------------

local WINDOWS = { "m5", "m15", "m30", "h1", "h6", "h24" }
local SNAPSHOT = { "pool", "ts", "base_token_price_usd", "base_token_price_native",
  "quote_token_price_usd", "quote_token_price_native", "base_token_price_quote_token",
  "quote_token_price_base_token", "reserve_usd", "fdv_usd", "market_cap_usd" }
for _, w in ipairs(WINDOWS) do
  for _, f in ipairs { "price_change_", "volume_usd_", "buys_", "sells_", "buyers_", "sellers_" } do
    SNAPSHOT[#SNAPSHOT + 1] = f .. w
  end
end

local function snapshot_table()
  local cols = {}
  for i = 3, #SNAPSHOT do
    local counted = SNAPSHOT[i]:match("^buy") or SNAPSHOT[i]:match("^sell")
    cols[#cols + 1] = SNAPSHOT[i] .. (counted and " INTEGER" or " REAL")
  end
  return "CREATE TABLE gt_pool_snapshots (pool TEXT NOT NULL, ts INTEGER NOT NULL, " ..
         table.concat(cols, ", ") .. ", PRIMARY KEY (pool, ts));"
end

M.MIGRATIONS = {
  [[CREATE TABLE gt_dexes (network TEXT NOT NULL, dex TEXT NOT NULL, name TEXT,
      first_seen INTEGER, last_seen INTEGER, PRIMARY KEY (network, dex));
    CREATE TABLE gt_tokens (token TEXT PRIMARY KEY, network TEXT NOT NULL, address TEXT NOT NULL,
      name TEXT, symbol TEXT, decimals INTEGER, coingecko_coin_id TEXT, image_url TEXT,
      first_seen INTEGER, last_seen INTEGER);
    CREATE TABLE gt_pools (pool TEXT PRIMARY KEY, network TEXT NOT NULL, address TEXT NOT NULL,
      name TEXT, dex TEXT, base_token TEXT, quote_token TEXT, pool_created_at INTEGER,
      status TEXT NOT NULL DEFAULT 'active', first_seen INTEGER, last_seen INTEGER);
    CREATE TABLE gt_watchlist (pool TEXT PRIMARY KEY, symbol TEXT, name TEXT, chain TEXT, dex TEXT,
      network_address TEXT, active INTEGER NOT NULL, line INTEGER, added INTEGER, removed INTEGER,
      updated INTEGER);
    CREATE TABLE gt_trade_rotation (pool TEXT PRIMARY KEY, last_fetch REAL, last_interval REAL, last_new INTEGER,
      last_count INTEGER, fetches INTEGER NOT NULL DEFAULT 0);
    CREATE TABLE gt_trades (instrument TEXT NOT NULL, trade_id TEXT NOT NULL, block_number INTEGER,
      tx_hash TEXT, tx_from_address TEXT, from_token TEXT, to_token TEXT, from_amount REAL,
      to_amount REAL, PRIMARY KEY (instrument, trade_id));]] .. snapshot_table(),
}

function M.migrate()
  kit.migrate()
  local v, err = db.migrate(M.SOURCE, M.MIGRATIONS)
  if not v then error("geckoterminal tables: " .. err) end
end

-- What every run and command starts with: the checked options, the tables in place.
function M.start(ctx)
  local o = M.options(ctx.config)
  M.migrate()
  return o
end

-- ---- pools and tokens ------------------------------------------------------------------------

local function rel_id(p, name)
  local r = p.relationships and p.relationships[name]
  return type(r) == "table" and type(r.data) == "table" and r.data.id or nil
end

local function text(v) if type(v) == "string" then return v end end

-- Store the pools of a JSON:API answer (`data` a list or one object, `included` tokens and dexes)
-- as gt_pools, gt_tokens, instruments and one gt_pool_snapshots row per pool, in one
-- transaction. Returns the list of pool ids stored.
function M.store_pools(o, doc, now)
  now = now or os.time()
  local data = doc.data
  if type(data) ~= "table" then return {} end
  if data.id then data = { data } end
  local tokens, rows = {}, { gt_tokens = {}, gt_pools = {}, gt_pool_snapshots = {}, instruments = {} }
  for _, t in ipairs(type(doc.included) == "table" and doc.included or {}) do
    local a = t.attributes
    if t.type == "token" and type(a) == "table" and type(t.id) == "string" then
      tokens[t.id] = a
      table.insert(rows.gt_tokens, { token = t.id, network = o.network, address = text(a.address) or t.id,
        name = text(a.name), symbol = text(a.symbol), decimals = math.tointeger(M.num(a.decimals)),
        coingecko_coin_id = text(a.coingecko_coin_id), image_url = text(a.image_url),
        first_seen = now, last_seen = now })
    end
  end
  local ids = {}
  for _, p in ipairs(data) do
    local a = p.attributes
    if p.type == "pool" and type(a) == "table" and type(p.id) == "string" then
      local base, quote = rel_id(p, "base_token"), rel_id(p, "quote_token")
      local created = text(a.pool_created_at)
      table.insert(rows.gt_pools, { pool = p.id, network = o.network, address = text(a.address) or p.id,
        name = text(a.name), dex = rel_id(p, "dex"), base_token = base, quote_token = quote,
        pool_created_at = created and time.parse_iso(created) or nil,
        status = "active", first_seen = now, last_seen = now })
      local bt, qt = tokens[base] or {}, tokens[quote] or {}
      local symbol = bt.symbol and qt.symbol and (bt.symbol .. "/" .. qt.symbol) or nil
      table.insert(rows.instruments, { source = M.SOURCE, instrument = p.id, symbol = symbol,
        name = text(a.name), base = text(bt.symbol), quote = text(qt.symbol), status = "active",
        first_seen = now, last_seen = now })
      local s = { pool = p.id, ts = now,
        base_token_price_usd = M.num(a.base_token_price_usd),
        base_token_price_native = M.num(a.base_token_price_native_currency),
        quote_token_price_usd = M.num(a.quote_token_price_usd),
        quote_token_price_native = M.num(a.quote_token_price_native_currency),
        base_token_price_quote_token = M.num(a.base_token_price_quote_token),
        quote_token_price_base_token = M.num(a.quote_token_price_base_token),
        reserve_usd = M.num(a.reserve_in_usd), fdv_usd = M.num(a.fdv_usd),
        market_cap_usd = M.num(a.market_cap_usd) }
      local pc, vol, tx = a.price_change_percentage, a.volume_usd, a.transactions
      for _, w in ipairs(WINDOWS) do
        s["price_change_" .. w] = type(pc) == "table" and M.num(pc[w]) or nil
        s["volume_usd_" .. w] = type(vol) == "table" and M.num(vol[w]) or nil
        local t = type(tx) == "table" and type(tx[w]) == "table" and tx[w] or {}
        for _, f in ipairs { "buys", "sells", "buyers", "sellers" } do
          s[f .. "_" .. w] = math.tointeger(M.num(t[f]))
        end
      end
      table.insert(rows.gt_pool_snapshots, s)
      ids[#ids + 1] = p.id
      alert.resolve("pool_missing", p.id)
    end
  end
  db.tx(function()
    M.upsert("gt_tokens", rows.gt_tokens, { "token" }, { "first_seen" })
    M.upsert("gt_pools", rows.gt_pools, { "pool" }, { "first_seen" })
    M.upsert("instruments", rows.instruments, { "source", "instrument" }, { "first_seen" })
    M.upsert("gt_pool_snapshots", rows.gt_pool_snapshots, { "pool", "ts" })
  end)
  return ids
end

-- Insert or update `rows` of `tbl` (keys: the conflict target); columns in `keep` keep their
-- stored value on update. Raises on a database failure, so the caller's db.tx rolls back.
function M.upsert(tbl, rows, keys, keep)
  kit.upsert(tbl, rows, keys, keep, tbl == "gt_pool_snapshots" and SNAPSHOT or nil)
end

-- ---- OHLCV -----------------------------------------------------------------------------------

M.CANDLE_COLUMNS, M.CANDLE_KEYS = kit.COLUMNS, kit.KEYS

-- One OHLCV call for `pool` (canonical id) and timeframe `tf`: opts.before (exclusive bar time,
-- nil = up to now), opts.limit (default 1000), opts.priority. Returns the closed bars ascending
-- as candle rows (positional, CANDLE_COLUMNS order) and the number of rows the source sent
-- (the forming bar included), or nil, message, code. Malformed rows are dropped and counted in
-- the third result.
function M.ohlcv(o, pool, tf, opts)
  local seg, agg, step = table.unpack(M.TIMEFRAMES[tf])
  local addr = assert(M.address_of(o, pool))
  local path = ("/networks/%s/pools/%s/ohlcv/%s"):format(o.network, addr, seg)
  local doc, err, code = M.get(o, path, {
    aggregate = agg, before_timestamp = opts.before, limit = opts.limit or M.MAX_LIMIT,
    currency = o.currency, token = o.token,
    include_empty_intervals = o.include_empty_intervals and "true" or nil,
  }, opts.priority)
  if not doc then return nil, err, code end
  local list = type(doc.data) == "table" and type(doc.data.attributes) == "table"
               and doc.data.attributes.ohlcv_list
  if type(list) ~= "table" then return nil, path .. ": the answer has no data.attributes.ohlcv_list", "JSON" end
  local now, rows, seen, bad = time.now(), {}, {}, 0
  for _, r in ipairs(list) do
    local ts = type(r) == "table" and math.tointeger(r[1])
    local o_, h, l, c, v = M.num(r[2]), M.num(r[3]), M.num(r[4]), M.num(r[5]), M.num(r[6])
    if not ts or ts % step ~= 0 or not (o_ and h and l and c) or seen[ts] then
      bad = bad + 1
    elseif ts + step <= now then                 -- closed; the forming bar is never stored
      seen[ts] = true
      rows[#rows + 1] = { M.SOURCE, pool, tf, ts, o_, h, l, c, v }
    end
  end
  table.sort(rows, function(a, b) return a[4] < b[4] end)
  return rows, #list, bad
end

-- When a pool's history starts: its pool_created_at (epoch s) as stored with the pool, or nil.
function M.created(pool)
  local r = db.first("SELECT pool_created_at AS t FROM gt_pools WHERE pool = ?", pool)
  return r and math.tointeger(r.t)
end

-- Look a pool up (one call: its name, tokens and pool_created_at are stored). Returns true, or
-- nil, message, code (NOT_FOUND: the API does not know it).
function M.lookup(o, pool, priority)
  local addr = assert(M.address_of(o, pool))
  local doc, err, code = M.get(o, ("/networks/%s/pools/%s"):format(o.network, addr),
                               { include = "base_token,quote_token,dex" }, priority or "backfill")
  if not doc then return nil, err, code end
  M.store_pools(o, doc)
  return true
end

-- The oldest bar a series wants: history_days back from `now`, on the bar grid.
function M.target(o, tf, now)
  local step = M.TIMEFRAMES[tf][3]
  return time.floor(now - o.history_days * 86400, step)
end

-- Store candle rows; returns the number of rows inserted or changed. Raises on a database failure.
M.store_candles = kit.store
M.bar_times = kit.bar_times                    -- for series.record_empties

-- The pools to collect: active watchlist rows whose pool is not known to be gone.
function M.active_pools()
  local out = {}
  for _, r in ipairs(db.query([[SELECT w.pool FROM gt_watchlist w LEFT JOIN gt_pools p USING (pool)
      WHERE w.active = 1 AND coalesce(p.status, 'active') <> 'gone' ORDER BY w.line, w.pool]])) do
    out[#out + 1] = r.pool
  end
  return out
end

-- A pool the API answers 404 for: marked gone (its data is kept), left out of collection until
-- the watchlist script sees it again, and alerted.
function M.pool_gone(o, pool, why)
  local now = os.time()
  db.exec([[INSERT INTO gt_pools (pool, network, address, status, first_seen, last_seen)
      VALUES (?, ?, ?, 'gone', ?, ?) ON CONFLICT (pool) DO UPDATE SET status = 'gone']],
    pool, o.network, M.address_of(o, pool) or pool, now, now)
  db.exec("UPDATE instruments SET status = 'gone' WHERE source = ? AND instrument = ?", M.SOURCE, pool)
  alert.raise("pool_missing", pool, ("pool %s is gone from GeckoTerminal: %s"):format(pool, why))
end

return M
