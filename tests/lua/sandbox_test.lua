-- candled.sandbox and the CPU limits (rt.vm): what a script's environment holds, read-only globals,
-- the load budget and the task slice (docs/architecture.md, Sandbox).
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

-- Every value a chunk returns, with their count (T.eq on run() would see only the first).
local function all(src, e)
  return table.pack(run(src, e))
end

T.test("the environment has the safe libraries and nothing else", function()
  T.eq(all("return io, debug, package, dofile, loadfile, collectgarbage"), { n = 6 })
  T.eq(all("return os.execute, os.exit, os.remove, os.rename, os.tmpname, string.dump"), { n = 6 })
  T.eq(all("return type(os.time), type(os.clock), type(os.date), type(os.difftime), type(os.getenv)"),
       { "function", "function", "function", "function", "function", n = 5 })
  T.eq(all("return string.format('%d', 7), table.concat({1, 2}), math.max(1, 2), utf8.char(65)"),
       { "7", "12", 2, "A", n = 4 })
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

-- Issue 11, item 5: nothing every script shares can be changed or reached by one of them.
T.test("the string metatable and the shared views are immutable", function()
  T.eq(run("return getmetatable('')"), false, "the string metatable is hidden")
  T.eq(run("return ('').dump"), nil, "no dump through a method")
  T.raises(function() run("rawset(string, 'upper', function() return 'pwned' end)") end, "rawset: a read%-only table")
  T.raises(function() run("rawset(require('rt.http'), 'get', function() return 'planted' end)") end, "rawset: a read%-only table")
  T.raises(function() run("local _, t = pairs(string) rawset(t, 'upper', 1)") end, "rawset: a read%-only table")
  T.raises(function() run("local f, t = pairs(require('rt.json')) t.encode = 1") end, "read%-only")
  T.raises(function() run("require('rt.json').safe.decode = nil") end, "rt.json.safe is read%-only")
  T.raises(function() run("setmetatable(string, {})") end, "protected metatable")
  -- a second environment (another script) and the runtime still see the real functions
  T.eq(all("return string.upper('a'), ('b'):upper(), type(require('rt.http').get)", env("other")),
       { "A", "B", "function", n = 3 })
  T.eq(("b"):upper(), "B")
  T.eq(type(require("rt.http").get), "function")
  T.eq(run("local n = 0 for k, v in pairs(require('rt.json')) do n = n + 1 end return n > 2"), true)
end)

-- Issue 11, item 6: an allow-list of the rt.* modules scripts may require.
T.test("require: only the modules of the allow-list", function()
  for _, private in ipairs({ "rt.repl", "rt.vm", "rt.watch" }) do
    T.raises(function() run("return require('" .. private .. "')") end, "private to the runtime")
  end
  T.raises(function() run("return require('rt.nonesuch')") end, "not found")
  T.eq(all("local s = require('rt.sched') return type(s.trigger), s.put, s.remove"), { "function", n = 3 })
end)

-- Issue 11, item 3: pattern matching is interrupted by the slice; memory is bounded.
T.test("a catastrophic pattern is interrupted by the task slice, naming the limit", function()
  local before = vm.task_slice()
  vm.task_slice(0.2)
  local e = env()
  local ticks = 0
  local ticker = task.spawn(function() for _ = 1, 20 do time.sleep(0.01) ticks = ticks + 1 end end)
  local t0 = time.monotonic()
  local h = task.spawn(function() return run([[return ("a"):rep(3000):find(".-.-.-.-b")]], e) end)
  local ok, err = h:join()
  T.eq(ok, false)
  T.ok(err:find("interrupted: pattern matching ran longer than runtime.task_slice (0.2s)", 1, true), err)
  T.ok(time.monotonic() - t0 < 3, "stopped near the slice")
  h = task.spawn(function() return run([[local s = ("ab"):rep(2e4) return (s:gsub("(a-)(.-)b", "%2%1"))]], e) end)
  T.eq(h:join(), true, "a gsub that fits its slice")
  h = task.spawn(function() return run([[return string.gsub(("x"):rep(4000), ".-.-.-y", "")]], e) end)
  ok, err = h:join()
  T.eq(ok, false)
  T.ok(err:find("interrupted: pattern matching", 1, true), err)
  ticker:join()
  T.eq(ticks, 20, "the loop went on")
  vm.task_slice(before)
end)

T.test("string.rep over the memory limit fails at once, naming runtime.memory_limit", function()
  local t0 = time.monotonic()
  local ok, err = pcall(run, [[return string.rep("x", 2e9)]])
  T.eq(ok, false)
  T.ok(err:find("string.rep: a result of 2000000000 bytes is over the memory limit (runtime.memory_limit = 64 MiB)", 1, true), err)
  ok, err = pcall(run, [[return ("xy"):rep(1e8, ",")]])
  T.ok(err:find("runtime.memory_limit", 1, true), err)
  T.ok(time.monotonic() - t0 < 1, "no allocation was attempted")
  local h = task.spawn(function()
    local t = {}
    for i = 1, 1e9 do t[i] = { i } end
  end)
  ok, err = h:join()
  T.eq(ok, false)
  T.ok(err:find("not enough memory: the Lua heap reached its limit (runtime.memory_limit = 64 MiB)", 1, true), err)
  collectgarbage()
  T.eq(run("return #string.rep('x', 1000)"), 1000, "memory is back")
end)


-- Issue 11, item 8: scripts' rt.fs is confined to the data folder (and paths.fs_roots, watchlists).
T.test("scripts' rt.fs stays in the data folder", function()
  local db = require "rt.db"
  local data = db.path():match("^(.*)/[^/]*$")
  T.eq(run(("return require('rt.fs').write(%q, 'ok')"):format(data .. "/sandbox-fs.txt")), true)
  T.eq(run(("return require('rt.fs').read(%q)"):format(data .. "/sandbox-fs.txt")), "ok")
  T.eq(select(3, run("return require('rt.fs').read('/etc/passwd')")), "EACCES")
  T.eq(select(3, run("return require('rt.fs').write('/tmp/candled-sandbox-planted', 'x')")), "EACCES")
  T.eq(run("return require('rt.fs').confined"), nil, "no way to build another confinement")
end)

T.run()
