-- rt.sched's validation of intervals (issue 11, item 1): an infinite, NaN, huge or sub-minimum
-- `every` is refused by check() (what the daemon runs on scripts' and config timings) and by put()
-- (what a hot-added schedule goes through), before any timer is armed.
local T = require "testlib"
local sched = require "rt.sched"

T.test("check refuses intervals that are not finite, too large or below runtime.min_every", function()
  for _, bad in ipairs({ math.huge, -math.huge, 0 / 0, 2 ^ 63, 1e300, 0, -1, 0.5, "0.5s", "250ms" }) do
    local ok, err, code = sched.check(bad)
    T.eq(ok, nil, tostring(bad))
    T.eq(code, "EINVAL")
    T.ok(err:find("'every' must be between 1s (runtime.min_every) and 1e+09s", 1, true), err)
  end
  T.eq(sched.check("1s"), true)
  T.eq(sched.check(1), true)
  T.eq(sched.check("1w"), true)
  T.ok(select(2, sched.check("5 parsecs")):find("bad duration", 1, true))
end)

T.test("put refuses them too, naming the schedule", function()
  for _, bad in ipairs({ math.huge, 0 / 0, 2 ^ 63, 0.01 }) do
    T.raises(function() sched.put { name = "x", every = bad, run = function() end } end,
             "sched.put x: 'every' must be between")
  end
end)

T.run()
