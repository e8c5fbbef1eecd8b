-- The series layout (issue 18): `candles` and `trades` are views over the series catalogue. Every
-- write and query the scripts, the README and the tests use gives what the tables of the layout
-- before give: ref_candles and ref_trades are those tables, written and read side by side.
local T = require "testlib"
local db = require "rt.db"

db.exec([[
  CREATE TABLE ref_candles (
    source TEXT NOT NULL, instrument TEXT NOT NULL, timeframe TEXT NOT NULL, ts INTEGER NOT NULL,
    open REAL, high REAL, low REAL, close REAL, volume REAL, quote_volume REAL, trades INTEGER,
    PRIMARY KEY (source, instrument, timeframe, ts)) WITHOUT ROWID;
  CREATE TABLE ref_trades (
    source TEXT NOT NULL, instrument TEXT NOT NULL, trade_id TEXT NOT NULL, ts INTEGER NOT NULL,
    price REAL, amount REAL, volume_usd REAL, side TEXT, PRIMARY KEY (source, instrument, trade_id));
  CREATE INDEX ref_trades_by_time ON ref_trades (source, instrument, ts);
]])

local CANDLE_KEYS = { "source", "instrument", "timeframe", "ts" }
local BINANCE = { "source", "instrument", "timeframe", "ts", "open", "high", "low", "close", "volume",
                  "quote_volume", "trades" }
local GECKO = { "source", "instrument", "timeframe", "ts", "open", "high", "low", "close", "volume" }
local TRADE_COLS = { "source", "instrument", "trade_id", "ts", "price", "amount", "volume_usd", "side" }
local POOL = "solana_7qbRF6YsyGuLUVs6Y1q64bdVrfe4ZcUUz1JRdoVNUJnm"
local POOL2 = "solana_GpMZbSM2GgvTKHJirzeGfMFoaZ8UR2X7F4v8vHTvxFbL"

-- The same upsert into the view and into the reference table: the same counts (or failure).
local function both(view, rows, opts)
  local a = { db.upsert(view, rows, opts) }
  local b = { db.upsert("ref_" .. view, rows, opts) }
  T.eq(a[1] == nil, b[1] == nil, "both fail or neither")
  if a[1] then T.eq(a, b, "upsert counts of " .. view) else T.eq(a[3], b[3], "failure codes") end
  return table.unpack(a)
end

local function bars(n, from, f)
  local out = {}
  for i = 1, n do out[i] = f(from + (i - 1) * 60, i) end
  return out
end

T.test("upsert: the same counts as the table of the layout before", function()
  -- Binance: positional rows with every column
  local function kline(ts, i) return { "binance_spot", "BTCUSDT", "1m", ts, 100 + i, 101 + i, 99 + i,
                                       100.5 + i, 1.25 * i, 3e5 + i, i } end
  local b = bars(500, 1700000000, kline)
  T.eq({ both("candles", b, { keys = CANDLE_KEYS, columns = BINANCE }) }, { 500, 0 })
  T.eq({ both("candles", b, { keys = CANDLE_KEYS, columns = BINANCE }) }, { 0, 0 }, "identical: neither")
  b[7][8], b[9][11] = 0.125, 77
  T.eq({ both("candles", b, { keys = CANDLE_KEYS, columns = BINANCE }) }, { 0, 2 })
  -- GeckoTerminal: nine columns, interleaved pools and timeframes in one batch
  local g = {}
  for i = 1, 300 do
    local pool, tf = i % 2 == 0 and POOL or POOL2, i % 3 == 0 and "1h" or "1m"
    g[i] = { "geckoterminal", pool, tf, 1700000000 + i * 60, 1e-7 * i, 2e-7 * i, 0.5e-7 * i, 1.5e-7 * i,
             i % 11 == 0 and 0.0 or 12.5 * i }
  end
  T.eq({ both("candles", g, { keys = CANDLE_KEYS, columns = GECKO }) }, { 300, 0 })
  g[5][9] = 1.0
  T.eq({ both("candles", g, { keys = CANDLE_KEYS, columns = GECKO }) }, { 0, 1 })
  -- named rows; columns from the first row; a column named in `columns` but absent becomes NULL
  local named = { { source = "binance_spot", instrument = "BTCUSDT", timeframe = "1m", ts = 1700000000,
                    open = 100.0, high = 101.0, low = 99.0, close = 100.5, volume = 1.25 } }
  T.eq({ both("candles", named, { keys = CANDLE_KEYS }) }, { 0, 1 }, "open moved back: quote_volume kept")
  T.eq({ both("candles", named, { keys = CANDLE_KEYS, columns = BINANCE }) }, { 0, 1 }, "now NULL")
  T.eq({ both("candles", named, { keys = CANDLE_KEYS, columns = BINANCE }) }, { 0, 0 })
  T.eq({ both("candles", { kline(1700000000, 1) }, { keys = CANDLE_KEYS, columns = BINANCE, update = false }) },
       { 0, 0 }, "update=false leaves a stored row")
  -- trades: update=false as the collector uses it
  local tr = {}
  for i = 1, 200 do
    tr[i] = { "geckoterminal", i % 2 == 0 and POOL or POOL2, ("0x%064x_%d"):format(i * 7919, i % 3),
              1700000000 + i, 0.001 * i, 10.5 * i, 100 + i, i % 4 == 0 and "sell" or "buy" }
  end
  local topts = { keys = { "source", "instrument", "trade_id" }, columns = TRADE_COLS, update = false }
  T.eq({ both("trades", tr, topts) }, { 200, 0 })
  tr[201] = { "geckoterminal", POOL, "new", 1700009999, 1, 2, 3, nil }
  T.eq({ both("trades", tr, topts) }, { 1, 0 })
  tr[3][5] = 99
  T.eq({ both("trades", tr, { keys = topts.keys, columns = TRADE_COLS }) }, { 0, 1 })
end)

