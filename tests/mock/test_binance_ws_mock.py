#!/usr/bin/env python3
"""Self-test of tests/mock/binance_ws.py (never starts candled).

Messages have the keys and value types of the real captures (fixtures/binance/ws_kline_*), a bar's
k.x=true message equals the REST mock's closed bar, forming updates repeat the same t with x=false,
the handshake is as strict as Binance's (lowercase names, known symbols, the USDT-M /market route,
at most max_streams), unanswered pings cut the connection, a connection lives `lifetime`, a drop
cuts without a close frame.
"""
import base64
import json
import os
import socket
import struct
import subprocess
import sys
import time
import unittest
import urllib.request

HERE = os.path.dirname(os.path.abspath(__file__))
FIXTURES = os.path.join(HERE, "..", "..", "fixtures")
sys.path.insert(0, HERE)
import binance  # noqa: E402


class Client:
    """A minimal blocking WebSocket client (masked frames, as RFC 6455 requires of clients)."""

    def __init__(self, port, path, pong=True):
        self.s = socket.create_connection(("127.0.0.1", port), timeout=5)
        key = base64.b64encode(os.urandom(16)).decode()
        self.s.sendall(("GET %s HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                        "Sec-WebSocket-Key: %s\r\nSec-WebSocket-Version: 13\r\n\r\n" % (path, key)).encode())
        self.f = self.s.makefile("rb")
        self.status = int(self.f.readline().split()[1])
        while self.f.readline() not in (b"\r\n", b""):
            pass
        self.pong = pong

    def send(self, op, payload):
        mask = os.urandom(4)
        data = bytes(b ^ mask[i & 3] for i, b in enumerate(payload))
        self.s.sendall(struct.pack("!BB", 0x80 | op, 0x80 | len(payload)) + mask + data)

    def recv(self):
        """The next text message (pings answered on the way), or None when the connection ended."""
        while True:
            h = self.f.read(2)
            if len(h) < 2:
                return None
            n = h[1] & 127
            if n == 126:
                n = struct.unpack("!H", self.f.read(2))[0]
            elif n == 127:
                n = struct.unpack("!Q", self.f.read(8))[0]
            d = self.f.read(n)
            op = h[0] & 15
            if op == 9 and self.pong:
                self.send(10, d)
            elif op == 8:
                return None
            elif op == 1:
                return json.loads(d)

    def close(self):
        self.s.close()


class BinanceWsMock(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.proc = subprocess.Popen([sys.executable, os.path.join(HERE, "binance_ws.py"), "--fixtures", FIXTURES,
                                     "--exit-on-stdin-eof", "--tick", "0.05"],
                                    stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
        cls.port = int(cls.proc.stdout.readline().split()[1])
        cls.rest = binance.Binance(type("O", (), {"fixtures": FIXTURES}))

    @classmethod
    def tearDownClass(cls):
        cls.proc.stdin.close()
        cls.proc.wait(5)
        cls.proc.stdout.close()

    def setUp(self):
        self.ctl("POST", "/_mock/reset", {})

    def ctl(self, method, path, body=None):
        r = urllib.request.Request("http://127.0.0.1:%d%s" % (self.port, path),
                                   data=json.dumps(body).encode() if body is not None else None, method=method)
        return json.load(urllib.request.urlopen(r, timeout=5))

    def test_shape_and_final_bars(self):
        for market, path, stream, sym in (("spot", "/spot/stream", "btcusdt@kline_1m", "BTCUSDT"),
                                          ("usdm", "/usdm/market/stream", "sushiusdt@kline_1m", "SUSHIUSDT"),
                                          ("coinm", "/coinm/stream", "btcusd_perp@kline_1m", "BTCUSD_PERP")):
            with open(os.path.join(FIXTURES, "binance", "ws_kline_%s_combined.json" % market)) as f:
                real = json.load(f)[0]
            c = Client(self.port, "%s?streams=%s" % (path, stream))
            self.assertEqual(c.status, 101)
            finals, forming = [], {}
            t0 = time.time()
            while len(finals) < 2 and time.time() - t0 < 5:
                m = c.recv()
                self.assertEqual(list(m), list(real))
                self.assertEqual(list(m["data"]), list(real["data"]))
                self.assertEqual(list(m["data"]["k"]), list(real["data"]["k"]))
                for k, v in real["data"]["k"].items():
                    self.assertIs(type(m["data"]["k"][k]), type(v), k)
                k = m["data"]["k"]
                self.assertEqual((m["stream"], k["s"], k["i"], k["T"]), (stream, sym, "1m", k["t"] + 59999))
                if k["x"]:
                    finals.append(k)
                    self.assertGreater(m["data"]["E"], k["T"])
                else:
                    forming.setdefault(k["t"], []).append(k["c"])
            c.close()
            self.assertEqual(len(finals), 2)
            self.assertEqual(finals[1]["t"] - finals[0]["t"], 60000)
            info = {x["symbol"]: x for x in self.rest.info[market]["symbols"]}[sym]
            for k in finals:
                row = json.loads(self.rest.row(market, info, k["t"], 60000, None))
                self.assertEqual([k["o"], k["h"], k["l"], k["c"], k["v"], k["n"], k["q"]],
                                 [row[1], row[2], row[3], row[4], row[5], row[8], row[7]])
            self.assertTrue(any(len(v) > 1 for v in forming.values()), "forming bars updated")

    def test_strict_handshake(self):
        for path in ("/spot/stream?streams=BTCUSDT@kline_1m", "/spot/stream?streams=xxxusdt@kline_1m",
                     "/spot/stream?streams=btcusdt@kline_7m", "/usdm/market/stream?streams=btcusdt@kline_1s",
                     "/spot/stream?streams="):
            c = Client(self.port, path)
            self.assertEqual(c.status, 400, path)
            c.close()
        c = Client(self.port, "/usdm/stream?streams=btcusdt@kline_1m")      # the legacy route
        self.assertEqual(c.status, 404)
        c.close()
        self.ctl("POST", "/_mock/ws", {"max_streams": 2})
        c = Client(self.port, "/spot/stream?streams=btcusdt@kline_1m/ethusdt@kline_1m/nknusdt@kline_1m")
        self.assertEqual(c.status, 400)
        c.close()
        c = Client(self.port, "/spot/stream?streams=" + "/".join("bench%d@kline_1m" % i for i in range(2)))
        self.assertEqual(c.status, 101)
        c.close()

    def test_subscribe_and_request_rate(self):
        c = Client(self.port, "/spot/stream?streams=btcusdt@kline_1m")
        c.send(1, json.dumps({"method": "SUBSCRIBE", "params": ["ethusdt@kline_1m", "bench7@kline_1m"], "id": 1}).encode())
        c.send(1, json.dumps({"method": "SUBSCRIBE", "params": ["ETHUSDT@kline_1m"], "id": 2}).encode())
        c.send(1, json.dumps({"method": "LIST_SUBSCRIPTIONS", "id": 3}).encode())
        answers, streams = {}, set()
        t0 = time.time()
        while (len(answers) < 3 or len(streams) < 3) and time.time() - t0 < 5:
            m = c.recv()
            if "id" in m:
                answers[m["id"]] = m
            else:
                streams.add(m["stream"])
        self.assertEqual(answers[1], {"result": None, "id": 1})
        self.assertEqual(answers[2]["code"], 2)
        self.assertEqual(sorted(answers[3]["result"]), ["bench7@kline_1m", "btcusdt@kline_1m", "ethusdt@kline_1m"])
        self.assertEqual(streams, {"bench7@kline_1m", "btcusdt@kline_1m", "ethusdt@kline_1m"})
        for i in range(7):                                  # more than 5 requests in a second
            c.send(1, json.dumps({"method": "LIST_SUBSCRIPTIONS", "id": 10 + i}).encode())
        while c.recv() is not None:
            pass
        self.assertEqual(self.ctl("GET", "/_mock/ws")["connections"][0]["closed_by"], "rate")
        c.close()

    def test_pings_lifetime_drop(self):
        self.ctl("POST", "/_mock/ws", {"ping_every": 5, "pong_within": 10})
        quiet = Client(self.port, "/spot/stream?streams=btcusdt@kline_1m", pong=False)
        good = Client(self.port, "/spot/stream?streams=btcusdt@kline_1m")
        t0 = time.time()
        while quiet.recv() is not None and time.time() - t0 < 5:
            self.assertIsNotNone(good.recv())
        for _ in range(20):
            self.assertIsNotNone(good.recv())
        conns = self.ctl("GET", "/_mock/ws")["connections"]
        self.assertEqual(conns[0]["closed_by"], "no_pong")
        self.assertIsNone(conns[1]["closed_by"])
        self.assertGreaterEqual(conns[1]["pongs"], 1)
        self.ctl("POST", "/_mock/ws", {"drop": None})
        while good.recv() is not None:
            pass
        self.assertEqual(self.ctl("GET", "/_mock/ws")["connections"][1]["closed_by"], "drop")
        quiet.close()
        good.close()
        self.ctl("POST", "/_mock/ws", {"lifetime": 30})        # mock seconds: half a real second
        c = Client(self.port, "/spot/stream?streams=btcusdt@kline_1m")
        t0 = time.time()
        while c.recv() is not None:
            pass
        self.assertLess(time.time() - t0, 3)
        self.assertEqual(self.ctl("GET", "/_mock/ws")["connections"][-1]["closed_by"], "lifetime")
        c.close()


if __name__ == "__main__":
    unittest.main()
