-- candled.edits (embedded): the task that notices edits. It watches the directories of
-- paths.scripts and paths.strategies (every subdirectory: inotify is not recursive) and the config
-- file's directory with rt.watch (uv_fs_event), and SIGHUP. After a relevant event it waits for a
-- quiet period of runtime.reload_debounce seconds (editors write a temp file and rename it; the
-- events of one save arrive within a few ms), then calls
--   on_change{config = bool, files = bool, hup = bool}
-- (candled.daemon's sync with the disk). A relevant event: a *.lua file, a directory, the config
-- file. Subdirectories created later are watched after the next change.
--
--   edits.start(on_change)    -- spawns the task; it ends when the daemon stops
local alert = require "rt.alert"
local config = require "rt.config"
local fs = require "rt.fs"
local log = require "rt.log"
local task = require "rt.task"
local vm = require "rt.vm"
local watch = require "rt.watch"

local M = {}

local CHECK = 0.5              -- how often the task looks whether the daemon is stopping

local function dirs_below(dir, out)
  local st = fs.stat(dir)
  if not (st and st.type == "dir") then return out end
  out[#out + 1] = dir
  for _, n in ipairs(fs.list(dir) or {}) do
    if n:sub(1, 1) ~= "." then dirs_below(dir .. "/" .. n, out) end
  end
  return out
end

-- The set of directories to watch now.
local function wanted()
  local set = {}
  for _, d in ipairs(dirs_below(config.get("paths.scripts"), {})) do set[d] = true end
  for _, d in ipairs(dirs_below(config.get("paths.strategies"), {})) do set[d] = true end
  local file = config.file()
  local dir = file and file:match("^(.*)/[^/]*$")
  if dir then set[dir] = true end
  return set
end

local function update(w, watched)
  local want = config.get("runtime.reload_watch", true) and wanted() or {}
  for d in pairs(watched) do
    if not want[d] then
      w:remove(d)
      watched[d] = nil
    end
  end
  for d in pairs(want) do
    if not watched[d] then
      local ok, err = w:add(d)
      if ok then watched[d] = true else log.warn("cannot watch a directory", { dir = d, error = err }) end
    end
  end
end

-- What an event batch means: {config=, files=, hup=}, or nil when nothing relevant changed.
local function classify(ev, into)
  local file = config.file()
  into = into or {}
  if ev.hup then into.hup = true end
  for _, p in ipairs(ev.paths or {}) do
    if p == file then
      into.config = true
    elseif p:match("%.lua$") then
      into.files = true
    else
      local st = fs.stat(p)
      if st and st.type == "dir" or not p:match("/[^/]*$") then into.files = true end
    end
  end
  return into
end

local function loop(on_change)
  local w <close> = watch.new()
  local watched = {}
  update(w, watched)
  w:hup()
  while not vm.stopping() do
    local ev = w:wait(CHECK)
    if ev then
      local what = classify(ev)
      if what.config or what.files or what.hup then
        local quiet = config.get("runtime.reload_debounce", 0.05)
        while true do                          -- until `quiet` seconds pass without an event
          local more = w:wait(quiet)
          if not more then break end
          classify(more, what)
        end
        if vm.stopping() then return end
        local ok, err = xpcall(on_change, debug.traceback, what)
        if not ok then
          alert.raise("reload_failed", "reload", tostring(err):match("^[^\n]*"), "error")
          log.error("reload failed", { error = err })
        end
        update(w, watched)
      end
    end
  end
end

-- The watcher runs under a supervisor: should it ever end with an error (an interruption, a bug),
-- it is logged, raised as alert `reload_failed` (subject "reload") and started again, so later
-- edits and SIGHUP keep working.
local RESTART_DELAY = 1

local function supervise(on_change)
  while not vm.stopping() do
    local ok, err = task.spawn(loop, on_change):join()
    if ok or vm.stopping() then return end
    alert.raise("reload_failed", "reload", tostring(err):match("^[^\n]*"), "error")
    log.error("the reload watcher failed: starting it again", { error = err })
    task.sleep(RESTART_DELAY)
  end
end

function M.start(on_change)
  return task.spawn(supervise, on_change)
end

return M
