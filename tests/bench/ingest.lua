-- Ingest benchmark body, run by tests/bench/run_ingest.py through `candled eval`:
-- the real scripts/binance/spot.lua (lib/binance.lua) collects BENCHUSDT 1m from the mock (pages of 1000 synthetic
-- klines) into the candles table: fetch, decode, convert, upsert, end to end. Prints
-- "rows seconds rows_per_s".
local db = require "rt.db"
local time = require "rt.time"
local events = require "rt.events"

-- INGEST_SUBSCRIBER=1 (run_ingest.py --subscriber): a task subscribes to every candle event, as a
-- strategy does; it must see every bar stored, after its commit.
local seen = 0
if os.getenv("INGEST_SUBSCRIBER") == "1" then
  events.subscribe({ kind = "candle" }, function() seen = seen + 1 end, { queue = 1000000, name = "bench" })
end
local klines = dofile(os.getenv("KLINES_SCRIPT"))
local ctx = {
  name = "bench",
  state = {},
  config = { base_url = os.getenv("MOCK_URL"), symbols = { "BENCHUSDT" }, intervals = { "1m" },
             start = os.getenv("BENCH_START") },
}
local t0 = time.monotonic()
local ok, err = klines.run(ctx)
if os.getenv("INGEST_SUBSCRIBER") == "1" then   -- timed until the subscriber has had every bar
  while seen < (ctx.state.last_stored or 0) do time.sleep(0.001) end
end
local secs = time.monotonic() - t0
assert(ok, err)
local n = db.first("SELECT count(*) AS n FROM candles WHERE instrument = 'BENCHUSDT'").n
if os.getenv("INGEST_SUBSCRIBER") == "1" then
  assert(seen == n, ("the subscriber saw %d candle events for %d bars"):format(seen, n))
end
print(("%d %.4f %.0f"):format(n, secs, n / secs))
