-- GeckoTerminal OHLCV, incremental: every minute, for every active watchlist pool and configured
-- timeframe (1m 5m 15m 1h 4h 12h 1d) whose next bar has closed (and, for bars shorter than
-- refresh_min, default 5 minutes, once that many bars are due: 30 calls a minute do not go far
-- with many pools), one "realtime" call fetches the
-- bars from the newest stored one (re-reading the last few minutes, which the source's 60 s cache
-- may have had incomplete) up to the present. The forming bar is never stored. A pool first seen
-- gets its newest 1000 bars here; geckoterminal.backfill pages further back and fills any hole a
-- long outage leaves (more than 1000 bars since the newest stored one).
local db = require "rt.db"
local gt = require "lib.geckoterminal"
local log = require "rt.log"
local series = require "lib.series"
local time = require "rt.time"

local M = { name = "geckoterminal.ohlcv", source = gt.SOURCE, every = "1m" }

local FATAL = { BANNED = true, BREAKER_OPEN = true, QUEUE_FULL = true, CANCELLED = true }

-- Bring one series up to the last closed bar. Returns bars stored, or nil, message, code.
function M.update(o, pool, tf)
  local step = gt.TIMEFRAMES[tf][3]
  local now = time.now()
  local last_closed = time.floor(now, step) - step
  local cursor = series.want(gt.SOURCE, pool, tf, gt.target(o, tf, now))
  local newest = series.newest(gt.SOURCE, pool, tf)
  -- a series waits until a bar closed and refresh_min passed since its newest stored bar closed
  if newest and (newest >= last_closed or last_closed - newest < math.max(step, o.refresh_min)) then
    return 0
  end
  -- from the newest stored bar (or the history target), re-reading the settle time
  local from = math.max(cursor.target, math.min(newest or cursor.target, time.floor(now - series.SETTLE, step)))
  local want = (last_closed - from) // step + 1
  local limit = math.max(1, math.min(gt.MAX_LIMIT, want))
  local rows, sent_or_err, code = gt.ohlcv(o, pool, tf, { before = last_closed + step, limit = limit,
                                                          priority = "realtime" })
  if not rows then return nil, sent_or_err, code end
  local keep = {}
  for _, r in ipairs(rows) do if r[4] >= cursor.target then keep[#keep + 1] = r end end
  local stored = 0
  db.tx(function()
    stored = gt.store_candles(keep)
    series.record_empties(gt.SOURCE, pool, tf, step, gt.bar_times(rows), nil, nil, now)
    -- a page that could not reach the newest stored bar leaves a hole for the backfill (full,
    -- where `limit` counts rows; asked for fewer intervals than are missing, where it counts those)
    if newest and (sent_or_err == limit or limit < want) and keep[1] and keep[1][4] > newest + step then
      series.recheck_gaps(gt.SOURCE, pool, tf, newest)
    end
  end)
  return stored
end

M.check = gt.options                     -- a bad sources.geckoterminal option stops the daemon

function M.run(ctx)
  local o = gt.start(ctx)
  local total, failed, first_err, first_code = 0, 0, nil, nil
  for _, pool in ipairs(gt.active_pools()) do
    for _, tf in ipairs(o.timeframes) do
      local n, err, code = M.update(o, pool, tf)
      if n then
        total = total + n
      elseif code == "NOT_FOUND" then
        gt.pool_gone(o, pool, err)
        break
      elseif FATAL[code] then
        return nil, err, code
      else
        failed = failed + 1
        first_err, first_code = first_err or err, first_code or code
        log.warn("ohlcv update failed", { pool = pool, timeframe = tf, error = err, code = code })
      end
    end
  end
  ctx.state.stored = total
  if failed > 0 then return nil, ("%d series failed; first: %s"):format(failed, first_err), first_code end
  return true
end

return M
