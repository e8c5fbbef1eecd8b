-- Yahoo Finance (sources.yahoo): candles of the configured tickers from the chart API
-- (/v8/finance/chart/{ticker}), e.g. BTC-USD, ETH-USD, ^GSPC, AAPL, on the source kit's sync:
-- forward from the newest stored bar, back to history_days, known-empty intervals, gaps.
--
-- The API's rules: 1m bars only within the last 30 days and 7 days a request (asked 2 at a time); 2m..90m within 60
-- days; 60m within 730 days; 1d the whole history (30m is not offered: the API answers 60-minute
-- bars for it). Any of open/high/low/close/volume may be null at an index: a bar without its
-- prices is an interval without trades (known-empty), a null volume is stored as NULL. Inside an
-- open session the last bar is the live one (stamped off the grid): never stored. Daily bars are
-- stored at 00:00 UTC of the exchange's local date (AAPL's 09:30 New York bar of 2026-11-02 is
-- ts 2026-11-02T00:00Z), with that date and the adjusted close in yh_bars; intraday bars keep
-- their UTC open time. Exchange-traded tickers' 60m/90m bars open on the half hour and do not fit
-- the UTC bar grid: use 15m or 1d for them (off-grid bars raise a `yahoo_off_grid` alert).
-- No limits are published: the budget is conservative (20 calls a minute), and the requests
-- carry a browser User-Agent, without which the API answers 429.
local alert = require "rt.alert"
local budget = require "rt.budget"
local db = require "rt.db"
local kit = require "lib.source"
local log = require "rt.log"
local time = require "rt.time"

local SOURCE = "yahoo"
local M = { name = "yahoo.chart", source = SOURCE, every = "5m" }

local STEP = { ["1m"] = 60, ["2m"] = 120, ["5m"] = 300, ["15m"] = 900, ["60m"] = 3600, ["90m"] = 5400, ["1d"] = 86400 }
local WITHIN = { ["1m"] = 29, ["2m"] = 59, ["5m"] = 59, ["15m"] = 59, ["60m"] = 729, ["90m"] = 59 }   -- days
local UA = "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/124.0 Safari/537.36"
local C = kit.check
local OPTIONS = {
  enabled = { true, C.boolean },
  base_url = { "https://query2.finance.yahoo.com", C.string },
  budget = { SOURCE, C.string },
  tickers = { {}, C.list_of(C.string) },              -- none configured: nothing is called
  intervals = { { "1d" }, C.list_of(C.one_of("1m", "2m", "5m", "15m", "60m", "90m", "1d")) },
  history_days = { 365, C.number(0.01, 36500) },
  user_agent = { UA, C.string },
}

M.MIGRATIONS = {
  [[CREATE TABLE yh_tickers (ticker TEXT PRIMARY KEY, type TEXT, exchange TEXT, timezone TEXT,
      gmtoffset INTEGER, currency TEXT, first_trade INTEGER, name TEXT, updated INTEGER);
    CREATE TABLE yh_bars (ticker TEXT NOT NULL, interval TEXT NOT NULL, ts INTEGER NOT NULL,
      local_date TEXT, session_ts INTEGER, adjclose REAL, PRIMARY KEY (ticker, interval, ts)) WITHOUT ROWID;]],
}

function M.options(cfg)
  local o = kit.options(SOURCE, OPTIONS, cfg)
  budget.define(o.budget, { windows = { { per = "1m", limit = 20 }, { per = "1d", limit = 5000 } },
                            backoff = { base = 10, cap = 600 }, breaker = { failures = 5, cooldown = "5m" },
                            ban = { after_429s = 3, duration = "30m" } })
  return o
end
M.check = M.options

local function error_text(doc)
  local e = type(doc.chart) == "table" and doc.chart.error
  if type(e) == "table" then return ("%s: %s"):format(e.code, e.description) end
end

local S = { name = SOURCE }
function S.step(tf) return STEP[tf] end
function S.max_bars(tf) return tf == "1m" and 2 * 1440 or tf == "1d" and 3650 or 3000 end
function S.earliest(_, tf, now) return WITHIN[tf] and now - WITHIN[tf] * 86400 end

