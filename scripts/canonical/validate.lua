-- Cross-source validation: for every canonical instrument collected from two or more sources,
-- each pair of sources' overlapping bars (the last `validate_bars`, default 500) are compared:
-- closes that differ by more than `tolerance` (relative, default 1%), and volumes by more than
-- `volume_tolerance` when it is set (sources count volume differently: off by default), are
-- divergent. Each check is stored in canonical_checks (bars compared, divergent, the worst
-- difference and the worst bars); a divergence raises the alert `divergence` (subject:
-- "<instrument> <source>/<source>") listing the worst bars, resolved by the next clean check.
local alert = require "rt.alert"
local canonical = require "lib.canonical"
local db = require "rt.db"
local json = require "rt.json"
local kit = require "lib.source"
local time = require "rt.time"

local M = { name = "canonical.validate", source = canonical.SOURCE, every = "1h" }

M.check = canonical.options

local PAIRS = [[SELECT a.ts AS ts, a.close AS ca, b.close AS cb, a.volume AS va, b.volume AS vb
  FROM candles a JOIN candles b ON b.source = ?4 AND b.instrument = ?5 AND b.timeframe = ?6 AND b.ts = a.ts
  WHERE a.source = ?1 AND a.instrument = ?2 AND a.timeframe = ?3 AND a.ts >= ?7
    AND a.close IS NOT NULL AND b.close IS NOT NULL ORDER BY a.ts]]
local PUT = [[INSERT INTO canonical_checks (instrument, timeframe, ts, sources, bars, diverging, worst, worst_bars)
  VALUES (?, ?, ?, ?, ?, ?, ?, ?)]]
local WORST = 5

local function newest(e) return kit.newest(e.source, e.instrument, e.timeframe) end

local function rel(a, b) return math.abs(a - b) / math.max(math.min(math.abs(a), math.abs(b)), 1e-12) end

-- Compare two sources of rule `r`; returns the number of divergent bars.
function M.compare(r, a, b, now)
  local from = math.min(newest(a) or 0, newest(b) or 0) - r.validate_bars * r.step
  local bad = {}
  local rows = db.query(PAIRS, a.source, a.instrument, a.timeframe, b.source, b.instrument, b.timeframe, from)
  for _, p in ipairs(rows) do
    local d = rel(p.ca, p.cb)
    local dv = r.volume_tolerance and p.va and p.vb and rel(p.va, p.vb) or 0
    if d > r.tolerance or (r.volume_tolerance and dv > r.volume_tolerance) then
      bad[#bad + 1] = { ts = p.ts, close = { p.ca, p.cb }, diff = d, volume_diff = dv > 0 and dv or nil }
    end
  end
  table.sort(bad, function(x, y) return x.diff > y.diff end)
  local pair = a.source .. "/" .. b.source
  local subject = r.name .. " " .. pair
  local worst, lines = {}, {}
  for i = 1, math.min(WORST, #bad) do
    worst[i] = bad[i]
    lines[i] = ("%s %s %.6g vs %.6g (%.2f%%)"):format(time.format_iso(bad[i].ts), r.timeframe,
                                                      bad[i].close[1], bad[i].close[2], 100 * bad[i].diff)
  end
  db.exec(PUT, r.name, r.timeframe, now, pair, #rows, #bad, bad[1] and bad[1].diff or 0, json.encode(worst))
  if #bad > 0 then
    alert.raise("divergence", subject, ("%s: %d of %d bars differ by more than %.2f%% between %s; worst: %s"):format(
      r.name, #bad, #rows, 100 * r.tolerance, pair, table.concat(lines, ", ")))
  else
    alert.resolve("divergence", subject)
  end
  return #bad
end

function M.run(ctx)
  local o = canonical.start(ctx)
  local now, diverging = time.now(), 0
  for _, r in pairs(o.instruments) do
    for i = 1, #r.sources do
      for j = i + 1, #r.sources do diverging = diverging + M.compare(r, r.sources[i], r.sources[j], now) end
    end
  end
  ctx.state.diverging = diverging
  return true
end

return M
