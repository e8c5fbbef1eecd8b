#!/usr/bin/env python3
"""Operations benchmark (issue 14).

1. Backup of a large database (--mb, default 1024) while a collector writes: the backup's time and
   how late a task's 1 ms sleep wakes up meanwhile (the loop's longest stall), against the same
   load without a backup for as long (the baseline of the machine at that moment). Also what
   gzip would save on the backup file, and what it costs.
2. /metrics scrape time with 1,000 series against 10 series (median of 20 scrapes).
3. Status page load in headless Chromium (--dump-dom after the first poll) against about:blank.

usage: run_backup.py --candled BUILD/candled [--mb 1024]
"""
import argparse
import os
import random
import re
import shutil
import sqlite3
import subprocess
import tempfile
import time
import urllib.request
import zlib

HERE = os.path.dirname(os.path.abspath(__file__))


def fill(db, mb):
    """Bars in 200 series until the file holds about mb MiB."""
    con = sqlite3.connect(db)
    con.execute("PRAGMA journal_mode = WAL")
    con.execute("PRAGMA synchronous = OFF")
    with con:
        con.executemany("INSERT INTO series (id, source, instrument, timeframe) VALUES (?, 'bench', ?, '1m')",
                        [(i, "S%03d" % i) for i in range(1, 201)])
    rnd, ts = random.Random(7), 1600000000
    while os.path.getsize(db) + os.path.getsize(db + "-wal") < mb * 1048576:
        with con:
            rows = []
            for s in range(1, 201):
                for k in range(500):
                    p = 100 + rnd.random()
                    rows.append((s, ts + k * 60, p, p + 1, p - 1, p + 0.5, rnd.random() * 1e4, rnd.random() * 1e6,
                                 rnd.randrange(1000)))
            con.executemany("INSERT INTO bars VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)", rows)
        ts += 500 * 60
        con.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    con.close()


def eval_line(candled, cfg, *args):
    r = subprocess.run([candled, "eval", "--config", cfg, os.path.join(HERE, "backup.lua")] + list(args),
                       capture_output=True, text=True, check=True)
    return r.stdout.split()


def start_daemon(candled, cfg, cwd):
    p = subprocess.Popen([candled, "run", "--config", cfg], cwd=cwd, stderr=subprocess.PIPE, text=True)
    while True:
        m = re.search(r"listening on (http://[0-9.]+:\d+)/", p.stderr.readline())
        if m:
            return p, m.group(1)


def median_get(url, n=20):
    times = []
    for _ in range(n):
        t = time.perf_counter()
        with urllib.request.urlopen(url, timeout=60) as r:
            body = r.read()
        times.append(time.perf_counter() - t)
    return sorted(times)[n // 2], len(body)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--candled", required=True)
    ap.add_argument("--mb", type=int, default=1024)
    a = ap.parse_args()
    a.candled = os.path.abspath(a.candled)
    tmp = tempfile.mkdtemp(prefix="candled-bench-backup-")
    try:
        cfg = os.path.join(tmp, "config.lua")
        with open(cfg, "w") as f:
            f.write('return { log = { level = "warn" }, database = { path = "b.db" }, repl = { enabled = false },\n'
                    '  backup = { dir = "bk" }, http_server = { listen = "127.0.0.1:0" } }\n')
        db = os.path.join(tmp, "b.db")
        subprocess.run([a.candled, "eval", "--config", cfg, "-"], input="", text=True, check=True)
        t = time.perf_counter()
        fill(db, a.mb)
        print("database: %.0f MiB (filled in %.0f s)" % (os.path.getsize(db) / 1048576, time.perf_counter() - t))
        dest = os.path.join(tmp, "bk", "copy.db")
        b = eval_line(a.candled, cfg, "backup", dest)
        base = eval_line(a.candled, cfg, "baseline", b[1])
        print("%-9s %8s %8s %8s %8s %8s %10s" % ("", "seconds", "wakeups", "p50 ms", "p99 ms", "max ms", "rows"))
        for r in (b, base):
            print("%-9s %8s %8s %8s %8s %8s %10s" % tuple(r[:7]))
        print("backup: %.0f MiB in %s s = %.0f MiB/s (copy, integrity_check, row counts, fsync); longest loop stall"
              " %s ms vs %s ms without a backup (ratio %.2f)" % (int(b[7]) / 1048576, b[1],
                                                                 int(b[7]) / 1048576 / float(b[1]), b[5], base[5],
                                                                 float(b[5]) / max(float(base[5]), 0.01)))
        t = time.perf_counter()
        comp, raw = zlib.compressobj(6), 0
        out = 0
        with open(dest, "rb") as f:
            while True:
                chunk = f.read(1 << 20)
                if not chunk:
                    break
                raw += len(chunk)
                out += len(comp.compress(chunk))
        out += len(comp.flush())
        print("gzip -6 of the backup: %.2f of its size, %.1f s (%.2fx the backup's own time)" %
              (out / raw, time.perf_counter() - t, (time.perf_counter() - t) / float(b[1])))
        shutil.rmtree(tmp)
        os.makedirs(tmp)
        # /metrics with 1,000 series against 10
        results = {}
        for n in (10, 1000):
            d = os.path.join(tmp, "m%d" % n)
            os.makedirs(d)
            c = os.path.join(d, "config.lua")
            with open(c, "w") as f:
                f.write('return { log = { level = "info" }, database = { path = "m.db" }, repl = { enabled = false },'
                        ' backup = { enabled = false }, http_server = { listen = "127.0.0.1:0" } }\n')
            subprocess.run([a.candled, "eval", "--config", c, "-"], input="", text=True, check=True)
            con = sqlite3.connect(os.path.join(d, "m.db"))
            with con:
                con.executemany("INSERT INTO series (id, source, instrument, timeframe) VALUES (?, 'bench', ?, '1m')",
                                [(i, "S%04d" % i) for i in range(1, n + 1)])
                con.executemany("INSERT INTO bars VALUES (?, ?, 1, 2, 0.5, 1.5, 10, 100, 5)",
                                [(s, 1700000000 + k * 60) for s in range(1, n + 1) for k in range(100)])
            con.close()
            p, url = start_daemon(a.candled, c, d)
            results[n] = median_get(url + "/metrics")
            if n == 1000:
                page = url + "/#bench%7CS0001%7C1m"
                chrome = ["chromium", "--headless", "--no-sandbox", "--disable-gpu",
                          "--user-data-dir=" + os.path.join(d, "chr")]
                subprocess.run(chrome + ["--dump-dom", "about:blank"], capture_output=True)   # warm the profile
                loads = {}
                for what, target in (("blank", "about:blank"), ("page", page)):
                    ts = []
                    for _ in range(5):
                        t = time.perf_counter()
                        r = subprocess.run(chrome + ["--virtual-time-budget=2000", "--dump-dom", target],
                                           capture_output=True, text=True)
                        ts.append(time.perf_counter() - t)
                        if what == "page":
                            assert 'data-drawn="100"' in r.stdout, "the chart was not drawn"
                    loads[what] = sorted(ts)[2]
            p.terminate()
            p.wait()
        (t10, b10), (t1k, b1k) = results[10], results[1000]
        print("/metrics: 10 series %.1f ms (%d bytes), 1,000 series %.1f ms (%d bytes): ratio %.1f" %
              (t10 * 1000, b10, t1k * 1000, b1k, t1k / t10))
        print("status page (1,000 series, chart drawn) in headless Chromium: %.2f s vs about:blank %.2f s"
              " (+%.2f s for the page)" % (loads["page"], loads["blank"], loads["page"] - loads["blank"]))
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
