-- The source kit (scripts/lib/source.lua): option checks, HTTP shaping into nil, message, CODE
-- with the source's health kept, and sync of one series through a windowed fetch (forward,
-- history back to a deeper target, known-empty intervals, gaps fetched again).
local here = debug.getinfo(1, "S").source:match("^@(.*)/tests/lua/[^/]*$")
package.path = here .. "/scripts/?.lua;" .. package.path
local T = require "testlib"
local db = require "rt.db"
local kit = require "lib.source"
local time = require "rt.time"

local MOCK = assert(os.getenv("MOCK_URL"), "MOCK_URL is not set")

T.test("options: defaults, unknown keys and bad values are named", function()
  local spec = { base_url = { "https://x.test/api/", kit.check.string },
                 days = { 30, kit.check.number(1, 365) },
                 list = { { "a" }, kit.check.list_of(kit.check.one_of("a", "b")) },
                 key = { false, kit.check.string } }
  local o = kit.options("demo", spec, { days = 7 })
  T.eq(o, { base_url = "https://x.test/api", days = 7, list = { "a" } })
  T.raises(function() kit.options("demo", spec, { dayz = 1 }) end, "^sources%.demo%.dayz: unknown key$")
  T.raises(function() kit.options("demo", spec, { days = 400 }) end,
           "^sources%.demo%.days: must be a number from 1 to 365$")
  T.raises(function() kit.options("demo", spec, { list = { "a", "c" } }) end,
           "^sources%.demo%.list: %[2%] must be one of a b, not c$")
end)

T.test("get: statuses become codes, the API's error text is kept, health is recorded", function()
  local doc = kit.get(MOCK .. "/static/hello.json", "/hello", { source = "kit_demo" })
  T.eq(type(doc), "table")
  local msg = T.fails("NOT_FOUND", kit.get(MOCK .. "/static/none.json", "/none", { source = "kit_demo" }))
  T.eq(msg, "/none: not found (404)")
  msg = T.fails("AUTH", kit.get(MOCK .. "/static/hello.json?_status=401", "/hello", { source = "kit_demo",
    error_text = function(d) return d.msg end }))
  T.eq(msg, "/hello: HTTP 401: injected")
  T.fails("RATE_LIMITED", kit.get(MOCK .. "/static/hello.json?_status=429", "/hello", { source = "kit_demo" }))
  T.fails("HTTP", kit.get(MOCK .. "/static/hello.json?_status=503", "/hello", { source = "kit_demo" }))
  T.fails("JSON", kit.get(MOCK .. "/static/gen_big.py", "/hello", { source = "kit_demo" }))
  local h = db.first("SELECT requests, ok, last_code, last_error FROM source_health WHERE source = 'kit_demo'")
  T.eq(h.requests, 6)
  T.eq(h.ok, 1)
  T.ok(h.last_error:find("/hello", 1, true), h.last_error)
end)

