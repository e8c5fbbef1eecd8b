-- candled.backup (embedded): the backup policy. The copy, its integrity check and the atomic write
-- are the store's (rt.backup, on a background thread); this module decides when, where, what kind, how
-- many to keep, records each backup in the database and raises alerts.
--
--   In the daemon (start()): a task takes a backup whenever the newest scheduled one is older than
--   backup.every (default a day). It is a "weekly" backup when no weekly one is younger than seven
--   days, else a "daily" one; the newest backup.keep_daily daily and backup.keep_weekly weekly
--   files are kept, older ones deleted (their rows stay, marked removed). Another task runs
--   quick_check every backup.check_every; a failure raises alert `corruption` (the start-up check
--   then recovers: see main.c). A failed backup raises `backup_failed`; the next good one resolves it.
--   Manual backups (`candled backup`) are kind "manual" and never deleted by retention.
--
--   Table backups: one row per attempt (path, kind, started, finished, size, rows per table as JSON,
--   check_result "ok" or the error, removed = when retention deleted the file).
local alert = require "rt.alert"
local backup = require "rt.backup"
local config = require "rt.config"
local db = require "rt.db"
local fs = require "rt.fs"
local json = require "rt.json"
local log = require "rt.log"
local task = require "rt.task"
local time = require "rt.time"
local vm = require "rt.vm"

local M = {}

local WEEK = 7 * 86400
local TABLE = [[CREATE TABLE IF NOT EXISTS backups (id INTEGER PRIMARY KEY, path TEXT NOT NULL,
  kind TEXT NOT NULL, started REAL NOT NULL, finished REAL NOT NULL, size INTEGER, tables TEXT,
  check_result TEXT NOT NULL, removed REAL)]]

local function ensure_table() assert(db.exec(TABLE)) end

local function file_name(kind, at)
  return ("%s/candled-%s-%s.db"):format(config.get("backup.dir"), os.date("!%Y%m%dT%H%M%SZ", math.floor(at)), kind)
end

local function record(path, kind, info, err, started)
  ensure_table()
  local ok, e = db.exec([[INSERT INTO backups (path, kind, started, finished, size, tables, check_result)
    VALUES (?, ?, ?, ?, ?, ?, ?)]], path, kind, info and info.started or started,
    info and info.finished or time.now(), info and math.tointeger(info.size), info and json.encode(info.tables),
    info and info.check or err)
  if not ok then log.error("backups: cannot record the backup", { path = path, error = e }) end
end

--- Take one verified backup. kind: "daily" | "weekly" | "manual"; dest defaults to a file under
--- backup.dir. Returns info {path, kind, size, started, finished, check, tables} or nil, message.
function M.take(kind, dest)
  local started = time.now()
  dest = dest or file_name(kind, started)
  local dir = dest:match("^(.*)/[^/]*$")
  if dir and dir ~= "" then
    local ok, err = fs.mkdir(dir)
    if not ok then
      record(dest, kind, nil, err, started)
      return nil, err
    end
  end
  local info, err = backup.take(dest)
  record(dest, kind, info, err, started)
  if not info then
    log.error("backup failed", { path = dest, error = err })
    alert.raise("backup_failed", "backup", ("backup to %s failed: %s"):format(dest, err), "error")
    return nil, err
  end
  info.path, info.kind = dest, kind
  log.info("backup written", { path = dest, kind = kind, bytes = math.tointeger(info.size),
    seconds = ("%.2f"):format(info.finished - info.started) })
  alert.resolve("backup_failed", "backup")
  return info
end

