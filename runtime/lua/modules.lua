-- candled.modules (embedded): the modules of scripts/ and strategies/, loaded in sandboxes, with
-- who-required-what, so a reload can take a module together with everything that uses it.
--
--   modules.live[name]            -- rec of every module in force (scripts included):
--                                 --   {name=, file=, kind="script"|"module", value=, deps={name=true},
--                                 --    src=, gen=, loaded_at=}
--   b = modules.batch(targets)    -- a staging area; targets = {name=true}: load those afresh even
--                                 -- if live (other requires see the live module)
--   rec, err = b:load(name [, path, kind])   -- load one module (and what it requires) into b
--   ok, rec = b:ok()              -- false and the first failed rec when anything failed
--   b:commit()                    -- make every staged module live (the caller checked b:ok())
--   path = modules.find(name)     -- the file of a module name, or nil
--   name = modules.name_of(path)  -- the module name of a file under scripts/ or strategies/
--   set  = modules.dependents(set)-- set plus every live module that requires one of them, transitively
--   list = modules.components(set)-- set split into groups connected by requires (lists of names)
--   line = modules.first_line(err)-- "file:line: message" of an error with a traceback
--
-- Module names: the path below paths.scripts with dots ("lib.series", "binance.klines"), or
-- "strategies.<path with dots>" below paths.strategies. A load runs the file's top level once in a
-- fresh sandbox (candled.sandbox) under vm.pcall_budget(runtime.task_slice): an endless top-level
-- loop is interrupted. Loading is synchronous: no task runs while a batch loads.
local config = require "rt.config"
local fs = require "rt.fs"
local vm = require "rt.vm"
local sandbox = require "candled.sandbox"

local M = {}

M.live = {}
local loading                -- the batch loading now, or nil

local function dirs()
  return config.get("paths.scripts"), config.get("paths.strategies")
end

local function is_file(p)
  local st = fs.stat(p)
  return st and st.type == "file"
end

function M.find(name)
  local sdir, tdir = dirs()
  local cands = {}
  local strat = name:match("^strategies%.(.+)$")
  if strat then cands[#cands + 1] = tdir .. "/" .. strat:gsub("%.", "/") end
  cands[#cands + 1] = sdir .. "/" .. name:gsub("%.", "/")
  for _, base in ipairs(cands) do
    if is_file(base .. ".lua") then return base .. ".lua" end
    if is_file(base .. "/init.lua") then return base .. "/init.lua" end
  end
end

function M.name_of(path)
  local sdir, tdir = dirs()
  local function below(dir)
    local n = #dir + 1
    if path:sub(1, n) == dir .. "/" then return (path:sub(n + 1):gsub("%.lua$", ""):gsub("/init$", ""):gsub("/", ".")) end
  end
  local t = below(tdir)
  if t then return "strategies." .. t end
  return below(sdir)
end

function M.first_line(err)
  return (tostring(err):match("^[^\n]*"))
end

local function budget()
  local s = config.get("runtime.task_slice", 1)
  return (s and s > 0) and s or 1e9
end

-- ---- require -----------------------------------------------------------------------------------

local Batch = {}
Batch.__index = Batch

function M.batch(targets)
  return setmetatable({ targets = targets or {}, staged = {}, order = {} }, Batch)
end

-- `require` inside module rec: standard libraries, rt.*, then modules of scripts/ and strategies/.
local function require_from(rec, name)
  if type(name) ~= "string" then error("require: the module name must be a string", 2) end
  local std = sandbox.std(name)
  if std then return std end
  if name:match("^rt%.") then return sandbox.rt_module(name) end
  if not (M.live[name] or (loading and loading.staged[name]) or M.find(name)) then
    error(("module '%s' not found (a script may require rt.*, modules under paths.scripts and strategies.*)"):format(name), 2)
  end
  rec.deps[name] = true
  if loading then return loading:require(name) end
  local live = M.live[name]
  if live then return live.value end
  local b = M.batch()                          -- first require at run time: load and keep it
  local v = b:require(name)
  b:commit()
  return v
end

function Batch:require(name)
  local s = self.staged[name]
  if s then
    if s.error then error(s.error, 0) end
    if s.loading then error(("circular require of module '%s'"):format(name), 0) end
    return s.value
  end
  local live = M.live[name]
  if live and not self.targets[name] then return live.value end
  local rec, err = self:load(name)
  if not rec then error(err, 0) end
  return rec.value
end

function Batch:load(name, path, kind)
  local s = self.staged[name]
  if s then return (not s.error) and s or nil, s.error end
  local live = M.live[name]
  local rec = { name = name, file = path or M.find(name), kind = kind or (live and live.kind) or "module",
                deps = {}, loading = true }
  self.staged[name] = rec
  self.order[#self.order + 1] = name
  local function fail(err)
    rec.error, rec.loading = err, false
    return nil, err
  end
  if not rec.file then return fail(("module '%s' not found"):format(name)) end
  local src, rerr = fs.read(rec.file)
  if not src then return fail(rerr) end
  rec.src = src
  local env = sandbox.new_env(name, function(n) return require_from(rec, n) end)
  local chunk, serr = load(src, "@" .. rec.file, "t", env)
  if not chunk then return fail(serr) end
  local prev = loading
  loading = self
  local ok, value = vm.pcall_budget(budget(), chunk, name, rec.file)
  loading = prev
  if not ok then return fail(value) end
  if value == nil then value = true end
  rec.value, rec.loading = value, false
  return rec
end

function Batch:ok()
  for _, n in ipairs(self.order) do
    if self.staged[n].error then return false, self.staged[n] end
  end
  return true
end

function Batch:commit()
  local now = os.time()
  for _, n in ipairs(self.order) do
    local rec = self.staged[n]
    if not rec.error then
      local old = M.live[n]
      rec.gen, rec.loaded_at = (old and old.gen or 0) + 1, now
      M.live[n] = rec
    end
  end
end

-- ---- the graph -----------------------------------------------------------------------------------

function M.dependents(set)
  local out = {}
  for n in pairs(set) do out[n] = true end
  local grew = true
  while grew do
    grew = false
    for n, rec in pairs(M.live) do
      if not out[n] then
        for d in pairs(rec.deps) do
          if out[d] then
            out[n], grew = true, true
            break
          end
        end
      end
    end
  end
  return out
end

function M.components(set)
  local parent = {}
  local function root(n)
    while parent[n] ~= n do n = parent[n] end
    return n
  end
  for n in pairs(set) do parent[n] = n end
  for n in pairs(set) do
    local rec = M.live[n]
    for d in pairs(rec and rec.deps or {}) do
      if parent[d] then parent[root(d)] = root(n) end
    end
  end
  local groups, list = {}, {}
  for n in pairs(set) do
    local r = root(n)
    if not groups[r] then
      groups[r] = {}
      list[#list + 1] = groups[r]
    end
    table.insert(groups[r], n)
  end
  for _, g in ipairs(list) do table.sort(g) end
  table.sort(list, function(a, b) return a[1] < b[1] end)
  return list
end

return M
