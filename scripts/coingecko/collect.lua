-- CoinGecko (sources.coingecko): the coin list (daily), OHLC candles and market_chart points
-- (price, market cap, 24 h volume) of the configured coins against the configured currencies.
--
-- The API picks the granularity from `days`: OHLC 1-2 days -> 30m, 3-30 -> 4h, 31+ -> 4d
-- (timestamps are candle CLOSE times); market_chart 1 day -> 5-minutely, 2-90 -> hourly, more
-- (or interval=daily) -> daily at 00:00 UTC. Each configured timeframe asks only for the `days`
-- that give its granularity, checks the spacing of the answer and stores it under that timeframe
-- (the rule kept in cg_series), so daily and hourly data are never mixed. Daily market_chart
-- points also become `1d` candles with the close only (the 00:00 price closes the day before;
-- quote_volume = the 24 h volume then).
--
-- Keys: plan "public" needs none (5-15 calls a minute, varying: the budget learns the real
-- limit from the 429s); "demo" and "pro" read the key from the environment variable named by
-- api_key_env (default COINGECKO_API_KEY) and send it in x-cg-demo-api-key / x-cg-pro-api-key.
-- The key is never logged or stored. Without a paid plan history is limited to 365 days.
local alert = require "rt.alert"
local budget = require "rt.budget"
local db = require "rt.db"
local kit = require "lib.source"
local log = require "rt.log"
local time = require "rt.time"

local SOURCE = "coingecko"
local M = { name = "coingecko.collect", source = SOURCE, every = "15m" }

local OHLC = { ["30m"] = { 1800, { 1 } }, ["4h"] = { 14400, { 7, 14, 30 } }, ["4d"] = { 345600, { 90, 180, 365 } } }
local CHART = { ["5m"] = 300, ["1h"] = 3600, ["1d"] = 86400 }
local PLANS = {
  public = { url = "https://api.coingecko.com/api/v3", windows = { { per = "1m", limit = 10 } } },
  demo = { url = "https://api.coingecko.com/api/v3", header = "x-cg-demo-api-key",
           windows = { { per = "1m", limit = 30 }, { per = "month", limit = 10000 } } },
  pro = { url = "https://pro-api.coingecko.com/api/v3", header = "x-cg-pro-api-key",
          windows = { { per = "1m", limit = 500 } } },
}
local C = kit.check
local OPTIONS = {
  enabled = { true, C.boolean },
  base_url = { false, C.string },
  plan = { "public", C.one_of("public", "demo", "pro") },
  api_key_env = { "COINGECKO_API_KEY", C.string },
  budget = { SOURCE, C.string },
  coins = { {}, C.list_of(C.string) },                -- none configured: nothing is called
  vs_currencies = { { "usd" }, C.list_of(C.string) },
  ohlc = { { "4h", "4d" }, C.list_of(C.one_of("30m", "4h", "4d")) },
  market_chart = { { "1d" }, C.list_of(C.one_of("5m", "1h", "1d")) },
  history_days = { 365, C.number(0.01, 36500) },
}

M.MIGRATIONS = {
  [[CREATE TABLE cg_coins (id TEXT PRIMARY KEY, symbol TEXT, name TEXT, updated INTEGER);
    CREATE TABLE cg_series (instrument TEXT NOT NULL, timeframe TEXT NOT NULL, endpoint TEXT NOT NULL,
      granularity INTEGER NOT NULL, days TEXT, updated INTEGER, PRIMARY KEY (instrument, timeframe));
    CREATE TABLE cg_market_chart (instrument TEXT NOT NULL, granularity TEXT NOT NULL, ts INTEGER NOT NULL,
      price REAL, market_cap REAL, total_volume REAL, PRIMARY KEY (instrument, granularity, ts)) WITHOUT ROWID;]],
}