T.test("upsert: failures and misuse as before; a failed batch stores nothing", function()
  local opts = { keys = CANDLE_KEYS, columns = BINANCE }
  local rows = { { "binance_spot", "ETHUSDT", "1m", 60, 1, 1, 1, 1, 1, 1, 1 },
                 { "binance_spot", nil, "1m", 120, 1, 1, 1, 1, 1, 1, 1 } }
  local _, msg, code = db.upsert("candles", rows, opts)
  T.eq(code, "SQLITE_CONSTRAINT")
  T.ok(msg:find("NOT NULL constraint failed", 1, true), msg)
  T.eq(db.first("SELECT count(*) AS n FROM candles WHERE instrument = 'ETHUSDT'").n, 0)
  rows = { { "binance_spot", "ETHUSDT", "1m", nil, 1, 1, 1, 1, 1, 1, 1 } }
  T.fails("SQLITE_CONSTRAINT", db.upsert("candles", rows, opts))
  T.raises(function() db.upsert("candles", { { source = "s", instrument = "i", timeframe = "1m", ts = 1, colour = 2 } },
                                { keys = CANDLE_KEYS }) end, "table candles has no column named colour")
  T.raises(function() db.upsert("candles", { { source = "s", instrument = "i", timeframe = "1m", ts = 1 } },
                                { keys = { "source", "ts" } }) end, "keys of candles must be source, instrument, timeframe, ts")
  T.raises(function() db.upsert("candles", { { source = "s", instrument = "i", timeframe = "1m", ts = 1, x = {} } },
                                { keys = CANDLE_KEYS, columns = { "source", "instrument", "timeframe", "ts" } }) end,
           "not among the columns")
  T.raises(function() db.upsert("candles", { { "s", "i", "1m", 1, {} } }, { keys = CANDLE_KEYS, columns = BINANCE }) end,
           "cannot store a table")
  -- a number where the series wants text is stored as text, as a TEXT column did
  T.eq({ both("candles", { { 42, "i", "1m", 1 } }, { keys = CANDLE_KEYS, columns = { "source", "instrument", "timeframe", "ts" } }) },
       { 1, 0 })
  T.eq(db.first("SELECT typeof(source) AS t FROM candles WHERE source = '42'").t, "text")
  -- inside db.tx, a failure after the series was created rolls both back
  T.raises(function()
    db.tx(function()
      db.upsert("candles", { { "rolled", "back", "1m", 1 } }, { keys = CANDLE_KEYS, columns = { "source", "instrument", "timeframe", "ts" } })
      error("boom")
    end)
  end, "boom")
  T.eq(db.first("SELECT count(*) AS n FROM series WHERE source = 'rolled'").n, 0)
  T.eq({ db.upsert("candles", { { "rolled", "back", "1m", 1 } }, { keys = CANDLE_KEYS, columns = { "source", "instrument", "timeframe", "ts" } }) },
       { 1, 0 })
  T.eq(db.first("SELECT count(*) AS n FROM candles c JOIN series s ON s.source = c.source WHERE c.source = 'rolled'").n, 1)
  db.exec("DELETE FROM candles WHERE source IN ('rolled', '42')")
  db.exec("DELETE FROM ref_candles WHERE source = '42'")
end)

