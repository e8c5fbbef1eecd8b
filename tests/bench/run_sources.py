#!/usr/bin/env python3
"""Issue 15: the source kit and failover.

1. Lines of Lua per source (code lines: not blank, not comment-only), before and after the kit.
   Before: scripts/lib/geckoterminal.lua at the commit before the kit (its options, client,
   upserts and candle storage were its own) against today's; and the share of a source file that
   is the kit's work, for every source on the kit. The README's worked example (MEXC klines) is
   the smallest REST OHLCV source.
2. Failover delay, in the real daemon against the mock: canonical BTC/USD 1m from Yahoo BTC-USD
   (primary) and Drift BTC-PERP (secondary), every script every 10 s. Baseline, same run: how long
   after a bar closes the primary's copy reaches canonical_bars. Then every Yahoo call answers 500:
   how long until the switch, and how long after the first missed bar closed the secondary's copy
   is stored. Target: within one cadence (one bar, 60 s).

    python3 tests/bench/run_sources.py --candled build/candled [--repeats 2]
"""
import argparse
import json
import os
import re
import shutil
import sqlite3
import subprocess
import sys
import tempfile
import time
import urllib.request

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
KIT_COMMIT = "16e4899"                       # the last commit before scripts/lib/source.lua


def code_lines(text):
    n = 0
    for line in text.splitlines():
        s = line.strip()
        if s and not s.startswith("--"):
            n += 1
    return n


def readme_example():
    text = open(os.path.join(ROOT, "README.md")).read()
    start = text.index("<!-- example: scripts/mexc/klines.lua")
    a = text.index("```lua\n", start) + 7
    return text[a:text.index("```\n", a)]


def lines():
    old = subprocess.run(["git", "-C", ROOT, "show", KIT_COMMIT + ":scripts/lib/geckoterminal.lua"],
                         capture_output=True, text=True, check=True).stdout
    rows = [("lib/geckoterminal.lua (shared GeckoTerminal code)", code_lines(old),
             code_lines(open(os.path.join(ROOT, "scripts/lib/geckoterminal.lua")).read()))]
    for name in ("coingecko/collect.lua", "yahoo/chart.lua", "drift/collect.lua"):
        rows.append(("%s (new, on the kit)" % name, None,
                     code_lines(open(os.path.join(ROOT, "scripts", name)).read())))
    rows.append(("README example: mexc/klines.lua (REST OHLCV, on the kit)", None, code_lines(readme_example())))
    rows.append(("lib/binance.lua + binance/*.lua (spot, USDT-M, COIN-M, symbols, ratios; on the kit)", None,
                 sum(code_lines(open(os.path.join(ROOT, "scripts", f)).read()) for f in (
                     "lib/binance.lua", "binance/spot.lua", "binance/usdm.lua", "binance/coinm.lua",
                     "binance/symbols.lua", "binance/ratios.lua"))))
    rows.append(("lib/source.lua (the kit, shared)", None, code_lines(open(os.path.join(ROOT, "scripts/lib/source.lua")).read())))
    return rows


