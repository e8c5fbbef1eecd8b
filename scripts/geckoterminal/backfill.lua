-- GeckoTerminal OHLCV history: pages back with before_timestamp (1000 bars a call, "backfill"
-- priority, so realtime calls go first) until each series of every active watchlist pool reaches
-- history_days (default 180) or the start of the pool's history. Where that start is does not
-- depend on what the API's `limit` counts (rows returned or intervals spanned: its documentation
-- does not say): nothing is older than the interval of the pool's pool_created_at, and a page with
-- no row at all ends a pool whose creation time is unknown (one call more). The cursor is saved with every
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

local PENDING = [[SELECT b.instrument, b.timeframe FROM backfill b LEFT JOIN gt_pools p ON p.pool = b.instrument
  WHERE b.source = ? AND b.complete = 0 AND coalesce(p.status, 'active') <> 'gone'
  ORDER BY b.instrument, b.timeframe]]
local UNKNOWN = [[SELECT DISTINCT b.instrument FROM backfill b LEFT JOIN gt_pools p ON p.pool = b.instrument
  WHERE b.source = ? AND b.complete = 0 AND p.pool IS NULL ORDER BY b.instrument]]

-- Page one series back to its cursor's target, or to `stop` (a bar time: the command's --days)
-- when that comes first. `on_page(cursor)` is called after each stored page. Returns the cursor,
-- or nil, message, code (the pages stored so far stay stored).
function M.history(o, pool, tf, on_page, stop)
  local step = gt.TIMEFRAMES[tf][3]
  local c = assert(series.cursor(gt.SOURCE, pool, tf), "no backfill cursor")
  local created = gt.created(pool)
  local first = created and time.floor(created, step)     -- the interval the pool was created in
  -- nothing stored yet: start below the forming bar, so a full page is 1000 closed bars
  local before = c.before or series.oldest(gt.SOURCE, pool, tf) or time.floor(time.now(), step)
  while not c.complete do
    if before <= c.target or (first and before <= first) then
      -- what is stored reaches the target, or the interval the pool was created in: no call
      c.complete, c.before = true, before
      if before > c.target then c.first_ts = before end
      series.save_cursor(gt.SOURCE, pool, tf, c)
      if on_page then on_page(c) end
      break
    end
    if stop and before <= stop then break end
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
      if oldest and oldest <= c.target then
        c.complete = true
      elseif oldest and first and oldest <= first then      -- the pool's first interval
        c.complete, c.first_ts = true, oldest
      elseif not oldest then
        -- no closed bar before `before`: where `limit` counts rows, nothing is older; where it
        -- counts intervals, the page spanned MAX_LIMIT empty ones, so go on below them while the
        -- pool's creation says there can be more
        local below = before - gt.MAX_LIMIT * step
        if first and below > first and below > c.target then
          c.before = below
        else
          c.complete, c.first_ts = true, series.oldest(gt.SOURCE, pool, tf) or before
        end
      end
      series.save_cursor(gt.SOURCE, pool, tf, c)
    end)
    before = c.before
    if on_page then on_page(c) end
  end
  return c
end

