-- candled.sandbox (embedded): the environment scripts, their lib/ modules and strategies run in.
--
--   env = sandbox.new_env(name, require_fn)   -- a fresh _ENV for module `name`
--   v   = sandbox.rt_module(name)             -- rt.<x> as scripts see it (read-only), or raises
--   t   = sandbox.readonly(t, what)           -- a read-only view of t (pairs and # work)
--
-- Each module gets its own _ENV over one frozen base: the safe basic functions, string (no dump),
-- table, math, utf8, coroutine, a time-only os (time, clock, date, difftime, getenv), print (to the
-- log), load (text only, default env: the module's own), and require (the rt.* modules of the
-- allow-list PUBLIC below, modules under scripts/ and strategies.*; the caller passes it in).
-- Missing on purpose: io, debug, package, dofile, loadfile, collectgarbage, os.execute, os.exit,
-- os.remove, os.rename, os.tmpname, string.dump. Library tables are read-only views (their tables
-- too; rawset refuses them, pairs never hands out the real table), so one script cannot change what
-- another sees. The string methods (getmetatable("") is false) are runtime/strlib.c's: pattern
-- matching that runtime.task_slice interrupts and a string.rep bounded by runtime.memory_limit.
-- Globals are read-only: assigning one raises, naming it.
local log = require "rt.log"

local M = {}

-- The modules scripts may require (an allow-list: anything else under rt.* is private to the
-- runtime, e.g. rt.vm, rt.watch, rt.repl). true = the whole module; a list = only those functions.
local PUBLIC = {
  ["rt.http"] = true, ["rt.db"] = true, ["rt.json"] = true, ["rt.time"] = true, ["rt.task"] = true,
  ["rt.log"] = true, ["rt.csv"] = true, ["rt.config"] = true, ["rt.budget"] = true,
  ["rt.alert"] = true, ["rt.sched"] = { "trigger", "list", "check" }, ["rt.column"] = true,
  ["rt.events"] = true,
  ["rt.ws"] = true,
}

-- rt.fs for scripts: confined to the folders they have business in (bindings/fs.c fs.confined):
-- the data folder (the directory of database.path), every paths.fs_roots entry and every
-- sources.<name>.watchlist file (read and write; relative paths against the config file's
-- directory), the files directly in the config file's directory (watchlists and the like: read and
-- write, but no *.lua written), every export folder (export.qlib.<name>.out, with its
-- "<out>.candled-*" staging folder and lock beside it), paths.scripts and paths.strategies (read
-- only), plus the folders M.add_fs_root added (`candled export qlib --out DIR`: that command only).
-- Anything else: nil, msg, "EACCES". The view is rebuilt by M.refresh_fs() (a config reload).
local extra_roots = {}

local function fs_roots()
  local config = require "rt.config"
  local file = config.file()
  local dir = file and file:match("^(.*)/[^/]*$") or "."
  local function abs(p) return p:sub(1, 1) == "/" and p or dir .. "/" .. p end
  local roots = {}
  local function add(p, write, flat)
    if type(p) == "string" and p ~= "" then roots[#roots + 1] = { path = abs(p), write = write, flat = flat } end
  end
  add(dir, true, true)
  local dbpath = config.get("database.path")
  add(type(dbpath) == "string" and (dbpath:match("^(.*)/[^/]*$") or "."), true)
  for _, p in ipairs(config.get("paths.fs_roots", {})) do add(p, true) end
  for _, src in pairs(config.get("sources", {})) do add(src.watchlist, true) end
  for _, kind in pairs(config.get("export", {})) do
    if type(kind) == "table" then
      for _, e in pairs(kind) do
        if type(e) == "table" and type(e.out) == "string" and e.out ~= "" then
          roots[#roots + 1] = { path = abs(e.out), write = true, siblings = true }
        end
      end
    end
  end
  for _, r in ipairs(extra_roots) do roots[#roots + 1] = { path = r, write = true, siblings = true } end
  add(config.get("paths.scripts"), false)
  add(config.get("paths.strategies"), false)
  return roots
end

-- The confined rt.fs scripts hold (through their read-only view): its functions are replaced in
-- place when the roots change, so a module that required rt.fs before sees the new roots.
local fs_confined = {}
local function confine_fs(mod)
  for k in pairs(fs_confined) do fs_confined[k] = nil end
  for k, v in pairs(mod.confined(fs_roots())) do fs_confined[k] = v end
  return fs_confined
end

local CONFINED = { ["rt.fs"] = confine_fs }

-- Rebuild scripts' rt.fs roots from the current config (and the added roots).
function M.refresh_fs()
  confine_fs(require "rt.fs")
end

-- A folder scripts may write for the rest of this process (with its "<path>.candled-*" siblings);
-- a relative path is taken against the working directory, as rt.fs takes it.
function M.add_fs_root(path)
  extra_roots[#extra_roots + 1] = path
  M.refresh_fs()
end

local views = setmetatable({}, { __mode = "k" })   -- every read-only view: rawset refuses them

local function frozen(what)
  return function(_, k)
    error(("%s is read-only: cannot set '%s'"):format(what, tostring(k)), 2)
  end
end

-- A read-only view of t: reads go to t (table fields as read-only views of their own), writes
-- raise, and neither pairs nor the metatable hands out t itself.
function M.readonly(t, what, seen)
  seen = seen or {}
  if seen[t] then return seen[t] end
  local nested = {}
  local view = {}
  seen[t] = view
  for k, v in pairs(t) do
    if type(v) == "table" then nested[k] = M.readonly(v, what .. "." .. tostring(k), seen) end
  end
  local index = t
  if next(nested) then
    index = function(_, k)
      local n = nested[k]
      if n ~= nil then return n end
      return t[k]
    end
  end
  setmetatable(view, {
    __index = index,
    __newindex = frozen(what),
    __pairs = function(self)
      return function(_, k)
        local nk, v = next(t, k)
        if nk ~= nil and nested[nk] ~= nil then v = nested[nk] end
        return nk, v
      end, self, nil
    end,
    __len = function() return #t end,
    __metatable = false,
  })
  views[view] = true
  return view
end

-- rawset for scripts: never on a shared read-only view.
local function safe_rawset(t, k, v)
  if views[t] then error("rawset: a read-only table (shared by every script) cannot be changed", 2) end
  return rawset(t, k, v)
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
base.rawset = safe_rawset
-- The string methods every string has (runtime/strlib.c: bounded matching, no dump), not the
-- runtime's own `string` table.
local methods = {}
for k in pairs(string) do methods[k] = ("")[k] end
base.string = M.readonly(methods, "string")
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
  local allowed = PUBLIC[name] or CONFINED[name]
  if not allowed then
    local ok = pcall(require, name)
    error(ok and ("module '%s' is private to the runtime"):format(name) or ("module '%s' not found"):format(name), 0)
  end
  local v = rt_views[name]
  if v == nil then
    local mod = require(name)
    if CONFINED[name] then
      mod = CONFINED[name](mod)
    elseif allowed ~= true then
      local part = {}
      for _, f in ipairs(allowed) do part[f] = mod[f] end
      mod = part
    end
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