-- Every query of the scripts, the README and the tests, with {t} for the table.
local QUERIES = {
  -- scripts/lib/series.lua, scripts/lib/binance.lua, scripts/geckoterminal/backfill.lua
  { "SELECT min(ts) AS lo, max(ts) AS hi, count(*) AS n FROM {c} WHERE source = ? AND instrument = ? AND timeframe = ? AND ts >= ?",
    "geckoterminal", POOL, "1m", 1700003000 },
  { "SELECT ts, next FROM (SELECT ts, lead(ts) OVER (ORDER BY ts) AS next FROM {c} WHERE source = ? AND instrument = ? AND timeframe = ? AND ts >= ?) WHERE next - ts > ?",
    "geckoterminal", POOL, "1m", 0, 60 },
  { "SELECT max(ts) AS ts FROM {c} WHERE source = ? AND instrument = ? AND timeframe = ?", "binance_spot", "BTCUSDT", "1m" },
  { "SELECT min(ts) AS ts FROM {c} WHERE source = ? AND instrument = ? AND timeframe = ?", "geckoterminal", POOL2, "1h" },
  { "SELECT max(ts) AS ts FROM {c} WHERE source = ? AND instrument = ? AND timeframe = ?", "nope", "nope", "1m" },
  -- scripts/geckoterminal/trades.lua
  { "SELECT instrument, count(*) AS n FROM {t} WHERE source = ? AND ts > ? GROUP BY instrument", "geckoterminal", 1700000050 },
  -- the README: the reader's range query, the REPL example
  { "SELECT * FROM {c} WHERE source = ? AND instrument = ? AND timeframe = ? AND ts BETWEEN ? AND ?",
    "binance_spot", "BTCUSDT", "1m", 1700000600, 1700006000 },
  { "SELECT * FROM {t} WHERE source = ? AND instrument = ? AND ts BETWEEN ? AND ? ORDER BY ts, trade_id",
    "geckoterminal", POOL, 1700000010, 1700000150 },
  { "SELECT count(*) AS n FROM {c} WHERE timeframe = ?", "1m" },
  -- tests/e2e and exports: whole-table reads, groupings, types
  { "SELECT * FROM {c} ORDER BY source, instrument, timeframe, ts" },
  { "SELECT * FROM {t} ORDER BY source, instrument, trade_id" },
  { "SELECT count(*) AS n, min(ts) AS lo, max(ts) AS hi FROM {c}" },
  { "SELECT count(*) AS n FROM (SELECT ts FROM {c} GROUP BY ts HAVING count(*) > 1)" },
  { "SELECT source, instrument, timeframe, count(*) AS n FROM {c} GROUP BY 1, 2, 3 ORDER BY 1, 2, 3" },
  { "SELECT DISTINCT source, instrument, timeframe FROM {c} ORDER BY 1, 2, 3" },
  { "SELECT count(*) AS n FROM {c} WHERE instrument = ?", POOL },
  { "SELECT count(*) AS n FROM {c} WHERE volume = 0" },
  { "SELECT ts, open, high, low, close, volume FROM {c} WHERE source = 'geckoterminal' AND instrument = ? AND timeframe = ? ORDER BY ts", POOL2, "1m" },
  { "SELECT count(DISTINCT instrument) AS n FROM {t}" },
  { "SELECT count(*) AS n, min(volume_usd) AS lo, count(*) - count(DISTINCT trade_id) AS dup FROM {t}" },
  { "SELECT count(*) - count(DISTINCT instrument || trade_id) AS dup FROM {t}" },
  { "SELECT typeof(source) AS a, typeof(ts) AS b, typeof(open) AS c, typeof(quote_volume) AS d, typeof(trades) AS e, count(*) AS n FROM {c} GROUP BY 1, 2, 3, 4, 5 ORDER BY 1, 2, 3, 4, 5" },
  { "SELECT typeof(trade_id) AS a, typeof(ts) AS b, typeof(price) AS c, typeof(side) AS d, count(*) AS n FROM {t} GROUP BY 1, 2, 3, 4 ORDER BY 1, 2, 3, 4" },
}

