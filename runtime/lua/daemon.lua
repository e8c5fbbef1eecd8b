-- candled.daemon (embedded): finds the scripts under paths.scripts, loads each in its own
-- environment, and hands the ones that return a `run` function to the scheduler.
--
-- A script's module name is its path below scripts/ with dots ("binance/klines.lua" ->
-- "binance.klines"); its schedule name is `name` from the returned table, else the module name.
-- scripts/lib/ holds plain modules for require and is never scheduled.
local config = require "rt.config"
local db = require "rt.db"
local fs = require "rt.fs"
local json = require "rt.json"
local log = require "rt.log"
local sched = require "rt.sched"

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

-- Every *.lua below dir, depth first, sorted; skips lib/ at the top and dot-directories.
local function scan(dir, prefix, out)
  local names, err = fs.list(dir)
  if not names then return nil, err end
  for _, n in ipairs(names) do
    local path = dir .. "/" .. n
    local st = fs.stat(path)
    if st and st.type == "dir" then
      if n:sub(1, 1) ~= "." and not (prefix == "" and n == "lib") then scan(path, prefix .. n .. ".", out) end
    elseif st and st.type == "file" and n:match("%.lua$") then
      out[#out + 1] = { path = path, module = prefix .. n:gsub("%.lua$", "") }
    end
  end
  return out
end

local function script_print(...)
  local parts = table.pack(...)
  for i = 1, parts.n do parts[i] = tostring(parts[i]) end
  log.info(table.concat(parts, "\t"))
end

-- Load one file. Returns the module table, false for a plain module (no run), or nil, error.
local function load_script(path)
  local env = setmetatable({ print = script_print }, { __index = _G })
  local chunk, err = loadfile(path, "t", env)
  if not chunk then return nil, err end
  local ok, mod = xpcall(chunk, debug.traceback)
  if not ok then return nil, mod end
  if type(mod) ~= "table" then return nil, path .. ": must return a table, returned " .. type(mod) end
  if mod.run == nil then return false end
  if type(mod.run) ~= "function" then return nil, path .. ": 'run' must be a function" end
  if mod.name ~= nil and type(mod.name) ~= "string" then return nil, path .. ": 'name' must be a string" end
  if mod.source ~= nil and type(mod.source) ~= "string" then return nil, path .. ": 'source' must be a string" end
  return mod
end

-- config section `section` entry `key` (script names hold dots, so no dotted path lookup).
local function entry(section, key)
  return config.get(section)[key] or {}
end

-- The script's options: its source's section, overlaid with scripts.<name>.
local function script_config(name, mod)
  local cfg = {}
  if mod.source then
    for k, v in pairs(entry("sources", mod.source)) do cfg[k] = v end
  end
  for k, v in pairs(entry("scripts", name)) do cfg[k] = v end
  return cfg
end

local function enabled(name, mod)
  if entry("scripts", name).enabled == false then return false, "scripts." .. name .. ".enabled" end
  if mod.source and entry("sources", mod.source).enabled == false then
    return false, "sources." .. mod.source .. ".enabled"
  end
  return true
end

-- The function the scheduler runs as a task for each run of `name`, and the one it calls after
-- each run (outside the task) to save ctx.state, whatever way the run ended.
local function runner(name, mod)
  local cfg, last_ctx = script_config(name, mod), nil
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

function M.start()
  local dir = config.get("paths.scripts")
  local files, err = scan(dir, "", {})
  if not files then
    log.warn("no scripts directory: nothing is scheduled", { dir = dir, error = err })
    return 0
  end
  local seen, count = {}, 0
  for _, f in ipairs(files) do
    local mod, why = load_script(f.path)
    if mod == nil then
      log.error("script rejected", { file = f.path, error = why })
    elseif mod then
      local name = mod.name or f.module
      local schedule = entry("schedules", name)
      local every, cron = schedule.every or mod.every, schedule.cron or mod.cron
      local on, switch = enabled(name, mod)
      if seen[name] then
        log.error("script rejected: name already used", { file = f.path, name = name, by = seen[name] })
      elseif not on then
        log.info("script disabled", { name = name, by = switch })
      elseif every == nil and cron == nil then
        log.error("script rejected: needs 'every' or 'cron'", { file = f.path, name = name })
      else
        local run, done = runner(name, mod)
        local ok, perr = pcall(sched.put, { name = name, every = every, cron = cron, run = run, done = done })
        if ok then
          seen[name] = f.path
          count = count + 1
          log.info("script scheduled", { name = name, every = every, cron = cron, file = f.path })
        else
          log.error("script rejected", { file = f.path, name = name, error = perr })
        end
      end
    end
  end
  log.info("daemon started", { scripts = count, database = db.path() })
  return count
end

return M
