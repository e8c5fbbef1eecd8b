-- Drift (sources.drift): perpetual (and spot) markets of the Drift data API: the market list
-- (/stats/markets), candles of the configured markets and resolutions on the source kit's sync,
-- hourly funding rates (the last 30 days the API serves) and fills (/market/{symbol}/trades).
--
-- The API's rules: symbols are case-sensitive market names (BTC-PERP, SOL-PERP; spot markets by
-- their symbol); resolutions 1 5 15 60 240 D (stored as 1m 5m 15m 1h 4h 1d); at most 1000 candles
-- a call, NEWEST FIRST, `startTs` naming the newest open time wanted; an interval without fills
-- has no record (known-empty); the forming candle is included and never stored. Candles are the
-- fill (traded) prices with baseVolume and quoteVolume; the oracle closes go to drift_oracle.
-- Funding rates arrive scaled (rate 1e9, TWAPs 1e6) and are stored as plain numbers.
-- Symbol mapping: each market maps to a canonical instrument, `<base>/USD:PERP` for perpetuals
-- and `<base>/USD` for spot (the quote is USDC), unless `symbols` names another.
-- The data host moved to https://data.velocity.exchange in June 2026: base_url says which.
local budget = require "rt.budget"
local db = require "rt.db"
local kit = require "lib.source"
local log = require "rt.log"

local SOURCE = "drift"
local M = { name = "drift.collect", source = SOURCE, every = "1m" }

local RES = { ["1m"] = { "1", 60 }, ["5m"] = { "5", 300 }, ["15m"] = { "15", 900 }, ["1h"] = { "60", 3600 },
              ["4h"] = { "240", 14400 }, ["1d"] = { "D", 86400 } }
local C = kit.check
local OPTIONS = {
  enabled = { true, C.boolean },
  base_url = { "https://data.api.drift.trade", C.string },
  budget = { SOURCE, C.string },
  markets = { {}, C.list_of(C.string) },              -- none configured: nothing is called
  resolutions = { { "1h" }, C.list_of(C.one_of("1m", "5m", "15m", "1h", "4h", "1d")) },
  history_days = { 30, C.number(0.01, 3650) },
  funding = { true, C.boolean },
  trades = { true, C.boolean },
  trades_pages = { 5, C.number(1, 100) },
  symbols = { {}, C.map(C.string, C.string) },
}

M.MIGRATIONS = {
  [[CREATE TABLE drift_markets (symbol TEXT PRIMARY KEY, market_index INTEGER, market_type TEXT,
      base TEXT, quote TEXT, status TEXT, canonical TEXT, oracle_price REAL, mark_price REAL,
      open_interest_long REAL, open_interest_short REAL, funding_rate_24h REAL, updated INTEGER);
    CREATE TABLE drift_funding (market TEXT NOT NULL, ts INTEGER NOT NULL, funding_rate REAL,
      funding_rate_long REAL, funding_rate_short REAL, oracle_twap REAL, mark_twap REAL, record_id TEXT,
      PRIMARY KEY (market, ts)) WITHOUT ROWID;
    CREATE TABLE drift_oracle (market TEXT NOT NULL, timeframe TEXT NOT NULL, ts INTEGER NOT NULL,
      open REAL, high REAL, low REAL, close REAL, PRIMARY KEY (market, timeframe, ts)) WITHOUT ROWID;]],
}

function M.options(cfg)
  local o = kit.options(SOURCE, OPTIONS, cfg)
  budget.define(o.budget, { windows = { { per = "1m", limit = 60 } }, backoff = { base = 2, cap = 120 },
                            breaker = { failures = 5, cooldown = "2m" }, ban = { after_429s = 3, duration = "10m" } })
  return o
end
M.check = M.options

local function error_text(doc) if type(doc.error) == "string" then return doc.error end end

local function get(o, path, query, priority)
  local doc, err, code = kit.get(o.base_url .. path, path, { query = query, budget = o.budget, priority = priority,
                                                             source = SOURCE, error_text = error_text })
  if doc and doc.success == false then return nil, path .. ": " .. tostring(doc.error), "HTTP" end
  return doc, err, code
end

-- The canonical instrument of a Drift market.
function M.canonical(o, m)
  if o.symbols[m.symbol] then return o.symbols[m.symbol] end
  local base = tostring(m.baseAsset or m.symbol:match("^(.-)%-") or m.symbol)
  return m.marketType == "perp" and base .. "/USD:PERP" or base .. "/USD"
end

