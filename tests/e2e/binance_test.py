"""End to end: Binance spot, USDT-M and COIN-M (scripts/binance/, scripts/lib/binance.lua) in the real
binary against the mock's live Binance mode (tests/mock/binance.py): klines relative to the mock's
clock with a forming last bar, a strict limiter per market (weights, fixed windows, 429 then 418),
exchangeInfo with lifecycle changes, long/short ratios."""
import json
import os
import time

import harness


class Binance(harness.Case):
    def setUp(self):
        super().setUp()
        self.mock.call("POST", "/_mock/binance", {"live": True})

    def config(self, spot=None, usdm=None, coinm=None, budgets=None, schedules=None):
        url = self.mock.url
        off = {"enabled": False}
        cfg = {"database": {"path": "data/candled.db"}, "log": {"level": "warn"},
               "runtime": {"shutdown_grace": 2, "min_every": 0.1},
               "paths": {"scripts": os.path.join(harness.ARGS.source, "scripts")},
               "sources": {"geckoterminal": off, "coingecko": off, "yahoo": off, "drift": off,
                           "binance_spot": dict({"base_url": url}, **(spot or off)),
                           "binance_usdm": dict({"base_url": url}, **(usdm or off)),
                           "binance_coinm": dict({"base_url": url}, **(coinm or off))},
               "budgets": budgets or {}, "schedules": schedules or {}}
        return self.write_config(cfg)

    def eval(self, cfg, code, timeout=60):
        r = self.candled("eval", "--config", cfg, "-", stdin="local B = require 'lib.binance'\n" + code,
                         timeout=timeout)
        self.assertEqual(r.returncode, 0, r.stdout + r.stderr)
        return r.stdout

    def state(self):
        return self.mock.call("GET", "/_mock/binance")

    def bar(self, market, symbol, interval, open_s):
        return self.mock.call("GET", "/_mock/binance/bar?market=%s&symbol=%s&interval=%s&open=%d" % (
            market, symbol, interval, open_s * 1000))

    def klines_requests(self, path):
        return [r for r in self.mock.requests(path) if r["status"] == 200]

    # ---- symbols

    def test_lifecycle_across_an_exchange_info_change(self):
        cfg = self.config(spot={"quote_assets": ["USDT"], "intervals": ["1h"], "history_days": 1})
        self.eval(cfg, "assert(B.collect(B.options('spot')))")
        first = dict(self.query("SELECT symbol, first_seen FROM binance_symbols WHERE market = 'spot'"))
        self.assertEqual(sorted(first), ["BCCBTC", "BTCUSDT", "ETHUSDT", "NKNUSDT"])
        self.assertEqual(self.query("SELECT DISTINCT instrument FROM candles ORDER BY 1"),
                         [("BTCUSDT",), ("ETHUSDT",), ("NKNUSDT",)], "quoted in USDT and TRADING")
        seen_until = self.query("SELECT max(ts) FROM binance_symbol_events")[0][0]
        time.sleep(1.1)
        self.mock.call("POST", "/_mock/binance", {
            "status": {"spot": {"BCCBTC": "TRADING", "ETHUSDT": "BREAK"}}, "delist": {"spot": ["NKNUSDT"]},
            "add": {"spot": [{"symbol": "NEWUSDT", "baseAsset": "NEW", "quoteAsset": "USDT"}]}})
        changed = time.time()
        self.eval(cfg, "assert(B.refresh(B.options('spot')))")
        rows = {r[0]: r[1:] for r in self.query(
            "SELECT symbol, status, first_seen, status_since, delisted_at, canonical FROM binance_symbols")}
        self.assertEqual(rows["BTCUSDT"][:2], ("TRADING", first["BTCUSDT"]), "first seen kept")
        self.assertEqual(rows["ETHUSDT"][0], "BREAK")
        self.assertGreaterEqual(rows["ETHUSDT"][2], int(changed) - 1, "the status change has its time")
        self.assertIsNotNone(rows["NKNUSDT"][3], "delisted: kept, with the time")
        self.assertGreaterEqual(rows["NEWUSDT"][1], int(changed) - 1)
        self.assertEqual(rows["NEWUSDT"][4], "NEW/USDT")
        events = self.query("SELECT symbol, status_from, status_to FROM binance_symbol_events WHERE ts > ? "
                            "ORDER BY symbol", seen_until)
        self.assertEqual(events, [("BCCBTC", "BREAK", "TRADING"), ("ETHUSDT", "TRADING", "BREAK"),
                                  ("NEWUSDT", None, "TRADING"), ("NKNUSDT", "TRADING", "DELISTED")])
        self.assertEqual(self.query("SELECT status FROM instruments WHERE source = 'binance_spot' AND "
                                    "instrument = 'NKNUSDT'"), [("DELISTED",)])
        self.assertEqual(self.query("SELECT canonical FROM canonical_map WHERE source = 'binance_spot' AND "
                                    "instrument = 'NEWUSDT'"), [("NEW/USDT",)])
        out = self.eval(cfg, "for _, r in ipairs(B.selected(B.options('spot'))) do print(r.symbol) end")
        self.assertEqual(out.split(), ["BTCUSDT", "NEWUSDT"], "ETHUSDT is in BREAK, NKNUSDT delisted")
        # the canonical ids of every market
        cfg = self.config(usdm={}, coinm={})
        self.eval(cfg, "assert(B.refresh(B.options('usdm'))) assert(B.refresh(B.options('coinm')))")
        self.assertEqual(dict(self.query("SELECT symbol, canonical FROM binance_symbols WHERE market <> 'spot'")), {
            "BTCUSDT": "BTC/USDT:PERP", "SUSHIUSDT": "SUSHI/USDT:PERP", "BTCUSDT_210924": "BTC/USDT:210924",
            "BTCSTUSDT": "BTCST/USDT:PERP", "BTCUSD_PERP": "BTC/USD:PERP", "BTCUSD_210924": "BTC/USD:210924",
            "BTCUSD_211231": "BTC/USD:211231", "ETHUSD_PERP": "ETH/USD:PERP"})

    # ---- klines

    def test_pagination_weights_and_coinm_volumes_per_market(self):
        cfg = self.config(spot={"symbols": ["BTCUSDT"], "intervals": ["1m"], "history_days": 2},
                          usdm={"symbols": ["BTCUSDT"], "intervals": ["1m"], "history_days": 2},
                          coinm={"symbols": ["BTCUSD_PERP"], "intervals": ["1m"], "history_days": 2})
        self.eval(cfg, "for _, m in ipairs{'spot','usdm','coinm'} do assert(B.collect(B.options(m))) end")
        st = self.state()["markets"]
        for market, path, page, weight in (("spot", "/api/v3/klines", 1000, lambda n: 2),
                                           ("usdm", "/fapi/v1/klines", 1500,
                                            lambda n: 1 if n < 100 else 2 if n < 500 else 5 if n <= 1000 else 10),
                                           ("coinm", "/dapi/v1/klines", 1500, None)):
            reqs = self.klines_requests(path)
            limits = [int(r["query"]["limit"]) for r in reqs]
            self.assertEqual(limits[0], page, market)
            self.assertEqual(sum(limits), 2880, market + ": 2 days of 1m in full pages, the rest in one")
            self.assertEqual(len(limits), -(-2880 // page), market)
            w = weight or (lambda n: 1 if n < 100 else 2 if n < 500 else 5 if n <= 1000 else 10)
            info = 20 if market == "spot" else 1
            self.assertEqual(st[market]["admitted_weight"], sum(w(n) for n in limits) + info,
                             market + ": the weights the server counted")
            n, lo, hi = self.query("SELECT count(*), min(ts), max(ts) FROM candles WHERE source = ?",
                                   "binance_" + market)[0]
            self.assertEqual((n, hi - lo), (2880, 2879 * 60), market)
        # COIN-M: volume = base asset (coins), quote_volume = contracts x contractSize (USD)
        ts, o, c, vol, qv, trades = self.query("SELECT ts, open, close, volume, quote_volume, trades FROM candles "
                                               "WHERE source = 'binance_coinm' ORDER BY ts DESC LIMIT 1")[0]
        k = self.bar("coinm", "BTCUSD_PERP", "1m", ts)
        self.assertEqual((o, c, vol, qv, trades), (float(k[1]), float(k[4]), float(k[7]), int(k[5]) * 100.0, k[8]))
        k = self.bar("spot", "BTCUSDT", "1m", ts)
        row = self.query("SELECT open, high, low, close, volume, quote_volume, trades FROM candles WHERE source = "
                         "'binance_spot' AND ts = ?", ts)[0]
        self.assertEqual(row, (float(k[1]), float(k[2]), float(k[3]), float(k[4]), float(k[5]), float(k[7]), k[8]))

    def test_concurrent_series_never_exceed_the_budget(self):
        # the limit comes from exchangeInfo: 60 weight per 1-second window, enforced by the mock
        self.mock.call("POST", "/_mock/binance", {"window": 1, "limits": {"usdm": 60}, "bench": {"usdm": 8}})
        syms = ["BENCH%03dUSDT" % i for i in range(1, 9)]
        cfg = self.config(usdm={"symbols": syms, "intervals": ["1m"], "history_days": 3, "concurrency": 8})
        started = time.time()
        self.eval(cfg, "assert(B.collect(B.options('usdm')))")
        took = time.time() - started
        st = self.state()["markets"]["usdm"]
        self.assertEqual((st["r429"], st["r418"]), (0, 0), st)
        self.assertLessEqual(st["max_used"], 60)
        self.assertEqual(st["admitted_weight"], 8 * 3 * 10 + 1, "8 series x 3 pages of 1440-1500 bars")
        per_window = [w for w in st["windows"].values()]
        self.assertTrue(all(w <= 60 for w in per_window), per_window)
        self.assertGreaterEqual(took, 3.0, "241 weight at 60 a second needs at least 4 windows")
        self.assertEqual(self.query("SELECT count(DISTINCT instrument), count(*) FROM candles")[0], (8, 8 * 4320))
        budget = self.query("SELECT count(*) FROM budget_metrics WHERE budget = 'binance_usdm'")[0][0]
        self.assertGreater(budget, 0, "the requests went through the budget binance_usdm")

    def test_a_hole_is_repaired(self):
        cfg = self.config(usdm={"symbols": ["SUSHIUSDT"], "intervals": ["1m", "1h"], "history_days": 1})
        self.eval(cfg, "assert(B.collect(B.options('usdm')))")
        full = self.query("SELECT ts, open, high, low, close, volume FROM candles WHERE timeframe = '1m' ORDER BY ts")
        self.assertEqual(len(full), 1440)
        lo, hi = full[100][0], full[400][0]
        self.execute("DELETE FROM candles WHERE timeframe = '1m' AND ts BETWEEN ? AND ?", lo, hi)
        self.assertEqual(self.query("SELECT count(*) FROM candles WHERE timeframe = '1m'")[0][0], 1440 - 301)
        self.mock.call("DELETE", "/_mock/requests")
        self.eval(cfg, "assert(B.collect(B.options('usdm')))")
        self.assertEqual(self.query("SELECT count(*) FROM candles WHERE timeframe = '1m' AND ts BETWEEN ? AND ?",
                                    lo, hi)[0][0], 0, "a hole in the searched range waits for the daily search")
        self.execute("UPDATE binance_markets SET refreshed = refreshed - 86400")
        self.eval(cfg, "assert(B.collect(B.options('usdm')))")
        after = self.query("SELECT ts, open, high, low, close, volume FROM candles WHERE timeframe = '1m' AND ts <= ? "
                           "ORDER BY ts", full[-1][0])
        self.assertEqual(after, full, "the hole is fetched again, equal to what the server holds")
        gap = [r for r in self.klines_requests("/fapi/v1/klines") if r["query"]["startTime"] == str(lo * 1000)]
        self.assertEqual([g["query"]["limit"] for g in gap], ["301"], "one call for exactly the hole")

    def test_forming_bar_never_stored_even_across_the_bar_boundary(self):
        # the server's clock is 0.4 s behind ours and every answer holding a forming bar is written
        # just after that bar closed: a client that trusts its own clock, or the time it read the
        # answer, stores forming bars (with values that then change)
        self.mock.call("POST", "/_mock/binance", {"offset": -0.4,
                                                  "straddle": {"market": "spot", "times": -1, "after": 0.05}})
        cfg = self.config(spot={"symbols": ["BTCUSDT"], "intervals": ["1s"], "history_days": 0.001})
        out = self.eval(cfg, """
local db, time = require 'rt.db', require 'rt.time'
local o = B.options('spot')
local t0 = time.now()
while time.now() - t0 < 4 do
  assert(B.collect(o))
  local r = db.first("SELECT ts, open, high, low, close, volume FROM candles WHERE timeframe = '1s' ORDER BY ts DESC LIMIT 1")
  print(r.ts, r.open, r.high, r.low, r.close, r.volume)
  time.sleep(0.07)
end""", timeout=60)
        seen = [line.split("\t") for line in out.strip().splitlines()]
        self.assertGreater(len(seen), 15)
        time.sleep(1.5)                           # every bar seen has closed at the server by now
        held = [r for r in self.mock.requests("/api/v3/klines") if r["status"] == 200]
        wrong = []
        for ts, *vals in seen:
            k = self.bar("spot", "BTCUSDT", "1s", int(ts))
            if [float(v) for v in vals] != [float(k[i]) for i in (1, 2, 3, 4, 5)]:
                wrong.append((ts, vals, k[1:6]))
        self.assertEqual(wrong, [], "a bar was stored before it was final")
        stored = self.query("SELECT ts, open, high, low, close, volume FROM candles WHERE timeframe = '1s' ORDER BY ts")
        for ts, *vals in stored[-20:]:
            k = self.bar("spot", "BTCUSDT", "1s", ts)
            self.assertEqual(vals, [float(k[i]) for i in (1, 2, 3, 4, 5)], ts)
        self.assertGreaterEqual(len(held), 3, "one call a second: the newest bar read again with the new ones")

    def test_fill_stores_the_closed_bars_of_a_range_only(self):
        # what the WebSocket script calls after a reconnect: the minutes it missed, up to now
        cfg = self.config(usdm={"symbols": ["BTCUSDT"]})
        out = self.eval(cfg, """
local time = require 'rt.time'
local now = time.now()
local from = (math.floor(now / 60) - 30) * 60
print(from, assert(B.fill('usdm', 'BTCUSDT', '1m', from * 1000, (math.floor(now / 60) + 5) * 60000)), now)""")
        frm, n, now = out.split()
        frm, n, now = int(frm), int(n), float(now)
        rows = self.query("SELECT ts, open, close, volume FROM candles WHERE source = 'binance_usdm' ORDER BY ts")
        self.assertEqual(len(rows), n)
        self.assertEqual(rows[0][0], frm)
        self.assertLessEqual(rows[-1][0] + 60, now - 1, "closed before the call less the skew margin")
        self.assertGreaterEqual(rows[-1][0] + 60, now - 61)
        self.assertEqual([r[0] for r in rows], list(range(frm, rows[-1][0] + 1, 60)))
        for ts, o, c, v in rows[-3:]:
            k = self.bar("usdm", "BTCUSDT", "1m", ts)
            self.assertEqual((o, c, v), (float(k[1]), float(k[4]), float(k[5])))

    # ---- ratios

    def test_ratios_thirty_days_by_symbol_and_by_pair_timestamps_number_or_string(self):
        cfg = self.config(usdm={"symbols": ["BTCUSDT"], "intervals": ["1d"]},
                          coinm={"symbols": ["BTCUSD_PERP", "BTCUSD_210924"], "intervals": ["1d"]})
        self.eval(cfg, "assert(B.ratios(B.options('usdm'))) assert(B.ratios(B.options('coinm')))")
        rows = self.query("SELECT market, instrument, kind, count(*), min(ts), max(ts) FROM binance_ratios "
                          "GROUP BY 1, 2, 3 ORDER BY 1, 2, 3")
        now = time.time()
        self.assertEqual([r[:3] for r in rows], [("coinm", "BTCUSD", k) for k in ("global_account", "top_account",
                                                                                   "top_position")] +
                         [("usdm", "BTCUSDT", k) for k in ("global_account", "top_account", "top_position")])
        for r in rows:
            self.assertEqual(r[5] - r[4], (r[3] - 1) * 300, "every 5 minutes, no hole")
            self.assertLess(abs(r[4] - (now - 30 * 86400)), 700, "back to the 30 days the API keeps")
            self.assertLess(now - r[5], 700)
        reqs = self.mock.requests()
        coinm = [r for r in reqs if r["path"].startswith("/futures/data/") and "pair" in r["query"]]
        self.assertEqual({r["query"]["pair"] for r in coinm}, {"BTCUSD"}, "COIN-M by pair, once for both contracts")
        usdm = [r for r in reqs if r["path"].startswith("/futures/data/") and "symbol" in r["query"]]
        self.assertEqual(self.query("SELECT sum(requests) FROM budget_metrics WHERE budget = 'binance_usdm_ratios'"),
                         [(len(usdm),)], "USDT-M ratios count in a budget of their own (1,000 in 5 minutes)")
        self.assertEqual(self.state()["markets"]["coinm"]["by_path"]["/futures/data/topLongShortPositionRatio"],
                         -(-8640 // 500))
        # the next run asks from the newest stored period only; string timestamps are accepted
        self.mock.call("DELETE", "/_mock/requests")
        newest = rows[-1][5]
        body = [{"symbol": "BTCUSDT", "longShortRatio": "1.5000", "longAccount": "0.6000", "shortAccount": "0.4000",
                 "timestamp": str((newest - 300) * 1000)}]
        self.mock.fault(path="/futures/data/topLongShortPositionRatio", status=200, body=body, times=-1,
                        match={"symbol": "BTCUSDT"})
        self.execute("DELETE FROM binance_ratios WHERE market = 'usdm' AND kind = 'top_position' AND ts > ?",
                     newest - 900)
        self.eval(cfg, "assert(B.ratios(B.options('usdm')))")
        got = self.query("SELECT long_short_ratio, long_share, short_share FROM binance_ratios WHERE market = 'usdm' "
                         "AND kind = 'top_position' AND ts = ?", newest - 300)
        self.assertEqual(got, [(1.5, 0.6, 0.4)], "a timestamp sent as a string")
        reqs = self.mock.requests("/futures/data/topLongShortPositionRatio")
        self.assertEqual(len(reqs), 1, "the series with missing periods is asked once, from the newest stored")
        self.assertEqual(int(reqs[0]["query"]["startTime"]) // 1000, newest - 600)

    # ---- options and the command

    def test_bad_options_are_rejected_at_start(self):
        for opts, want in (({"symbols": "BTCUSDT"}, "sources.binance_spot.symbols: must be a list"),
                           ({"intervals": ["1w"]}, "sources.binance_spot.intervals: [1] must be one of"),
                           ({"history_days": -1}, "sources.binance_spot.history_days: must be a number"),
                           ({"symbol": ["BTCUSDT"]}, "sources.binance_spot.symbol: unknown key"),
                           ({"clock_skew": "1s"}, "sources.binance_spot.clock_skew: must be a number")):
            r = self.candled("run", "--config", self.config(spot=opts), timeout=30)
            self.assertNotEqual(r.returncode, 0, opts)
            self.assertIn(want, r.stderr, opts)
            self.assertEqual(len([l for l in r.stderr.splitlines() if "binance_spot" in l]), 1, r.stderr)
        r = self.candled("run", "--config", self.config(usdm={"intervals": ["1s"]}), timeout=30)
        self.assertIn("sources.binance_usdm.intervals: [1] must be one of", r.stderr)
        self.assertEqual(self.mock.requests(), [], "nothing was called")

    def test_backfill_command(self):
        cfg = self.config(usdm={"symbols": ["BTCUSDT"]})
        r = self.candled("backfill", "--config", cfg, "--source", "binance_usdm", "--symbol", "BTCUSDT",
                         "--timeframe", "1m", "--days", "2")
        self.assertEqual(r.returncode, 0, r.stdout + r.stderr)
        self.assertIn("binance_usdm BTCUSDT 1m: 2880 bars new", r.stdout)
        self.assertEqual(self.query("SELECT count(*) FROM candles WHERE timeframe = '1m'")[0][0], 2880)
        r = self.candled("backfill", "--config", cfg, "--source", "binance_usdm", "--symbol", "btcusdt",
                         "--timeframe", "1m", "--days", "1")
        self.assertEqual(r.returncode, 1)
        self.assertIn("btcusdt is not listed by binance_usdm exchangeInfo", r.stderr)
        r = self.candled("backfill", "--config", cfg, "--source", "binance_usdm", "--symbol", "BTCUSDT",
                         "--timeframe", "1w")
        self.assertEqual(r.returncode, 2)

    def test_daemon_runs_the_scripts_and_takes_a_backfill_handed_to_it(self):
        cfg = self.config(usdm={"symbols": ["BTCUSDT"], "intervals": ["1h"], "history_days": 2, "ratio_days": 0.1},
                          coinm={"symbols": ["ETHUSD_PERP"], "intervals": ["1h"], "history_days": 2},
                          schedules={"binance.usdm": {"every": 1}, "binance.ratios": {"every": 1}})
        p = self.start_daemon(cfg)
        try:
            ok = lambda name: self.query("SELECT count(*) FROM runs WHERE script = ? AND status = 'ok'", name)[0][0]
            self.wait_for(lambda: ok("binance.usdm") and ok("binance.coinm") and ok("binance.ratios")
                          and ok("binance.symbols"), timeout=60, what="every Binance script")
            # a series no option selects, handed to the daemon by the command
            asked = time.time()
            r = self.candled("backfill", "--config", cfg, "--source", "binance_usdm", "--symbol", "SUSHIUSDT",
                             "--timeframe", "1m", "--days", "1", timeout=60)
            self.assertEqual(r.returncode, 0, r.stdout + r.stderr)
            self.assertIn("a daemon is running", r.stdout)
            # a day back from the command's clock (clock_skew 1 s), up to the last bar closed when the
            # daemon's run started: one bar more when a minute closed in between (the command and
            # the daemon each read the clock)
            lo, hi, n = self.query("SELECT min(ts), max(ts), count(*) FROM candles WHERE source = 'binance_usdm'"
                                   " AND instrument = 'SUSHIUSDT' AND timeframe = '1m'")[0]
            self.assertEqual(n, (hi - lo) // 60 + 1, "no hole")
            self.assertIn(lo, {(int(asked) - 1 - 86400) // 60 * 60 + 60 * k for k in range(3)})
            self.assertLessEqual(hi + 60, time.time() - 1, "closed bars only")
            self.assertIn(n, (1440, 1441), "a day of bars, or a day and the minute that closed meanwhile")
            self.assertIn("binance_usdm SUSHIUSDT 1m: %d bars new" % n, r.stdout)
        finally:
            code, err = self.stop_daemon(p)
        self.assertEqual(code, 0, err)
        self.assertEqual(self.query("SELECT count(*) FROM candles WHERE source = 'binance_coinm' AND "
                                    "instrument = 'ETHUSD_PERP' AND timeframe = '1h'")[0][0], 48)
        kinds = self.query("SELECT market, instrument, count(DISTINCT kind) FROM binance_ratios GROUP BY 1, 2")
        self.assertEqual(kinds, [("coinm", "ETHUSD", 3), ("usdm", "BTCUSDT", 3)])
        self.assertEqual(self.query("SELECT count(*) FROM runs WHERE script LIKE 'binance.%' AND status <> 'ok' "
                                    "AND status <> 'running'")[0][0], 0)


if __name__ == "__main__":
    harness.main()
