-- rt.time: clocks, sleep, ISO-8601 parsing/formatting, durations and interval floors.
local T = require "testlib"
local time = require "rt.time"

local NOON = 1759665600                        -- 2025-10-05T12:00:00Z

T.test("now() is the wall clock, with a fraction", function()
  local now = time.now()
  T.eq(math.type(now), "float")
  T.ok(math.abs(now - os.time()) < 2, "now " .. now .. " vs os.time " .. os.time())
end)

T.test("monotonic() never goes back and advances across a sleep", function()
  local a = time.monotonic()
  local b = time.monotonic()
  T.ok(b >= a, "monotonic went back")
  time.sleep(0.02)
  local c = time.monotonic()
  T.ok(c - a >= 0.015, "advanced only " .. (c - a))
end)

T.test("sleep(0.1) parks for about 0.1 s and returns nothing", function()
  local t0 = time.monotonic()
  T.eq(select("#", time.sleep(0.1)), 0)
  local took = time.monotonic() - t0
  T.ok(took >= 0.09 and took < 1.0, "took " .. took)
end)

T.test("sleep(0) just yields", function()
  local t0 = time.monotonic()
  time.sleep(0)
  T.ok(time.monotonic() - t0 < 0.5)
end)

T.test("a loop of sleep(0) gives the loop back at each step (other tasks run in between)", function()
  local task = require "rt.task"
  local steps, other = 0, 0
  local a = task.spawn(function() for _ = 1, 100 do time.sleep(0); steps = steps + 1 end end)
  local b = task.spawn(function() while steps < 100 do coroutine.yield(); other = other + 1 end end)
  a:join()
  b:join()
  -- libuv runs a 0 ms timer started inside a timer callback in the same pass: if every wake resumed
  -- the task from the timer callback, all 100 steps would run before b's next turn. A loop pass now
  -- runs at most two of them (one from its timer, one from the ready queue).
  T.ok(other >= 45, "the other task ran " .. other .. " times during 100 sleep(0)")
end)

T.test("sleep misuse raises", function()
  T.raises(function() time.sleep(-1) end, "seconds must be >= 0")
  T.raises(function() time.sleep(0 / 0) end, "seconds must be >= 0")
  T.raises(function() time.sleep("x") end, "number expected")
  T.raises(function() time.sleep() end, "number expected")
  T.raises(coroutine.wrap(function() time.sleep(0) end), "time.sleep: must be called from a task")
end)

T.test("parse_iso: UTC with Z, and lower-case t/z or a space", function()
  T.eq(time.parse_iso("2025-10-05T12:00:00Z"), NOON)
  T.eq(math.type(time.parse_iso("2025-10-05T12:00:00Z")), "integer")
  T.eq(time.parse_iso("2025-10-05t12:00:00z"), NOON)
  T.eq(time.parse_iso("2025-10-05 12:00:00"), NOON, "no zone means UTC")
  T.eq(time.parse_iso("2025-10-05T12:00Z"), NOON, "seconds are optional")
  T.eq(time.parse_iso("1970-01-01T00:00:00Z"), 0)
end)

T.test("parse_iso: fractions", function()
  T.near(time.parse_iso("2025-10-05T12:00:00.123Z"), NOON + 0.123, 1e-6)
  T.near(time.parse_iso("2025-10-05T12:00:00,5Z"), NOON + 0.5, 1e-9)
  T.near(time.parse_iso("2025-10-05T12:00:00.123456789Z"), NOON + 0.123456789, 1e-6)
  T.eq(math.type(time.parse_iso("2025-10-05T12:00:00.5Z")), "float")
  T.eq(time.parse_iso("2025-10-05T12:00:00.000Z"), NOON)
end)

T.test("parse_iso: offsets +02:00, -0530, +00:00", function()
  T.eq(time.parse_iso("2025-10-05T14:00:00+02:00"), NOON)
  T.eq(time.parse_iso("2025-10-05T06:30:00-0530"), NOON)
  T.eq(time.parse_iso("2025-10-05T12:00:00+00:00"), NOON)
  T.near(time.parse_iso("2025-10-05T14:00:00.250+02:00"), NOON + 0.25, 1e-6)
end)

T.test("parse_iso: date only is midnight UTC; leap days", function()
  T.eq(time.parse_iso("2025-10-05"), 1759622400)
  T.eq(time.parse_iso("2024-02-29"), 1709164800)
end)

