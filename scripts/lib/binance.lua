-- binance: what the Binance scripts share (spot, USDT-M and COIN-M), on the source kit.
--
--   B.options(market [, cfg])  sources.binance_<market> checked (one-line errors naming the key),
--                              defaults filled in; cfg defaults to the config's section
--   B.budget(o)                the market's budget: budgets.<o.budget> from config.lua when declared,
--                              else REQUEST_WEIGHT per minute from the market's exchangeInfo
--                              rateLimits (stored by B.refresh), corrected by x-mbx-used-weight-1m
--   B.refresh(o)               exchangeInfo into binance_symbols / binance_symbol_events /
--                              instruments / canonical_map: first seen, every status change with
--                              its time, symbols gone from the listing kept as DELISTED
--   B.selected(o)              the symbols to collect: the explicit `symbols` list and every symbol
--                              of `quote_assets`, in `statuses` (and `contract_types` on futures)
--   B.sync(o, symbol, tf [, days])  one klines series brought up to date, back to `days` (or the
--                              listing) and its gaps fetched again (lib/source.lua + lib/series.lua)
--   B.fill(market, symbol, interval, from_ms, to_ms [, o])
--                              fetch and store the CLOSED klines with open times in [from_ms, to_ms]
--                              (for the WebSocket script: the minutes missed around a reconnect);
--                              returns the bars stored, or nil, message, CODE
--   B.collect(o, ctx)          one run of a market's klines script: symbols refreshed when older
--                              than `symbols_every` (and then every series searched for gaps from
--                              its history target, not only since the last search), every selected
--                              series synced, `concurrency` series at once within the budget
--   B.ratios(o, ctx)           one run of the long/short ratio script (futures)
--   B.canonical(market, row)   the canonical instrument id: BTC/USDT (spot), BTC/USDT:PERP,
--                              BTC/USDT:210924 (USDT-M), BTC/USD:PERP, BTC/USD:210924 (COIN-M)
--
-- A kline is final only when its close time is before the moment the sync started (before any
-- request was sent) less `clock_skew` seconds, so neither a server clock behind ours nor an
-- answer written before the bar closed and read after it stores the forming bar; and every run
-- reads the newest stored bar again when it fetches newer ones.
--
-- COIN-M volumes: `volume` is the base-asset volume (kline field 7, coins), `quote_volume` the
-- contracts times the contract size (kline field 5 x contractSize, USD): the contract count is
-- quote_volume / binance_symbols.contract_size, so both stay distinct and nothing is lost.
local alert = require "rt.alert"
local budget = require "rt.budget"
local config = require "rt.config"
local db = require "rt.db"
local json = require "rt.json"
local kit = require "lib.source"
local log = require "rt.log"
local series = require "lib.series"
local task = require "rt.task"
local time = require "rt.time"

local B = {}

B.MARKETS = {
  spot = { source = "binance_spot", api = "/api/v3", page = 1000, info_weight = 20, weight_limit = 6000,
           base_url = "https://data-api.binance.vision", ws_url = "wss://data-stream.binance.vision" },
  usdm = { source = "binance_usdm", api = "/fapi/v1", page = 1500, info_weight = 1, weight_limit = 2400,
           base_url = "https://fapi.binance.com", ws_url = "wss://fstream.binance.com/market" },
  coinm = { source = "binance_coinm", api = "/dapi/v1", page = 1500, info_weight = 1, weight_limit = 2400,
            base_url = "https://dapi.binance.com", ws_url = "wss://dstream.binance.com" },
}
-- Bars on the UTC epoch grid (1w opens on Mondays and 1M on calendar months: not this grid).
B.STEP = { ["1s"] = 1, ["1m"] = 60, ["3m"] = 180, ["5m"] = 300, ["15m"] = 900, ["30m"] = 1800,
           ["1h"] = 3600, ["2h"] = 7200, ["4h"] = 14400, ["6h"] = 21600, ["8h"] = 28800,
           ["12h"] = 43200, ["1d"] = 86400, ["3d"] = 259200 }
local INTERVALS = { "1m", "3m", "5m", "15m", "30m", "1h", "2h", "4h", "6h", "8h", "12h", "1d", "3d" }
local SPOT_INTERVALS = { "1s", table.unpack(INTERVALS) }
B.RATIO_PERIODS = { "5m", "15m", "30m", "1h", "2h", "4h", "6h", "12h", "1d" }
local DECIMALS = { numbers = { 2, 3, 4, 5, 6, 8 } }

-- ---- options ---------------------------------------------------------------------------------

local C = kit.check
local function duration(v)
  local ok, d = pcall(time.duration, v)
  if not ok or type(d) ~= "number" or d < 60 then return "must be a duration of at least 60 s (\"1d\", 3600)" end
