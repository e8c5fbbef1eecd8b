-- Ingest benchmark body, run by tests/bench/run_ingest.py through `candled eval`:
-- the real scripts/binance/spot.lua (lib/binance.lua) collects BENCHUSDT 1m from the mock (pages of 1000 synthetic
-- klines) into the candles table: fetch, decode, convert, upsert, end to end. Prints
-- "rows seconds rows_per_s".
local db = require "rt.db"
local time = require "rt.time"

local klines = dofile(os.getenv("KLINES_SCRIPT"))
local ctx = {
  name = "bench",
  state = {},
  config = { base_url = os.getenv("MOCK_URL"), symbols = { "BENCHUSDT" }, intervals = { "1m" },
             start = os.getenv("BENCH_START") },
}
local t0 = time.monotonic()
local ok, err = klines.run(ctx)
local secs = time.monotonic() - t0
assert(ok, err)
local n = db.first("SELECT count(*) AS n FROM candles WHERE instrument = 'BENCHUSDT'").n
print(("%d %.4f %.0f"):format(n, secs, n / secs))