-- Checked options; the key comes from the environment (never from config.lua, never logged).
function M.options(cfg)
  local o = kit.options(SOURCE, OPTIONS, cfg)
  local plan = PLANS[o.plan]
  o.base_url = o.base_url or plan.url
  if plan.header then
    local key = os.getenv(o.api_key_env)
    if not key or key == "" then
      error(("sources.coingecko.plan: %s needs the API key in the environment variable %s"):format(
        o.plan, o.api_key_env), 0)
    end
    o.headers = { Accept = "application/json", [plan.header] = key }
  end
  if o.plan ~= "pro" and o.history_days > 365 then
    error("sources.coingecko.history_days: at most 365 without the pro plan (the API answers 401, error 10012)", 0)
  end
  budget.define(o.budget, { windows = plan.windows, backoff = { base = 5, cap = 300 },
                            breaker = { failures = 5, cooldown = "5m" }, ban = { after_429s = 3, duration = "10m" } })
  return o
end
M.check = M.options

local function error_text(doc)
  local s = doc.status or (type(doc.error) == "table" and doc.error.status)
  if type(s) == "table" then return ("%s (error %s)"):format(s.error_message, tostring(s.error_code)) end
  if type(doc.error) == "string" then return doc.error end
end

local function get(o, path, query)
  return kit.get(o.base_url .. path, path, { query = query, budget = o.budget, headers = o.headers,
                                             source = SOURCE, error_text = error_text })
end

