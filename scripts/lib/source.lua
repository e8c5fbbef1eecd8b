-- source: the kit every collector builds on, so that a REST OHLCV source is one short Lua file.
--
--   options   checked source options (one-line errors naming the key), defaults filled in
--   get       a budgeted GET shaped into decoded JSON or `nil, message, CODE`, with the API's
--             health (success rate, latency, last error) kept per source in `source_health`
--   candles   the candle columns and keys, storing a page, the newest/oldest stored bar
--   sync      one series brought up to date through a source's `fetch(lo, hi)`: forward from the
--             newest stored bar, back to the history target (a cursor saved with every page),
--             intervals the source answered without a bar recorded as known-empty, gaps fetched
--             again (lib/series.lua does the bookkeeping)
local db = require "rt.db"
local http = require "rt.http"
local json = require "rt.json"
local series = require "lib.series"
local time = require "rt.time"

local K = {}

K.COLUMNS = { "source", "instrument", "timeframe", "ts", "open", "high", "low", "close", "volume",
              "quote_volume", "trades" }
K.KEYS = { "source", "instrument", "timeframe", "ts" }

-- ---- options ---------------------------------------------------------------------------------

-- Checks: each returns nil when the value is fine, else why not.
local C = {}
K.check = C
function C.string(v) if type(v) ~= "string" or v == "" then return "must be a non-empty string" end end
function C.boolean(v) if type(v) ~= "boolean" then return "must be true or false" end end
function C.number(lo, hi)
  return function(v)
    if type(v) ~= "number" or v ~= v or v < lo or (hi and v > hi) then
      return ("must be a number from %s%s"):format(lo, hi and " to " .. hi or " up")
    end
  end
end
function C.list_of(check)
  return function(v)
    if type(v) ~= "table" then return "must be a list" end
    for i, x in ipairs(v) do
      local why = check(x)
      if why then return ("[%d] %s"):format(i, why) end
    end
  end
end
function C.one_of(...)
  local set = { ... }
  if type(set[1]) == "table" then set = set[1] end
  return function(v)
    for _, x in ipairs(set) do if v == x then return end end
    return ("must be one of %s, not %s"):format(table.concat(set, " "), tostring(v))
  end
end
-- A table whose keys pass `key` and values pass `value`.
function C.map(key, value)
  return function(v)
    if type(v) ~= "table" then return "must be a table" end
    for k, x in pairs(v) do
      local why = key(k)
      if why then return ("key %s %s"):format(tostring(k), why) end
      why = value(x)
      if why then return ("[%s] %s"):format(tostring(k), why) end
    end
  end
end

-- The options of sources.<name> (a script's config section) checked against `spec` ({key =
-- {default, check}}; a default of false means none) -> a new table with the defaults filled in.
-- Raises "sources.<name>.<key>: <why>" for an unknown key or a bad value.
function K.options(name, spec, cfg)
  local o = {}
  for k, v in pairs(cfg or {}) do
    local s = spec[k]
    if not s then error(("sources.%s.%s: unknown key"):format(name, k), 0) end
    local why = s[2](v)
    if why then error(("sources.%s.%s: %s"):format(name, k, why), 0) end
    o[k] = v
  end
  for k, s in pairs(spec) do
    if o[k] == nil and s[1] ~= false then o[k] = s[1] end
  end
  if o.base_url then o.base_url = o.base_url:gsub("/+$", "") end
  return o
end

-- A finite number from a decimal string, a JSON number, null or "NaN"; else nil.
function K.num(v)
  if type(v) == "string" then v = tonumber(v) end
  if type(v) ~= "number" or v ~= v or v == math.huge or v == -math.huge then return nil end
  return v
end

-- ---- HTTP and health -------------------------------------------------------------------------

local HEALTH = [[INSERT INTO source_health (source, requests, ok, latency_total, last_ok, last_error,
    last_code, last_error_at, updated, failures_in_row) VALUES (?1, 1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, 1 - ?2)
  ON CONFLICT (source) DO UPDATE SET requests = requests + 1, ok = ok + ?2,
    failures_in_row = CASE WHEN ?2 = 1 THEN 0 ELSE failures_in_row + 1 END,
    latency_total = latency_total + ?3, last_ok = coalesce(?4, last_ok),
    last_error = coalesce(?5, last_error), last_code = coalesce(?6, last_code),
    last_error_at = coalesce(?7, last_error_at), updated = ?8]]

