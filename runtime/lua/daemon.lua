-- candled.daemon (embedded): loads the scripts under paths.scripts, hands the ones that return a
-- `run` function to the scheduler, and reloads them (and config.lua) while the daemon runs.
--
-- API for the REPL (and anything else inside the daemon; call from a task):
--   report = require("candled.daemon").reload([name])
--       name nil: bring the daemon in line with the disk: the config file when it changed, every new,
--       changed or deleted file under paths.scripts / paths.strategies, and retry every file whose
--       last load failed. name (a schedule name, module name, file path, or "config"): load that
--       one again even when unchanged, with whatever must go with it.
--       report = {loaded = {name, ...}, rejected = {{name=, file=, error=}, ...}, removed = {name, ...}}
--   list = require("candled.daemon").status()
--       one row per script, lib/strategy module and the config:
--       {name=, file=, kind = "script"|"module"|"config", version = generation (1 = first load,
--        +1 per accepted reload), loaded_at = epoch seconds, every=, cron=, scheduled = bool,
--        last_error = "file:line: message" or nil, rejected_at = epoch seconds or nil,
--        module_version = the table's `version` field}
--   The REPL also uses rt.sched.trigger(name) and rt.task directly.
--
-- A script's module name is its path below scripts/ with dots ("binance/klines.lua" ->
-- "binance.klines"); its schedule name is `name` from the returned table, else the module name.
-- scripts/lib/ holds plain modules for require and is never scheduled.
--
-- Reload (docs/design.md, Reload): validate first, swap last. The files affected by a change (the changed
-- ones and every module that requires them, transitively) are split into groups connected by
-- require; each group loads in fresh sandboxes (candled.modules), top levels under the
-- runtime.task_slice budget, tables validated (as at start, plus `check(config)` and
-- `migrate(state, old_version)` on a copy of ctx.state when `version` changed). All good: the group
-- is swapped in one step (schedules re-put: a changed every/cron takes effect, the timer is updated
-- in place; running runs finish on the old code). Anything bad: the whole group keeps its previous
-- version; the error is logged, shown by status() and raised as alert `reload_failed` (subject:
-- the script or module name, "config" for the config), resolved by the next good load.
--
-- A scheduled script may also have `watch = function(config) return {path, ...} end` (config is
-- its ctx.config): for each path one task waits on rt.fs.watch(path) and triggers a run on every
-- change (sched.trigger: now, or right after the current run). A bad `watch` (not a function,
-- raises, returns anything but a list of path strings) is logged with the file, and the script
-- keeps its schedule without watching. `check = function(config)` raises on options the script
-- cannot use: the daemon then does not start (see start); on a reload the new version, or a new
-- config, is rejected.
local alert = require "rt.alert"
local config = require "rt.config"
local db = require "rt.db"
local fs = require "rt.fs"
local json = require "rt.json"
local log = require "rt.log"
local sched = require "rt.sched"
local task = require "rt.task"
local time = require "rt.time"
local vm = require "rt.vm"
local modules = require "candled.modules"
local sandbox = require "candled.sandbox"
local scripts = require "candled.scripts"

local M = {}

local STATE_LOAD = "SELECT state FROM script_state WHERE script = ?"
local STATE_SAVE = [[INSERT INTO script_state (script, state, updated) VALUES (?, ?, ?)
  ON CONFLICT (script) DO UPDATE SET state = excluded.state, updated = excluded.updated]]
local VERSION_TABLE = [[CREATE TABLE IF NOT EXISTS script_version (script TEXT PRIMARY KEY,
  version TEXT, updated INTEGER NOT NULL)]]
local VERSION_LOAD = "SELECT version FROM script_version WHERE script = ?"
local VERSION_SAVE = [[INSERT INTO script_version (script, version, updated) VALUES (?, ?, ?)
  ON CONFLICT (script) DO UPDATE SET version = excluded.version, updated = excluded.updated]]

-- ctx.state tables by script name: owned here, not by the scripts, so they outlive a script's code.
local states = {}
-- The ctx of the run in progress, by script name (one run at a time per script).
local current = {}
-- Scripts by file: {file, module, name, mod, gen, loaded_at, src, scheduled (schedule name or nil),
-- every, cron, last_error, error (full), rejected_at, watch_token}.
local entries = {}
-- Load failures of lib/strategy modules by file: {name, file, last_error, rejected_at, src}.
local failed_modules = {}
local cfg_status = { kind = "config", version = 1, loaded_at = os.time() }
local busy = false               -- a reload is in progress (reloads yield between groups)

-- ---- ctx.state --------------------------------------------------------------------------------

local function load_state(name)
  if states[name] then return states[name] end
  local row = db.first(STATE_LOAD, name)
  local state = row and json.safe.decode(row.state)
  if type(state) ~= "table" then state = {} end
  states[name] = state
  return state
end

local function save_state(name, state)
  local text, err = json.safe.encode(state)
  if not text then
    log.warn("ctx.state cannot be saved as JSON", { script = name, error = err })
    return
  end
  local ok, msg = db.exec(STATE_SAVE, name, text, os.time())
  if not ok then log.warn("ctx.state not saved", { script = name, error = msg }) end
