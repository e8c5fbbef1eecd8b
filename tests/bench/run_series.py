#!/usr/bin/env python3
"""Series-layout benchmark (issue 18): the layout before (candles keyed by text) against the series
catalogue, with the same scripts and the same data, in one run.

usage: run_series.py --candled BUILD/candled --old-candled OLD_BUILD/candled [--pages 60] [--repeat 5]
                     [--ceiling BUILD/tests/bench/sqlite_ceiling --old-ceiling OLD_BUILD/tests/bench/sqlite_ceiling]

--old-candled is a build of the commit before the series layout, e.g.
    git worktree add /tmp/candled-old 323917e && cmake -S /tmp/candled-old -B /tmp/candled-old/build \
        -DCMAKE_BUILD_TYPE=Release && cmake --build /tmp/candled-old/build --target candled
Each repeat runs tests/bench/series.lua with both binaries (alternating which goes first), each on
a fresh database: the Binance klines part (end to end from the mock) and the GeckoTerminal-shaped
part (upserts, bytes, a 100,000-bar range query). With the ceilings: plain SQLite inserts of the
same number of kline rows into each layout's table, and through the new `candles` view (its INSTEAD
OF trigger), in the same repeats. Prints the medians and the per-repeat ratios.
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


def run(binary, part, env):
    with tempfile.TemporaryDirectory() as tmp:
        e = dict(env, CANDLED_DATABASE__PATH=os.path.join(tmp, "a.db"), BENCH_PART=part)
        out = subprocess.check_output([binary, "eval", os.path.join(HERE, "series.lua")], env=e, text=True, cwd=tmp)
        return {k: (float(v) if k != "layout" else v) for k, v in (kv.split("=") for kv in out.split())}


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--candled", required=True)
    ap.add_argument("--old-candled", required=True)
    ap.add_argument("--pages", type=int, default=60)
    ap.add_argument("--repeat", type=int, default=5)
    ap.add_argument("--ceiling")
    ap.add_argument("--old-ceiling")
    a = ap.parse_args()
    new, old = os.path.abspath(a.candled), os.path.abspath(a.old_candled)
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
        start = subprocess.check_output(["date", "-u", "-d", "@%d" % (START_MS // 1000), "+%Y-%m-%dT%H:%M:%SZ"],
                                        text=True).strip()
        env = dict(os.environ, MOCK_URL=url, CANDLED_LOG__LEVEL="warn", BENCH_START=start,
                   KLINES_SCRIPT=os.path.join(HERE, "klines_plain.lua"))
        res = {(b, p): [] for b in ("old", "new") for p in ("klines", "gecko")}
        for r in range(a.repeat):
            order = [("old", old), ("new", new)] if r % 2 == 0 else [("new", new), ("old", old)]
            for part in ("klines", "gecko"):
                for name, binary in order:
                    out = run(binary, part, env)
                    assert out["layout"] == ("series" if name == "new" else "text"), (name, out)
                    res[(name, part)].append(out)
            if a.ceiling and a.old_ceiling:
                for name, args in (("old", [a.old_ceiling]), ("new", [a.ceiling]), ("view", [a.ceiling, "view"])):
                    with tempfile.TemporaryDirectory() as tmp:
                        out = subprocess.check_output([os.path.abspath(args[0]), os.path.join(tmp, "c.db"), str(rows)]
                                                      + args[1:], text=True).split()
                    res.setdefault((name, "sql"), []).append({"ingest": float(out[2])})

        def med(name, part, key):
            return statistics.median(x[key] for x in res[(name, part)])

        def ratios(part, key):
            return [n[key] / o[key] for n, o in zip(res[("new", part)], res[("old", part)])]

        print("series layout: %d repeats; klines %d rows, gecko %d rows" %
              (a.repeat, res[("new", "klines")][0]["rows"], res[("new", "gecko")][0]["rows"]))
        print("%-44s %12s %12s %8s  per repeat" % ("", "text (old)", "series", "ratio"))
        for part, key, label in [("klines", "bytes", "bytes/candle, Binance klines"),
                                 ("gecko", "bytes", "bytes/candle, GeckoTerminal shape"),
                                 ("klines", "ingest", "candles/s end to end, Binance klines"),
                                 ("klines", "cpu_us", "candled CPU us/candle, Binance klines"),
                                 ("gecko", "ingest", "candles/s db.upsert, GeckoTerminal shape"),
                                 ("gecko", "cpu_us", "CPU us/candle db.upsert, GeckoTerminal"),
                                 ("gecko", "query_ms", "CPU ms: 100k-bar range into Lua rows"),
                                 ("gecko", "sum_ms", "CPU ms: 100k-bar range summed in SQLite")]:
            rs = ratios(part, key)
            print("%-44s %12.2f %12.2f %8.2f  %s" % (label, med("old", part, key), med("new", part, key),
                                                     statistics.median(rs), " ".join("%.2f" % x for x in rs)))
        if ("view", "sql") in res:
            rs = ratios("sql", "ingest")
            print("%-44s %12.0f %12.0f %8.2f  %s" % ("rows/s plain SQLite INSERT into the table", med("old", "sql", "ingest"),
                                                     med("new", "sql", "ingest"), statistics.median(rs),
                                                     " ".join("%.2f" % x for x in rs)))
            vs = [v["ingest"] / o["ingest"] for v, o in zip(res[("view", "sql")], res[("old", "sql")])]
            print("%-44s %12.0f %12.0f %8.2f  %s" % ("rows/s plain INSERT through the candles view", med("old", "sql", "ingest"),
                                                     med("view", "sql", "ingest"), statistics.median(vs),
                                                     " ".join("%.2f" % x for x in vs)))
    finally:
        mock.stdin.close()
        mock.wait(timeout=10)


if __name__ == "__main__":
    main()
