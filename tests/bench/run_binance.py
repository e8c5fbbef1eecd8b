#!/usr/bin/env python3
"""Binance REST backfill benchmark (issue 13).

usage: run_binance.py --candled BUILD/candled [--symbols 50] [--days 30] [--window 10] [--limit 6000]
                      [--concurrency 8]

The mock's live Binance mode with its strict limiter on USDT-M: LIMIT weight per fixed window of
WINDOW seconds (Binance's 6000 a minute, the minute scaled down; 429 beyond it, 418 for ignoring a
429), and exchangeInfo saying so, so candled's budget `binance_usdm` comes from exchangeInfo as in
production (5% reserve). `candled eval` runs one klines run of the real scripts (lib/binance.lua,
B.collect) for SYMBOLS perpetuals x DAYS of 1m on a fresh database: 1500 bars a page at weight 10.

Reports wall time (from the first API call to the end of the run) against the weight-limited
minimum, derived from the source, not from what candled did: the bars the mock holds from the
history target to the last closed minute, ceil(bars / 1500) pages per symbol, their weights by the
futures table, plus one exchangeInfo (weight 1). Two minimums:
  rate:    total weight / LIMIT windows (the weight spent at exactly the allowed rate);
  windows: (ceil(total weight / LIMIT) - 1) windows (a fixed-window server admits a full window at
           once, so the last window's requests can start no earlier than that).
Also checks that the mock saw no 429 or 418 and every bar was stored.
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
PAGE = 1500


def weight(limit):
    return 1 if limit < 100 else 2 if limit < 500 else 5 if limit <= 1000 else 10


def call(url, method="GET", body=None):
    req = urllib.request.Request(url, method=method, data=json.dumps(body).encode() if body is not None else None)
    with urllib.request.urlopen(req, timeout=30) as r:
        return json.loads(r.read())


LUA = """
local B = require 'lib.binance'
local time = require 'rt.time'
local o = B.options('usdm')
local t0 = time.now()
assert(B.collect(o))
print(('%.4f %.4f'):format(t0, time.now()))
"""


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--candled", required=True)
    ap.add_argument("--symbols", type=int, default=50)
    ap.add_argument("--days", type=float, default=30)
    ap.add_argument("--window", type=int, default=10)
    ap.add_argument("--limit", type=int, default=6000)
    ap.add_argument("--concurrency", type=int, default=8)
    a = ap.parse_args()
    a.candled = os.path.abspath(a.candled)
    mock = subprocess.Popen([sys.executable, os.path.join(SOURCE, "tests", "mock", "mock_http.py"), "--fixtures",
                             os.path.join(SOURCE, "fixtures"), "--exit-on-stdin-eof", "--max-log", "0"],
                            stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    url = "http://127.0.0.1:%s" % mock.stdout.readline().split()[1]
    try:
        call(url + "/_mock/binance", "POST", {"live": True, "window": a.window, "limits": {"usdm": a.limit},
                                             "bench": {"usdm": a.symbols}})
        symbols = ["BENCH%03dUSDT" % i for i in range(1, a.symbols + 1)]
        with tempfile.TemporaryDirectory() as tmp:
            cfg = os.path.join(tmp, "config.lua")
            with open(cfg, "w") as f:
                f.write("return { database = { path = %s }, log = { level = 'warn' }, paths = { scripts = %s },\n"
                        "  sources = { binance_usdm = { base_url = %s, symbols = { %s }, intervals = { '1m' },\n"
                        "    history_days = %r, concurrency = %d, ratios = false } } }\n" % (
                            json.dumps(os.path.join(tmp, "b.db")), json.dumps(os.path.join(SOURCE, "scripts")),
                            json.dumps(url), ", ".join(json.dumps(s) for s in symbols), a.days, a.concurrency))
            out = subprocess.run([a.candled, "eval", "--config", cfg, "-"], input=LUA, capture_output=True,
                                 text=True, cwd=tmp, timeout=3600)
            if out.returncode != 0:
                sys.exit("candled failed: " + out.stdout + out.stderr)
            t0, t1 = (float(x) for x in out.stdout.split())
            con = sqlite3.connect(os.path.join(tmp, "b.db"))
            stored, lo, hi = con.execute("SELECT count(*), min(ts), max(ts) FROM candles WHERE timeframe = '1m'").fetchone()
            con.close()
        st = call(url + "/_mock/binance")["markets"]["usdm"]
        # the minimum from the source: the bars the mock holds from the history target to the last
        # closed minute as of the run's start (clock_skew 1 s), each symbol listed long before
        now = t0 - 1
        target, last = (now - a.days * 86400) // 60 * 60, now // 60 * 60 - 60
        per = int(last - target) // 60 + 1
        held = call(url + "/fapi/v1/klines?symbol=BENCH001USDT&interval=1m&startTime=%d&limit=1500" % (target * 1000))
        assert len(held) == 1500 and held[0][0] == target * 1000, "the mock holds the bars from the target"
        pages = [PAGE] * (per // PAGE) + ([per % PAGE] if per % PAGE else [])
        total = a.symbols * sum(weight(p) for p in pages) + 1
        rate_min = total / a.limit * a.window
        windows_min = (math.ceil(total / a.limit) - 1) * a.window
        wall = t1 - t0
        print("binance REST backfill: %d symbols x %g days of 1m (%d bars), %d weight/%d s window, concurrency %d" % (
            a.symbols, a.days, stored, a.limit, a.window, a.concurrency))
        print("requests %d, weight %d (minimum %d), 429s %d, 418s %d, most weight in a window %d" % (
            st["admitted"], st["admitted_weight"], total, st["r429"], st["r418"], st["max_used"]))
        print("wall time                 : %8.2f s (the klines run, from before its first call to its end)" % wall)
        print("minimum, weight at rate   : %8.2f s   ratio %.3f  (target <= 1.1)" % (rate_min, wall / rate_min))
        print("minimum, fixed windows    : %8.2f s   ratio %.3f" % (windows_min, wall / windows_min if windows_min else 0))
        ok = stored == a.symbols * per and (lo, hi) == (target, last) and st["r429"] == 0 and st["r418"] == 0
        print("every bar stored, no 429/418:", "yes" if ok else "NO")
        return 0 if ok else 1
    finally:
        mock.stdin.close()
        try:
            mock.wait(timeout=5)
        except subprocess.TimeoutExpired:
            mock.kill()


if __name__ == "__main__":
    sys.exit(main())
