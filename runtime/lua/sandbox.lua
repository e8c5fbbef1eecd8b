-- candled.sandbox (embedded): the environment scripts, their lib/ modules and strategies run in.
--
--   env = sandbox.new_env(name, require_fn)   -- a fresh _ENV for module `name`
--   v   = sandbox.rt_module(name)             -- rt.<x> as scripts see it (read-only), or raises
--   t   = sandbox.readonly(t, what)           -- a read-only view of t (pairs and # work)
--
-- Each module gets its own _ENV over one frozen base: the safe basic functions, string (no dump),
-- table, math, utf8, coroutine, a time-only os (time, clock, date, difftime, getenv), print (to the
-- log), load (text only, default env: the module's own), and require (rt.* except the runtime's
-- private rt.vm / rt.watch, modules under scripts/ and strategies.*; the caller passes it in).
-- Missing on purpose: io, debug, package, dofile, loadfile, collectgarbage, os.execute, os.exit,
-- os.remove, os.rename, os.tmpname, string.dump. Library tables are read-only views, so one script
-- cannot change what another sees. Globals are read-only: assigning one raises, naming it.
local log = require "rt.log"

local M = {}

local PRIVATE = { ["rt.vm"] = true, ["rt.watch"] = true }

local function frozen(what)
  return function(_, k)
    error(("%s is read-only: cannot set '%s'"):format(what, tostring(k)), 2)
  end
end

function M.readonly(t, what)
  return setmetatable({}, {
    __index = t,
    __newindex = frozen(what),
    __pairs = function() return next, t, nil end,
    __len = function() return #t end,
    __metatable = false,
  })
end

local function copy(t, except)
  local c = {}
  for k, v in pairs(t) do
    if not (except and except[k]) then c[k] = v end
  end
  return c
end

-- The frozen base, built once: name -> value, shared by every environment.
local BASE_FUNCS = { "assert", "error", "ipairs", "next", "pairs", "pcall", "xpcall", "select",
  "tonumber", "tostring", "type", "rawequal", "rawget", "rawlen", "rawset", "setmetatable",
  "getmetatable", "_VERSION" }
local base = {}
for _, n in ipairs(BASE_FUNCS) do base[n] = _G[n] end
base.string = M.readonly(copy(string, { dump = true }), "string")
base.table = M.readonly(copy(table), "table")
base.math = M.readonly(copy(math), "math")
base.utf8 = M.readonly(copy(utf8), "utf8")
base.coroutine = M.readonly(copy(coroutine), "coroutine")
base.os = M.readonly({ time = os.time, clock = os.clock, date = os.date, difftime = os.difftime,
                       getenv = os.getenv }, "os")
local STD = { string = base.string, table = base.table, math = base.math, utf8 = base.utf8,
              coroutine = base.coroutine, os = base.os }

local rt_views = {}

-- rt.<name> for scripts: a read-only view of the real module (shared by every script).
function M.rt_module(name)
  if PRIVATE[name] then error(("module '%s' is private to the runtime"):format(name), 0) end
  local v = rt_views[name]
  if v == nil then
    local ok, mod = pcall(require, name)
    if not ok then error(("module '%s' not found"):format(name), 0) end
    v = type(mod) == "table" and M.readonly(mod, name) or mod
    rt_views[name] = v
  end
  return v
end

-- A standard library by name (require "string" works as in plain Lua), or nil.
function M.std(name) return STD[name] end

local function printer()
  return function(...)
    local parts = table.pack(...)
    for i = 1, parts.n do parts[i] = tostring(parts[i]) end
    log.info(table.concat(parts, "\t"))
  end
end

function M.new_env(name, require_fn)
  local index = copy(base)
  local env = {}
  index.print = printer()
  index.require = require_fn
  index._G = env
  index.load = function(chunk, chunkname, _, e)          -- text only; never the real globals
    return load(chunk, chunkname, "t", e or env)
  end
  return setmetatable(env, {
    __index = index,
    __newindex = function(_, k)
      error(("assignment to undeclared global '%s' in %s (globals are read-only: use a local)"):format(
        tostring(k), name), 2)
    end,
    __metatable = false,
  })
end

return M
