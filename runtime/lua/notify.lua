-- candled.notify (embedded): alert delivery. Every alert opened or resolved (the alerts table, from
-- any process on the database) is sent once to each URL of alerts.webhooks as a JSON POST:
--   {"event": "opened"|"resolved", "id", "kind", "subject", "level", "message", "opened",
--    "resolved", "count", "host": "candled"}
-- through the budget "alerts" (30 a minute, 2 retries with backoff; budgets.alerts in config.lua
-- overrides it), from a task of its own: a slow or down receiver never holds up collection. A
-- delivery that fails (transport error or a status outside 2xx) stays pending and is tried again
-- on later polls, waiting twice as long after each failure (at most 5 minutes); table
-- alert_deliveries records each (alert, event, url): attempts, last error, delivered time. Events
-- older than the moment a URL was first configured are not sent to it (no flood of history).
-- The same task raises and resolves the `stale_series` alerts (check_stale, every alerts.stale_check).
local alert = require "rt.alert"
local budget = require "rt.budget"
local config = require "rt.config"
local db = require "rt.db"
local http = require "rt.http"
local json = require "rt.json"
local log = require "rt.log"
local task = require "rt.task"
local time = require "rt.time"
local vm = require "rt.vm"

local M = {}

local TABLES = [[
CREATE TABLE IF NOT EXISTS alert_targets (url TEXT PRIMARY KEY, since REAL NOT NULL);
CREATE TABLE IF NOT EXISTS alert_deliveries (alert INTEGER NOT NULL, event TEXT NOT NULL, url TEXT NOT NULL,
  attempts INTEGER NOT NULL DEFAULT 0, last_try REAL, last_error TEXT, delivered REAL,
  PRIMARY KEY (alert, event, url));
]]

local BUDGET = { windows = { { per = "1m", limit = 30 } }, retries = 2, backoff = { base = 0.5, cap = 5 },
                 breaker = { failures = 1000, cooldown = 5 } }

-- Events for `url` not delivered yet: {alert row, event} oldest first.
local function pending(url, since)
  return db.query([[
    SELECT a.*, e.event, d.attempts, d.last_try FROM alerts a JOIN (SELECT 'opened' AS event UNION ALL SELECT 'resolved') e
      ON (e.event = 'opened' AND a.opened >= ?2) OR (e.event = 'resolved' AND a.resolved >= ?2)
    LEFT JOIN alert_deliveries d ON d.alert = a.id AND d.event = e.event AND d.url = ?1
    WHERE d.delivered IS NULL
    ORDER BY coalesce(CASE e.event WHEN 'resolved' THEN a.resolved END, a.opened), a.id]], url, since) or {}
end

local function deliver(url, a)
  local body = json.encode({ event = a.event, id = a.id, kind = a.kind, subject = a.subject, level = a.level,
    message = a.message, opened = a.opened, resolved = a.resolved, count = a.count, host = "candled" })
  local res, err = http.request({ method = "POST", url = url, body = body, budget = "alerts", timeout = 10,
    headers = { ["content-type"] = "application/json" } })
  if res and res.status >= 200 and res.status < 300 then return true end
  return false, res and ("HTTP " .. res.status) or err
end

local function record(url, a, ok, err)
  db.exec([[INSERT INTO alert_deliveries (alert, event, url, attempts, last_try, last_error, delivered)
    VALUES (?1, ?2, ?3, 1, ?4, ?5, ?6) ON CONFLICT (alert, event, url) DO UPDATE SET attempts = attempts + 1,
    last_try = ?4, last_error = ?5, delivered = ?6]], a.id, a.event, url, time.now(), err, ok and time.now() or nil)
end

--- One pass: deliver what is pending to every configured URL. Returns deliveries made, failures.
function M.pass()
  local made, failed = 0, 0
  for _, url in ipairs(config.get("alerts.webhooks") or {}) do
    db.exec("INSERT OR IGNORE INTO alert_targets (url, since) VALUES (?, ?)", url, time.now())
    local since = db.first("SELECT since FROM alert_targets WHERE url = ?", url).since
    for _, a in ipairs(pending(url, since)) do
      if a.last_try and a.last_try + math.min(300, 0.5 * 2 ^ math.min(a.attempts, 10)) > time.now() then
        break                          -- the oldest pending event waits out its backoff; the rest after it
      end
      local ok, err = deliver(url, a)
      record(url, a, ok, err)
      if ok then
        made = made + 1
      else
        failed = failed + 1
        log.warn("alert delivery failed; it is tried again later", { url = url, alert = a.kind, event = a.event,
          error = err })
        break                          -- keep the order: this URL's later events wait for this one
      end
    end
  end
  return made, failed
end

--- Raise `stale_series` (subject "source/instrument/timeframe") for every series whose newest
--- candle closed more than two bars and two minutes ago, and that had a candle within
--- alerts.stale_horizon (older ones count as retired); resolve it when the series is fresh again.
function M.check_stale()
  local horizon = time.duration(config.get("alerts.stale_horizon"))
  local open = {}
  for _, a in ipairs(db.query("SELECT subject FROM alerts WHERE kind = 'stale_series' AND resolved IS NULL") or {}) do
    open[a.subject] = true
  end
  for _, r in ipairs(require("candled.web").series()) do
    local subject = ("%s/%s/%s"):format(r.source, r.instrument, r.timeframe)
    if r.stale and r.age < horizon then
      alert.raise("stale_series", subject, ("%s: the newest candle closed %.0f s ago (bars of %d s)"):format(subject,
        r.age, r.timeframe_seconds), "warn")
    elseif open[subject] and not r.stale then
      alert.resolve("stale_series", subject)
    end
  end
end

local function loop()
  local every = time.duration(config.get("alerts.poll"))
  local stale_every, stale_at = time.duration(config.get("alerts.stale_check")), 0
  while not vm.stopping() do
    if time.monotonic() >= stale_at then
      stale_at = time.monotonic() + stale_every
      M.check_stale()
    end
    M.pass()
    local till = time.monotonic() + every
    while not vm.stopping() and time.monotonic() < till do time.sleep(math.min(0.5, every)) end
  end
end

--- Start the stale-series checks and the deliveries (to alerts.webhooks, when there are any).
function M.start()
  assert(db.exec(TABLES))
  if #(config.get("alerts.webhooks") or {}) > 0 then budget.define("alerts", BUDGET) end
  task.spawn(loop)
end

return M
