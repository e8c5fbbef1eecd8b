#!/usr/bin/env python3
"""Budget benchmark (issue 3).

usage: run_budget.py --candled BUILD/candled [--tasks 8] [--duration 60]

The mock enforces a strict limiter of 600 weight per 10 s (429 + Retry-After beyond it, 418 ban for
ignoring a 429); candled's budget `bench` declares the same window. N tasks send requests as fast
as the budget admits them for DURATION seconds. Reports admitted weight / weight the budget allows
in that time (600 per 10 s), the 429s and 418s the mock sent, and the CPU time per admission (from
a second, network-free run: uncontended and queued admissions).
"""
import argparse
import json
import os
import subprocess
import sys
import tempfile
import urllib.request

HERE = os.path.dirname(os.path.abspath(__file__))
SOURCE = os.path.dirname(os.path.dirname(HERE))
LIMIT, WINDOW = 600, 10.0


def call(url, method="GET", body=None):
    req = urllib.request.Request(url, method=method, data=json.dumps(body).encode() if body else None)
    return json.loads(urllib.request.urlopen(req).read())


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--candled", required=True)
    ap.add_argument("--tasks", type=int, default=8)
    ap.add_argument("--duration", type=float, default=60)
    a = ap.parse_args()
    mock = subprocess.Popen([sys.executable, os.path.join(SOURCE, "tests", "mock", "mock_http.py"),
                             "--fixtures", os.path.join(SOURCE, "fixtures"), "--exit-on-stdin-eof"],
                            stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    port = mock.stdout.readline().split()[1]
    url = "http://127.0.0.1:%s" % port
    try:
        call(url + "/_mock/limiter", "POST", {"limit": LIMIT, "window": WINDOW, "ban": 60, "used_header": None})
        with tempfile.TemporaryDirectory() as tmp:
            cfg = os.path.join(tmp, "config.lua")
            with open(cfg, "w") as f:
                f.write('return { log = { level = "warn" }, database = { path = "b.db" },\n'
                        '  budgets = { bench = { windows = { { per = %g, limit = %d } } } } }\n' % (WINDOW, LIMIT))
            env = dict(os.environ, MOCK_URL=url, TASKS=str(a.tasks), DURATION=str(a.duration))
            out = subprocess.check_output([a.candled, "eval", "--config", cfg, os.path.join(HERE, "budget.lua"),
                                           "share"], env=env, text=True).split()
            sent, ok, other, secs = int(out[0]), int(out[1]), int(out[2]), float(out[3])
            lim = call(url + "/_mock/limiter")
            allowed = LIMIT * (secs / WINDOW)      # what the limit allows in the run's wall time
            cpu = subprocess.check_output([a.candled, "eval", "--config", cfg, os.path.join(HERE, "budget.lua"),
                                           "cpu"], text=True).split()
        span = (lim["last_admit"] or 0) - (lim["first_admit"] or 0)
        print("budget: %d tasks, %g s, mock limit %d per %g s" % (a.tasks, a.duration, LIMIT, WINDOW))
        print("requests sent      : %d (ok %d, other %d) in %.1f s" % (sent, ok, other, secs))
        print("admitted by mock   : %d (weight %d); first..last admission %.1f s" %
              (lim["admitted"], lim["admitted_weight"], span))
        print("admitted / allowed : %.3f  (%d / %d; target >= 0.95)" % (lim["admitted_weight"] / allowed,
                                                                       lim["admitted_weight"], allowed))
        print("429s / 418s        : %d / %d  (target 0)" % (lim["r429"], lim["r418"]))
        print("max in any window  : %d  (limit %d)" % (lim["max_used"], LIMIT))
        print("CPU per admission  : %s us uncontended, %s us queued (%s waits)  (target < 20 us)" %
              (cpu[0], cpu[1], cpu[2]))
    finally:
        mock.stdin.close()
        mock.wait(timeout=10)


if __name__ == "__main__":
    main()
