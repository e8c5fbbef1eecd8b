-- rt.task: spawn, join, all, cancel (incl. <close> and in-flight HTTP), list, current, yield.
local T = require "testlib"
local task = require "rt.task"
local time = require "rt.time"
local http = require "rt.http"
local json = require "rt.json"

local M = os.getenv("MOCK_URL")

local function listed(id)
  for _, t in ipairs(task.list()) do
    if t.id == id then return t end
  end
end

-- ---- spawn / join ----------------------------------------------------------------------------

T.test("spawn runs later, not inline, and returns a handle", function()
  local ran = false
  local h = task.spawn(function() ran = true end)
  T.eq(ran, false, "spawn does not run the function inline")
  T.eq(math.type(h.id), "integer")
  T.eq(h.name, "eval", "a child is named after its parent")
  T.eq(h:status(), "ready")
  T.ok(tostring(h):find("^task %d+ %(eval, ready%)$"), tostring(h))
  T.eq({ h:join() }, { true })
  T.eq(ran, true)
  T.eq(h:status(), "ok")
end)

T.test("spawn passes arguments; join returns true and every result", function()
  local h = task.spawn(function(a, b, c) return a + b, c, nil, "last" end, 1, 2, "x")
  T.eq(table.pack(h:join()), { n = 5, true, 3, "x", nil, "last" })
end)

T.test("join after the task ended still returns its results", function()
  local h = task.spawn(function() return "r1", 2 end)
  time.sleep(0.01)
  T.eq(h:status(), "ok")
  T.eq({ h:join() }, { true, "r1", 2 })
  T.eq({ h:join() }, { true, "r1", 2 }, "and again")
end)

T.test("two tasks joining the same task both get the results", function()
  local h = task.spawn(function()
    time.sleep(0.02)
    return "v"
  end)
  local a, b = task.all(function() return select(2, h:join()) end, function() return select(2, h:join()) end)
  T.eq({ a, b }, { "v", "v" })
end)

T.test("join on an erroring task returns false and the error; the caller lives on", function()
  local h = task.spawn(function() error("kaboom") end)
  local ok, err = h:join()
  T.eq(ok, false)
  T.ok(err:find("kaboom", 1, true), err)
  T.ok(err:find("stack traceback", 1, true), "the error carries a traceback: " .. err)
  T.eq(h:status(), "error")
  local late_ok, late_err = h:join()
  T.eq({ late_ok, late_err }, { false, err }, "a late join sees the same error")
end)

T.test("a task error does not kill the caller", function()
  local h = task.spawn(function() error({ "a table error" }) end)
  time.sleep(0.01)
  T.eq(h:status(), "error")
  local _, err = h:join()
  T.ok(err:find("error object is a table value", 1, true), err)
end)

T.test("join misuse raises", function()
  local me = task.current()
  T.raises(function() me:join() end, "cannot join itself")
  local h = task.spawn(function() time.sleep(0.01) end)
  T.raises(coroutine.wrap(function() h:join() end), "task.join: must be called from a task")
  T.raises(function() task.spawn(42) end, "function expected")
  T.raises(function() h.join({}) end, "rt.task.handle expected")
  h:join()
end)

-- ---- all -------------------------------------------------------------------------------------

T.test("all: first results in order, whatever order the tasks end in", function()
  local a, b, c, d = task.all(
    function() time.sleep(0.03) return "a", "ignored" end,
    function() return "b" end,
    function() time.sleep(0.01) end,
    function() return 4 end)
  T.eq(table.pack(a, b, c, d), { n = 4, "a", "b", nil, 4 })
  T.eq(select("#", task.all()), 0, "no functions, no results")
end)

T.test("all: raises the first error by position, after every task ended", function()
  local finished = false
  local err = T.raises(function()
    task.all(
      function() time.sleep(0.02) return 1 end,
      function() time.sleep(0.01) error("second") end,
      function() error("third, but first to fail") end,
      function() time.sleep(0.05) finished = true end)
  end, "task.all: task 2 failed: .*second")
  T.ok(not err:find("third", 1, true), err)
  T.eq(finished, true, "the slow sibling ran to its end before task.all raised")
end)

