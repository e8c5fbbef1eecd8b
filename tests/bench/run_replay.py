#!/usr/bin/env python3
"""Replay benchmark (issue 16): `candled replay` of strategies/sma_cross.lua over N stored 1m bars
(default 10 million) against plain C over SQLite on the same rows, in the same run.

usage: run_replay.py --candled BUILD/candled --baseline BUILD/tests/bench/replay_baseline
                     [--bars 10000000] [--repeat 3] [--keep DIR]   (--keep: keep the folder, and reuse its
                     database on the next run with the same --bars)

One database: the series is catalogued through `candled eval` (db.upsert of one bar), then
replay_baseline fills `bars` with a seeded random walk. Each repeat runs, in turn:
  scan   replay_baseline scan: every row's six columns stepped in C (the ceiling of reading)
  csma   replay_baseline sma: the same scan plus the SMA(10)/SMA(30) cross in C, with the arithmetic
         of scripts/lib/indicators.lua: its signal count must equal the replay's
  noop   candled replay of a strategy whose on_bar does nothing (stepping + simulation + report)
  sma    candled replay --strategy sma_cross (the module shipped in strategies/), fees and slippage
CPU time (user + system, from wait4) of the whole process (the replay's includes start-up and
writing the report): each process is single-threaded, so bars / CPU second is bars/s on one core,
whatever else the machine runs; wall time is shown beside it. Peak RSS from wait4. Prints the
medians and the ratios.
"""
import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
SOURCE = os.path.normpath(os.path.join(HERE, "..", ".."))
T0 = 1262304000                      # 2010-01-01: 10M minutes end in 2029


