-- candled.repl (embedded): what the daemon's REPL does with an input. runtime/repl/server.c carries the
-- bytes (protocol: runtime/repl/proto.h) and calls:
--
--   s          = repl.session(id)        -- a new client: its session (environment over the REPL
--                                        -- globals, so `x = 1` lasts for that client)
--   kind, text = repl.eval(s, src)       -- as a task: "ok", the values rendered | "more", the
--                                        -- syntax error (incomplete input) | "error", message and
--                                        -- traceback
--   list       = repl.complete(s, word)  -- completions of "sta", "rt.ht", "h:jo" (full words)
--
-- As in lua.c: an input is tried as "return <input>" first, then as a statement; a syntax error
-- at <eof> means "incomplete". print() inside an input goes to that client. The REPL globals are
-- _G plus the rt.* modules (as `rt.http` and as `http`) and the helpers below.
local alert = require "rt.alert"
local budget = require "rt.budget"
local db = require "rt.db"
local link = require "rt.repl"
local sched = require "rt.sched"
local task = require "rt.task"
local time = require "rt.time"

local M = {}

local traceback = debug.traceback

-- ---- rendering values ----------------------------------------------------------------------

local MAX_DEPTH = 4          -- nested tables below this print as {...}
local MAX_ITEMS = 100        -- entries shown per table
local MAX_STRING = 2000      -- bytes of a string shown inside a table
local MAX_OUTPUT = 1 << 20   -- bytes of one rendered result
local WIDTH = 96             -- a table whose entries fit in this many columns prints on one line

local ESCAPES = { ["\n"] = "\\n", ["\r"] = "\\r", ["\t"] = "\\t", ['"'] = '\\"', ["\\"] = "\\\\" }

