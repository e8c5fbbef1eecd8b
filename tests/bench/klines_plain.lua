-- tests/bench/klines_plain.lua: the Binance spot klines collector as it was before the source kit
-- (scripts/binance/klines.lua until issue 13), kept for run_series.py only: that benchmark runs the
-- same Lua on today's binary and on an older one (which has no rt.events for lib/series.lua), so
-- it needs a collector that uses nothing but rt.http, rt.db, rt.json and rt.time.
--
-- Binance spot klines: every closed candle of the configured symbols and intervals, exactly once.
--
-- Each run continues from the newest stored candle (or from `start` / `history_days` on an empty
-- database) and pages forward 1000 rows a request until it reaches the present. The last row of a
-- page whose close time is still in the future is the forming candle: it is never stored.
-- Options (sources.binance_spot in config.lua): base_url, symbols, intervals, history_days, start.
-- Every request goes through budget `binance_spot` (request weight 6000/min per IP, corrected from
-- X-MBX-USED-WEIGHT-1M); config.lua's budgets.binance_spot overrides the default below. Catching
-- up on history is "backfill" priority; the last page up to the present is "realtime".
local budget = require "rt.budget"
local db = require "rt.db"
local http = require "rt.http"
local json = require "rt.json"
local time = require "rt.time"

local SOURCE = "binance_spot"
local PAGE = 1000
local COLUMNS = { "source", "instrument", "timeframe", "ts", "open", "high", "low", "close", "volume",
                  "quote_volume", "trades" }
local KEYS = { "source", "instrument", "timeframe", "ts" }
local DECIMALS = { numbers = { 2, 3, 4, 5, 6, 8 } }   -- kline fields Binance sends as decimal strings
local NEWEST = "SELECT max(ts) AS ts FROM candles WHERE source = ? AND instrument = ? AND timeframe = ?"

local KLINES_WEIGHT = 2                     -- /api/v3/klines, any limit (since 2023-08-25)
local BUDGET = { windows = { { per = "1m", limit = 6000 } }, reserve = 0.1,
                 used_weight_header = "x-mbx-used-weight-1m" }

local M = { name = "binance.klines", source = SOURCE, every = "1m" }

-- Where a series resumes: after the newest stored candle, else the configured start.
local function resume_from(cfg, symbol, interval, step)
  local row = db.first(NEWEST, SOURCE, symbol, interval)
  if row and row.ts then return row.ts + step end
  if cfg.start then return assert(time.parse_iso(cfg.start)) end
  return time.floor(time.now() - (cfg.history_days or 1) * 86400, step)
end

-- One page of klines as candle rows (closed candles only) and whether the page was full.
local function fetch_page(cfg, symbol, interval, from)
  local behind = time.now() - from > PAGE * time.duration(interval)
  local res, err, code = http.get(cfg.base_url .. "/api/v3/klines", {
    query = { symbol = symbol, interval = interval, startTime = from * 1000, limit = PAGE },
    budget = cfg.budget or SOURCE, weight = KLINES_WEIGHT, priority = behind and "backfill" or "realtime",
  })
  if not res then return nil, ("%s %s: %s (%s)"):format(symbol, interval, err, code), code end
  if res.status ~= 200 then
    return nil, ("%s %s: HTTP %d: %s"):format(symbol, interval, res.status, res.body:sub(1, 200)), "HTTP"
  end
  local rows = json.decode_rows(res.body, DECIMALS)
  local candles, now = {}, time.now()
  for _, k in ipairs(rows) do
    if k[7] / 1000 >= now then break end        -- closes in the future: still forming
    -- The decoded kline becomes the candle row in place (positional, in COLUMNS order):
    -- [open_ms, o, h, l, c, volume, close_ms, quote_volume, trades, ...] -> COLUMNS.
    local open_ms, qv, n = k[1], k[8], k[9]
    k[11], k[10], k[9] = n, qv, k[6]
    k[8], k[7], k[6], k[5] = k[5], k[4], k[3], k[2]
    k[1], k[2], k[3], k[4] = SOURCE, symbol, interval, open_ms // 1000
    k[12] = nil
    candles[#candles + 1] = k
  end
  return candles, #rows == PAGE and #candles == #rows
end

local function collect(ctx, symbol, interval)
  local step = time.duration(interval)
  local from, stored = resume_from(ctx.config, symbol, interval, step), 0
  while true do
    local candles, more, code = fetch_page(ctx.config, symbol, interval, from)
    if not candles then return nil, more, code end
    if #candles > 0 then
      local inserted, updated = db.upsert("candles", candles, { keys = KEYS, columns = COLUMNS })
      if not inserted then return nil, updated end
      stored = stored + inserted + updated
      from = candles[#candles][4] + step
    end
    if not more then return stored end
  end
end

function M.run(ctx)
  budget.define(ctx.config.budget or SOURCE, BUDGET)
  local total = 0
  for _, symbol in ipairs(ctx.config.symbols or {}) do
    for _, interval in ipairs(ctx.config.intervals or { "1m" }) do
      local n, err = collect(ctx, symbol, interval)
      if not n then return nil, err end
      total = total + n
    end
  end
  ctx.state.last_stored = total
  return true
end

return M
