#!/usr/bin/env python3
"""Self-test for the GeckoTerminal routes of the mock (tests/mock/gecko.py), stdlib unittest.

    python3 tests/mock/test_gecko_mock.py

Starts tests/mock/mock_http.py once on an ephemeral port with the repo's fixtures/ and a fixed
mock time (--gecko-now NOW), and talks to it over real TCP with http.client. Every test starts
from POST /_mock/reset (mock time back to NOW, no pool overrides, no faults, limiter off).
"""
import csv
import http.client
import json
import math
import os
import re
import signal
import subprocess
import sys
import time
import unittest
from urllib.parse import urlsplit

from test_mock_selftest import start_mock   # same directory: one way to start the mock

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
MOCK = os.path.join(HERE, "mock_http.py")
FIXTURES = os.path.join(ROOT, "fixtures")
GT = os.path.join(FIXTURES, "geckoterminal")

NOW = 1759501234                  # 2025-10-03T14:20:34Z, inside an interval of every timeframe
API = "/api/v2/networks/solana"
CBRL = "7bqJG2ZdMKbEkgSmfuqNVBvqEvWavgL8UEo33ZqdL3NP"          # pumpswap, peer watchlist
JUAN = "7SWbVXmn2Ar8CqAdVZfQmZcCGmnChRp2JTfuEzyBL17V"          # heaven, real
JUAN_TWIN = "7SWbVXmn2Ar8CqAdVZfQmZcCGmnChRp2JTfuEzybL17V"     # heaven, differs only in case
BUSY = "AnvQMnzXbAeYRWEbhM7FcivoSxA1roFS41La1ZcFxfgb"          # heaven "Resilience", ~2.4 tx/min
SOL = "So11111111111111111111111111111111111111112"
NOT_FOUND = {"errors": [{"status": "404", "title": "Not Found"}]}
B58 = "[1-9A-HJ-NP-Za-km-z]"


def load_json(path):
    with open(path, encoding="utf-8") as f:
        return json.load(f)