end

local function deep_copy(v, seen)
  if type(v) ~= "table" then return v end
  seen = seen or {}
  if seen[v] then return seen[v] end
  local c = {}
  seen[v] = c
  for k, x in pairs(v) do c[deep_copy(k, seen)] = deep_copy(x, seen) end
  return c
end

local function deep_equal(a, b)
  if a == b then return true end
  if type(a) ~= "table" or type(b) ~= "table" then return false end
  for k, v in pairs(a) do
    if not deep_equal(v, b[k]) then return false end
  end
  for k in pairs(b) do
    if a[k] == nil then return false end
  end
  return true
end

-- The version a script's state was last migrated to: (known, version). Stored as JSON.
local function stored_version(name)
  local row = db.first(VERSION_LOAD, name)
  if not row then return false end
  return true, row.version and json.safe.decode(row.version)
end

local function save_version(name, version)
  db.exec(VERSION_SAVE, name, version ~= nil and json.safe.encode(version) or nil, os.time())
end

-- ---- runs -------------------------------------------------------------------------------------

-- The function the scheduler runs as a task for each run (it keeps `mod`: a run started before a
-- reload finishes on the old code), and the one it calls after each run (outside the task) to save
-- ctx.state, whatever way the run ended. ctx.config is read at the start of each run.
local function make_run(name, mod)
  return function()
    local ctx = { name = name, config = scripts.config(name, mod), state = load_state(name),
                  log = sandbox.rt_module("rt.log") }     -- the read-only view: ctx.log is shared
    current[name] = ctx
    return mod.run(ctx)
  end
end

local dones = {}
local function done_for(name)
  dones[name] = dones[name] or function()
    local ctx = current[name]
    current[name] = nil
    if not ctx then return end
    if states[name] ~= nil and states[name] ~= ctx.state then
      log.warn("ctx.state was migrated during this run: the run's changes to it are dropped", { script = name })
      return
    end
    states[name] = ctx.state
    save_state(name, ctx.state)
  end
  return dones[name]
end

-- ---- watching files ---------------------------------------------------------------------------

-- How often a watching task checks that its script is still scheduled with the same code. Stopping
-- the daemon removes every schedule; the watchers then end within this time so the stop can complete.
local WATCH_CHECK = 0.5

-- One task per watched path: a change runs the script now (or right after its current run).
local function watch_file(e, token, name, path)
  local w <close> = fs.watch(path)
  while e.watch_token == token and not vm.stopping() do
    if w:wait(WATCH_CHECK) and e.watch_token == token then
      log.info("watched file changed: running the script", { name = name, path = path })
      if not sched.trigger(name) then return end
    end
  end
end

