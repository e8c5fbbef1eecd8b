-- Budget benchmark body, run by tests/bench/run_budget.py through `candled eval`.
-- Part 1 (mode "share"): N tasks compete for budget `bench` (the mock enforces the same limit) for
--   DURATION seconds; prints "sent ok other seconds".
-- Part 2 (mode "cpu"): CPU per admission: uncontended budget.admit calls, then many tasks queueing
--   on a budget that makes them wait; prints "uncontended_us queued_us".
local budget = require "rt.budget"
local http = require "rt.http"
local task = require "rt.task"
local time = require "rt.time"

local mode = ...
if mode == "share" then
  local url, n, duration = os.getenv("MOCK_URL") .. "/echo", tonumber(os.getenv("TASKS")), tonumber(os.getenv("DURATION"))
  local sent, ok, other, t0 = 0, 0, 0, time.monotonic()
  local function worker()
    while time.monotonic() - t0 < duration do
      sent = sent + 1
      local res = http.get(url, { budget = "bench" })
      if res and res.status == 200 then ok = ok + 1 else other = other + 1 end
    end
  end
  local fns = {}
  for i = 1, n do fns[i] = worker end
  task.all(table.unpack(fns))
  print(sent, ok, other, time.monotonic() - t0)
else
  local N = 200000
  budget.define("free", { windows = { { per = "1s", limit = 1e12 } } })
  local c0 = os.clock()
  for _ = 1, N do budget.admit("free") end
  local uncontended = (os.clock() - c0) / N * 1e6
  -- 2,000 tasks x 10 admissions each through a budget of 10,000/s: most of them queue and are
  -- resumed by the budget's pump (CPU time only: the waiting itself costs none).
  budget.define("busy", { windows = { { per = "1s", limit = 10000 } } })
  local fns = {}
  for i = 1, 2000 do fns[i] = function() for _ = 1, 10 do assert(budget.admit("busy")) end return true end end
  local c1 = os.clock()
  task.all(table.unpack(fns))
  local queued = (os.clock() - c1) / 20000 * 1e6
  print(("%.3f %.3f %d"):format(uncontended, queued, budget.status("busy").metrics.waits))
end