POOLS = load_json(os.path.join(GT, "pools.json"))
# As served: pool_created_at is the start of the pool's OHLCV history (by default 200 days before NOW)
CREATED = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime((NOW - 200 * 86400) // 60 * 60))
BY_ADDR = {p["attributes"]["address"]: dict(p, attributes=dict(p["attributes"], pool_created_at=CREATED))
           for p in POOLS["data"]}
TOKENS = {t["id"]: t for t in POOLS["included"]}


def tx24(p):
    t = p["attributes"]["transactions"]["h24"]
    return t["buys"] + t["sells"]


class GeckoMockTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.proc, cls.port = start_mock("--gecko-now", str(NOW))

    @classmethod
    def tearDownClass(cls):
        cls.proc.send_signal(signal.SIGTERM)
        cls.proc.wait(5)
        cls.proc.stdin.close()
        cls.proc.stdout.close()

    def setUp(self):
        self.assertEqual(self.call("POST", "/_mock/reset")[0], 200)

    # ---- helpers

    def call(self, method, path, body=None, headers=None):
        c = http.client.HTTPConnection("127.0.0.1", self.port, timeout=10)
        data = json.dumps(body).encode() if body is not None else None
        c.request(method, path, body=data, headers=headers or {})
        r = c.getresponse()
        raw = r.read()
        hdrs = {k.lower(): v for k, v in r.getheaders()}
        c.close()
        return r.status, hdrs, raw

    def get(self, path, status=200):
        st, hdrs, raw = self.call("GET", path)
        self.assertEqual(st, status, raw[:300])
        return json.loads(raw), hdrs

    def control(self, body, status=200):
        st, _, raw = self.call("POST", "/_mock/gecko", body)
        self.assertEqual(st, status, raw)
        return json.loads(raw)

    def ohlcv(self, addr, tf="hour", **q):
        qs = "&".join("%s=%s" % kv for kv in q.items())
        doc, hdrs = self.get("%s/pools/%s/ohlcv/%s?%s" % (API, addr, tf, qs))
        return doc["data"]["attributes"]["ohlcv_list"], doc, hdrs

    def trades(self, addr, **q):
        qs = "&".join("%s=%s" % kv for kv in q.items())
        return self.get("%s/pools/%s/trades?%s" % (API, addr, qs))[0]["data"]

    def assertCandles(self, rows, interval):
        for r in rows:
            self.assertEqual(len(r), 6)
            self.assertIsInstance(r[0], int)
            self.assertEqual(r[0] % interval, 0)
            ts, o, h, lo, c, v = r
            self.assertTrue(all(isinstance(x, (int, float)) for x in r[1:]))
            self.assertGreaterEqual(h, max(o, c))
            self.assertLessEqual(lo, min(o, c))
            self.assertGreater(lo, 0)
            self.assertGreaterEqual(v, 0)
        ts = [r[0] for r in rows]
        self.assertEqual(ts, sorted(ts, reverse=True))          # newest first
        self.assertEqual(len(set(ts)), len(ts))
        for newer, older in zip(rows, rows[1:]):                # open = previous close
            self.assertEqual(newer[1], older[4])

    # ---- fixtures

    def test_fixture_files(self):
        self.assertEqual(len(POOLS["data"]), 49)
        dexes = {p["relationships"]["dex"]["data"]["id"] for p in POOLS["data"]}
        self.assertEqual(dexes, {"heaven", "pumpswap"})
        keys = {"base_token_price_usd", "base_token_price_native_currency", "quote_token_price_usd",
                "quote_token_price_native_currency", "base_token_price_quote_token",
                "quote_token_price_base_token", "address", "name", "pool_created_at", "fdv_usd",
                "market_cap_usd", "price_change_percentage", "transactions", "volume_usd",
                "reserve_in_usd"}
        windows = ["m5", "m15", "m30", "h1", "h6", "h24"]
        for p in POOLS["data"]:
            a = p["attributes"]
            self.assertEqual(set(a), keys, a["address"])
            self.assertEqual(p["id"], "solana_" + a["address"])
            self.assertEqual(list(a["volume_usd"]), windows)
            self.assertEqual(list(a["price_change_percentage"]), windows)
            for w in windows:
                self.assertEqual(set(a["transactions"][w]), {"buys", "sells", "buyers", "sellers"})
            for rel in ("base_token", "quote_token"):
                self.assertIn(p["relationships"][rel]["data"]["id"], TOKENS)
        flat = json.dumps(POOLS, ensure_ascii=False)
        self.assertIn('"NaN"', flat)
        self.assertIn("🔥", flat)
        self.assertTrue(any(p["attributes"]["market_cap_usd"] is None for p in POOLS["data"]))
        self.assertTrue(any(p["attributes"]["market_cap_usd"] is not None for p in POOLS["data"]))
        self.assertTrue(any(p["attributes"]["pool_created_at"] is None for p in POOLS["data"]))
        self.assertEqual({JUAN, JUAN_TWIN} & set(BY_ADDR), {JUAN, JUAN_TWIN})
        lowered = {}
        for a in BY_ADDR:
            lowered.setdefault(a.lower(), []).append(a)
        self.assertEqual([v for v in lowered.values() if len(v) > 1], [[JUAN, JUAN_TWIN]])
        with open(os.path.join(GT, "watchlist.csv"), encoding="utf-8", newline="") as f:
            rows = list(csv.reader(f))
        self.assertEqual(rows[0], ["tokenSymbol", "tokenName", "chain", "dex", "poolAddress",
                                   "networkAddress"])
        self.assertGreaterEqual(len(rows) - 1, 5)
        self.assertTrue(any("," in r[1] for r in rows[1:]))
        for sym, name, chain, dex, pool, mint in rows[1:]:
            p = BY_ADDR[pool]
            tok = TOKENS[p["relationships"]["base_token"]["data"]["id"]]["attributes"]
            self.assertEqual((sym, name, mint), (tok["symbol"], tok["name"], tok["address"]))
        gen = subprocess.run([sys.executable, os.path.join(GT, "gen_gecko.py"), "--check"],
                             capture_output=True, text=True)
        self.assertEqual(gen.returncode, 0, gen.stdout + gen.stderr)

    # ---- dexes

    def test_dexes_pages_and_links(self):
        doc, hdrs = self.get(API + "/dexes")
        self.assertTrue(hdrs["content-type"].startswith("application/json"))
        self.assertIn("max-age=30", hdrs["cache-control"])
        ids1 = [d["id"] for d in doc["data"]]
        self.assertIn("pumpswap", ids1)
        self.assertNotIn("heaven", ids1)
        self.assertEqual(doc["data"][0], {"id": "raydium", "type": "dex",
                                          "attributes": {"name": "Raydium"}})
        links = doc["links"]
        self.assertIsNone(links["prev"])
        nxt = urlsplit(links["next"])
        self.assertEqual(nxt.netloc, "127.0.0.1:%d" % self.port)     # points back at the mock
        doc2, _ = self.get(nxt.path + "?" + nxt.query)
        ids2 = [d["id"] for d in doc2["data"]]
        self.assertIn("heaven", ids2)
        self.assertFalse(set(ids1) & set(ids2))
        self.assertIsNone(doc2["links"]["next"])
        self.assertEqual(doc2["links"]["prev"], links["first"])
        self.assertEqual(self.get(API + "/dexes?page=3")[0]["data"], [])
        self.assertEqual(self.get("/api/v2/networks/eth/dexes", 404)[0], NOT_FOUND)
        self.get(API + "/dexes?page=x", 400)
        self.assertEqual(self.get("/api/v2/nope", 404)[0], NOT_FOUND)
        self.assertEqual(self.call("POST", API + "/dexes")[0], 405)

    # ---- pools

    def test_top_pools_paging_sort_include(self):
        want = sorted((p for p in BY_ADDR.values() if p["relationships"]["dex"]["data"]["id"] == "heaven"),
                      key=lambda p: (-tx24(p), p["attributes"]["address"]))
        got = []
        for page in range(1, 4):
            doc, _ = self.get(API + "/dexes/heaven/pools?page=%d" % page)
            self.assertNotIn("included", doc)
            self.assertNotIn("links", doc)
            got.append(doc["data"])
        self.assertEqual([len(g) for g in got], [20, 2, 0])
        self.assertEqual(got[0] + got[1], want)
        self.assertEqual(self.get(API + "/dexes/heaven/pools?page=10")[0], {"data": []})
        err = self.get(API + "/dexes/heaven/pools?page=11", 401)[0]
        self.assertEqual(err["errors"][0]["status"], "401")
        self.assertEqual(err["errors"][0]["code"], "10005")
        self.assertEqual(self.get(API + "/dexes/nope/pools", 404)[0], NOT_FOUND)
        self.assertEqual(self.get(API + "/dexes/raydium/pools")[0], {"data": []})
        # include: base, quote tokens and the dex, each once, first appearance order
        doc, _ = self.get(API + "/dexes/pumpswap/pools?include=base_token,quote_token,dex")
        inc = doc["included"]
        self.assertEqual(len({(i["type"], i["id"]) for i in inc}), len(inc))
        self.assertEqual(inc[1]["id"], "solana_" + SOL)
        self.assertIn({"id": "pumpswap", "type": "dex", "attributes": {"name": "PumpSwap"}}, inc)
        mints = {p["relationships"]["base_token"]["data"]["id"] for p in doc["data"]}
        self.assertEqual(mints, {i["id"] for i in inc if i["type"] == "token"} - {"solana_" + SOL})
        doc, _ = self.get(API + "/dexes/pumpswap/pools?include=dex")
        self.assertEqual([i["type"] for i in doc["included"]], ["dex"])
        vols = [float(p["attributes"]["volume_usd"]["h24"])
                for p in self.get(API + "/dexes/pumpswap/pools?sort=h24_volume_usd_desc")[0]["data"]]
        self.assertEqual(vols, sorted(vols, reverse=True))

    def test_multi_and_case_sensitivity(self):
        addrs = [JUAN_TWIN, "unknownPoolAddress111", CBRL, JUAN, CBRL, JUAN.lower()]
        doc, _ = self.get(API + "/pools/multi/" + ",".join(addrs) + "?include=base_token")
        self.assertEqual([p["attributes"]["address"] for p in doc["data"]], [JUAN_TWIN, CBRL, JUAN])
        self.assertEqual(doc["data"][0], BY_ADDR[JUAN_TWIN])
        names = {i["attributes"]["name"] for i in doc["included"]}
        self.assertEqual(names, {'Juan, "El Segundo"', "JUAN", "Cracker Barrel Old Country Store"})
        thirty = list(BY_ADDR)[:30]
        self.assertEqual(len(self.get(API + "/pools/multi/" + ",".join(thirty))[0]["data"]), 30)
        err = self.get(API + "/pools/multi/" + ",".join(list(BY_ADDR)[:31]), 400)[0]
        self.assertEqual(err["errors"][0]["status"], "400")
        self.assertEqual(self.get(API + "/pools/multi/nope")[0], {"data": []})
        self.assertEqual(self.get(API + "/pools/multi/%s%%2C%s" % (CBRL, JUAN))[0]["data"],
                         [BY_ADDR[CBRL], BY_ADDR[JUAN]])               # %2C-encoded comma

    def test_one_pool(self):
        doc, _ = self.get(API + "/pools/" + JUAN)
        self.assertEqual(doc, {"data": BY_ADDR[JUAN]})                 # an object, not a list
        doc, _ = self.get(API + "/pools/%s?include=base_token,quote_token,dex" % JUAN_TWIN)
        self.assertEqual(doc["data"]["attributes"]["address"], JUAN_TWIN)
        self.assertEqual([i["type"] for i in doc["included"]], ["token", "token", "dex"])
        self.assertEqual(self.get(API + "/pools/" + JUAN.lower(), 404)[0], NOT_FOUND)
        self.assertEqual(self.get("/api/v2/networks/eth/pools/" + JUAN, 404)[0], NOT_FOUND)

    # ---- OHLCV

    def test_ohlcv_shape_and_forming_candle(self):
        rows, doc, hdrs = self.ohlcv(CBRL)
        self.assertEqual(len(rows), 100)                               # default limit
        self.assertCandles(rows, 3600)
        self.assertEqual(rows[0][0], NOW // 3600 * 3600)               # the forming interval
        self.assertEqual(doc["data"]["type"], "ohlcv_request_response")
        self.assertEqual(doc["data"]["id"], hdrs["x-request-id"])
        self.assertEqual(doc["meta"]["base"], {"address": "5LKHMd2rMSRaG9y4iHwSLRtrJ3dCrJ2CytvBeak8pump",
                                               "name": "Cracker Barrel Old Country Store",
                                               "symbol": "CBRL", "coingecko_coin_id": None})
        self.assertEqual(doc["meta"]["quote"]["coingecko_coin_id"], "wrapped-solana")
        again, _, _ = self.ohlcv(CBRL)
        self.assertEqual(again, rows)                                  # deterministic
        for tf, agg, iv in (("minute", 1, 60), ("minute", 5, 300), ("minute", 15, 900),
                            ("hour", 4, 14400), ("hour", 12, 43200), ("day", 1, 86400)):
            r, _, _ = self.ohlcv(CBRL, tf, aggregate=agg, limit=50)
            self.assertEqual(len(r), 50)
            self.assertCandles(r, iv)
            self.assertLessEqual(r[0][0], NOW)
            self.assertGreater(r[0][0] + iv, NOW)

    def test_forming_candle_moves_with_mock_time(self):
        self.control({"pools": {CBRL: {"empty_every": 0}}})
        rows, _, _ = self.ohlcv(CBRL, "minute", limit=5)
        t0 = NOW // 60 * 60
        self.assertEqual(rows[0][0], t0)
        self.control({"now": t0 + 50})                                 # same minute, later
        later, _, _ = self.ohlcv(CBRL, "minute", limit=5)
        self.assertEqual(later[0][0], t0)
        self.assertEqual(later[1:], rows[1:])                          # closed candles unchanged
        self.assertEqual(later[0][1], rows[0][1])                      # same open
        self.assertGreater(later[0][5], rows[0][5])                    # more volume so far
        self.control({"now": t0 + 60})                                 # next minute begins
        nxt, _, _ = self.ohlcv(CBRL, "minute", limit=6)
        self.assertEqual(nxt[0][0], t0 + 60)
        self.assertEqual(nxt[1][0], t0)
        self.assertEqual(nxt[0][1], nxt[1][4])
        closed, _, _ = self.ohlcv(CBRL, "minute", limit=5, before_timestamp=t0 + 60)
        self.assertEqual(closed, nxt[1:6])                             # before is exclusive

    def test_ohlcv_validation(self):
        base = "%s/pools/%s/ohlcv/" % (API, CBRL)
        for q in ("minute?aggregate=2", "minute?aggregate=60", "hour?aggregate=2", "hour?aggregate=24",
                  "day?aggregate=7", "hour?aggregate=x", "week", "second",
                  "hour?limit=0", "hour?limit=1001", "hour?limit=x", "hour?limit=-5",
                  "hour?before_timestamp=x", "hour?before_timestamp=-1", "hour?currency=eur",
                  "hour?token=nope", "hour?token=" + CBRL):
            err = self.get(base + q, 400)[0]
            self.assertEqual(err["errors"][0]["status"], "400", q)
        self.assertEqual(len(self.ohlcv(CBRL, "minute", limit=1000)[0]), 1000)
        self.assertEqual(self.get("%s/pools/%s/ohlcv/hour" % (API, JUAN.lower()), 404)[0], NOT_FOUND)

    def page_back(self, addr, tf, agg, limit, **q):
        """Follow before_timestamp = oldest ts of the last page until a page comes back short."""
        out, before, pages = [], None, 0
        while True:
            extra = dict(q, aggregate=agg, limit=limit)
            if before is not None:
                extra["before_timestamp"] = before
            rows, _, _ = self.ohlcv(addr, tf, **extra)
            pages += 1
            self.assertLess(pages, 100)
            if rows:
                self.assertTrue(before is None or rows[0][0] < before)
                out += rows
                before = rows[-1][0]
            if len(rows) < limit:
                return out

    def test_paging_reaches_start_no_dups_gaps_only_empty(self):
        start = NOW - 3 * 86400 + 777                                  # not aligned
        self.control({"pools": {BUSY: {"start": start}}})
        iv = 900
        rows = self.page_back(BUSY, "minute", 15, 100)
        self.assertCandles(rows, iv)
        first = start // iv * iv
        self.assertEqual(rows[-1][0], first)                           # reaches the pool start
        self.assertEqual(rows[0][0], NOW // iv * iv)
        full = self.page_back(BUSY, "minute", 15, 100, include_empty_intervals="true")
        self.assertEqual([r[0] for r in full], list(range(NOW // iv * iv, first - 1, -iv)))
        empties = [r for r in full if r[5] == 0]
        self.assertTrue(empties, "the default ~3% empty intervals")
        self.assertEqual({r[0] for r in full} - {r[0] for r in rows}, {r[0] for r in empties})
        for newer, older in zip(full, full[1:]):
            if newer[5] == 0:                                          # flat at the previous close
                self.assertEqual(newer[1:5], [older[4]] * 4)
        self.assertEqual([r for r in full if r[5] != 0], rows)         # same candles otherwise
        self.assertEqual(self.ohlcv(BUSY, "minute", aggregate=15, before_timestamp=first)[0], [])

    def test_default_history_is_200_days_before_anchor(self):
        state = self.get("/_mock/gecko")[0]
        self.assertEqual(state["now"], NOW)
        self.assertEqual(state["default_start"], (NOW - 200 * 86400) // 60 * 60)
        rows = self.page_back(JUAN, "hour", 1, 1000)
        self.assertEqual(rows[-1][0], state["default_start"] // 3600 * 3600)
        self.assertGreater(len(rows), 4500)
        self.assertEqual(len({r[0] for r in rows}), len(rows))
        self.control({"now": NOW + 86400})                             # moves the anchor too
        self.assertEqual(self.get("/_mock/gecko")[0]["default_start"],
                         (NOW + 86400 - 200 * 86400) // 60 * 60)

    def test_empty_every_and_include_empty(self):
        self.control({"pools": {CBRL: {"empty_every": 4}}})
        rows, _, _ = self.ohlcv(CBRL, "hour", limit=40)
        self.assertTrue(all((r[0] // 3600) % 4 for r in rows))
        self.assertEqual(len(rows), 40)
        full, _, _ = self.ohlcv(CBRL, "hour", limit=40, include_empty_intervals="true")
        top = NOW // 3600 * 3600
        self.assertEqual([r[0] for r in full], list(range(top, top - 40 * 3600, -3600)))
        for newer, older in zip(full, full[1:]):
            if (newer[0] // 3600) % 4 == 0:
                self.assertEqual(newer[1:], [older[4]] * 4 + [0])
        self.control({"pools": {CBRL: {"empty_every": 0}}})
        rows, _, _ = self.ohlcv(CBRL, "hour", limit=300)
        self.assertEqual(rows[0][0] - rows[-1][0], 299 * 3600)         # no gaps at all
        self.control({"pools": {CBRL: {"empty_every": 1, "start": NOW - 10 * 3600}}})
        rows, _, _ = self.ohlcv(CBRL, "hour")
        self.assertEqual([r[0] for r in rows], [(NOW - 10 * 3600) // 3600 * 3600])  # first only

    def test_limit_counts_intervals_and_stale_pages(self):
        self.control({"pools": {CBRL: {"empty_every": 4}}})
        top = NOW // 3600 * 3600
        rows, _, _ = self.ohlcv(CBRL, "hour", limit=40)
        self.assertEqual(len(rows), 40)                                # rows: 40 bars, spanning 53 hours
        self.assertEqual(self.control({"limit_counts": "intervals"})["limit_counts"], "intervals")
        rows, _, _ = self.ohlcv(CBRL, "hour", limit=40)
        self.assertEqual([r[0] for r in rows], [t for t in range(top, top - 40 * 3600, -3600) if (t // 3600) % 4])
        full, _, _ = self.ohlcv(CBRL, "hour", limit=40, include_empty_intervals="true")
        self.assertEqual(len(full), 40)
        self.assertEqual(self.ohlcv(CBRL, "hour", limit=3, before_timestamp=(top // 14400) * 14400 + 3600)[0][0][0],
                         (top // 14400) * 14400 - 3600, "an empty interval spans the page, no row for it")
        self.control({"limit_counts": None, "stale": 7200, "pools": {CBRL: {"empty_every": 0}}})
        stale, _, _ = self.ohlcv(CBRL, "hour", limit=10)               # the page as it was two hours ago
        self.control({"stale": 0})
        fresh, _, _ = self.ohlcv(CBRL, "hour", limit=12)
        self.assertEqual(stale[0][0], top - 7200)
        self.assertEqual(fresh[2][0], top - 7200)
        self.assertNotEqual(stale[0][4], fresh[2][4], "then forming, its close of then")
        self.assertEqual(stale[1:], fresh[3:12])
        self.assertEqual(self.control({"stale": "x"}, 400)["ok"], False)
        self.assertEqual(self.control({"limit_counts": "pages"}, 400)["ok"], False)
        self.control({"stale": None})
        self.assertEqual(self.get(API + "/pools/" + CBRL)[0]["data"]["attributes"]["pool_created_at"], CREATED)
        self.control({"pools": {CBRL: {"start": NOW - 3 * 86400}}})
        self.assertEqual(self.get(API + "/pools/" + CBRL)[0]["data"]["attributes"]["pool_created_at"],
                         time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(NOW - 3 * 86400)))

    def test_currency_token(self):
        usd, _, _ = self.ohlcv(CBRL, "hour", limit=20)
        tok, doc, _ = self.ohlcv(CBRL, "hour", limit=20, currency="token")
        q = float(BY_ADDR[CBRL]["attributes"]["quote_token_price_usd"])
        for a, b in zip(usd, tok):
            self.assertEqual(a[0], b[0])
            for i in range(1, 5):
                self.assertAlmostEqual(a[i] / b[i], q, delta=q * 1e-9)
            self.assertEqual(a[5], b[5])                               # volume stays USD
        quote, _, _ = self.ohlcv(CBRL, "hour", limit=20, token="quote")
        self.assertTrue(all(150 < r[4] < 300 for r in quote))        # SOL ~ 212 USD
        same, _, _ = self.ohlcv(CBRL, "hour", limit=20, token=SOL)
        self.assertEqual(same, quote)

    # ---- trades

    def test_trades_shape_and_filter(self):
        data = self.trades(CBRL)
        self.assertTrue(0 < len(data) <= 300)
        keys = ["block_number", "tx_hash", "tx_from_address", "from_token_amount", "to_token_amount",
                "price_from_in_currency_token", "price_to_in_currency_token", "price_from_in_usd",
                "price_to_in_usd", "block_timestamp", "kind", "volume_in_usd", "from_token_address",
                "to_token_address"]
        base = "5LKHMd2rMSRaG9y4iHwSLRtrJ3dCrJ2CytvBeak8pump"
        last = None
        for t in data:
            a = t["attributes"]
            self.assertEqual(t["type"], "trade")
            self.assertEqual(list(a), keys)
            self.assertIsInstance(a["block_number"], int)
            for k in keys[3:9] + ["volume_in_usd"]:
                self.assertIsInstance(a[k], str)
                self.assertTrue(math.isfinite(float(a[k])) and float(a[k]) > 0, (k, a[k]))
            m = re.match(r"^solana_(\d+)_(%s+)_(\d+)_(\d+)$" % B58, t["id"])
            self.assertTrue(m, t["id"])
            self.assertEqual((int(m.group(1)), m.group(2)), (a["block_number"], a["tx_hash"]))
            ts = int(time.mktime(time.strptime(a["block_timestamp"], "%Y-%m-%dT%H:%M:%SZ"))) - time.timezone
            self.assertTrue(NOW - 86400 < ts <= NOW)
            self.assertTrue(ts < int(m.group(4)) <= ts + 30)
            self.assertTrue(last is None or ts <= last)                 # newest first
            last = ts
            if a["kind"] == "buy":
                self.assertEqual((a["from_token_address"], a["to_token_address"]), (SOL, base))
                self.assertEqual(a["price_from_in_currency_token"], "1.0")
            else:
                self.assertEqual(a["kind"], "sell")
                self.assertEqual((a["from_token_address"], a["to_token_address"]), (base, SOL))
            vol = float(a["volume_in_usd"])
            usd_in = float(a["from_token_amount"]) * float(a["price_from_in_usd"])
            self.assertAlmostEqual(usd_in, vol, delta=vol * 1e-3 + 1e-6)
        self.assertEqual(len({t["id"] for t in data}), len(data))
        big = self.trades(CBRL, trade_volume_in_usd_greater_than=100)
        self.assertEqual(len(big), 300)
        self.assertTrue(all(float(t["attributes"]["volume_in_usd"]) > 100 for t in big))
        self.assertEqual(self.trades(CBRL, trade_volume_in_usd_greater_than=1e12), [])
        err = self.get("%s/pools/%s/trades?trade_volume_in_usd_greater_than=x" % (API, CBRL), 400)[0]
        self.assertEqual(err["errors"][0]["status"], "400")
        self.get("%s/pools/%s/trades?token=nope" % (API, CBRL), 400)
        self.assertEqual(self.trades(CBRL, token="quote"), data)
        self.assertEqual(self.get("%s/pools/%s/trades" % (API, JUAN.lower()), 404)[0], NOT_FOUND)
        quiet = self.trades("2TQ8dy2tkqZMvXCRh863aUjFVXjGVu8NfJ4xpAC7fwh7",   # STUD2, 149 tx/day
                            trade_volume_in_usd_greater_than=100)
        self.assertLess(len(quiet), 300)                               # a quiet pool: 24 h < 300

    def test_trades_overlap_when_polling(self):
        first = self.trades(BUSY)
        self.assertEqual(len(first), 300)
        self.assertEqual(self.trades(BUSY), first)                     # same time: same answer
        self.control({"now": NOW + 600})
        second = self.trades(BUSY)
        ids1, ids2 = [t["id"] for t in first], [t["id"] for t in second]
        new = [i for i in ids2 if i not in set(ids1)]
        self.assertTrue(new)
        self.assertEqual(ids2[:len(new)], new)                         # new ones on top
        self.assertEqual(ids2[len(new):], ids1[:300 - len(new)])       # then the old ones

    # ---- control

    def test_gone_pools(self):
        page1 = self.get(API + "/dexes/heaven/pools")[0]["data"]
        victim = page1[3]["attributes"]["address"]
        self.control({"pools": {victim: {"gone": True}}})
        for path in ("/pools/" + victim, "/pools/%s/ohlcv/hour" % victim, "/pools/%s/trades" % victim):
            self.assertEqual(self.get(API + path, 404)[0], NOT_FOUND)
        self.assertEqual(self.get(API + "/pools/multi/%s,%s" % (victim, CBRL))[0]["data"], [BY_ADDR[CBRL]])
        now1 = self.get(API + "/dexes/heaven/pools")[0]["data"]
        self.assertNotIn(BY_ADDR[victim], now1)
        self.assertEqual(len(now1), 20)
        self.assertEqual(len(self.get(API + "/dexes/heaven/pools?page=2")[0]["data"]), 1)
        self.control({"pools": {victim: {"gone": None}}})
        self.assertEqual(self.get(API + "/pools/" + victim)[0]["data"], BY_ADDR[victim])
        self.control({"pools": {victim: {"gone": True}}})
        self.call("POST", "/_mock/reset")
        self.assertEqual(self.get(API + "/pools/" + victim)[0]["data"], BY_ADDR[victim])

    def test_now_control_and_validation(self):
        self.assertEqual(self.get("/_mock/gecko")[0]["now"], NOW)
        st = self.control({"now": None})
        self.assertIsNone(st["fixed_now"])
        self.assertAlmostEqual(st["now"], time.time(), delta=5)
        self.assertAlmostEqual(st["anchor"], time.time(), delta=5)
        rows, _, _ = self.ohlcv(CBRL, "minute", limit=2)
        self.assertAlmostEqual(rows[0][0], time.time() // 60 * 60, delta=60)
        st = self.control({"now": NOW + 5, "pools": {CBRL: {"start": NOW - 3600, "empty_every": 3}}})
        self.assertEqual((st["now"], st["pools"]), (NOW + 5, {CBRL: {"start": NOW - 3600, "empty_every": 3}}))
        for bad in ({"later": 1}, {"now": "x"}, {"now": True}, {"now": -1},
                    {"now": 1, "pools": {CBRL.lower(): {"gone": True}}},
                    {"pools": {CBRL: {"gone": 1}}}, {"pools": {CBRL: {"empty_every": -1}}},
                    {"pools": {CBRL: {"empty_every": 1.5}}}, {"pools": {CBRL: {"start": "x"}}},
                    {"pools": {CBRL: {"colour": "red"}}}, {"pools": [CBRL]}, [1]):
            self.assertFalse(self.control(bad, 400)["ok"])
        st = self.get("/_mock/gecko")[0]                               # nothing applied
        self.assertEqual((st["now"], st["pools"][CBRL]["empty_every"]), (NOW + 5, 3))
        self.assertEqual(self.call("DELETE", "/_mock/gecko")[0], 200)
        st = self.get("/_mock/gecko")[0]
        self.assertEqual((st["now"], st["pools"], st["catalogue"]), (NOW, {}, 49))

    def test_faults_log_and_limiter_apply(self):
        path = API + "/pools/" + CBRL
        st, _, raw = self.call("GET", path + "?_status=429&_retry_after=7")
        self.assertEqual(st, 429)
        self.assertEqual(json.loads(raw), {"code": 429, "msg": "injected"})
        self.assertEqual(self.call("POST", "/_mock/faults", {"path": path, "status": 503})[0], 200)
        self.assertEqual(self.call("GET", path)[0], 503)
        self.assertEqual(self.call("GET", path)[0], 200)               # times defaults to 1
        log = self.get("/_mock/requests?path=" + path)[0]
        self.assertEqual([e["status"] for e in log], [429, 503, 200])
        self.assertEqual(self.call("POST", "/_mock/limiter", {"limit": 2, "window": 30})[0], 200)
        self.assertEqual([self.call("GET", API + "/dexes")[0] for _ in range(3)], [200, 200, 429])

    def test_ohlcv_speed(self):
        t = time.time()
        for tf in ("minute", "hour", "day"):
            self.ohlcv(BUSY, tf, limit=1000, before_timestamp=NOW - 12345)
        self.assertLess(time.time() - t, 5.0)


if __name__ == "__main__":
    unittest.main(verbosity=1)
