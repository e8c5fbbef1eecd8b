-- Backup benchmark body (issue 14), run by tests/bench/run_backup.py through `candled eval`: while
-- a collector task upserts 20 candles every 10 ms, a probe task sleeps 1 ms at a time and records
-- how late each wake-up is (what any task or request waits for the loop). Argument "backup DEST":
-- take a verified backup meanwhile (candled.backup, the daemon's own path); "baseline SECONDS": the
-- same load without a backup for that long. Prints
-- "mode seconds wakeups p50_ms p99_ms max_ms rows_written backup_bytes".
local db = require "rt.db"
local task = require "rt.task"
local time = require "rt.time"

local mode, arg = ...
local done, rows = false, 0

local function collector()
  local ts = mode == "backup" and 2000000000 or 2100000000   -- new rows in both runs
  while not done do
    local batch = {}
    for i = 1, 20 do
      ts = ts + 60
      batch[i] = { source = "bench", instrument = "LIVE", timeframe = "1m", ts = ts, open = 1, high = 2, low = 0.5,
                   close = 1.5, volume = 10 }
    end
    local n = db.upsert("candles", batch, { keys = { "source", "instrument", "timeframe", "ts" } })
    rows = rows + (n or 0)
    time.sleep(0.01)
  end
end

local late = {}
local function probe()
  while not done do
    local a = time.monotonic()
    time.sleep(0.001)
    late[#late + 1] = (time.monotonic() - a - 0.001) * 1000
  end
end

task.spawn(collector)
task.spawn(probe)
time.sleep(0.2)
local t0, size = time.monotonic(), 0
if mode == "backup" then
  local info = assert(require("candled.backup").take("manual", arg))
  size = info.size
else
  time.sleep(tonumber(arg))
end
local secs = time.monotonic() - t0
done = true
time.sleep(0.05)
table.sort(late)
local function pct(p) return late[math.max(1, math.ceil(#late * p))] or 0 end
print(("%s %.3f %d %.2f %.2f %.2f %d %d"):format(mode, secs, #late, pct(0.5), pct(0.99), late[#late] or 0, rows, size))
