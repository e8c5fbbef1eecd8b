-- series: bookkeeping of one candle series (source, instrument, timeframe) that any collector
-- shares: backfill cursors, intervals the source reported as empty, and gaps.
--
-- A series' bars are `step` seconds apart, each stamped with its open time. Between two stored
-- bars an interval is either a bar, known-empty (the source answered for that range and had no
-- trades there) or a gap (never fetched, or lost). Known-empty ranges come only from answers that
-- bound them on both sides, and never closer to the present than SETTLE, because a source's
-- cache may not have the newest bars yet.
local db = require "rt.db"
local events = require "rt.events"

local M = {}

M.SETTLE = 180                -- seconds: younger intervals are never declared empty

-- ---- schema ----------------------------------------------------------------------------------
-- The bookkeeping is this library's: created here through db.migrate("series", ...), never by
-- the runtime. Cursors and known-empty ranges are keyed by the series' catalogue id (the runtime's
-- `series` table) in series_backfill and series_empty; the views `backfill` and `empty_intervals`
-- show them by source, instrument and timeframe, with INSTEAD OF triggers taking SQL writes.
--
-- Versions of candled before this library owned the schema created it in the runtime's core
-- migrations (core 4: `backfill` and `empty_intervals` as tables keyed by text; core 6: the
-- tables and views below). Step 1 recognises what a database holds:
-- the views already (core 6 ran): nothing to do, every row stays; the text-keyed tables (core 4
-- ran, core 6 not): their rows move to the id-keyed tables and the views replace them, in the
-- step's transaction; nothing (a new database): the tables and views are created empty.

local V4_TABLES = [[
CREATE TABLE backfill (
  source TEXT NOT NULL, instrument TEXT NOT NULL, timeframe TEXT NOT NULL,
  target INTEGER NOT NULL, before INTEGER, complete INTEGER NOT NULL DEFAULT 0,
  first_ts INTEGER, pages INTEGER NOT NULL DEFAULT 0, rows INTEGER NOT NULL DEFAULT 0,
  gaps_checked INTEGER, updated REAL,
  PRIMARY KEY (source, instrument, timeframe));
CREATE TABLE empty_intervals (
  source TEXT NOT NULL, instrument TEXT NOT NULL, timeframe TEXT NOT NULL,
  start INTEGER NOT NULL, stop INTEGER NOT NULL,
  PRIMARY KEY (source, instrument, timeframe, start)) WITHOUT ROWID;]]

-- the catalogue id of the row `w` (NEW or OLD), and the start of an INSTEAD OF trigger that
-- first makes sure NEW's series is catalogued (never a conflict, so an outer OR REPLACE cannot
-- replace a catalogue row)
local function series_id(w)
  return ("(SELECT id FROM series WHERE source = %s.source AND instrument = %s.instrument"
    .. " AND timeframe = %s.timeframe)"):format(w, w, w)
end
local function ensure_trigger(name, on, w)
  return ("CREATE TRIGGER %s INSTEAD OF %s BEGIN  INSERT INTO series (source, instrument, timeframe)"
    .. " SELECT %s.source, %s.instrument, %s.timeframe  WHERE NOT EXISTS (SELECT 1 FROM series WHERE"
    .. " source = %s.source AND instrument = %s.instrument    AND timeframe = %s.timeframe);")
    :format(name, on, w, w, w, w, w, w)
end

