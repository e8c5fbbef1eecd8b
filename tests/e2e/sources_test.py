"""End to end: the CoinGecko, Yahoo Finance and Drift sources (scripts/coingecko, yahoo, drift) in
the real daemon against the mock's routes (tests/mock/markets.py), which enforce the real APIs'
rules: granularity chosen by `days`, close-time stamps and a forming candle, the keyless
history window, keys per plan, a varying keyless limit with Cloudflare blocks, nulls inside
indicators.quote, range limits per interval, a browser User-Agent, newest-first candles and
case-sensitive ids everywhere."""
import json
import os
import time
import urllib.request

import harness

SECRET = "CG-s3cr3t-k3y-0123456789"


class Sources(harness.Case):
    def config(self, sources, budgets=None, schedules=None):
        cfg = {"database": {"path": "data/candled.db"}, "log": {"level": "info"},
               "runtime": {"shutdown_grace": 2, "min_every": 0.1},
               "paths": {"scripts": os.path.join(harness.ARGS.source, "scripts")},
               "scripts": {"binance.spot": {"enabled": False}},
               "sources": dict({"geckoterminal": {"enabled": False}}, **sources),
               "budgets": budgets or {},
               "schedules": schedules or {}}
        return self.write_config(cfg)

    def fast(self, name, limit=20):
        return {name: {"windows": [{"per": "1s", "limit": limit}], "backoff": {"base": 0.2, "cap": 2}}}

    def run_until(self, cfg, done, timeout=60, env=None):
        p = self.start_daemon(cfg, env=env)
        try:
            self.wait_for(done, timeout=timeout, what="the collection")
        finally:
            code, err = self.stop_daemon(p)
        self.assertEqual(code, 0, err[-2000:])
        return err

    def ran_ok(self, script):
        rows = self.query("SELECT last_status FROM collectors WHERE script = ?", script)
        return rows and rows[0][0] == "ok"

    def get(self, path, ua="Mozilla/5.0"):
        req = urllib.request.Request(self.mock.url + path, headers={"User-Agent": ua})
        with urllib.request.urlopen(req, timeout=10) as r:
            return json.loads(r.read())

    # ---- CoinGecko

    def test_coingecko_granularity_by_days_close_times_and_an_unknown_id(self):
        cfg = self.config({"coingecko": {"base_url": self.mock.url + "/api/v3", "coins": ["bitcoin", "Bitcoin"],
                                         "ohlc": ["30m", "4h"], "market_chart": ["1h", "1d"],
                                         "history_days": 120}},
                          budgets=self.fast("coingecko"), schedules={"coingecko.collect": {"every": 3600}})
        started = time.time()
        self.run_until(cfg, lambda: self.query("SELECT count(*) FROM runs WHERE script = 'coingecko.collect'"
                                               " AND status <> 'running' AND ended IS NOT NULL")[0][0] >= 1)
        stopped = time.time()
        reqs = self.mock.requests()
        ohlc = {r["query"]["days"] for r in reqs if r["path"] == "/api/v3/coins/bitcoin/ohlc"}
        self.assertEqual(ohlc, {"1", "30"}, "30m from days=1, 4h from days=30")
        self.assertFalse([r for r in reqs if "/coins/Bitcoin/" in r["path"]], "unknown ids are not called")
        alert = self.query("SELECT message FROM alerts WHERE kind = 'coin_unknown' AND subject = 'Bitcoin'")
        self.assertTrue(alert and "case-sensitive" in alert[0][0])
        for tf, step in (("30m", 1800), ("4h", 14400)):
            ts = [r[0] for r in self.query("SELECT ts FROM candles WHERE source = 'coingecko' AND instrument ="
                                           " 'bitcoin/usd' AND timeframe = ? ORDER BY ts", tf)]
            self.assertGreater(len(ts), 10, tf)
            self.assertTrue(all(b - a == step for a, b in zip(ts, ts[1:])), tf + ": one granularity")
            self.assertLessEqual(ts[-1] + step, stopped, "the forming candle is not stored")
            self.assertGreater(ts[-1] + 2 * step, started, "up to the last closed candle")
        # the stored open times are the API's close times less one bar
        doc = self.get("/api/v3/coins/bitcoin/ohlc?vs_currency=usd&days=1")
        by_close = {r[0] // 1000: r[1:] for r in doc}
        for ts, o, h, l, c in self.query("SELECT ts, open, high, low, close FROM candles WHERE source = 'coingecko'"
                                         " AND timeframe = '30m' ORDER BY ts DESC LIMIT 5"):
            self.assertEqual([o, h, l, c], by_close[ts + 1800])
        rules = dict(self.query("SELECT timeframe, granularity FROM cg_series WHERE instrument = 'bitcoin/usd'"))
        self.assertEqual(rules, {"30m": 1800, "4h": 14400, "chart_1h": 3600, "chart_1d": 86400})
        # daily market_chart points close the day before; hourly points stay in cg_market_chart only
        daily = self.query("SELECT ts, open, close, quote_volume FROM candles WHERE source = 'coingecko'"
                           " AND timeframe = '1d' ORDER BY ts")
        self.assertGreater(len(daily), 100)
        self.assertTrue(all(r[0] % 86400 == 0 and r[1] is None and r[2] > 0 and r[3] > 0 for r in daily))
        hourly = self.query("SELECT count(*) FROM cg_market_chart WHERE granularity = '1h'")[0][0]
        self.assertGreater(hourly, 24 * 80)

    def test_coingecko_key_from_the_environment_is_sent_and_never_logged(self):
        self.mock.call("POST", "/_mock/markets", {"keys": {"demo": SECRET}})
        cfg = self.config({"coingecko": {"base_url": self.mock.url + "/api/v3", "plan": "demo", "coins": ["ethereum"],
                                         "ohlc": ["4h"], "market_chart": []}},
                          budgets=self.fast("coingecko"), schedules={"coingecko.collect": {"every": 3600}})
        r = self.candled("run", "--config", cfg, env={"COINGECKO_API_KEY": ""}, timeout=20)
        self.assertEqual(r.returncode, 1)
        self.assertIn("sources.coingecko.plan: demo needs the API key in the environment variable COINGECKO_API_KEY",
                      r.stderr)
        self.assertTrue(r.stderr.strip().splitlines()[-1].startswith("candled: "), r.stderr)
        err = self.run_until(cfg, lambda: self.ran_ok("coingecko.collect"), env={"COINGECKO_API_KEY": SECRET})
        reqs = [q for q in self.mock.requests() if q["path"].startswith("/api/v3/coins/")]
        self.assertTrue(reqs)
        self.assertTrue(all(q["headers"].get("x-cg-demo-api-key") == SECRET for q in reqs))
        self.assertNotIn(SECRET, err)
        with open(self.db_path, "rb") as f:
            self.assertNotIn(SECRET.encode(), f.read())

    def test_coingecko_varying_keyless_limit_learned_without_a_block(self):
        # the mock allows 3, then 5, then 4 calls per 2 s window; the budget declares 10
        self.mock.call("POST", "/_mock/markets", {"limits": {"coingecko": {"limits": [3, 5, 4], "window": 2,
                                                                          "ban": 30}}})
        cfg = self.config({"coingecko": {"base_url": self.mock.url + "/api/v3",
                                         "coins": ["bitcoin", "ethereum", "solana"],
                                         "ohlc": ["30m", "4h"], "market_chart": ["1d"], "history_days": 30}},
                          budgets={"coingecko": {"windows": [{"per": "2s", "limit": 10}],
                                                 "backoff": {"base": 0.5, "cap": 2}, "ban": {"after_429s": 5}}},
                          schedules={"coingecko.collect": {"every": 3600}})
        self.run_until(cfg, lambda: self.ran_ok("coingecko.collect"), timeout=90)
        state = self.mock.call("GET", "/_mock/markets")["limiters"]["coingecko"]
        self.assertGreater(state["r429"], 0, "the limit was hit")
        self.assertEqual(state["blocked"], 0, "no request ignored a 429 (no Cloudflare block)")
        n = self.query("SELECT count(DISTINCT instrument || timeframe) FROM candles WHERE source = 'coingecko'")[0][0]
        self.assertEqual(n, 9, "every series stored")

    # ---- Yahoo

    def test_yahoo_nulls_sessions_daily_dates_and_range_limits(self):
        now = time.time()
        cfg = self.config({"yahoo": {"base_url": self.mock.url, "tickers": ["BTC-USD", "AAPL", "btc-usd"],
                                     "intervals": ["1m", "1d"], "history_days": 40}},
                          budgets=self.fast("yahoo"), schedules={"yahoo.chart": {"every": 3600}})
        self.run_until(cfg, lambda: self.query("SELECT count(*) FROM runs WHERE script = 'yahoo.chart'"
                                               " AND ended IS NOT NULL")[0][0] >= 1, timeout=90)
        reqs = [r for r in self.mock.requests() if r["path"].startswith("/v8/finance/chart/")]
        self.assertTrue(all(r["headers"]["user-agent"].startswith("Mozilla/") for r in reqs))
        self.assertFalse([r for r in reqs if r["status"] not in (200, 404)], "no range-limit error, no 429")
        one_min = [r for r in reqs if r["query"]["interval"] == "1m"]
        self.assertTrue(all(int(r["query"]["period2"]) - int(r["query"]["period1"]) <= 7 * 86400 for r in one_min))
        self.assertTrue(all(int(r["query"]["period1"]) >= now - 30 * 86400 for r in one_min), "1m within 30 days")
        self.assertTrue(self.query("SELECT 1 FROM alerts WHERE kind = 'ticker_unknown' AND subject = 'btc-usd'"),
                        self.query("SELECT * FROM collectors"))
        # 1m: nulls are empty intervals, a null volume is NULL, the live bar is not stored
        bars = self.query("SELECT ts, volume FROM candles WHERE source = 'yahoo' AND instrument = 'BTC-USD'"
                          " AND timeframe = '1m' ORDER BY ts")
        self.assertGreater(len(bars), 29 * 1440 * 0.9)
        self.assertTrue(any(v is None for _, v in bars) and any(v == 0 for _, v in bars))
        self.assertTrue(all(ts % 60 == 0 for ts, _ in bars))
        lo, hi = bars[0][0], bars[-1][0]
        # known-empty only where the bar that closes the empty run is older than series.SETTLE
        # (180 s) at the sync (scripts/lib/series.lua), and the sync started after `now`: a null
        # minute of the last three may stay undeclared (the last hour is compared with the source below)
        settled = max(ts for ts, _ in bars if ts <= now - 180)
        self.assertGreaterEqual(settled, hi - 5 * 60)
        empty = self.query("SELECT coalesce(sum((stop - start) / 60 + 1), 0) FROM empty_intervals"
                           " WHERE source = 'yahoo' AND instrument = 'BTC-USD' AND timeframe = '1m'"
                           " AND start > ? AND stop < ?", lo, settled)[0][0]
        self.assertEqual(len([ts for ts, _ in bars if ts <= settled]) + empty, (settled - lo) // 60 + 1,
                         "every minute a bar or known-empty")
        q = self.get("/v8/finance/chart/BTC-USD?interval=1m&period1=%d&period2=%d" % (hi - 3600, hi))
        r = q["chart"]["result"][0]
        src = {t: c for t, c in zip(r["timestamp"], r["indicators"]["quote"][0]["close"]) if c is not None}
        got = dict(self.query("SELECT ts, close FROM candles WHERE source = 'yahoo' AND instrument = 'BTC-USD'"
                              " AND timeframe = '1m' AND ts >= ?", hi - 3600))
        self.assertEqual(got, src)
        # AAPL daily: 00:00 UTC of the New York date, weekdays only, the adjusted close kept
        days = self.query("SELECT c.ts, y.local_date, y.session_ts, c.close, y.adjclose FROM candles c JOIN yh_bars y"
                          " ON y.ticker = c.instrument AND y.interval = c.timeframe AND y.ts = c.ts"
                          " WHERE c.source = 'yahoo' AND c.instrument = 'AAPL' AND c.timeframe = '1d' ORDER BY c.ts")
        self.assertGreater(len(days), 20)
        for ts, date, session, close, adj in days:
            self.assertEqual(ts % 86400, 0)
            self.assertEqual(time.strftime("%Y-%m-%d", time.gmtime(ts)), date)
            self.assertIn(session - ts, (13 * 3600 + 1800, 14 * 3600 + 1800), "09:30 New York")
            self.assertLess(time.gmtime(ts).tm_wday, 5)
        self.assertTrue(any(adj < close for _, _, _, close, adj in days), "a dividend adjusts earlier closes")
        tz = self.query("SELECT timezone FROM yh_tickers WHERE ticker = 'AAPL'")[0][0]
        self.assertEqual(tz, "America/New_York")

    # ---- Drift

    def test_drift_newest_first_candles_funding_trades_and_symbol_mapping(self):
        cfg = self.config({"drift": {"base_url": self.mock.url, "markets": ["BTC-PERP", "SOL", "btc-perp"],
                                     "resolutions": ["1h", "1d"], "history_days": 60, "trades_pages": 2}},
                          budgets=self.fast("drift"), schedules={"drift.collect": {"every": 3600}})
        stopped = None
        self.run_until(cfg, lambda: self.query("SELECT count(*) FROM runs WHERE script = 'drift.collect'"
                                               " AND ended IS NOT NULL")[0][0] >= 1)
        stopped = time.time()
        err = self.query("SELECT last_error FROM collectors WHERE script = 'drift.collect'")[0][0]
        self.assertIn("Drift lists no market 'btc-perp' (names are case-sensitive)", err)
        reqs = [r for r in self.mock.requests() if "/candles/" in r["path"]]
        self.assertTrue(all(1 <= int(r["query"]["limit"]) <= 1000 and "startTs" in r["query"] for r in reqs))
        bars = dict(self.query("SELECT ts, close FROM candles WHERE source = 'drift' AND instrument = 'BTC-PERP'"
                               " AND timeframe = '1h'"))
        self.assertGreater(len(bars), 60 * 24 * 0.9)
        hi = max(bars)
        self.assertLessEqual(hi + 3600, stopped, "the forming candle is not stored")
        doc = self.get("/market/BTC-PERP/candles/60?limit=200&startTs=%d" % hi)
        src = {r["ts"]: r["fillClose"] for r in doc["records"]}
        self.assertEqual({t: c for t, c in bars.items() if t >= min(src)}, src)
        lo = min(bars)
        empty = self.query("SELECT coalesce(sum((stop - start) / 3600 + 1), 0) FROM empty_intervals"
                           " WHERE source = 'drift' AND instrument = 'BTC-PERP' AND timeframe = '1h'"
                           " AND start > ? AND stop < ?", lo, hi)[0][0]
        self.assertEqual(len(bars) + empty, (hi - lo) // 3600 + 1, "hours without fills are known-empty")
        self.assertEqual(dict(self.query("SELECT instrument, canonical FROM canonical_map WHERE source = 'drift'")),
                         {"BTC-PERP": "BTC/USD:PERP", "ETH-PERP": "ETH/USD:PERP", "SOL-PERP": "SOL/USD:PERP",
                          "SOL": "SOL/USD"})
        f = self.query("SELECT count(*), min(oracle_twap), max(abs(funding_rate)) FROM drift_funding"
                       " WHERE market = 'BTC-PERP'")[0]
        self.assertGreater(f[0], 24 * 29)
        self.assertGreater(f[1], 30000)
        self.assertLess(f[2], 10)
        self.assertFalse(self.query("SELECT 1 FROM drift_funding WHERE market = 'SOL'"), "no funding for spot")
        t = self.query("SELECT count(*), count(DISTINCT trade_id), min(price) FROM trades WHERE source = 'drift'"
                       " AND instrument = 'BTC-PERP'")[0]
        self.assertEqual(t[0], 100, "two pages of 50")
        self.assertEqual(t[0], t[1])
        self.assertGreater(t[2], 30000)

    # ---- the README's worked example

    def test_the_readme_example_source_collects_on_the_kit(self):
        with open(os.path.join(harness.ARGS.source, "README.md")) as f:
            text = f.read()
        start = text.index("<!-- example: scripts/mexc/klines.lua")
        code = text[text.index("```lua\n", start) + 7:text.index("```\n", text.index("```lua\n", start) + 7)]
        lib = os.path.join(harness.ARGS.source, "scripts", "lib")
        scripts = {"mexc/klines.lua": code, "lib/source.lua": os.path.join(lib, "source.lua"),
                   "lib/series.lua": os.path.join(lib, "series.lua")}
        cfg = {"database": {"path": "data/candled.db"}, "runtime": {"shutdown_grace": 2, "min_every": 0.1},
               "paths": {"scripts": os.path.join(self.dir, "scripts")},
               "sources": {"mexc": {"base_url": self.mock.url, "symbols": ["BENCHBTC"], "intervals": ["1h", "5m"],
                                    "history_days": 2}},
               "schedules": {"mexc.klines": {"every": 3600}}}
        path = self.write_config(cfg, scripts=scripts)
        stopped = self.run_until(path, lambda: self.ran_ok("mexc.klines")) and time.time()
        now = int(stopped)
        for tf, step in (("1h", 3600), ("5m", 300)):
            ts = [r[0] for r in self.query("SELECT ts FROM candles WHERE source = 'mexc' AND timeframe = ?"
                                           " ORDER BY ts", tf)]
            first = (now - 2 * 86400) // step * step
            self.assertEqual(ts, list(range(first, ts[-1] + 1, step)), tf)
            self.assertGreaterEqual(ts[-1], now // step * step - 2 * step, tf + ": up to the last closed bar")
        self.assertEqual(self.query("SELECT requests, ok FROM source_health WHERE source = 'mexc'")[0], (2, 2),
                         "one call a series: each fits in 1000 bars")
        cfg["sources"]["mexc"]["intervals"] = ["2h"]
        path = self.write_config(cfg)
        r = self.candled("run", "--config", path, timeout=20)
        self.assertEqual(r.returncode, 1)
        self.assertIn("sources.mexc.intervals: [1] must be one of 1m 5m 1h 1d, not 2h", r.stderr)


if __name__ == "__main__":
    harness.main()
