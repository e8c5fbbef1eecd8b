#!/usr/bin/env python3
"""Self-test for the Binance routes of the mock (tests/mock/binance.py).

    python3 tests/mock/test_binance_mock.py

Starts tests/mock/mock_http.py once and checks the rules the collectors are held to: exchangeInfo
with its rateLimits and lifecycle changes, weights per endpoint and limit in x-mbx-used-weight-1m,
fixed windows, 429 with Retry-After then 418 for a request sent after it was read, klines relative
to the clock with a forming last bar that changes and then closes, a response held across the bar
boundary, COIN-M contract volume, ratios for 30 days keyed by symbol or pair.
"""
import http.client
import json
import os
import signal
import sys
import time
import unittest

from test_mock_selftest import start_mock   # same directory: one way to start the mock

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))


class BinanceMock(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.proc, cls.port = start_mock()

    @classmethod
    def tearDownClass(cls):
        cls.proc.send_signal(signal.SIGTERM)
        cls.proc.wait(5)
        cls.proc.stdin.close()
        cls.proc.stdout.close()

    def setUp(self):
        self.call("POST", "/_mock/reset")

    def call(self, method, path, body=None):
        c = http.client.HTTPConnection("127.0.0.1", self.port, timeout=10)
        c.request(method, path, body=json.dumps(body) if body is not None else None)
        r = c.getresponse()
        data = r.read()
        c.close()
        return r.status, json.loads(data), {k.lower(): v for k, v in r.getheaders()}

    def live(self, **kw):
        kw.setdefault("live", True)
        st, doc, _ = self.call("POST", "/_mock/binance", kw)
        self.assertEqual(st, 200, doc)
        return doc

    def test_exchange_info_rate_limits_and_lifecycle(self):
        st, doc, h = self.call("GET", "/api/v3/exchangeInfo")
        self.assertEqual(st, 200)
        self.assertAlmostEqual(doc["serverTime"] / 1000, time.time(), delta=5)
        self.assertIn({"rateLimitType": "REQUEST_WEIGHT", "interval": "MINUTE", "intervalNum": 1, "limit": 6000},
                      doc["rateLimits"])
        self.assertEqual(h["x-mbx-used-weight-1m"], "20")
        st, doc, h = self.call("GET", "/dapi/v1/exchangeInfo")
        self.assertEqual(h["x-mbx-used-weight-1m"], "1")
        self.assertEqual([s["contractStatus"] for s in doc["symbols"]], ["TRADING"] * 4)
        self.live(status={"spot": {"BCCBTC": "TRADING"}}, delist={"spot": ["NKNUSDT"]},
                  add={"spot": [{"symbol": "NEWUSDT", "baseAsset": "NEW", "quoteAsset": "USDT"}]})
        doc = self.call("GET", "/api/v3/exchangeInfo")[1]
        self.assertEqual({s["symbol"]: s["status"] for s in doc["symbols"]},
                         {"BTCUSDT": "TRADING", "ETHUSDT": "TRADING", "BCCBTC": "TRADING", "NEWUSDT": "TRADING"})
        st, doc, _ = self.call("GET", "/api/v3/klines?symbol=NKNUSDT&interval=1m")
        self.assertEqual((st, doc["code"]), (400, -1121))

    def test_weights_windows_429_then_418(self):
        self.live(window=1, limits={"usdm": 12}, ban=3)
        t = time.time()
        time.sleep(1 - t % 1 + 0.02)              # at the start of a window
        used = [self.call("GET", "/fapi/v1/klines?symbol=BTCUSDT&interval=1m&limit=%d" % n)[2]["x-mbx-used-weight-1m"]
                for n in (99, 100, 499, 500)]
        self.assertEqual(used, ["1", "3", "5", "10"])
        st, doc, h = self.call("GET", "/fapi/v1/klines?symbol=BTCUSDT&interval=1m&limit=1000")
        self.assertEqual((st, doc["code"], h["retry-after"]), (429, -1003, "1"))
        self.assertIn("current limit is 12", doc["msg"])
        time.sleep(0.1)                           # the client has read it (past the grace)
        st, doc, h = self.call("GET", "/fapi/v1/klines?symbol=BTCUSDT&interval=1m&limit=1")
        self.assertEqual(st, 418, "a request after the 429 was read is banned")
        self.assertEqual(h["retry-after"], "3")
        self.assertIn("IP banned until", doc["msg"])
        self.assertEqual(self.call("GET", "/api/v3/klines?symbol=BTCUSDT&interval=1m")[0], 200, "spot is apart")
        c = self.call("GET", "/_mock/binance")[1]["markets"]["usdm"]
        self.assertEqual((c["r429"], c["r418"], c["bans"], c["max_used"]), (1, 1, 1, 10))

    def test_forming_bar_changes_and_closes(self):
        self.live()
        q = "/api/v3/klines?symbol=BTCUSDT&interval=1s&limit=3"
        a = self.call("GET", q)[1]
        time.sleep(0.3)
        b = self.call("GET", q)[1]
        now = time.time() * 1000
        if a[-1][0] == b[-1][0]:
            self.assertNotEqual(a[-1][4:6], b[-1][4:6], "the forming bar's close and volume move")
        self.assertGreater(b[-1][6], now - 1000, "the last bar is the forming one")
        time.sleep(1.1)
        closed = self.call("GET", "/api/v3/klines?symbol=BTCUSDT&interval=1s&startTime=%d&limit=1" % b[-1][0])[1][0]
        final = self.call("GET", "/_mock/binance/bar?market=spot&symbol=BTCUSDT&interval=1s&open=%d" % b[-1][0])[1]
        self.assertEqual(closed, final)
        self.assertNotEqual(closed[5], b[-1][5])

    def test_straddle_holds_the_answer_past_the_boundary(self):
        self.live(straddle={"market": "spot", "times": 1, "after": 0.1})
        c = http.client.HTTPConnection("127.0.0.1", self.port, timeout=10)
        c.request("GET", "/api/v3/klines?symbol=ETHUSDT&interval=1s&limit=2")
        sent = time.time()
        r = c.getresponse()
        rows = json.loads(r.read())
        got = time.time()
        c.close()
        self.assertGreater(rows[-1][6], sent * 1000 - 50, "holds the bar forming when it was asked")
        self.assertGreater(got * 1000, rows[-1][6], "read after that bar closed")
        self.assertLess(rows[-1][6], got * 1000, "a receive-time check would take it as closed")

    def test_coinm_volume_in_contracts_and_limits(self):
        self.live()
        st, rows, h = self.call("GET", "/dapi/v1/klines?symbol=BTCUSD_PERP&interval=1m&limit=1500")
        self.assertEqual((st, len(rows), h["x-mbx-used-weight-1m"]), (200, 1500, "10"))
        r = rows[0]
        self.assertAlmostEqual(float(r[7]) / (int(r[5]) * 100 / float(r[4])), 1, places=4)
        self.assertEqual(self.call("GET", "/api/v3/klines?symbol=BTCUSDT&interval=1m&limit=1001")[1]["code"], -1130)
        self.assertEqual(self.call("GET", "/fapi/v1/klines?symbol=BTCUSDT&interval=1s")[1]["code"], -1120)
        start = 1569398400000 - 600000             # before the listing: from the listing on
        rows = self.call("GET", "/fapi/v1/klines?symbol=BTCUSDT&interval=1m&startTime=%d&limit=5" % start)[1]
        self.assertEqual(rows[0][0], 1569398400000)

    def test_ratios_thirty_days_symbol_or_pair(self):
        self.live()
        now = time.time() * 1000
        st, rows, h = self.call("GET", "/futures/data/topLongShortPositionRatio?symbol=BTCUSDT&period=5m&limit=500"
                                "&startTime=%d" % (now - 40 * 86400000))
        self.assertEqual((st, h["x-mbx-used-weight-1m"]), (200, "0"))
        self.assertGreaterEqual(rows[0]["timestamp"], now - 30 * 86400000)
        self.assertEqual(sorted(rows[0]), ["longAccount", "longShortRatio", "shortAccount", "symbol", "timestamp"])
        st, rows, h = self.call("GET", "/futures/data/topLongShortPositionRatio?pair=BTCUSD&period=5m")
        self.assertEqual((st, len(rows), h["x-mbx-used-weight-1m"]), (200, 30, "1"))
        self.assertEqual(sorted(rows[0]), ["longPosition", "longShortRatio", "pair", "shortPosition", "timestamp"])
        self.assertLess(rows[-1]["timestamp"] + 300000, now + 1)
        self.assertEqual(self.call("GET", "/futures/data/globalLongShortAccountRatio?symbol=XXX&period=5m")[1]["code"],
                         -1121)


if __name__ == "__main__":
    unittest.main()