-- The paths the script's `watch(config)` returns, without duplicates; relative ones resolve
-- against the config file's directory (the working directory without a config file).
-- Returns the list, or nil and why.
local function watch_paths(mod, cfg)
  if type(mod.watch) ~= "function" then return nil, "'watch' must be a function, got " .. type(mod.watch) end
  local ok, paths = xpcall(mod.watch, debug.traceback, cfg)
  if not ok then return nil, "'watch' raised: " .. tostring(paths) end
  local n = 0
  if type(paths) == "table" then
    for _ in pairs(paths) do n = n + 1 end
  end
  if type(paths) ~= "table" or n ~= #paths then
    return nil, "'watch' must return a list of paths, got " .. (type(paths) == "table" and "a table with other keys" or type(paths))
  end
  local file = config.file()
  local dir = file and file:match("^(.*)/[^/]*$")
  local out, seen = {}, {}
  for i, p in ipairs(paths) do
    if type(p) ~= "string" or p == "" then
      return nil, ("'watch' must return a list of paths, got %s at [%d]"):format(
        type(p) == "string" and "an empty string" or "a " .. type(p), i)
    end
    if dir and p:sub(1, 1) ~= "/" then p = dir .. "/" .. p end
    if not seen[p] then
      seen[p] = true
      out[#out + 1] = p
    end
  end
  return out
end

-- (Re)start the watching tasks of a scheduled script; the previous ones end on their next check.
local function start_watching(e)
  e.watch_token = nil
  if e.mod.watch == nil or not e.scheduled then return end
  local paths, why = watch_paths(e.mod, scripts.config(e.name, e.mod))
  if not paths then
    log.error("script 'watch' failed: it runs on its schedule only", { file = e.file, name = e.name, error = why })
    return
  end
  local token = {}
  e.watch_token = token
  for _, path in ipairs(paths) do
    task.spawn(watch_file, e, token, e.name, path)
    log.info("script watches a file", { name = e.name, path = path })
  end
end

-- ---- schedules --------------------------------------------------------------------------------

-- When script table `mod` named `name` runs under config `whole` (nil: the one in force):
-- {every=, cron=}, or nil and why not ("disabled", "module": no run) and an error for bad timing.
local function timing(name, mod, whole)
  if mod.run == nil then return nil, "module" end
  local on, why = scripts.enabled(name, mod, whole)
  if not on then return nil, "disabled", why end
  local s = ((whole and whole.schedules) or config.get("schedules"))[name] or {}
  local every, cron = mod.every, mod.cron
  if s.every ~= nil or s.cron ~= nil then every, cron = s.every, s.cron end   -- config wins whole
  if every == nil and cron == nil then return nil, "error", "needs 'every' or 'cron'" end
  local ok, err = sched.check(every, cron)
  if not ok then return nil, "error", err end
  return { every = every, cron = cron }
end

-- Make the scheduler match entry e (its code and the config in force). Returns true, or nil, why.
local function sync(e)
  local t, why, err = timing(e.name, e.mod)
  if e.scheduled and (not t or e.scheduled ~= e.name) then
    sched.remove(e.scheduled)
    e.scheduled, e.every, e.cron = nil, nil, nil
  end
  if not t then
    if why == "disabled" then log.info("script disabled", { name = e.name, by = err }) end
    if why == "error" then return nil, err end
    e.watch_token = nil
    return true
  end
  local changed = not e.scheduled or e.every ~= t.every or e.cron ~= t.cron
  sched.put({ name = e.name, every = t.every, cron = t.cron, run = make_run(e.name, e.mod), done = done_for(e.name) })
  e.scheduled, e.every, e.cron = e.name, t.every, t.cron
  if changed then log.info("script scheduled", { name = e.name, every = t.every, cron = t.cron, file = e.file }) end
  start_watching(e)
  return true
end

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

-- ---- reload / status --------------------------------------------------------------------------

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
      reload_config(false, report)
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

-- What the watcher calls after a debounced change.
local function on_change(what)
  lock()
  local ok, err = xpcall(function()
    if what.config or what.hup then reload_config(false) end
    if what.files or what.hup then sync_disk(what.hup and "retry" or "changed") end
  end, debug.traceback)
  busy = false
  if not ok then error(err, 0) end
end

function M.status()
  local out = {}
  for _, e in pairs(entries) do
    out[#out + 1] = { name = e.mod and e.name or e.module, file = e.file, kind = "script", version = e.gen,
                      loaded_at = e.loaded_at, every = e.every, cron = e.cron, scheduled = e.scheduled ~= nil,
                      last_error = e.last_error, rejected_at = e.rejected_at,
                      module_version = e.mod and e.mod.version, source = e.mod and e.mod.source }
  end
  local seen = {}
  for n, rec in pairs(modules.live) do
    if rec.kind == "module" then
      local f = failed_modules[rec.file]
      seen[rec.file] = true
      out[#out + 1] = { name = n, file = rec.file, kind = "module", version = rec.gen, loaded_at = rec.loaded_at,
                        last_error = f and f.last_error, rejected_at = f and f.rejected_at }
    end
  end
  for file, f in pairs(failed_modules) do
    if not seen[file] then
      out[#out + 1] = { name = f.name, file = file, kind = "module", last_error = f.last_error, rejected_at = f.rejected_at }
    end
  end
  if config.file() then
    out[#out + 1] = { name = "config", file = config.file(), kind = "config", version = cfg_status.version,
                      loaded_at = cfg_status.loaded_at, last_error = cfg_status.last_error,
                      rejected_at = cfg_status.rejected_at }
  end
  table.sort(out, function(a, b) return a.file < b.file end)
  return out
end

-- ---- start ------------------------------------------------------------------------------------

function M.start()
  local dir = config.get("paths.scripts")
  db.exec(VERSION_TABLE)
  local file = config.file()
  cfg_status.src = file and fs.read(file)
  local found, err = scripts.scan(dir)
  if not found then
    log.warn("no scripts directory: nothing is scheduled", { dir = dir, error = err })
    found = {}
  end
  -- Each script loads in its own batch, committed at once so the next script shares its lib modules;
  -- nothing is scheduled until every `check(config)` passed (a bad option stops the daemon).
  local ready, problems, seen = {}, {}, {}
  for _, f in ipairs(found) do
    local e = { file = f.path, module = f.module, name = f.module }
    entries[f.path] = e
    local b, plans = prepare({ f.module })
    if b then
      b:commit()
      ready[#ready + 1] = plans[1]
    elseif plans.check then
      local msg = modules.first_line(plans.error)
      if not seen[msg] then
        seen[msg] = true
        problems[#problems + 1] = msg
      end
    else
      reject({ f.module }, plans, nil, true)
    end
  end
  if #problems > 0 then return nil, (config.file() or "config") .. ": " .. table.concat(problems, "; ") end
  local serr = require("candled.strategy").check()          -- an enabled strategy that cannot run
  if serr then return nil, (config.file() or "config") .. ": " .. serr end
  local count = 0
  for _, plan in ipairs(ready) do
    swap(plan)
    if plan.e.scheduled then count = count + 1 end
  end
  vm.task_slice(config.get("runtime.task_slice"))
  require("candled.reload").start(on_change)
  require("candled.backup").start()
  require("candled.web").start()
  require("candled.notify").start()
  require("candled.strategy").start()
  log.info("daemon started", { scripts = count, database = db.path() })
  return count
end

return M
