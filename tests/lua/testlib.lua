-- tests/lua/testlib.lua - a small TAP harness for the Lua-level tests (after luv's tests/lib/tap.lua).
--
--   local T = require "testlib"
--   T.test("name", function() ... end)      -- register; tests run in order
--   T.run()                                 -- run them all inside the current task (candled eval)
--
-- Output is TAP: "1..N", then "ok N - name" / "not ok N - name" with "# " diagnostics, then one
-- line "P passed, F failed". T.run() raises when anything failed, so the eval task errors and
-- candled exits 1 (os.exit would skip the runtime's cleanup).
--
-- Assertions raise; the first failing one ends its test:
--   T.ok(v, msg)                    v is truthy
--   T.eq(actual, expected, msg)     ==, or deep equality for tables (with a list of differences)
--   T.raises(fn, pattern)           fn() raises and the message matches the Lua pattern
--   T.fails(code, ...)              ... is `nil, message, CODE` with CODE == code; returns message.
--                                   The code comes first so a call can be the last argument:
--                                   T.fails("TIMEOUT", http.get(url, {timeout = 0.2}))
--   T.expect(fn, n)                 a wrapper of fn that must be called exactly n times (default 1)
--                                   before the test ends
--   T.near(a, b, tol, msg)          |a - b| <= tol
--
-- After each test the harness checks that no task the test spawned is still alive (rt.task.list()
-- back to its size before the test; a few time.sleep(0) give finishing tasks their turn). Leftover
-- tasks fail the test (they stay in the next test's baseline, so one leak is reported once; the
-- eval shutdown cancels them).
--
-- TEST_FILTER=<Lua pattern> runs only matching tests; the others are reported as "# SKIP". A filter
-- that matches no test fails the run (a stray one must not report every test skipped and pass).
local task = require "rt.task"
local time = require "rt.time"

local T = {}
local tests = {}
local expects                                  -- the running test's T.expect records

function T.test(name, fn)
  assert(type(name) == "string" and type(fn) == "function", "T.test(name, fn)")
  tests[#tests + 1] = { name = name, fn = fn }
end

-- ---- showing values ---------------------------------------------------------------------------

local function show(v)
  if type(v) == "string" then return string.format("%q", v) end
  if math.type(v) == "float" then return string.format("%.17g (float)", v) end
  return tostring(v)
end

local function key_path(path, k)
  if type(k) == "string" and k:match("^[%a_][%w_]*$") then return path .. "." .. k end
  return path .. "[" .. show(k) .. "]"
end

-- Collect up to `limit` differences between a and b into `out` ("<path>: expected X, got Y").
local function diff(a, b, path, out, seen, limit)
  if #out >= limit then return end
  if type(a) ~= "table" or type(b) ~= "table" then
    if a ~= b then
      out[#out + 1] = string.format("%s: expected %s, got %s", path == "" and "value" or path, show(b), show(a))
    end
    return
  end
  if a == b or (seen[a] and seen[a] == b) then return end
  seen[a] = b
  for k, bv in pairs(b) do
    local av = a[k]
    if av == nil then
      if #out < limit then out[#out + 1] = string.format("%s: missing (expected %s)", key_path(path, k), show(bv)) end
    else
      diff(av, bv, key_path(path, k), out, seen, limit)
    end
  end
  for k, av in pairs(a) do
    if b[k] == nil and #out < limit then
      out[#out + 1] = string.format("%s: unexpected %s", key_path(path, k), show(av))
    end
  end
end

local function fail(msg, level)
  error(msg, (level or 1) + 1)
end

-- ---- assertions -------------------------------------------------------------------------------

function T.ok(v, msg)
  if not v then fail(msg or ("expected a true value, got " .. show(v)), 2) end
  return v
end

function T.eq(actual, expected, msg)
  local out = {}
  diff(actual, expected, "", out, {}, 10)
  if #out > 0 then
    fail((msg and msg .. ": " or "") .. "not equal\n" .. table.concat(out, "\n"), 2)
  end
  return actual
end

function T.near(a, b, tol, msg)
  if type(a) ~= "number" or math.abs(a - b) > tol then
    fail(string.format("%s%s is not within %s of %s", msg and msg .. ": " or "", show(a), show(tol), show(b)), 2)
  end
  return a
end

function T.raises(fn, pattern, msg)
  local ok, err = pcall(fn)
  if ok then fail((msg and msg .. ": " or "") .. "expected an error matching " .. show(pattern), 2) end
  err = tostring(err)
  if pattern and not err:find(pattern) then
    fail(string.format("%serror %s does not match %s", msg and msg .. ": " or "", show(err), show(pattern)), 2)
  end
  return err
end

function T.fails(code, ...)
  local n = select("#", ...)
  local v, message, got = ...
  if v ~= nil then
    fail(string.format("expected nil, message, %s; got %s (%d values)", show(code), show(v), n), 2)
  end
  if type(message) ~= "string" or message == "" then
    fail("expected an error message, got " .. show(message), 2)
  end
  if got ~= code then
    fail(string.format("expected code %s, got %s (message %s)", show(code), show(got), show(message)), 2)
  end
  return message
end

function T.expect(fn, n)
  local info = debug.getinfo(2, "Sl")
  local rec = { calls = 0, want = n or 1, where = info.short_src .. ":" .. info.currentline }
  assert(expects, "T.expect is for use inside a test")
  expects[#expects + 1] = rec
  return function(...)
    rec.calls = rec.calls + 1
    return fn(...)
  end
end

-- ---- a child candled ---------------------------------------------------------------------------

local function shell_quote(s)
  return "'" .. tostring(s):gsub("'", "'\\''") .. "'"
end
T.shell_quote = shell_quote

-- The path of the running candled binary (this process, so the sanitizer build tests itself).
function T.exe()
  local f = assert(io.open("/proc/self/stat", "r"))
  local pid = f:read("l"):match("^(%d+)")
  f:close()
  return "/proc/" .. pid .. "/exe"
end

local child_seq = 0

-- Run `candled eval` on `source` in a child process and wait for it (this blocks the loop: keep
-- children short). opts.config: config file path (default: this test's config; false: none),
-- opts.env: extra environment {NAME = value | false to unset}, opts.cwd: working directory.
-- Returns stdout+stderr text and the exit code.
function T.candled(source, opts)
  opts = opts or {}
  local dir = assert(os.getenv("TEST_TMPDIR"), "TEST_TMPDIR is not set")
  child_seq = child_seq + 1
  local file = string.format("%s/child-%d.lua", dir, child_seq)
  local f = assert(io.open(file, "w"))
  f:write(source)
  f:close()
  local env = { "env" }
  for k, v in pairs(opts.env or {}) do
    env[#env + 1] = v == false and ("-u " .. k) or (k .. "=" .. shell_quote(v))
  end
  local config = opts.config
  if config == nil then config = require("rt.config").file() end
  local cmd = string.format("%s%s %s eval %s%s 2>&1", opts.cwd and ("cd " .. shell_quote(opts.cwd) .. " && ") or "",
                            table.concat(env, " "), shell_quote(T.exe()),
                            config and ("--config " .. shell_quote(config) .. " ") or "", shell_quote(file))
  local p = assert(io.popen(cmd, "r"))
  local out = p:read("a")
  local _, _, code = p:close()
  return out, code
end

-- ---- running ----------------------------------------------------------------------------------

local function live_tasks()
  return #task.list()
end

local function leftover_tasks(baseline)
  for _ = 1, 20 do                             -- tasks that are just finishing get their turns
    if live_tasks() <= baseline then return nil end
    time.sleep(0)
  end
  for _ = 1, 10 do                             -- and ones that end on a short timer
    if live_tasks() <= baseline then return nil end
    time.sleep(0.01)
  end
  if live_tasks() <= baseline then return nil end
  local me = task.current()
  local names = {}
  for _, t in ipairs(task.list()) do
    if not me or t.id ~= me.id then names[#names + 1] = string.format("task %d (%s, %s)", t.id, t.name, t.state) end
  end
  return names
end

-- The error and the stack of the test itself: the harness's own frames are left out.
local function traceback(e)
  local lines = {}
  for line in (debug.traceback(tostring(e), 2) .. "\n"):gmatch("(.-)\n") do
    if line:find("in function 'xpcall'", 1, true) then break end
    if not line:find("testlib.lua:", 1, true) and not line:find("[C]: in function 'error'", 1, true) then
      lines[#lines + 1] = line
    end
  end
  return table.concat(lines, "\n")
end

local function print_diag(text)
  for line in (tostring(text) .. "\n"):gmatch("(.-)\n") do print("#   " .. line) end
end

function T.run()
  local filter = os.getenv("TEST_FILTER")
  if filter == "" then filter = nil end
  print("1.." .. #tests)
  local passed, failed, skipped = 0, 0, 0
  for i, t in ipairs(tests) do
    if filter and not t.name:find(filter) then
      skipped = skipped + 1
      print(string.format("ok %d - %s # SKIP not selected by TEST_FILTER", i, t.name))
    else
      local baseline = live_tasks()
      expects = {}
      local started = time.monotonic()
      local ok, err = xpcall(t.fn, traceback)
      local problems = {}
      if not ok then problems[#problems + 1] = err end
      for _, rec in ipairs(expects) do
        if rec.calls ~= rec.want then
          problems[#problems + 1] = string.format("T.expect at %s: called %d times, expected %d",
                                                  rec.where, rec.calls, rec.want)
        end
      end
      expects = nil
      local left = leftover_tasks(baseline)
      if left then
        problems[#problems + 1] = "tasks still alive after the test: " .. table.concat(left, ", ")
      end
      local took = time.monotonic() - started
      if #problems == 0 then
        passed = passed + 1
        print(string.format("ok %d - %s", i, t.name))
      else
        failed = failed + 1
        print(string.format("not ok %d - %s", i, t.name))
        for _, p in ipairs(problems) do print_diag(p) end
      end
      if took > 2 then print(string.format("#   (took %.2f s)", took)) end
    end
  end
  if skipped > 0 then print(string.format("# %d skipped", skipped)) end
  if filter and skipped == #tests then                 -- a stray filter must not pass as green
    error(string.format("TEST_FILTER %q matches none of the %d tests", filter, #tests), 0)
  end
  print(string.format("%d passed, %d failed", passed, failed))
  io.stdout:flush()
  if failed > 0 then error(string.format("%d of %d tests failed", failed, #tests - skipped), 0) end
end

return T
