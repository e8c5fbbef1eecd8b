#!/usr/bin/env python3
"""Budget benchmark (issues 3 and 10).

usage: run_budget.py --candled BUILD/candled [--tasks 4] [--duration 40] [--requests 600]

1. Utilization, shared between processes: the mock enforces a strict sliding limiter of 600 weight
   per 10 s (429 + Retry-After beyond it, 418 for a request sent after a 429 was delivered);
   candled's budget `bench` declares the same window. Two `candled eval` processes on one database
   (so they share the budget through its file) each run TASKS tasks sending as fast as the budget
   admits for DURATION seconds. Reports admitted weight / the weight the limit allows in that time.
2. A server at 60% of the declared limit: the budget declares 100 per 2 s, the mock's fixed-window
   limiter admits 60 per 2 s. One process sends REQUESTS requests with TASKS tasks, once with
   Retry-After on the 429s and once without (GeckoTerminal style). Reports wall time (first to last
   admitted request) / the minimum the server's real limit allows (floor((REQUESTS - 1) / 60)
   windows of 2 s: the first and the last request fall that many windows apart),
   429s, 418s and self-bans.
3. CPU per admission (network-free, `os.clock()`), with the shared file's lock taken per admission:
   uncontended, and over admissions that all waited; an SQLite write transaction per admission row
   for comparison.
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
DECLARED, REAL, WINDOW60 = 100, 60, 2.0


def call(url, method="GET", body=None):
    req = urllib.request.Request(url, method=method, data=json.dumps(body).encode() if body else None)
    return json.loads(urllib.request.urlopen(req).read())


def config(tmp, name, per, limit):
    cfg = os.path.join(tmp, name + ".lua")
    with open(cfg, "w") as f:
        f.write('return { log = { level = "error" }, database = { path = "%s.db" },\n'
                '  budgets = { bench = { windows = { { per = %g, limit = %d } } } } }\n' % (name, per, limit))
    return cfg


def eval_procs(candled, cfg, n, env):
    procs = [subprocess.Popen([candled, "eval", "--config", cfg, os.path.join(HERE, "budget.lua"), "share"],
                              env=env, stdout=subprocess.PIPE, text=True) for _ in range(n)]
    outs = []
    for p in procs:
        out, _ = p.communicate(timeout=600)
        outs.append(out.split())
    return outs


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--candled", required=True)
    ap.add_argument("--tasks", type=int, default=4)
    ap.add_argument("--duration", type=float, default=40)
    ap.add_argument("--requests", type=int, default=600)
    a = ap.parse_args()
    mock = subprocess.Popen([sys.executable, os.path.join(SOURCE, "tests", "mock", "mock_http.py"),
                             "--fixtures", os.path.join(SOURCE, "fixtures"), "--exit-on-stdin-eof"],
                            stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    port = mock.stdout.readline().split()[1]
    url = "http://127.0.0.1:%s" % port
    try:
        with tempfile.TemporaryDirectory() as tmp:
            # 1. utilization, two processes sharing the budget
            call(url + "/_mock/reset", "POST")
            call(url + "/_mock/limiter", "POST", {"limit": LIMIT, "window": WINDOW, "ban": 60, "used_header": None})
            env = dict(os.environ, MOCK_URL=url, TASKS=str(a.tasks), DURATION=str(a.duration))
            outs = eval_procs(a.candled, config(tmp, "share", WINDOW, LIMIT), 2, env)
            lim = call(url + "/_mock/limiter")
            secs = max(float(o[3]) for o in outs)
            allowed = LIMIT * (secs / WINDOW)
            print("1. two processes x %d tasks, %g s, mock limit %d per %g s (sliding), budget the same"
                  % (a.tasks, a.duration, LIMIT, WINDOW))
            print("   sent (ok/other) per process: %s" % ", ".join("%s (%s/%s)" % (o[0], o[1], o[2]) for o in outs))
            print("   admitted / allowed : %.3f  (%d / %d in %.1f s; target >= 0.95)"
                  % (lim["admitted_weight"] / allowed, lim["admitted_weight"], allowed, secs))
            print("   429s / 418s        : %d / %d" % (lim["r429"], lim["r418"]))
            print("   max in any window  : %d  (limit %d)" % (lim["max_used"], LIMIT))
            # 2. a server at 60% of the declared limit, with and without Retry-After
            minimum = (a.requests - 1) // REAL * WINDOW60   # first to last admission at the real limit
            for ra in ("computed", "none"):
                call(url + "/_mock/reset", "POST")
                call(url + "/_mock/limiter", "POST", {"limit": REAL, "window": WINDOW60, "kind": "fixed", "ban": 60,
                                                      "used_header": None, "retry_after": ra})
                env = dict(os.environ, MOCK_URL=url, TASKS=str(a.tasks), COUNT=str(a.requests))
                o = eval_procs(a.candled, config(tmp, "real60" + ra, WINDOW60, DECLARED), 1, env)[0]
                lim = call(url + "/_mock/limiter")
                span = (lim["last_admit"] or 0) - (lim["first_admit"] or 0)
                print("2. declared %d per %g s, server %d (fixed windows), Retry-After %s, %d requests, %d tasks"
                      % (DECLARED, WINDOW60, REAL, "yes" if ra == "computed" else "no", a.requests, a.tasks))
                print("   completed          : %s of %s (other %s), self-bans %s, learned limit at the end %s"
                      % (o[1], o[0], o[2], o[4], o[5]))
                print("   wall / minimum     : %.3f  (%.1f s / %.1f s; target <= 1.2)" % (span / minimum, span, minimum))
                print("   429s / 418s        : %d / %d  (418 target 0; %d 429s were in flight)"
                      % (lim["r429"], lim["r418"], lim["inflight_429"]))
            # 3. CPU
            cpu = subprocess.check_output([a.candled, "eval", "--config", config(tmp, "cpu", WINDOW, LIMIT),
                                           os.path.join(HERE, "budget.lua"), "cpu"], text=True).split()
            print("3. CPU per admission, shared-file lock included (target < 20 us)")
            print("   uncontended        : %s us" % cpu[0])
            print("   waited             : %s us (%s of %s admissions waited; each in its own task, whose spawn"
                  " and end alone cost %s us)" % (cpu[1], cpu[2], cpu[3], cpu[5]))
            print("   for comparison, an SQLite admission-log row in its own transaction: %s us" % cpu[4])
    finally:
        mock.stdin.close()
        mock.wait(timeout=10)


if __name__ == "__main__":
    main()
