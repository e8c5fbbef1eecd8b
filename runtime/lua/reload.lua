-- candled.reload (embedded): the reload transaction. Validate first, swap last (docs/architecture.md,
-- Reload): the files affected by a change (the changed ones and every module that requires them,
-- transitively) are split into groups connected by require; each group loads in fresh sandboxes
-- (candled.modules), top levels under the runtime.task_slice budget, tables validated (as at
-- start, plus `check(config)` and `migrate(state, old_version)` on a copy of ctx.state when
-- `version` changed). All good: the group is swapped in one step (schedules re-put: a changed
-- every/cron takes effect, the timer is updated in place; running runs finish on the old code).
-- Anything bad: the whole group keeps its previous version; the error is logged, shown by status()
-- and raised as alert `reload_failed` (subject: the script or module name, "config" for the
-- config), resolved by the next good load. The config file reloads the same way: validated, then
-- committed, sections that need a restart kept at their running value.
--
--   report = reload.reload([name])   -- candled.daemon.reload (see there)
--   reload.on_change(what)           -- what candled.edits calls after a debounced change
--   reload.prepare / swap / reject   -- the steps, for candled.daemon.start
local alert = require "rt.alert"
local config = require "rt.config"
local fs = require "rt.fs"
local log = require "rt.log"
local sched = require "rt.sched"
local task = require "rt.task"
local time = require "rt.time"
local vm = require "rt.vm"
local modules = require "candled.modules"
local sandbox = require "candled.sandbox"
local schedules = require "candled.schedules"
local scripts = require "candled.scripts"
local state = require "candled.state"

local M = {}

local entries, failed_modules, cfg_status, states = state.entries, state.failed_modules, state.cfg, state.states
local load_state, save_state, deep_copy, deep_equal = state.load_state, state.save_state, state.deep_copy, state.deep_equal
local stored_version, save_version = state.stored_version, state.save_version
local timing, sync = schedules.timing, schedules.sync
local busy = false               -- a reload is in progress (reloads yield between groups)

-- ---- loading groups ---------------------------------------------------------------------------

local function entry_of_module(name)
  for _, e in pairs(entries) do
    if e.module == name then return e end
  end
end

local function name_taken(e, name)
  for _, o in pairs(entries) do
    if o ~= e and o.mod and o.name == name and (o.scheduled or o.mod.run ~= nil) then return o end
  end
end