--- Delete the backups of each scheduled kind beyond its keep count (newest kept). Returns the
--- paths removed.
function M.prune()
  ensure_table()
  local removed = {}
  for kind, key in pairs({ daily = "backup.keep_daily", weekly = "backup.keep_weekly" }) do
    local keep = config.get(key)
    local rows = db.query([[SELECT id, path FROM backups WHERE kind = ? AND check_result = 'ok'
      AND removed IS NULL ORDER BY started DESC, id DESC LIMIT -1 OFFSET ?]], kind, keep)
    for _, r in ipairs(rows or {}) do
      local ok, err, code = fs.remove(r.path)
      if ok or code == "ENOENT" then
        db.exec("UPDATE backups SET removed = ? WHERE id = ?", time.now(), r.id)
        removed[#removed + 1] = r.path
      else
        log.warn("backups: cannot delete an old backup", { path = r.path, error = err })
      end
    end
  end
  table.sort(removed)
  return removed
end

--- The backups table, newest first ({} when none was ever taken).
function M.list()
  ensure_table()
  return db.query("SELECT * FROM backups ORDER BY started DESC, id DESC") or {}
end

--- The scheduled kind due now ("weekly" or "daily"), or nil when the newest is younger than every.
function M.due(now)
  ensure_table()
  local last = db.first([[SELECT max(started) AS t FROM backups WHERE kind IN ('daily', 'weekly')
    AND check_result = 'ok']])
  if last and last.t and now - last.t < time.duration(config.get("backup.every")) then return nil end
  local weekly = db.first("SELECT max(started) AS t FROM backups WHERE kind = 'weekly' AND check_result = 'ok'")
  if weekly and weekly.t and now - weekly.t < WEEK then return "daily" end
  return "weekly"
end

-- Sleep `seconds` in half-second naps; false as soon as the daemon is stopping (a stop does not
-- wait out the grace period for these tasks).
local function nap(seconds)
  local till = time.now() + seconds
  while not vm.stopping() do
    local left = till - time.now()
    if left <= 0 then return true end
    time.sleep(math.min(left, 0.5))
  end
  return false
end

local function backup_loop()
  while not vm.stopping() do
    local kind = M.due(time.now())
    if kind then
      if M.take(kind) then M.prune() end
      if not nap(60) then return end    -- a failure is retried after a minute at the soonest
    elseif not nap(math.min(time.duration(config.get("backup.every")), 3600) / 4) then
      return
    end
  end
end

local function check_loop()
  local every = time.duration(config.get("backup.check_every"))
  while nap(every) do
    local ok, problem = backup.quick_check()
    if ok then
      alert.resolve("corruption", "database")
    else
      alert.raise("corruption", "database", ("quick_check of %s failed: %s; restart candled to recover it"
        .. " from the newest verified backup"):format(backup.database(), tostring(problem)), "error")
    end
  end
end

--- Start the daemon's backup and check tasks (backup.enabled = false: the checks only).
function M.start()
  ensure_table()
  if config.get("backup.enabled") then task.spawn(backup_loop) end
  task.spawn(check_loop)
end

-- ---- commands: candled backup [--to FILE] | candled backups ----------------------------------

local function human(n)
  if not n then return "-" end
  local units, i = { "B", "KiB", "MiB", "GiB", "TiB" }, 1
  while n >= 1024 and i < #units do n, i = n / 1024, i + 1 end
  return i == 1 and ("%d B"):format(n) or ("%.1f %s"):format(n, units[i])
end

M.commands = {}

function M.commands.backup(args)
  local dest
  local i = 1
  while i <= #args do
    if args[i] == "--to" and args[i + 1] then
      dest, i = args[i + 1], i + 2
    else
      return nil, ("backup: unexpected argument '%s' (usage: candled backup [--to FILE])"):format(args[i]), 2
    end
  end
  local info, err = M.take("manual", dest)
  if not info then return nil, "backup: " .. err, 1 end
  local names = {}
  for name in pairs(info.tables) do names[#names + 1] = name end
  table.sort(names)
  local counts = {}
  for _, n in ipairs(names) do counts[#counts + 1] = ("%s=%d"):format(n, info.tables[n]) end
  io.stdout:write(("backup %s: %s in %.2f s, integrity_check %s\nrows: %s\n"):format(info.path, human(info.size),
    info.finished - info.started, info.check, table.concat(counts, " ")))
  return 0
end

function M.commands.backups(args)
  if #args > 0 then return nil, ("backups: unexpected argument '%s'"):format(args[1]), 2 end
  local rows = M.list()
  if #rows == 0 then
    io.stdout:write("no backups yet (candled backup takes one; the daemon takes them on schedule)\n")
    return 0
  end
  io.stdout:write(("%-20s  %-7s  %10s  %-8s  %s\n"):format("taken (UTC)", "kind", "size", "check", "file"))
  for _, r in ipairs(rows) do
    local state = r.removed and " (deleted by retention)" or ""
    io.stdout:write(("%-20s  %-7s  %10s  %-8s  %s%s\n"):format(os.date("!%Y-%m-%d %H:%M:%S", math.floor(r.started)),
      r.kind, human(r.size), r.check_result == "ok" and "ok" or "FAILED", r.path, state))
    if r.check_result ~= "ok" then io.stdout:write("    ", r.check_result, "\n") end
  end
  return 0
end

return M