T.test("all misuse raises", function()
  T.raises(function() task.all(function() end, 5) end, "function expected")
  T.raises(coroutine.wrap(function() task.all(function() end) end), "task.all: must be called from a task")
end)

-- ---- cancel ----------------------------------------------------------------------------------

T.test("cancel a sleeping task: status cancelled, <close> ran, join gives false, 'cancelled'", function()
  local closed, after = false, false
  local h = task.spawn(function()
    local guard <close> = setmetatable({}, { __close = function() closed = true end })
    time.sleep(10)
    after = true
  end)
  time.sleep(0.01)
  T.eq(h:status(), "parked")
  local t0 = time.monotonic()
  T.eq(task.cancel(h), true)
  T.ok(time.monotonic() - t0 < 0.5, "cancel is immediate")
  T.eq(h:status(), "cancelled")
  T.eq(closed, true, "the <close> variable ran")
  T.eq(after, false)
  T.eq({ h:join() }, { false, "cancelled" })
  T.eq(h:cancel(), false, "cancelling an ended task returns false")
end)

T.test("cancel a task that has not started: it never runs", function()
  local ran = false
  local h = task.spawn(function() ran = true end)
  T.eq(h:cancel(), true)
  time.sleep(0.01)
  T.eq(ran, false)
  T.eq(h:status(), "cancelled")
end)

T.test("a task cannot cancel itself through task.cancel", function()
  T.eq(task.cancel(task.current()), false)
end)