-- A fake source: a bar every minute except when ts // 60 % 7 == 3 (no trades); windows of at
-- most 50 bars; every call is counted.
local function fake()
  local S = { name = "kit_fake", calls = {} }
  function S.step() return 60 end
  function S.max_bars() return 50 end
  function S.fetch(_, inst, tf, lo, hi)
    S.calls[#S.calls + 1] = { lo, hi }
    local rows = {}
    for ts = lo, hi, 60 do
      if ts // 60 % 7 ~= 3 then rows[#rows + 1] = { S.name, inst, tf, ts, 1, 2, 0.5, 1.5, 10 } end
    end
    return rows, true
  end
  return S
end

local function count(S) return db.first("SELECT count(*) AS n FROM candles WHERE source = ?", S.name).n end

T.test("sync: forward to the last closed bar, empties recorded, then nothing fetched again", function()
  local S = fake()
  local now = time.floor(time.now(), 60) + 10
  local days = 120 * 60 / 86400                 -- 120 bars of history
  local n = T.ok(kit.sync(S, {}, "X", "1m", days, now))
  local last = time.floor(now, 60) - 60
  local first = kit.target(days, 60, now)
  T.eq(db.first("SELECT min(ts) AS lo, max(ts) AS hi FROM candles WHERE source = ?", S.name),
       { lo = first // 60 % 7 == 3 and first + 60 or first, hi = last // 60 % 7 == 3 and last - 60 or last })
  T.eq(n, count(S))
  T.eq(#S.calls, 3, "121 bars in windows of 50")
  -- every interval older than the settle time is a bar or known-empty
  local empty = db.first([[SELECT coalesce(sum((stop - start) / 60 + 1), 0) AS n FROM empty_intervals
    WHERE source = ? AND instrument = 'X']], S.name).n
  T.ok(empty >= 14, "empties " .. empty)
  S.calls = {}
  T.eq(kit.sync(S, {}, "X", "1m", days, now), 0)
  -- nothing fetched again but a newest interval too young to be declared empty
  for _, c in ipairs(S.calls) do T.ok(c[1] >= now - 180 - 60, "only the settle time is asked again") end
  S.calls = {}
  -- a lost bar in the middle is a gap: fetched again, alone
  local mid = first + 60 * 40
  if mid // 60 % 7 == 3 then mid = mid + 60 end
  db.exec("DELETE FROM candles WHERE source = ? AND instrument = 'X' AND ts = ?", S.name, mid)
  db.exec("UPDATE backfill SET gaps_checked = NULL WHERE source = ?", S.name)
  local gap_events = {}
  local gsub <close> = require("rt.events").subscribe({ kind = "series_gap", source = S.name },
    function(ev) gap_events[#gap_events + 1] = ev end)
  T.ok(kit.sync(S, {}, "X", "1m", days, now) >= 1)
  time.sleep(0.01)
  T.eq(#gap_events, 2, "series_gap found, then filled")
  T.eq({ gap_events[1].state, gap_events[2].state }, { "found", "filled" })
  T.ok(gap_events[1].after < mid and mid < gap_events[1].before, "the gap's bounds")
  T.eq({ gap_events[1].instrument, gap_events[1].timeframe }, { "X", "1m" })
  local gap = {}
  for _, c in ipairs(S.calls) do if c[1] <= mid and mid <= c[2] then gap[#gap + 1] = c end end
  T.eq(#gap, 1, "the gap is fetched once")
  T.ok(gap[1][1] >= mid - 60 and gap[1][2] <= mid + 60, "the gap's window only (with a known-empty neighbour)")
  T.eq(db.first("SELECT count(*) AS n FROM candles WHERE source = ? AND ts = ?", S.name, mid).n, 1)
  -- a deeper history: paged back from the oldest stored bar, newest window first
  S.calls = {}
  local oldest = kit.oldest(S.name, "X", "1m")
  local deeper = kit.sync(S, {}, "X", "1m", days * 2, now)
  T.ok(deeper >= 100, "stored " .. deeper .. " " .. require("rt.json").encode(S.calls))
  -- the newest interval is asked again while it is younger than the settle time (when the last
  -- minute had no bar, depending on the wall clock); the history pages are the other calls
  local back = {}
  for _, c in ipairs(S.calls) do if c[1] < now - 180 - 60 then back[#back + 1] = c end end
  T.eq(back[1][2], oldest - 60, "from below the oldest stored bar: " .. require("rt.json").encode(S.calls))
  T.ok(back[1][1] > back[#back][1], "back in time")
  local c = db.first("SELECT complete, target FROM backfill WHERE source = ? AND instrument = 'X'", S.name)
  T.eq(c.complete, 1)
  T.ok(kit.oldest(S.name, "X", "1m") <= c.target + 60, "down to the target")
end)

T.test("sync: a failing fetch returns its code and keeps the pages stored before", function()
  local S = fake()
  S.name = "kit_fail"
  local fetch = S.fetch
  function S.fetch(...)
    if #S.calls == 2 then return nil, "down", "TIMEOUT" end
    return fetch(...)
  end
  local now = time.floor(time.now(), 60) + 10
  T.fails("TIMEOUT", kit.sync(S, {}, "Y", "1m", 200 * 60 / 86400, now))
  T.ok(count(S) > 50 and count(S) <= 100, "the first two pages stay")
end)

T.run()
