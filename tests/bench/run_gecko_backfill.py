#!/usr/bin/env python3
"""GeckoTerminal backfill efficiency benchmark (issue 4).

usage: run_gecko_backfill.py --candled BUILD/candled [--pools 3] [--days 30] [--scale 12]

GeckoTerminal's keyless limit, 30 requests a minute, scaled in time: the mock's strict limiter
admits 30 requests per 60/SCALE seconds (429 beyond, 418 for ignoring a 429) and candled's budget
`geckoterminal` declares the same window (no reserve). A fresh daemon with K watchlist pools and
all 7 timeframes (1m 5m 15m 1h 4h 12h 1d) backfills DAYS of history; only the watchlist and
backfill scripts run, so every OHLCV call is backfill. Reports:
  calls made / minimum calls: the minimum comes from the source, not from what candled did: per
  series, ceil(bars the mock holds from the series' target to the last closed bar / 1000) OHLCV
  calls (read from the mock after the run, its limiter off), plus one pool lookup per pool;
  wall time / budget-limited minimum: from the first to the last API call, against the time the
  limit needs to admit that minimum (call k can go at floor(k / 30) windows).
"""
import argparse
import json
import math
import os
import sqlite3
import subprocess
import sys
import tempfile
import time
import urllib.request

HERE = os.path.dirname(os.path.abspath(__file__))
SOURCE = os.path.dirname(os.path.dirname(HERE))
LIMIT = 30


def call(url, method="GET", body=None):
    req = urllib.request.Request(url, method=method, data=json.dumps(body).encode() if body else None)
    text = urllib.request.urlopen(req).read()
    return json.loads(text) if text else None


TF = {"1m": ("minute", 1, 60), "5m": ("minute", 5, 300), "15m": ("minute", 15, 900),
      "1h": ("hour", 1, 3600), "4h": ("hour", 4, 14400), "12h": ("hour", 12, 43200), "1d": ("day", 1, 86400)}


def source_bars(url, pool, tf, lo, ended):
    """Bars the mock holds for `pool` `tf` from `lo` to the last bar closed at `ended` (paged by rows)."""
    seg, agg, step = TF[tf]
    hi = int(ended) // step * step - step
    n, before = 0, hi + step
    while True:
        doc = call("%s/api/v2/networks/solana/pools/%s/ohlcv/%s?aggregate=%d&limit=1000&before_timestamp=%d"
                   % (url, pool.split("_", 1)[1], seg, agg, before))
        rows = doc["data"]["attributes"]["ohlcv_list"]
        n += sum(1 for r in rows if lo <= r[0] <= hi)
        if len(rows) < 1000 or rows[-1][0] <= lo:
            return n
        before = rows[-1][0]


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--candled", required=True)
    ap.add_argument("--pools", type=int, default=3)
    ap.add_argument("--days", type=float, default=30)
    ap.add_argument("--scale", type=float, default=12)
    a = ap.parse_args()
    a.candled = os.path.abspath(a.candled)
    window = 60.0 / a.scale
    mock = subprocess.Popen([sys.executable, os.path.join(SOURCE, "tests", "mock", "mock_http.py"),
                             "--fixtures", os.path.join(SOURCE, "fixtures"), "--exit-on-stdin-eof",
                             "--max-log", "100000"],
                            stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    url = "http://127.0.0.1:%s" % mock.stdout.readline().split()[1]
    try:
        call(url + "/_mock/limiter", "POST", {"limit": LIMIT, "window": window, "ban": 60, "prefix": "/api/v2"})
        with tempfile.TemporaryDirectory() as tmp:
            with open(os.path.join(SOURCE, "fixtures", "geckoterminal", "watchlist.csv")) as f:
                lines = f.read().splitlines()
            with open(os.path.join(tmp, "watchlist.csv"), "w") as f:
                f.write("\n".join(lines[:1 + a.pools]) + "\n")
            off = ", ".join('["geckoterminal.%s"] = { enabled = false }' % s
                            for s in ("ohlcv", "trades", "dexes", "top_pools"))
            with open(os.path.join(tmp, "config.lua"), "w") as f:
                f.write('return { log = { level = "warn" }, database = { path = "b.db" },\n'
                        '  paths = { scripts = %s },\n'
                        '  scripts = { ["binance.spot"] = { enabled = false }, %s },\n'
                        '  sources = { geckoterminal = { base_url = "%s/api/v2", history_days = %g } },\n'
                        '  budgets = { geckoterminal = { windows = { { per = %g, limit = %d } } } } }\n'
                        % (json.dumps(os.path.join(SOURCE, "scripts")), off, url, a.days, window, LIMIT))
            daemon = subprocess.Popen([a.candled, "run", "--config", os.path.join(tmp, "config.lua")], cwd=tmp)
            db = os.path.join(tmp, "b.db")
            series = a.pools * 7
            deadline = time.time() + 3600
            while time.time() < deadline:
                time.sleep(0.5)
                try:
                    con = sqlite3.connect(db, timeout=10)
                    done = con.execute("SELECT count(*) FROM backfill WHERE complete = 1").fetchone()[0]
                    ran = con.execute("SELECT count(*) FROM runs WHERE script = 'geckoterminal.backfill'"
                                      " AND status = 'ok'").fetchone()[0]
                    con.close()
                except sqlite3.OperationalError:
                    continue
                if done == series and ran >= 1:
                    break
            daemon.terminate()
            daemon.wait(timeout=30)
            con = sqlite3.connect(db)
            stored = con.execute("SELECT count(*) FROM candles").fetchone()[0]
            targets = con.execute("SELECT instrument, timeframe, target FROM backfill").fetchall()
            con.close()
        log = call(url + "/_mock/requests")
        lim = call(url + "/_mock/limiter")
        ended = max(r["time"] for r in log if r["path"].startswith("/api/v2/"))
        call(url + "/_mock/limiter", "DELETE")
        held = {(pool, tf): source_bars(url, pool, tf, target, ended) for pool, tf, target in targets}
    finally:
        mock.stdin.close()
        mock.wait(timeout=10)
    api = [r for r in log if r["path"].startswith("/api/v2/")]
    ohlcv = [r for r in api if "/ohlcv/" in r["path"]]
    minimum = sum(math.ceil(n / 1000) for n in held.values())
    made_all, min_all = len(api), minimum + a.pools             # one pool lookup per pool
    wall = max(r["time"] for r in api) - min(r["time"] for r in api)
    min_wall = ((min_all - 1) // LIMIT) * window
    print("gecko backfill: %d pools x 7 timeframes, %g days, limit %d per %g s (30/min scaled x%g)"
          % (a.pools, a.days, LIMIT, window, a.scale))
    print("bars held by source: %d in %d series (stored: %d)" % (sum(held.values()), len(held), stored))
    print("OHLCV calls        : %d made, %d minimum -> ratio %.3f (target <= 1.05)"
          % (len(ohlcv), minimum, len(ohlcv) / minimum))
    print("all API calls      : %d (minimum %d)" % (made_all, min_all))
    print("wall time          : %.1f s, budget-limited minimum %.1f s -> ratio %.3f (target <= 1.1)"
          % (wall, min_wall, wall / min_wall if min_wall else float("nan")))
    print("mock limiter       : admitted %d, 429s %d, 418s %d, most in one window %d"
          % (lim["admitted"], lim["r429"], lim["r418"], lim["max_used"]))


if __name__ == "__main__":
    main()