-- Fetch the gaps of one series found at or after `from` again. Returns bars stored and empty
-- bars recorded, or nil, message, code. Exact whatever `limit` counts: a page reached the stored
-- bar below the gap when it holds a row at or before it, or when it asked for all the intervals
-- left and came back short; a page of empty intervals moves on below them.
function M.fill_gaps(o, pool, tf, from)
  local step = gt.TIMEFRAMES[tf][3]
  local stored, empty = 0, 0
  for _, gap in ipairs(series.gaps(gt.SOURCE, pool, tf, step, from)) do
    series.gap_event("found", gt.SOURCE, pool, tf, gap)
    local before, top = gap.before, gap.before     -- top: the stored bar above what is still unseen
    while before > gap.after + step do
      local left = (before - gap.after) // step
      local limit = math.min(gt.MAX_LIMIT, left)   -- reaches gap.after
      local rows, sent, code = gt.ohlcv(o, pool, tf, { before = before, limit = limit, priority = "backfill" })
      if not rows then return nil, sent, code end
      local inside = {}
      for _, r in ipairs(rows) do if r[4] > gap.after then inside[#inside + 1] = r end end
      local reached = #inside < #rows or (limit == left and sent < limit)
      db.tx(function()
        stored = stored + gt.store_candles(inside)
        empty = empty + series.record_empties(gt.SOURCE, pool, tf, step, gt.bar_times(inside),
                                              reached and gap.after or nil, top)
      end)
      if reached then break end
      if inside[1] then before, top = inside[1][4], inside[1][4]
      else before = before - limit * step end
    end
    series.gap_event("filled", gt.SOURCE, pool, tf, gap)
  end
  return stored, empty
end

-- History, then gaps, for one series. Gaps are searched from where the last search ended
-- (minus the settle time), or from the start (or `stop`, when later) when `full`.
function M.series(o, pool, tf, on_page, full, stop)
  local c, err, code = M.history(o, pool, tf, on_page, stop)
  if not c then return nil, err, code end
  local step = gt.TIMEFRAMES[tf][3]
  local checked = series.cursor(gt.SOURCE, pool, tf).gaps_checked
  local from = (not full and checked) or math.max(c.first_ts or c.target, stop or c.target)
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
  -- pools that `candled backfill` asked for while this daemon runs: the command leaves the
  -- lookup (name, tokens, creation time) to the daemon's budget
  for _, r in ipairs(db.query(UNKNOWN, gt.SOURCE)) do
    local ok, err, code = gt.lookup(o, r.instrument)
    if not ok then
      if code == "NOT_FOUND" then gt.pool_gone(o, r.instrument, err)
      elseif FATAL[code] then return nil, err, code
      else log.warn("pool lookup failed", { pool = r.instrument, error = err, code = code }) end
    end
  end
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
  local function unknown() error(("backfill: pool %s is not known to GeckoTerminal"):format(pool), 0) end
  local function gone()
    local r = db.first("SELECT status FROM gt_pools WHERE pool = ?", pool)
    return r and r.status == "gone"
  end
  if not ctx.daemon then
    -- the pool must exist: one call, which also stores its name, tokens and creation time
    local ok, err, code = gt.lookup(o, pool)
    if not ok then
      if code == "NOT_FOUND" then unknown() end
      error("backfill: " .. err, 0)
    end
  end
  -- with a daemon running, no call from here (its budget is the one that counts): a pool it does
  -- not know yet is looked up by its backfill script
  local cmd = setmetatable({ history_days = days }, { __index = o })   -- what this command fetches
  local now, started = time.now(), time.monotonic()
  local failures = 0
  if ctx.daemon then
    ctx.out("a daemon is running on this database: it does the backfill on its budget (starting within a\n" ..
              "minute); following its progress. Interrupting this only stops following.\n")
  end
  for _, tf in ipairs(list) do
    local step = gt.TIMEFRAMES[tf][3]
    local target = gt.target(cmd, tf, now)
    local c0 = series.want(gt.SOURCE, pool, tf, target)
    local rows0, pages0 = c0.rows or 0, c0.pages or 0
    local span = (c0.before or time.floor(now, step)) - target
    local function progress(c)
      if not ctx.tty then return end
      local done = (c0.before or time.floor(now, step)) - (c.before or now)
      ctx.err(("\r%-4s [%s] %3d%%  %d pages  %d bars "):format(tf, bar(done, span, 30),
        span > 0 and math.floor(100 * math.min(done / span, 1)) or 100, c.pages - pages0, c.rows - rows0))
    end
    local fresh, c, e, ecode = 0, nil, nil, nil
    if ctx.daemon then
      -- the daemon's backfill script takes every incomplete cursor; gaps are searched from the target
      series.recheck_gaps(gt.SOURCE, pool, tf, target)
      repeat
        if gone() then unknown() end
        c = series.cursor(gt.SOURCE, pool, tf)
        progress(c)
        local done = c.complete or (c.before and c.before <= target)
        if not done then time.sleep(0.5) end
      until done
      c.gap_rows = 0
    else
      -- up to the present, then back to this command's target (deeper history is the daemon's)
      fresh, e, ecode = require("geckoterminal.ohlcv").update(cmd, pool, tf)
      if fresh then c, e, ecode = M.series(cmd, pool, tf, progress, true, target) end
    end
    if ctx.tty then ctx.err("\n") end
    if not c then
      failures = failures + 1
      ctx.out(("%s %s: failed: %s (%s)\n"):format(pool, tf, e, tostring(ecode)))
      if FATAL[ecode] then break end
    else
      local range = db.first([[SELECT min(ts) AS lo, max(ts) AS hi, count(*) AS n FROM candles
          WHERE source = ? AND instrument = ? AND timeframe = ? AND ts >= ?]], gt.SOURCE, pool, tf, target)
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
