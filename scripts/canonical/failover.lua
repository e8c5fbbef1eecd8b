-- Canonical series with failover (sources.canonical.instruments, see lib/canonical.lua): for each
-- canonical instrument the first healthy source of its ordered list is the active one, and its
-- bars fill canonical_bars, each row keeping the source (and source instrument) it came from.
-- When the primary is unhealthy (breaker open, banned, failing, stale) the next healthy source
-- fills the series from where it stands; when the primary is healthy again it takes over, and its
-- bars replace those a lower-ranked source filled meanwhile wherever it has them. Every switch is
-- logged, stored in canonical_events and shown in canonical_state; while a fallback is active the
-- alert `failover` (subject: the instrument) is open, and `canonical_down` when no source is healthy.
local alert = require "rt.alert"
local canonical = require "lib.canonical"
local db = require "rt.db"
local log = require "rt.log"
local time = require "rt.time"

local M = { name = "canonical.failover", source = canonical.SOURCE, every = "1m" }

M.check = canonical.options

-- Copy the active source's bars from `from` on; a row of a better-ranked source is never replaced.
local MERGE = [[INSERT INTO canonical_bars (instrument, timeframe, ts, open, high, low, close, volume, source,
    source_instrument, rank)
  SELECT ?1, ?2, ts, open, high, low, close, volume, ?3, ?4, ?5 FROM candles
    WHERE source = ?3 AND instrument = ?4 AND timeframe = ?6 AND ts >= ?7 AND close IS NOT NULL
  ON CONFLICT (instrument, timeframe, ts) DO UPDATE SET open = excluded.open, high = excluded.high,
    low = excluded.low, close = excluded.close, volume = excluded.volume, source = excluded.source,
    source_instrument = excluded.source_instrument, rank = excluded.rank
  WHERE excluded.rank <= canonical_bars.rank AND (excluded.source IS NOT canonical_bars.source
    OR excluded.close IS NOT canonical_bars.close OR excluded.open IS NOT canonical_bars.open
    OR excluded.high IS NOT canonical_bars.high OR excluded.low IS NOT canonical_bars.low
    OR excluded.volume IS NOT canonical_bars.volume)]]
-- Where the active source's copy starts: the oldest bar a worse-ranked source filled (the
-- primary takes those over), else a few bars before the series' newest (late corrections).
local FROM = [[SELECT coalesce((SELECT min(ts) FROM canonical_bars WHERE instrument = ?1 AND timeframe = ?2
    AND rank > ?3), (SELECT max(ts) FROM canonical_bars WHERE instrument = ?1 AND timeframe = ?2) - ?4, 0) AS ts]]
local STATE = "SELECT active FROM canonical_state WHERE instrument = ? AND timeframe = ?"
local PUT_STATE = [[INSERT INTO canonical_state (instrument, timeframe, active, since, reason) VALUES (?, ?, ?, ?, ?)
  ON CONFLICT DO UPDATE SET active = excluded.active, since = excluded.since, reason = excluded.reason]]
local EVENT = "INSERT INTO canonical_events (instrument, timeframe, ts, from_source, to_source, reason) VALUES (?, ?, ?, ?, ?, ?)"

local function fill(r, now)
  local active, why = nil, {}
  for _, e in ipairs(r.sources) do
    local ok, reason = canonical.health(r, e, now)
    if ok then active = e break end
    why[#why + 1] = ("%s: %s"):format(e.source, reason)
  end
  local reason = table.concat(why, "; ")
  local before = (db.first(STATE, r.name, r.timeframe) or {}).active
  local name = active and active.source
  if name ~= before then
    db.exec(EVENT, r.name, r.timeframe, now, before, name, reason ~= "" and reason or "primary healthy")
    db.exec(PUT_STATE, r.name, r.timeframe, name, now, reason)
    log.warn("canonical source switched", { instrument = r.name, from = before, to = name, reason = reason })
  end
  if not active then
    alert.raise("canonical_down", r.name, ("no healthy source for %s: %s"):format(r.name, reason))
    return 0
  end
  alert.resolve("canonical_down", r.name)
  if active.rank > 1 then
    alert.raise("failover", r.name, ("%s is filled from %s: %s"):format(r.name, active.source, reason), "warn")
  else
    alert.resolve("failover", r.name)
  end
  local from = db.first(FROM, r.name, r.timeframe, active.rank, 10 * r.step).ts
  local n = 0
  db.tx(function()
    n = db.exec(MERGE, r.name, r.timeframe, active.source, active.instrument, active.rank, active.timeframe, from)
  end)
  return n
end

function M.run(ctx)
  local o = canonical.start(ctx)
  local now, total = time.now(), 0
  for _, r in pairs(o.instruments) do total = total + fill(r, now) end
  ctx.state.merged = total
  return true
end

return M