local BY_ID = [[
CREATE TABLE series_backfill (
  series INTEGER PRIMARY KEY, target INTEGER NOT NULL, before INTEGER,
  complete INTEGER NOT NULL DEFAULT 0, first_ts INTEGER, pages INTEGER NOT NULL DEFAULT 0,
  rows INTEGER NOT NULL DEFAULT 0, gaps_checked INTEGER, updated REAL);
CREATE TABLE series_empty (
  series INTEGER NOT NULL, start INTEGER NOT NULL, stop INTEGER NOT NULL,
  PRIMARY KEY (series, start)) WITHOUT ROWID;
INSERT INTO series (source, instrument, timeframe)
  SELECT source, instrument, timeframe FROM backfill
  UNION SELECT source, instrument, timeframe FROM empty_intervals
  EXCEPT SELECT source, instrument, timeframe FROM series;
INSERT INTO series_backfill SELECT s.id, b.target, b.before, b.complete, b.first_ts, b.pages, b.rows,
  b.gaps_checked, b.updated FROM backfill b JOIN series s
  ON s.source = b.source AND s.instrument = b.instrument AND s.timeframe = b.timeframe;
INSERT INTO series_empty SELECT s.id, e.start, e.stop FROM empty_intervals e JOIN series s
  ON s.source = e.source AND s.instrument = e.instrument AND s.timeframe = e.timeframe;
DROP TABLE backfill;
DROP TABLE empty_intervals;
CREATE VIEW backfill AS SELECT s.source AS source, s.instrument AS instrument,
  s.timeframe AS timeframe, b.target AS target, b.before AS before, b.complete AS complete,
  b.first_ts AS first_ts, b.pages AS pages, b.rows AS rows, b.gaps_checked AS gaps_checked,
  b.updated AS updated FROM series s JOIN series_backfill b ON b.series = s.id;
CREATE VIEW empty_intervals AS SELECT s.source AS source, s.instrument AS instrument,
  s.timeframe AS timeframe, e.start AS start, e.stop AS stop
  FROM series s JOIN series_empty e ON e.series = s.id;
]] .. ensure_trigger("backfill_insert", "INSERT ON backfill", "NEW") .. [[
  INSERT INTO series_backfill VALUES (]] .. series_id("NEW") .. [[, NEW.target, NEW.before,
    coalesce(NEW.complete, 0), NEW.first_ts, coalesce(NEW.pages, 0), coalesce(NEW.rows, 0),
    NEW.gaps_checked, NEW.updated); END;
]] .. ensure_trigger("backfill_update", "UPDATE ON backfill", "NEW") .. [[
  UPDATE series_backfill SET series = ]] .. series_id("NEW") .. [[, target = NEW.target,
    before = NEW.before, complete = NEW.complete, first_ts = NEW.first_ts, pages = NEW.pages,
    rows = NEW.rows, gaps_checked = NEW.gaps_checked, updated = NEW.updated
    WHERE series = ]] .. series_id("OLD") .. [[; END;
CREATE TRIGGER backfill_delete INSTEAD OF DELETE ON backfill BEGIN
  DELETE FROM series_backfill WHERE series = ]] .. series_id("OLD") .. [[; END;
]] .. ensure_trigger("empty_intervals_insert", "INSERT ON empty_intervals", "NEW") .. [[
  INSERT INTO series_empty VALUES (]] .. series_id("NEW") .. [[, NEW.start, NEW.stop); END;
]] .. ensure_trigger("empty_intervals_update", "UPDATE ON empty_intervals", "NEW") .. [[
  UPDATE series_empty SET series = ]] .. series_id("NEW") .. [[, start = NEW.start, stop = NEW.stop
    WHERE series = ]] .. series_id("OLD") .. [[ AND start = OLD.start; END;
CREATE TRIGGER empty_intervals_delete INSTEAD OF DELETE ON empty_intervals BEGIN
  DELETE FROM series_empty WHERE series = ]] .. series_id("OLD") .. [[ AND start = OLD.start; END;]]

local function exec(sql)
  local _, err = db.exec(sql)
  if err then error(err, 0) end
end

-- Append, never edit: each entry is one version of the "series" migration set.
M.MIGRATIONS = {
  -- 1: the bookkeeping keyed by series id, whatever an earlier version left (see above)
  function()
    local kinds = {}
    for _, r in ipairs(db.query([[SELECT name, type FROM sqlite_schema
        WHERE name IN ('backfill', 'empty_intervals', 'series_backfill', 'series_empty')]])) do
      kinds[r.name] = r.type
    end
    local state = table.concat({ kinds.backfill or "-", kinds.empty_intervals or "-", kinds.series_backfill or "-",
                                 kinds.series_empty or "-" }, " ")
    if state == "view view table table" then return end   -- core migration 6 made them: kept as they are
    if state == "- - - -" then exec(V4_TABLES)            -- a new database
    elseif state ~= "table table - -" then                -- else core migration 4's tables, moved below
      error("series bookkeeping: unexpected objects (backfill, empty_intervals, series_backfill, series_empty: "
            .. state .. ")", 0)
    end
    exec(BY_ID)
  end,
}