local function quote(s)
  local more = ""
  if #s > MAX_STRING then
    more = (" ...(%d more bytes)"):format(#s - MAX_STRING)
    s = s:sub(1, MAX_STRING)
  end
  return '"' .. s:gsub('[%c"\\]', function(c) return ESCAPES[c] or ("\\%03d"):format(c:byte()) end) .. '"' .. more
end

local function safe_tostring(v)
  local ok, s = pcall(tostring, v)
  return ok and type(s) == "string" and s or ("<" .. type(v) .. ">")
end

local TYPE_ORDER = { number = 1, string = 2, boolean = 3 }

local function key_less(a, b)
  local ta, tb = TYPE_ORDER[type(a)] or 4, TYPE_ORDER[type(b)] or 4
  if ta ~= tb then return ta < tb end
  if ta <= 2 then return a < b end
  return safe_tostring(a) < safe_tostring(b)
end

local function render_key(k)
  if type(k) == "string" and k:match("^[%a_][%w_]*$") then return k end
  if type(k) == "string" then return "[" .. quote(k) .. "]" end
  return "[" .. safe_tostring(k) .. "]"
end

local render

-- A table: its array part 1..n without keys, then the other keys sorted; one line when it fits.
local function render_table(t, depth, indent, path)
  if path[t] then return "<cycle>" end
  if depth >= MAX_DEPTH then return next(t) == nil and "{}" or "{...}" end
  local keys, n = {}, 0
  for k in next, t do keys[#keys + 1] = k end
  while t[n + 1] ~= nil do n = n + 1 end
  if #keys == 0 then return "{}" end
  table.sort(keys, key_less)
  path[t] = true
  local items, width, multi, shown = {}, 0, false, 0
  local inner = indent .. "  "
  for i = 1, n do
    if shown >= MAX_ITEMS then break end
    shown = shown + 1
    items[#items + 1] = render(t[i], depth + 1, inner, path)
  end
  for _, k in ipairs(keys) do
    if not (math.type(k) == "integer" and k >= 1 and k <= n) then
      if shown >= MAX_ITEMS then break end
      shown = shown + 1
      items[#items + 1] = render_key(k) .. " = " .. render(t[k], depth + 1, inner, path)
    end
  end
  path[t] = nil
  if #keys > shown then items[#items + 1] = ("...(%d more)"):format(#keys - shown) end
  for _, s in ipairs(items) do
    width = width + #s + 2
    if s:find("\n", 1, true) then multi = true end
  end
  if not multi and width + #indent <= WIDTH then return "{ " .. table.concat(items, ", ") .. " }" end
  return "{\n" .. inner .. table.concat(items, ",\n" .. inner) .. "\n" .. indent .. "}"
end

function render(v, depth, indent, path)
  local tv = type(v)
  if tv == "string" then return quote(v) end
  if tv == "table" then
    local mt = getmetatable(v)
    if type(mt) == "table" and rawget(mt, "__tostring") then return safe_tostring(v) end
    return render_table(v, depth, indent, path)
  end
  if math.type(v) == "float" and v == math.floor(v) and v > -1e15 and v < 1e15 then
    return ("%.1f"):format(v)
  end
  return safe_tostring(v)
end

-- The values of an expression as text: strings at the top level as they are (as lua.c prints).
function M.render(...)
  local out = {}
  for i = 1, select("#", ...) do
    local v = select(i, ...)
    out[i] = type(v) == "string" and v or render(v, 0, "", {})
  end
  local text = table.concat(out, "\t")
  if #text > MAX_OUTPUT then text = text:sub(1, MAX_OUTPUT) .. ("\n...(%d more bytes)"):format(#text - MAX_OUTPUT) end
  return text
end

-- ---- helpers -------------------------------------------------------------------------------

-- A helper's refusal: printed as its message alone, without a traceback.
local Refusal = {}
Refusal.__index = Refusal
Refusal.__tostring = function(e) return e.msg end

local function refuse(fmt, ...)
  error(setmetatable({ msg = fmt:format(...) }, Refusal), 0)
end

local function daemon_fn(name)
  local ok, daemon = pcall(require, "candled.daemon")
  if ok and type(daemon) == "table" and type(daemon[name]) == "function" then return daemon[name] end
  return nil
end

local function by_name(a, b) return tostring(a.name) < tostring(b.name) end

local function collectors()
  local out = {}
  for _, row in ipairs(db.query("SELECT * FROM collectors") or {}) do out[row.script] = row end
  return out
end

-- The API health the source kit keeps (scripts/lib/source.lua), by source; empty before any call.
local function health()
  local out = {}
  local ok, rows = pcall(db.query, [[SELECT source, requests, success_rate, latency_mean, last_ok, last_error,
    last_code, last_error_at, failures_in_row FROM source_health]])
  if ok then for _, r in ipairs(rows or {}) do out[r.source] = r end end
  return out
end

local H = {}
local HELP = {}

HELP[#HELP + 1] = "status()            every scheduled script: schedule, next run, last run, errors, API health"
function H.status()
  local now, sched_by, api = time.now(), {}, health()
  for _, s in ipairs(sched.list()) do sched_by[s.name] = s end
  local out, status = {}, daemon_fn("status")
  if status then
    for _, e in ipairs(status()) do
      local row = {}
      for k, v in pairs(e) do row[k] = v end
      local s = sched_by[e.name]
      if s then
        row.next_in, row.running, row.pending = math.floor((s.next_due - now) * 10 + 0.5) / 10, s.running, s.pending
        row.runs, row.failures, row.last_status = s.runs, s.failures, s.last_status
      end
      row.health = e.source and api[e.source] or nil
      out[#out + 1] = row
    end
  else
    local c = collectors()
    for name, s in pairs(sched_by) do
      local row = { name = name, every = s.every, cron = s.cron, running = s.running, pending = s.pending,
                    next_in = math.floor((s.next_due - now) * 10 + 0.5) / 10, runs = s.runs,
                    failures = s.failures, last_status = s.last_status }
      local m = c[name]
      if m then
        row.last_run, row.last_success, row.success_rate = m.last_run, m.last_success, m.success_rate
        row.last_error, row.last_error_at = m.last_error, m.last_error_at
      end
      out[#out + 1] = row
    end
  end
  table.sort(out, by_name)
  return out
end

HELP[#HELP + 1] = "tasks()             the live tasks: id, name, state, age in seconds"
function H.tasks()
  local now, list = time.now(), task.list()
  for _, t in ipairs(list) do t.age = math.floor((now - t.started) * 10 + 0.5) / 10 end
  table.sort(list, function(a, b) return a.id < b.id end)
  return list
end

HELP[#HELP + 1] = "budgets()           every request budget: windows, queue, pauses, bans, breaker, metrics"
function H.budgets() return budget.status() end

HELP[#HELP + 1] = "runs(script [, n])  the last n (10) runs of a script (all scripts when script is nil)"
function H.runs(script, n)
  n = math.tointeger(n or 10) or refuse("runs: n must be an integer")
  local rows, err
  if script == nil then
    rows, err = db.query("SELECT * FROM runs ORDER BY id DESC LIMIT ?", n)
  else
    rows, err = db.query("SELECT * FROM runs WHERE script = ? ORDER BY id DESC LIMIT ?", tostring(script), n)
  end
  if not rows then refuse("runs: %s", err) end
  return rows
end

HELP[#HELP + 1] = "alerts()            the open alerts, newest first"
function H.alerts() return alert.list() end

HELP[#HELP + 1] = "sql(query, ...)     rows of a query on the daemon's database (parameters bound)"
function H.sql(query, ...)
  if type(query) ~= "string" then refuse("sql: the query must be a string") end
  local rows, err = db.query(query, ...)
  if not rows then refuse("sql: %s", err) end
  return rows
end

HELP[#HELP + 1] = "reload([name])      reload one script (or every script): the report"
function H.reload(name)
  local reload = daemon_fn("reload")
  if not reload then refuse("reload: hot reload is not available in this daemon") end
  return reload(name)
end

HELP[#HELP + 1] = "run(name)           run a script now (or right after its current run)"
function H.run(name)
  if type(name) ~= "string" then refuse("run: give a script name (see status())") end
  if not sched.trigger(name) then refuse("run: no script '%s' is scheduled (see status())", name) end
  return true
end

HELP[#HELP + 1] = "cancel(task_id)     cancel a task (see tasks())"
function H.cancel(id)
  local ok, err = link.cancel(math.tointeger(id) or refuse("cancel: give a task id (see tasks())"))
  if not ok then refuse("cancel: %s", err) end
  return true
end

HELP[#HELP + 1] = "last_error(name)    the last load or run error of a script"
function H.last_error(name)
  local status = daemon_fn("status")
  if not status then refuse("last_error: hot reload is not available in this daemon") end
  for _, e in ipairs(status()) do
    if e.name == name then return e.last_error end
  end
  refuse("last_error: no script '%s' (see status())", tostring(name))
end

HELP[#HELP + 1] = "help()              this list"
function H.help() return table.concat(HELP, "\n") end

-- What `candled reload [name]` runs: prints the report (to the client), raises a one-line
-- summary (exit 1) when anything was rejected.
local function names(v)
  if type(v) ~= "table" then return v ~= nil and tostring(v) or "none" end
  local out = {}
  for _, x in ipairs(v) do out[#out + 1] = type(x) == "table" and tostring(x.name or x.file) or tostring(x) end
  return #out > 0 and table.concat(out, ", ") or "none"
end

function H.reload_report(name, print)
  local reload = daemon_fn("reload")
  if not reload then refuse("hot reload is not available in this daemon") end
  local r = reload(name)
  if type(r) ~= "table" then refuse("reload returned %s", type(r)) end
  local lines = { "loaded: " .. names(r.loaded), "removed: " .. names(r.removed) }
  local rejected = r.rejected or {}
  for _, x in ipairs(rejected) do
    lines[#lines + 1] = ("rejected: %s (%s): %s"):format(tostring(x.name), tostring(x.file), tostring(x.error))
  end
  print(table.concat(lines, "\n"))
  if #rejected > 0 then refuse("%d rejected", #rejected) end
end

-- ---- sessions ------------------------------------------------------------------------------

-- The globals every session sees (its own table is in front): _G, rt.* and the helpers.
local base = setmetatable({}, { __index = _G })
do
  local rt = {}
  for _, name in ipairs { "http", "db", "json", "time", "task", "log", "fs", "csv", "config", "sched",
                          "budget", "alert" } do
    local ok, mod = pcall(require, "rt." .. name)
    if ok then
      rt[name] = mod
      base[name] = mod
    end
  end
  base.rt = rt
  for k, f in pairs(H) do base[k] = f end
  base.reload_report = nil                      -- per session: it prints to its client
end

function M.session(id)
  local env = setmetatable({}, { __index = base })
  env.print = function(...)
    local parts = table.pack(...)
    for i = 1, parts.n do parts[i] = safe_tostring(parts[i]) end
    link.send(id, table.concat(parts, "\t") .. "\n")
  end
  env.reload_report = function(name) return H.reload_report(name, env.print) end
  return { id = id, env = env }
end

-- ---- evaluation ----------------------------------------------------------------------------

-- The message handler: a helper's refusal as is; anything else with the traceback of the input's
-- own frames (the frames below xpcall are this module's).
local function on_error(e)
  if getmetatable(e) == Refusal then return e.msg end
  local msg = type(e) == "string" and e or nil
  if not msg then
    local mt = getmetatable(e)
    msg = type(mt) == "table" and mt.__tostring and safe_tostring(e) or ("(error object is a %s value)"):format(type(e))
  end
  local tb = traceback(msg, 2)
  return (tb:gsub("\n%s*%[C%]: in function 'xpcall'.*$", ""))
end

local function finish(ok, ...)
  if not ok then return "error", (...) end
  return "ok", M.render(...)
end

function M.eval(s, src)
  local chunk, err = load("return " .. src, "=repl", "t", s.env)
  if not chunk then
    chunk, err = load(src, "=repl", "t", s.env)
    if not chunk then
      if err:sub(-5) == "<eof>" then return "more", err end
      return "error", err
    end
  end
  return finish(xpcall(chunk, on_error))
end

-- ---- completion ----------------------------------------------------------------------------

local function get(o, k)
  local ok, v = pcall(function() return o[k] end)
  return ok and v or nil
end

-- The string keys of o that are identifiers, with those of its __index chain (tables only).
local function fields(o, out, seen, depth)
  if depth > 8 or seen[o] then return end
  seen[o] = true
  if type(o) == "table" then
    for k in next, o do
      if type(k) == "string" and k:match("^[%a_][%w_]*$") then out[k] = true end
    end
  end
  local mt = getmetatable(o)
  if type(mt) == "table" then
    local idx = rawget(mt, "__index")
    if type(idx) == "table" then fields(idx, out, seen, depth + 1) end
    local methods = rawget(mt, "methods")       -- rt.* handles keep their methods here
    if type(methods) == "table" then fields(methods, out, seen, depth + 1) end
  end
end

function M.complete(s, word)
  local prefix, sep, partial = word:match("^(.-)([%.:]?)([%a_]?[%w_]*)$")
  if not prefix then return {} end
  local obj = s.env
  if sep ~= "" then
    if not prefix:match("^[%a_][%w_]*$") and not prefix:match("^[%a_][%w_]*[%.%w_]*[%w_]$") then return {} end
    for k in prefix:gmatch("[^%.]+") do
      obj = get(obj, k)
      if obj == nil then return {} end
    end
  elseif prefix ~= "" then
    return {}
  end
  local found = {}
  fields(obj, found, {}, 0)
  local out = {}
  for k in pairs(found) do
    if k:sub(1, #partial) == partial and (sep ~= ":" or type(get(obj, k)) == "function") then
      out[#out + 1] = prefix .. sep .. k
    end
  end
  table.sort(out)
  return out
end

return M
