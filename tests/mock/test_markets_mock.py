#!/usr/bin/env python3
"""Self-test for the CoinGecko, Yahoo Finance and Drift routes of the mock (tests/mock/markets.py).

    python3 tests/mock/test_markets_mock.py

Starts tests/mock/mock_http.py once with a fixed mock time (--markets-now NOW) and checks the rules
the collectors are held to: the recorded Yahoo answer served verbatim, granularity by `days`,
close-time stamps and the forming candle, the keyless window, keys per plan, the varying limit
and the block for ignoring a 429, nulls and range limits, newest-first Drift candles.
"""
import http.client
import json
import os
import signal
import time
import unittest

from test_mock_selftest import start_mock   # same directory: one way to start the mock

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
NOW = 1796313722                             # 2026-12-03T14:42:02Z, a Thursday, New York session open
UA = {"User-Agent": "Mozilla/5.0"}


class MarketsMock(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.proc, cls.port = start_mock("--markets-now", str(NOW))

    @classmethod
    def tearDownClass(cls):
        cls.proc.send_signal(signal.SIGTERM)
        cls.proc.wait(5)
        cls.proc.stdin.close()
        cls.proc.stdout.close()

    def setUp(self):
        self.call("POST", "/_mock/reset")

    def call(self, method, path, body=None, headers=None):
        c = http.client.HTTPConnection("127.0.0.1", self.port, timeout=10)
        c.request(method, path, body=json.dumps(body) if body is not None else None, headers=headers or {})
        r = c.getresponse()
        data = r.read()
        c.close()
        try:
            doc = json.loads(data)
        except ValueError:
            doc = data.decode()
        return r.status, doc, {k.lower(): v for k, v in r.getheaders()}

    def test_coingecko_granularity_close_times_and_the_forming_candle(self):
        for days, g in (("1", 1800), ("30", 14400), ("90", 345600)):
            status, rows, _ = self.call("GET", "/api/v3/coins/bitcoin/ohlc?vs_currency=usd&days=" + days)
            self.assertEqual(status, 200)
            stamps = [r[0] // 1000 for r in rows]
            self.assertTrue(all(b - a == g for a, b in zip(stamps, stamps[1:])), days)
            self.assertTrue(all(t % g == 0 for t in stamps))
            self.assertGreater(stamps[-1], NOW, "the last candle is forming: it closes after now")
        self.assertEqual(self.call("GET", "/api/v3/coins/bitcoin/ohlc?vs_currency=usd&days=3")[0], 400)
        self.assertEqual(self.call("GET", "/api/v3/coins/Bitcoin/ohlc?vs_currency=usd&days=1")[:2],
                         (404, {"error": "coin not found"}))
        status, doc, _ = self.call("GET", "/api/v3/coins/bitcoin/ohlc?vs_currency=usd&days=max")
        self.assertEqual((status, doc["error"]["status"]["error_code"]), (401, 10012))
        _, chart, _ = self.call("GET", "/api/v3/coins/bitcoin/market_chart?vs_currency=usd&days=120")
        days = [p[0] // 1000 for p in chart["prices"]]
        self.assertTrue(all(t % 86400 == 0 for t in days[:-1]) and days[-1] == NOW, "daily, then now")

    def test_coingecko_keys_and_the_varying_limit_with_a_block(self):
        self.call("POST", "/_mock/markets", {"keys": {"demo": "k1"}})
        path = "/api/v3/coins/bitcoin/ohlc?vs_currency=usd&days=1"
        self.assertEqual(self.call("GET", path, headers={"x-cg-demo-api-key": "k1"})[0], 200)
        self.assertEqual(self.call("GET", path, headers={"x-cg-demo-api-key": "k2"})[1]["status"]["error_code"], 10002)
        self.assertEqual(self.call("GET", path, headers={"x-cg-pro-api-key": "k1"})[1]["status"]["error_code"], 10011)
        self.call("POST", "/_mock/markets", {"limits": {"coingecko": {"limits": [2], "window": 30, "ban": 5}}})
        self.assertEqual([self.call("GET", path)[0] for _ in range(2)], [200, 200])
        status, doc, headers = self.call("GET", path)
        self.assertEqual((status, doc["status"]["error_code"]), (429, 429))
        self.assertGreater(int(headers["retry-after"]), 0)
        time.sleep(0.1)                          # after the grace: this one ignored the 429
        self.assertEqual(self.call("GET", path)[:2], (429, "error code: 1015"))
        state = self.call("GET", "/_mock/markets")[1]["limiters"]["coingecko"]
        self.assertEqual((state["r429"], state["blocked"]), (1, 1))

    def test_yahoo_recorded_answer_user_agent_nulls_and_range_limits(self):
        path = "/v8/finance/chart/BTC-USD?interval=1d&period1=1577836800&period2=1578009600"
        self.assertEqual(self.call("GET", path)[:2], (429, "Too Many Requests"), "no browser User-Agent")
        status, doc, _ = self.call("GET", path, headers=UA)
        with open(os.path.join(ROOT, "fixtures/yahoo/chart_BTC-USD_1d_1577836800_1578009600.json")) as f:
            self.assertEqual((status, doc), (200, json.load(f)))
        self.assertEqual(self.call("GET", "/v8/finance/chart/btc-usd?interval=1d", headers=UA)[0], 404)
        self.assertEqual(self.call("GET", "/v8/finance/chart/BTC-USD?interval=7d", headers=UA)[0], 400)
        over = "/v8/finance/chart/BTC-USD?interval=1m&period1=%d&period2=%d" % (NOW - 8 * 86400, NOW)
        status, doc, _ = self.call("GET", over, headers=UA)
        self.assertEqual(status, 422)
        self.assertIn("Only 7 days worth of 1m", doc["chart"]["error"]["description"])
        status, doc, _ = self.call("GET", "/v8/finance/chart/BTC-USD?interval=1m&period1=%d&period2=%d"
                                   % (NOW - 86400, NOW), headers=UA)
        r = doc["chart"]["result"][0]
        q = r["indicators"]["quote"][0]
        self.assertTrue(any(c is None for c in q["close"]) and any(v is None for v in q["volume"]))
        self.assertEqual(r["timestamp"][-1], NOW, "the live bar is stamped regularMarketTime")
        _, doc, _ = self.call("GET", "/v8/finance/chart/AAPL?interval=30m&period1=%d&period2=%d"
                              % (NOW - 86400 * 3, NOW), headers=UA)
        ts = doc["chart"]["result"][0]["timestamp"]
        self.assertEqual(ts[1] - ts[0], 3600, "30m answers 60-minute bars")

    def test_drift_newest_first_limits_and_case_sensitive_markets(self):
        status, doc, _ = self.call("GET", "/market/BTC-PERP/candles/60?limit=50&startTs=%d" % (NOW - 7200))
        ts = [r["ts"] for r in doc["records"]]
        self.assertEqual(ts, sorted(ts, reverse=True))
        self.assertLessEqual(ts[0], NOW - 7200)
        self.assertEqual(self.call("GET", "/market/BTC-PERP/candles/60?limit=1001")[0], 400)
        self.assertEqual(self.call("GET", "/market/btc-perp/candles/60")[0], 400)
        self.assertEqual(self.call("GET", "/market/BTC-PERP/candles/60?limit=1")[1]["records"][0]["ts"],
                         NOW // 3600 * 3600, "the forming candle is included")


if __name__ == "__main__":
    unittest.main(verbosity=2)