local migrated = false
function K.migrate()
  local v, err = db.migrate("source_kit", {
    [[CREATE TABLE source_health (source TEXT PRIMARY KEY, requests INTEGER NOT NULL DEFAULT 0,
        ok INTEGER NOT NULL DEFAULT 0, latency_total REAL NOT NULL DEFAULT 0,
        success_rate REAL GENERATED ALWAYS AS (1.0 * ok / requests) VIRTUAL,
        latency_mean REAL GENERATED ALWAYS AS (latency_total / requests) VIRTUAL,
        last_ok REAL, last_error TEXT, last_code TEXT, last_error_at REAL, updated REAL)]],
    -- which canonical instrument (BTC/USD) a source's instrument (bitcoin/usd, BTC-USD, BTCUSDT) is
    [[CREATE TABLE canonical_map (source TEXT NOT NULL, instrument TEXT NOT NULL, canonical TEXT NOT NULL,
        PRIMARY KEY (source, instrument));
      CREATE INDEX canonical_map_by_canonical ON canonical_map (canonical);
      ALTER TABLE source_health ADD COLUMN failures_in_row INTEGER NOT NULL DEFAULT 0]],
  })
  migrated = true
  if not v then error("source kit tables: " .. err) end
end

-- One answer (or failure) of a source's API, for its health: `code` nil on success.
function K.record(source, seconds, code, message)
  if not migrated then K.migrate() end          -- the table is created on first use
  migrated = true
  local now = time.now()
  db.exec(HEALTH, source, code and 0 or 1, seconds, not code and now or nil, code and message or nil,
          code, code and now or nil, now)
end

