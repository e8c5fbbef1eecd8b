-- candled.scripts (embedded): finding and loading the scripts under paths.scripts, for the daemon
-- (candled.daemon schedules them) and for the subcommands scripts provide (candled.cli).
--
--   list, err  = scripts.discover([dir])    -- every script below dir (default paths.scripts)
--   files, err = scripts.scan(dir)          -- {{path=, module=}, ...}: every *.lua, sorted
--   mod, err   = scripts.load(path)         -- the table the file returns, or nil, error
--   name       = scripts.module_name(rel)   -- "binance/klines.lua" -> "binance.klines"
--   cfg        = scripts.config(name, mod [, cfg])  -- the script's options (ctx.config)
--   on, why    = scripts.enabled(name, mod [, cfg]) -- false, "<config key>" when config turns it off
--   why        = scripts.validate(mod, path)        -- why a loaded table is not a script, or nil
--
-- discover() returns one entry per file, in path order, whatever the file holds:
--   path     the file                          module   its module name (see module_name)
--   mod      the table it returned, untouched (run, every, cron, watch, commands, ...), or nil
--            when the file failed to load, raised or returned something invalid
--   error    why mod is nil
--   name     mod.name, else the module name
--   config   scripts.config(name, mod) (nil without mod)
--   enabled  false when config turns it off or it failed to load; why: the config key
--            ("scripts.<name>.enabled", "sources.<source>.enabled") or the error
-- A table without `run` is listed too (it may only provide `commands`); only the daemon decides
-- what is scheduled. When dir cannot be listed the list is empty and err says why.
--
-- Layout: the module name is the path below dir with dots; dot-directories and the top-level
-- lib/ (plain modules for require) are skipped. Loading runs the file's chunk in its own sandboxed
-- environment (candled.sandbox: no io, os.execute, debug...; print() goes to the log; globals are
-- read-only) with its top level under the runtime.task_slice budget; a script starts nothing at
-- load time. `cfg` in config/enabled: a whole config table to read instead of rt.config's.
local config = require "rt.config"
local fs = require "rt.fs"
local modules = require "candled.modules"

local M = {}

function M.module_name(rel)
  return (rel:gsub("%.lua$", ""):gsub("/", "."))
end

local function scan(dir, rel, out)
  local names, err, code = fs.list(dir)
  if not names then return nil, err, code end
  for _, n in ipairs(names) do
    local path = dir .. "/" .. n
    local st = fs.stat(path)
    if st and st.type == "dir" then
      if n:sub(1, 1) ~= "." and not (rel == "" and n == "lib") then scan(path, rel .. n .. "/", out) end
    elseif st and st.type == "file" and n:match("%.lua$") then
      out[#out + 1] = { path = path, module = M.module_name(rel .. n) }
    end
  end
  return out
end

-- Every *.lua below dir, depth first, sorted; skips lib/ at the top and dot-directories.
function M.scan(dir)
  return scan(dir, "", {})
end

-- Why `mod` (what path returned) cannot be a script, or nil.
function M.validate(mod, path)
  if type(mod) ~= "table" then return path .. ": must return a table, returned " .. type(mod) end
  if mod.run ~= nil and type(mod.run) ~= "function" then return path .. ": 'run' must be a function" end
  if mod.name ~= nil and type(mod.name) ~= "string" then return path .. ": 'name' must be a string" end
  if mod.source ~= nil and type(mod.source) ~= "string" then return path .. ": 'source' must be a string" end
  if mod.section ~= nil and type(mod.section) ~= "string" then return path .. ": 'section' must be a string" end
  for _, k in ipairs({ "check", "migrate" }) do   -- a bad `watch` is only logged (daemon)
    if mod[k] ~= nil and type(mod[k]) ~= "function" then return path .. ": '" .. k .. "' must be a function" end
  end
  if mod.commands ~= nil and type(mod.commands) ~= "table" then return path .. ": 'commands' must be a table" end
end

-- Load one file in its sandbox (candled.modules): its table, or nil and why (syntax error, error
-- with traceback, interrupted top level, wrong types). A good load becomes the live module.
function M.load(path, module)
  module = module or modules.name_of(path) or path
  local b = modules.batch({ [module] = true })
  local rec, err = b:load(module, path, "script")
  if not rec then return nil, err end
  local why = M.validate(rec.value, path)
  if why then return nil, why end
  b:commit()
  return rec.value
end

-- config section `section` entry `key` (script names hold dots, so no dotted path lookup).
local function entry(section, key, whole)
  local t = whole and whole[section] or (not whole and config.get(section)) or {}
  return t[key] or {}
end

-- The script's options: its source's section (or, for a script with `section = "<key>"`, that
-- top-level config section, e.g. "export"), overlaid with scripts.<name>. A fresh table.
function M.config(name, mod, whole)
  local cfg = {}
  if type(mod.section) == "string" then
    local t = whole and whole[mod.section] or (not whole and config.get(mod.section)) or {}
    for k, v in pairs(t) do cfg[k] = v end
  end
  if mod.source then
    for k, v in pairs(entry("sources", mod.source, whole)) do cfg[k] = v end
  end
  for k, v in pairs(entry("scripts", name, whole)) do cfg[k] = v end
  return cfg
end

function M.enabled(name, mod, whole)
  if entry("scripts", name, whole).enabled == false then return false, "scripts." .. name .. ".enabled" end
  if mod.source and entry("sources", mod.source, whole).enabled == false then
    return false, "sources." .. mod.source .. ".enabled"
  end
  return true
end

function M.discover(dir)
  dir = dir or config.get("paths.scripts")
  local files, err = M.scan(dir)
  if not files then return {}, err end
  for _, f in ipairs(files) do
    local mod, why = M.load(f.path, f.module)
    if mod then
      f.mod, f.name = mod, mod.name or f.module
      f.config = M.config(f.name, mod)
      f.enabled, f.why = M.enabled(f.name, mod)
    else
      f.name, f.error, f.enabled, f.why = f.module, why, false, why
    end
  end
  return files
end

return M
