-- candled.scripts (embedded): finding and loading the scripts under paths.scripts, for the daemon
-- (candled.daemon schedules them) and for the subcommands scripts provide (candled.cli).
--
--   list, err  = scripts.discover([dir])    -- every script below dir (default paths.scripts)
--   files, err = scripts.scan(dir)          -- {{path=, module=}, ...}: every *.lua, sorted
--   mod, err   = scripts.load(path)         -- the table the file returns, or nil, error
--   name       = scripts.module_name(rel)   -- "binance/klines.lua" -> "binance.klines"
--   cfg        = scripts.config(name, mod)  -- the script's options (ctx.config)
--   on, why    = scripts.enabled(name, mod) -- false, "<config key>" when config turns it off
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
-- lib/ (plain modules for require) are skipped. Loading runs the file's chunk in its own
-- environment over _G, where print() goes to the log; a script starts nothing at load time.
local config = require "rt.config"
local fs = require "rt.fs"
local log = require "rt.log"

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

local function script_print(...)
  local parts = table.pack(...)
  for i = 1, parts.n do parts[i] = tostring(parts[i]) end
  log.info(table.concat(parts, "\t"))
end

-- Load one file: its table, or nil and why (syntax error, error with traceback, wrong types).
function M.load(path)
  local env = setmetatable({ print = script_print }, { __index = _G })
  local chunk, err = loadfile(path, "t", env)
  if not chunk then return nil, err end
  local ok, mod = xpcall(chunk, debug.traceback)
  if not ok then return nil, mod end
  if type(mod) ~= "table" then return nil, path .. ": must return a table, returned " .. type(mod) end
  if mod.run ~= nil and type(mod.run) ~= "function" then return nil, path .. ": 'run' must be a function" end
  if mod.name ~= nil and type(mod.name) ~= "string" then return nil, path .. ": 'name' must be a string" end
  if mod.source ~= nil and type(mod.source) ~= "string" then return nil, path .. ": 'source' must be a string" end
  return mod
end

-- config section `section` entry `key` (script names hold dots, so no dotted path lookup).
local function entry(section, key)
  return config.get(section)[key] or {}
end

-- The script's options: its source's section, overlaid with scripts.<name>. A fresh table.
function M.config(name, mod)
  local cfg = {}
  if mod.source then
    for k, v in pairs(entry("sources", mod.source)) do cfg[k] = v end
  end
  for k, v in pairs(entry("scripts", name)) do cfg[k] = v end
  return cfg
end

function M.enabled(name, mod)
  if entry("scripts", name).enabled == false then return false, "scripts." .. name .. ".enabled" end
  if mod.source and entry("sources", mod.source).enabled == false then
    return false, "sources." .. mod.source .. ".enabled"
  end
  return true
end

function M.discover(dir)
  dir = dir or config.get("paths.scripts")
  local files, err = M.scan(dir)
  if not files then return {}, err end
  for _, f in ipairs(files) do
    local mod, why = M.load(f.path)
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
