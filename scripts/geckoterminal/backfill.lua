-- GeckoTerminal OHLCV history: pages back with before_timestamp (1000 bars a call, "backfill"
-- priority, so realtime calls go first) until each series of every active watchlist pool reaches
-- history_days (default 180) or the start of the pool's history. The cursor is saved with every
-- page, so a killed backfill resumes where it stopped. Then gaps: intervals between stored bars
-- that are neither stored nor known-empty are fetched again; intervals the source answered
-- without a bar are recorded as known-empty (empty_intervals) and never fetched again.
--
-- `candled backfill --source geckoterminal --pool solana_<address> --timeframe 1h --days N`
-- runs one on demand (commands.backfill below) with a progress bar on a terminal.
local db = require "rt.db"
local gt = require "lib.geckoterminal"
local log = require "rt.log"
local series = require "lib.series"
local task = require "rt.task"
local time = require "rt.time"

local M = { name = "geckoterminal.backfill", source = gt.SOURCE, every = "1m" }

local PENDING = [[SELECT instrument, timeframe FROM backfill
  WHERE source = ? AND complete = 0 ORDER BY instrument, timeframe]]

-- Page one series back to its cursor's target. `on_page(cursor)` is called after each stored
-- page. Returns the cursor, or nil, message, code (the pages stored so far stay stored).
function M.history(o, pool, tf, on_page)
  local step = gt.TIMEFRAMES[tf][3]
  local c = assert(series.cursor(gt.SOURCE, pool, tf), "no backfill cursor")
  -- nothing stored yet: start below the forming bar, so a full page is 1000 closed bars
  local before = c.before or series.oldest(gt.SOURCE, pool, tf) or time.floor(time.now(), step)
  while not c.complete do
    local rows, sent, code = gt.ohlcv(o, pool, tf, { before = before, priority = "backfill" })
    if not rows then return nil, sent, code end
    local keep = {}
    for _, r in ipairs(rows) do if r[4] >= c.target then keep[#keep + 1] = r end end
    local hi = series.newest(gt.SOURCE, pool, tf) and before or nil       -- a stored bar bounds the page
    db.tx(function()
      c.rows = c.rows + gt.store_candles(keep)
      c.empty = (c.empty or 0) + series.record_empties(gt.SOURCE, pool, tf, step, gt.bar_times(rows), nil, hi)
      -- the cursor stays on a stored bar, so a deeper target later resumes without a hole
      local oldest = rows[1] and rows[1][4]
      c.pages, c.before = c.pages + 1, keep[1] and keep[1][4] or before
      if sent < gt.MAX_LIMIT then                 -- nothing older: the pool's history starts here
        c.complete, c.first_ts = true, oldest or before
      elseif oldest and oldest <= c.target then
        c.complete = true
      elseif not oldest then                      -- a full page with no usable row: stop, do not loop
        error(("%s %s: a full page without a closed bar before %s"):format(pool, tf, tostring(before)))
      end
      series.save_cursor(gt.SOURCE, pool, tf, c)
    end)
    before = c.before
    if on_page then on_page(c) end
  end
  return c
end

-- Fetch the gaps of one series found at or after `from` again. Returns bars stored and empty
-- bars recorded, or nil, message, code.
function M.fill_gaps(o, pool, tf, from)
  local step = gt.TIMEFRAMES[tf][3]
  local stored, empty = 0, 0
  for _, gap in ipairs(series.gaps(gt.SOURCE, pool, tf, step, from)) do
    local before = gap.before
    while before > gap.after + step do
      local limit = math.min(gt.MAX_LIMIT, (before - gap.after) // step)   -- reaches gap.after
      local rows, sent, code = gt.ohlcv(o, pool, tf, { before = before, limit = limit, priority = "backfill" })
      if not rows then return nil, sent, code end
      local inside = {}
      for _, r in ipairs(rows) do if r[4] > gap.after then inside[#inside + 1] = r end end
      local reached = #inside < #rows or sent < limit
      db.tx(function()
        stored = stored + gt.store_candles(inside)
        empty = empty + series.record_empties(gt.SOURCE, pool, tf, step, gt.bar_times(inside),
                                              reached and gap.after or nil, before)
      end)
      if reached or not inside[1] then break end
      before = inside[1][4]
    end
  end
  return stored, empty
end

-- History, then gaps, for one series. Gaps are searched from where the last search ended
-- (minus the settle time), or from the start when `full`.
function M.series(o, pool, tf, on_page, full)
  local c, err, code = M.history(o, pool, tf, on_page)
  if not c then return nil, err, code end
  local step = gt.TIMEFRAMES[tf][3]
  local checked = series.cursor(gt.SOURCE, pool, tf).gaps_checked
  local from = (not full and checked) or c.first_ts or c.target
  local stored, empty, gcode = M.fill_gaps(o, pool, tf, from)
  if not stored then return nil, empty, gcode end
  if series.newest(gt.SOURCE, pool, tf) then
    series.set_gaps_checked(gt.SOURCE, pool, tf, checked,
                            math.max(from, time.floor(time.now() - series.SETTLE, step) - step))
  end
  c.gap_rows, c.gap_empty = stored, empty
  return c
end

local FATAL = { BANNED = true, BREAKER_OPEN = true, QUEUE_FULL = true, CANCELLED = true }

M.check = gt.options                     -- a bad sources.geckoterminal option stops the daemon

function M.run(ctx)
  local o = gt.start(ctx)
  local now = time.now()
  for _, pool in ipairs(gt.active_pools()) do
    for _, tf in ipairs(o.timeframes) do
      series.want(gt.SOURCE, pool, tf, gt.target(o, tf, now))
    end
  end
  -- every series with a cursor to advance or gaps to check: watchlist pools and on-demand ones
  local work, queued = {}, {}
  local function add(pool, tf)
    if not queued[pool .. "\0" .. tf] then
      queued[pool .. "\0" .. tf] = true
      work[#work + 1] = { pool, tf }
    end
  end
  for _, r in ipairs(db.query(PENDING, gt.SOURCE)) do add(r.instrument, r.timeframe) end
  for _, pool in ipairs(gt.active_pools()) do
    for _, tf in ipairs(o.timeframes) do add(pool, tf) end
  end
  local failed, fatal, next_item = {}, nil, 1
  local function worker()
    while not fatal and next_item <= #work do
      local pool, tf = table.unpack(work[next_item])
      next_item = next_item + 1
      local c, err, code = M.series(o, pool, tf)
      if not c then
        if code == "NOT_FOUND" then gt.pool_gone(o, pool, err)
        elseif FATAL[code] then fatal = { err, code }
        else
          failed[#failed + 1] = err
          log.warn("backfill failed", { pool = pool, timeframe = tf, error = err, code = code })
        end
      end
    end
  end
  local workers = {}
  for i = 1, math.min(o.backfill_concurrency, #work) do workers[i] = worker end
  if #workers > 0 then task.all(table.unpack(workers)) end
  if fatal then return nil, fatal[1], fatal[2] end
  if #failed > 0 then return nil, ("%d series failed; first: %s"):format(#failed, failed[1]) end
  return true
end

-- ---- candled backfill --------------------------------------------------------------------------

local USAGE = "usage: candled backfill --source geckoterminal --pool solana_<address> " ..
              "[--timeframe 1h[,4h...]|all] [--days N]"

local function bar(done, total, width)
  local n = total > 0 and math.floor(width * math.min(done / total, 1)) or width
  return ("#"):rep(n) .. ("."):rep(width - n)
end

local function usage(msg) error({ usage = "backfill: " .. msg }, 0) end

local function fmt_time(ts) return ts and time.format_iso(ts) or "-" end

M.commands = {}

-- candled backfill: args are the words after the command; ctx.tty is true on a terminal.
function M.commands.backfill(ctx, args)
  local o = gt.options(ctx.config)
  local pool, tfs, days = nil, nil, o.history_days
  local i = 1
  while i <= #args do
    local a, v = args[i], args[i + 1]
    if a == "--source" then i = i + 2
    elseif a == "--pool" and v then pool, i = v, i + 2
    elseif a == "--timeframe" and v then tfs, i = v, i + 2
    elseif a == "--days" and v then
      days = tonumber(v)
      if not days or days <= 0 then usage("--days must be a positive number, not " .. v) end
      i = i + 2
    else usage(("unexpected argument '%s'\n%s"):format(a, USAGE)) end
  end
  if not pool then usage("--pool is required\n" .. USAGE) end
  local addr, why = gt.address_of(o, pool)
  if not addr then usage("--pool " .. why) end
  pool = gt.pool_id(o, addr)
  local list = {}
  if not tfs or tfs == "all" then list = o.timeframes
  else
    for tf in tfs:gmatch("[^,]+") do
      if not gt.TIMEFRAMES[tf] then
        usage(("--timeframe %s is not one of %s"):format(tf, table.concat(gt.TIMEFRAME_ORDER, " ")))
      end
      list[#list + 1] = tf
    end
  end
  gt.migrate()
  -- the pool must exist: one call, which also stores its name and tokens
  local doc, err, code = gt.get(o, ("/networks/%s/pools/%s"):format(o.network, addr),
                                { include = "base_token,quote_token,dex" }, "backfill")
  if not doc then
    if code == "NOT_FOUND" then error(("backfill: pool %s is not known to GeckoTerminal"):format(pool), 0) end
    error("backfill: " .. err, 0)
  end
  gt.store_pools(o, doc)
  local now, started = time.now(), time.monotonic()
  local failures = 0
  if ctx.daemon then
    ctx.out("a daemon is running on this database: it does the backfill on its budget (starting within a\n" ..
              "minute); following its progress. Interrupting this only stops following.\n")
  end
  for _, tf in ipairs(list) do
    local step = gt.TIMEFRAMES[tf][3]
    local c0 = series.want(gt.SOURCE, pool, tf, gt.target({ history_days = days }, tf, now))
    local rows0, pages0 = c0.rows or 0, c0.pages or 0
    local span = (c0.before or time.floor(now, step)) - c0.target
    local function progress(c)
      if not ctx.tty then return end
      local done = (c0.before or time.floor(now, step)) - (c.before or now)
      ctx.err(("\r%-4s [%s] %3d%%  %d pages  %d bars "):format(tf, bar(done, span, 30),
        span > 0 and math.floor(100 * math.min(done / span, 1)) or 100, c.pages - pages0, c.rows - rows0))
    end
    local fresh, c, e, ecode = 0, nil, nil, nil
    if ctx.daemon then
      -- the daemon's backfill script takes every incomplete cursor; gaps are searched from the target
      series.recheck_gaps(gt.SOURCE, pool, tf, c0.target)
      repeat
        c = series.cursor(gt.SOURCE, pool, tf)
        progress(c)
        if not c.complete then time.sleep(0.5) end
      until c.complete
      c.gap_rows = 0
    else
      fresh, e, ecode = require("geckoterminal.ohlcv").update(o, pool, tf)   -- up to the present
      if fresh then c, e, ecode = M.series(o, pool, tf, progress, true) end
    end
    if ctx.tty then ctx.err("\n") end
    if not c then
      failures = failures + 1
      ctx.out(("%s %s: failed: %s (%s)\n"):format(pool, tf, e, tostring(ecode)))
      if FATAL[ecode] then break end
    else
      local range = db.first([[SELECT min(ts) AS lo, max(ts) AS hi, count(*) AS n FROM candles
          WHERE source = ? AND instrument = ? AND timeframe = ? AND ts >= ?]], gt.SOURCE, pool, tf, c.target)
      ctx.out(("%s %s: %d bars stored (%d pages, %d from gaps), %d bars from %s to %s%s\n"):format(
        pool, tf, fresh + c.rows - rows0 + c.gap_rows, c.pages - pages0, c.gap_rows, range.n,
        fmt_time(range.lo), fmt_time(range.hi),
        c.first_ts and (", history starts " .. fmt_time(c.first_ts)) or ""))
    end
  end
  ctx.out(("backfill %s: %d timeframe(s), %d failed, %.1f s\n"):format(pool, #list, failures,
            time.monotonic() - started))
  return failures == 0 and 0 or 1
end

return M
