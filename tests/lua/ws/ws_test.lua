-- rt.ws against tests/mock/ws_echo.py (MOCK_WS_URL, started by run_with_mock.py --ws-mock): connect,
-- receive as a parking call, send, close, server pings answered, client pings, fragments, limits,
-- the bounded queue, failures as nil, msg, CODE.
local T = require "testlib"
local ws = require "rt.ws"
local task = require "rt.task"
local time = require "rt.time"
local json = require "rt.json"

local W = assert(os.getenv("MOCK_WS_URL"), "MOCK_WS_URL is not set (run through run_with_mock.py --ws-mock)")

T.test("connect, send, receive (echo), close", function()
  local c <close> = assert(ws.connect(W .. "/hello"))
  T.eq(c:state(), "open")
  T.eq(c:receive(2), "hello")
  T.eq(c:send("one"), true)
  T.eq(c:send("two"), true)
  T.eq(c:receive(2), "one")
  T.eq(c:receive(2), "two")
  T.eq(c:send("\0bin\255", true), true)
  T.eq(c:receive(2), "\0bin\255")
  local st = c:stats()
  T.eq({ st.received, st.sent, st.queued }, { 4, 3, 0 })
  c:close()
  T.eq(c:state(), "closed")
  T.fails("CLOSED", c:receive(1))
  T.fails("CLOSED", c:send("late"))
end)

T.test("receive times out and the connection stays usable", function()
  local c <close> = assert(ws.connect(W .. "/echo"))
  local t0 = time.now()
  T.fails("TIMEOUT", c:receive(0.2))
  T.ok(time.now() - t0 >= 0.19, "waited the timeout")
  T.fails("TIMEOUT", c:receive(0))
  c:send("after")
  T.eq(c:receive(2), "after")
end)

T.test("receive parks only its task: others run meanwhile", function()
  local c <close> = assert(ws.connect(W .. "/echo"))
  local got
  local h = task.spawn(function() got = c:receive(5) end)
  local ticks = 0
  for _ = 1, 5 do
    time.sleep(0.01)
    ticks = ticks + 1
  end
  T.eq(got, nil)
  T.raises(function() c:receive(1) end, "another task is already receiving")
  c:send("wake")
  h:join()
  T.eq(got, "wake")
  T.eq(ticks, 5)
end)

T.test("a server close is reported after the buffered messages, with its status", function()
  local c <close> = assert(ws.connect(W .. "/close?after=3&code=1001&reason=going%20away"))
  T.eq(c:receive(2), "m1")
  T.eq(c:receive(2), "m2")
  T.eq(c:receive(2), "m3")
  local msg = T.fails("CLOSED", c:receive(2))
  T.ok(msg:find("1001", 1, true) and msg:find("going away", 1, true), msg)
  T.eq(c:state(), "closed")
end)

T.test("a cut connection (no close frame) ends receive with CLOSED", function()
  local c <close> = assert(ws.connect(W .. "/drop?after=2"))
  T.eq(c:receive(2), "m1")
  T.eq(c:receive(2), "m2")
  T.fails("CLOSED", c:receive(5))
end)

T.test("server pings are answered with the payload", function()
  local c <close> = assert(ws.connect(W .. "/ping?payload=k123"))
  T.eq(c:receive(6), "pong:k123")
end)

T.test("client pings every ping_interval seconds; the pongs count", function()
  local c <close> = assert(ws.connect(W .. "/pingcheck", { ping_interval = 1, idle_timeout = 5 }))
  local m = c:receive(4)
  T.ok(m and m:match("^ping:"), tostring(m))
  time.sleep(0.1)
  T.ok(c:stats().pongs >= 1, "pong counted")
end)

T.test("fragments are joined into one message; a big one arrives whole", function()
  local c <close> = assert(ws.connect(W .. "/frag"))
  T.eq(c:receive(2), "abcdefghi")
  local b <close> = assert(ws.connect(W .. "/big?size=300000"))
  local m = b:receive(5)
  T.eq(#m, 300000)
end)

T.test("a message over max_message closes with TOO_LARGE", function()
  local c <close> = assert(ws.connect(W .. "/big?size=5000", { max_message = 1000 }))
  T.fails("TOO_LARGE", c:receive(5))
end)

T.test("a full queue pauses reading; nothing is lost, order kept", function()
  local n = 3000
  local c <close> = assert(ws.connect(W .. "/burst?n=" .. n .. "&size=200", { queue = 8 }))
  time.sleep(0.3)                                   -- the burst arrives while nobody receives
  T.ok(c:stats().queued <= 16, "queue stays bounded: " .. c:stats().queued)
  for i = 1, n do
    local m = c:receive(5)
    if not m or tonumber(m:match("^(%d+):")) ~= i then T.eq(m and m:match("^(%d+):"), tostring(i)) end
  end
  T.ok(c:stats().paused >= 1, "reading was paused")
  T.fails("TIMEOUT", c:receive(0.05))
end)

T.test("handshake headers are sent", function()
  local c <close> = assert(ws.connect(W .. "/headers", { headers = { ["X-Test"] = "v1" } }))
  local h = json.decode(c:receive(2))
  T.eq(h["x-test"], "v1")
  T.eq(h.upgrade, "websocket")
end)

T.test("failures: refused, rejected handshake, bad URL, misuse", function()
  local port = W:match(":(%d+)$")
  T.fails("CONNECT", ws.connect("ws://127.0.0.1:1/x", { timeout = 3 }))   -- lws gives no errno
  T.fails("HANDSHAKE", ws.connect(W .. "/reject", { timeout = 3 }))
  T.fails("EINVAL", ws.connect("http://127.0.0.1:" .. port .. "/echo"))
  T.fails("EINVAL", ws.connect("ws://127.0.0.1:99999/echo"))
  T.raises(function() ws.connect(W .. "/echo", { bogus = 1 }) end, "bogus")
  T.raises(function() ws.connect(W .. "/echo", { timeout = -1 }) end, "timeout")
  T.raises(function() ws.connect(W .. "/echo", { idle_timeout = 5 }) end, "ping_interval")
  local c <close> = assert(ws.connect(W .. "/echo"))
  T.raises(function() c:send(42) end, "string expected")
  T.raises(function() c:receive(-1) end, "timeout")
end)

T.test("a silent server: receive times out; a handshake never answered: connect times out", function()
  local s <close> = assert(ws.connect(W .. "/silent"))
  T.fails("TIMEOUT", s:receive(0.2))
  local t0 = time.now()
  T.fails("TIMEOUT", ws.connect(W .. "/hang", { timeout = 0.3 }))
  T.ok(time.now() - t0 < 2, "gave up at the timeout")
  local c <close> = assert(ws.connect(W .. "/echo"))          -- the engine is still fine
  c:send("ok")
  T.eq(c:receive(2), "ok")
end)

T.test("a cancelled receiver leaves the connection usable; many connections at once", function()
  local c <close> = assert(ws.connect(W .. "/echo"))
  local h = task.spawn(function() c:receive(10) end)
  time.sleep(0.02)
  h:cancel()
  time.sleep(0.01)
  c:send("still")
  T.eq(c:receive(2), "still")
  local conns = {}
  for i = 1, 20 do conns[i] = assert(ws.connect(W .. "/echo")) end
  for i = 1, 20 do conns[i]:send("c" .. i) end
  for i = 1, 20 do T.eq(conns[i]:receive(2), "c" .. i) end
  for i = 1, 20 do conns[i]:close() end
end)

T.test("connections left open are closed at shutdown (the eval exit checks the handles)", function()
  _G.leftover = assert(ws.connect(W .. "/echo"))
end)

T.run()