T.test("cancel a task blocked in http.get: prompt, and the engine stays healthy", function()
  T.ok(http.request { method = "DELETE", url = M .. "/_mock/requests" })
  local reached = false
  local h = task.spawn(function()
    http.get(M .. "/echo", { query = { _delay = 5, who = "cancelled" } })
    reached = true
  end)
  -- wait until the mock has the request, so the transfer is really in flight
  for _ = 1, 100 do
    local log = json.decode(assert(http.get(M .. "/_mock/requests?path=/echo")).body)
    if #log > 0 then break end
    time.sleep(0.01)
  end
  local t0 = time.monotonic()
  T.eq(h:cancel(), true)
  T.ok(time.monotonic() - t0 < 0.5, "cancel returned promptly")
  T.eq({ h:join() }, { false, "cancelled" })
  T.eq(reached, false)
  t0 = time.monotonic()
  local res = T.ok(http.get(M .. "/static/hello.json"))
  T.eq(res.status, 200)
  T.ok(time.monotonic() - t0 < 1, "the next request is not stuck behind the cancelled one")
  local log = json.decode(assert(http.get(M .. "/_mock/requests?path=/echo")).body)
  T.eq(#log, 1)
  T.eq(log[1].query, { who = "cancelled" })
end)

T.test("cancel a task parked in join: the joined task is unaffected", function()
  local child = task.spawn(function()
    time.sleep(0.03)
    return "child done"
  end)
  local joiner = task.spawn(function() return child:join() end)
  time.sleep(0.01)
  T.eq(joiner:cancel(), true)
  T.eq({ child:join() }, { true, "child done" })
  T.eq({ joiner:join() }, { false, "cancelled" })
end)

T.test("cancelling a task.all parent cancels its children", function()
  local closed, finished = 0, 0
  local function child()
    local guard <close> = setmetatable({}, { __close = function() closed = closed + 1 end })
    time.sleep(10)
    finished = finished + 1
  end
  local before = #task.list()
  local parent = task.spawn(function() task.all(child, child, child) end)
  time.sleep(0.02)
  T.eq(#task.list(), before + 4, "the parent and its three children are alive")
  T.eq(parent:cancel(), true)
  time.sleep(0)
  T.eq(closed, 3, "every child's <close> ran")
  T.eq(finished, 0)
  T.eq(#task.list(), before, "no child outlives the parent")
  T.eq({ parent:join() }, { false, "cancelled" })
end)

T.test("cancelling a task whose resume is queued frees what it waited on (task.all, join)", function()
  -- ready queue: the test T yields twice so that the child ends and the parent's resume is queued
  -- (P is READY, not parked) when T cancels it; under LSan a leak of the group or the join
  -- waiter fails the suite
  local function until_queued(t)           -- yield until t went from parked to a queued resume
    local parked = false
    for _ = 1, 20 do
      coroutine.yield()
      local st = t:status()
      if st == "parked" then parked = true elseif parked then return st end
    end
  end
  time.sleep(0.01)                         -- nothing else in the ready queue
  local parent = task.spawn(function() task.all(function() return 1 end) end)
  T.eq(until_queued(parent), "ready")
  T.eq(parent:cancel(), true)
  T.eq({ parent:join() }, { false, "cancelled" })
  local quick = task.spawn(function() coroutine.yield() return 1 end)
  local joiner = task.spawn(function() return quick:join() end)
  T.eq(until_queued(joiner), "ready")
  T.eq(joiner:cancel(), true)
end)

T.test("a child cancelled from outside makes task.all raise 'cancelled'", function()
  local victim
  local err = T.raises(function()
    task.all(function() return 1 end, function()
      victim = task.current()
      time.sleep(10)
    end, function()
      time.sleep(0.01)
      victim:cancel()
    end)
  end, "task 2 failed: cancelled")
  T.ok(err)
end)

T.test("an error in a <close> handler of a cancelled task is contained", function()
  local h = task.spawn(function()
    local guard <close> = setmetatable({}, { __close = function() error("close failed") end })
    time.sleep(10)
  end)
  time.sleep(0.01)
  T.eq(h:cancel(), true)
  T.eq(h:status(), "cancelled")
end)

-- ---- list / current / yield ------------------------------------------------------------------

T.test("list shows the running tasks with id, name, state, started, yields", function()
  local h1 = task.spawn(function() time.sleep(10) end)
  local h2 = task.spawn(function() time.sleep(10) end)
  time.sleep(0.01)
  local e1, e2 = listed(h1.id), listed(h2.id)
  T.ok(e1 and e2, "both spawned tasks are listed")
  T.eq(e1.name, "eval")
  T.eq(e1.state, "parked")
  T.eq(e1.yields, 1)
  T.ok(math.abs(e1.started - time.now()) < 5, "started is a wall-clock time")
  local me = listed(task.current().id)
  T.eq(me.state, "running")
  h1:cancel()
  h2:cancel()
  T.eq(listed(h1.id), nil, "ended tasks are not listed")
end)

T.test("current() is the running task, also inside a coroutine of the script's own", function()
  local me = task.current()
  T.eq(me:status(), "running")
  T.eq(me.name, "eval")
  T.eq(coroutine.wrap(function() return task.current().id end)(), me.id)
  local h = task.spawn(function() return task.current().id end)
  T.eq({ h:join() }, { true, h.id })
end)

T.test("a bare coroutine.yield() at task level lets others run", function()
  local ran = false
  local h = task.spawn(function() ran = true end)
  for _ = 1, 5 do
    if ran then break end
    coroutine.yield()
  end
  T.eq(ran, true)
  T.eq(h:status(), "ok")
end)

T.test("coroutines of the script's own still work inside a task", function()
  local gen = coroutine.wrap(function()
    for i = 1, 3 do coroutine.yield(i) end
  end)
  T.eq({ gen(), gen(), gen() }, { 1, 2, 3 })
end)

T.test("task.sleep is rt.time.sleep", function()
  T.ok(task.sleep == time.sleep)
end)

T.test("many short tasks all end", function()
  local before = #task.list()
  local hs = {}
  for i = 1, 200 do hs[i] = task.spawn(function(x) time.sleep(0) return x * 2 end, i) end
  local sum = 0
  for i = 1, 200 do sum = sum + select(2, hs[i]:join()) end
  T.eq(sum, 200 * 201)
  T.eq(#task.list(), before)
end)

T.run()