end
local function days_or_listing(v)
  if v == "listing" then return end
  return C.number(0.001, 36500)(v) and "must be a number of days (0.001 to 36500) or \"listing\""
end

local function iso(v)
  if type(v) ~= "string" or not time.parse_iso(v) then return "must be an ISO-8601 time (\"2024-01-01T00:00:00Z\")" end
end

local function spec(market)
  local m = B.MARKETS[market]
  local s = {
    enabled = { true, C.boolean },
    base_url = { m.base_url, C.string },
    ws_url = { m.ws_url, C.string },           -- WebSocket streams (scripts/binance/stream.lua)
    budget = { m.source, C.string },
    symbols = { {}, C.list_of(C.string) },     -- explicit list
    quote_assets = { {}, C.list_of(C.string) },  -- every symbol quoted in these
    statuses = { { "TRADING" }, C.list_of(C.string) },
    intervals = { { "30m", "1d" }, C.list_of(C.one_of(market == "spot" and SPOT_INTERVALS or INTERVALS)) },
    history_days = { 365, days_or_listing },
    start = { false, iso },                    -- history from this time instead (ISO 8601)
    clock_skew = { 1, C.number(0, 300) },
    concurrency = { 8, C.number(1, 64) },
    symbols_every = { "1d", duration },
  }
  if market ~= "spot" then
    s.contract_types = { { "PERPETUAL" }, C.list_of(C.string) }
    s.ratios = { true, C.boolean }
    s.ratio_period = { "5m", C.one_of(B.RATIO_PERIODS) }
    s.ratio_days = { 30, C.number(0.01, 30) }
  end
  return s
end
local SPECS = { spot = spec("spot"), usdm = spec("usdm"), coinm = spec("coinm") }

-- Checked options of sources.binance_<market>; keys `ws`, `ws_*`, `stream*` (but `ws_url`) belong
-- to the WebSocket script (scripts/binance/stream.lua), which checks them: they are passed through.
function B.options(market, cfg)
  local m = B.MARKETS[market]
  if not m then error(("binance: unknown market '%s' (spot, usdm, coinm)"):format(tostring(market)), 2) end
  if cfg == nil then cfg = config.get("sources." .. m.source, {}) end
  if type(cfg) ~= "table" then error(("sources.%s: must be a table"):format(m.source), 0) end
  local mine, theirs = {}, {}
  for k, v in pairs(cfg) do
    if type(k) == "string" and k ~= "ws_url" and (k == "ws" or k:match("^ws_") or k:match("^stream")) then
      theirs[k] = v
    else mine[k] = v end
  end
  local o = kit.options(m.source, SPECS[market], mine)
  for k, v in pairs(theirs) do o[k] = v end
  local seen = {}
  for i, tf in ipairs(o.intervals) do
    if seen[tf] then error(("sources.%s.intervals: [%d] %s is listed twice"):format(m.source, i, tf), 0) end
    seen[tf] = true
  end
  o.market, o.source, o.api, o.page = market, m.source, m.api, m.page
  o.every_symbols = time.duration(o.symbols_every)
  o.start_ts = o.start and time.parse_iso(o.start)
  -- nothing to collect is configured: the market's scripts call nothing
  o.configured = #o.symbols > 0 or #o.quote_assets > 0
  return o
end

-- ---- tables ----------------------------------------------------------------------------------

local MIGRATIONS = {
  [[CREATE TABLE binance_symbols (market TEXT NOT NULL, symbol TEXT NOT NULL, pair TEXT, status TEXT NOT NULL,
      contract_type TEXT, delivery_date INTEGER, onboard_date INTEGER, base TEXT, quote TEXT, margin_asset TEXT,
      contract_size REAL, canonical TEXT, first_seen INTEGER NOT NULL, status_since INTEGER NOT NULL,
      last_seen INTEGER NOT NULL, delisted_at INTEGER, PRIMARY KEY (market, symbol));
    CREATE TABLE binance_symbol_events (market TEXT NOT NULL, symbol TEXT NOT NULL, ts INTEGER NOT NULL,
      status_from TEXT, status_to TEXT NOT NULL, PRIMARY KEY (market, symbol, ts, status_to));
    CREATE TABLE binance_markets (market TEXT PRIMARY KEY, refreshed INTEGER, weight_limit INTEGER,
      weight_seconds INTEGER, symbols INTEGER);
    CREATE TABLE binance_ratios (market TEXT NOT NULL, instrument TEXT NOT NULL, kind TEXT NOT NULL,
      period TEXT NOT NULL, ts INTEGER NOT NULL, long_short_ratio REAL, long_share REAL, short_share REAL,
      PRIMARY KEY (market, instrument, kind, period, ts)) WITHOUT ROWID;]],
}