class Mock:
    def __init__(self):
        self.proc = subprocess.Popen([sys.executable, os.path.join(ROOT, "tests/mock/mock_http.py"), "--fixtures",
                                      os.path.join(ROOT, "fixtures"), "--exit-on-stdin-eof"],
                                     stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
        self.url = "http://127.0.0.1:%s" % self.proc.stdout.readline().split()[1]

    def call(self, method, path, body=None):
        req = urllib.request.Request(self.url + path, data=json.dumps(body).encode() if body is not None else None,
                                     method=method, headers={"Content-Type": "application/json"})
        with urllib.request.urlopen(req, timeout=10) as r:
            return json.loads(r.read() or b"null")

    def close(self):
        self.proc.stdin.close()
        self.proc.wait(timeout=10)


def failover(candled):
    d = tempfile.mkdtemp(prefix="candled-bench-sources-")
    mock = Mock()
    db = os.path.join(d, "data", "candled.db")
    every = 10
    cfg = """return {
  database = { path = "data/candled.db" }, runtime = { shutdown_grace = 2, min_every = 0.1 },
  paths = { scripts = %(scripts)s },
  scripts = { ["binance.spot"] = { enabled = false } },
  sources = { geckoterminal = { enabled = false },
    yahoo = { base_url = %(url)s, tickers = { "BTC-USD" }, intervals = { "1m" }, history_days = 0.05 },
    drift = { base_url = %(url)s, markets = { "BTC-PERP" }, resolutions = { "1m" }, history_days = 0.05,
              funding = false, trades = false },
    canonical = { instruments = { ["BTC/USD"] = { timeframe = "1m", grace = 60, failures = 2,
      sources = { { source = "yahoo", instrument = "BTC-USD" }, { source = "drift", instrument = "BTC-PERP" } } } } } },
  budgets = { yahoo = { windows = { { per = "1s", limit = 50 } }, retries = 0, breaker = { failures = 2, cooldown = 120 } },
              drift = { windows = { { per = "1s", limit = 50 } } } },
  schedules = { ["yahoo.chart"] = { every = %(every)d }, ["drift.collect"] = { every = %(every)d },
                ["canonical.failover"] = { every = %(every)d }, ["canonical.validate"] = { every = 3600 } },
}
""" % {"scripts": json.dumps(os.path.join(ROOT, "scripts")), "url": json.dumps(mock.url), "every": every}
    with open(os.path.join(d, "config.lua"), "w") as f:
        f.write(cfg)
    p = subprocess.Popen([candled, "run", "--config", os.path.join(d, "config.lua")], cwd=d,
                         stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    seen = {}                                    # (ts, source) -> when first seen in canonical_bars

    def poll():
        try:
            con = sqlite3.connect(db, timeout=5)
            rows = con.execute("SELECT ts, source FROM canonical_bars").fetchall()
            act = con.execute("SELECT active FROM canonical_state").fetchall()
            con.close()
        except sqlite3.OperationalError:
            return None
        now = time.time()
        for r in rows:
            seen.setdefault(tuple(r), now)
        return act[0][0] if act else None

    try:
        # baseline: the primary's own bars, from their close to canonical_bars
        start = time.time()
        while time.time() - start < 150:
            poll()
            fresh = [(ts, t) for (ts, src), t in seen.items() if src == "yahoo" and ts + 60 > start]
            if len(fresh) >= 2:
                break
            time.sleep(0.2)
        base = sorted(t - (ts + 60) for ts, t in fresh)
        # failure
        mock.call("POST", "/_mock/faults", {"path": "/v8/finance/chart/BTC-USD", "status": 500, "times": -1})
        failed = time.time()
        switched = first = None
        while time.time() - failed < 200:
            act = poll()
            if act == "drift" and switched is None:
                switched = time.time()
            got = [(ts, t) for (ts, src), t in seen.items() if src == "drift"]
            if got:
                first = min(got)
                break
            time.sleep(0.2)
    finally:
        p.terminate()
        p.wait(timeout=20)
        mock.close()
        shutil.rmtree(d, ignore_errors=True)
    return {"every": every, "baseline": base, "failed_at": failed, "switch": switched and switched - failed,
            "first_bar": first and first[1] - failed, "first_bar_after_close": first and first[1] - (first[0] + 60),
            "missed_bar_close_after_failure": first and (first[0] + 60) - failed}


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--candled", required=True)
    ap.add_argument("--repeats", type=int, default=2)
    a = ap.parse_args()
    print("## lines of Lua (code lines)")
    for name, before, after in lines():
        print("%-62s %6s %6d" % (name, before if before is not None else "-", after))
    print("## failover (cadence 60 s, scripts every 10 s)")
    for i in range(a.repeats):
        r = failover(os.path.abspath(a.candled))
        print(json.dumps({k: (round(v, 2) if isinstance(v, float) else v) for k, v in r.items()
                          if k != "failed_at"} | {"baseline": [round(x, 2) for x in r["baseline"]]}))


if __name__ == "__main__":
    main()
