-- tests/bench/reload_probe.lua - the timer probe of run_reload.py, copied into the bench's scripts/
-- as a script: one run that never ends, sleeping PERIOD seconds in a loop and storing how late each
-- wake-up was (monotonic clock) with its wall time, in batches of 100 rows.
local db = require "rt.db"
local time = require "rt.time"

local PERIOD = 0.005

return {
  name = "probe", every = "1h",
  run = function()
    db.exec("CREATE TABLE IF NOT EXISTS lateness (at REAL PRIMARY KEY, late REAL)")
    local rows = {}
    while true do
      local t0 = time.monotonic()
      time.sleep(PERIOD)
      rows[#rows + 1] = { at = time.now(), late = time.monotonic() - t0 - PERIOD }
      if #rows == 100 then
        db.upsert("lateness", rows, { keys = { "at" } })
        rows = {}
      end
    end
  end,
}