local migrated = false
function B.migrate()
  if migrated then return end
  local v, err = db.migrate("binance", MIGRATIONS)
  if not v then error("binance tables: " .. err) end
  migrated = true
end

-- ---- budget and HTTP -------------------------------------------------------------------------

local function error_text(doc)
  if doc.msg then return ("%s (code %s)"):format(doc.msg, tostring(doc.code)) end
end

function B.get(o, path, label, query, weight, priority, budget_name)
  return kit.get(o.base_url .. path, label, { query = query, budget = budget_name or o.budget, weight = weight,
    priority = priority or "realtime", source = o.source, error_text = error_text,
    decode = false })
end

local function weight_limit(info)
  for _, r in ipairs(info.rateLimits or {}) do
    if r.rateLimitType == "REQUEST_WEIGHT" and tonumber(r.limit) then
      local unit = ({ SECOND = 1, MINUTE = 60, HOUR = 3600, DAY = 86400 })[r.interval] or 60
      return math.tointeger(r.limit) or r.limit, unit * (tonumber(r.intervalNum) or 1)
    end
  end
end

local function fetch_info(o, budgeted)
  local res, err, code
  if budgeted then
    res, err, code = B.get(o, o.api .. "/exchangeInfo", o.source .. " exchangeInfo", nil,
                           B.MARKETS[o.market].info_weight, "discovery")
  else
    res, err, code = kit.get(o.base_url .. o.api .. "/exchangeInfo", o.source .. " exchangeInfo",
                             { source = o.source, decode = false, error_text = error_text })
  end
  if not res then return nil, err, code end
  local ok, doc = pcall(json.decode, res.body)
  if not ok or type(doc) ~= "table" or type(doc.symbols) ~= "table" then
    return nil, o.source .. " exchangeInfo: not the expected JSON", "JSON"
  end
  return doc
end

local defined = {}
-- The market's budget. budget.define keeps config.lua's budget of the same name when there is one.
-- Its limit comes from the stored exchangeInfo; without one yet, one exchangeInfo call is made
-- outside any budget (weight 20 of 6000 on spot, 1 on futures) to learn it, and stored.
function B.budget(o)
  if defined[o.budget] then return true end
  for _, name in ipairs(budget.names()) do
    if name == o.budget then defined[o.budget] = true return true end
  end
  B.migrate()
  local row = db.first("SELECT weight_limit, weight_seconds FROM binance_markets WHERE market = ?", o.market)
  local info
  if not (row and row.weight_limit) then
    local doc, err, code = fetch_info(o, false)
    if not doc then return nil, err, code end
    info = doc
    local limit, secs = weight_limit(doc)
    row = { weight_limit = limit or B.MARKETS[o.market].weight_limit, weight_seconds = secs or 60 }
  end
  local per = row.weight_seconds == 60 and "1m" or row.weight_seconds
  budget.define(o.budget, { windows = { { per = per, limit = row.weight_limit } }, reserve = 0.05,
    used_weight_header = row.weight_seconds == 60 and "x-mbx-used-weight-1m" or nil,
    backoff = { base = 1, cap = 300 }, breaker = { failures = 5, cooldown = 60 },
    ban = { after_429s = 2, duration = 600 } })
  defined[o.budget] = true
  if info then return B.store_info(o, info) end
  return true
end

-- ---- symbols ---------------------------------------------------------------------------------

function B.canonical(market, s)
  if market == "spot" then return ("%s/%s"):format(s.base, s.quote) end
  local suffix = s.symbol:match("_(%w+)$")
  if s.contract_type == "PERPETUAL" or not suffix or suffix == "PERP" then suffix = "PERP" end
  return ("%s/%s:%s"):format(s.base, s.quote, suffix)
end

local SYMBOL_COLUMNS = { "market", "symbol", "pair", "status", "contract_type", "delivery_date", "onboard_date",
  "base", "quote", "margin_asset", "contract_size", "canonical", "first_seen", "status_since", "last_seen",
  "delisted_at" }
