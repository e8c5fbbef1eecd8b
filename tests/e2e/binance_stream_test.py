"""End to end: Binance live 1m klines over WebSocket (scripts/binance/stream.lua) in the real daemon,
against the combined-stream mock (tests/mock/binance_ws.py at scale 60: a mock minute per real
second) and the REST mock's live mode for the missed minutes.

Each fault - a connection dropped mid-minute with an outage after it, a silent stream, the 24 h
cut (scaled), proactive or not - must end in a complete 1m series, bar for bar equal to what the
mock served (the mock's closed bars, identical over WebSocket and REST)."""
import json
import os
import subprocess
import sys
import time

import harness

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "mock"))
import binance  # noqa: E402  (the mocks' price path: what a closed bar is)

SYMBOLS = {"spot": ["BTCUSDT", "ETHUSDT"], "usdm": ["SUSHIUSDT"], "coinm": ["BTCUSD_PERP"]}
SOURCE = {"spot": "binance_spot", "usdm": "binance_usdm", "coinm": "binance_coinm"}
PATH = {"spot": "/spot", "usdm": "/usdm/market", "coinm": "/coinm"}


class WsMock:
    def __init__(self):
        fixtures = os.path.join(harness.ARGS.source, "fixtures")
        script = os.path.join(harness.ARGS.source, "tests", "mock", "binance_ws.py")
        self.proc = subprocess.Popen([sys.executable, script, "--fixtures", fixtures, "--exit-on-stdin-eof",
                                      "--scale", "60", "--tick", "0.05"],
                                     stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
        line = self.proc.stdout.readline().split()
        assert line and line[0] == "PORT", "the WebSocket mock did not start"
        self.port = int(line[1])
        self.http = harness.Mock.__new__(harness.Mock)
        self.http.url = "http://127.0.0.1:%d" % self.port

    def call(self, method, path, body=None):
        return self.http.call(method, path, body)

    def close(self):
        self.proc.stdin.close()
        try:
            self.proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()


class Stream(harness.Case):
    def setUp(self):
        super().setUp()
        self.mock.call("POST", "/_mock/binance", {"live": True})
        self.ws = WsMock()
        self.rest = binance.Binance(type("O", (), {"fixtures": os.path.join(harness.ARGS.source, "fixtures")}))

    def tearDown(self):
        super().tearDown()
        self.ws.close()

    def config(self, markets=("spot", "usdm", "coinm"), symbols=None, **ws_opts):
        off = {"enabled": False}
        sources = {"geckoterminal": off, "coingecko": off, "yahoo": off, "drift": off}
        for m in ("spot", "usdm", "coinm"):
            if m in markets:
                sources[SOURCE[m]] = dict({"base_url": self.mock.url, "symbols": (symbols or SYMBOLS)[m],
                                           "intervals": ["1d"],
                                           "ws_enabled": True,
                                           "ws_url": "ws://127.0.0.1:%d%s" % (self.ws.port, PATH[m]),
                                           "ws_cadence": 0.1, "ws_backoff_base": 0.05, "ws_backoff_cap": 0.2},
                                          **ws_opts)
            else:
                sources[SOURCE[m]] = off
        scripts = {n: off for n in ("binance.spot", "binance.usdm", "binance.coinm", "binance.symbols",
                                    "binance.ratios")}
        return self.write_config({"database": {"path": "data/candled.db"}, "log": {"level": "info"},
                                  "runtime": {"shutdown_grace": 2},
                                  "paths": {"scripts": os.path.join(harness.ARGS.source, "scripts")},
                                  "sources": sources, "scripts": scripts})

    def bars(self, market, symbol):
        return self.query("SELECT ts, open, high, low, close, volume, quote_volume, trades FROM candles WHERE "
                          "source = ? AND instrument = ? AND timeframe = '1m' ORDER BY ts", SOURCE[market], symbol)

    def count(self, market, symbol):
        return self.query("SELECT count(*) FROM candles WHERE source = ? AND instrument = ? AND timeframe = '1m'",
                          SOURCE[market], symbol)[0][0]

    def expected(self, market, symbol, ts):
        """The bar the mocks served for this minute, as the scripts store it."""
        info = {s["symbol"]: s for s in self.rest.info[market]["symbols"]}[symbol]
        r = json.loads(self.rest.row(market, info, ts * 1000, 60000, None))
        vol, qv = float(r[5]), float(r[7])
        if market == "coinm":
            vol, qv = float(r[7]), float(r[5]) * info["contractSize"]
        return (ts, float(r[1]), float(r[2]), float(r[3]), float(r[4]), vol, qv, r[8])

    def assert_complete(self, markets, at_least, symbols=None):
        for m in markets:
            for sym in (symbols or SYMBOLS)[m]:
                rows = self.bars(m, sym)
                self.assertGreaterEqual(len(rows), at_least, "%s %s: %d bars" % (m, sym, len(rows)))
                ts = [r[0] for r in rows]
                self.assertEqual(ts, list(range(ts[0], ts[-1] + 60, 60)), "%s %s: a hole in the series" % (m, sym))
                for r in rows:
                    e = self.expected(m, sym, r[0])
                    for got, want in zip(r, e):
                        self.assertAlmostEqual(got, want, places=6, msg="%s %s at %d: %r != %r" % (m, sym, r[0], r, e))

    def wait_bars(self, markets, n, timeout=30):
        self.wait_for(lambda: all(self.count(m, s) >= n for m in markets for s in SYMBOLS[m]), timeout,
                      "%d bars per series" % n)

    def rest_fills(self):
        return [r for r in self.mock.requests() if "klines" in r["path"] and r["status"] == 200]

    def run_daemon(self, cfg):
        d = self.start_daemon(cfg)
        self.addCleanup(lambda: d.poll() is None and self.stop_daemon(d))
        return d

    def test_drop_mid_minute_then_outage(self):
        markets = ("spot", "usdm", "coinm")
        d = self.run_daemon(self.config(markets))
        self.wait_bars(markets, 3)
        before = {(m, s): self.count(m, s) for m in markets for s in SYMBOLS[m]}
        self.assertEqual(self.rest_fills(), [], "nothing missed yet: no REST call")
        # cut every connection at second 30 of a minute, refuse new ones for three minutes
        self.ws.call("POST", "/_mock/ws", {"drop": {"at": 30, "down": 180}})
        self.wait_for(lambda: self.ws.call("GET", "/_mock/ws")["refused"] > 0, 10, "a refused reconnect")
        self.wait_bars(markets, max(before.values()) + 6, timeout=40)
        code, err = self.stop_daemon(d)
        self.assertEqual(code, 0, err)
        state = self.ws.call("GET", "/_mock/ws")
        dropped = [c for c in state["connections"] if c["closed_by"] == "drop"]
        self.assertEqual(len(dropped), 3)
        for c in dropped:                       # mid-minute: at second 30 of the mock's clock
            self.assertTrue(30000 <= c["closed_ms"] % 60000 < 34000, c["closed_ms"] % 60000)
        self.assertGreaterEqual(len(state["connections"]), 6, "each market reconnected")
        self.assertGreater(len(self.rest_fills()), 0, "the missed minutes came over REST")
        self.assertNotIn("no_pong", [c["closed_by"] for c in state["connections"]])
        self.assertTrue(all(c["pongs"] >= c["pings"] - 1 for c in state["connections"]), "server pings answered")
        self.assertGreater(sum(c["pings"] for c in state["connections"] if c["market"] == "spot"), 0)
        self.assert_complete(markets, 8)
        for m in markets:                       # the outage's minutes were not sent over the stream
            for s in SYMBOLS[m]:
                served = set(state["served"].get(s.lower() + "@kline_1m", []))
                stored = {r[0] * 1000 for r in self.bars(m, s)}
                self.assertTrue(stored - served, "%s %s: some minutes came from REST only" % (m, s))

    def test_silent_stream(self):
        d = self.run_daemon(self.config(("spot",)))
        self.wait_bars(("spot",), 2)
        self.ws.call("POST", "/_mock/ws", {"silent": 150})        # 2.5 s of silence, pings too
        time.sleep(3)
        self.wait_bars(("spot",), max(self.count("spot", s) for s in SYMBOLS["spot"]) + 3)
        code, err = self.stop_daemon(d)
        self.assertEqual(code, 0, err)
        conns = self.ws.call("GET", "/_mock/ws")["connections"]
        self.assertGreaterEqual(len([c for c in conns if c["closed_by"] == "client"]), 1,
                                "the watchdog closed the silent connection")
        self.assertIn("silent", err)
        self.assertGreater(len(self.rest_fills()), 0)
        self.assert_complete(("spot",), 5)

    def test_streams_split_over_connections_and_subscribed(self):
        # at most 2 streams a connection, 1 in the URL: ETHUSDT comes by SUBSCRIBE
        three = {"spot": ["BTCUSDT", "ETHUSDT", "NKNUSDT"]}
        d = self.run_daemon(self.config(("spot",), three, ws_streams_per_connection=2, ws_url_streams=1,
                                        ws_subscribe_pace=0.05))
        self.wait_for(lambda: all(self.count("spot", s) >= 3 for s in three["spot"]), 30, "bars of all three")
        code, err = self.stop_daemon(d)
        self.assertEqual(code, 0, err)
        conns = self.ws.call("GET", "/_mock/ws")["connections"]
        self.assertEqual(sorted(sorted(c["streams"]) for c in conns),
                         [["btcusdt@kline_1m", "ethusdt@kline_1m"], ["nknusdt@kline_1m"]])
        self.assertEqual(sorted(c["subscribes"] for c in conns), [0, 1])
        self.assert_complete(("spot",), 3, three)

    def test_bad_stream_option_stops_the_daemon_naming_the_key(self):
        r = self.candled("run", "--config", self.config(("spot",), ws_cadence="fast"), timeout=30)
        self.assertNotEqual(r.returncode, 0)
        self.assertIn("sources.binance_spot.ws_cadence", r.stderr)

    def test_24h_rollover(self):
        # a connection lives 150 mock seconds (Binance's 24 h, scaled); the client replaces its
        # connections after 1.5 real seconds (90 mock seconds), before the cut
        self.ws.call("POST", "/_mock/ws", {"lifetime": 150})
        d = self.run_daemon(self.config(("spot", "usdm"), ws_max_age=1.5))
        self.wait_bars(("spot", "usdm"), 7, timeout=40)
        code, err = self.stop_daemon(d)
        self.assertEqual(code, 0, err)
        conns = self.ws.call("GET", "/_mock/ws")["connections"]
        by = [c["closed_by"] for c in conns]
        self.assertGreaterEqual(by.count("client"), 4, by)
        self.assertNotIn("lifetime", by, "replaced before the cut")
        self.assertEqual(self.rest_fills(), [], "make before break: no minute to fetch over REST")
        self.assertIn("replaced before the 24 h cut", err)
        self.assert_complete(("spot", "usdm"), 7)
        # without the proactive reconnect the server cuts; the series stays complete all the same
        d = self.run_daemon(self.config(("spot",)))
        n = max(self.count("spot", s) for s in SYMBOLS["spot"])
        self.wait_bars(("spot",), n + 6, timeout=40)
        code, err = self.stop_daemon(d)
        self.assertEqual(code, 0, err)
        self.assertIn("lifetime", [c["closed_by"] for c in self.ws.call("GET", "/_mock/ws")["connections"]])
        self.assert_complete(("spot",), n + 6)


if __name__ == "__main__":
    harness.main()