-- Bring the bookkeeping's schema up to date (a read when it is; once per database otherwise,
-- however many processes start at once). Done when this module loads, so every reader that
-- requires it (source.lua, binance.lua, qlib.lua, geckoterminal/) finds the tables.
function M.migrate()
  local v, err = db.migrate("series", M.MIGRATIONS)
  if not v then error("series bookkeeping tables: " .. err, 0) end
  return v
end

local CURSOR = [[SELECT target, before, complete, first_ts, pages, rows, gaps_checked
  FROM backfill WHERE source = ? AND instrument = ? AND timeframe = ?]]
-- Writes go to the id-keyed tables; reads through the views.
local ENSURE = [[INSERT INTO series (source, instrument, timeframe) VALUES (?, ?, ?)
  ON CONFLICT DO NOTHING]]
local ID = "(SELECT id FROM series WHERE source = ?1 AND instrument = ?2 AND timeframe = ?3)"
local CURSOR_PUT = [[INSERT INTO series_backfill (series, target, before, complete, first_ts, pages,
    rows, updated) VALUES (]] .. ID .. [[, ?4, ?5, ?6, ?7, ?8, ?9, ?10)
  ON CONFLICT (series) DO UPDATE SET target = excluded.target,
    before = excluded.before, complete = excluded.complete, first_ts = excluded.first_ts,
    pages = excluded.pages, rows = excluded.rows, updated = excluded.updated]]
-- gaps_checked moves forward only from the value the search started with: a hole noted meanwhile
-- (recheck_gaps) wins.
local GAPS_CHECKED = "UPDATE series_backfill SET gaps_checked = ?5 WHERE series = " .. ID ..
  " AND gaps_checked IS ?4"
local RECHECK = "UPDATE series_backfill SET gaps_checked = min(gaps_checked, ?4) WHERE series = " .. ID
local EMPTY_PUT = "INSERT INTO series_empty (series, start, stop) VALUES (" .. ID .. [[, ?4, ?5)
  ON CONFLICT DO UPDATE SET stop = max(stop, excluded.stop)]]
local BOUNDS = [[SELECT min(ts) AS lo, max(ts) AS hi, count(*) AS n FROM candles
  WHERE source = ? AND instrument = ? AND timeframe = ? AND ts >= ?]]
local EMPTY_COUNT = [[SELECT coalesce(sum((min(stop, ?4) - max(start, ?5)) / ?6 + 1), 0) AS n
  FROM empty_intervals WHERE source = ?1 AND instrument = ?2 AND timeframe = ?3
    AND start <= ?4 AND stop >= ?5]]
local HOLES = [[SELECT ts, next FROM (SELECT ts, lead(ts) OVER (ORDER BY ts) AS next FROM candles
    WHERE source = ? AND instrument = ? AND timeframe = ? AND ts >= ?) WHERE next - ts > ?]]
local EMPTIES_IN = [[SELECT start, stop FROM empty_intervals
  WHERE source = ? AND instrument = ? AND timeframe = ? AND start <= ? AND stop >= ? ORDER BY start]]
local NEWEST = "SELECT max(ts) AS ts FROM candles WHERE source = ? AND instrument = ? AND timeframe = ?"
local OLDEST = "SELECT min(ts) AS ts FROM candles WHERE source = ? AND instrument = ? AND timeframe = ?"

-- The newest and the oldest stored bar of a series, or nil.
function M.newest(source, instrument, timeframe)
  return db.first(NEWEST, source, instrument, timeframe).ts
end

function M.oldest(source, instrument, timeframe)
  return db.first(OLDEST, source, instrument, timeframe).ts
end

-- The backfill cursor of a series: {target, before, complete (boolean), first_ts, pages, rows,
-- gaps_checked}, or nil when none exists.
function M.cursor(source, instrument, timeframe)
  local c = db.first(CURSOR, source, instrument, timeframe)
  if c then c.complete = c.complete == 1 end
  return c
end

-- The series in the catalogue (a cursor or an empty range may come before its first bar).
local function catalogue(source, instrument, timeframe)
  local ok, err = db.exec(ENSURE, source, instrument, timeframe)
  if not ok then error("series: cannot catalogue the series: " .. err) end
end

function M.save_cursor(source, instrument, timeframe, c)
  catalogue(source, instrument, timeframe)
  local ok, err = db.exec(CURSOR_PUT, source, instrument, timeframe, c.target, c.before,
                          c.complete and 1 or 0, c.first_ts, c.pages or 0, c.rows or 0, os.time())
  if not ok then error("series: cannot save the backfill cursor: " .. err) end