local UPSERT_SYMBOL = ("INSERT OR REPLACE INTO binance_symbols (%s) VALUES (%s)"):format(
  table.concat(SYMBOL_COLUMNS, ", "), ("?, "):rep(#SYMBOL_COLUMNS - 1) .. "?")
local EVENT = [[INSERT OR IGNORE INTO binance_symbol_events (market, symbol, ts, status_from, status_to)
  VALUES (?, ?, ?, ?, ?)]]
local INSTRUMENT = [[INSERT INTO instruments (source, instrument, symbol, name, base, quote, status, first_seen,
    last_seen) VALUES (?1, ?2, ?2, ?3, ?4, ?5, ?6, ?7, ?8)
  ON CONFLICT (source, instrument) DO UPDATE SET name = ?3, base = ?4, quote = ?5, status = ?6, last_seen = ?8]]

-- Store one exchangeInfo answer: lifecycle, instruments, canonical ids, the weight limit.
function B.store_info(o, info)
  B.migrate()
  local now = os.time()
  local known = {}
  for _, r in ipairs(db.query("SELECT * FROM binance_symbols WHERE market = ?", o.market)) do known[r.symbol] = r end
  local listed, n = {}, 0
  db.tx(function()
    for _, s in ipairs(info.symbols) do
      if type(s) == "table" and type(s.symbol) == "string" then
        n = n + 1
        local status = s.contractStatus or s.status or "UNKNOWN"
        local old = known[s.symbol]
        local r = { market = o.market, symbol = s.symbol, pair = s.pair, status = status,
                    contract_type = s.contractType, delivery_date = tonumber(s.deliveryDate) and s.deliveryDate // 1000,
                    onboard_date = tonumber(s.onboardDate) and s.onboardDate // 1000, base = s.baseAsset,
                    quote = s.quoteAsset, margin_asset = s.marginAsset, contract_size = tonumber(s.contractSize),
                    first_seen = old and old.first_seen or now, last_seen = now,
                    status_since = old and old.status_since or now }
        r.canonical = B.canonical(o.market, r)
        local was = old and (old.delisted_at and "DELISTED" or old.status)
        if was ~= status then
          r.status_since = now
          db.exec(EVENT, o.market, s.symbol, now, was, status)
        end
        local args = {}
        for i, c in ipairs(SYMBOL_COLUMNS) do args[i] = r[c] end
        local ok, err = db.exec(UPSERT_SYMBOL, table.unpack(args, 1, #SYMBOL_COLUMNS))
        if not ok then error("binance_symbols: " .. err) end
        db.exec(INSTRUMENT, o.source, s.symbol, r.canonical, r.base, r.quote, status, now, now)
        kit.map(o.source, s.symbol, r.canonical)
        listed[s.symbol] = true
      end
    end
    for sym, old in pairs(known) do           -- gone from the listing: delisted, kept
      if not listed[sym] and not old.delisted_at then
        db.exec("UPDATE binance_symbols SET delisted_at = ?, status_since = ? WHERE market = ? AND symbol = ?",
                now, now, o.market, sym)
        db.exec(EVENT, o.market, sym, now, old.status, "DELISTED")
        db.exec("UPDATE instruments SET status = 'DELISTED', last_seen = ? WHERE source = ? AND instrument = ?",
                now, o.source, sym)
      end
    end
    local limit, secs = weight_limit(info)
    db.exec([[INSERT INTO binance_markets (market, refreshed, weight_limit, weight_seconds, symbols)
      VALUES (?, ?, ?, ?, ?) ON CONFLICT (market) DO UPDATE SET refreshed = excluded.refreshed,
      weight_limit = coalesce(excluded.weight_limit, weight_limit),
      weight_seconds = coalesce(excluded.weight_seconds, weight_seconds), symbols = excluded.symbols]],
      o.market, now, limit, secs, n)
  end)
  return true
end

-- exchangeInfo now, through the budget.
function B.refresh(o)
  local ok, err, code = B.budget(o)
  if not ok then return nil, err, code end
  local info
  info, err, code = fetch_info(o, true)
  if not info then return nil, err, code end
  return B.store_info(o, info)
end

-- When the market's symbols were refreshed last (epoch seconds), or nil.
function B.refreshed(o)
  B.migrate()
  local r = db.first("SELECT refreshed FROM binance_markets WHERE market = ?", o.market)
  return r and r.refreshed
end

local function set(list)
  local s = {}
  for _, v in ipairs(list or {}) do s[v] = true end
  return s
end

-- The selected symbols' rows, by symbol order; unknown explicit symbols as a second list.
function B.selected(o)
  B.migrate()
  local statuses, quotes, types = set(o.statuses), set(o.quote_assets), set(o.contract_types)
  local explicit = set(o.symbols)
  local out, found = {}, {}
  for _, r in ipairs(db.query("SELECT * FROM binance_symbols WHERE market = ? AND delisted_at IS NULL ORDER BY symbol",
                              o.market)) do
    local wanted = explicit[r.symbol] or (quotes[r.quote] and (o.market == "spot" or types[r.contract_type or ""]))
    if wanted and statuses[r.status] then out[#out + 1] = r end
    found[r.symbol] = true
  end
  local unknown = {}
  for _, s in ipairs(o.symbols) do if not found[s] then unknown[#unknown + 1] = s end end
  return out, unknown
end

-- ---- klines ----------------------------------------------------------------------------------

local function kline_weight(market, limit)
  if market == "spot" then return 2 end
  return limit < 100 and 1 or limit < 500 and 2 or limit <= 1000 and 5 or 10
end

local descriptors = {}
-- The kit's descriptor of a market's klines (see lib/source.lua, K.sync).
function B.descriptor(o)
  local key = o.source .. "\0" .. o.clock_skew
  if descriptors[key] then return descriptors[key] end
  local S = { name = o.source, skew = o.clock_skew, reread = true }
  function S.step(tf) return B.STEP[tf] end
  function S.max_bars() return o.page end
  function S.earliest(opts, tf)                -- futures: nothing before the listing; `start`
    local r = opts.listing and opts.listing[opts.current]
    if opts.start_ts and not opts.deeper then r = math.max(r or opts.start_ts, opts.start_ts) end
    if r then return r - B.STEP[tf] end
  end
  function S.fetch(opts, symbol, tf, lo, hi, priority)
    local step = B.STEP[tf]
    local limit = math.min(opts.page, (hi - lo) // step + 1)
    local res, err, code = B.get(opts, opts.api .. "/klines", ("%s %s %s"):format(opts.source, symbol, tf),
      { symbol = symbol, interval = tf, startTime = lo * 1000, limit = limit },
      kline_weight(opts.market, limit), priority)
    if not res then return nil, err, code end
    local ok, rows = pcall(json.decode_rows, res.body, DECIMALS)
    if not ok then return nil, ("%s %s: %s"):format(symbol, tf, rows), "JSON" end
    if opts.on_page then opts.on_page(lo, hi, #rows) end
    local size = opts.market == "coinm" and opts.contract_size and opts.contract_size[symbol]
    local short = #rows < limit                -- "the next `limit` bars from startTime": fewer = no more
    local source, coinm = opts.source, opts.market == "coinm"
    for i = 1, #rows do
      -- [open ms, o, h, l, c, volume, close ms, quote volume, trades, ...] -> kit.COLUMNS, in the
      -- decoded row itself (no second table per bar)
      local k = rows[i]
      local vol, qv = k[6], k[8]
      if coinm then vol, qv = k[8], size and k[6] * size or nil end
      for j = #k, 12, -1 do k[j] = nil end
      k[1], k[2], k[3], k[4], k[5], k[6], k[7], k[8], k[9], k[10], k[11] =
        source, symbol, tf, k[1] // 1000, k[2], k[3], k[4], k[5], vol, qv, math.tointeger(k[9])
    end
    return rows, true, short and math.maxinteger or nil   -- every bar from startTime on
  end
  descriptors[key] = S
  return S
end

-- Listing times and contract sizes of the market's symbols, for the descriptor.
local function symbol_facts(o)
  o.listing, o.contract_size = {}, {}
  for _, r in ipairs(db.query("SELECT symbol, onboard_date, contract_size FROM binance_symbols WHERE market = ?",
                              o.market)) do
    o.listing[r.symbol], o.contract_size[r.symbol] = r.onboard_date, r.contract_size
  end
end

local function days_of(o, days, symbol, now)
  if not days and o.start_ts then return 36500 end     -- S.earliest holds it at `start`
  days = days or o.history_days
  if days == "listing" then
    local t = o.listing and o.listing[symbol]
    return t and math.max(1, (now - t) / 86400 + 1) or 36500
  end
  return days
end

-- One series up to date (see K.sync). `days` overrides history_days.
function B.sync(o, symbol, tf, days, now)
  if not o.listing then symbol_facts(o) end
  now = now or time.now()
  local opts = setmetatable({ current = symbol, deeper = days ~= nil }, { __index = o })
  return kit.sync(B.descriptor(o), opts, symbol, tf, days_of(o, days, symbol, now), now)
end

-- Fetch and store the closed klines of one series with open times in [from_ms, to_ms].
function B.fill(market, symbol, interval, from_ms, to_ms, o)
  o = o or B.options(market)
  local step = B.STEP[interval]
  if not step then error(("binance.fill: unknown interval '%s'"):format(tostring(interval)), 2) end
  local ok, err, code = B.budget(o)
  if not ok then return nil, err, code end
  if not o.contract_size then symbol_facts(o) end
  local now = time.now() - o.clock_skew
  local lo = -(-(from_ms // 1000) // step) * step
  local hi = math.min(to_ms // 1000 // step * step, time.floor(now, step) - step)
  local S, stored = B.descriptor(o), 0
  local a = lo
  while a <= hi do
    local b = math.min(hi, a + (o.page - 1) * step)
    local rows, e, c = S.fetch(o, symbol, interval, a, b, "realtime")
    if not rows then return nil, e, c end
    local keep = {}
    for _, r in ipairs(rows) do
      if r[4] >= a and r[4] <= b and r[4] + step <= now then keep[#keep + 1] = r end
    end
    db.tx(function()
      local ins, upd = kit.store(keep)
      stored = stored + ins + upd
      series.record_empties(o.source, symbol, interval, step, kit.bar_times(keep), a - step, b + step, now)
    end)
    a = b + step
  end
  return stored
end

-- Run fn(item) for every item, `n` at a time (tasks); a fatal failure (banned, breaker) stops the
-- rest. Returns true, or nil, message, CODE.
function B.parallel(items, n, fn)
  local failed, first, first_code, fatal, nxt = 0, nil, nil, nil, 1
  local function worker()
    while not fatal and nxt <= #items do
      local item = items[nxt]
      nxt = nxt + 1
      local ok, err, code = fn(item)
      if not ok then
        if kit.FATAL[code] then fatal = { err, code }
        else
          failed, first, first_code = failed + 1, first or err, first_code or code
          log.warn("series failed", { error = err, code = code })
        end
      end
    end
  end
  local workers = {}
  for i = 1, math.min(n, #items) do workers[i] = worker end
  if #workers > 0 then task.all(table.unpack(workers)) end
  if fatal then return nil, fatal[1], fatal[2] end
  if failed > 0 then return nil, ("%d of %d failed; first: %s"):format(failed, #items, first), first_code end
  return true
end

local INCOMPLETE = [[SELECT instrument, timeframe, target FROM backfill WHERE source = ? AND complete = 0]]

-- One run of a market's klines script.
function B.collect(o, ctx)
  if not o.configured then return true end
  local ok, err, code = B.budget(o)
  if not ok then return nil, err, code end
  local at, daily = B.refreshed(o), false
  if not at or os.time() - at >= o.every_symbols then
    ok, err, code = B.refresh(o)
    if not ok then return nil, err, code end
    daily = true
  end
  local rows, unknown = B.selected(o)
  if #unknown > 0 then
    alert.raise("symbol_unknown", o.source, ("sources.%s.symbols: not listed by exchangeInfo: %s"):format(
      o.source, table.concat(unknown, ", ")), "warn")
  else
    alert.resolve("symbol_unknown", o.source)
  end
  symbol_facts(o)
  local now = time.now()
  local work, queued = {}, {}
  local function add(symbol, tf, days)
    local k = symbol .. "\0" .. tf
    if not queued[k] then queued[k], work[#work + 1] = true, { symbol, tf, days } end
  end
  for _, r in ipairs(rows) do
    for _, tf in ipairs(o.intervals) do add(r.symbol, tf) end
  end
  -- series `candled backfill` handed to the daemon: their own depth
  for _, r in ipairs(db.query(INCOMPLETE, o.source)) do
    -- (days that give back exactly `target` from the sync's now, clock_skew off)
    if B.STEP[r.timeframe] then add(r.instrument, r.timeframe, (now - o.clock_skew - r.target - 0.5) / 86400) end
  end
  if daily then                                -- with the symbols: a full gap search of every series
    for _, w in ipairs(work) do
      local c = series.cursor(o.source, w[1], w[2])
      if c and c.gaps_checked then series.recheck_gaps(o.source, w[1], w[2], c.target) end
    end
  end
  local stored = 0
  local done, e, c = B.parallel(work, o.concurrency, function(w)
    local n, why, cd = B.sync(o, w[1], w[2], w[3], now)
    if n then stored = stored + n end
    return n, why and ("%s (%s)"):format(why, tostring(cd)), cd
  end)
  if ctx then ctx.state.last_stored, ctx.state.series = stored, #work end
  return done, e, c
end

-- ---- long/short ratios (futures) ---------------------------------------------------------------

local RATIO_KINDS = {
  { "top_position", "/futures/data/topLongShortPositionRatio" },
  { "top_account", "/futures/data/topLongShortAccountRatio" },
  { "global_account", "/futures/data/globalLongShortAccountRatio" },
}
local RATIO_COLUMNS = { "market", "instrument", "kind", "period", "ts", "long_short_ratio", "long_share",
                        "short_share" }
local RATIO_KEYS = { "market", "instrument", "kind", "period", "ts" }
local RATIO_NEWEST = [[SELECT max(ts) AS ts FROM binance_ratios WHERE market = ? AND instrument = ? AND kind = ?
  AND period = ?]]

-- A timestamp in ms as number or string -> seconds, or nil.
function B.ms(v)
  v = math.tointeger(tonumber(v))
  return v and v // 1000
end

-- One instrument's ratios of one kind, from the newest stored (or ratio_days back) to the present.
function B.ratio_series(o, instrument, kind, path, now)
  local step = B.STEP[o.ratio_period]
  local key = o.market == "coinm" and "pair" or "symbol"
  local newest = db.first(RATIO_NEWEST, o.market, instrument, kind, o.ratio_period).ts
  local from = newest and newest + step or time.floor(now - o.ratio_days * 86400, step) + step
  local last = time.floor(now, step) - step
  local stored = 0
  while from <= last do
    local res, err, code = B.get(o, path, ("%s %s %s"):format(o.source, kind, instrument),
      { [key] = instrument, period = o.ratio_period, startTime = from * 1000, limit = 500 },
      1, newest and "realtime" or "backfill", o.ratio_budget)
    if not res then return nil, err, code end
    local ok, doc = pcall(json.decode, res.body)
    if not ok or type(doc) ~= "table" then return nil, ("%s %s: not JSON"):format(kind, instrument), "JSON" end
    local rows, top = {}, nil
    for _, r in ipairs(doc) do
      local ts = B.ms(r.timestamp)
      if ts and ts >= from and ts <= last then
        rows[#rows + 1] = { o.market, instrument, kind, o.ratio_period, ts, kit.num(r.longShortRatio),
                            kit.num(r.longAccount or r.longPosition), kit.num(r.shortAccount or r.shortPosition) }
        top = math.max(top or ts, ts)
      end
    end
    if #rows > 0 then
      local ins, upd = db.upsert("binance_ratios", rows, { keys = RATIO_KEYS, columns = RATIO_COLUMNS })
      if not ins then return nil, "binance_ratios: " .. tostring(upd), "DB" end
      stored = stored + ins + upd
    end
    if not top or #doc < 500 then break end
    from = top + step
  end
  return stored
end

-- One run of a futures market's ratio script: every selected perpetual's symbol (USDT-M) or pair
-- (COIN-M), the three kinds.
function B.ratios(o, ctx)
  if not o.ratios or not o.configured then return true end
  B.migrate()
  local ok, err, code = B.budget(o)
  if not ok then return nil, err, code end
  if not B.refreshed(o) then
    ok, err, code = B.refresh(o)
    if not ok then return nil, err, code end
  end
  -- USDT-M ratios weigh 0 but have a limit of their own: 1,000 requests in 5 minutes, in a budget
  -- of their own (budgets.<budget>_ratios in config.lua wins); COIN-M's weigh 1 in the market's
  if o.market == "usdm" then
    o.ratio_budget = o.budget .. "_ratios"
    budget.define(o.ratio_budget, { windows = { { per = "5m", limit = 1000 } }, reserve = 0.05,
      backoff = { base = 1, cap = 300 }, breaker = { failures = 5, cooldown = 60 },
      ban = { after_429s = 2, duration = 600 } })
  end
  local rows = B.selected(o)
  local work, seen = {}, {}
  for _, r in ipairs(rows) do
    local inst = o.market == "coinm" and r.pair or r.symbol
    if inst and (r.contract_type == "PERPETUAL" or o.market == "usdm") and not seen[inst] then
      seen[inst] = true
      for _, k in ipairs(RATIO_KINDS) do work[#work + 1] = { inst, k[1], k[2] } end
    end
  end
  local now, stored = time.now(), 0
  local done, e, c = B.parallel(work, o.concurrency, function(w)
    local n, why, cd = B.ratio_series(o, w[1], w[2], w[3], now)
    if n then stored = stored + n end
    return n, why, cd
  end)
  if ctx then ctx.state.last_stored = stored end
  return done, e, c
end

-- ---- scripts ---------------------------------------------------------------------------------

local function fmt_time(ts) return ts and time.format_iso(ts) or "-" end

-- candled backfill --source binance_<market> --symbol S [--timeframe 1m[,1h...]] [--days N]
local function backfill_command(market)
  local m = B.MARKETS[market]
  local USAGE = ("usage: candled backfill --source %s --symbol SYMBOL [--timeframe 1m[,1h...]] [--days N]"):format(
    m.source)
  local function usage(msg) error({ usage = "backfill: " .. msg }, 0) end
  return function(ctx, args)
    local o = B.options(market, ctx.config)
    local symbol, tfs, days = nil, nil, o.history_days
    local i = 1
    while i <= #args do
      local a, v = args[i], args[i + 1]
      if a == "--source" then i = i + 2
      elseif a == "--symbol" and v then symbol, i = v, i + 2
      elseif a == "--timeframe" and v then tfs, i = v, i + 2
      elseif a == "--days" and v then
        days = tonumber(v)
        if not days or days <= 0 or days ~= days or days > 36500 then
          usage("--days must be a number of days from 0 to 36500, not " .. v)
        end
        i = i + 2
      else usage(("unexpected argument '%s'\n%s"):format(a, USAGE)) end
    end
    if not symbol then usage("--symbol is required\n" .. USAGE) end
    local list = {}
    for tf in (tfs or table.concat(o.intervals, ",")):gmatch("[^,]+") do
      if not B.STEP[tf] or (tf == "1s" and market ~= "spot") then
        usage(("--timeframe %s is not a %s interval on the UTC grid"):format(tf, m.source))
      end
      list[#list + 1] = tf
    end
    B.migrate()
    local known = db.first("SELECT status, delisted_at FROM binance_symbols WHERE market = ? AND symbol = ?",
                           market, symbol)
    local now, started, failures = time.now(), time.monotonic(), 0
    if ctx.daemon then
      -- the daemon's klines script takes every incomplete cursor of this source, on its budget
      if not known then error(("backfill: %s is not a known %s symbol yet (the daemon lists symbols daily)"):format(
        symbol, m.source), 0) end
      ctx.out("a daemon is running on this database: it does the backfill on its budget (within a minute); " ..
              "following its progress.\n")
    else
      local ok, err = B.budget(o)
      if ok and not known then
        ok, err = B.refresh(o)
        known = db.first("SELECT status, delisted_at FROM binance_symbols WHERE market = ? AND symbol = ?",
                         market, symbol)
      end
      if not ok then error("backfill: " .. err, 0) end
      if not known then error(("backfill: %s is not listed by %s exchangeInfo (symbols are case-sensitive)"):format(
        symbol, m.source), 0) end
    end
    for _, tf in ipairs(list) do
      local step = B.STEP[tf]
      local target = kit.target(days == "listing" and 36500 or days, step, now - o.clock_skew)
      local before = db.first("SELECT count(*) AS n FROM candles WHERE source = ? AND instrument = ? AND timeframe = ?",
                              m.source, symbol, tf).n
      local ok, err, code
      if ctx.daemon then
        series.want(m.source, symbol, tf, target)
        series.recheck_gaps(m.source, symbol, tf, target)
        repeat
          local c = series.cursor(m.source, symbol, tf)
          ok = c and c.complete
          if not ok then time.sleep(0.5) end
        until ok
      else
        local span, pages = math.max(1, time.floor(now - o.clock_skew, step) - step - target), 0
        local run = ctx.tty and setmetatable({ on_page = function(_, hi)
          pages = pages + 1
          local done = math.max(0, math.min(1, (hi - target) / span))
          ctx.err(("\r%-4s [%s%s] %3d%%  %d pages "):format(tf, ("#"):rep(math.floor(done * 30)),
            ("."):rep(30 - math.floor(done * 30)), math.floor(done * 100), pages))
        end }, { __index = o }) or o
        ok, err, code = B.sync(run, symbol, tf, days, now)
        if ctx.tty then ctx.err("\n") end
      end
      if not ok then
        failures = failures + 1
        ctx.out(("%s %s: failed: %s (%s)\n"):format(symbol, tf, err, tostring(code)))
        if kit.FATAL[code] then break end
      else
        local r = db.first([[SELECT min(ts) AS lo, max(ts) AS hi, count(*) AS n FROM candles
          WHERE source = ? AND instrument = ? AND timeframe = ? AND ts >= ?]], m.source, symbol, tf, target)
        local total = db.first("SELECT count(*) AS n FROM candles WHERE source = ? AND instrument = ? AND timeframe = ?",
                               m.source, symbol, tf).n
        ctx.out(("%s %s %s: %d bars new, %d bars from %s to %s\n"):format(m.source, symbol, tf, total - before,
          r.n, fmt_time(r.lo), fmt_time(r.hi)))
      end
    end
    ctx.out(("backfill %s %s: %d timeframe(s), %d failed, %.1f s\n"):format(m.source, symbol, #list, failures,
      time.monotonic() - started))
    return failures == 0 and 0 or 1
  end
end

-- The klines script of a market (scripts/binance/<market>.lua returns it).
function B.klines_script(market)
  local M = { name = "binance." .. market, source = B.MARKETS[market].source, every = "1m" }
  function M.check(cfg) B.options(market, cfg) end
  function M.run(ctx) return B.collect(B.options(market, ctx.config), ctx) end
  M.commands = { backfill = backfill_command(market) }
  return M
end

return B
