-- rt.http: results, query encoding, transport failures as nil/msg/CODE, keep-alive, concurrency,
-- and misuse that raises.
local T = require "testlib"
local http = require "rt.http"
local json = require "rt.json"
local task = require "rt.task"
local time = require "rt.time"

local M = assert(os.getenv("MOCK_URL"), "MOCK_URL is not set (run through tests/run_with_mock.py)")

local function echo(opts)
  opts = opts or {}
  local res, err, code = http.request(opts)
  T.ok(res, err and (err .. " " .. tostring(code)))
  T.eq(res.status, 200)
  return json.decode(res.body), res
end

T.test("GET returns status, body, lower-case headers, time and url", function()
  local url = M .. "/static/hello.json"
  local res = T.ok(http.get(url))
  T.eq(res.status, 200)
  T.eq(math.type(res.status), "integer")
  T.eq(res.body, '{"hello":"world","n":42}\n')
  T.eq(res.headers["content-type"], "application/json")
  T.eq(res.headers["content-length"], tostring(#res.body))
  for name in pairs(res.headers) do T.eq(name, name:lower(), "header names are lower-case") end
  T.ok(type(res.time) == "number" and res.time >= 0 and res.time < 5, "res.time: " .. tostring(res.time))
  T.eq(res.url, url)
end)

T.test("query table: keys sorted, values percent-encoded", function()
  local body, res = echo { url = M .. "/echo", query = { b = "x y", a = "1&2=3", c = true, n = 5, u = "é/~-._" } }
  T.eq(body.raw_query, "a=1%262%3D3&b=x%20y&c=true&n=5&u=%C3%A9%2F~-._")
  T.eq(body.query, { a = "1&2=3", b = "x y", c = "true", n = "5", u = "é/~-._" })
  T.eq(res.url, M .. "/echo?a=1%262%3D3&b=x%20y&c=true&n=5&u=%C3%A9%2F~-._")
end)

T.test("query is appended with & when the URL already has ?", function()
  local body = echo { url = M .. "/echo?z=0", query = { a = 1, b = false } }
  T.eq(body.raw_query, "z=0&a=1&b=false")
end)

T.test("http.get takes query and headers too", function()
  local res = T.ok(http.get(M .. "/echo", { query = { limit = 2 }, headers = { ["X-Token"] = "abc" } }))
  local body = json.decode(res.body)
  T.eq(body.method, "GET")
  T.eq(body.raw_query, "limit=2")
  T.eq(body.headers["x-token"], "abc")
end)

T.test("POST with body and headers is echoed", function()
  local payload = json.encode { symbol = "BTCUSDT", n = 3 }
  local body = echo { method = "POST", url = M .. "/echo", body = payload,
                      headers = { ["Content-Type"] = "application/json", ["X-Test"] = "yes" } }
  T.eq(body.method, "POST")
  T.eq(body.path, "/echo")
  T.eq(json.decode(body.body), { symbol = "BTCUSDT", n = 3 })
  T.eq(body.headers["x-test"], "yes")
  T.eq(body.headers["content-type"], "application/json")
end)

T.test("other methods: PUT with a body, DELETE, HEAD", function()
  local body = echo { method = "PUT", url = M .. "/echo", body = "a\0b" }
  T.eq(body.method, "PUT")
  T.eq(body.body, "a\0b", "the body is binary-safe")
  T.eq(echo({ method = "DELETE", url = M .. "/echo" }).method, "DELETE")
  local res = T.ok(http.request { method = "HEAD", url = M .. "/static/hello.json" })
  T.eq(res.status, 200)
  T.eq(res.body, "")
end)

T.test("HTTP 404 is a normal result", function()
  local res, err, code = http.get(M .. "/no/such/path")
  T.eq({ err, code }, {})
  T.eq(res.status, 404)
  T.eq(json.decode(res.body), { error = "not found", path = "/no/such/path" })
end)

T.test("injected 503 and 429 with Retry-After are normal results", function()
  local res = T.ok(http.get(M .. "/static/hello.json?_status=503"))
  T.eq(res.status, 503)
  T.eq(json.decode(res.body), { code = 503, msg = "injected" })
  res = T.ok(http.get(M .. "/static/hello.json?_status=429&_retry_after=7"))
  T.eq(res.status, 429)
  T.eq(res.headers["retry-after"], "7")
end)

T.test("timeout -> nil, msg, TIMEOUT", function()
  local t0 = time.monotonic()
  T.fails("TIMEOUT", http.get(M .. "/echo?_delay=3", { timeout = 0.2 }))
  local took = time.monotonic() - t0
  T.ok(took >= 0.15 and took < 2, "took " .. took)
end)

T.test("connection refused -> ECONNREFUSED", function()
  local msg = T.fails("ECONNREFUSED", http.get("http://127.0.0.1:1/"))
  T.ok(msg:find("127.0.0.1"), msg)
end)

T.test("connection reset -> ECONNRESET", function()
  T.fails("ECONNRESET", http.get(M .. "/static/hello.json?_reset=1"))
end)

T.test("short body -> TRUNCATED", function()
  T.fails("TRUNCATED", http.get(M .. "/static/hello.json?_truncate=10"))
end)

T.test("gzip body is decoded transparently", function()
  local res = T.ok(http.get(M .. "/static/hello.json?_gzip=1"))
  T.eq(res.status, 200)
  T.eq(res.headers["content-encoding"], "gzip")
  T.eq(res.body, '{"hello":"world","n":42}\n')
end)

T.test("max_body -> TOO_LARGE; a large body within max_body arrives whole", function()
  local msg = T.fails("TOO_LARGE", http.get(M .. "/static/big.json", { max_body = 1000 }))
  T.ok(msg:find("1000"), msg)
  local res = T.ok(http.get(M .. "/static/big.json"))
  T.eq(#res.body, tonumber(res.headers["content-length"]))
  T.ok(#res.body > 1000000, "big.json is " .. #res.body .. " bytes")
  T.ok(json.decode(res.body))
end)

T.test("keep-alive: 10 sequential GETs use one connection", function()
  T.ok(http.request { method = "DELETE", url = M .. "/_mock/stats" })
  for i = 1, 10 do
    local res = T.ok(http.get(M .. "/static/hello.json"))
    T.eq(res.status, 200, "request " .. i)
  end
  local stats = json.decode(T.ok(http.get(M .. "/_mock/stats")).body)
  T.eq(stats.requests, 10)
  T.eq(stats.connections, 1)
end)

T.test("5 concurrent requests take about one delay, not five", function()
  local function slow(i)
    return function()
      local res = assert(http.get(M .. "/echo", { query = { i = i, _delay = 0.5 } }))
      return json.decode(res.body).query.i
    end
  end
  local t0 = time.monotonic()
  local a, b, c, d, e = task.all(slow(1), slow(2), slow(3), slow(4), slow(5))
  local took = time.monotonic() - t0
  T.eq({ a, b, c, d, e }, { "1", "2", "3", "4", "5" })
  T.ok(took >= 0.45 and took < 1.5, "took " .. took)
end)

T.test("misuse raises: wrong argument types", function()
  T.raises(function() http.get(42) end, "string expected")
  T.raises(function() http.get() end, "string expected")
  T.raises(function() http.request("http://x") end, "table expected")
  T.raises(function() http.request() end, "table expected")
end)

T.test("misuse raises: unknown or ill-typed options", function()
  local url = M .. "/echo"
  T.raises(function() http.get(url, { bogus = 1 }) end, "http.get: unknown option 'bogus'")
  T.raises(function() http.get(url, { method = "POST" }) end, "unknown option 'method'")
  T.raises(function() http.get(url, "x") end, "table expected")
  T.raises(function() http.request { url = url, [1] = "x" } end, "unknown option")
  T.raises(function() http.request {} end, "option 'url' is required")
  T.raises(function() http.request { url = 5 } end, "option 'url' must be a string")
  T.raises(function() http.request { url = url, headers = { 1 } } end, "headers must map names to strings")
  T.raises(function() http.request { url = url, headers = { x = {} } } end, "headers must map names to strings")
  T.raises(function() http.request { url = url, headers = "x" } end, "option 'headers' must be a table")
  T.raises(function() http.request { url = url, query = "a=1" } end, "option 'query' must be a table")
  T.raises(function() http.request { url = url, query = { a = {} } } end, "query value for 'a'")
  T.raises(function() http.request { url = url, query = { "x" } } end, "query keys must be strings")
  T.raises(function() http.request { url = url, body = 5 } end, "option 'body' must be a string")
  T.raises(function() http.request { url = url, timeout = "1" } end, "option 'timeout' must be a number")
  T.raises(function() http.request { url = url, method = true } end, "option 'method' must be a string")
  T.raises(function() http.request { url = url, max_body = "1" } end, "option 'max_body' must be a number")
end)

T.test("waiting inside a coroutine of the script's own raises", function()
  local err = T.raises(coroutine.wrap(function() http.get(M .. "/static/hello.json") end),
                       "must be called from a task")
  T.ok(err:find("http.get"), err)
end)

T.test("waiting inside a table.sort comparator raises", function()
  T.raises(function()
    table.sort({ 3, 1, 2 }, function(a, b)
      http.get(M .. "/static/hello.json")
      return a < b
    end)
  end, "cannot wait inside a C call")
end)

T.test("the engine still works after all the failures above", function()
  local res = T.ok(http.get(M .. "/static/hello.json"))
  T.eq(json.decode(res.body), { hello = "world", n = 42 })
end)


-- Issue 11, item 9: no header injection through a value, a name or the method.
T.test("headers and methods with CR/LF are refused with EINVAL before anything is sent", function()
  for _, h in ipairs({ { ["X-A"] = "a\r\nX-Injected: 1" }, { ["X-A"] = "a\nb" }, { ["X-A"] = "a\0b" },
                       { ["X-A\r\nX-B"] = "1" }, { ["X A"] = "1" }, { ["X:A"] = "1" } }) do
    local msg = T.fails("EINVAL", http.get(M .. "/echo", { headers = h }))
    T.ok(msg:find("http.get: header", 1, true), msg)
  end
  local msg = T.fails("EINVAL", http.get(M .. "/echo", { headers = { ["X-A"] = "a\r\nb" }, budget = "shared" }))
  T.ok(msg:find("CR, LF or NUL", 1, true), msg)
  T.raises(function() http.request { url = M .. "/echo", method = "GET / HTTP/1.1\r\nX: y" } end,
           "option 'method' must be an HTTP method token")
  local body = echo { url = M .. "/echo", headers = { ["X-Fine"] = "tab\tand spaces are fine" } }
  T.eq(body.headers["x-fine"], "tab\tand spaces are fine")
end)

T.run()
