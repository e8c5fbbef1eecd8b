-- canonical: one instrument (BTC/USD) collected from several sources (CoinGecko bitcoin/usd,
-- Yahoo BTC-USD, Binance BTCUSDT). What scripts/canonical/failover.lua and validate.lua share:
-- the options (sources.canonical), the tables, and a source's health.
--
--   sources.canonical.instruments = {
--     ["BTC/USD"] = { timeframe = "1d",
--                     sources = { { source = "coingecko", instrument = "bitcoin/usd" },     -- primary
--                                 { source = "yahoo", instrument = "BTC-USD" } },           -- then this
--                     tolerance = 0.01, volume_tolerance = false, validate_bars = 500,
--                     grace = 300, failures = 3 },
--   }
--
-- A source is unhealthy when its budget's breaker is open or it is banned, when its last
-- `failures` calls failed (source_health), or when its newest bar is stale: more than one bar
-- behind the last closed one, after `grace` seconds.
local budget = require "rt.budget"
local db = require "rt.db"
local kit = require "lib.source"
local time = require "rt.time"

local M = { SOURCE = "canonical" }

local C = kit.check
local function entry(v)
  if type(v) ~= "table" then return "must be a table {source =, instrument =}" end
  for _, k in ipairs { "source", "instrument" } do
    if type(v[k]) ~= "string" or v[k] == "" then return k .. " must be a non-empty string" end
  end
  for k in pairs(v) do
    if k ~= "source" and k ~= "instrument" and k ~= "timeframe" and k ~= "budget" then
      return "unknown key " .. tostring(k)
    end
  end
end
local function rule(v)
  if type(v) ~= "table" then return "must be a table" end
  local known = { timeframe = C.string, sources = C.list_of(entry), tolerance = C.number(0, 1),
                  volume_tolerance = function(x) if x ~= false then return C.number(0, 100)(x) end end,
                  grace = C.number(0), failures = C.number(1), validate_bars = C.number(1) }
  for k, x in pairs(v) do
    if not known[k] then return ("%s: unknown key"):format(tostring(k)) end
    local why = known[k](x)
    if why then return ("%s: %s"):format(k, why) end
  end
  if type(v.timeframe) ~= "string" or type(v.sources) ~= "table" or #v.sources == 0 then
    return "needs timeframe and a list of sources"
  end
  if not pcall(time.duration, v.timeframe) then return "timeframe: not a duration: " .. v.timeframe end
end

local OPTIONS = {
  enabled = { true, C.boolean },
  instruments = { {}, C.map(C.string, rule) },
}

function M.options(cfg)
  local o = kit.options(M.SOURCE, OPTIONS, cfg)
  for name, r in pairs(o.instruments) do
    r.name, r.step = name, time.duration(r.timeframe)
    r.tolerance, r.grace, r.failures = r.tolerance or 0.01, r.grace or 300, r.failures or 3
    r.validate_bars = r.validate_bars or 500
    for i, e in ipairs(r.sources) do
      e.rank, e.timeframe, e.budget = i, e.timeframe or r.timeframe, e.budget or e.source
    end
  end
  return o
end

M.MIGRATIONS = {
  [[CREATE TABLE canonical_bars (instrument TEXT NOT NULL, timeframe TEXT NOT NULL, ts INTEGER NOT NULL,
      open REAL, high REAL, low REAL, close REAL, volume REAL, source TEXT NOT NULL,
      source_instrument TEXT NOT NULL, rank INTEGER NOT NULL, PRIMARY KEY (instrument, timeframe, ts)) WITHOUT ROWID;
    CREATE TABLE canonical_state (instrument TEXT NOT NULL, timeframe TEXT NOT NULL, active TEXT, since REAL,
      reason TEXT, PRIMARY KEY (instrument, timeframe));
    CREATE TABLE canonical_events (instrument TEXT NOT NULL, timeframe TEXT NOT NULL, ts REAL NOT NULL,
      from_source TEXT, to_source TEXT, reason TEXT);
    CREATE TABLE canonical_checks (instrument TEXT NOT NULL, timeframe TEXT NOT NULL, ts REAL NOT NULL,
      sources TEXT NOT NULL, bars INTEGER NOT NULL, diverging INTEGER NOT NULL, worst REAL, worst_bars TEXT,
      PRIMARY KEY (instrument, timeframe, ts, sources)) WITHOUT ROWID;]],
}

function M.start(ctx)
  local o = M.options(ctx.config)
  kit.migrate()
  local v, err = db.migrate(M.SOURCE, M.MIGRATIONS)
  if not v then error("canonical tables: " .. err) end
  for name, r in pairs(o.instruments) do
    kit.instrument(M.SOURCE, name, { symbol = name, base = name:match("^([^/]+)/"), quote = name:match("/([^:]+)") })
    for _, e in ipairs(r.sources) do kit.map(e.source, e.instrument, name) end
  end
  return o
end

-- Is source entry `e` of rule `r` healthy now? -> true, or false and why.
function M.health(r, e, now)
  local ok, b = pcall(budget.status, e.budget)
  if ok and type(b) == "table" then
    if b.breaker and b.breaker.state == "open" then return false, "breaker open" end
    if b.banned_until then return false, "banned" end
  end
  local h = db.first("SELECT failures_in_row, last_error FROM source_health WHERE source = ?", e.source)
  if h and h.failures_in_row >= r.failures then
    return false, ("failing (%d calls in a row: %s)"):format(h.failures_in_row, h.last_error)
  end
  local step = time.duration(e.timeframe)
  local newest = kit.newest(e.source, e.instrument, e.timeframe)
  local due = time.floor(now - r.grace, step) - step            -- the last bar it should have
  if not newest or newest < due - step then
    return false, ("stale (newest bar %s)"):format(newest and time.format_iso(newest) or "none")
  end
  return true
end

return M