def timed(cmd, cwd):
    t = time.perf_counter()
    p = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=cwd)
    out = p.stdout.read()
    err = p.stderr.read()
    _, status, ru = os.wait4(p.pid, 0)
    wall = time.perf_counter() - t
    if os.waitstatus_to_exitcode(status) != 0:
        sys.exit("failed: %s\n%s%s" % (" ".join(cmd), out, err))
    return (wall, ru.ru_utime + ru.ru_stime), ru.ru_maxrss / 1024, out


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--candled", required=True)
    ap.add_argument("--baseline", required=True)
    ap.add_argument("--bars", type=int, default=10_000_000)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--keep")
    a = ap.parse_args()
    candled, baseline = os.path.abspath(a.candled), os.path.abspath(a.baseline)
    tmp = a.keep or tempfile.mkdtemp(prefix="candled-replay-bench-")
    os.makedirs(tmp, exist_ok=True)
    try:
        strat = os.path.join(tmp, "strategies")
        os.makedirs(strat, exist_ok=True)
        shutil.copy(os.path.join(SOURCE, "strategies", "sma_cross.lua"), strat)
        with open(os.path.join(strat, "noop.lua"), "w") as f:
            f.write('return { consumes = { source = "bench", instruments = { "BENCHUSDT" }, timeframes = { "1m" } },\n'
                    '  on_bar = function(ctx, bar) end }\n')
        db = os.path.join(tmp, "bench.db")
        with open(os.path.join(tmp, "config.lua"), "w") as f:
            f.write('return { database = { path = %s }, log = { level = "warn" },\n'
                    '  paths = { strategies = "strategies", scripts = %s },\n'
                    '  strategies = { sma_cross = { enabled = false, source = "bench", instruments = { "BENCHUSDT" },\n'
                    '                               timeframes = { "1m" }, warmup = 0 } } }\n'
                    % (json.dumps(db), json.dumps(os.path.join(SOURCE, "scripts"))))
        cfg = os.path.join(tmp, "config.lua")
        last = T0 + 60 * (a.bars - 1)
        if not os.path.exists(db):
            with open(os.path.join(tmp, "series.lua"), "w") as f:
                f.write('local db = require "rt.db"\n'
                        'db.upsert("candles", {{source="bench", instrument="BENCHUSDT", timeframe="1m", ts=%d, open=1,'
                        ' high=1, low=1, close=1, volume=1}}, {keys={"source","instrument","timeframe","ts"}})\n'
                        'db.exec("DELETE FROM bars")\n'
                        'print(db.first("SELECT id FROM series WHERE source = \'bench\'").id)\n' % T0)
            sid = subprocess.check_output([candled, "eval", "--config", cfg, "series.lua"], cwd=tmp, text=True).strip()
            t = time.perf_counter()
            subprocess.check_call([baseline, "fill", db, sid, str(a.bars), str(T0)])
            print("filled %d bars in %.1f s (%.0f MB)" % (a.bars, time.perf_counter() - t, os.path.getsize(db) / 1e6))
        sid = subprocess.check_output([candled, "eval", "--config", cfg, "-"], cwd=tmp, text=True,
                                      input='print(require("rt.db").first("SELECT id FROM series").id)').strip()
        frm = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(T0))
        to = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(last))
        res = {k: [] for k in ("scan", "csma", "noop", "sma")}
        walls = {k: [] for k in res}
        rss = {k: 0 for k in res}
        signals = {}
        for r in range(a.repeat):
            w, m, out = timed([baseline, "scan", db, sid], tmp)
            assert int(out.split()[0]) == a.bars, out
            res["scan"].append(w[1]), walls["scan"].append(w[0]), rss.update(scan=max(rss["scan"], m))
            w, m, out = timed([baseline, "sma", db, sid, "10", "30"], tmp)
            signals["csma"] = int(out.split()[1])
            res["csma"].append(w[1]), walls["csma"].append(w[0]), rss.update(csma=max(rss["csma"], m))
            for name in ("noop", "sma_cross"):
                key = "noop" if name == "noop" else "sma"
                w, m, out = timed([candled, "replay", "--config", cfg, "--strategy", name, "--from", frm, "--to", to,
                                   "--fees", "10", "--slippage", "5", "--out", os.path.join(tmp, "out-" + key)], tmp)
                with open(os.path.join(tmp, "out-" + key, "report.json")) as f:
                    rep = json.load(f)
                assert rep["bars"] == a.bars, rep
                signals[key] = rep["signals"]
                res[key].append(w[1])
                walls[key].append(w[0])
                rss[key] = max(rss[key], m)
            print("repeat %d (CPU s / wall s): " % (r + 1) + "  ".join("%s %.2f/%.2f" % (k, v[-1], walls[k][-1])
                                                                   for k, v in res.items()), flush=True)
        med = {k: statistics.median(v) for k, v in res.items()}
        wmed = {k: statistics.median(v) for k, v in walls.items()}
        print()
        print("%d stored 1m bars, one series, median of %d" % (a.bars, a.repeat))
        labels = {"scan": "C scan of the rows (baseline)", "csma": "C scan + SMA cross (baseline)",
                  "noop": "candled replay, no-op strategy", "sma": "candled replay --strategy sma_cross"}
        for k in ("scan", "csma", "noop", "sma"):
            print("  %-38s %7.2f CPU s (%6.2f wall)  %12s bars/s  peak RSS %6.1f MB"
                  % (labels[k], med[k], wmed[k], "{:,.0f}".format(a.bars / med[k]), rss[k]))
        print("  signals: C %d, replay %d (%s)" % (signals["csma"], signals["sma"],
                                                  "equal" if signals["csma"] == signals["sma"] else "DIFFERENT"))
        print("  replay sma_cross / C scan: %.2fx the CPU time; / C scan + SMA: %.2fx" % (med["sma"] / med["scan"],
                                                                                   med["sma"] / med["csma"]))
        print("  target >= 1,000,000 bars/s: %s" % ("met" if a.bars / med["sma"] >= 1e6 else "NOT met"))
        if signals["csma"] != signals["sma"]:
            sys.exit(1)
    finally:
        if not a.keep:
            shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