T.test("queries: every query gives the same rows through the views", function()
  for _, q in ipairs(QUERIES) do
    local function run(c, t)
      return db.query((q[1]:gsub("{c}", c):gsub("{t}", t)), table.unpack(q, 2))
    end
    local got, want = run("candles", "trades"), run("ref_candles", "ref_trades")
    T.ok(#want > 0, q[1])
    T.eq(got, want, q[1])
  end
end)

-- (SQLite does not count rows an INSTEAD OF trigger writes: db.exec returns 0 for these, as the
-- README says; the rows are what matters)
T.test("writes through the views: INSERT, UPDATE, DELETE change what the tables would", function()
  local ALL = "SELECT * FROM {c} ORDER BY source, instrument, timeframe, ts"
  local function same(sql, ...)
    local a = { db.exec((sql:gsub("{c}", "candles")), ...) }
    local b = { db.exec((sql:gsub("{c}", "ref_candles")), ...) }
    T.eq(a[1] ~= nil, b[1] ~= nil, "both fail or neither: " .. sql)
    T.eq(db.query((ALL:gsub("{c}", "candles"))), db.query((ALL:gsub("{c}", "ref_candles"))), sql)
  end
  same("INSERT INTO {c} (source, instrument, timeframe, ts, close) VALUES ('sql', 'x', '1m', 60, 1.5), ('sql', 'x', '1m', 120, 2)")
  T.fails("SQLITE_CONSTRAINT", db.exec("INSERT INTO candles (source, instrument, timeframe, ts) VALUES ('sql', 'x', '1m', 60)"))
  same("INSERT OR IGNORE INTO {c} (source, instrument, timeframe, ts, close) VALUES ('sql', 'x', '1m', 60, 9)")
  same("INSERT OR REPLACE INTO {c} (source, instrument, timeframe, ts, close) VALUES ('sql', 'x', '1m', 120, 3)")
  same("UPDATE {c} SET volume = 5 WHERE source = 'sql' AND ts = 60")
  same("UPDATE {c} SET timeframe = '5m' WHERE source = 'sql' AND ts = 120")
  same("DELETE FROM {c} WHERE timeframe = '1h' AND ts BETWEEN ? AND ?", 1700000000, 1700006000)
  T.eq(db.first("SELECT count(*) AS n FROM candles WHERE source = 'sql'").n, 2)
end)

T.test("bookkeeping: lib/series.lua writes the catalogue's tables; the views show the columns as before", function()
  local here = debug.getinfo(1, "S").source:match("^@(.*)/[^/]*$")
  local series = dofile(here .. "/../../scripts/lib/series.lua")
  local c = series.want("geckoterminal", "solana_fresh", "1m", 1000)
  T.eq(c.target, 1000)
  c.before, c.pages, c.rows = 5000, 2, 1000
  series.save_cursor("geckoterminal", "solana_fresh", "1m", c)
  T.eq(series.record_empties("geckoterminal", "solana_fresh", "1m", 60, { 1200, 1500, 1560, 1800 }, nil, nil, 10000), 7)
  T.eq(series.record_empties("geckoterminal", "solana_fresh", "1m", 60, { 1500, 1800 }, nil, nil, 10000), 4)
  series.set_gaps_checked("geckoterminal", "solana_fresh", "1m", nil, 1700)
  series.recheck_gaps("geckoterminal", "solana_fresh", "1m", 1300)
  T.eq(db.query("SELECT * FROM backfill WHERE instrument = 'solana_fresh'"),
       { { source = "geckoterminal", instrument = "solana_fresh", timeframe = "1m", target = 1000, before = 5000,
           complete = 0, pages = 2, rows = 1000, gaps_checked = 1300, updated = db.first("SELECT updated FROM series_backfill").updated } })
  T.eq(db.query("SELECT start, stop FROM empty_intervals WHERE instrument = 'solana_fresh' ORDER BY start"),
       { { start = 1260, stop = 1440 }, { start = 1560, stop = 1740 }, { start = 1620, stop = 1740 } })
  T.eq(db.first("SELECT count(*) AS n FROM series_empty e JOIN series s ON s.id = e.series WHERE s.instrument = 'solana_fresh'").n, 3)
  -- SQL writes through the views, as a user might make them
  T.eq(db.exec("INSERT INTO backfill (source, instrument, timeframe, target) VALUES ('x', 'y', '1h', 7)"), 0)
  db.exec("UPDATE backfill SET complete = 1 WHERE instrument = 'y'")
  db.exec("INSERT INTO empty_intervals VALUES ('x', 'y', '1h', 3600, 7200), ('x', 'y', '1h', 10800, 10800)")
  db.exec("DELETE FROM empty_intervals WHERE instrument = 'y' AND start = 3600")
  T.eq(db.query("SELECT target, complete, pages FROM backfill WHERE instrument = 'y'"), { { target = 7, complete = 1, pages = 0 } })
  T.eq(db.query("SELECT start, stop FROM empty_intervals WHERE instrument = 'y'"), { { start = 10800, stop = 10800 } })
  db.exec("DELETE FROM backfill WHERE instrument = 'y'")
  T.eq(db.query("SELECT * FROM backfill WHERE instrument = 'y'"), {})
end)

T.test("bookkeeping schema: lib/series.lua moves the text-keyed tables of core migration 4, refuses a mix", function()
  local here = debug.getinfo(1, "S").source:match("^@(.*)/[^/]*$")
  local series = dofile(here .. "/../../scripts/lib/series.lua")
  T.eq(db.first("SELECT max(version) AS v FROM migrations WHERE name = 'series'").v, 1)
  -- inside a transaction that is rolled back: the database of the other tests stays as it is
  local ok, err = pcall(db.tx, function()
    db.exec([[DROP VIEW backfill; DROP VIEW empty_intervals; DROP TABLE series_backfill; DROP TABLE series_empty;
      CREATE TABLE backfill (source TEXT NOT NULL, instrument TEXT NOT NULL, timeframe TEXT NOT NULL,
        target INTEGER NOT NULL, before INTEGER, complete INTEGER NOT NULL DEFAULT 0, first_ts INTEGER,
        pages INTEGER NOT NULL DEFAULT 0, rows INTEGER NOT NULL DEFAULT 0, gaps_checked INTEGER, updated REAL,
        PRIMARY KEY (source, instrument, timeframe));
      CREATE TABLE empty_intervals (source TEXT NOT NULL, instrument TEXT NOT NULL, timeframe TEXT NOT NULL,
        start INTEGER NOT NULL, stop INTEGER NOT NULL, PRIMARY KEY (source, instrument, timeframe, start)) WITHOUT ROWID;
      INSERT INTO backfill VALUES ('v4', 'a', '1m', 100, 200, 0, NULL, 3, 30, 150, 1700000000.5),
        ('v4', 'b', '1h', 7, NULL, 1, 7, 0, 0, NULL, NULL);
      INSERT INTO empty_intervals VALUES ('v4', 'a', '1m', 60, 120), ('v4', 'c', '5m', 300, 600);]])
    local before = { db.query("SELECT * FROM backfill ORDER BY 1, 2, 3"), db.query("SELECT * FROM empty_intervals ORDER BY 1, 2, 3, 4") }
    series.MIGRATIONS[1]()
    T.eq({ db.query("SELECT * FROM backfill ORDER BY 1, 2, 3"), db.query("SELECT * FROM empty_intervals ORDER BY 1, 2, 3, 4") },
         before, "the same rows and values through the views")
    T.eq(db.query("SELECT type FROM sqlite_schema WHERE name IN ('backfill', 'empty_intervals') ORDER BY name"),
         { { type = "view" }, { type = "view" } })
    T.eq(series.cursor("v4", "a", "1m"), { target = 100, before = 200, complete = false, pages = 3, rows = 30,
                                            gaps_checked = 150 })
    series.MIGRATIONS[1]()                       -- run on what it made: recognised, nothing changes
    T.eq(db.first("SELECT count(*) AS n FROM series_empty").n, 2)
    db.exec("DROP VIEW empty_intervals")
    series.MIGRATIONS[1]()
  end)
  T.eq(ok, false)
  T.ok(tostring(err):find("series bookkeeping: unexpected objects (backfill, empty_intervals, series_backfill, series_empty: view - table table)", 1, true), err)
  T.eq(db.first("SELECT type FROM sqlite_schema WHERE name = 'empty_intervals'").type, "view", "rolled back")
  T.eq(db.query("SELECT * FROM backfill WHERE source = 'v4'"), {})
end)

T.test("the reader's range query uses the keys: catalogue index, then the bars' primary key", function()
  local plan = {}
  for _, r in ipairs(db.query([[EXPLAIN QUERY PLAN SELECT * FROM candles WHERE source = ? AND instrument = ?
      AND timeframe = ? AND ts BETWEEN ? AND ?]], "binance_spot", "BTCUSDT", "1m", 0, 1)) do
    plan[#plan + 1] = r.detail
  end
  T.eq(plan, { "SEARCH s USING COVERING INDEX sqlite_autoindex_series_1 (source=? AND instrument=? AND timeframe=?)",
               "SEARCH b USING PRIMARY KEY (series=? AND ts>? AND ts<?)" })
end)

T.run()
