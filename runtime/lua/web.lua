-- candled.web (embedded): what the daemon's HTTP endpoint answers (runtime/http_server.c serves
-- the static page itself and hands every other GET here, on the loop thread, never in a task):
--
--   /metrics       Prometheus text exposition (version 0.0.4) of budgets, scripts, series,
--                  the database, backups, alerts and the loop's lag
--   /api/status    the same as JSON, for the status page and other tools
--   /api/series    the stored candle series
--   /api/candles?source=S&instrument=I&timeframe=T[&limit=N]   the newest N (default 300) candles
--
-- Read-only: nothing here writes. M.start() runs the loop-lag probe (a task that sleeps 50 ms and
-- measures how late it wakes up); the largest lateness of the last 10 s is reported.
local budget = require "rt.budget"
local db = require "rt.db"
local fs = require "rt.fs"
local json = require "rt.json"
local task = require "rt.task"
local time = require "rt.time"
local vm = require "rt.vm"

local M = {}

local lag = { now = 0, last = 0, since = 0, samples = 0 }
local started = time.now()

local function lag_probe()
  local step = 0.05
  lag.since = time.monotonic()
  while not vm.stopping() do
    local t0 = time.monotonic()
    time.sleep(step)
    local late = time.monotonic() - t0 - step
    if late > lag.now then lag.now = late end
    lag.samples = lag.samples + 1
    if time.monotonic() - lag.since >= 10 then
      lag.last, lag.now, lag.since = lag.now, 0, time.monotonic()
    end
  end
end

function M.start() task.spawn(lag_probe) end

--- The largest lateness of the loop over the last 10 to 20 seconds, in seconds.
function M.loop_lag() return math.max(lag.now, lag.last) end

-- ---- data ----------------------------------------------------------------------------------

local UNIT = { s = 1, m = 60, h = 3600, d = 86400, w = 604800, M = 2592000 }

local function timeframe_seconds(tf)
  local n, u = tostring(tf):match("^(%d+)([smhdwM])$")
  return n and tonumber(n) * UNIT[u] or nil
end

local function series_rows()
  local rows = db.query([[SELECT s.id, s.source, s.instrument, s.timeframe,
      (SELECT max(ts) FROM bars WHERE series = s.id) AS newest
    FROM series s WHERE s.timeframe != 'trades' ORDER BY s.source, s.instrument, s.timeframe]]) or {}
  local now = time.now()
  for _, r in ipairs(rows) do
    r.timeframe_seconds = timeframe_seconds(r.timeframe)
    if r.newest then
      -- the newest bar closes at newest + timeframe: the age counts from then
      r.age = math.max(0, now - r.newest - (r.timeframe_seconds or 0))
      r.stale = r.timeframe_seconds ~= nil and r.age > 2 * r.timeframe_seconds + 120
    end
  end
  return rows
end

