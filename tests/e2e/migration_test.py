"""End to end: a database of the layout before the series catalogue (candles and trades keyed by
text), filled by every collector (Binance klines, GeckoTerminal candles and trades through the real
scripts and the mock), migrates in place when the daemon starts. Killed with SIGKILL in the middle
of the migration and started again, it ends with exactly the same rows and values; the views show
every row at every point. The series bookkeeping (backfill cursors, known-empty intervals) is
scripts/lib/series.lua's (db.migrate "series"): the runtime leaves the old tables as they are, and
the library moves them once it loads, with the same values; a database whose bookkeeping an
earlier version's core migration made is kept as it is."""
import os
import shutil
import signal
import sqlite3
import subprocess
import time

import harness

CBRL = "7bqJG2ZdMKbEkgSmfuqNVBvqEvWavgL8UEo33ZqdL3NP"
WATCHLIST = ("tokenSymbol,tokenName,chain,dex,poolAddress,networkAddress\n"
             '"CBRL","Cracker Barrel","SOL","PumpSwap","%s","5LKHMd2rMSRaG9y4iHwSLRtrJ3dCrJ2CytvBeak8pump"\n' % CBRL)
CANDLES = "SELECT * FROM candles ORDER BY source, instrument, timeframe, ts"
TRADES = "SELECT * FROM trades ORDER BY source, instrument, trade_id"
BOOKKEEPING = ["SELECT * FROM backfill ORDER BY 1, 2, 3", "SELECT * FROM empty_intervals ORDER BY 1, 2, 3, 4",
               "SELECT * FROM instruments ORDER BY 1, 2"]

# Core migration steps of the series layout (5: catalogue, bars, ticks, the rename; 6: once the
# bookkeeping, empty since scripts/lib/series.lua owns it).
SERIES_STEPS = (5, 6)

# The tables of core version 4, as that version created them.
V4 = """
CREATE TABLE candles_v4_ (
  source TEXT NOT NULL, instrument TEXT NOT NULL, timeframe TEXT NOT NULL, ts INTEGER NOT NULL,
  open REAL, high REAL, low REAL, close REAL, volume REAL,
  quote_volume REAL, trades INTEGER,
  PRIMARY KEY (source, instrument, timeframe, ts)) WITHOUT ROWID;
CREATE TABLE trades_v4_ (
  source TEXT NOT NULL, instrument TEXT NOT NULL, trade_id TEXT NOT NULL, ts INTEGER NOT NULL,
  price REAL, amount REAL, volume_usd REAL, side TEXT,
  PRIMARY KEY (source, instrument, trade_id));
CREATE TABLE backfill_v4_ (
  source TEXT NOT NULL, instrument TEXT NOT NULL, timeframe TEXT NOT NULL,
  target INTEGER NOT NULL, before INTEGER, complete INTEGER NOT NULL DEFAULT 0,
  first_ts INTEGER, pages INTEGER NOT NULL DEFAULT 0, rows INTEGER NOT NULL DEFAULT 0,
  gaps_checked INTEGER, updated REAL,
  PRIMARY KEY (source, instrument, timeframe));
CREATE TABLE empty_intervals_v4_ (
  source TEXT NOT NULL, instrument TEXT NOT NULL, timeframe TEXT NOT NULL,
  start INTEGER NOT NULL, stop INTEGER NOT NULL,
  PRIMARY KEY (source, instrument, timeframe, start)) WITHOUT ROWID;
INSERT INTO candles_v4_ SELECT * FROM candles;
INSERT INTO trades_v4_ SELECT * FROM trades;
INSERT INTO backfill_v4_ SELECT * FROM backfill;
INSERT INTO empty_intervals_v4_ SELECT * FROM empty_intervals;
DROP VIEW candles; DROP VIEW trades; DROP VIEW backfill; DROP VIEW empty_intervals;
DROP TABLE bars; DROP TABLE ticks; DROP TABLE series_backfill; DROP TABLE series_empty; DROP TABLE series;
ALTER TABLE candles_v4_ RENAME TO candles;
ALTER TABLE trades_v4_ RENAME TO trades;
ALTER TABLE backfill_v4_ RENAME TO backfill;
ALTER TABLE empty_intervals_v4_ RENAME TO empty_intervals;
CREATE INDEX trades_by_time ON trades (source, instrument, ts);
DELETE FROM migrations WHERE name = 'core' AND version IN (%d, %d);
DELETE FROM migrations WHERE name = 'series';
VACUUM;
""" % SERIES_STEPS