T.test("parse_iso: impossible dates and garbage -> nil, msg, EINVAL", function()
  local msg = T.fails("EINVAL", time.parse_iso("2025-02-30"))
  T.ok(msg:find("2025-02-30", 1, true), msg)
  for _, bad in ipairs({ "2023-02-29", "2025-13-01", "2025-00-10", "2025-10-32", "2025-10-05T24:00:00Z",
                         "2025-10-05T12:60:00Z", "garbage", "", "2025-10-5", "2025/10/05",
                         "2025-10-05T12:00:00.Z", "2025-10-05T12:00:00ZZ", "2025-10-05T12", "20251005",
                         "2025-10-05T12:00:00 +02:00" }) do
    T.fails("EINVAL", time.parse_iso(bad))
  end
  T.raises(function() time.parse_iso() end, "string expected")
end)

T.test("format_iso: seconds, and milliseconds with {ms=true}", function()
  T.eq(time.format_iso(NOON), "2025-10-05T12:00:00Z")
  T.eq(time.format_iso(NOON + 0.999), "2025-10-05T12:00:00Z", "without ms the second is floored")
  T.eq(time.format_iso(NOON + 0.123, { ms = true }), "2025-10-05T12:00:00.123Z")
  T.eq(time.format_iso(NOON, { ms = true }), "2025-10-05T12:00:00.000Z")
  T.eq(time.format_iso(NOON, { ms = false }), "2025-10-05T12:00:00Z")
  T.eq(time.format_iso(0), "1970-01-01T00:00:00Z")
  T.eq(time.format_iso(-0.5, { ms = true }), "1969-12-31T23:59:59.500Z")
  T.eq(time.format_iso(NOON + 0.9999, { ms = true }), "2025-10-05T12:00:01.000Z", "rounding carries")
end)

T.test("format_iso/parse_iso round trip every millisecond", function()
  for ms = 0, 999 do
    local s = string.format("2025-10-05T12:00:00.%03dZ", ms)
    T.eq(time.format_iso(time.parse_iso(s), { ms = true }), s)
  end
end)

T.test("format_iso misuse raises", function()
  T.raises(function() time.format_iso("x") end, "number expected")
  T.raises(function() time.format_iso(NOON, { bogus = true }) end, "unknown option 'bogus'")
  T.raises(function() time.format_iso(NOON, { ms = 1 }) end, "option 'ms' must be a boolean")
  T.raises(function() time.format_iso(0 / 0) end, "time out of range")
  T.raises(function() time.format_iso(math.huge) end, "time out of range")
end)

T.test("duration: units to seconds", function()
  T.eq(time.duration("5m"), 300)
  T.eq(math.type(time.duration("5m")), "integer")
  T.eq(time.duration("90s"), 90)
  T.eq(time.duration("1h"), 3600)
  T.eq(time.duration("1d"), 86400)
  T.eq(time.duration("1w"), 604800)
  T.eq(time.duration("0.5s"), 0.5)
  T.eq(time.duration(42), 42, "numbers are seconds")
end)

T.test("duration: bad durations raise", function()
  for _, bad in ipairs({ "5x", "", "m", "-1m", "0s", "1h30m" }) do
    T.raises(function() time.duration(bad) end, "bad duration", bad)
  end
  T.raises(function() time.duration(0) end, "duration must be > 0")
  T.raises(function() time.duration(-5) end, "duration must be > 0")
  T.raises(function() time.duration({}) end, "string expected")
end)

T.test("floor: start of the UTC-aligned interval", function()
  T.eq(time.floor(NOON + 1234, "1h"), NOON)
  T.eq(math.type(time.floor(NOON + 1234.5, "1h")), "integer")
  T.eq(time.floor(NOON + 3599.9, "1h"), NOON)
  T.eq(time.floor(NOON + 3600, "1h"), NOON + 3600)
  T.eq(time.floor(NOON + 17, "1d"), 1759622400)
  T.eq(time.floor(NOON + 299, "5m"), NOON)
  T.eq(time.floor(NOON + 61, 60), NOON + 60)
  T.eq(time.floor(-1, "1h"), -3600)
  T.raises(function() time.floor(NOON, "5x") end, "bad duration")
  T.raises(function() time.floor("x", "1h") end, "number expected")
end)

T.test("floor/duration stay numbers for huge values (no garbage integers)", function()
  T.eq(time.floor(math.huge, 60), math.huge)
  T.ok(time.duration(1e300) > 0, "1e300 is not a wrapped integer")
  T.eq(time.floor(1e300, 1), 1e300)
end)

T.run()