-- GET `url` through a budget -> the decoded JSON body of a 200, or nil, message, CODE. `label`
-- names the request in messages (a path: never the key-bearing headers). opts: source (for
-- health), budget, priority, query, headers, weight, timeout, decode (false: the raw body),
-- error_text(doc, status) -> the API's own error message from an error body.
-- Codes: the transport's (TIMEOUT, BANNED, BREAKER_OPEN, ...), NOT_FOUND (404), AUTH (401, 403),
-- RATE_LIMITED (429 after the budget's retries), HTTP (other statuses), JSON.
function K.get(url, label, opts)
  local t0 = time.monotonic()
  local res, err, code = http.get(url, { query = opts.query, budget = opts.budget, weight = opts.weight,
    priority = opts.budget and (opts.priority or "realtime"), timeout = opts.timeout,
    headers = opts.headers or { Accept = "application/json" } })
  local function done(msg, c)
    if opts.source then K.record(opts.source, time.monotonic() - t0, c, msg) end
    return nil, msg, c
  end
  if not res then return done(("%s: %s"):format(label, err), code) end
  local doc, jerr
  if opts.decode ~= false or res.status ~= 200 then doc, jerr = json.safe.decode(res.body) end
  if res.status ~= 200 then
    local said = type(doc) == "table" and opts.error_text and opts.error_text(doc, res.status)
    said = said or res.body:sub(1, 200)
    if res.status == 404 then return done(("%s: not found (404)%s"):format(label,
      said ~= "" and opts.error_text and ": " .. said or ""), "NOT_FOUND") end
    local c = (res.status == 401 or res.status == 403) and "AUTH" or res.status == 429 and "RATE_LIMITED" or "HTTP"
    return done(("%s: HTTP %d: %s"):format(label, res.status, said), c)
  end
  if opts.decode == false then
    if opts.source then K.record(opts.source, time.monotonic() - t0) end
    return res
  end
  if type(doc) ~= "table" then return done(("%s: not JSON: %s"):format(label, jerr or "?"), "JSON") end
  if opts.source then K.record(opts.source, time.monotonic() - t0) end
  return doc, res
end

-- Failures that end a run at once: the budget refuses, or the run was cancelled.
K.FATAL = { BANNED = true, BREAKER_OPEN = true, QUEUE_FULL = true, CANCELLED = true }

-- ---- tables ----------------------------------------------------------------------------------

-- Insert or update `rows` of `tbl` (keys: the conflict target); columns in `keep` (e.g.
-- first_seen) keep their stored value on update. `columns` (optional) fixes the column order,
-- else the first row's keys, sorted. Raises on a database failure, so the caller's db.tx rolls back.
function K.upsert(tbl, rows, keys, keep, columns)
  if #rows == 0 then return end
  if not columns then
    columns = {}
    for k in pairs(rows[1]) do columns[#columns + 1] = k end
    table.sort(columns)
  end
  local list = {}                               -- one batch through db.upsert: positional rows
  for i, r in ipairs(rows) do                   -- (by name when the first column is nil: a
    local row = {}                              -- positional row is told by its first value)
    if r[columns[1]] ~= nil then
      for j, c in ipairs(columns) do row[j] = r[c] end
    else
      for _, c in ipairs(columns) do row[c] = r[c] end
    end
    list[i] = row
  end
  local ok, err = db.upsert(tbl, list, { keys = keys, columns = columns, keep = keep })
  if not ok then error(("%s: %s"):format(tbl, err)) end
end

-- An `instruments` row of a source (first_seen kept).
function K.instrument(source, instrument, fields)
  local now = os.time()
  local r = { source = source, instrument = instrument, symbol = fields.symbol, name = fields.name,
              base = fields.base, quote = fields.quote, status = fields.status or "active",
              first_seen = now, last_seen = now }
  K.upsert("instruments", { r }, { "source", "instrument" }, { "first_seen" },
           { "source", "instrument", "symbol", "name", "base", "quote", "status", "first_seen", "last_seen" })
end

-- Map a source's instrument to a canonical one (kept in canonical_map).
function K.map(source, instrument, canonical)
  K.upsert("canonical_map", { { source = source, instrument = instrument, canonical = canonical } },
           { "source", "instrument" })
end

-- ---- candles ---------------------------------------------------------------------------------

-- Store candle rows (positional, COLUMNS order; quote_volume and trades may be left out);
-- returns the rows inserted and the rows changed. Raises on a database failure.
function K.store(rows)
  if #rows == 0 then return 0, 0 end
  local ins, upd, err = db.upsert("candles", rows, { keys = K.KEYS, columns = K.COLUMNS })
  if not ins then error("candles: " .. (upd or err)) end
  return ins, upd
end

-- The bar times of candle rows, ascending.
function K.bar_times(rows)
  local out = {}
  for i, r in ipairs(rows) do out[i] = r[4] end
  return out
end

K.newest, K.oldest = series.newest, series.oldest

-- The oldest bar a series wants: `days` back from `now`, on the bar grid.
function K.target(days, step, now)
  return time.floor(now - days * 86400, step)
end

-- ---- sync: one series through a windowed fetch ---------------------------------------------

-- `S` describes the source: S.name, S.step(tf) (bar seconds), S.max_bars(tf) (bars one call can
-- answer), optional S.earliest(o, tf, now) (the oldest bar the API serves at that interval), and
-- S.fetch(o, instrument, tf, lo, hi, priority) -> rows, complete | nil, message, CODE: the bars
-- with lo <= ts <= hi (any order; the kit keeps closed ones inside the window), `complete` when
-- the answer covers the whole window (a bar it lacks is an empty interval). Optional: S.skew
-- (seconds: a bar is final only when it closed that long before the sync started, before any
-- request was sent, so a server clock behind ours never hands us its forming bar) and S.reread
-- (the forward pass starts at the newest stored bar, not after it, whenever a newer bar is due: a
-- bar stored too early is corrected on the next run, at no extra call). S.fetch may return a third
-- value with its rows: the bar time up to which the answer is complete beyond `hi` (an API that
-- answers "the next N bars from start" and sent fewer has nothing more up to its present): the
-- windows up to there are not asked and count as answered.
local EMPTY_HI = [[SELECT max(stop) AS ts FROM empty_intervals
  WHERE source = ? AND instrument = ? AND timeframe = ?]]

local function window(S, o, inst, tf, step, lo, hi, priority, now, on_rows)
  local a, max = lo, S.max_bars(tf)
  while a <= hi do
    local b = math.min(hi, a + (max - 1) * step)
    local got, complete, code = S.fetch(o, inst, tf, a, b, priority)
    if not got then return nil, complete, code end
    local through = complete and math.tointeger(code) and math.min(code, hi) or b
    if through < b then through = b end
    local rows = got
    -- the common answer (ascending, no duplicate, all inside the window, on the grid and closed)
    -- is kept as it is; any other is filtered, deduplicated and sorted
    local prev = nil
    for i = 1, #got do
      local ts = got[i][4]
      if not (ts >= a and ts <= b and ts % step == 0 and ts + step <= now) or (prev and ts <= prev) then
        rows = nil
        break
      end
      prev = ts
    end
    if not rows then
      local seen = {}
      rows = {}
      for _, r in ipairs(got) do
        local ts = r[4]
        if ts >= a and ts <= b and ts % step == 0 and ts + step <= now and not seen[ts] then
          seen[ts], rows[#rows + 1] = true, r
        end
      end
      table.sort(rows, function(x, y) return x[4] < y[4] end)
    end
    db.tx(function()
      on_rows(rows, a, b)
      if complete and rows == got and rows[1] and rows[#rows][4] - rows[1][4] == (#rows - 1) * step then
        -- no hole between the bars (ascending, unique, on the grid, as many as the span holds):
        -- only the two ends can be empty
        series.record_empties(S.name, inst, tf, step, { rows[1][4] }, a - step, nil, now)
        series.record_empties(S.name, inst, tf, step, { rows[#rows][4] }, nil, through + step, now)
      elseif complete then
        series.record_empties(S.name, inst, tf, step, K.bar_times(rows), a - step, through + step, now)
      end
    end)
    a = (complete or not rows[1]) and through + step or rows[#rows][4] + step
  end
  return true
end

-- Bring one series up to the last closed bar, back to `days` of history, and fill its gaps.
-- Returns the bars stored, or nil, message, CODE (pages stored so far stay stored).
function K.sync(S, o, inst, tf, days, now)
  now = (now or time.now()) - (S.skew or 0)
  local step = S.step(tf)
  local last = time.floor(now, step) - step
  local target = K.target(days, step, now)
  local earliest = S.earliest and S.earliest(o, tf, now)
  if earliest then target = math.max(target, time.floor(earliest, step) + step) end
  local c = series.want(S.name, inst, tf, target)
  local stored = 0
  local function keep(rows)
    local ins, upd = K.store(rows)
    stored = stored + ins + upd
  end
  local newest = series.newest(S.name, inst, tf)
  -- forward: from the newest stored bar or known-empty interval (or the target) to the present
  local empty = db.first(EMPTY_HI, S.name, inst, tf).ts
  local from = newest and math.max(newest, empty or newest) + step or c.target
  if from <= last then
    if S.reread and newest and from == newest + step then from = newest end
    local ok, err, code = window(S, o, inst, tf, step, from, last,
                                 last - from > S.max_bars(tf) * step and "backfill" or "realtime", now, keep)
    if not ok then return nil, err, code end
  end
  -- back: a deeper target than the oldest stored bar, newest window first, cursor on every page
  if not newest then                            -- the forward pass started at the target
    c.complete = true
    series.save_cursor(S.name, inst, tf, c)
  end
  while not c.complete do
    local hi = (c.before or series.oldest(S.name, inst, tf) or last + step) - step
    if hi < c.target then
      c.complete = true
    else
      local lo = math.max(c.target, hi - (S.max_bars(tf) - 1) * step)
      local any = false
      local ok, err, code = window(S, o, inst, tf, step, lo, hi, "backfill", now, function(rows)
        keep(rows)
        any = any or rows[1] ~= nil
        c.pages, c.rows, c.before = (c.pages or 0) + 1, (c.rows or 0) + #rows, lo
        if lo <= c.target then c.complete = true end
        series.save_cursor(S.name, inst, tf, c)
      end)
      if not ok then return nil, err, code end
      if not any then c.complete, c.first_ts = true, series.oldest(S.name, inst, tf) end
    end
    series.save_cursor(S.name, inst, tf, c)
  end
  -- gaps between stored bars that are neither bars nor known-empty, from where the last search ended
  local checked = series.cursor(S.name, inst, tf).gaps_checked
  local gfrom = checked or c.target
  for _, gap in ipairs(series.gaps(S.name, inst, tf, step, gfrom, now)) do
    series.gap_event("found", S.name, inst, tf, gap)
    local ok, err, code = window(S, o, inst, tf, step, gap.after + step, gap.before - step, "backfill", now, keep)
    if not ok then return nil, err, code end
    series.gap_event("filled", S.name, inst, tf, gap)
  end
  if series.newest(S.name, inst, tf) then
    series.set_gaps_checked(S.name, inst, tf, checked,
                            math.max(gfrom, time.floor(now - series.SETTLE, step) - step))
  end
  return stored
end

-- Run `fn(item)` for every item; a NOT_FOUND or other failure is counted and the rest continue,
-- a fatal one (the budget refuses) ends at once. Returns true, or nil, message, CODE.
function K.each(items, fn, log)
  local failed, first, first_code = 0, nil, nil
  for _, item in ipairs(items) do
    local ok, err, code = fn(item)
    if not ok then
      if K.FATAL[code] then return nil, err, code end
      failed, first, first_code = failed + 1, first or err, first_code or code
      if log then log.warn("collection failed", { error = err, code = code }) end
    end
  end
  if failed > 0 then return nil, ("%d of %d failed; first: %s"):format(failed, #items, first), first_code end
  return true
end

return K
