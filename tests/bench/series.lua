-- Series-layout benchmark body (issue 18), run by tests/bench/run_series.py through `candled eval`
-- with the binary of either layout (the same file works with both: it only uses db.upsert, db.query
-- and the scripts). Prints one line of `key=value` figures.
--
--   BENCH_PART=klines  tests/bench/klines_plain.lua (the pre-kit Binance collector) collects BENCHUSDT 1m from the mock:
--                      candles/s end to end (and candled's CPU per candle), then bytes per candle
--   BENCH_PART=gecko   GeckoTerminal-shaped candles (91 pools x 7 timeframes x 500 bars, pool ids of
--                      51 characters, nine columns) stored the way lib/geckoterminal.lua does
--                      (db.upsert of 1,000 positional rows), plus one pool's 1m series of 100,000
--                      bars: candles/s of the upserts, bytes per candle, and the CPU time of one
--                      series' range query of 100,000 bars (median of 15)
local db = require "rt.db"
local time = require "rt.time"

local part = os.getenv("BENCH_PART")
local view = db.first("SELECT type FROM sqlite_master WHERE name = 'candles'").type == "view"

-- Bytes of the candles' b-trees: the table (old), or bars + the catalogue and its index (new).
local function candle_bytes()
  local names = view and "('bars', 'series', 'sqlite_autoindex_series_1')" or "('candles')"
  return db.first("SELECT sum(pgsize) AS b FROM dbstat WHERE name IN " .. names).b
end

local function count() return db.first("SELECT count(*) AS n FROM candles").n end

local out = { layout = view and "series" or "text" }

if part == "klines" then
  local klines = dofile(os.getenv("KLINES_SCRIPT"))
  local ctx = { name = "bench", state = {},
                config = { base_url = os.getenv("MOCK_URL"), symbols = { "BENCHUSDT" }, intervals = { "1m" },
                           start = os.getenv("BENCH_START") } }
  local t0, c0 = time.monotonic(), os.clock()
  assert(klines.run(ctx))
  local secs, cpu = time.monotonic() - t0, os.clock() - c0
  local n = count()
  out.rows, out.ingest, out.cpu_us = n, n / secs, cpu / n * 1e6
  out.bytes = candle_bytes() / n
else
  local KEYS = { "source", "instrument", "timeframe", "ts" }
  local COLS = { "source", "instrument", "timeframe", "ts", "open", "high", "low", "close", "volume" }
  local TFS = { { "1m", 60 }, { "5m", 300 }, { "15m", 900 }, { "1h", 3600 }, { "4h", 14400 }, { "12h", 43200 },
                { "1d", 86400 } }
  local B58 = "123456789ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnopqrstuvwxyz"
  local function pool(i)                       -- a deterministic Solana-like pool id (51 characters)
    local t, x = {}, i * 7919 + 17
    for j = 1, 44 do
      x = (x * 1103515245 + 12345) % 2147483648
      t[j] = B58:sub(x % 58 + 1, x % 58 + 1)
    end
    return "solana_" .. table.concat(t)
  end
  local x = 12345
  local function price()
    x = (x * 1103515245 + 12345) % 2147483648
    return x / 2147483648 * 1e-3
  end
  local stored, secs, cpu = 0, 0, 0
  local function store(rows)
    local t0, c0 = time.monotonic(), os.clock()
    local ins = assert(db.upsert("candles", rows, { keys = KEYS, columns = COLS }))
    secs, cpu = secs + time.monotonic() - t0, cpu + os.clock() - c0
    stored = stored + ins
  end
  local start = 1700000000 - 1700000000 % 86400
  for p = 1, 91 do
    local id = pool(p)
    for _, tf in ipairs(TFS) do
      local rows = {}
      for i = 1, 500 do
        local o = price()
        rows[i] = { "geckoterminal", id, tf[1], start + (i - 1) * tf[2], o, o * 1.02, o * 0.98, o * 1.01,
                    (x % 100000) / 3.7 }
      end
      store(rows)
    end
  end
  local big = pool(1000)
  for page = 0, 99 do
    local rows = {}
    for i = 1, 1000 do
      local o = price()
      rows[i] = { "geckoterminal", big, "1m", start + (page * 1000 + i - 1) * 60, o, o * 1.02, o * 0.98, o * 1.01,
                  (x % 100000) / 3.7 }
    end
    store(rows)
  end
  assert(stored == 91 * 7 * 500 + 100000 and count() == stored, "stored " .. stored)
  out.rows, out.ingest, out.cpu_us = stored, stored / secs, cpu / stored * 1e6
  out.bytes = candle_bytes() / stored
  -- one series' range: 100,000 bars into Lua rows, and the same range summed inside SQLite
  local RANGE = [[SELECT * FROM candles WHERE source = ? AND instrument = ? AND timeframe = ?
    AND ts BETWEEN ? AND ?]]
  local SUM = [[SELECT count(*) AS n, sum(close) AS s FROM candles WHERE source = ? AND instrument = ?
    AND timeframe = ? AND ts BETWEEN ? AND ?]]
  local lo, hi = start, start + 99999 * 60
  local q, a = {}, {}
  for r = 1, 15 do                             -- CPU time: the queries are CPU-bound, the machine shared
    local t0 = os.clock()
    local rows = db.query(RANGE, "geckoterminal", big, "1m", lo, hi)
    q[r] = os.clock() - t0
    assert(#rows == 100000)
    rows = nil
    collectgarbage()
    t0 = os.clock()
    assert(db.first(SUM, "geckoterminal", big, "1m", lo, hi).n == 100000)
    a[r] = os.clock() - t0
  end
  table.sort(q)
  table.sort(a)
  out.query_ms, out.sum_ms = q[8] * 1000, a[8] * 1000
end

local keys = {}
for k in pairs(out) do keys[#keys + 1] = k end
table.sort(keys)
local line = {}
for _, k in ipairs(keys) do
  local v = out[k]
  line[#line + 1] = ("%s=%s"):format(k, type(v) == "number" and ("%.3f"):format(v) or v)
end
print(table.concat(line, " "))