-- Load and validate a group of module names in one batch. Returns the batch and a plan per script,
-- or nil and {file=, error=} (the first failure).
local function prepare(group, whole)
  local targets = {}
  for _, n in ipairs(group) do targets[n] = true end
  local b = modules.batch(targets)
  for _, n in ipairs(group) do
    local e, live = entry_of_module(n), modules.live[n]
    local path = e and e.file or (live and live.file) or modules.find(n)
    local rec, err = b:load(n, path, e and "script" or nil)
    if not rec then return nil, { file = path or n, error = err } end
  end
  local plans = {}
  for _, n in ipairs(group) do
    local e = entry_of_module(n)
    if e then
      local rec = b.staged[n]
      local mod = rec.value
      local function bad(msg) return nil, { file = e.file, error = msg } end
      local why = scripts.validate(mod, e.file)
      if why then return bad(why) end
      local name = mod.name or e.module
      local other = name_taken(e, name)
      if other and mod.run ~= nil then return bad(e.file .. ": name '" .. name .. "' already used by " .. other.file) end
      local t, kind, terr = timing(name, mod, whole)
      if not t and kind == "error" then return bad(e.file .. ": " .. terr) end
      if t and type(mod.check) == "function" then
        local ok, cerr = vm.pcall_budget(config.get("runtime.task_slice", 1), mod.check,
                                         scripts.config(name, mod, whole))
        if not ok then return nil, { file = e.file, error = cerr, check = true } end
      end
      local plan = { e = e, rec = rec, mod = mod, name = name }
      local known, old_version
      if e.mod then known, old_version = true, e.mod.version
      else known, old_version = stored_version(name) end
      if known and mod.version ~= old_version and type(mod.migrate) == "function" then
        local state = deep_copy(load_state(name))
        local ok, merr = vm.pcall_budget(config.get("runtime.task_slice", 1), mod.migrate, state, old_version)
        if not ok then return bad(merr) end
        plan.state, plan.migrated_from = state, old_version
      end
      plans[#plans + 1] = plan
    end
  end
  return b, plans
end

-- The swap of one script: its new code, state and schedule.
local function swap(plan)
  local e, rec = plan.e, plan.rec
  local old_name = e.scheduled
  e.mod, e.name, e.gen, e.loaded_at, e.src = plan.mod, plan.name, rec.gen, rec.loaded_at, rec.src
  e.last_error, e.error, e.rejected_at = nil, nil, nil
  if plan.state then
    states[plan.name] = plan.state
    save_state(plan.name, plan.state)
    log.info("ctx.state migrated", { name = plan.name, from = plan.migrated_from, to = plan.mod.version })
  end
  save_version(plan.name, plan.mod.version)
  alert.resolve("reload_failed", plan.name)         -- also one left open by an earlier daemon
  if old_name and old_name ~= plan.name then
    sched.remove(old_name)
    e.scheduled = nil
  end
  local ok, err = sync(e)
  if not ok then log.error("script rejected", { file = e.file, name = e.name, error = err }) end
end

local function commit(b, plans, report)
  b:commit()
  for _, n in ipairs(b.order) do
    local rec = b.staged[n]
    if rec.file and failed_modules[rec.file] then
      failed_modules[rec.file] = nil
      alert.resolve("reload_failed", n)
    end
    if rec.kind == "module" and report then report.loaded[#report.loaded + 1] = n end
  end
  for _, plan in ipairs(plans) do
    swap(plan)
    if report then report.loaded[#report.loaded + 1] = plan.name end
  end
end

-- Record a group's failure: every member keeps its previous version (if any).
local function reject(group, failure, report, at_start)
  local short = modules.first_line(failure.error)
  local now = os.time()
  for _, n in ipairs(group) do
    local e = entry_of_module(n)
    local file = e and e.file or (modules.live[n] and modules.live[n].file) or modules.find(n) or n
    local src = fs.read(file)
    local name = e and (e.mod and e.name or e.module) or n
    if e then
      e.last_error, e.error, e.rejected_at, e.src = short, failure.error, now, src
    else
      failed_modules[file] = { name = n, file = file, last_error = short, rejected_at = now, src = src }
    end
    local live = e and e.mod or modules.live[n]
    alert.raise("reload_failed", name, short, "error")     -- before the log line tests wait for
    log.error(at_start and "script rejected" or "reload rejected: the previous version stays live",
              { file = file, name = name, error = failure.error, cause = failure.file ~= file and failure.file or nil,
                live = live and "yes" or "no" })
    if report then report.rejected[#report.rejected + 1] = { name = name, file = file, error = short } end
  end
end

-- ---- scanning ---------------------------------------------------------------------------------

-- Every file now on disk: scripts (file -> module name) and lib/strategy modules (file -> name).
local function scan()
  local sdir, tdir = config.get("paths.scripts"), config.get("paths.strategies")
  local found, mods = {}, {}
  for _, f in ipairs(scripts.scan(sdir) or {}) do found[f.path] = f.module end
  for _, f in ipairs(scripts.scan(sdir .. "/lib") or {}) do mods[f.path] = "lib." .. f.module end
  for _, f in ipairs(scripts.scan(tdir) or {}) do mods[f.path] = "strategies." .. f.module end
  return found, mods
end

local function remove_entry(e, report)
  if e.scheduled then sched.remove(e.scheduled) end
  e.watch_token = nil
  entries[e.file] = nil
  modules.live[e.module] = nil
  if e.last_error then alert.resolve("reload_failed", e.mod and e.name or e.module) end
  log.info("script removed: unscheduled", { file = e.file, name = e.name })
  if report then report.removed[#report.removed + 1] = e.name end
end

local function in_task() return task.current() ~= nil end

-- Load the given module names (and their dependents) group by group.
local function load_groups(targets, report)
  local affected = modules.dependents(targets)
  for n in pairs(affected) do
    if not (entry_of_module(n) or modules.live[n] or modules.find(n)) then affected[n] = nil end
  end
  for i, group in ipairs(modules.components(affected)) do
    if i > 1 and in_task() then time.sleep(0) end    -- let timers and I/O run between groups
    local b, plans = prepare(group)
    if b then
      commit(b, plans, report)
      for _, n in ipairs(group) do
        local e = entry_of_module(n)
        if e then log.info("script loaded", { name = e.name, file = e.file, version = e.gen }) end
      end
    else
      reject(group, plans, report)
    end
  end
end

-- ---- config -----------------------------------------------------------------------------------

-- Sections that need a restart: the running value stays in force when they change.
local RESTART = { "database", "budgets", "http", "paths", "repl", "strategies" }

local function reload_config(force, report)
  local file = config.file()
  if not file then return end
  local src = fs.read(file)
  if not src or (src == cfg_status.src and not force) then return end
  cfg_status.src = src
  local function fail(err)
    cfg_status.last_error, cfg_status.rejected_at = modules.first_line(err), os.time()
    alert.raise("reload_failed", "config", modules.first_line(err), "error")
    log.error("config rejected: the previous config stays in force", { file = file, error = err })
    if report then report.rejected[#report.rejected + 1] = { name = "config", file = file, error = cfg_status.last_error } end
  end
  local new, err = vm.config_load()
  if not new then return fail(err) end
  local dir = file:match("^(.*)/[^/]*$") or "."
  for _, k in ipairs({ { "database", "path" }, { "paths", "scripts" }, { "paths", "strategies" } }) do
    local p = new[k[1]][k[2]]
    if type(p) == "string" and p:sub(1, 1) ~= "/" then new[k[1]][k[2]] = dir .. "/" .. p end
  end
  local old = config.all()
  for _, key in ipairs(RESTART) do
    if old[key] ~= nil and not deep_equal(old[key], new[key]) then
      log.warn("config change needs a restart: the running value stays in force", { key = key, file = file })
      new[key] = old[key]
    end
  end
  for _, e in pairs(entries) do
    if e.mod and type(e.mod.check) == "function" and timing(e.name, e.mod, new) then
      local ok, cerr = vm.pcall_budget(config.get("runtime.task_slice", 1), e.mod.check, scripts.config(e.name, e.mod, new))
      if not ok then return fail(file .. ": " .. modules.first_line(cerr)) end
    end
  end
  vm.config_commit(new)
  sandbox.refresh_fs()                         -- export folders may have changed
  local had_error = cfg_status.last_error
  cfg_status.version, cfg_status.loaded_at = cfg_status.version + 1, os.time()
  cfg_status.last_error, cfg_status.rejected_at = nil, nil
  if had_error then alert.resolve("reload_failed", "config") end
  for _, e in pairs(entries) do
    if e.mod then
      local ok, serr = sync(e)
      if not ok then log.error("script not rescheduled", { name = e.name, error = serr }) end
    end
  end
  log.info("config reloaded", { file = file, version = cfg_status.version })
  if report then report.loaded[#report.loaded + 1] = "config" end
end

-- ---- reload --------------------------------------------------------------------------

-- `busy` holds the task that reloads (or true outside tasks): a reload task that ended abnormally
-- (interrupted, cancelled) without releasing the lock no longer holds it.
local function holder_alive()
  if busy == true then return true end
  local st = busy:status()
  return st == "ready" or st == "running" or st == "parked"
end

local function lock()
  while busy and holder_alive() do
    if not in_task() then error("a reload is in progress", 2) end
    time.sleep(0.01)
  end
  busy = task.current() or true
end

-- Sync with the disk. mode: "changed" (files whose text changed, new and deleted ones) or "retry"
-- (also every file whose last load failed).
local function sync_disk(mode, report)
  local found, mods = scan()
  local targets = {}
  for file, e in pairs(entries) do
    if not found[file] then remove_entry(e, report) end
  end
  for file, module in pairs(found) do
    local e = entries[file]
    if not e then
      entries[file] = { file = file, module = module, name = module }
      targets[module] = true
    elseif (mode == "retry" and e.last_error) or fs.read(file) ~= e.src then
      targets[module] = true
    end
  end
  for name, rec in pairs(modules.live) do
    if rec.kind == "module" and rec.file and not mods[rec.file] then
      modules.live[name] = nil                 -- deleted: its users load again (and fail)
      targets[name] = true
      if report then report.removed[#report.removed + 1] = name end
    end
  end
  for file, name in pairs(mods) do
    local rec, f = modules.live[name], failed_modules[file]
    local src = (rec or f) and fs.read(file)
    if (rec and src ~= rec.src and not (f and f.src == src)) or (f and (mode == "retry" or f.src ~= src)) then
      targets[name] = true
    end
  end
  for file, f in pairs(failed_modules) do
    if not mods[file] then failed_modules[file] = nil end
  end
  load_groups(targets, report)
end

function M.reload(name)
  lock()
  local report = { loaded = {}, rejected = {}, removed = {} }
  local ok, err = xpcall(function()
    if name == nil then
      -- a config whose last load failed is tried again, as scripts are (sync_disk "retry"): the
      -- watcher may have met the edit first, and the caller must still hear it is rejected
      reload_config(cfg_status.last_error ~= nil, report)
      sync_disk("retry", report)
    elseif name == "config" then
      reload_config(true, report)
    else
      local target
      for _, e in pairs(entries) do
        if e.name == name or e.module == name or e.file == name then target = e.module end
      end
      for n, rec in pairs(modules.live) do
        if n == name or rec.file == name then target = n end
      end
      if not target then
        report.rejected[1] = { name = name, error = "no script or module named '" .. tostring(name) .. "'" }
      else
        load_groups({ [target] = true }, report)
      end
    end
  end, debug.traceback)
  busy = false
  if not ok then error(err, 0) end
  return report
end

-- What the watcher (candled.edits) calls after a debounced change.
function M.on_change(what)
  lock()
  local ok, err = xpcall(function()
    if what.config or what.hup then reload_config(what.hup and cfg_status.last_error ~= nil) end
    if what.files or what.hup then sync_disk(what.hup and "retry" or "changed") end
  end, debug.traceback)
  busy = false
  if not ok then error(err, 0) end
end

M.prepare, M.swap, M.reject = prepare, swap, reject

return M
