-- candled.daemon (embedded): finds the scripts under paths.scripts (candled.scripts) and hands
-- the ones that return a `run` function to the scheduler.
--
-- A script's module name is its path below scripts/ with dots ("binance/klines.lua" ->
-- "binance.klines"); its schedule name is `name` from the returned table, else the module name.
-- scripts/lib/ holds plain modules for require and is never scheduled.
--
-- A scheduled script may also have `watch = function(config) return {path, ...} end` (config is
-- its ctx.config): for each path one task waits on rt.fs.watch(path) and triggers a run on every
-- change (sched.trigger: now, or right after the current run). A bad `watch` (not a function,
-- raises, returns anything but a list of path strings) is logged with the file, and the script
-- keeps its schedule without watching. `check = function(config)` raises on options the script
-- cannot use: the daemon then does not start (see check_options).
local config = require "rt.config"
local db = require "rt.db"
local fs = require "rt.fs"
local json = require "rt.json"
local log = require "rt.log"
local sched = require "rt.sched"
local scripts = require "candled.scripts"
local task = require "rt.task"

local M = {}

local STATE_LOAD = "SELECT state FROM script_state WHERE script = ?"
local STATE_SAVE = [[INSERT INTO script_state (script, state, updated) VALUES (?, ?, ?)
  ON CONFLICT (script) DO UPDATE SET state = excluded.state, updated = excluded.updated]]

-- ctx.state tables by script name: owned here, not by the scripts, so they outlive a script's code.
local states = {}

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

-- The function the scheduler runs as a task for each run of `name`, and the one it calls after
-- each run (outside the task) to save ctx.state, whatever way the run ended.
local function runner(name, mod, cfg)
  local last_ctx
  local function run()
    local ctx = { name = name, config = cfg, state = load_state(name), log = log }
    last_ctx = ctx
    return mod.run(ctx)
  end
  local function done()
    if last_ctx then
      states[name] = last_ctx.state
      save_state(name, last_ctx.state)
      last_ctx = nil
    end
  end
  return run, done
end

-- ---- watching files ---------------------------------------------------------------------------

-- How often a watching task checks that its script is still scheduled. Stopping the daemon
-- removes every schedule; the watchers then end within this time so the stop can complete.
local WATCH_CHECK = 0.5

local function scheduled(name)
  for _, s in ipairs(sched.list()) do
    if s.name == name then return true end
  end
  return false
end

-- One task per watched path: a change runs the script now (or right after its current run).
local function watch_file(name, path)
  local w <close> = fs.watch(path)
  while true do
    if w:wait(WATCH_CHECK) then
      log.info("watched file changed: running the script", { name = name, path = path })
      if not sched.trigger(name) then return end
    elseif not scheduled(name) then
      return
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

-- Start the watching tasks of a scheduled script (s: an entry of scripts.discover()).
local function start_watching(s)
  local paths, why = watch_paths(s.mod, s.config)
  if not paths then
    log.error("script 'watch' failed: it runs on its schedule only", { file = s.path, name = s.name, error = why })
    return
  end
  for _, path in ipairs(paths) do
    task.spawn(watch_file, s.name, path)
    log.info("script watches a file", { name = s.name, path = path })
  end
end

-- ---- start ------------------------------------------------------------------------------------

-- Every enabled script's `check(config)`: it raises on options it cannot use. The daemon does not
-- start with a bad option, as with a bad key of the runtime's own config; the error names the
-- config file and the key (each distinct message once: a source's scripts share options).
local function check_options(list)
  local problems, seen = {}, {}
  for _, s in ipairs(list) do
    if s.mod and s.enabled and type(s.mod.check) == "function" then
      local ok, why = pcall(s.mod.check, s.config)
      if not ok and not seen[tostring(why)] then
        seen[tostring(why)] = true
        problems[#problems + 1] = tostring(why)
      end
    end
  end
  if #problems > 0 then return nil, (config.file() or "config") .. ": " .. table.concat(problems, "; ") end
  return true
end

function M.start()
  local dir = config.get("paths.scripts")
  local list, err = scripts.discover(dir)
  if err then
    log.warn("no scripts directory: nothing is scheduled", { dir = dir, error = err })
    return 0
  end
  local good, why = check_options(list)
  if not good then return nil, why end
  local seen, count = {}, 0
  for _, s in ipairs(list) do
    local mod, name = s.mod, s.name
    if not mod then
      log.error("script rejected", { file = s.path, error = s.error })
    elseif mod.run ~= nil then                 -- a table without run is a plain module
      local schedule = config.get("schedules")[name] or {}
      local every, cron = schedule.every or mod.every, schedule.cron or mod.cron
      if seen[name] then
        log.error("script rejected: name already used", { file = s.path, name = name, by = seen[name] })
      elseif not s.enabled then
        log.info("script disabled", { name = name, by = s.why })
      elseif every == nil and cron == nil then
        log.error("script rejected: needs 'every' or 'cron'", { file = s.path, name = name })
      else
        local run, done = runner(name, mod, s.config)
        local ok, perr = pcall(sched.put, { name = name, every = every, cron = cron, run = run, done = done })
        if ok then
          seen[name] = s.path
          count = count + 1
          log.info("script scheduled", { name = name, every = every, cron = cron, file = s.path })
          if mod.watch ~= nil then start_watching(s) end
        else
          log.error("script rejected", { file = s.path, name = name, error = perr })
        end
      end
    end
  end
  log.info("daemon started", { scripts = count, database = db.path() })
  return count
end

return M
