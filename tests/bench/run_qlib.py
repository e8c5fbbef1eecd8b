#!/usr/bin/env python3
"""QLib export benchmark (issue 12): `candled export qlib` vs. a plain C program writing the same bytes.

usage: run_qlib.py --candled BUILD/candled --baseline BUILD/tests/bench/qlib_baseline
                   [--instruments 100] [--rows 100000] [--repeat 3]

A database of N instruments x ROWS 1-minute candles (tests/bench/qlib_fill.lua: staggered starts,
one minute in 5,000 missing) is exported at 1min (as stored), 5min and day (aggregated over
complete buckets). Each repeat runs, per frequency, the baseline (tests/bench/qlib_baseline.c:
sqlite3 + fwrite, no Lua, no staging folder, no fsync) and a full `candled export qlib` into a fresh
folder, alternately, and checks that both wrote the same bytes. Then an incremental export after
one more hour of rows (most files unchanged). Reports medians and the ratio candled / baseline
(target: within 2x).
"""
import argparse
import os
import shutil
import statistics
import subprocess
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
SOURCE = os.path.normpath(os.path.join(HERE, "..", ".."))


def tree(root):
    out = {}
    for d, _, names in os.walk(root):
        for n in names:
            rel = os.path.relpath(os.path.join(d, n), root)
            if rel not in ("candled.json", "instruments/map.csv"):
                with open(os.path.join(d, n), "rb") as f:
                    out[rel] = f.read()
    return out


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--candled", required=True)
    ap.add_argument("--baseline", required=True)
    ap.add_argument("--instruments", type=int, default=100)
    ap.add_argument("--rows", type=int, default=100000)
    ap.add_argument("--repeat", type=int, default=3)
    a = ap.parse_args()
    cand, base = os.path.abspath(a.candled), os.path.abspath(a.baseline)
    with tempfile.TemporaryDirectory() as tmp:
        db = os.path.join(tmp, "bench.db")
        cfg = os.path.join(tmp, "config.lua")
        with open(cfg, "w") as f:
            f.write('return { database = { path = "%s" }, log = { level = "warn" }, paths = { scripts = "%s" },'
                    ' runtime = { task_slice = 0 } }\n' % (db, os.path.join(SOURCE, "scripts")))
        t = time.time()
        subprocess.run([cand, "eval", "--config", cfg, os.path.join(HERE, "qlib_fill.lua"), str(a.instruments),
                        str(a.rows)], check=True)
        print("filled %d x %d 1m candles in %.1f s (%.0f MB)" % (a.instruments, a.rows, time.time() - t,
                                                                   os.path.getsize(db) / 1e6))
        subprocess.run(["sqlite3", db, "PRAGMA wal_checkpoint(TRUNCATE);"], capture_output=True)
        results = {}
        for freq in ("1min", "5min", "day"):
            ours, theirs = [], []
            for r in range(a.repeat):
                bout, cout = os.path.join(tmp, "b_" + freq), os.path.join(tmp, "c_" + freq)
                shutil.rmtree(bout, ignore_errors=True)
                shutil.rmtree(cout, ignore_errors=True)
                t = time.monotonic()
                subprocess.run([base, db, "binance_spot", freq, bout], check=True, stdout=subprocess.PIPE)
                theirs.append(time.monotonic() - t)
                t = time.monotonic()
                p = subprocess.run([cand, "export", "--config", cfg, "qlib", "--out", cout, "--freq", freq],
                                   check=True, stdout=subprocess.PIPE, text=True)
                ours.append(time.monotonic() - t)
                if r == 0:
                    print(p.stdout.strip())
                    assert tree(bout) == tree(cout), "%s: the baseline and candled wrote different bytes" % freq
            ratios = [x / y for x, y in zip(ours, theirs)]
            results[freq] = (statistics.median(ours), statistics.median(theirs), statistics.median(ratios), ratios)
            print("%-5s candled %6.2f s   baseline %6.2f s   ratio %.2f (per repeat: %s)" % (
                freq, results[freq][0], results[freq][1], results[freq][2], " ".join("%.2f" % x for x in ratios)))
        # incremental: one more hour of rows, then the 1min export again (most bins grow, none unchanged)
        subprocess.run([cand, "eval", "--config", cfg, os.path.join(HERE, "qlib_fill.lua"), str(a.instruments),
                        str(a.rows + 60), str(a.rows)], check=True)
        cout = os.path.join(tmp, "c_1min")
        t = time.monotonic()
        p = subprocess.run([cand, "export", "--config", cfg, "qlib", "--out", cout, "--freq", "1min"],
                           check=True, stdout=subprocess.PIPE, text=True)
        inc = time.monotonic() - t
        print("incremental 1min after +60 rows each: %.2f s  (%s)" % (inc, p.stdout.splitlines()[0]))
        t = time.monotonic()
        p = subprocess.run([cand, "export", "--config", cfg, "qlib", "--out", os.path.join(tmp, "c_day"), "--freq",
                            "day"], check=True, stdout=subprocess.PIPE, text=True)
        print("incremental day (no new complete day): %.2f s  (%s)" % (time.monotonic() - t, p.stdout.splitlines()[0]))


if __name__ == "__main__":
    main()