end

-- Make sure a series has a cursor reaching back to `target` (a bar time). A deeper target
-- reopens a complete backfill unless the source's history is known to start later.
function M.want(source, instrument, timeframe, target)
  local c = M.cursor(source, instrument, timeframe)
  if not c then
    c = { target = target, complete = false }
  elseif target < c.target then
    -- still complete only when the source's history starts inside what was already covered
    if not (c.first_ts and c.first_ts >= c.target) then c.complete = false end
    c.target = target
  else
    return c
  end
  M.save_cursor(source, instrument, timeframe, c)
  return c
end

-- After a gap search that started at `old` (the cursor's gaps_checked then): searched up to `new`.
function M.set_gaps_checked(source, instrument, timeframe, old, new)
  local ok, err = db.exec(GAPS_CHECKED, source, instrument, timeframe, old, new)
  if not ok then error("series: " .. err) end
end

-- Make the next gap search of a series start at `ts` at the latest (a hole was left there).
function M.recheck_gaps(source, instrument, timeframe, ts)
  local ok, err = db.exec(RECHECK, source, instrument, timeframe, ts)
  if not ok then error("series: " .. err) end
end

-- Record what one answer of the source says about [lo, hi] (bar times, both stored or answered
-- bars): every bar between two consecutive answered bars is known-empty. `bars` is the sorted
-- list of answered bar times; `lo`/`hi` extend it with stored neighbours (nil when unknown).
-- Returns the number of empty bars recorded.
function M.record_empties(source, instrument, timeframe, step, bars, lo, hi, now)
  local limit = (now or os.time()) - M.SETTLE
  local prev, count = lo, 0
  local catalogued = false
  local function span(a, b)
    local start, stop = a + step, b - step
    if stop >= start and b <= limit then
      if not catalogued then catalogue(source, instrument, timeframe) end
      catalogued = true
      local ok, err = db.exec(EMPTY_PUT, source, instrument, timeframe, start, stop)
      if not ok then error("series: cannot record empty intervals: " .. err) end
      count = count + (stop - start) // step + 1
    end
  end
  local wide = 2 * step                        -- neighbours closer than this leave nothing between
  for _, ts in ipairs(bars) do
    if prev and ts - prev >= wide then span(prev, ts) end
    prev = ts
  end
  if prev and hi and hi > prev then span(prev, hi) end
  return count
end

-- The gaps of a series at or after `from`: a list of {after = ts, before = ts} pairs of stored
-- bars with intervals between them that are neither stored nor known-empty. Holes younger than
-- SETTLE are left for later (they may be empty intervals not yet declared). The common case (no
-- gap) costs two index-range counts.
function M.gaps(source, instrument, timeframe, step, from, now)
  local fresh = (now or os.time()) - M.SETTLE
  local b = db.first(BOUNDS, source, instrument, timeframe, from)
  if b.n < 2 then return {} end
  local empty = db.first(EMPTY_COUNT, source, instrument, timeframe, b.hi, b.lo, step).n
  if b.n + empty >= (b.hi - b.lo) // step + 1 then return {} end
  local out = {}
  for _, h in ipairs(db.query(HOLES, source, instrument, timeframe, b.lo, step)) do
    -- subtract the known-empty ranges inside (h.ts, h.next)
    local at = h.ts + step
    for _, e in ipairs(db.query(EMPTIES_IN, source, instrument, timeframe, h.next - step, at)) do
      if e.start > at then break end
      at = math.max(at, e.stop + step)
    end
    if at < h.next and h.next <= fresh then out[#out + 1] = { after = h.ts, before = h.next } end
  end
  return out
end

-- Raise event `series_gap` {state = "found"|"filled", source, instrument, timeframe, after, before}
-- for a gap of M.gaps (after/before: the stored bars around it). `filled` follows a fetch of the
-- gap that succeeded (the source may have had no trades there: known-empty counts as filled).
function M.gap_event(state, source, instrument, timeframe, gap)
  events.publish("series_gap", { state = state, source = source, instrument = instrument, timeframe = timeframe,
                                 after = gap.after, before = gap.before })
end

M.migrate()

return M
