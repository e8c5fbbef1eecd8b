#!/usr/bin/env python3
"""Hot reload benchmark (issue 5).

usage: run_reload.py --candled BUILD/candled [--edits 40] [--rounds 10] [--scripts 50]

A real daemon (Release build) with a temporary config and scripts directory.
1. Latency: EDITS times, rewrite scripts/target.lua atomically (temp file + rename, as editors
   save) with a new `version`, and time from the rename to the daemon's `script loaded ... version=N`
   log line (read from its stderr by a thread): the debounce (runtime.reload_debounce, 50 ms), the
   scan and the load-validate-swap. Reports p50 / p95 / max.
2. Timer lateness under reloads: SCRIPTS scripts that share a lib module; ROUNDS times, every file is
   rewritten at once and we wait for SCRIPTS `script loaded` lines. Meanwhile the probe script
   (reload_probe.lua) sleeps 5 ms in a loop and stores how late each wake-up was. Reports the
   lateness p50 / p99 / max of wake-ups inside the reload windows, and outside them for reference.
"""
import argparse
import os
import re
import shutil
import signal
import sqlite3
import subprocess
import tempfile
import threading
import time

HERE = os.path.dirname(os.path.abspath(__file__))
LOADED = re.compile(r'msg="script loaded".*\bname=(\S+).*\bversion=(\d+)')

SCRIPT = """local lib = require "lib.shared"
return { name = "%s", every = "1h", version = %d,
  run = function(ctx) return lib.twice(%d) end }
"""


def pct(xs, p):
    xs = sorted(xs)
    return xs[min(len(xs) - 1, int(round(p / 100.0 * (len(xs) - 1))))] if xs else float("nan")


class Daemon:
    def __init__(self, candled, cfg, cwd):
        self.p = subprocess.Popen([candled, "run", "--config", cfg], cwd=cwd, stdout=subprocess.DEVNULL,
                                  stderr=subprocess.PIPE, text=True)
        self.cond = threading.Condition()
        self.loaded = []            # (arrival time, name, version)
        threading.Thread(target=self.read, daemon=True).start()

    def read(self):
        for line in self.p.stderr:
            if 'msg="daemon started"' in line:
                with self.cond:
                    self.loaded.append((time.time(), "(daemon)", 0))
                    self.cond.notify_all()
            m = LOADED.search(line)
            if m:
                with self.cond:
                    self.loaded.append((time.time(), m.group(1), int(m.group(2))))
                    self.cond.notify_all()

    def wait(self, pred, timeout=10):
        with self.cond:
            if not self.cond.wait_for(lambda: pred(self.loaded), timeout):
                raise SystemExit("timed out waiting for the daemon")

    def stop(self):
        self.p.send_signal(signal.SIGTERM)
        self.p.wait(timeout=20)


def write(path, text):
    with open(path + ".tmp", "w") as f:
        f.write(text)
    os.replace(path + ".tmp", path)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--candled", required=True)
    ap.add_argument("--edits", type=int, default=40)
    ap.add_argument("--rounds", type=int, default=10)
    ap.add_argument("--scripts", type=int, default=50)
    a = ap.parse_args()
    tmp = tempfile.mkdtemp(prefix="candled-bench-reload-")
    try:
        sdir = os.path.join(tmp, "scripts")
        os.makedirs(os.path.join(sdir, "lib"))
        with open(os.path.join(tmp, "config.lua"), "w") as f:
            f.write('return { database = { path = "b.db" }, runtime = { shutdown_grace = 0.5 } }\n')
        shutil.copy(os.path.join(HERE, "reload_probe.lua"), os.path.join(sdir, "probe.lua"))
        write(os.path.join(sdir, "lib", "shared.lua"), "return { twice = function(x) return x * 2 end }\n")
        write(os.path.join(sdir, "target.lua"), SCRIPT % ("target", 1, 1))
        names = ["s%02d" % i for i in range(a.scripts)]
        for n in names:
            write(os.path.join(sdir, n + ".lua"), SCRIPT % (n, 1, 1))
        d = Daemon(os.path.abspath(a.candled), os.path.join(tmp, "config.lua"), tmp)
        d.wait(lambda l: len(l) >= 1)
        time.sleep(1)

        lat = []
        for i in range(2, a.edits + 2):
            t0 = time.time()
            write(os.path.join(sdir, "target.lua"), SCRIPT % ("target", i, i))
            d.wait(lambda l: any(n == "target" and v == i for _, n, v in l))
            arrived = next(t for t, n, v in d.loaded if n == "target" and v == i)
            lat.append((arrived - t0) * 1000)
            time.sleep(0.2)

        windows, spans = [], []
        for r in range(2, a.rounds + 2):
            time.sleep(0.5)
            t0 = time.time()
            for n in names:
                write(os.path.join(sdir, n + ".lua"), SCRIPT % (n, r, r))
            d.wait(lambda l: sum(1 for _, n, v in l if v == r and n in names) >= a.scripts, timeout=30)
            t1 = max(t for t, n, v in d.loaded if v == r and n in names)
            windows.append((t0, t1))
            spans.append((t1 - t0) * 1000)
        time.sleep(1.5)                       # the probe stores in batches of 100 rows
        d.stop()
        con = sqlite3.connect(os.path.join(tmp, "b.db"))
        rows = con.execute("SELECT at, late FROM lateness").fetchall()
        con.close()
        inside = [late * 1000 for at, late in rows if any(s <= at <= e + 0.01 for s, e in windows)]
        outside = [late * 1000 for at, late in rows if not any(s - 0.5 <= at <= e + 0.5 for s, e in windows)]
        print("reload latency, file write -> new code live (%d edits): p50 %.1f ms, p95 %.1f ms, max %.1f ms"
              % (len(lat), pct(lat, 50), pct(lat, 95), max(lat)))
        print("%d scripts rewritten at once (%d rounds): write -> all live p50 %.0f ms, max %.0f ms"
              % (a.scripts, a.rounds, pct(spans, 50), max(spans)))
        print("timer lateness during the reloads (%d wake-ups of a 5 ms sleep): p50 %.2f ms, p99 %.2f ms, max %.2f ms"
              % (len(inside), pct(inside, 50), pct(inside, 99), max(inside) if inside else float("nan")))
        print("timer lateness outside reloads (%d wake-ups): p50 %.2f ms, p99 %.2f ms, max %.2f ms"
              % (len(outside), pct(outside, 50), pct(outside, 99), max(outside) if outside else float("nan")))
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