-- One window of bars: [lo, hi] are bar times of the series (for 1d: the local dates' 00:00 UTC).
function S.fetch(o, ticker, tf, lo, hi, priority)
  local daily = tf == "1d"
  local path = "/v8/finance/chart/" .. ticker
  local doc, err, code = kit.get(o.base_url .. path, path, {
    query = { interval = tf, period1 = daily and lo - 86400 or lo, period2 = daily and hi + 86399 or hi,
              includePrePost = "false", events = "div,splits" },
    budget = o.budget, priority = priority, source = SOURCE, error_text = error_text,
    headers = { Accept = "application/json", ["User-Agent"] = o.user_agent } })
  if not doc then return nil, err, code end
  local r = type(doc.chart) == "table" and type(doc.chart.result) == "table" and doc.chart.result[1]
  if type(r) ~= "table" or type(r.meta) ~= "table" then
    return nil, path .. ": " .. (error_text(doc) or "the answer has no chart.result"), "JSON"
  end
  local meta, ind = r.meta, type(r.indicators) == "table" and r.indicators or {}
  local q = type(ind.quote) == "table" and type(ind.quote[1]) == "table" and ind.quote[1] or {}
  local adj = type(ind.adjclose) == "table" and type(ind.adjclose[1]) == "table" and ind.adjclose[1].adjclose or {}
  local offset = math.tointeger(meta.gmtoffset) or 0
  kit.upsert("yh_tickers", { { ticker = ticker, type = meta.instrumentType, exchange = meta.exchangeName,
    timezone = meta.exchangeTimezoneName, gmtoffset = offset, currency = meta.currency,
    first_trade = math.tointeger(meta.firstTradeDate), name = meta.longName, updated = os.time() } }, { "ticker" })
  local rows, extra, off_grid = {}, {}, 0
  for i, t in ipairs(type(r.timestamp) == "table" and r.timestamp or {}) do
    local o_, h, l, c = kit.num(q.open and q.open[i]), kit.num(q.high and q.high[i]),
                        kit.num(q.low and q.low[i]), kit.num(q.close and q.close[i])
    local ts = daily and (t + offset) // 86400 * 86400 or t
    if o_ and h and l and c and math.tointeger(t) then
      if ts % STEP[tf] ~= 0 and t ~= meta.regularMarketTime then off_grid = off_grid + 1 end
      rows[#rows + 1] = { SOURCE, ticker, tf, ts, o_, h, l, c, kit.num(q.volume and q.volume[i]) }
      extra[#extra + 1] = { ticker = ticker, interval = tf, ts = ts, session_ts = t, adjclose = kit.num(adj[i]),
                            local_date = daily and os.date("!%Y-%m-%d", ts) or nil }
    end
  end
  if off_grid > 0 then
    alert.raise("yahoo_off_grid", ticker .. " " .. tf, ("%s %s: %d bars off the UTC %s grid (use 15m or 1d for %s)"):format(
      ticker, tf, off_grid, tf, tostring(meta.exchangeTimezoneName)))
  end
  kit.upsert("yh_bars", extra, { "ticker", "interval", "ts" }, nil,
             { "ticker", "interval", "ts", "local_date", "session_ts", "adjclose" })
  return rows, true
end

function M.run(ctx)
  local o = M.options(ctx.config)
  db.migrate(SOURCE, M.MIGRATIONS)
  kit.migrate()
  local work = {}
  for _, ticker in ipairs(o.tickers) do
    kit.instrument(SOURCE, ticker, { symbol = ticker })
    for _, tf in ipairs(o.intervals) do work[#work + 1] = { ticker, tf } end
  end
  return kit.each(work, function(w)
    local n, err, code = kit.sync(S, o, w[1], w[2], o.history_days)
    if not n and code == "NOT_FOUND" then
      alert.raise("ticker_unknown", w[1], ("Yahoo Finance does not know %s: %s"):format(w[1], err))
    end
    return n, err, code
  end, log)
end

M.S = S
return M
