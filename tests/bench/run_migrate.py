#!/usr/bin/env python3
"""Migration benchmark (issue 18): a database of the layout before the series catalogue, with
--candles candles (Binance-shaped and GeckoTerminal-shaped series) and --trades trades, migrated in
place by `candled eval tests/bench/migrate.lua` (the runtime's slices, database.migrate_batch as
configured). Reports rows moved per second and how late a task's 1 ms sleep wakes up meanwhile
(the loop's responsiveness during the migration), and the same sleeps on the migrated database
for as long, as the baseline of the machine at that moment.

usage: run_migrate.py --candled BUILD/candled [--candles 1000000] [--trades 100000] [--batch 1000]
"""
import argparse
import os
import sqlite3
import subprocess
import tempfile

V4 = """
DROP VIEW candles; DROP VIEW trades;
DROP TABLE bars; DROP TABLE ticks; DROP TABLE series;
DELETE FROM migrations WHERE name = 'core' AND version IN (5, 6);
CREATE TABLE candles (
  source TEXT NOT NULL, instrument TEXT NOT NULL, timeframe TEXT NOT NULL, ts INTEGER NOT NULL,
  open REAL, high REAL, low REAL, close REAL, volume REAL, quote_volume REAL, trades INTEGER,
  PRIMARY KEY (source, instrument, timeframe, ts)) WITHOUT ROWID;
CREATE TABLE trades (
  source TEXT NOT NULL, instrument TEXT NOT NULL, trade_id TEXT NOT NULL, ts INTEGER NOT NULL,
  price REAL, amount REAL, volume_usd REAL, side TEXT, PRIMARY KEY (source, instrument, trade_id));
CREATE INDEX trades_by_time ON trades (source, instrument, ts);
CREATE TABLE backfill (
  source TEXT NOT NULL, instrument TEXT NOT NULL, timeframe TEXT NOT NULL,
  target INTEGER NOT NULL, before INTEGER, complete INTEGER NOT NULL DEFAULT 0,
  first_ts INTEGER, pages INTEGER NOT NULL DEFAULT 0, rows INTEGER NOT NULL DEFAULT 0,
  gaps_checked INTEGER, updated REAL, PRIMARY KEY (source, instrument, timeframe));
CREATE TABLE empty_intervals (
  source TEXT NOT NULL, instrument TEXT NOT NULL, timeframe TEXT NOT NULL,
  start INTEGER NOT NULL, stop INTEGER NOT NULL,
  PRIMARY KEY (source, instrument, timeframe, start)) WITHOUT ROWID;
"""


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--candled", required=True)
    ap.add_argument("--candles", type=int, default=1000000)
    ap.add_argument("--trades", type=int, default=100000)
    ap.add_argument("--batch", type=int, default=1000)
    a = ap.parse_args()
    a.candled = os.path.abspath(a.candled)
    here = os.path.dirname(os.path.abspath(__file__))
    with tempfile.TemporaryDirectory() as tmp:
        db = os.path.join(tmp, "a.db")
        env = dict(os.environ, CANDLED_DATABASE__PATH=db, CANDLED_LOG__LEVEL="warn",
                   CANDLED_DATABASE__MIGRATE_BATCH=str(a.batch))
        subprocess.run([a.candled, "eval", "-"], input="", text=True, env=env, cwd=tmp, check=True)
        con = sqlite3.connect(db)
        con.executescript(V4)
        per = a.candles // 100
        with con:
            for k in range(100):
                binance = k < 50
                src, inst = ("binance_spot", "SYM%dUSDT" % k) if binance else \
                    ("geckoterminal", "solana_%044d" % (k * 7919))
                con.executemany("INSERT INTO candles VALUES (?, ?, '1m', ?, ?, ?, ?, ?, ?, ?, ?)",
                                ((src, inst, 1600000000 + i * 60, 1.0 + i / 7, 1.1 + i / 7, 0.9 + i / 7, 1.05 + i / 7,
                                  i / 3, (i / 3 if binance else None), (i % 977 if binance else None)) for i in range(per)))
            con.executemany("INSERT INTO trades VALUES ('geckoterminal', ?, ?, ?, ?, ?, ?, 'buy')",
                            (("solana_%044d" % (i % 20), "0x%064x_%d" % (i * 2654435761, i % 3), 1600000000 + i,
                              i / 11, i / 13, 100 + i / 17) for i in range(a.trades)))
        con.close()
        out = subprocess.check_output([a.candled, "eval", os.path.join(here, "migrate.lua")], env=env, text=True,
                                      cwd=tmp).split()
        rows, secs, rate, n, p50, p99, mx = out
        base = subprocess.check_output([a.candled, "eval", os.path.join(here, "migrate.lua"), secs], env=env,
                                       text=True, cwd=tmp).split()
        print("migration: %s rows in %s s = %s rows/s (batches of %d)" % (rows, secs, rate, a.batch))
        print("a task's 1 ms sleep meanwhile: %s wake-ups, late by p50 %s ms, p99 %s ms, max %s ms" % (n, p50, p99, mx))
        print("the same sleeps without a migration (baseline): %s wake-ups, late by p50 %s ms, p99 %s ms, max %s ms"
              % tuple(base[3:]))
        con = sqlite3.connect(db)
        left = con.execute("SELECT count(*) FROM sqlite_master WHERE name IN ('candles_v4', 'trades_v4')").fetchone()[0]
        n = con.execute("SELECT (SELECT count(*) FROM candles) + (SELECT count(*) FROM trades)").fetchone()[0]
        con.close()
        assert left == 0 and n == int(rows), (left, n, rows)


if __name__ == "__main__":
    main()
