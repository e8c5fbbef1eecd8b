-- candled.schedules (embedded): a loaded script's runs and its place in the scheduler: the run
-- function (a ctx with config, state and log), the after-run function that saves ctx.state, the
-- timing a script gets from its table and the config, and sync(entry), which makes the scheduler
-- match an entry of candled.state.
local config = require "rt.config"
local log = require "rt.log"
local sched = require "rt.sched"
local sandbox = require "candled.sandbox"
local script_watch = require "candled.script_watch"
local scripts = require "candled.scripts"
local state = require "candled.state"

local M = {}

local states, current = state.states, state.current
local load_state, save_state = state.load_state, state.save_state
local start_watching = script_watch.start

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

M.timing, M.sync = timing, sync

return M
