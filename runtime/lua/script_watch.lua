-- candled.script_watch (embedded): a scheduled script's `watch = function(config) return {path,
-- ...} end`: one task per path waits on rt.fs.watch(path) and triggers a run on every change
-- (sched.trigger: now, or right after the current run). A bad `watch` (not a function, raises,
-- returns anything but a list of path strings) is logged with the file, and the script keeps its
-- schedule without watching.
--
--   script_watch.start(entry)   -- (re)start the watching tasks of a script entry (candled.state)
local config = require "rt.config"
local fs = require "rt.fs"
local log = require "rt.log"
local sched = require "rt.sched"
local task = require "rt.task"
local vm = require "rt.vm"
local scripts = require "candled.scripts"

local M = {}

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

M.start = start_watching

return M