class Migration(harness.Case):
    def collect(self, database=None):
        """Every collector fills a database of today's layout from the mock. Returns the config."""
        self.mock.call("POST", "/_mock/limiter", {"limit": 20, "window": 1, "ban": 30, "prefix": "/api/v2"})
        with open(os.path.join(self.dir, "watchlist.csv"), "w") as f:
            f.write(WATCHLIST)
        cfg = self.write_config({
            "database": dict({"path": "data/candled.db"}, **(database or {})), "log": {"level": "info"},
            "runtime": {"shutdown_grace": 2},
            "paths": {"scripts": os.path.join(harness.ARGS.source, "scripts")},
            "sources": {
                "binance_spot": {"base_url": self.mock.url, "symbols": ["BTCUSDT"], "intervals": ["1m"],
                                 "start": "2021-10-22T23:03:00Z"},
                "geckoterminal": {"base_url": self.mock.url + "/api/v2", "history_days": 1, "refresh_min": 60,
                                  "timeframes": ["1m", "1h"]}},
            "budgets": {
                "binance_spot": {"windows": [{"per": "1m", "limit": 6000}], "retries": 2,
                                 "backoff": {"base": 0.05, "cap": 0.2}},
                "geckoterminal": {"windows": [{"per": "1s", "limit": 20}], "reserve": 0.1,
                                  "backoff": {"base": 0.5, "cap": 2}}}})
        if database:
            return cfg
        p = self.start_daemon(cfg)
        self.wait_for(lambda: self.query("SELECT count(*) FROM candles WHERE source = 'binance_spot'")[0][0] == 2500
                      and self.query("SELECT count(*) FROM backfill WHERE complete = 1 AND source = 'geckoterminal'")[0][0] == 2
                      and self.query("SELECT count(*) FROM trades")[0][0] > 0, timeout=120, what="every collector")
        code, err = self.stop_daemon(p)
        self.assertEqual(code, 0, err)
        return cfg

    def series_lib(self, cfg):
        """What a collector, an export or `candled backfill` does first: load scripts/lib/series.lua."""
        r = self.candled("eval", "--config", cfg, "-", stdin='require "lib.series"',
                         env={"CANDLED_PATHS__SCRIPTS": os.path.join(harness.ARGS.source, "scripts")})
        self.assertEqual(r.returncode, 0, r.stderr)

    def bookkeeping_objects(self):
        return self.query("SELECT type, name FROM sqlite_master WHERE name IN ('backfill', 'empty_intervals', "
                          "'series_backfill', 'series_empty') ORDER BY name")

    BY_ID = [("view", "backfill"), ("view", "empty_intervals"), ("table", "series_backfill"), ("table", "series_empty")]

    def to_v4(self):
        con = sqlite3.connect(self.db_path)
        con.executescript(V4)
        con.close()

    def snapshot(self):
        con = sqlite3.connect(self.db_path)
        try:
            return {q: con.execute(q).fetchall() for q in [CANDLES, TRADES] + BOOKKEEPING}
        finally:
            con.close()

    def old_tables(self):
        return self.query("SELECT (SELECT count(*) FROM candles_v4) + (SELECT count(*) FROM trades_v4)")[0][0]

    def progress(self, total):
        """Rows left in the old tables when some moved and some not, "done" when none are left,
        None before the migration started (or while a table is being dropped)."""
        try:
            if self.query("SELECT count(*) FROM migrations WHERE name = 'core' AND version = ?", SERIES_STEPS[1])[0][0] == 0:
                return None
            if self.query("SELECT count(*) FROM sqlite_master WHERE name IN ('candles_v4', 'trades_v4')")[0][0] == 0:
                return "done"
            left = self.old_tables()
        except sqlite3.OperationalError:
            return None
        return left if 0 < left < total else None

    def test_killed_midway_and_resumed_ends_with_identical_values(self):
        self.collect()
        want = self.snapshot()
        sources = {r[0] for r in want[CANDLES]}
        self.assertEqual(sources, {"binance_spot", "geckoterminal"})
        self.assertGreater(len(want[TRADES]), 0)
        total = len(want[CANDLES]) + len(want[TRADES])
        self.to_v4()
        self.assertEqual(self.snapshot(), want, "the old layout holds the same rows")
        self.assertEqual(self.query("SELECT type FROM sqlite_master WHERE name IN ('candles', 'backfill')"),
                         [("table",), ("table",)])
        pristine = self.db_path + ".v4"
        shutil.copy(self.db_path, pristine)

        empty = os.path.join(self.dir, "noscripts")
        os.makedirs(empty)
        cfg = self.write_config({"database": {"path": "data/candled.db", "migrate_batch": 1},
                                 "log": {"level": "info"}, "runtime": {"shutdown_grace": 2},
                                 "paths": {"scripts": empty}})
        # Kill the daemon once some rows have moved and others not: with batches of one row this
        # takes a few hundred milliseconds, so a fast poll catches it; a machine fast enough to
        # finish first gets the pristine copy again (three tries).
        for attempt in range(3):
            for suffix in ("", "-wal", "-shm"):
                if os.path.exists(self.db_path + suffix):
                    os.remove(self.db_path + suffix)
            shutil.copy(pristine, self.db_path)
            p = self.start_daemon(cfg)
            left = self.wait_for(lambda: self.progress(total), timeout=30, what="the migration to start")
            p.send_signal(signal.SIGKILL)
            p.wait()
            if left != "done":
                break
        else:
            self.fail("the migration never stopped midway in three tries")
        left = self.old_tables()
        self.assertTrue(0 < left < total, left)
        self.assertEqual(self.snapshot(), want, "midway, the views show every row once")

        p = self.start_daemon(cfg)
        self.wait_for(lambda: self.query("SELECT count(*) FROM sqlite_master WHERE name IN ('candles_v4', 'trades_v4')")[0][0] == 0,
                      timeout=60, what="the migration to finish")
        code, err = self.stop_daemon(p)
        self.assertEqual(code, 0, err)
        self.assertIn("series layout: migration done, %d rows moved and verified" % left, err)
        self.assertEqual(self.snapshot(), want, "after the migration: the same rows and values")
        # the runtime leaves the bookkeeping alone; scripts/lib/series.lua moves it once it loads
        self.assertEqual(self.bookkeeping_objects(), [("table", "backfill"), ("table", "empty_intervals")])
        for attempt in range(2):                   # the second load finds it done: nothing runs twice
            self.series_lib(cfg)
            self.assertEqual(self.snapshot(), want, "the bookkeeping keyed by series id: the same rows and values")
            self.assertEqual(self.bookkeeping_objects(), self.BY_ID)
            self.assertEqual(self.query("SELECT version FROM migrations WHERE name = 'series'"), [(1,)])
        self.assertEqual(self.query("SELECT count(*) FROM sqlite_master WHERE sql LIKE '%candles_v4%' OR sql LIKE '%trades_v4%'"),
                         [(0,)])
        # one catalogue row per candle series and trade stream (the cursors' series have candles)
        series = len({r[:3] for r in want[CANDLES]}) + len({r[:2] for r in want[TRADES]})
        self.assertTrue({r[:3] for r in want[BOOKKEEPING[0]]} <= {r[:3] for r in want[CANDLES]})
        self.assertEqual(self.query("SELECT count(*) FROM series"), [(series,)])
        self.assertEqual(self.query("PRAGMA integrity_check"), [("ok",)])

    def test_bookkeeping_made_by_the_core_migration_of_an_earlier_version_is_kept(self):
        """A database whose bookkeeping core migration 6 made (an earlier version) has the same
        tables and views as scripts/lib/series.lua makes, and no "series" migration row: the
        library records its version and changes nothing."""
        cfg = self.write_config({"database": {"path": "data/candled.db"}})
        self.series_lib(cfg)
        con = sqlite3.connect(self.db_path)
        with con:
            con.execute("INSERT INTO backfill VALUES ('geckoterminal', 'solana_X', '1m', 1699990000, 1700000000, 0, NULL,"
                        " 3, 2500, 1700001000, 1700002000.5), ('binance_spot', 'BTCUSDT', '1h', 1, NULL, 1, 5, 0, 0, NULL, NULL)")
            con.execute("INSERT INTO empty_intervals VALUES ('geckoterminal', 'solana_X', '1m', 60, 120),"
                        " ('geckoterminal', 'solana_X', '1m', 600, 600), ('x', 'y', '1h', 3600, 7200)")
            con.execute("DELETE FROM migrations WHERE name = 'series'")
        con.close()
        want = self.snapshot()
        self.assertEqual(len(want[BOOKKEEPING[0]]), 2)
        self.assertEqual(len(want[BOOKKEEPING[1]]), 3)
        self.series_lib(cfg)
        self.assertEqual(self.snapshot(), want)
        self.assertEqual(self.bookkeeping_objects(), self.BY_ID)
        self.assertEqual(self.query("SELECT version FROM migrations WHERE name = 'series'"), [(1,)])

    def test_collectors_keep_running_during_the_migration(self):
        """The daemon collects while it migrates: the old rows are read through the views (where
        to resume, what is missing), re-read bars count as unchanged, and every row ends once."""
        self.collect()
        self.to_v4()
        # rows of another source that sort first, so the collectors' own rows are still in the old
        # tables while the collectors run (the trades run at the start rewrites its trades)
        con = sqlite3.connect(self.db_path)
        with con:
            con.executemany("INSERT INTO candles VALUES ('aaa_filler', 'X', '1m', ?, 1.5, 2.5, 0.5, ?, 10, NULL, NULL)",
                            [(1600000000 + i * 60, i / 7) for i in range(60000)])
        con.close()
        want = self.snapshot()
        total = len(want[CANDLES]) + len(want[TRADES])
        started = self.query("SELECT count(*) FROM runs")[0][0]
        cfg = self.collect(database={"migrate_batch": 20})
        p = self.start_daemon(cfg)
        self.wait_for(lambda: self.query("SELECT count(*) FROM sqlite_master WHERE name IN ('candles_v4', 'trades_v4')")[0][0] == 0
                      and self.query("SELECT count(*) FROM runs WHERE id > ? AND status = 'ok' AND script = 'geckoterminal.ohlcv'",
                                     started)[0][0] >= 1
                      and self.query("SELECT count(*) FROM runs WHERE id > ? AND status = 'ok' AND script = 'binance.spot'",
                                     started)[0][0] >= 1, timeout=90, what="the migration and collector runs")
        code, err = self.stop_daemon(p)
        self.assertEqual(code, 0, err)
        moved = [int(l.split("migration done, ")[1].split()[0]) for l in err.splitlines() if "migration done" in l]
        self.assertEqual(len(moved), 1, err)
        self.assertLess(moved[0], total, "the trades run moved the trades it rewrote itself")
        failed = self.query("SELECT script, error FROM runs WHERE id > ? AND status NOT IN ('ok', 'running', 'interrupted')",
                            started)
        self.assertEqual(failed, [])
        got = self.snapshot()
        # the collectors' library moved the bookkeeping at the start: every cursor and empty range
        # is still there (the runs moved cursors on and may have widened ranges)
        self.assertEqual(self.bookkeeping_objects(), self.BY_ID)
        self.assertTrue({r[:3] for r in want[BOOKKEEPING[0]]} <= {r[:3] for r in got[BOOKKEEPING[0]]})
        self.assertTrue({r[:4] for r in want[BOOKKEEPING[1]]} <= {r[:4] for r in got[BOOKKEEPING[1]]})
        # Binance's history was complete: nothing new
        self.assertEqual(len([r for r in got[CANDLES] if r[0] == "binance_spot"]),
                         len([r for r in want[CANDLES] if r[0] == "binance_spot"]))
        now = {r[:4]: r for r in got[CANDLES]}
        self.assertEqual(len(now), len(got[CANDLES]), "every candle once")
        for r in want[CANDLES]:
            self.assertEqual(now.get(r[:4]), r, "a candle collected before the migration")
        trades = {r[:3]: r for r in got[TRADES]}
        self.assertEqual(len(trades), len(got[TRADES]), "every trade once")
        for r in want[TRADES]:
            self.assertEqual(trades.get(r[:3]), r, "a trade collected before the migration")
        self.assertEqual(self.query("PRAGMA integrity_check"), [("ok",)])

    # Several processes opening one database at the same moment (a daemon, `candled backfill`, `candled
    # eval`): every migration step (core, series layout, the series bookkeeping of scripts/lib/series.lua,
    # a script's db.migrate) applies once, none fails.
    RACE = """
local db = require "rt.db"
local time = require "rt.time"
require "lib.series"
assert(db.first("SELECT count(*) AS n FROM backfill").n >= 0)
assert(db.migrate("race", { "CREATE TABLE race_a (p INTEGER)", "CREATE TABLE race_b (p INTEGER)" }) == 2)
assert(db.exec("INSERT INTO race_a VALUES (?)", %d))
local deadline = time.monotonic() + 30      -- stay until the old tables' rows have moved
while db.first("SELECT count(*) AS n FROM sqlite_master WHERE name IN ('candles_v4', 'trades_v4')").n > 0
      and time.monotonic() < deadline do
  assert(db.first("SELECT count(*) AS n FROM candles").n == %d, "every row shows while migrating")
  time.sleep(0.02)
end
print("ok")
"""

    def race(self, n, rows):
        cfg = self.write_config({"database": {"path": "data/candled.db", "migrate_batch": 50},
                                 "paths": {"scripts": os.path.join(harness.ARGS.source, "scripts")}})
        procs = []
        for i in range(n):
            path = os.path.join(self.dir, "race%d.lua" % i)
            with open(path, "w") as f:
                f.write(self.RACE % (i, rows))
            procs.append(subprocess.Popen([harness.ARGS.candled, "eval", "--config", cfg, path], cwd=self.dir,
                                          stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True))
        results = [p.communicate(timeout=60) + (p.returncode,) for p in procs]
        for out, err, code in results:
            self.assertEqual((code, out), (0, "ok\n"), err)
            self.assertEqual([l for l in err.splitlines() if "level=info" not in l], [], err)
        self.assertEqual(self.query("SELECT count(*), count(DISTINCT p) FROM race_a"), [(n, n)])
        self.assertEqual(self.query("SELECT name, version, count(*) FROM migrations GROUP BY name, version "
                                    "HAVING count(*) > 1"), [])
        self.assertEqual(self.query("PRAGMA integrity_check"), [("ok",)])
        self.assertEqual(self.bookkeeping_objects(), self.BY_ID)

    def test_processes_opening_a_fresh_database_at_once(self):
        os.makedirs(os.path.join(self.dir, "data"))
        for attempt in range(3):                   # a fresh file each time: the race is in its first second
            for suffix in ("", "-wal", "-shm"):
                if os.path.exists(self.db_path + suffix):
                    os.remove(self.db_path + suffix)
            self.race(8, 0)

    def test_processes_opening_an_old_layout_database_at_once(self):
        cfg = self.write_config({"database": {"path": "data/candled.db"}})
        self.series_lib(cfg)
        self.to_v4()
        con = sqlite3.connect(self.db_path)
        with con:
            con.executemany("INSERT INTO candles VALUES (?, 'X', '1m', ?, 1.5, 2.5, 0.5, ?, 10, NULL, NULL)",
                            [(src, 1600000000 + i * 60, i / 7) for src in ("a", "b") for i in range(600)])
            con.executemany("INSERT INTO trades VALUES ('a', 'X', ?, ?, 1.0, 2.0, 3.0, 'buy')",
                            [(str(i), 1600000000 + i) for i in range(300)])
        con.close()
        want = self.snapshot()
        self.race(6, 1200)
        self.assertEqual(self.snapshot(), want, "every row once, values unchanged")
        self.assertEqual(self.query("SELECT count(*) FROM sqlite_master WHERE name IN ('candles_v4', 'trades_v4')"),
                         [(0,)])

    def test_a_bad_batch_size_is_refused_naming_the_key(self):
        cfg = self.write_config({"database": {"path": "data/candled.db", "migrate_batch": 0}})
        r = self.candled("eval", "--config", cfg, "-", stdin="")
        self.assertEqual(r.returncode, 1)
        self.assertIn("database.migrate_batch must be from 1 to 1000000, not 0", r.stderr)
        self.assertFalse(os.path.exists(self.db_path), "nothing created")


if __name__ == "__main__":
    harness.main()
