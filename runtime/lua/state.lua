-- candled.state (embedded): what the daemon keeps for its scripts, apart from their code, so that
-- it outlives a reload: each script's ctx.state (saved as JSON in script_state when a run ends), the
-- version its state was last migrated to (script_version), and the registries the reload
-- transaction (candled.reload), the schedules (candled.schedules) and the status (candled.status)
-- share.
local db = require "rt.db"
local json = require "rt.json"
local log = require "rt.log"

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
M.states = {}
-- The ctx of the run in progress, by script name (one run at a time per script).
M.current = {}
-- Scripts by file: {file, module, name, mod, gen, loaded_at, src, scheduled (schedule name or nil),
-- every, cron, last_error, error (full), rejected_at, watch_token}.
M.entries = {}
-- Load failures of lib/strategy modules by file: {name, file, last_error, rejected_at, src}.
M.failed_modules = {}
-- The config file's load status.
M.cfg = { kind = "config", version = 1, loaded_at = os.time() }

local states = M.states

-- The table that script_version lives in (created when the daemon starts).
function M.open() db.exec(VERSION_TABLE) end

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

M.load_state, M.save_state, M.deep_copy, M.deep_equal = load_state, save_state, deep_copy, deep_equal
M.stored_version, M.save_version = stored_version, save_version

return M
