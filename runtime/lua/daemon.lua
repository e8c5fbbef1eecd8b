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
-- The jobs live in their own modules: candled.state (ctx.state and the shared registries),
-- candled.schedules (runs and timing), candled.script_watch (a script's `watch` paths),
-- candled.reload (the reload transaction, config included), candled.edits (the task that notices
-- edits), candled.status (the rows of status()). This module starts them.
--
-- A scheduled script may also have `watch = function(config) return {path, ...} end` (config is
-- its ctx.config; candled.script_watch). `check = function(config)` raises on options the script
-- cannot use: the daemon then does not start (see start); on a reload the new version, or a new
-- config, is rejected.
local config = require "rt.config"
local db = require "rt.db"
local fs = require "rt.fs"
local log = require "rt.log"
local vm = require "rt.vm"
local modules = require "candled.modules"
local reload = require "candled.reload"
local scripts = require "candled.scripts"
local state = require "candled.state"
local status = require "candled.status"

local M = {}

local entries, cfg_status = state.entries, state.cfg
local prepare, swap, reject = reload.prepare, reload.swap, reload.reject

M.reload = reload.reload
M.status = status.status

-- ---- start ------------------------------------------------------------------------------------

function M.start()
  local dir = config.get("paths.scripts")
  state.open()
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
  require("candled.edits").start(reload.on_change)
  require("candled.backup").start()
  require("candled.web").start()
  require("candled.notify").start()
  require("candled.strategy").start()
  log.info("daemon started", { scripts = count, database = db.path() })
  return count
end

return M
