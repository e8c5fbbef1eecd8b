#!/usr/bin/env python3
"""Self-test for tests/mock/mock_http.py (stdlib unittest, a few seconds).

    python3 tests/mock/test_mock_selftest.py

Starts the mock once on an ephemeral port with the repo's fixtures/ and talks to it over
real TCP with http.client (one connection per helper call unless a test says otherwise).
"""
import gzip
import http.client
import json
import os
import signal
import subprocess
import sys
import tempfile
import threading
import time
import unittest

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
MOCK = os.path.join(HERE, "mock_http.py")
FIXTURES = os.path.join(ROOT, "fixtures")
sys.path[:0] = [HERE, os.path.join(FIXTURES, "binance")]
import gen_klines  # noqa: E402  (fixture generator: holds the real capture's rows)
import mock_http  # noqa: E402

REAL_ROWS = gen_klines.REAL_BTC_ROWS


def load_json(path):
    with open(path, encoding="utf-8") as f:
        return json.load(f)


BTC = load_json(os.path.join(FIXTURES, "binance", "klines_BTCUSDT_1m.json"))
FIRST = BTC[0][0]
LAST = BTC[-1][0]
MIN = 60000


def start_mock(*extra):
    """Start the mock with sys.executable (not a PATH shim, so .pid is the server itself)."""
    proc = subprocess.Popen([sys.executable, MOCK, "--fixtures", FIXTURES, *extra],
                            stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    line = proc.stdout.readline()
    if not line.startswith("PORT "):
        proc.kill()
        raise RuntimeError("mock did not start: %r" % line)
    return proc, int(line.split()[1])


class MockTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.proc, cls.port = start_mock("--bench-end-ms", str(1000 * MIN))

    @classmethod
    def tearDownClass(cls):
        cls.proc.send_signal(signal.SIGTERM)
        cls.proc.wait(5)
        cls.proc.stdin.close()
        cls.proc.stdout.close()

    def setUp(self):
        self.call("POST", "/_mock/reset")

    # ---- helpers

    def conn(self):
        return http.client.HTTPConnection("127.0.0.1", self.port, timeout=5)

    def call(self, method, path, body=None, headers=None, conn=None):
        """-> (status, headers dict (lower-case), raw body bytes)."""
        c = conn or self.conn()
        data = json.dumps(body).encode() if body is not None and not isinstance(body, bytes) else body
        c.request(method, path, body=data, headers=headers or {})
        r = c.getresponse()
        raw = r.read()
        hdrs = {k.lower(): v for k, v in r.getheaders()}
        if conn is None:
            c.close()
        return r.status, hdrs, raw

    def get_json(self, path, **kw):
        status, hdrs, raw = self.call("GET", path, **kw)
        return status, hdrs, json.loads(raw)

    def klines(self, query, path="/api/v3/klines"):
        return self.get_json(path + "?" + query)

    # ---- klines window semantics

    def test_klines_no_start_no_end(self):
        status, hdrs, rows = self.klines("symbol=BTCUSDT&interval=1m&limit=5")
        self.assertEqual(status, 200)
        self.assertEqual(rows, BTC[-5:])
        self.assertEqual(len(self.klines("symbol=BTCUSDT&interval=1m")[2]), 500)  # default limit

    def test_klines_start_only(self):
        _, _, rows = self.klines("symbol=BTCUSDT&interval=1m&limit=10&startTime=%d" % FIRST)
        self.assertEqual(rows, REAL_ROWS)              # the 10 real rows, verbatim
        _, _, rows = self.klines("symbol=BTCUSDT&interval=1m&limit=3&startTime=%d" % (FIRST + 1))
        self.assertEqual(rows, BTC[1:4])               # first openTime >= startTime
        _, _, rows = self.klines("symbol=BTCUSDT&interval=1m&limit=1000&startTime=%d" % (LAST - 2 * MIN))
        self.assertEqual(rows, BTC[-3:])               # runs out at the end of the data

    def test_klines_end_only(self):
        end = FIRST + 100 * MIN
        _, _, rows = self.klines("symbol=BTCUSDT&interval=1m&limit=4&endTime=%d" % end)
        self.assertEqual(rows, BTC[97:101])            # most recent with openTime <= endTime
        _, _, rows = self.klines("symbol=BTCUSDT&interval=1m&limit=4&endTime=%d" % (end - 1))
        self.assertEqual(rows, BTC[96:100])

    def test_klines_start_and_end(self):
        q = "symbol=BTCUSDT&interval=1m&limit=1000&startTime=%d&endTime=%d" % (FIRST + 10 * MIN, FIRST + 14 * MIN)
        self.assertEqual(self.klines(q)[2], BTC[10:15])
        q = "symbol=BTCUSDT&interval=1m&limit=2&startTime=%d&endTime=%d" % (FIRST + 10 * MIN, FIRST + 14 * MIN)
        self.assertEqual(self.klines(q)[2], BTC[10:12])
        q = "symbol=BTCUSDT&interval=1m&startTime=%d&endTime=%d" % (FIRST + 5 * MIN, FIRST)
        status, _, body = self.klines(q)
        self.assertEqual((status, body["code"]), (400, -1023))

    def test_klines_compact_and_futures_paths(self):
        status, hdrs, raw = self.call("GET", "/fapi/v1/klines?symbol=ETHUSDT&interval=1h&limit=1500")
        self.assertEqual(status, 200)
        self.assertNotIn(b" ", raw)
        self.assertEqual(len(json.loads(raw)), 300)
        self.assertEqual(self.klines("symbol=ETHUSDT&interval=1h&limit=1501", "/dapi/v1/klines")[0], 400)

    def test_klines_errors(self):
        status, _, body = self.klines("symbol=NOPEUSDT&interval=1m")
        self.assertEqual((status, body), (400, {"code": -1121, "msg": "Invalid symbol."}))
        status, _, body = self.klines("symbol=BTCUSDT&interval=1m&limit=1001")
        self.assertEqual((status, body), (400, {"code": -1130, "msg": "Invalid data sent for a parameter."}))
        self.assertEqual(self.klines("symbol=BTCUSDT&interval=2m")[2]["code"], -1120)
        self.assertEqual(self.klines("symbol=BTCUSDT&interval=1s", "/fapi/v1/klines")[2]["code"], -1120)
        self.assertEqual(self.klines("interval=1m")[2]["code"], -1102)
        self.assertEqual(self.klines("symbol=BTCUSDT&interval=1m&startTime=abc")[2]["code"], -1100)
        self.assertEqual(self.klines("symbol=BTCUSDT&interval=5m")[:3:2], (200, []))  # known symbol

    def test_weight_header(self):
        c = self.conn()
        w = [int(self.call("GET", "/api/v3/klines?symbol=BTCUSDT&interval=1m&limit=1", conn=c)[1]
                 ["x-mbx-used-weight-1m"]) for _ in range(3)]
        self.assertEqual(w[1] - w[0], 2)
        self.assertEqual(w[2] - w[1], 2)
        f = [int(self.call("GET", "/fapi/v1/klines?symbol=BTCUSDT&interval=1m&limit=%d" % n, conn=c)[1]
                 ["x-mbx-used-weight-1m"]) for n in (1000, 1500)]
        self.assertEqual(f[1] - f[0], 10)              # futures weight by limit
        c.close()

    # ---- BENCH

    def test_bench(self):
        q = "symbol=BENCHBTC&interval=1m&limit=1000&startTime=%d" % (5 * MIN + 1)
        t0 = time.perf_counter()
        status, _, raw = self.call("GET", "/api/v3/klines?" + q)
        rows = json.loads(raw)
        self.assertEqual(status, 200)
        self.assertEqual(len(rows), 994)               # capped by --bench-end-ms (exclusive)
        self.assertEqual(rows[0][0], 6 * MIN)          # rounded up to a whole minute
        self.assertEqual(rows[-1][0], 999 * MIN)
        for r in rows:
            o, h, l, c = (float(x) for x in r[1:5])
            self.assertTrue(h >= max(o, c) and l <= min(o, c), r)
            self.assertEqual(r[6], r[0] + MIN - 1)
            self.assertIsInstance(r[8], int)
            self.assertEqual(len(r[1].split(".")[1]), 8)
        self.assertEqual(self.call("GET", "/api/v3/klines?" + q)[2], raw)   # deterministic
        first = time.perf_counter() - t0
        self.assertLess(first, 2.0)
        q = "symbol=BENCHBTC&interval=1m&limit=10&startTime=%d&endTime=%d" % (10 * MIN, 14 * MIN)
        self.assertEqual([r[0] for r in self.klines(q)[2]], [m * MIN for m in range(10, 15)])
        q = "symbol=BENCHBTC&interval=1m&limit=3&endTime=%d" % (20 * MIN + 5)
        self.assertEqual([r[0] for r in self.klines(q)[2]], [18 * MIN, 19 * MIN, 20 * MIN])

    def test_bench_speed_in_process(self):
        # The hot path (cached page / fixture slice) must cost well under 1 ms.
        store = mock_http.KlineStore(FIXTURES)
        store.page("api", "BENCHX", "1m", 0, None, 1000)
        store.page("api", "BTCUSDT", "1m", FIRST, None, 1000)
        for args in (("BENCHX", "1m", 0, None, 1000), ("BTCUSDT", "1m", FIRST + 7 * MIN, None, 1000)):
            t0 = time.perf_counter()
            for _ in range(100):
                store.page("api", *args)
            self.assertLess((time.perf_counter() - t0) / 100, 0.001, args)

    # ---- query-parameter faults

    def test_fault_status_and_retry_after(self):
        status, hdrs, body = self.get_json("/static/hello.json?_status=503&_retry_after=7")
        self.assertEqual((status, body), (503, {"code": 503, "msg": "injected"}))
        self.assertEqual(hdrs["retry-after"], "7")

    def test_fault_delay(self):
        t0 = time.monotonic()
        status, _, body = self.get_json("/static/hello.json?_delay=0.3")
        self.assertGreaterEqual(time.monotonic() - t0, 0.3)
        self.assertEqual((status, body), (200, {"hello": "world", "n": 42}))

    def test_fault_reset(self):
        with self.assertRaises(ConnectionError):       # RST (or, racing, an empty reply)
            self.call("GET", "/api/v3/klines?symbol=BTCUSDT&interval=1m&_reset=1")
        log = self.get_json("/_mock/requests")[2]
        self.assertEqual(log[-1]["status"], "reset")

    def test_fault_truncate(self):
        c = self.conn()
        c.request("GET", "/static/big.json?_truncate=100")
        r = c.getresponse()
        self.assertGreater(int(r.getheader("Content-Length")), 100)
        with self.assertRaises(http.client.IncompleteRead) as cm:
            r.read()
        self.assertEqual(len(cm.exception.partial), 100)
        c.close()

    def test_fault_gzip(self):
        plain = self.call("GET", "/static/big.json")[2]
        status, hdrs, raw = self.call("GET", "/static/big.json?_gzip=1", headers={"Accept-Encoding": "gzip"})
        self.assertEqual(hdrs.get("content-encoding"), "gzip")
        self.assertEqual(int(hdrs["content-length"]), len(raw))
        self.assertLess(len(raw), len(plain) // 4)
        self.assertEqual(gzip.decompress(raw), plain)
        _, hdrs, raw = self.call("GET", "/static/big.json?_gzip=1")   # client did not ask
        self.assertNotIn("content-encoding", hdrs)
        self.assertEqual(raw, plain)

    def test_fault_drip(self):
        t0 = time.monotonic()
        status, _, body = self.get_json("/static/hello.json?_drip=0.3")
        self.assertGreaterEqual(time.monotonic() - t0, 0.25)
        self.assertEqual(body, {"hello": "world", "n": 42})

    # ---- control API

    def test_rule_after_times(self):
        ok = self.call("POST", "/_mock/faults", {"path": "/api/v3/klines", "status": 429,
                                                 "retry_after": 2, "after": 1, "times": 2})
        self.assertEqual(ok[0], 200)
        q = "/api/v3/klines?symbol=BTCUSDT&interval=1m&limit=1"
        got = [self.call("GET", q) for _ in range(4)]
        self.assertEqual([g[0] for g in got], [200, 429, 429, 200])
        self.assertEqual(got[1][1]["retry-after"], "2")
        self.assertIn("x-mbx-used-weight-1m", got[1][1])
        self.assertEqual(self.call("GET", "/static/hello.json")[0], 200)  # other paths untouched
        rules = self.get_json("/_mock/faults")[2]
        self.assertEqual((rules[0]["seen"], rules[0]["fired"]), (4, 2))

    def test_rule_match_body_forever_and_clear(self):
        self.call("POST", "/_mock/faults", {"path": "/api/v3/klines", "match": {"startTime": FIRST},
                                            "status": 418, "times": -1,
                                            "body": {"code": -1003, "msg": "banned"}})
        hit = "/api/v3/klines?symbol=BTCUSDT&interval=1m&startTime=%d" % FIRST
        miss = "/api/v3/klines?symbol=BTCUSDT&interval=1m&startTime=%d" % (FIRST + MIN)
        for _ in range(3):
            status, _, body = self.get_json(hit)
            self.assertEqual((status, body["code"]), (418, -1003))
        self.assertEqual(self.call("GET", miss)[0], 200)
        self.call("DELETE", "/_mock/faults")
        self.assertEqual(self.call("GET", hit)[0], 200)

    def test_rule_reset_and_delay(self):
        self.call("POST", "/_mock/faults", [{"path": "/echo", "reset": True},
                                            {"path": "/static/hello.json", "delay": 0.2}])
        with self.assertRaises(ConnectionError):
            self.call("GET", "/echo")
        self.assertEqual(self.call("GET", "/echo")[0], 200)                # times defaults to 1
        t0 = time.monotonic()
        self.assertEqual(self.call("GET", "/static/hello.json")[0], 200)
        self.assertGreaterEqual(time.monotonic() - t0, 0.2)

    def test_request_log(self):
        self.call("GET", "/echo?a=1&a=2&b=x&_status=500", headers={"X-Test": "yes"})
        self.call("GET", "/_mock/stats")                                   # control: not logged
        log = self.get_json("/_mock/requests")[2]
        self.assertEqual(len(log), 1)
        e = log[0]
        self.assertEqual((e["method"], e["path"], e["query"], e["status"]), ("GET", "/echo", {"a": "1", "b": "x"}, 500))
        self.assertEqual(e["headers"]["x-test"], "yes")
        self.assertAlmostEqual(e["time"], time.time(), delta=5)
        self.call("DELETE", "/_mock/requests")
        self.assertEqual(self.get_json("/_mock/requests")[2], [])

    def test_stats_and_keepalive(self):
        c = self.conn()
        for _ in range(3):
            self.assertEqual(self.call("GET", "/static/hello.json", conn=c)[0], 200)
        self.call("GET", "/static/missing.json", conn=c)
        c.close()
        self.call("GET", "/static/hello.json")                              # a second connection
        stats = self.get_json("/_mock/stats")[2]
        self.assertEqual(stats["requests"], 5)
        self.assertEqual(stats["connections"], 2)
        self.assertEqual(stats["by_path"]["/static/hello.json"], 4)
        self.assertEqual(stats["by_status"], {"200": 4, "404": 1})

    # ---- rate limiter (POST /_mock/limiter)

    def limiter(self, **cfg):
        status, _, raw = self.call("POST", "/_mock/limiter", cfg)
        self.assertEqual(status, 200, raw)
        return json.loads(raw)

    def counters(self):
        return self.get_json("/_mock/limiter")[2]

    def test_limiter_admit_429_recover(self):
        self.assertFalse(self.limiter(limit=3, window=1.0, ban=5.0)["used"])
        got = [self.call("GET", "/static/hello.json") for _ in range(3)]
        self.assertEqual([g[0] for g in got], [200] * 3)
        self.assertEqual([g[1]["x-used-weight"] for g in got], ["1", "2", "3"])
        status, hdrs, raw = self.call("GET", "/static/hello.json")
        self.assertEqual((status, json.loads(raw)), (429, {"code": -1003, "msg": "rate limited"}))
        self.assertEqual((hdrs["retry-after"], hdrs["x-used-weight"]), ("1", "3"))
        c = self.counters()
        self.assertGreater(c["paused_for"], 0)
        time.sleep(1.05)                                 # honour Retry-After; the window has passed
        status, hdrs, _ = self.call("GET", "/static/hello.json")
        self.assertEqual((status, hdrs["x-used-weight"]), (200, "1"))
        c = self.counters()
        self.assertEqual({k: c[k] for k in ("enabled", "limit", "window", "requests", "admitted",
                                            "admitted_weight", "r429", "r418", "bans", "max_used",
                                            "used", "banned_for", "paused_for")},
                         {"enabled": True, "limit": 3, "window": 1.0, "requests": 5, "admitted": 4,
                          "admitted_weight": 4, "r429": 1, "r418": 0, "bans": 0, "max_used": 3,
                          "used": 1, "banned_for": 0, "paused_for": 0})
        self.assertLess(c["first_admit"], 0.5)
        self.assertGreaterEqual(c["last_admit"], 1.0)
        log = self.get_json("/_mock/requests")[2]
        self.assertEqual([(e["status"], e["limiter"], e["weight"]) for e in log],
                         [(200, "admit", 1)] * 3 + [(429, 429, 1), (200, "admit", 1)])

    def test_limiter_weight_param_and_retry_after(self):
        self.limiter(limit=10, window=10.0, used_header="X-MBX-USED-WEIGHT-1M")
        q = "/api/v3/klines?symbol=BTCUSDT&interval=1m&limit=1&_w=3"
        c = self.conn()
        c.request("GET", q)
        r = c.getresponse()
        r.read()
        c.close()
        self.assertEqual((r.status, r.msg.get_all("x-mbx-used-weight-1m")), (200, ["3"]))  # replaced
        status, hdrs, body = self.get_json("/echo?x=1&_w=4")
        self.assertEqual((status, hdrs["x-mbx-used-weight-1m"], body["query"]), (200, "7", {"x": "1"}))
        self.assertEqual(self.get_json("/_mock/requests?path=/echo")[2][0]["weight"], 4)
        status, hdrs, _ = self.call("GET", "/echo?_w=4")  # needs both entries gone: 3 alone is short
        self.assertEqual((status, hdrs["retry-after"]), (429, "10"))
        c = self.counters()
        self.assertEqual((c["admitted"], c["admitted_weight"], c["max_used"], c["r429"]), (2, 7, 7, 1))
        self.limiter(limit=2, retry_after=7)              # replaces the config, zeroes the counters
        self.assertEqual(self.call("GET", "/echo?_w=2")[0], 200)
        status, hdrs, _ = self.call("GET", "/echo")       # default weight 1
        self.assertEqual((status, hdrs["retry-after"]), (429, "7"))
        c = self.counters()
        self.assertEqual((c["requests"], c["admitted"], c["r429"], c["window"]), (2, 1, 1, 2.0))

    def test_limiter_ban(self):
        self.limiter(limit=1, window=0.5, ban=1.0, grace=0)   # this client reads each 429 first
        self.assertEqual(self.call("GET", "/static/hello.json")[0], 200)
        self.assertEqual(self.call("GET", "/static/hello.json")[0], 429)
        for _ in range(3):                                # ignored the 429, then keeps knocking
            status, hdrs, raw = self.call("GET", "/api/items?page=1")
            self.assertEqual((status, json.loads(raw), hdrs["retry-after"]),
                             (418, {"code": -1003, "msg": "banned"}, "1"))
            self.assertNotIn("x-used-weight", hdrs)
        self.assertEqual(self.call("GET", "/_mock/health")[0], 200)   # control is never limited
        c = self.counters()
        self.assertEqual((c["requests"], c["admitted"], c["r429"], c["r418"], c["bans"]), (5, 1, 1, 3, 1))
        self.assertTrue(0.5 < c["banned_for"] <= 1.0, c)
        self.assertEqual(c["paused_for"], 0)
        time.sleep(c["banned_for"] + 0.05)
        self.assertEqual(self.call("GET", "/static/hello.json")[0], 200)
        c = self.counters()
        self.assertEqual((c["admitted"], c["r418"], c["bans"], c["banned_for"]), (2, 3, 1, 0))

    def test_limiter_prefix_disable_reset(self):
        self.limiter(limit=1, window=10.0, prefix="/api/")
        self.assertEqual(self.call("GET", "/api/items?page=1")[0], 200)
        self.assertEqual(self.call("GET", "/api/items?page=2")[0], 429)
        for _ in range(3):
            status, hdrs, _ = self.call("GET", "/static/hello.json?_w=5")
            self.assertEqual(status, 200)
            self.assertNotIn("x-used-weight", hdrs)
        self.assertEqual(self.counters()["requests"], 2)
        self.assertEqual(self.call("DELETE", "/_mock/limiter")[0], 200)
        status, hdrs, _ = self.call("GET", "/api/items?page=2")
        self.assertEqual(status, 200)
        self.assertNotIn("x-used-weight", hdrs)
        c = self.counters()
        self.assertEqual((c["enabled"], c["requests"], c["r429"]), (False, 2, 1))  # kept after DELETE
        self.limiter(limit=1)
        self.assertEqual([self.call("GET", "/echo")[0] for _ in range(2)], [200, 429])
        self.assertEqual(self.limiter(limit=0)["enabled"], False)
        self.assertEqual(self.call("GET", "/echo")[0], 200)
        self.limiter(limit=1)
        self.call("GET", "/echo")
        self.call("POST", "/_mock/reset")
        c = self.counters()
        self.assertEqual((c["enabled"], c["requests"], c["admitted"]), (False, 0, 0))
        self.assertEqual([self.call("GET", "/echo")[0] for _ in range(3)], [200] * 3)
        for bad in ({"limit": 5, "windo": 1}, {"limit": 5, "window": 0}, {"limit": -1},
                    {"limit": "5"}, [1], {"limit": 5, "retry_after": "x"}):
            status, _, raw = self.call("POST", "/_mock/limiter", bad)
            self.assertEqual(status, 400, bad)
        self.assertFalse(self.counters()["enabled"])

    def test_limiter_concurrent(self):
        self.limiter(limit=20, window=10.0, ban=10.0)
        statuses, lock = [], threading.Lock()

        def worker():
            c = self.conn()
            for _ in range(5):
                s = self.call("GET", "/static/hello.json", conn=c)[0]
                with lock:
                    statuses.append(s)
            c.close()
        threads = [threading.Thread(target=worker) for _ in range(8)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        self.assertEqual(statuses.count(200), 20)
        self.assertEqual(statuses.count(429) + statuses.count(418), 20)
        c = self.counters()
        self.assertEqual((c["requests"], c["admitted"], c["max_used"], c["r429"] + c["r418"]),
                         (40, 20, 20, 20))
        self.assertGreaterEqual(c["r429"], 1)

    def test_limiter_in_process_clock(self):
        # Exact Retry-After arithmetic with a fake clock: 429 -> pause -> 418 ban -> recovery.
        now = [100.0]
        lim = mock_http.Limiter(clock=lambda: now[0])
        self.assertIsNone(lim.check("/x", 1))             # off until configured
        lim.configure({"limit": 10, "window": 10.0, "ban": 30.0, "prefix": "/x"})
        self.assertIsNone(lim.check("/y", 1))
        self.assertEqual(lim.check("/x", 3)[:2], (0, [("X-Used-Weight", "3")]))
        now[0] = 102.5
        self.assertEqual(lim.check("/x", 6)[:2], (0, [("X-Used-Weight", "9")]))
        now[0] = 103.0
        st, hdrs, _ = lim.check("/x", 2)                  # needs the 3 at t=100 gone: at 110
        self.assertEqual((st, hdrs[0]), (429, ("Retry-After", "7")))
        lim.delivered()                                   # the 429 is written out at 103
        now[0] = 109.9                                    # still paused: ban
        st, hdrs, _ = lim.check("/x", 1)
        self.assertEqual((st, hdrs), (418, [("Retry-After", "30")]))
        now[0] = 139.0
        self.assertEqual(lim.check("/x", 1)[1], [("Retry-After", "1")])
        now[0] = 140.0                                    # ban over; the log has expired
        self.assertEqual(lim.check("/x", 10)[:2], (0, [("X-Used-Weight", "10")]))
        now[0] = 141.0
        st, hdrs, _ = lim.check("/x", 11)                 # can never fit: a whole window
        self.assertEqual((st, hdrs[0]), (429, ("Retry-After", "10")))
        c = lim.counters()
        self.assertEqual((c["admitted"], c["r429"], c["r418"], c["bans"], c["max_used"]), (3, 2, 2, 1, 10))
        self.assertEqual((c["first_admit"], c["last_admit"], c["paused_for"]), (0.0, 40.0, 10.0))

    def test_limiter_in_flight_fixed_and_no_retry_after(self):
        # A request on the wire before the 429 went out gets a 429 (same pause), one sent after: 418.
        now = [100.0]
        lim = mock_http.Limiter(clock=lambda: now[0])
        lim.configure({"limit": 2, "window": 10.0, "ban": 30.0, "kind": "fixed", "used_header": None,
                       "grace": 0.1})
        self.assertEqual([lim.check("/x", 1)[0] for _ in range(2)], [0, 0])
        now[0] = 101.0
        st, hdrs, _ = lim.check("/x", 1, arrived=101.0)   # fixed window [100, 110): 9 s to go
        self.assertEqual((st, hdrs), (429, [("Retry-After", "9")]))
        st, hdrs, _ = lim.check("/x", 1, arrived=100.9)   # in flight: not delivered yet
        self.assertEqual(st, 429)
        lim.delivered()
        st, _, _ = lim.check("/x", 1, arrived=101.05)     # within the grace after the delivery
        self.assertEqual(st, 429)
        now[0] = 101.5
        self.assertEqual(lim.check("/x", 1, arrived=101.4)[0], 418)   # sent after it was delivered
        c = lim.counters()
        self.assertEqual((c["r429"], c["inflight_429"], c["r418"], c["bans"], c["kind"]), (3, 2, 1, 1, "fixed"))
        # fixed windows: the count resets at the boundary, not a window after each admission
        lim.configure({"limit": 2, "window": 10.0, "kind": "fixed", "used_header": None})
        now[0] = 119.0
        self.assertEqual([lim.check("/x", 1)[0] for _ in range(3)], [0, 0, 429])
        now[0] = 120.0
        self.assertEqual(lim.check("/x", 1)[0], 0)
        # no Retry-After: "none", and by default on GeckoTerminal routes; the pause still holds
        lim.configure({"limit": 1, "window": 60.0, "ban": 30.0, "prefix": "/"})
        self.assertEqual(lim.check("/api/v2/networks", 1)[0], 0)
        st, hdrs, _ = lim.check("/api/v2/networks", 1)
        self.assertEqual((st, hdrs), (429, [("X-Used-Weight", "1")]))
        lim.delivered()
        now[0] = 121.0
        self.assertEqual(lim.check("/api/v2/networks", 1, arrived=121.0)[0], 418, "inside the unannounced pause")
        lim.configure({"limit": 1, "window": 60.0, "retry_after": "none", "used_header": None})
        lim.check("/echo", 1)
        self.assertEqual(lim.check("/echo", 1)[:2], (429, []))
        lim.configure({"limit": 1, "window": 60.0, "retry_after": "computed", "used_header": None})
        lim.check("/api/v2/x", 1)
        self.assertEqual(lim.check("/api/v2/x", 1)[:2], (429, [("Retry-After", "60")]))
        for bad in ({"limit": 1, "kind": "tumbling"}, {"limit": 1, "retry_after": "never"}):
            self.assertRaises(ValueError, lim.configure, bad)

    # ---- plain routes

    def test_echo(self):
        status, _, body = self.get_json("/echo?x=1&y=%C3%A9")
        self.assertEqual((status, body["method"], body["query"]), (200, "GET", {"x": "1", "y": "é"}))
        status, _, raw = self.call("PUT", "/echo", b'{"k":[1,2]}', headers={"Content-Type": "application/json"})
        body = json.loads(raw)
        self.assertEqual((body["method"], body["body"], body["headers"]["content-type"]),
                         ("PUT", '{"k":[1,2]}', "application/json"))

    def test_static_and_items(self):
        status, hdrs, body = self.get_json("/static/hello.json")
        self.assertEqual((status, hdrs["content-type"], body), (200, "application/json", {"hello": "world", "n": 42}))
        status, _, body = self.get_json("/static/nope.json")
        self.assertEqual((status, body), (404, {"error": "not found", "path": "/static/nope.json"}))
        self.assertEqual(self.call("GET", "/static/../binance/gen_klines.py")[0], 404)
        url, ids = "/api/items?page=1", []
        while url:
            status, _, page = self.get_json(url)
            self.assertEqual(status, 200)
            ids += [i["id"] for i in page["items"]]
            url = page["next"]
        self.assertEqual(len(ids), 15)
        self.assertEqual(self.call("GET", "/api/items?page=4")[0], 404)


class LifecycleTest(unittest.TestCase):
    def test_port_file_and_stdin_eof(self):
        with tempfile.TemporaryDirectory() as d:
            pf = os.path.join(d, "port")
            proc, port = start_mock("--port-file", pf, "--exit-on-stdin-eof")
            try:
                with open(pf) as f:
                    self.assertEqual(f.read().strip(), str(port))
                self.assertEqual(sorted(os.listdir(d)), ["port"])           # no tmp left over
                proc.stdin.close()
                self.assertEqual(proc.wait(5), 0)
            finally:
                if proc.poll() is None:
                    proc.kill()
                proc.stdout.close()

    def test_sigterm(self):
        proc, _ = start_mock()
        proc.send_signal(signal.SIGTERM)
        self.assertEqual(proc.wait(5), 0)
        proc.stdin.close()
        proc.stdout.close()


if __name__ == "__main__":
    unittest.main(verbosity=1)
