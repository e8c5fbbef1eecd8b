#!/usr/bin/env python3
"""WebSocket klines benchmark (issue 13): 1,024 streams on one connection.

usage: run_ws.py --candled BUILD/candled [--streams 1024] [--seconds 20] [--repeats 2] [--warmup 4]

The daemon (`candled run`, the real scripts/binance/stream.lua and rt.ws) streams STREAMS spot
symbols (BENCH0001USDT..., all on one connection: ws_streams_per_connection = 1024) from the
combined-stream mock (tests/mock/binance_ws.py, real-time clock) whose update speed is Binance's
spot 2 s per stream ("real") or 0.2 s ("10x": ten times the real rate). The baseline is the same
daemon with the same config and the streams off (ws_enabled = false), measured in the same run,
alternating per repeat.

For each phase: the daemon starts, runs WARMUP seconds (symbols listed, the connection open,
messages flowing), then its CPU time (utime + stime of the process, /proc) and the mock's count of
messages sent are read, SECONDS later again. Reports messages/s, CPU as % of one core, the cost
above the idle baseline, CPU per message, and the cost at real rates both measured and derived from
the 10x run ((10x - idle) / 10). Target: 1,024 symbols at real rates < 5% of one core.
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
import urllib.request

HERE = os.path.dirname(os.path.abspath(__file__))
SOURCE = os.path.dirname(os.path.dirname(HERE))
TICKS = os.sysconf("SC_CLK_TCK")


def call(url, method="GET", body=None):
    req = urllib.request.Request(url, method=method, data=json.dumps(body).encode() if body is not None else None)
    with urllib.request.urlopen(req, timeout=30) as r:
        return json.loads(r.read())


def start(args):
    p = subprocess.Popen([sys.executable] + args + ["--exit-on-stdin-eof"], stdin=subprocess.PIPE,
                         stdout=subprocess.PIPE, text=True)
    line = p.stdout.readline().split()
    assert line and line[0] == "PORT", "mock did not start: %r" % line
    return p, int(line[1])


def stop(p):
    p.stdin.close()
    try:
        p.wait(timeout=10)
    except subprocess.TimeoutExpired:
        p.kill()
        p.wait()


def cpu_seconds(pid):
    with open("/proc/%d/stat" % pid) as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICKS     # utime, stime (fields 14 and 15)


def lua(v):
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, (int, float)):
        return repr(v)
    if isinstance(v, str):
        return json.dumps(v)
    if isinstance(v, list):
        return "{" + ", ".join(lua(x) for x in v) + "}"
    return "{" + ", ".join("[%s] = %s" % (json.dumps(k), lua(x)) for k, x in v.items()) + "}"


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--candled", required=True)
    ap.add_argument("--streams", type=int, default=1024)
    ap.add_argument("--seconds", type=float, default=20)
    ap.add_argument("--repeats", type=int, default=2)
    ap.add_argument("--warmup", type=float, default=4)
    a = ap.parse_args()
    candled = os.path.abspath(a.candled)
    fixtures = os.path.join(SOURCE, "fixtures")
    rest, rest_port = start([os.path.join(SOURCE, "tests", "mock", "mock_http.py"), "--fixtures", fixtures])
    wsm, ws_port = start([os.path.join(SOURCE, "tests", "mock", "binance_ws.py"), "--fixtures", fixtures,
                          "--scale", "1", "--start-ms", str(int(time.time() * 1000))])
    tmp = tempfile.mkdtemp(prefix="candled-bench-ws-")
    rest_url, ws_url = "http://127.0.0.1:%d" % rest_port, "http://127.0.0.1:%d" % ws_port
    call(rest_url + "/_mock/binance", "POST", {"live": True, "bench": {"spot": a.streams}})
    symbols = ["BENCH%03dUSDT" % i for i in range(1, a.streams + 1)]
    off = {"enabled": False}

    def config(enabled, cadence):
        cfg = {"database": {"path": os.path.join(tmp, "bench.db")}, "log": {"level": os.environ.get("BENCH_LOG", "warn")},
               "paths": {"scripts": os.path.join(SOURCE, "scripts")},
               "repl": {"enabled": False}, "backup": {"enabled": False}, "http_server": {"listen": False},
               "sources": {"geckoterminal": off, "coingecko": off, "yahoo": off, "drift": off,
                           "binance_usdm": off, "binance_coinm": off,
                           "binance_spot": {"base_url": rest_url, "symbols": symbols, "intervals": ["1d"],
                                            "ws_enabled": enabled, "ws_url": "ws://127.0.0.1:%d/spot" % ws_port,
                                            "ws_cadence": cadence, "ws_streams_per_connection": 1024}},
               "scripts": {n: off for n in ("binance.spot", "binance.usdm", "binance.coinm", "binance.symbols",
                                            "binance.ratios")}}
        path = os.path.join(tmp, "config.lua")
        with open(path, "w") as f:
            f.write("return " + lua(cfg) + "\n")
        return path

    def phase(name, enabled, tick):
        call(ws_url + "/_mock/reset", "POST", {})
        call(ws_url + "/_mock/ws", "POST", {"tick": tick})
        p = subprocess.Popen([candled, "run", "--config", config(enabled, max(tick, 0.25) * 2.5)],
                             stdout=subprocess.DEVNULL, stderr=None if os.environ.get("BENCH_LOG") else subprocess.DEVNULL, text=True, cwd=tmp)
        try:
            time.sleep(a.warmup)
            if p.poll() is not None:
                raise SystemExit("the daemon ended (exit %s)" % p.returncode)
            sent0 = sum(c["sent"] for c in call(ws_url + "/_mock/ws")["connections"])
            c0, t0 = cpu_seconds(p.pid), time.monotonic()
            time.sleep(a.seconds)
            c1, t1 = cpu_seconds(p.pid), time.monotonic()
            conns = call(ws_url + "/_mock/ws")["connections"]
            sent1 = sum(c["sent"] for c in conns)
        finally:
            p.terminate()
            p.wait(timeout=30)
        if enabled and (len(conns) != 1 or len(conns[0]["streams"]) != a.streams or conns[0]["closed_by"]):
            raise SystemExit("%s: expected one open connection with %d streams, got %s" % (
                name, a.streams, [(len(c["streams"]), c["closed_by"]) for c in conns]))
        r = {"cpu": (c1 - c0) / (t1 - t0) * 100, "msgs": (sent1 - sent0) / (t1 - t0)}
        print("  %-5s cpu %6.2f%%  messages/s %8.0f" % (name, r["cpu"], r["msgs"]), flush=True)
        return r

    results = {"idle": [], "real": [], "10x": []}
    try:
        for rep in range(a.repeats):
            print("repeat %d" % (rep + 1), flush=True)
            results["idle"].append(phase("idle", False, 2.0))
            results["10x"].append(phase("10x", True, 0.2))
            results["real"].append(phase("real", True, 2.0))
    finally:
        stop(wsm)
        stop(rest)
        shutil.rmtree(tmp, ignore_errors=True)
    med = {k: {m: statistics.median(r[m] for r in v) for m in ("cpu", "msgs")} for k, v in results.items()}
    idle = med["idle"]["cpu"]
    cost10, costreal = med["10x"]["cpu"] - idle, med["real"]["cpu"] - idle
    per_msg = cost10 / 100 / med["10x"]["msgs"] * 1e6 if med["10x"]["msgs"] else float("nan")
    print()
    print("streams %d on one connection, %d x %.0f s per phase (medians)" % (a.streams, a.repeats, a.seconds))
    print("idle daemon:         cpu %.2f%% of one core" % idle)
    print("10x real (0.2 s):    %.0f messages/s, cpu %.2f%%, above idle %.2f%%, %.1f us/message" % (
        med["10x"]["msgs"], med["10x"]["cpu"], cost10, per_msg))
    print("real rate (2 s):     %.0f messages/s, cpu %.2f%%, above idle %.2f%% (measured)" % (
        med["real"]["msgs"], med["real"]["cpu"], costreal))
    print("real rate from 10x:  above idle %.2f%% ((10x - idle) / 10)" % (cost10 / 10))
    ok = max(costreal, cost10 / 10) < 5
    print("target: 1,024 symbols at real rates < 5%% of one core: %s" % ("met" if ok else "MISSED"))


if __name__ == "__main__":
    main()
