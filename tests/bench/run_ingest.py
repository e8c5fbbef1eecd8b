#!/usr/bin/env python3
"""Ingest benchmark (issue 2): candles stored per second end to end by candled vs. the SQLite ceiling.

usage: run_ingest.py --candled BUILD/candled --ceiling BUILD/tests/bench/sqlite_ceiling [--pages 60] [--repeat 7]
                     [--subscriber]

The mock serves BENCHUSDT 1m klines (1000 per page, generated once and then cached by the mock,
which is warmed before timing). Each repeat uses a fresh database. Reports the median of each side
and the ratio candled / ceiling (target >= 0.30). With --subscriber a task of candled's subscribes
to every candle event (as a strategy does) and the run ends once it has seen them all.
"""
import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import urllib.request

HERE = os.path.dirname(os.path.abspath(__file__))
SOURCE = os.path.normpath(os.path.join(HERE, "..", ".."))
START_MS = 1600000020000 - (1600000020000 % 60000)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--candled", required=True)
    ap.add_argument("--ceiling", required=True)
    ap.add_argument("--pages", type=int, default=60)
    ap.add_argument("--repeat", type=int, default=7)
    ap.add_argument("--subscriber", action="store_true",
                    help="a task subscribes to every candle event while candled collects")
    a = ap.parse_args()
    a.candled, a.ceiling = os.path.abspath(a.candled), os.path.abspath(a.ceiling)
    rows = a.pages * 1000
    end_ms = START_MS + rows * 60000
    mock = subprocess.Popen([sys.executable, os.path.join(SOURCE, "tests", "mock", "mock_http.py"),
                             "--fixtures", os.path.join(SOURCE, "fixtures"), "--bench-end-ms", str(end_ms),
                             "--exit-on-stdin-eof"], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    port = mock.stdout.readline().split()[1]
    url = "http://127.0.0.1:%s" % port
    try:
        req = urllib.request.Request(url + "/_mock/binance", method="POST", data=json.dumps(
            {"add": {"spot": [{"symbol": "BENCHUSDT", "baseAsset": "BENCH", "quoteAsset": "USDT"}]}}).encode())
        urllib.request.urlopen(req).read()             # listed by exchangeInfo: the script selects it
        for p in range(a.pages + 1):                  # warm the mock's page cache
            urllib.request.urlopen("%s/api/v3/klines?symbol=BENCHUSDT&interval=1m&limit=1000&startTime=%d"
                                   % (url, START_MS + p * 60000000)).read()
        ours, ceiling = [], []
        for _ in range(a.repeat):
            with tempfile.TemporaryDirectory() as tmp:
                env = dict(os.environ, MOCK_URL=url, CANDLED_DATABASE__PATH=os.path.join(tmp, "a.db"),
                           CANDLED_LOG__LEVEL="warn", BENCH_START="%d" % (START_MS // 1000),
                           KLINES_SCRIPT=os.path.join(SOURCE, "scripts", "binance", "spot.lua"),
                           CANDLED_PATHS__SCRIPTS=os.path.join(SOURCE, "scripts"),
                           INGEST_SUBSCRIBER="1" if a.subscriber else "0")
                env["BENCH_START"] = subprocess.check_output(
                    ["date", "-u", "-d", "@%d" % (START_MS // 1000), "+%Y-%m-%dT%H:%M:%SZ"], text=True).strip()
                out = subprocess.check_output([a.candled, "eval", os.path.join(HERE, "ingest.lua")], env=env,
                                              text=True, cwd=tmp).split()
                assert int(out[0]) == rows, "candled stored %s rows, expected %d" % (out[0], rows)
                ours.append(float(out[2]))
                out = subprocess.check_output([a.ceiling, os.path.join(tmp, "c.db"), str(rows)], text=True).split()
                ceiling.append(float(out[2]))
        o, c = statistics.median(ours), statistics.median(ceiling)
        print("ingest: %d rows x %d runs%s" % (rows, a.repeat, ", a candle subscriber" if a.subscriber else ""))
        print("candled end to end : %10.0f candles/s (median; runs: %s)" % (o, ", ".join("%.0f" % x for x in ours)))
        print("SQLite ceiling     : %10.0f rows/s    (median; runs: %s)" % (c, ", ".join("%.0f" % x for x in ceiling)))
        ratios = [x / y for x, y in zip(ours, ceiling)]
        print("ratio of medians   : %10.2f" % (o / c))
        print("ratio per run      : %10.2f  (median of %s; target >= 0.30)"
              % (statistics.median(ratios), ", ".join("%.2f" % r for r in ratios)))
    finally:
        mock.stdin.close()
        mock.wait(timeout=10)


if __name__ == "__main__":
    main()
