-- candled.sandbox and the CPU limits (rt.vm): what a script's environment holds, read-only globals,
-- the load budget and the task slice (style.md 3.9).
local T = require "testlib"
local sandbox = require "candled.sandbox"
local task = require "rt.task"
local time = require "rt.time"
local vm = require "rt.vm"

local function env(name)
  return sandbox.new_env(name or "t", function(n)
    if n:match("^rt%.") then return sandbox.rt_module(n) end
    error("module '" .. n .. "' not found")
  end)
end

local function run(src, e)
  local f = assert(load(src, "=chunk", "t", e or env()))
  return f()
end

T.test("the environment has the safe libraries and nothing else", function()
  T.eq(run("return io, debug, package, dofile, loadfile, collectgarbage"), nil)
  T.eq({ run("return os.execute, os.exit, os.remove, os.rename, os.tmpname, string.dump") }, {})
  T.eq(run("return type(os.time), type(os.clock), type(os.date), type(os.difftime), type(os.getenv)"), "function")
  T.eq(run("return string.format('%d', 7), table.concat({1, 2}), math.max(1, 2), utf8.char(65)"), "7")
  T.eq(run("return ('x'):rep(2)"), "xx", "string methods work")
  T.eq(run("local n = 0 for _ in pairs(string) do n = n + 1 end return n > 10"), true, "pairs over a library")
end)

T.test("assigning a global raises naming it; locals and table fields are fine", function()
  T.raises(function() run("x = 1") end, "assignment to undeclared global 'x' in t")
  T.raises(function() run("_G.y = 1") end, "undeclared global 'y'")
  T.eq(run("local t = {} t.a = 1 return t.a"), 1)
  T.raises(function() run("string.format = nil") end, "string is read%-only")
  T.raises(function() run("require('rt.log').info = nil") end, "rt.log is read%-only")
  T.raises(function() run("return getmetatable(_ENV).__index") end, "attempt to index")
end)

T.test("require: rt.* read-only, the runtime's private modules refused", function()
  T.eq(run("return type(require('rt.json').encode)"), "function")
  T.raises(function() run("return require('rt.vm')") end, "private to the runtime")
  T.raises(function() run("return require('rt.watch')") end, "private to the runtime")
end)

T.test("load is text only and defaults to the caller's environment", function()
  local e = env()
  T.eq(run("return load('return io')()", e), nil)
  local f, err = run("return load(string.char(27) .. 'Lua', 'b', 'b')", e)
  T.eq(f, nil)
  T.ok(err:find("binary"), err)
  T.eq(run("return load('return 1 + 1')()", e), 2)
end)

T.test("pcall_budget interrupts an endless loop, even one that pcall wraps", function()
  local t0 = time.monotonic()
  local ok, err = vm.pcall_budget(0.1, function() while true do end end)
  T.eq(ok, false)
  T.ok(err:find("interrupted: the top level ran longer than its budget of 0.1s", 1, true), err)
  ok, err = vm.pcall_budget(0.1, function() while true do pcall(function() while true do end end) end end)
  T.eq(ok, false)
  T.ok(time.monotonic() - t0 < 2, "both within their budgets")
  T.eq({ vm.pcall_budget(1, function(a, b) return a + b, "x" end, 1, 2) }, { true, 3, "x" })
  ok, err = vm.pcall_budget(1, error, "plain", 0)
  T.eq(ok, false)
  T.ok(err:find("^plain\nstack traceback:"), "the error with a traceback: " .. err)
end)

T.test("the task slice interrupts a runaway task; others keep running", function()
  local before = vm.task_slice()
  vm.task_slice(0.2)
  local ticks = 0
  local ticker = task.spawn(function()
    for _ = 1, 30 do
      time.sleep(0.01)
      ticks = ticks + 1
    end
  end)
  local spin = task.spawn(function()
    while true do pcall(function() while true do end end) end
  end)
  local ok, err = spin:join()
  T.eq(ok, false)
  T.ok(err:find("interrupted: ran longer than runtime.task_slice (0.2s) without yielding", 1, true), err)
  ticker:join()
  T.eq(ticks, 30)
  local h = task.spawn(function() for _ = 1, 20 do time.sleep(0.02) end return "done" end)
  T.eq({ h:join() }, { true, "done" }, "a task that yields is never interrupted")
  vm.task_slice(before)
end)

T.run()