local function scripts_rows()
  local out, by = {}, {}
  local ok, list = pcall(function() return require("candled.daemon").status() end)
  for _, e in ipairs(ok and list or {}) do
    if e.kind == "script" then
      local r = { name = e.name, every = e.every, cron = e.cron, scheduled = e.scheduled, last_error = e.last_error }
      out[#out + 1] = r
      by[e.name] = r
    end
  end
  for _, c in ipairs(db.query("SELECT * FROM collectors ORDER BY script") or {}) do
    local r = by[c.script]
    if not r then
      r = { name = c.script }
      out[#out + 1] = r
      by[c.script] = r
    end
    r.runs, r.ok, r.failures, r.rows = c.runs, c.ok, c.failures, c.rows
    r.last_run, r.last_status, r.last_success = c.last_run, c.last_status, c.last_success
    r.consecutive_failures, r.total_duration = c.consecutive_failures, c.total_duration
    r.last_error = r.last_error or c.last_error
  end
  table.sort(out, function(a, b) return a.name < b.name end)
  return out
end

local function budgets_rows()
  local out = {}
  for name, b in pairs(budget.status() or {}) do
    b.name = name
    out[#out + 1] = b
  end
  table.sort(out, function(a, b) return a.name < b.name end)
  return out
end

local function database_info()
  local path = db.path()
  local st, wal = fs.stat(path), fs.stat(path .. "-wal")
  local ok, last = pcall(db.first, [[SELECT max(finished) AS t FROM backups WHERE check_result = 'ok']])
  local t = ok and last and last.t or nil
  return { path = path, size = st and st.size or 0, wal_size = wal and wal.size or 0, last_backup = t,
           backup_age = t and time.now() - t or nil }
end

M.series = series_rows

function M.status()
  return {
    time = time.now(), started = started, loop_lag = M.loop_lag(),
    scripts = scripts_rows(), budgets = budgets_rows(), series = series_rows(), database = database_info(),
    alerts = db.query([[SELECT id, kind, subject, level, message, opened, last_seen, count FROM alerts
      WHERE resolved IS NULL ORDER BY opened DESC]]) or {},
  }
end

-- ---- Prometheus text exposition -------------------------------------------------------------

local function escape(v)
  return (tostring(v):gsub("\\", "\\\\"):gsub("\n", "\\n"):gsub('"', '\\"'))
end

local function number(v)
  if v == math.huge then return "+Inf" end
  if v == -math.huge then return "-Inf" end
  if v ~= v then return "NaN" end
  if math.type(v) == "integer" then return tostring(v) end
  return ("%.17g"):format(v)
end

-- Families in the order they are first declared; their samples grouped under one HELP and TYPE.
local function exposition()
  local fams, order = {}, {}
  local function family(name, kind, help)
    local f = fams[name]
    if not f then
      f = { name = name, kind = kind, help = help, lines = {} }
      fams[name] = f
      order[#order + 1] = f
    end
    return f
  end
  local function sample(name, kind, help, labels, value, suffix)
    if value == nil then return end
    local f = family(name, kind, help)
    local parts = {}
    for _, kv in ipairs(labels or {}) do parts[#parts + 1] = ('%s="%s"'):format(kv[1], escape(kv[2])) end
    f.lines[#f.lines + 1] = ("%s%s%s %s"):format(name, suffix or "", #parts > 0 and "{" .. table.concat(parts, ",") .. "}"
      or "", number(value))
  end
  local function render()
    local out = {}
    for _, f in ipairs(order) do
      out[#out + 1] = ("# HELP %s %s\n# TYPE %s %s\n"):format(f.name, f.help, f.name, f.kind)
      out[#out + 1] = table.concat(f.lines, "\n") .. "\n"
    end
    return table.concat(out)
  end
  return sample, render
end

local BUCKETS = { 0.1, 0.5, 1, 5, 30, 120, 600 }

local function duration_histograms()
  local cols = {}
  for i, le in ipairs(BUCKETS) do cols[i] = ("sum(ended - started <= %s) AS b%d"):format(le, i) end
  return db.query(([[SELECT script, count(*) AS n, sum(ended - started) AS total, %s FROM runs
    WHERE ended IS NOT NULL GROUP BY script]]):format(table.concat(cols, ", "))) or {}
end

function M.metrics()
  local sample, render = exposition()
  local s = M.status()
  sample("candled_up", "gauge", "1 while the daemon answers", nil, 1)
  sample("candled_start_time_seconds", "gauge", "When the daemon started (Unix time)", nil, s.started)
  sample("candled_loop_lag_seconds", "gauge", "Largest lateness of a 50 ms timer on the loop over the last 10 to 20 s",
    nil, s.loop_lag)
  for _, b in ipairs(s.budgets) do
    local l = { { "budget", b.name } }
    for _, w in ipairs(b.windows or {}) do
      local wl = { { "budget", b.name }, { "window", w.per } }
      sample("candled_budget_window_limit", "gauge", "Weight a budget window allows (after learned limits)", wl, w.effective)
      sample("candled_budget_window_used", "gauge", "Weight used in the current window", wl, w.used)
      sample("candled_budget_window_remaining", "gauge", "Weight left in the current window", wl, w.remaining)
    end
    local m = b.metrics or {}
    sample("candled_budget_queued", "gauge", "Requests waiting for the budget", l, b.queued)
    sample("candled_budget_requests_total", "counter", "Requests sent through the budget", l, m.requests)
    sample("candled_budget_weight_total", "counter", "Weight spent", l, m.weight)
    sample("candled_budget_waits_total", "counter", "Requests that had to wait for the budget", l, m.waits)
    sample("candled_budget_wait_seconds_total", "counter", "Seconds requests waited for the budget", l, m.wait_seconds)
    sample("candled_budget_retries_total", "counter", "Retried requests", l, m.retries)
    sample("candled_budget_throttled_total", "counter", "HTTP 429 responses", l, m.throttled)
    sample("candled_budget_bans_total", "counter", "Bans (418, or 429s in a row)", l, m.bans)
    sample("candled_budget_failures_total", "counter", "Failed requests", l, m.failures)
    sample("candled_budget_banned", "gauge", "1 while the budget is banned", l, b.banned_until and 1 or 0)
    local state = b.breaker and b.breaker.state or "closed"
    for _, st in ipairs({ "closed", "open", "half_open" }) do
      sample("candled_budget_breaker_state", "gauge", "1 for the circuit breaker's current state",
        { { "budget", b.name }, { "state", st } }, state == st and 1 or 0)
    end
  end
  for _, r in ipairs(s.scripts) do
    local l = { { "script", r.name } }
    sample("candled_script_runs_total", "counter", "Finished runs of the script", l, r.runs or 0)
    sample("candled_script_failures_total", "counter", "Failed runs of the script", l, r.failures or 0)
    sample("candled_script_rows_written_total", "counter", "Rows the script's runs wrote", l, r.rows or 0)
    sample("candled_script_last_success_timestamp_seconds", "gauge", "End of the last successful run (Unix time)", l,
      r.last_success)
    sample("candled_script_consecutive_failures", "gauge", "Failed runs in a row", l, r.consecutive_failures or 0)
  end
  for _, h in ipairs(duration_histograms()) do
    for i, le in ipairs(BUCKETS) do
      sample("candled_script_run_duration_seconds", "histogram", "Duration of the script's runs",
        { { "script", h.script }, { "le", number(le + 0.0) } }, h["b" .. i] or 0, "_bucket")
    end
    sample("candled_script_run_duration_seconds", "histogram", "", { { "script", h.script }, { "le", "+Inf" } }, h.n,
      "_bucket")
    sample("candled_script_run_duration_seconds", "histogram", "", { { "script", h.script } }, h.total or 0, "_sum")
    sample("candled_script_run_duration_seconds", "histogram", "", { { "script", h.script } }, h.n, "_count")
  end
  for _, r in ipairs(s.series) do
    local l = { { "source", r.source }, { "instrument", r.instrument }, { "timeframe", r.timeframe } }
    sample("candled_series_newest_candle_timestamp_seconds", "gauge", "Open time of the newest stored candle", l, r.newest)
    sample("candled_series_age_seconds", "gauge", "Seconds since the newest stored candle closed", l, r.age)
    sample("candled_series_timeframe_seconds", "gauge", "The series' bar length", l, r.timeframe_seconds)
  end
  local d = s.database
  sample("candled_database_size_bytes", "gauge", "Size of the database file", nil, d.size)
  sample("candled_database_wal_size_bytes", "gauge", "Size of the database's write-ahead log", nil, d.wal_size)
  sample("candled_backup_last_success_timestamp_seconds", "gauge", "End of the newest verified backup", nil, d.last_backup)
  sample("candled_backup_age_seconds", "gauge", "Seconds since the newest verified backup ended", nil, d.backup_age)
  local kinds = {}
  for _, a in ipairs(s.alerts) do kinds[a.kind] = (kinds[a.kind] or 0) + 1 end
  local names = {}
  for k in pairs(kinds) do names[#names + 1] = k end
  table.sort(names)
  for _, e in ipairs(require("rt.events").stats()) do     -- event subscribers (rt.events), by id
    local l = { { "subscriber", e.name }, { "id", tostring(e.id) } }
    sample("candled_events_delivered_total", "counter", "Events handed to the subscriber", l, e.delivered)
    sample("candled_events_dropped_total", "counter", "Events dropped because the subscriber's queue was full", l,
      e.dropped)
    sample("candled_events_queued", "gauge", "Events waiting in the subscriber's queue", l, e.queued)
    sample("candled_events_queue_capacity", "gauge", "Size of the subscriber's queue", l, e.capacity)
  end
  sample("candled_alerts_open", "gauge", "Open alerts", { { "kind", "all" } }, #s.alerts)
  for _, k in ipairs(names) do sample("candled_alerts_open", "gauge", "Open alerts", { { "kind", k } }, kinds[k]) end
  return render()
end

-- ---- routes ---------------------------------------------------------------------------------

local function decode(s)
  return (s:gsub("+", " "):gsub("%%(%x%x)", function(h) return string.char(tonumber(h, 16)) end))
end

local function params(query)
  local p = {}
  for k, v in query:gmatch("([^&=]+)=?([^&]*)") do p[decode(k)] = decode(v) end
  return p
end

local JSON = "application/json"

local function candles(q)
  if not (q.source and q.instrument and q.timeframe) then
    return 400, JSON, json.encode({ error = "source, instrument and timeframe are required" })
  end
  local limit = math.tointeger(tonumber(q.limit or 300)) or 300
  if limit < 1 or limit > 10000 then return 400, JSON, json.encode({ error = "limit: from 1 to 10000" }) end
  local rows = db.query([[SELECT ts, open, high, low, close, volume FROM candles WHERE source = ? AND instrument = ?
    AND timeframe = ? ORDER BY ts DESC LIMIT ?]], q.source, q.instrument, q.timeframe, limit) or {}
  local out = {}
  for i = #rows, 1, -1 do
    local r = rows[i]
    out[#out + 1] = { r.ts, r.open, r.high, r.low, r.close, r.volume }
  end
  return 200, JSON, json.encode({ source = q.source, instrument = q.instrument, timeframe = q.timeframe,
    columns = { "ts", "open", "high", "low", "close", "volume" }, candles = out })
end

--- One GET: status code, content type, body (nil status: not found).
function M.handle(path, query)
  if path == "/metrics" then return 200, "text/plain; version=0.0.4; charset=utf-8", M.metrics() end
  if path == "/api/status" then return 200, JSON, json.encode(M.status()) end
  if path == "/api/series" then return 200, JSON, json.encode(series_rows()) end
  if path == "/api/candles" then return candles(params(query)) end
  return nil
end

-- ---- candled status: the same on one screen ----------------------------------------------

local function ago(s)
  if not s then return "-" end
  if s < 120 then return ("%.0f s"):format(s) end
  if s < 7200 then return ("%.0f min"):format(s / 60) end
  if s < 172800 then return ("%.1f h"):format(s / 3600) end
  return ("%.1f d"):format(s / 86400)
end

M.commands = {}

function M.commands.status(args, ctx)
  if #args > 0 then return nil, ("status: unexpected argument '%s'"):format(args[1]), 2 end
  local s, now, out = M.status(), time.now(), {}
  local function put(fmt, ...) out[#out + 1] = fmt:format(...) end
  put("daemon: %s    database: %s (%.1f MiB, WAL %.1f MiB)    last verified backup: %s ago",
    ctx.daemon and "running" or "NOT RUNNING", s.database.path, s.database.size / 1048576,
    s.database.wal_size / 1048576, ago(s.database.backup_age))
  put("\nscripts")
  if #s.scripts == 0 then put("  none has run yet") end
  for _, r in ipairs(s.scripts) do
    put("  %-28s last run %-9s %-12s runs %-7d failures %-5d rows %d%s", r.name,
      r.last_run and ago(now - r.last_run) or "never", r.last_status or "-", r.runs or 0, r.failures or 0, r.rows or 0,
      (r.consecutive_failures or 0) > 0 and r.last_error and ("\n      " .. r.last_error) or "")
  end
  put("\nbudgets")
  if #s.budgets == 0 then put("  none") end
  for _, b in ipairs(s.budgets) do
    local w = {}
    for _, x in ipairs(b.windows or {}) do w[#w + 1] = ("%s %d/%d"):format(x.per, math.floor(x.used), x.effective) end
    put("  %-20s %-30s requests %-7d 429s %-4d bans %-3d %s", b.name, table.concat(w, ", "),
      b.metrics and b.metrics.requests or 0, b.metrics and b.metrics.throttled or 0, b.metrics and b.metrics.bans or 0,
      b.banned_until and "BANNED" or ("breaker " .. (b.breaker and b.breaker.state or "closed")))
  end
  put("\nopen alerts")
  if #s.alerts == 0 then put("  none") end
  for _, a in ipairs(s.alerts) do
    put("  %-5s %-16s %-24s %s (since %s ago, x%d)", a.level, a.kind, a.subject, a.message, ago(now - a.opened), a.count)
  end
  local stale = 0
  for _, r in ipairs(s.series) do if r.stale then stale = stale + 1 end end
  put("\nseries: %d, %d stale (newest candle older than two bars and two minutes)", #s.series, stale)
  local shown = 0
  for _, r in ipairs(s.series) do
    if r.stale and shown < 20 then
      shown = shown + 1
      put("  %-14s %-40s %-4s newest candle %s ago", r.source, r.instrument, r.timeframe, ago(r.age))
    end
  end
  if stale > shown then put("  ... and %d more", stale - shown) end
  -- strategies of the config (strategies.<name>) and the signals they stored
  local strategies, names = require("rt.config").get("strategies") or {}, {}
  for name in pairs(strategies) do names[#names + 1] = name end
  table.sort(names)
  put("\nstrategies")
  if #names == 0 then put("  none configured (strategies.<name> in the config)") end
  local have = db.first("SELECT 1 AS y FROM sqlite_master WHERE type = 'table' AND name = 'signals'")
  for _, name in ipairs(names) do
    local n, last = 0, nil
    if have then
      n = db.first("SELECT count(*) AS n FROM signals WHERE strategy = ?", name).n
      last = db.first("SELECT ts, side, instrument FROM signals WHERE strategy = ? ORDER BY ts DESC, id DESC LIMIT 1", name)
    end
    put("  %-20s %-4s signals %-7d %s", name, strategies[name].enabled == false and "off" or "live", n,
      last and ("last %s %s, bar of %s ago"):format(last.side, last.instrument, ago(now - last.ts)) or "none yet")
  end
  io.stdout:write(table.concat(out, "\n"), "\n")
  return 0
end

return M
