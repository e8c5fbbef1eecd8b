-- Migration benchmark body (issue 18), run by tests/bench/run_migrate.py through `candled eval` on
-- a database of the layout before: while the runtime moves the old rows in slices, this task sleeps
-- 1 ms at a time and records how late each wake-up is (what any task or request waits for the
-- loop). Prints "rows seconds rows_per_s wakeups p50_ms p99_ms max_ms". With an argument (seconds)
-- and nothing to migrate, the same sleeps for that long: the baseline of the same machine.
local db = require "rt.db"
local time = require "rt.time"

local function left()
  return db.first("SELECT count(*) AS n FROM sqlite_master WHERE name IN ('candles_v4', 'trades_v4')").n
end
local rows = db.first("SELECT (SELECT count(*) FROM candles) + (SELECT count(*) FROM trades) AS n").n
local baseline = tonumber((...))
local t0, late = time.monotonic(), {}
while (baseline and time.monotonic() - t0 < baseline) or (not baseline and left() > 0) do
  local a = time.monotonic()
  time.sleep(0.001)
  late[#late + 1] = (time.monotonic() - a - 0.001) * 1000
end
local secs = time.monotonic() - t0
table.sort(late)
local function pct(p) return late[math.max(1, math.ceil(#late * p))] or 0 end
print(("%d %.3f %.0f %d %.2f %.2f %.2f"):format(rows, secs, rows / secs, #late, pct(0.5), pct(0.99), late[#late] or 0))
