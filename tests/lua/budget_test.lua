-- rt.budget and budgeted rt.http: windows, sharing, priorities, queue bounds, 429 pause, 418 ban,
-- retries, the circuit breaker, header reconciliation, alerts and metrics. The mock enforces a
-- strict limiter of its own where the test needs one (tests/mock/mock_http.py, /_mock/limiter).
local T = require "testlib"
local alert = require "rt.alert"
local budget = require "rt.budget"
local db = require "rt.db"
local http = require "rt.http"
local json = require "rt.json"
local task = require "rt.task"
local time = require "rt.time"

local M = assert(os.getenv("MOCK_URL"), "MOCK_URL is not set (run through tests/run_with_mock.py)")

local function mock(method, path, body)
  local res = assert(http.request { method = method, url = M .. path, body = body and json.encode(body) })
  assert(res.status == 200, path .. ": " .. res.status .. " " .. res.body)
  return json.decode(res.body)
end

local function reset() mock("POST", "/_mock/reset") end

local function open_alert(kind, subject)
  for _, a in ipairs(alert.list()) do
    if a.kind == kind and a.subject == subject then return a end
  end
end

T.test("status: windows with capacity less the reserve, kinds, breaker, metrics", function()
  local st = budget.status("reserved")
  T.eq(st.name, "reserved")
  T.eq(#st.windows, 3)
  T.eq(st.windows[1].per, "1m")
  T.eq(st.windows[1].kind, "sliding")
  T.near(st.windows[1].capacity, 90, 1e-9)
  T.eq(st.windows[2].per, "1d")
  T.eq(st.windows[2].kind, "fixed")
  T.eq(st.windows[3].per, "month")
  T.ok(st.windows[3].resets_at > time.now(), "a month window says when it resets")
  T.eq(st.breaker.state, "closed")
  T.eq(st.queued, 0)
  T.eq(st.metrics.requests, 0)
  local all = budget.status()
  T.ok(all.shared and all.prio and all.reserved, "status() lists every budget by name")
  T.eq(budget.names()[1], "banned")
end)

T.test("misuse raises: unknown budget, bad priority, weight without budget, weight over capacity", function()
  T.raises(function() http.get(M .. "/echo", { budget = "nope" }) end, "unknown budget 'nope'")
  T.raises(function() http.get(M .. "/echo", { budget = "shared", priority = "urgent" }) end,
           "realtime, backfill or discovery")
  T.raises(function() http.get(M .. "/echo", { weight = 2 }) end, "need a 'budget'")
  T.raises(function() budget.admit("nope") end, "unknown budget")
  T.raises(function() budget.admit("shared", { weight = -1 }) end, "weight. must be between")
  T.raises(function() budget.admit("shared", { weight = math.huge }) end, "weight. must be between")
  T.raises(function() budget.admit("shared", { weight = 0 / 0 }) end, "weight. must be between")
  T.fails("EINVAL", budget.admit("shared", { weight = 9 }))
  T.fails("EINVAL", http.get(M .. "/echo", { budget = "shared", weight = 50 }))
end)

T.test("tasks sharing a budget never exceed it (the mock's strict limiter sees no 429)", function()
  reset()
  mock("POST", "/_mock/limiter", { limit = 8, window = 1, ban = 5 })
  local fns = {}
  for i = 1, 4 do
    fns[i] = function()
      local n = 0
      for _ = 1, 5 do
        local res, err = http.get(M .. "/echo", { budget = "shared" })
        assert(res, err)
        assert(res.status == 200, "status " .. res.status)
        n = n + 1
      end
      return n
    end
  end
  local t0 = time.monotonic()
  T.eq({ task.all(table.unpack(fns)) }, { 5, 5, 5, 5 })
  local lim = mock("GET", "/_mock/limiter")
  T.eq(lim.admitted, 20)
  T.eq(lim.r429, 0)
  T.eq(lim.r418, 0)
  T.ok(lim.max_used <= 8, "at most 8 in any window, saw " .. lim.max_used)
  T.ok(time.monotonic() - t0 >= 2, "20 requests at 8/s need two extra windows")
  local st = budget.status("shared")
  T.eq(st.metrics.requests, 20)
  T.ok(st.metrics.waits > 0 and st.metrics.wait_seconds > 0, "requests waited: " .. st.metrics.waits)
  mock("DELETE", "/_mock/limiter")
end)

T.test("priorities: realtime before backfill before discovery, whatever the arrival order", function()
  T.eq(budget.admit("prio"), true)
  T.eq(budget.admit("prio"), true)                 -- the window is full now
  local order = {}
  local function waiter(prio)
    return function()
      assert(budget.admit("prio", { priority = prio }))
      order[#order + 1] = prio
    end
  end
  local hs = {}
  for _, p in ipairs({ "discovery", "backfill", "realtime", "discovery", "backfill", "realtime" }) do
    hs[#hs + 1] = task.spawn(waiter(p))
  end
  for _, h in ipairs(hs) do assert(h:join()) end
  T.eq(order, { "realtime", "realtime", "backfill", "backfill", "discovery", "discovery" })
  T.eq(budget.status("prio").waiting.realtime, 0)
end)

T.test("the queue is bounded: overflow is QUEUE_FULL, not a crash", function()
  T.eq(budget.admit("small_queue"), true)
  local hs = { task.spawn(budget.admit, "small_queue"), task.spawn(budget.admit, "small_queue") }
  time.sleep(0.05)
  T.eq(budget.status("small_queue").queued, 2)
  local ok, err, code = budget.admit("small_queue")
  T.eq(ok, nil)
  T.eq(code, "QUEUE_FULL")
  T.ok(err:find("queue full"), err)
  for _, h in ipairs(hs) do h:cancel() end
  time.sleep(0)
  T.eq(budget.status("small_queue").queued, 0, "cancelled waiters leave the queue")
end)

T.test("a 429 pauses every request of the budget for Retry-After, then the request is sent again", function()
  reset()
  mock("POST", "/_mock/faults", { path = "/echo", status = 429, retry_after = 1, times = 1 })
  local t0 = time.monotonic()
  local first = task.spawn(function() return http.get(M .. "/echo", { budget = "throttled", query = { n = 1 } }) end)
  time.sleep(0.2)                                   -- the 429 has arrived: the budget is paused
  local st = budget.status("throttled")
  T.ok(st.paused_for and st.paused_for > 0.5, "paused after the 429")
  local other = T.ok(http.get(M .. "/echo", { budget = "throttled", query = { n = 2 } }))
  T.eq(other.status, 200)
  T.ok(time.monotonic() - t0 >= 1, "a second task waited out the pause too")
  local ok, res = first:join()
  T.ok(ok and res and res.status == 200, "the throttled request was re-queued, not failed")
  local log = mock("GET", "/_mock/requests?path=/echo")
  T.eq(#log, 3, "the 429, its resend and the other request")
  T.ok(log[2].time - log[1].time >= 0.95, "nothing was sent during the pause")
  T.eq(budget.status("throttled").metrics.throttled, 1)
  T.eq(open_alert("rate_limited", "throttled"), nil, "the alert resolved once requests went through")
  T.eq(db.first("SELECT count(*) AS n FROM alerts WHERE kind = 'rate_limited' AND subject = 'throttled'").n, 1)
end)

T.test("repeated 429s are a ban", function()
  reset()
  mock("POST", "/_mock/faults", { path = "/echo", status = 429, retry_after = 0, times = -1 })
  local res, err, code = http.get(M .. "/echo", { budget = "throttled" })
  T.eq(res, nil)
  T.eq(code, "BANNED")
  T.ok(err:find("3 consecutive 429"), err)
  T.eq(#mock("GET", "/_mock/requests?path=/echo"), 3)
  T.ok(open_alert("banned", "throttled"), "a ban alert is open")
  time.sleep(1.1)
  mock("DELETE", "/_mock/faults")
  T.eq(T.ok(http.get(M .. "/echo", { budget = "throttled" })).status, 200)
  T.eq(open_alert("banned", "throttled"), nil, "the ban alert resolved when the ban ended")
end)

T.test("a 418 bans the budget: every request fails fast with BANNED until it ends; it is persisted", function()
  reset()
  mock("POST", "/_mock/faults", { path = "/echo", status = 418, retry_after = 1, times = 1 })
  T.fails("BANNED", http.get(M .. "/echo", { budget = "banned" }))
  local n = #mock("GET", "/_mock/requests")
  local err = T.fails("BANNED", http.get(M .. "/static/hello.json", { budget = "banned" }))
  T.ok(err:find("banned until"), err)
  T.eq(#mock("GET", "/_mock/requests"), n, "nothing was sent during the ban")
  local row = db.first("SELECT start, note FROM budget_state WHERE budget = 'banned' AND key = 'ban'")
  T.ok(row and row.start > time.now(), "the ban is stored with its end")
  T.ok(budget.status("banned").banned_until, "status shows the ban")
  time.sleep(1.1)
  T.eq(T.ok(http.get(M .. "/echo", { budget = "banned" })).status, 200)
end)

T.test("5xx and resets are retried with backoff; retries are counted", function()
  reset()
  -- The reset must hit a fresh connection: on a reused one libcurl itself silently sends the request
  -- again, and the test would count one retry or two by chance. So these requests go to a host name
  -- no earlier request used (no idle connection to reuse), and the 503 closes its connection.
  local fresh = M:gsub("//127%.0%.0%.1:", "//localhost:")
  T.ok(fresh ~= M, "MOCK_URL is on 127.0.0.1: " .. M)
  mock("POST", "/_mock/faults", { path = "/echo", status = 503, times = 1, headers = { Connection = "close" } })
  mock("POST", "/_mock/faults", { path = "/echo", reset = true, after = 1, times = 1 })
  local res = T.ok(http.get(fresh .. "/echo", { budget = "flaky" }))
  T.eq(res.status, 200)
  T.eq(#mock("GET", "/_mock/requests?path=/echo"), 3)
  T.eq(budget.status("flaky").metrics.retries, 2)
  mock("POST", "/_mock/faults", { path = "/echo", status = 500, times = -1 })
  res = T.ok(http.get(M .. "/echo", { budget = "flaky" }))
  T.eq(res.status, 500, "after the last retry the error status is the result")
end)

T.test("the breaker opens after repeated failures, probes after the cooldown, closes on success", function()
  reset()
  mock("POST", "/_mock/faults", { path = "/echo", status = 503, times = -1 })
  for _ = 1, 3 do T.eq(T.ok(http.get(M .. "/echo", { budget = "dead" })).status, 503) end
  local n = #mock("GET", "/_mock/requests")
  local err = T.fails("BREAKER_OPEN", http.get(M .. "/echo", { budget = "dead" }))
  T.ok(err:find("circuit breaker open"), err)
  T.eq(#mock("GET", "/_mock/requests"), n, "an open breaker sends nothing")
  T.eq(budget.status("dead").breaker.state, "open")
  T.ok(open_alert("breaker_open", "dead"), "breaker alert open")
  time.sleep(1.05)
  T.eq(budget.status("dead").breaker.state, "half_open")
  T.eq(T.ok(http.get(M .. "/echo", { budget = "dead" })).status, 503, "the probe fails")
  T.fails("BREAKER_OPEN", http.get(M .. "/echo", { budget = "dead" }))
  mock("DELETE", "/_mock/faults")
  time.sleep(1.05)
  local a = task.spawn(http.get, M .. "/echo", { budget = "dead" })
  local b = task.spawn(http.get, M .. "/echo", { budget = "dead" })
  local _, ra = a:join()
  local _, rb = b:join()
  T.eq(ra.status, 200)
  T.eq(rb.status, 200, "a request behind the probe waited for it, then went")
  T.eq(budget.status("dead").breaker.state, "closed")
  T.eq(open_alert("breaker_open", "dead"), nil, "breaker alert resolved")
end)

T.test("a used-weight header raises the local count to the server's", function()
  reset()
  mock("POST", "/_mock/limiter", { limit = 10, window = 2, used_header = "X-Used-Weight-2s" })
  for _ = 1, 6 do T.ok(http.get(M .. "/echo")) end       -- another client on the same IP
  T.ok(http.get(M .. "/echo", { budget = "header" }))
  T.eq(budget.status("header").windows[1].used, 7)
  local t0 = time.monotonic()
  for _ = 1, 4 do T.eq(T.ok(http.get(M .. "/echo", { budget = "header" })).status, 200) end
  T.ok(time.monotonic() - t0 > 1, "the fourth request waited for the server-side window")
  T.eq(mock("GET", "/_mock/limiter").r429, 0)
end)

-- n tasks, each sending `each` requests through budget `name`; every one must end in a 200.
local function crowd(name, n, each)
  local fns = {}
  for i = 1, n do
    fns[i] = function()
      for _ = 1, each do
        local res, err, code = http.get(M .. "/echo", { budget = name })
        assert(res, tostring(code) .. ": " .. tostring(err))
        assert(res.status == 200, "status " .. res.status)
      end
      return each
    end
  end
  local got = { task.all(table.unpack(fns)) }
  for i = 1, n do T.eq(got[i], each, "task " .. i) end
end

T.test("429s to requests already on the wire are one incident: no self-ban, no 418", function()
  reset()
  -- 8 requests leave at once; the server takes 5 and answers the rest 429, late (0.3 s): when the
  -- first 429 comes back the other two are on the wire. Counted as repeated 429s, they would ban
  -- the budget (ban.after_429s = 2).
  mock("POST", "/_mock/limiter", { limit = 5, window = 1, kind = "fixed", ban = 30, delay_429 = 0.3 })
  crowd("inflight", 8, 2)
  local lim = mock("GET", "/_mock/limiter")
  T.eq(lim.r418, 0)
  T.ok(lim.inflight_429 >= 2, "429s met requests already on the wire: " .. lim.inflight_429)
  local st = budget.status("inflight")
  T.eq(st.metrics.bans, 0)
  T.eq(st.banned_until, nil)
  T.ok(st.metrics.throttled >= 3, "three 429s at least: " .. st.metrics.throttled)
  T.ok(st.windows[1].effective <= 6, "the limit was learned: " .. st.windows[1].effective)
  mock("DELETE", "/_mock/limiter")
end)

T.test("a declared limit above the server's is learned, then probed back up when the server allows it", function()
  reset()
  mock("POST", "/_mock/limiter", { limit = 6, window = 1, kind = "fixed", ban = 30 })   -- 60% of declared
  crowd("learn", 2, 9)
  local lim = mock("GET", "/_mock/limiter")
  T.eq(lim.r418, 0)
  T.eq(lim.admitted, 18)
  T.ok(lim.max_used <= 6)
  local st = budget.status("learn")
  T.eq(st.metrics.bans, 0)
  T.eq(st.windows[1].declared, 10)
  T.eq(st.windows[1].limit, 10, "limit stays the declared figure")
  T.ok(st.windows[1].learned and st.windows[1].effective <= 7, "learned: " .. st.windows[1].effective)
  T.ok(st.windows[1].capacity == st.windows[1].effective, "the capacity follows the learned limit")
  local a = open_alert("limit_learned", "learn")
  T.ok(a, "a limit_learned alert is open")
  T.ok(a.message:find("declared 10, learned [4-7]"), a.message)
  -- the server restores its allowance: clean windows raise the limit back to the declared one
  mock("POST", "/_mock/limiter", { limit = 10, window = 1, kind = "fixed", ban = 30 })
  local t0 = time.monotonic()
  while budget.status("learn").windows[1].learned and time.monotonic() - t0 < 20 do crowd("learn", 2, 2) end
  st = budget.status("learn")
  T.eq(st.windows[1].effective, 10, "back at the declared limit")
  T.eq(st.windows[1].learned, false)
  T.eq(mock("GET", "/_mock/limiter").r418, 0)
  T.eq(open_alert("limit_learned", "learn"), nil, "the alert resolved")
  mock("DELETE", "/_mock/limiter")
end)

T.test("without Retry-After the pause lasts until the exceeded window has passed", function()
  reset()
  -- GeckoTerminal style: no Retry-After; a request inside the server's penalty is a 418. Another
  -- client on the same IP has used the server's window, so the budget has nothing to learn from:
  -- only the pause stands between its retry and a ban.
  mock("POST", "/_mock/limiter", { limit = 3, window = 2, ban = 30, retry_after = "none" })
  for _ = 1, 3 do T.eq(T.ok(http.get(M .. "/echo")).status, 200) end
  crowd("nora", 1, 3)
  local lim = mock("GET", "/_mock/limiter")
  T.ok(lim.r429 >= 1, "the server said 429 without Retry-After")
  T.eq(lim.r418, 0, "nothing was sent inside the server's pause")
  local log = mock("GET", "/_mock/requests?path=/echo")
  for i, e in ipairs(log) do
    if e.status == 429 then
      T.ok(log[i + 1].time - e.time >= 1.9, "the next request waited for the window")
    end
  end
  T.eq(budget.status("nora").metrics.bans, 0)
  mock("DELETE", "/_mock/limiter")
end)

T.test("define: a script's default budget, unless config declares one; validated like config", function()
  local st = budget.define("from_script", { windows = { { per = "1m", limit = 50 } }, reserve = 0.2 })
  T.eq(st.windows[1].capacity, 40)
  T.eq(budget.define("from_script", { windows = { { per = "1m", limit = 1 } } }).windows[1].limit, 50,
       "defined once: the first definition stays")
  T.eq(budget.define("shared", { windows = { { per = "1m", limit = 1 } } }).windows[1].limit, 8, "config wins")
  T.ok(budget.admit("from_script"))
  T.raises(function() budget.define("bad1", { windows = { { per = "1m", limit = "x" } } }) end,
           "budget.define%('bad1'%): windows%[1%]%.limit: expected a number")
  T.raises(function() budget.define("bad2", { windows = {} }) end, "at least one window")
  T.raises(function() budget.define("bad3", { windows = { { per = "fortnight", limit = 1 } } }) end,
           "windows%[1%]%.per")
  T.raises(function() budget.define("bad4", { window = {} }) end, "unknown key")
  T.eq(budget.status().bad2, nil, "a rejected definition leaves nothing behind")
end)

T.test("metrics are persisted per budget and minute", function()
  time.sleep(0)
  local row
  for _ = 1, 30 do                                          -- flushed every 10 s at most
    row = db.first("SELECT sum(requests) AS n, sum(throttled) AS t FROM budget_metrics WHERE budget = 'shared'")
    if row and row.n then break end
    time.sleep(0.5)
  end
  T.eq(row.n, 20)
end)

T.run()