local function markets(o)
  local doc, err, code = get(o, "/stats/markets")
  if not doc then return nil, err, code end
  local rows, known = {}, {}
  for _, m in ipairs(type(doc.markets) == "table" and doc.markets or {}) do
    if type(m.symbol) == "string" then
      local oi = type(m.openInterest) == "table" and m.openInterest or {}
      rows[#rows + 1] = { symbol = m.symbol, market_index = math.tointeger(m.marketIndex), market_type = m.marketType,
        base = m.baseAsset, quote = m.quoteAsset, status = m.status, canonical = M.canonical(o, m),
        oracle_price = kit.num(m.oraclePrice), mark_price = kit.num(m.markPrice), open_interest_long = kit.num(oi.long),
        open_interest_short = kit.num(oi.short), funding_rate_24h = kit.num(m.fundingRate24h), updated = os.time() }
      known[m.symbol] = rows[#rows]
    end
  end
  db.tx(function()
    kit.upsert("drift_markets", rows, { "symbol" })
    for _, r in ipairs(rows) do
      kit.instrument(SOURCE, r.symbol, { symbol = r.canonical, name = r.symbol, base = r.base, quote = r.quote,
                                         status = r.status })
      kit.map(SOURCE, r.symbol, r.canonical)
    end
  end)
  return known
end

local S = { name = SOURCE }
function S.step(tf) return RES[tf][2] end
function S.max_bars() return 1000 end
function S.fetch(o, market, tf, lo, hi, priority)
  local step = RES[tf][2]
  local path = ("/market/%s/candles/%s"):format(market, RES[tf][1])
  local doc, err, code = get(o, path, { startTs = hi, limit = (hi - lo) // step + 1 }, priority)
  if not doc then return nil, err, code end
  local rows, oracle = {}, {}
  for _, r in ipairs(type(doc.records) == "table" and doc.records or {}) do
    local ts = math.tointeger(r.ts)
    local op, h, l, c = kit.num(r.fillOpen), kit.num(r.fillHigh), kit.num(r.fillLow), kit.num(r.fillClose)
    if ts and op and h and l and c then
      rows[#rows + 1] = { SOURCE, market, tf, ts, op, h, l, c, kit.num(r.baseVolume), kit.num(r.quoteVolume) }
      oracle[#oracle + 1] = { market = market, timeframe = tf, ts = ts, open = kit.num(r.oracleOpen),
        high = kit.num(r.oracleHigh), low = kit.num(r.oracleLow), close = kit.num(r.oracleClose) }
    end
  end
  kit.upsert("drift_oracle", oracle, { "market", "timeframe", "ts" }, nil,
             { "market", "timeframe", "ts", "open", "high", "low", "close" })
  return rows, true
end

local function funding(o, market)
  local doc, err, code = get(o, "/fundingRates", { marketName = market }, "backfill")
  if not doc then return nil, err, code end
  local rows = {}
  for _, f in ipairs(type(doc.fundingRates) == "table" and doc.fundingRates or {}) do
    local ts = math.tointeger(tonumber(f.ts))
    local scaled = function(v, p) v = kit.num(v); return v and v / p end
    if ts then
      rows[#rows + 1] = { market = market, ts = ts, funding_rate = scaled(f.fundingRate, 1e9),
        funding_rate_long = scaled(f.fundingRateLong, 1e9), funding_rate_short = scaled(f.fundingRateShort, 1e9),
        oracle_twap = scaled(f.oraclePriceTwap, 1e6), mark_twap = scaled(f.markPriceTwap, 1e6),
        record_id = f.recordId and tostring(f.recordId) }
    end
  end
  db.tx(function() kit.upsert("drift_funding", rows, { "market", "ts" }) end)
  return #rows
end

-- Fills newest first, page by page, until a page reaches the newest stored one.
local function trades(o, market)
  local newest = db.first("SELECT max(ts) AS ts FROM trades WHERE source = ? AND instrument = ?", SOURCE, market).ts
  local page, stored = nil, 0
  for _ = 1, o.trades_pages do
    local doc, err, code = get(o, ("/market/%s/trades"):format(market), { page = page })
    if not doc then return nil, err, code end
    local rows, oldest = {}, nil
    for _, t in ipairs(type(doc.records) == "table" and doc.records or {}) do
      local ts, base, quote = math.tointeger(t.ts), kit.num(t.baseAssetAmountFilled), kit.num(t.quoteAssetAmountFilled)
      local id = t.fillRecordId or (t.txSig and (t.txSig .. ":" .. tostring(t.txSigIndex)))
      if ts and base and quote and base > 0 and id then
        oldest = math.min(oldest or ts, ts)
        rows[#rows + 1] = { source = SOURCE, instrument = market, trade_id = tostring(id), ts = ts, price = quote / base,
          amount = base, volume_usd = quote, side = t.takerOrderDirection == "long" and "buy" or "sell" }
      end
    end
    if #rows > 0 then
      local ins, upd = db.upsert("trades", rows, { keys = { "source", "instrument", "trade_id" } })
      if not ins then error("trades: " .. tostring(upd)) end
      stored = stored + ins
    end
    page = type(doc.meta) == "table" and doc.meta.nextPage
    if type(page) ~= "string" or not oldest or (newest and oldest <= newest) then break end
  end
  return stored
end

function M.run(ctx)
  local o = M.options(ctx.config)
  if #o.markets == 0 then return true end
  db.migrate(SOURCE, M.MIGRATIONS)
  kit.migrate()
  local known, err, code = markets(o)
  if not known then return nil, err, code end
  local work = {}
  for _, market in ipairs(o.markets) do
    if not known[market] then
      work[#work + 1] = function() return nil, ("Drift lists no market '%s' (names are case-sensitive)"):format(market), "NOT_FOUND" end
    else
      for _, tf in ipairs(o.resolutions) do
        work[#work + 1] = function() return kit.sync(S, o, market, tf, o.history_days) end
      end
      if o.funding and known[market].market_type == "perp" then work[#work + 1] = function() return funding(o, market) end end
      if o.trades then work[#work + 1] = function() return trades(o, market) end end
    end
  end
  return kit.each(work, function(f) return f() end, log)
end

M.S = S
return M
