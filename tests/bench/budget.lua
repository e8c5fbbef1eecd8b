-- Budget benchmark body, run by tests/bench/run_budget.py through `candled eval`.
-- mode "share": N tasks send through budget `bench` (the mock enforces its limit) for DURATION
--   seconds, or until COUNT requests were sent; prints "sent ok other seconds bans effective".
-- mode "cpu": CPU per admission, with the shared file's lock (the persistence of every admission):
--   uncontended budget.admit calls; then admissions that all wait (a full window, then many tasks
--   queueing on it); then, for comparison, an admission log row written as its own SQLite
--   transaction. Prints "uncontended_us waited_us waits admissions sqlite_row_us task_us" (task_us:
--   a task that is admitted at once, spawn to end, the part of waited_us that is not the wait).
local budget = require "rt.budget"
local db = require "rt.db"
local http = require "rt.http"
local task = require "rt.task"
local time = require "rt.time"

local mode = ...
if mode == "share" then
  local url, n = os.getenv("MOCK_URL") .. "/echo", tonumber(os.getenv("TASKS"))
  local duration, count = tonumber(os.getenv("DURATION") or "1e9"), tonumber(os.getenv("COUNT") or "1e18")
  local sent, ok, other, t0 = 0, 0, 0, time.monotonic()
  local function worker()
    while time.monotonic() - t0 < duration and sent < count do
      sent = sent + 1
      local res = http.get(url, { budget = "bench" })
      if res and res.status == 200 then ok = ok + 1 else other = other + 1 end
    end
  end
  local fns = {}
  for i = 1, n do fns[i] = worker end
  task.all(table.unpack(fns))
  local st = budget.status("bench")
  print(sent, ok, other, time.monotonic() - t0, st.metrics.bans, st.windows[1].effective)
else
  local N = 200000
  budget.define("free", { windows = { { per = "1s", limit = 1e12 } } })
  local c0 = os.clock()
  for _ = 1, N do budget.admit("free") end
  local uncontended = (os.clock() - c0) / N * 1e6
  -- Admissions that wait: a window of 5,000 per second is filled, then 5,000 tasks ask for one
  -- admission each, so every one waits, parks and is resumed by the budget's pump when room frees
  -- up (CPU time only: the waiting itself costs none). Baseline: as many tasks admitted at once by
  -- a budget with room (spawn, admit, end), so the difference is what waiting adds. Seven rounds,
  -- alternating; medians.
  local W = 5000
  budget.define("busy", { windows = { { per = "1s", limit = W } } })
  local fns, waited, base, waits = {}, {}, {}, 0
  for r = 1, 7 do
    for i = 1, W do fns[i] = function() return assert(budget.admit("free")) end end
    local c = os.clock()
    task.all(table.unpack(fns))
    base[r] = (os.clock() - c) / W * 1e6
    for _ = 1, W do assert(budget.admit("busy")) end
    local w0 = budget.status("busy").metrics.waits
    for i = 1, W do fns[i] = function() return assert(budget.admit("busy")) end end
    c = os.clock()
    task.all(table.unpack(fns))
    local n = budget.status("busy").metrics.waits - w0
    waited[r] = (os.clock() - c) / n * 1e6
    waits = waits + n
  end
  local function median(t) table.sort(t) return t[(#t + 1) // 2] end
  -- the alternative: one admission log row per admission, each its own write transaction
  db.exec("CREATE TABLE bench_admissions (budget TEXT, t REAL, weight REAL)")
  local M = 5000
  local c2 = os.clock()
  for i = 1, M do db.exec("INSERT INTO bench_admissions VALUES ('bench', ?, 1)", i) end
  local sqlite_row = (os.clock() - c2) / M * 1e6
  print(("%.3f %.3f %d %d %.3f %.3f"):format(uncontended, median(waited), waits, 7 * W, sqlite_row,
                                            median(base)))
end
