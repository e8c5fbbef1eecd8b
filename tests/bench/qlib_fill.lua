-- tests/bench/qlib_fill.lua: the benchmark's candles (run_qlib.py), through db.upsert.
--   candled eval qlib_fill.lua N ROWS [FIRST_ROW]
-- N instruments BENCH000.. of 1m bars from 2024-01-01, instrument k starting k*7 minutes later;
-- a minute i of instrument k is missing when (i * 7 + k) % 5000 == 0 (gaps, incomplete buckets).
-- Rows FIRST_ROW (default 0) up to ROWS - 1.
local db = require "rt.db"
local time = require "rt.time"
local N, ROWS, FIRST = tonumber((select(1, ...))), tonumber((select(2, ...))), tonumber((select(3, ...))) or 0
local DAY0 = 1704067200
local COLS = { "source", "instrument", "timeframe", "ts", "open", "high", "low", "close", "volume", "quote_volume" }
local KEYS = { "source", "instrument", "timeframe", "ts" }
for k = 0, N - 1 do
  local name = ("BENCH%03d"):format(k)
  local batch = {}
  for i = FIRST, ROWS - 1 do
    if (i * 7 + k) % 5000 ~= 0 then
      local o = 100 + k + (i % 997) * 0.01
      local v = 1 + (i % 13) * 0.5
      batch[#batch + 1] = { "binance_spot", name, "1m", DAY0 + 60 * (i + 7 * k), o, o + 0.5, o - 0.25, o + 0.125, v, v * o }
      if #batch == 20000 then
        db.upsert("candles", batch, { keys = KEYS, columns = COLS })
        batch = {}
        time.sleep(0)
      end
    end
  end
  if #batch > 0 then db.upsert("candles", batch, { keys = KEYS, columns = COLS }) end
end