-- The coin list, refreshed daily: configured ids are case-sensitive and checked against it.
local function coins(o)
  local row = db.first("SELECT max(updated) AS t FROM cg_coins")
  if not row.t or row.t < os.time() - 86400 then
    local list, err, code = get(o, "/coins/list")
    if not list then return nil, err, code end
    local rows, now = {}, os.time()
    for _, c in ipairs(list) do
      if type(c.id) == "string" then rows[#rows + 1] = { id = c.id, symbol = c.symbol, name = c.name, updated = now } end
    end
    db.tx(function() kit.upsert("cg_coins", rows, { "id" }) end)
  end
  local known = {}
  for _, id in ipairs(o.coins) do
    local c = db.first("SELECT symbol, name FROM cg_coins WHERE id = ?", id)
    if c then known[#known + 1] = { id = id, symbol = c.symbol, name = c.name }; alert.resolve("coin_unknown", id)
    else alert.raise("coin_unknown", id, ("CoinGecko has no coin id '%s' (ids are case-sensitive)"):format(id)) end
  end
  return known
end

-- The smallest `days` of `choices` reaching back to `from` (the last when none does).
local function days_for(choices, from, now)
  for _, d in ipairs(choices) do if now - d * 86400 <= from then return d end end
  return choices[#choices]
end

local function rule(inst, tf, endpoint, granularity, days)
  kit.upsert("cg_series", { { instrument = inst, timeframe = tf, endpoint = endpoint, granularity = granularity,
                              days = tostring(days), updated = os.time() } }, { "instrument", "timeframe" })
end

-- The spacing of consecutive stamps must be the granularity asked for (the final "now" point aside).
local function spaced(stamps, g, tolerance)
  for i = 2, #stamps do
    local d = stamps[i] - stamps[i - 1]
    if math.abs(d - g) > tolerance then return false, d end
  end
  return true
end

local function ohlc(o, coin, vs, tf, now)
  local g, choices = OHLC[tf][1], OHLC[tf][2]
  local inst = coin .. "/" .. vs
  local from = kit.newest(SOURCE, inst, tf) or kit.target(o.history_days, g, now)
  local days = days_for(choices, from, now)
  local list, err, code = get(o, ("/coins/%s/ohlc"):format(coin), { vs_currency = vs, days = days })
  if not list then return nil, err, code end
  local rows, closes = {}, {}
  for _, r in ipairs(list) do
    local close = type(r) == "table" and math.tointeger(r[1]) and r[1] // 1000
    local op, hi, lo, cl = kit.num(r[2]), kit.num(r[3]), kit.num(r[4]), kit.num(r[5])
    if close and op and hi and lo and cl then
      closes[#closes + 1] = close
      if close <= now and close % g == 0 then rows[#rows + 1] = { SOURCE, inst, tf, close - g, op, hi, lo, cl } end
    end
  end
  local ok, got = spaced(closes, g, 0)
  if not ok then
    return nil, ("%s %s: days=%d answered %d s bars, not %s"):format(inst, tf, days, got, tf), "GRANULARITY"
  end
  local stored = 0
  db.tx(function()
    rule(inst, tf, "ohlc", g, days)
    local ins, upd = kit.store(rows)
    stored = ins + upd
  end)
  return stored
end

local function market_chart(o, coin, vs, tf, now)
  local g = CHART[tf]
  local inst = coin .. "/" .. vs
  local last = db.first("SELECT max(ts) AS ts FROM cg_market_chart WHERE instrument = ? AND granularity = ?", inst, tf).ts
  local from = last or now - o.history_days * 86400
  local query = { vs_currency = vs }
  if tf == "5m" then query.days = 1
  elseif tf == "1h" then query.days = math.max(2, math.min(90, math.ceil((now - from) / 86400) + 1))
  else query.days, query.interval = math.max(1, math.min(o.history_days, math.ceil((now - from) / 86400) + 1)), "daily" end
  local doc, err, code = get(o, ("/coins/%s/market_chart"):format(coin), query)
  if not doc then return nil, err, code end
  local points, caps, vols = doc.prices, {}, {}
  if type(points) ~= "table" then return nil, inst .. ": market_chart without prices", "JSON" end
  for _, p in ipairs(type(doc.market_caps) == "table" and doc.market_caps or {}) do caps[p[1]] = kit.num(p[2]) end
  for _, p in ipairs(type(doc.total_volumes) == "table" and doc.total_volumes or {}) do vols[p[1]] = kit.num(p[2]) end
  local rows, candles, stamps = {}, {}, {}
  for i, p in ipairs(points) do
    local ms, price = math.tointeger(p[1]), kit.num(p[2])
    if ms and price and (i < #points or tf ~= "1d") then     -- the final point is "now", off the grid
      local ts = ms // 1000
      stamps[#stamps + 1] = ts
      rows[#rows + 1] = { instrument = inst, granularity = tf, ts = ts, price = price, market_cap = caps[ms],
                          total_volume = vols[ms] }
      if tf == "1d" and ts % 86400 == 0 then
        candles[#candles + 1] = { SOURCE, inst, "1d", ts - 86400, nil, nil, nil, price, nil, vols[ms] }
      end
    end
  end
  if #stamps > 2 then table.remove(stamps) end               -- intraday: the "now" point too
  local ok, got = spaced(stamps, g, g // 2)
  if not ok then
    return nil, ("%s market_chart %s: days=%s answered points %d s apart"):format(inst, tf, query.days, got), "GRANULARITY"
  end
  db.tx(function()
    rule(inst, "chart_" .. tf, "market_chart", g, query.days)
    kit.upsert("cg_market_chart", rows, { "instrument", "granularity", "ts" })
    kit.store(candles)
  end)
  return #rows
end

function M.run(ctx)
  local o = M.options(ctx.config)
  if #o.coins == 0 then return true end
  db.migrate(SOURCE, M.MIGRATIONS)
  kit.migrate()
  local list, err, code = coins(o)
  if not list then return nil, err, code end
  local work, now = {}, time.now()
  for _, c in ipairs(list) do
    for _, vs in ipairs(o.vs_currencies) do
      kit.instrument(SOURCE, c.id .. "/" .. vs, { symbol = (c.symbol or c.id):upper() .. "/" .. vs:upper(),
                                                  name = c.name, base = (c.symbol or ""):upper(), quote = vs:upper() })
      for _, tf in ipairs(o.ohlc) do work[#work + 1] = function() return ohlc(o, c.id, vs, tf, now) end end
      for _, tf in ipairs(o.market_chart) do work[#work + 1] = function() return market_chart(o, c.id, vs, tf, now) end end
    end
  end
  return kit.each(work, function(f) return f() end, log)
end

return M
