-- rt.db: exec/query/first, parameter binding, the error convention, upsert, tx, migrate, path.
local T = require "testlib"
local db = require "rt.db"
local http = require "rt.http"
local time = require "rt.time"

local M = os.getenv("MOCK_URL")

local function count(tbl, where, ...)
  return db.first("SELECT count(*) AS n FROM " .. tbl .. (where and (" WHERE " .. where) or ""), ...).n
end

local function keys_of(t)
  local ks = {}
  for k in pairs(t) do ks[#ks + 1] = k end
  table.sort(ks)
  return ks
end

-- ---- exec / query / first --------------------------------------------------------------------

T.test("exec: DDL returns 0, DML returns the rows it changed", function()
  T.eq(db.exec("CREATE TABLE e (id INTEGER PRIMARY KEY, name TEXT)"), 0)
  T.eq(db.exec("INSERT INTO e (name) VALUES ('a'), ('b'), ('c')"), 3)
  T.eq(db.exec("CREATE INDEX e_by_name ON e (name)"), 0, "DDL after an INSERT is not the INSERT's count")
  T.eq(db.exec("SELECT * FROM e"), 0, "a SELECT changes nothing")
  T.eq(db.exec("UPDATE e SET name = upper(name) WHERE name <> 'c'"), 2)
  T.eq(db.exec("UPDATE e SET name = 'zz' WHERE 0"), 0)
  T.eq(db.exec("DELETE FROM e WHERE name = ?", "c"), 1)
  T.eq(math.type(db.exec("DELETE FROM e")), "integer")
end)

T.test("exec: several statements without parameters run in order", function()
  db.exec([[
    CREATE TABLE multi (a INTEGER);
    INSERT INTO multi VALUES (1);
    INSERT INTO multi VALUES (2);
  ]])
  T.eq(db.query("SELECT a FROM multi ORDER BY a"), { { a = 1 }, { a = 2 } })
  T.raises(function() db.exec("INSERT INTO multi VALUES (?); INSERT INTO multi VALUES (3)", 9) end,
           "parameters with several statements")
  T.eq(count("multi"), 2)
end)

T.test("query/first: row shapes and types; NULL columns are absent", function()
  db.exec("CREATE TABLE shapes (i INTEGER, f REAL, s TEXT, n TEXT, b BLOB)")
  db.exec("INSERT INTO shapes VALUES (1, 1.5, 'x', NULL, x'00ff'), (2, 2.0, 'y', 'z', NULL)")
  local rows = db.query("SELECT * FROM shapes ORDER BY i")
  T.eq(rows, { { i = 1, f = 1.5, s = "x", b = "\0\255" }, { i = 2, f = 2.0, s = "y", n = "z" } })
  T.eq(math.type(rows[1].i), "integer")
  T.eq(math.type(rows[2].f), "float")
  T.eq(keys_of(rows[1]), { "b", "f", "i", "s" }, "the NULL column n is not a key")
  T.eq(db.first("SELECT * FROM shapes ORDER BY i DESC"), rows[2])
  T.eq(db.first("SELECT * FROM shapes WHERE i = ?", 99), nil)
  T.eq(db.query("SELECT * FROM shapes WHERE i = ?", 99), {})
  T.eq(db.first("SELECT count(*) AS n, 'lit' AS s FROM shapes"), { n = 2, s = "lit" })
end)

T.test("columns: one array per column, the row count, NULL as a hole, failures as nil, msg, code", function()
  db.exec("CREATE TABLE colt (id INTEGER PRIMARY KEY, x REAL, s TEXT)")
  db.exec("INSERT INTO colt (id, x, s) VALUES (1, 1.5, 'a'), (2, NULL, 'b'), (3, -2.0, NULL)")
  local c, n = db.columns("SELECT id, x, s FROM colt WHERE id >= ? ORDER BY id", 1)
  T.eq(n, 3)
  T.eq(c.id, { 1, 2, 3 })
  T.eq(c.x[1], 1.5)
  T.eq(c.x[2], nil)
  T.eq(c.x[3], -2.0)
  T.eq(c.s[1], "a")
  T.eq(c.s[3], nil)
  local e, m = db.columns("SELECT id FROM colt WHERE id > 100")
  T.eq(m, 0)
  T.eq(e.id, {})
  T.raises(function() db.columns("SELECT nope FROM colt") end, "no such column")
end)

T.test("parameters: each Lua type binds as expected", function()
  local cases = {
    { 42, "integer", 42 }, { -7, "integer", -7 }, { 2.5, "real", 2.5 }, { "txt", "text", "txt" },
    { "", "text", "" }, { true, "integer", 1 }, { false, "integer", 0 },
    { math.maxinteger, "integer", math.maxinteger }, { "a\0b", "text", "a\0b" },
  }
  for _, c in ipairs(cases) do
    T.eq(db.first("SELECT ?1 AS v, typeof(?1) AS t", c[1]), { v = c[3], t = c[2] }, "binding " .. tostring(c[1]))
  end
  T.eq(db.first("SELECT ?1 AS v, typeof(?1) AS t", nil), { t = "null" }, "nil binds NULL")
  T.eq(db.first("SELECT ? AS a, ? AS b, ? AS c", 1, nil, 3), { a = 1, c = 3 }, "nil in the middle")
  T.eq(db.first("SELECT ? AS a, typeof(?) AS t", 1), { a = 1, t = "null" }, "missing trailing params are NULL")
  T.eq(db.first("SELECT :x AS x, @y AS y, $z AS z", "p", "q", "r"), { x = "p", y = "q", z = "r" })
end)

T.test("parameters: stale bindings of a cached statement do not leak into the next call", function()
  T.eq(db.first("SELECT ? AS a, ? AS b", 1, 2), { a = 1, b = 2 })
  T.eq(db.first("SELECT ? AS a, ? AS b", 5), { a = 5 })
end)

T.test("parameters: more than placeholders or unbindable types raise", function()
  T.raises(function() db.query("SELECT ? AS a", 1, 2) end, "2 parameters given, the statement takes 1")
  T.raises(function() db.exec("SELECT 1", 1) end, "1 parameters given, the statement takes 0")
  T.raises(function() db.first("SELECT ? AS a", {}) end, "parameter 1: cannot bind a table")
  T.raises(function() db.query("SELECT ?, ? AS a", 1, print) end, "parameter 2: cannot bind a function")
end)

T.test("SQL that does not compile raises with SQLite's message", function()
  T.raises(function() db.exec("SELEC 1") end, 'db.exec: near "SELEC": syntax error')
  T.raises(function() db.query("SELECT * FROM no_such_table") end, "db.query: no such table: no_such_table")
  T.raises(function() db.first("SELECT nope FROM shapes") end, "db.first: no such column: nope")
  T.raises(function() db.exec(42) end, "near \"42\"")
  T.raises(function() db.exec() end, "string expected")
  T.raises(function() db.query({}) end, "string expected")
end)

T.test("constraint violation -> nil, msg, SQLITE_CONSTRAINT", function()
  db.exec("CREATE TABLE uniq (k TEXT PRIMARY KEY, v TEXT NOT NULL)")
  T.eq(db.exec("INSERT INTO uniq VALUES ('a', '1')"), 1)
  local msg = T.fails("SQLITE_CONSTRAINT", db.exec("INSERT INTO uniq VALUES ('a', '2')"))
  T.ok(msg:find("UNIQUE constraint failed: uniq.k", 1, true), msg)
  msg = T.fails("SQLITE_CONSTRAINT", db.exec("INSERT INTO uniq VALUES (?, ?)", "b", nil))
  T.ok(msg:find("NOT NULL constraint failed", 1, true), msg)
  T.fails("SQLITE_CONSTRAINT", db.query("INSERT INTO uniq VALUES ('a', '3') RETURNING k"))
  T.eq(db.query("SELECT * FROM uniq"), { { k = "a", v = "1" } })
end)

-- ---- upsert ----------------------------------------------------------------------------------

local function make_upsert_table(name)
  db.exec("CREATE TABLE " .. name .. " (k TEXT NOT NULL, d INTEGER NOT NULL, v REAL, note TEXT, "
          .. "PRIMARY KEY (k, d))")
end

T.test("upsert: inserts, then identical rows change nothing", function()
  make_upsert_table("u1")
  local rows = { { k = "a", d = 1, v = 1.5, note = "x" }, { k = "a", d = 2, v = 2.5 }, { k = "b", d = 1, v = 0 } }
  T.eq({ db.upsert("u1", rows, { keys = { "k", "d" } }) }, { 3, 0 })
  T.eq({ db.upsert("u1", rows, { keys = { "k", "d" } }) }, { 0, 0 })
  T.eq(db.query("SELECT * FROM u1 ORDER BY k, d"), rows)
end)

T.test("upsert: changed rows are counted as updated, new ones as inserted", function()
  make_upsert_table("u2")
  db.upsert("u2", { { k = "a", d = 1, v = 1.0, note = "x" }, { k = "a", d = 2, v = 2.0, note = "y" } },
            { keys = { "k", "d" } })
  local ins, upd = db.upsert("u2", {
    { k = "a", d = 1, v = 1.0, note = "x" },        -- same
    { k = "a", d = 2, v = 2.0, note = "changed" },  -- updated
    { k = "c", d = 9, v = 3.0, note = "new" },      -- inserted
  }, { keys = { "k", "d" } })
  T.eq({ ins, upd }, { 1, 1 })
  T.eq(db.first("SELECT note FROM u2 WHERE k = 'a' AND d = 2").note, "changed")
  -- columns come from the first row: a field it lacks is left alone ...
  T.eq({ db.upsert("u2", { { k = "c", d = 9, v = 3.0 } }, { keys = { "k", "d" } }) }, { 0, 0 })
  T.eq(db.first("SELECT note FROM u2 WHERE k = 'c'"), { note = "new" })
  -- ... unless opts.columns names it: then it is set to NULL, and value -> NULL counts (IS NOT, not <>)
  local opts = { keys = { "k", "d" }, columns = { "k", "d", "v", "note" } }
  T.eq({ db.upsert("u2", { { k = "c", d = 9, v = 3.0 } }, opts) }, { 0, 1 })
  T.eq(db.first("SELECT note FROM u2 WHERE k = 'c'"), {})
  T.eq({ db.upsert("u2", { { k = "c", d = 9, v = 3.0 } }, opts) }, { 0, 0 })
  T.eq({ db.upsert("u2", { { k = "c", d = 9, v = 3.0, note = "back" } }, opts) }, { 0, 1 })
end)

T.test("upsert: update=false only inserts", function()
  make_upsert_table("u3")
  db.upsert("u3", { { k = "a", d = 1, v = 1.0 } }, { keys = { "k", "d" } })
  T.eq({ db.upsert("u3", { { k = "a", d = 1, v = 9.0 }, { k = "b", d = 1, v = 2.0 } },
                   { keys = { "k", "d" }, update = false }) }, { 1, 0 })
  T.eq(db.first("SELECT v FROM u3 WHERE k = 'a'").v, 1.0)
end)

T.test("upsert: keep columns are written on insert and left as stored on update", function()
  make_upsert_table("u_keep")
  T.eq({ db.upsert("u_keep", { { k = "a", d = 1, v = 1.0, note = "first" } }, { keys = { "k", "d" }, keep = { "note" } }) },
       { 1, 0 })
  T.eq({ db.upsert("u_keep", { { k = "a", d = 1, v = 2.0, note = "second" } }, { keys = { "k", "d" }, keep = { "note" } }) },
       { 0, 1 })
  T.eq(db.query("SELECT v, note FROM u_keep"), { { v = 2.0, note = "first" } })
  -- only kept columns differ: nothing to update
  T.eq({ db.upsert("u_keep", { { k = "a", d = 1, v = 2.0, note = "third" } }, { keys = { "k", "d" }, keep = { "note" } }) },
       { 0, 0 })
  T.raises(function() db.upsert("u_keep", { { k = "a", d = 1 } }, { keys = { "k", "d" }, keep = "note" }) end,
           "option 'keep' must be a list")
end)

T.test("upsert: positional rows with opts.columns", function()
  make_upsert_table("u4")
  local opts = { keys = { "k", "d" }, columns = { "k", "d", "v", "note" } }
  T.eq({ db.upsert("u4", { { "a", 1, 1.5, "x" }, { "b", 2, 2.5, "y" } }, opts) }, { 2, 0 })
  T.eq({ db.upsert("u4", { { "a", 1, 1.5, "x" }, { "b", 2, 7.5, "y" } }, opts) }, { 0, 1 })
  T.eq(db.query("SELECT k, d, v, note FROM u4 ORDER BY k"),
       { { k = "a", d = 1, v = 1.5, note = "x" }, { k = "b", d = 2, v = 7.5, note = "y" } })
end)

T.test("upsert: only key columns (nothing to update)", function()
  db.exec("CREATE TABLE u5 (k TEXT PRIMARY KEY)")
  T.eq({ db.upsert("u5", { { k = "a" }, { k = "b" } }, { keys = { "k" } }) }, { 2, 0 })
  T.eq({ db.upsert("u5", { { k = "a" }, { k = "c" } }, { keys = { "k" } }) }, { 1, 0 })
end)

T.test("upsert: no rows -> 0, 0", function()
  T.eq({ db.upsert("u1", {}, { keys = { "k" } }) }, { 0, 0 })
end)

T.test("upsert: a later row with a field not in the first row raises, nothing stored", function()
  make_upsert_table("u6")
  local err = T.raises(function()
    db.upsert("u6", { { k = "a", d = 1, v = 1 }, { k = "b", d = 1, v = 1, extra = 5 } }, { keys = { "k", "d" } })
  end, "row 2 has a field that is not among the columns")
  T.ok(err:find("db.upsert u6", 1, true), err)
  T.eq(count("u6"), 0)
  time.sleep(0)                                -- not left inside a transaction
end)

T.test("upsert: misuse raises", function()
  make_upsert_table("u7")
  local rows = { { k = "a", d = 1 } }
  T.raises(function() db.upsert("u7", rows, { keys = { "x" } }) end, "key 'x' is not among the columns")
  T.raises(function() db.upsert("u7", rows, {}) end, "option 'keys' must be a non%-empty list")
  T.raises(function() db.upsert("u7", rows, { keys = {} }) end, "option 'keys' must be a non%-empty list")
  T.raises(function() db.upsert("u7", rows, { keys = { "k" }, bogus = 1 }) end, "unknown option 'bogus'")
  T.raises(function() db.upsert("u7", rows, { keys = { "k" }, update = 1 }) end, "option 'update' must be a boolean")
  T.raises(function() db.upsert("u7", rows) end, "table expected")
  T.raises(function() db.upsert("u7", "rows", { keys = { "k" } }) end, "table expected")
  T.raises(function() db.upsert("u7; DROP TABLE u7", rows, { keys = { "k" } }) end, "is not a plain identifier")
  T.raises(function() db.upsert("u7", { { k = "a", ["d;x"] = 1 } }, { keys = { "k" } }) end,
           "column 'd;x' is not a plain identifier")
  T.raises(function() db.upsert("no_such_table", rows, { keys = { "k" } }) end, "no such table")
  T.raises(function() db.upsert("u7", { { k = "a", d = 1 }, "x" }, { keys = { "k", "d" } }) end,
           "row 2 is a string, not a table")
  T.raises(function() db.upsert("u7", { "x" }, { keys = { "k" } }) end, "row 1 is not a table")
  T.eq(count("u7"), 0)
  time.sleep(0)
end)

T.test("upsert: a table-valued field raises", function()
  make_upsert_table("u8")
  T.raises(function()
    db.upsert("u8", { { k = "a", d = 1, v = 1 }, { k = "b", d = 1, v = { 1 } } }, { keys = { "k", "d" } })
  end, "row 2 column 'v': cannot store a table")
  T.eq(count("u8"), 0)
end)

T.test("upsert: one row violating NOT NULL rolls back the whole batch", function()
  make_upsert_table("u9")
  db.upsert("u9", { { k = "old", d = 1, v = 1 } }, { keys = { "k", "d" } })
  local rows = {
    { k = "old", d = 1, v = 2 },                 -- would update
    { k = "a", d = 1, v = 1 },                   -- would insert
    { k = "b", v = 3 },                          -- d is NULL
  }
  local _, msg, code = db.upsert("u9", rows, { keys = { "k", "d" }, columns = { "k", "d", "v" } })
  T.eq(code, "SQLITE_CONSTRAINT")
  T.ok(msg:find("NOT NULL constraint failed: u9.d", 1, true), msg)
  T.eq(db.query("SELECT k, d, v FROM u9"), { { k = "old", d = 1, v = 1.0 } }, "nothing from the batch stored")
  T.fails("SQLITE_CONSTRAINT", db.upsert("u9", rows, { keys = { "k", "d" }, columns = { "k", "d", "v" } }))
  time.sleep(0)
end)

T.test("candles: the core table accepts rows and its primary key dedups", function()
  local function candle(ts, close)
    return { source = "binance_spot", instrument = "BTCUSDT", timeframe = "1m", ts = ts, open = 1.0,
             high = 2.0, low = 0.5, close = close, volume = 10.0, quote_volume = 15.0, trades = 3 }
  end
  local keys = { keys = { "source", "instrument", "timeframe", "ts" } }
  T.eq({ db.upsert("candles", { candle(1700000000000, 1.5), candle(1700000060000, 1.6) }, keys) }, { 2, 0 })
  T.eq({ db.upsert("candles", { candle(1700000000000, 1.5), candle(1700000060000, 1.7) }, keys) }, { 0, 1 })
  T.eq(count("candles"), 2)
  local row = db.first("SELECT * FROM candles WHERE ts = ?", 1700000060000)
  T.eq(row, candle(1700000060000, 1.7))
  T.eq(math.type(row.ts), "integer")
  T.fails("SQLITE_CONSTRAINT", db.exec(
    "INSERT INTO candles (source, instrument, timeframe, ts) VALUES ('binance_spot', 'BTCUSDT', '1m', ?)",
    1700000000000))
end)

-- ---- tx --------------------------------------------------------------------------------------

T.test("tx: commits and returns fn's results; extra arguments are passed", function()
  db.exec("CREATE TABLE tx1 (a INTEGER)")
  local a, b, c = db.tx(function(x, y)
    db.exec("INSERT INTO tx1 VALUES (?)", x)
    db.exec("INSERT INTO tx1 VALUES (?)", y)
    return "done", x + y, nil
  end, 1, 2)
  T.eq({ a, b, c }, { "done", 3 })
  T.eq(db.query("SELECT a FROM tx1 ORDER BY a"), { { a = 1 }, { a = 2 } })
end)

T.test("tx: an error rolls back and is re-raised (the same value)", function()
  db.exec("CREATE TABLE tx2 (a INTEGER)")
  local err = T.raises(function()
    db.tx(function()
      db.exec("INSERT INTO tx2 VALUES (1)")
      error("boom")
    end)
  end, "boom")
  T.eq(count("tx2"), 0)
  local obj = { code = 7 }
  local ok, got = pcall(db.tx, function()
    db.exec("INSERT INTO tx2 VALUES (2)")
    error(obj)
  end)
  T.eq(ok, false)
  T.ok(got == obj, "the error object itself")
  T.eq(count("tx2"), 0)
  T.ok(err)
end)

T.test("tx: nesting uses savepoints", function()
  db.exec("CREATE TABLE tx3 (a TEXT)")
  db.tx(function()
    db.exec("INSERT INTO tx3 VALUES ('outer1')")
    local ok = pcall(db.tx, function()
      db.exec("INSERT INTO tx3 VALUES ('inner-rolled-back')")
      error("inner")
    end)
    T.eq(ok, false)
    T.eq(db.tx(function()
      db.exec("INSERT INTO tx3 VALUES ('inner-kept')")
      return "inner ok"
    end), "inner ok")
    db.exec("INSERT INTO tx3 VALUES ('outer2')")
  end)
  T.eq(db.query("SELECT a FROM tx3 ORDER BY rowid"), { { a = "outer1" }, { a = "inner-kept" }, { a = "outer2" } })
  -- an outer error undoes the committed inner savepoint too
  pcall(db.tx, function()
    db.tx(function() db.exec("INSERT INTO tx3 VALUES ('gone')") end)
    error("outer")
  end)
  T.eq(count("tx3", "a = 'gone'"), 0)
end)

T.test("tx: upsert inside a tx is part of it", function()
  make_upsert_table("tx4")
  pcall(db.tx, function()
    T.eq({ db.upsert("tx4", { { k = "a", d = 1 } }, { keys = { "k", "d" } }) }, { 1, 0 })
    error("undo")
  end)
  T.eq(count("tx4"), 0)
end)

T.test("tx: waiting inside raises 'cannot wait inside db.tx' and rolls back", function()
  db.exec("CREATE TABLE tx5 (a INTEGER)")
  T.raises(function()
    db.tx(function()
      db.exec("INSERT INTO tx5 VALUES (1)")
      time.sleep(0.01)
    end)
  end, "time.sleep: cannot wait inside db.tx")
  T.raises(function()
    db.tx(function() http.get(M .. "/static/hello.json") end)
  end, "http.get: cannot wait inside db.tx")
  T.eq(count("tx5"), 0)
  time.sleep(0)                                -- and outside a tx waiting works again
end)

T.test("tx: misuse raises", function()
  T.raises(function() db.tx() end, "function expected")
  T.raises(function() db.tx("SELECT 1") end, "function expected")
end)

-- ---- migrate ---------------------------------------------------------------------------------

T.test("migrate: string and function steps run once; the version is returned", function()
  local fn = T.expect(function() db.exec("INSERT INTO mg1 VALUES ('from a function step')") end, 1)
  local steps = { "CREATE TABLE mg1 (a TEXT)", fn }
  T.eq(db.migrate("mg1", steps), 2)
  T.eq(db.migrate("mg1", steps), 2, "re-running is a no-op")
  T.eq(db.query("SELECT a FROM mg1"), { { a = "from a function step" } })
  steps[3] = "ALTER TABLE mg1 ADD COLUMN b INTEGER DEFAULT 5"
  T.eq(db.migrate("mg1", steps), 3, "only the new step runs")
  T.eq(db.query("SELECT a, b FROM mg1"), { { a = "from a function step", b = 5 } })
  T.eq(db.first("SELECT max(version) AS v FROM migrations WHERE name = 'mg1'").v, 3)
end)

T.test("migrate: names are independent; no steps is version 0", function()
  T.eq(db.migrate("mg-empty", {}), 0)
  T.eq(db.migrate("mg2", { "CREATE TABLE mg2 (a)" }), 1)
  T.eq(db.migrate("core", { "u", "v", "w", "x", "y", "z" }), 6, "the runtime's own migrations are at 6")
end)

T.test("migrate: a failing SQL step returns nil, msg, code and leaves the version", function()
  local steps = { "CREATE TABLE mg3 (a)", "INSERT INTO mg3 VALUES (1); INSERT INTO no_such_table VALUES (1)" }
  local msg = T.fails("SQLITE_ERROR", db.migrate("mg3", steps))
  T.ok(msg:find("step 2", 1, true) and msg:find("no such table", 1, true), msg)
  T.eq(db.first("SELECT max(version) AS v FROM migrations WHERE name = 'mg3'").v, 1)
  T.eq(count("mg3"), 0, "the failed step's first statement was rolled back")
  steps[2] = "INSERT INTO mg3 VALUES (1)"
  T.eq(db.migrate("mg3", steps), 2, "a fixed step applies")
  T.eq(count("mg3"), 1)
  steps[3] = "INSERT INTO mg3 VALUES (NULL, NULL)"
  T.fails("SQLITE_ERROR", db.migrate("mg3", steps))
  T.eq(db.migrate("mg3", { steps[1], steps[2] }), 2)
  time.sleep(0)
end)

T.test("migrate: a raising function step raises and leaves the version", function()
  local err = T.raises(function()
    db.migrate("mg4", { "CREATE TABLE mg4 (a)", function()
      db.exec("INSERT INTO mg4 VALUES (1)")
      error("step failed")
    end })
  end, "db.migrate mg4 step 2: .*step failed")
  T.ok(err)
  T.eq(db.first("SELECT max(version) AS v FROM migrations WHERE name = 'mg4'").v, 1)
  T.eq(count("mg4"), 0)
  time.sleep(0)
end)

T.test("migrate: misuse raises", function()
  T.raises(function() db.migrate("mg5", { 42 }) end, "step 1 must be SQL text or a function")
  T.raises(function() db.migrate("mg5") end, "table expected")
  T.raises(function() db.migrate(nil, {}) end, "string expected")
  db.migrate("mg6", { "SELECT 1", "SELECT 2" })
  T.raises(function() db.migrate("mg6", { "SELECT 1" }) end, "at version 2 but only 1 steps")
end)

T.test("path() is the CANDLED_DATABASE__PATH file", function()
  local want = os.getenv("CANDLED_DATABASE__PATH")
  T.ok(want, "CANDLED_DATABASE__PATH is set")
  T.eq(db.path(), want)
  T.ok(io.open(db.path(), "rb"), "the file exists"):close()
end)


-- Issue 11, item 7: the shared connection refuses ATTACH/DETACH and pragmas that change the file.
T.test("ATTACH, DETACH, VACUUM INTO and durability pragmas are not authorized", function()
  T.raises(function() db.exec("ATTACH DATABASE '/tmp/candled-evil.db' AS evil") end, "not authorized")
  T.raises(function() db.exec("DETACH DATABASE main") end, "not authorized")
  T.raises(function() db.exec("PRAGMA journal_mode = DELETE") end, "not authorized")
  T.raises(function() db.exec("PRAGMA synchronous = OFF") end, "not authorized")
  T.eq(db.first("PRAGMA journal_mode").journal_mode, "wal", "still WAL")
  T.ok(db.first("PRAGMA table_info(runs)"), "reading pragmas is fine")
end)

T.test("upsert: a table of 60 columns (long statements built while the stack is in use)", function()
  local cols = {}
  for i = 1, 60 do cols[i] = "column_number_" .. i end
  db.exec("CREATE TABLE wide60 (" .. table.concat(cols, ", ") .. ", PRIMARY KEY (column_number_1, column_number_2))")
  local rows = {}
  for r = 1, 3 do
    local row = { "k", r }
    row[60] = r * 10
    rows[r] = row
  end
  T.eq({ db.upsert("wide60", rows, { keys = { "column_number_1", "column_number_2" }, columns = cols }) }, { 3, 0 })
  rows[2][59] = "changed"
  T.eq({ db.upsert("wide60", rows, { keys = { "column_number_1", "column_number_2" }, columns = cols }) }, { 0, 1 })
  T.eq(db.first("SELECT column_number_59 AS v FROM wide60 WHERE column_number_2 = 2").v, "changed")
end)

T.run()
