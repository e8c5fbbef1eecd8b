"""End to end: the GeckoTerminal scripts (scripts/geckoterminal/) against the mock's /api/v2 routes.

A fresh daemon fills the database with exactly the bars the source has for the history window
(every interval a bar or known-empty), pool metadata, snapshots with "NaN"/null as NULL, trades
above the floor; a second run fetches no history again. A 429 in the middle of a backfill and a
killed backfill both end with every bar exactly once. Watchlist edits apply within seconds; a pool
that disappears is marked gone with its data kept. All under the mock's strict rate limiter."""
import json
import os
import pty
import signal
import subprocess
import time

import harness

CBRL = "7bqJG2ZdMKbEkgSmfuqNVBvqEvWavgL8UEo33ZqdL3NP"
JUAN = "7SWbVXmn2Ar8CqAdVZfQmZcCGmnChRp2JTfuEzyBL17V"
TWIN = "7SWbVXmn2Ar8CqAdVZfQmZcCGmnChRp2JTfuEzybL17V"      # differs from JUAN in one letter's case
TROLL = "4w2cysotX6czaUGmmWg13hDpY4QEMG2CzeKYEQyK9Ama"
TF = {"1m": ("minute", 1, 60), "5m": ("minute", 5, 300), "15m": ("minute", 15, 900),
      "1h": ("hour", 1, 3600), "4h": ("hour", 4, 14400), "12h": ("hour", 12, 43200),
      "1d": ("day", 1, 86400)}
SETTLE = 180


def history(request):
    """A history page: 1000 bars (the calls that bring a series up to the present ask for fewer)."""
    return "/ohlcv/" in request["path"] and request["query"].get("limit") == "1000"
HEADER = "tokenSymbol,tokenName,chain,dex,poolAddress,networkAddress\n"
ROWS = {
    CBRL: '"CBRL","Cracker Barrel Old Country Store","SOL","PumpSwap","%s","5LKHMd2rMSRaG9y4iHwSLRtrJ3dCrJ2CytvBeak8pump"\n' % CBRL,
    JUAN: '"JUAN","JUAN","SOL","Heaven","%s","5efQfRqBwYDob34CdeYyxnYAhPLKk4Y1Dy3FFNV2C777"\n' % JUAN,
    TWIN: '"JUAN","Juan, ""El Segundo""","SOL","Heaven","%s","JuANz4Ec8Qe1SGk9oTQHh6uZ9yV2MHpfN4b8SnX7C777"\n' % TWIN,
    TROLL: '"TROLL","TROLL","SOL","PumpSwap","%s","5UUH9RTDiSpq6HKS6bp4NdU9PNJpXRXuiw6ShBTBhgH2"\n' % TROLL,
}


class Gecko(harness.Case):
    def setUp(self):
        super().setUp()
        self.limit()

    def limit(self):
        """The strict limiter on /api/v2: 20 per second, 429 then a 418 ban when ignored."""
        self.mock.call("POST", "/_mock/limiter", {"limit": 20, "window": 1, "ban": 30, "prefix": "/api/v2"})

    def config(self, pools, timeframes=None, days=1, schedules=None, **extra):
        self.watchlist(pools)
        src = {"base_url": self.mock.url + "/api/v2", "history_days": days, "refresh_min": 60}
        if timeframes:
            src["timeframes"] = timeframes
        src.update(extra)
        cfg = {"database": {"path": "data/candled.db"}, "log": {"level": "info"},
               "runtime": {"shutdown_grace": 2, "min_every": 0.1},
               "paths": {"scripts": os.path.join(harness.ARGS.source, "scripts")},
               "scripts": {"binance.spot": {"enabled": False}},
               "sources": {"geckoterminal": src},
               # the mock limits 20 per second: the budget leaves a 10% margin for loopback jitter
               "budgets": {"geckoterminal": {"windows": [{"per": "1s", "limit": 20}], "reserve": 0.1,
                                             "backoff": {"base": 0.5, "cap": 2}}}}
        if schedules:
            cfg["schedules"] = schedules
        return self.write_config(cfg)

    def watchlist(self, pools, extra=""):
        path = os.path.join(self.dir, "watchlist.csv")
        with open(path + ".tmp", "w") as f:
            f.write(HEADER + "".join(ROWS[p] for p in pools) + extra)
        os.replace(path + ".tmp", path)
        return path

    # ---- what the source has

    def source_bars(self, addr, tf, lo, hi):
        """{ts: (o, h, l, c, v)} of the mock for lo <= ts <= hi, by paging like a client would."""
        self.limiter_ok()                      # what candled did; the checks below are not limited
        self.mock.call("DELETE", "/_mock/limiter")
        seg, agg, step = TF[tf]
        out, before = {}, hi + step
        while before > lo:
            q = "aggregate=%d&limit=1000&before_timestamp=%d" % (agg, before)
            doc = self.mock.call("GET", "/api/v2/networks/solana/pools/%s/ohlcv/%s?%s" % (addr, seg, q))
            rows = doc["data"]["attributes"]["ohlcv_list"]
            for r in rows:
                if lo <= r[0] <= hi:
                    out[r[0]] = tuple(r[1:])
            if len(rows) < 1000:
                break
            before = rows[-1][0]
        return out

    def stored_bars(self, addr, tf):
        rows = self.query("SELECT ts, open, high, low, close, volume FROM candles WHERE source = 'geckoterminal'"
                          " AND instrument = ? AND timeframe = ? ORDER BY ts", "solana_" + addr, tf)
        return {r[0]: tuple(r[1:]) for r in rows}

    def empties(self, addr, tf):
        out = set()
        step = TF[tf][2]
        for a, b in self.query("SELECT start, stop FROM empty_intervals WHERE instrument = ? AND timeframe = ?",
                               "solana_" + addr, tf):
            out.update(range(a, b + 1, step))
        return out

    def assertSeries(self, addr, tf, stopped):
        """Exactly the source's bars from the target to the newest stored one; every interval a
        bar or known-empty (but the last SETTLE seconds); no forming bar."""
        step = TF[tf][2]
        (target, complete, first_ts), = self.query(
            "SELECT target, complete, first_ts FROM backfill WHERE instrument = ? AND timeframe = ?",
            "solana_" + addr, tf)
        self.assertEqual(complete, 1, (addr, tf))
        got = self.stored_bars(addr, tf)
        self.assertTrue(got, (addr, tf))
        hi = max(got)
        self.assertLessEqual(hi + step, stopped, "no forming bar")
        # up to the present: every bar the source has that closed SETTLE seconds before the stop is
        # stored (the newest interval may be an empty one, so hi itself can be older)
        late = self.source_bars(addr, tf, hi + step, stopped - SETTLE - step)
        self.assertFalse(late, "collected up to the present: %s %s, newest stored %d, stopped %d"
                         % (addr, tf, hi, stopped))
        want = self.source_bars(addr, tf, target, hi)
        self.assertEqual(sorted(got), sorted(want), "the bars of %s %s" % (addr, tf))
        self.assertEqual(got, want, "the values of %s %s" % (addr, tf))
        empty = self.empties(addr, tf)
        self.assertFalse(empty & set(got), "a known-empty interval has a bar")
        for ts in range(min(got), hi, step):
            if ts not in got and ts + step <= stopped - SETTLE - step:
                self.assertIn(ts, empty, "%s %s: interval %d neither stored nor known-empty" % (addr, tf, ts))

    def wait_complete(self, n_series, timeout=90):
        self.wait_for(lambda: self.query("SELECT count(*) FROM backfill WHERE complete = 1")[0][0] >= n_series
                      and self.query("SELECT count(*) FROM runs WHERE script = 'geckoterminal.backfill'"
                                     " AND status = 'ok'")[0][0] >= 1, timeout=timeout, what="backfill complete")

    def limiter_ok(self):
        lim = self.mock.call("GET", "/_mock/limiter")
        self.assertEqual((lim["r429"], lim["r418"]), (0, 0), "never a 429 from the strict limiter")
        return lim

    # ---- tests

    def test_fresh_daemon_collects_exactly_the_source_then_adds_nothing(self):
        pools = [CBRL, JUAN, TWIN]
        cfg = self.config(pools)
        p = self.start_daemon(cfg)
        self.wait_complete(3 * 7)
        self.wait_for(lambda: self.query("SELECT count(DISTINCT instrument) FROM trades")[0][0] == 3,
                      what="trades of the three pools")
        self.wait_for(lambda: self.query("SELECT count(*) FROM runs WHERE script = 'geckoterminal.top_pools'"
                                         " AND status = 'ok'")[0][0] == 1, what="top pools")
        code, err = self.stop_daemon(p)
        stopped = time.time()
        self.assertEqual(code, 0, err)
        for addr in pools:
            for tf in TF:
                self.assertSeries(addr, tf, stopped)
        # the case twins are two pools with their own names and tokens
        names = dict(self.query("SELECT instrument, symbol FROM instruments WHERE instrument IN (?, ?)",
                                "solana_" + JUAN, "solana_" + TWIN))
        self.assertEqual(len(names), 2)
        twin = self.query("SELECT t.name FROM gt_pools p JOIN gt_tokens t ON t.token = p.base_token WHERE p.pool = ?",
                          "solana_" + TWIN)
        self.assertEqual(twin, [('Juan, "El Segundo"',)])
        # dexes, top pools with their tokens, snapshots with "NaN" / null as NULL
        self.assertEqual(self.query("SELECT count(*) FROM gt_dexes")[0][0], 23)
        self.assertEqual(self.query("SELECT count(*) FROM alerts WHERE resolved IS NULL"), [(0,)])
        top = self.query("SELECT count(*) FROM gt_pools WHERE dex IN ('heaven', 'pumpswap')")[0][0]
        self.assertGreaterEqual(top, 40)
        nan = self.query("SELECT base_token_price_native, base_token_price_quote_token, fdv_usd FROM gt_pool_snapshots"
                         " WHERE pool = 'solana_GF3eEZrSBBF5aPMw3fHgLwTqGedptpAa3zkrE2fyxuvx'")
        self.assertTrue(nan)
        self.assertEqual(nan[0], (None, None, None))
        self.assertEqual(self.query("SELECT typeof(reserve_usd) FROM gt_pool_snapshots WHERE pool = ?",
                                    "solana_" + CBRL)[0], ("real",))
        dec = self.query("SELECT decimals, symbol FROM gt_tokens WHERE address = 'So11111111111111111111111111111111111111112'")
        self.assertEqual(dec, [(9, "SOL")])
        # trades: above the floor, once each
        (n, low, dup), = self.query("SELECT count(*), min(volume_usd), count(*) - count(DISTINCT trade_id) FROM trades")
        self.assertGreater(n, 0)
        self.assertGreater(low, 100)
        self.assertEqual(dup, 0)
        self.assertEqual(self.query("SELECT count(*) FROM trades t JOIN gt_trades g ON g.trade_id = t.trade_id"), [(n,)])
        self.limiter_ok()

        # a second run: no history fetched again, nothing stored twice
        self.limit()
        before_rows = self.query("SELECT count(*) FROM candles")[0][0]
        last_run = self.query("SELECT max(id) FROM runs")[0][0]

        def ran(script):
            return self.query("SELECT count(*) FROM runs WHERE script = ? AND status = 'ok' AND id > ?",
                              script, last_run)[0][0] >= 1
        self.mock.call("DELETE", "/_mock/requests")
        p = self.start_daemon(cfg)
        self.wait_for(lambda: ran("geckoterminal.backfill"), what="second backfill run")
        self.wait_for(lambda: ran("geckoterminal.ohlcv"), what="second ohlcv run")
        code, err = self.stop_daemon(p)
        self.assertEqual(code, 0, err)
        ohlcv = [r for r in self.mock.requests() if "/ohlcv/" in r["path"]]
        self.assertEqual([r for r in ohlcv if history(r)], [], "no history fetched again")
        self.assertLessEqual(len(ohlcv), 3 * 7, "at most one call per series")
        after_rows = self.query("SELECT count(*) FROM candles")[0][0]
        self.assertLessEqual(after_rows - before_rows, 3 * 4, "only bars closed since the first run")
        self.limiter_ok()

    def backfill(self, cfg, *args, timeout=120):
        return self.candled("backfill", "--config", cfg, "--source", "geckoterminal", *args, timeout=timeout)

    def test_backfill_command_survives_a_429_mid_way(self):
        cfg = self.config([CBRL], days=4)
        self.mock.fault(path="/api/v2/networks/solana/pools/%s/ohlcv/minute" % CBRL, status=429,
                        retry_after=1, after=2, times=1)
        r = self.backfill(cfg, "--pool", "solana_" + CBRL, "--timeframe", "1m", "--days", "4")
        self.assertEqual(r.returncode, 0, r.stderr + r.stdout)
        self.assertRegex(r.stdout, r"solana_%s 1m: 5\d\d\d bars stored \(5 pages, 0 from gaps\)" % CBRL)
        self.assertIn("1 timeframe(s), 0 failed", r.stdout)
        self.assertNotIn("\r", r.stderr, "no progress bar when stderr is not a terminal")
        self.assertSeries(CBRL, "1m", time.time())
        faults = self.mock.call("GET", "/_mock/faults")
        self.assertEqual(faults[0]["fired"], 1, "the 429 happened")
        # run again: nothing fetched but the pool's metadata and the fresh end
        self.mock.call("DELETE", "/_mock/requests")
        r = self.backfill(cfg, "--pool", CBRL, "--timeframe", "1m", "--days", "4")
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertEqual([q for q in self.mock.requests() if history(q)], [], "no history fetched again")

    def test_days_bounds_what_the_command_fetches(self):
        """Issue 10, item 4: --days 1 on a 1m series with history_days 5 fetches one day (it paged back
        all five before); deeper history stays the daemon's job."""
        cfg = self.config([CBRL], days=5)
        r = self.backfill(cfg, "--pool", CBRL, "--timeframe", "1m", "--days", "1")
        self.assertEqual(r.returncode, 0, r.stderr)
        ohlcv = [q for q in self.mock.requests() if "/ohlcv/" in q["path"]]
        self.assertLessEqual(len(ohlcv), 2, "1441 bars: the present and one page back")
        got = self.stored_bars(CBRL, "1m")
        self.assertGreaterEqual(min(got), time.time() - 86400 - 180)
        self.assertSeries(CBRL, "1m", time.time())

    def test_killed_backfill_resumes_without_gaps_or_duplicates(self):
        cfg = self.config([CBRL], days=7)
        # slow pages so the process is killed in the middle
        self.mock.fault(path="/api/v2/networks/solana/pools/%s/ohlcv/minute" % CBRL, delay=0.3, times=-1)
        p = subprocess.Popen([harness.ARGS.candled, "backfill", "--config", cfg, "--source", "geckoterminal",
                              "--pool", "solana_" + CBRL, "--timeframe", "1m", "--days", "7"],
                             cwd=self.dir, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        self.procs.append(p)
        self.wait_for(lambda: (self.query("SELECT pages FROM backfill WHERE timeframe = '1m'") or [(0,)])[0][0] >= 3,
                      what="three pages stored")
        p.send_signal(signal.SIGKILL)
        p.communicate()
        (pages, before), = self.query("SELECT pages, before FROM backfill WHERE timeframe = '1m'")
        self.assertLess(pages, 11)
        self.mock.call("DELETE", "/_mock/faults")
        self.mock.call("DELETE", "/_mock/requests")
        r = self.backfill(cfg, "--pool", CBRL, "--timeframe", "1m", "--days", "7")
        self.assertEqual(r.returncode, 0, r.stderr)
        first = [q for q in self.mock.requests() if history(q)][0]
        self.assertLessEqual(int(first["query"]["before_timestamp"]), before, "resumed at the cursor")
        self.assertSeries(CBRL, "1m", time.time())

    def test_gaps_are_fetched_again_and_empty_intervals_are_not(self):
        # every fifth hour empty: the window always holds known-empty intervals (the default ~3% left
        # a third of the runs with none, and nothing to check)
        self.mock.call("POST", "/_mock/gecko", {"pools": {CBRL: {"empty_every": 5}}})
        cfg = self.config([CBRL], days=2)
        r = self.backfill(cfg, "--pool", CBRL, "--timeframe", "1h")
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertGreaterEqual(len(self.empties(CBRL, "1h")), 8, "known-empty intervals to leave alone")
        bars = sorted(self.stored_bars(CBRL, "1h"))
        lost = bars[5:9]
        self.execute("DELETE FROM candles WHERE timeframe = '1h' AND ts BETWEEN ? AND ?", lost[0], lost[-1])
        self.mock.call("DELETE", "/_mock/requests")
        r = self.backfill(cfg, "--pool", CBRL, "--timeframe", "1h")
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertIn("(0 pages, 4 from gaps)", r.stdout)
        calls = [q for q in self.mock.requests() if "/ohlcv/" in q["path"]]
        # when the newest closed hour is one of the empty ones (one hour in five), nothing after it
        # proves it empty yet, so the forward pass asks for the top again: that call is above every
        # stored bar and is not the gap's
        top = [c for c in calls if int(c["query"]["before_timestamp"]) > bars[-1]]
        calls = [c for c in calls if c not in top]
        self.assertLessEqual(len(top), 1, "the top asked again at most once: %r" % [c["query"] for c in top])
        self.assertEqual(len(calls), 1, "one call for the gap, none for known-empty intervals: %r" % [c["query"] for c in calls])
        self.assertEqual(int(calls[0]["query"]["before_timestamp"]), bars[9])
        self.assertSeries(CBRL, "1h", time.time())

    def test_a_long_gap_is_filled_exactly_when_limit_counts_intervals(self):
        """A gap of more than 1000 intervals takes pages that cannot reach the bar below it: where `limit`
        counts intervals, such a page comes back short without having seen the rest of the gap, which
        must not be declared empty."""
        self.mock.call("POST", "/_mock/gecko", {"limit_counts": "intervals", "pools": {CBRL: {"empty_every": 7}}})
        cfg = self.config([CBRL], days=2, timeframes=["1m"])
        r = self.backfill(cfg, "--pool", CBRL, "--timeframe", "1m")
        self.assertEqual(r.returncode, 0, r.stderr)
        bars = sorted(self.stored_bars(CBRL, "1m"))
        lost = bars[100:1700]                      # about 1830 intervals between the bars either side
        self.execute("DELETE FROM candles WHERE timeframe = '1m' AND ts BETWEEN ? AND ?", lost[0], lost[-1])
        self.execute("DELETE FROM empty_intervals WHERE timeframe = '1m' AND start BETWEEN ? AND ?",
                     lost[0], lost[-1])
        r = self.backfill(cfg, "--pool", CBRL, "--timeframe", "1m")
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertIn("(0 pages, 1600 from gaps)", r.stdout)
        self.mock.call("POST", "/_mock/gecko", {"limit_counts": "rows"})     # source_bars pages by rows
        self.assertSeries(CBRL, "1m", time.time())

    def test_a_stale_page_never_makes_an_interval_known_empty(self):
        """The settle rule: the API may answer with a copy up to a minute old (the mock: up to three),
        so an interval younger than SETTLE that a page shows without a bar is never declared empty."""
        self.mock.call("POST", "/_mock/gecko", {"pools": {CBRL: {"empty_every": 0}}})   # no empty interval
        cfg = self.config([CBRL], days=1, timeframes=["1m"])
        stale = SETTLE - 10                          # a copy this old is still inside the settle time
        while True:
            r = self.backfill(cfg, "--pool", CBRL, "--timeframe", "1m")
            self.assertEqual(r.returncode, 0, r.stderr)
            newest = max(self.stored_bars(CBRL, "1m"))
            if time.time() - newest <= 100:          # the bar under the newest began less than `stale` ago
                break
            time.sleep(60 - time.time() % 60 + 0.5)  # the next minute: a newer bar to stand on
        self.assertEqual(self.empties(CBRL, "1m"), set())
        # lose the ten minutes below the newest bar: a hole younger than SETTLE; then every answer is
        # a copy `stale` seconds old, which has no bar yet for the newest minutes of the hole
        self.execute("DELETE FROM candles WHERE timeframe = '1m' AND ts > ? AND ts < ?", newest - 600, newest)
        self.mock.call("POST", "/_mock/gecko", {"stale": stale})
        r = self.backfill(cfg, "--pool", CBRL, "--timeframe", "1m")
        self.assertEqual(r.returncode, 0, r.stderr)
        self.mock.call("POST", "/_mock/gecko", {"stale": None})
        self.assertEqual(self.empties(CBRL, "1m"), set(), "an interval with a bar was declared empty")

    def test_history_ends_exactly_whatever_limit_counts(self):
        """GeckoTerminal's `limit` may count rows or the intervals a page spans: the backfill stops at
        the pool's first interval (pool_created_at) in both cases, no earlier and no later."""
        start = int(time.time()) - 2 * 86400 - 1234
        for mode in ("intervals", "rows"):
            for suffix in ("", "-wal", "-shm"):
                if os.path.exists(self.db_path + suffix):
                    os.remove(self.db_path + suffix)
            self.mock.call("POST", "/_mock/gecko", {"limit_counts": mode,
                                                    "pools": {CBRL: {"start": start, "empty_every": 7}}})
            cfg = self.config([CBRL], days=3)
            self.mock.call("DELETE", "/_mock/requests")
            r = self.backfill(cfg, "--pool", CBRL, "--timeframe", "1m,1h")
            self.assertEqual(r.returncode, 0, r.stderr + r.stdout)
            calls = {tf: len([q for q in self.mock.requests() if "/ohlcv/%s" % TF[tf][0] in q["path"]])
                     for tf in ("1m", "1h")}
            self.mock.call("POST", "/_mock/gecko", {"limit_counts": "rows"})     # source_bars pages by rows
            for tf in ("1m", "1h"):
                step = TF[tf][2]
                self.assertSeries(CBRL, tf, time.time())
                self.assertEqual(self.query("SELECT first_ts FROM backfill WHERE timeframe = ?", tf),
                                 [(start // step * step,)], (mode, tf))
                # the source's own count: the intervals from the pool's first to the present, 1000 a page
                # (one more: the call that brings the series up to the present ends where history starts)
                pages = -(-(int(time.time()) // step - start // step + 1) // 1000)
                self.assertLessEqual(calls[tf], pages + 1, (mode, tf, calls))

    def test_watchlist_edits_apply_while_running_and_gone_pools_keep_their_data(self):
        cfg = self.config([CBRL], timeframes=["1h", "1d"])
        p = self.start_daemon(cfg)
        self.wait_complete(2)
        # add with the CLI: the daemon fetches the pool (multi) and starts collecting within seconds
        r = self.candled("watchlist", "--config", cfg, "add", TROLL, "--symbol", "TROLL", "--name", "TROLL",
                         "--dex", "PumpSwap", "--network-address", "5UUH9RTDiSpq6HKS6bp4NdU9PNJpXRXuiw6ShBTBhgH2")
        self.assertEqual(r.returncode, 0, r.stderr)
        t0 = time.time()
        self.wait_for(lambda: self.query("SELECT count(*) FROM candles WHERE instrument = ?", "solana_" + TROLL)[0][0] > 0,
                      timeout=10, what="the added pool collected")
        self.assertLess(time.time() - t0, 10)
        self.assertTrue(self.query("SELECT 1 FROM gt_pools WHERE pool = ? AND name IS NOT NULL", "solana_" + TROLL))
        multi = [q for q in self.mock.requests() if "/pools/multi/" in q["path"]]
        self.assertTrue(any(TROLL in q["path"] for q in multi))
        # a malformed row is reported with its line and skipped; the others still apply
        with open(os.path.join(self.dir, "watchlist.csv"), "a") as f:
            f.write('"BAD","Bad","SOL","PumpSwap","not-an-address!","x"\n' + ROWS[JUAN])
        self.wait_for(lambda: self.query("SELECT 1 FROM gt_watchlist WHERE pool = ? AND active = 1", "solana_" + JUAN),
                      timeout=10, what="JUAN active")
        alert = self.wait_for(lambda: self.query("SELECT message FROM alerts WHERE kind = 'watchlist_malformed'"
                                                 " AND resolved IS NULL"), timeout=10, what="malformed alert")
        self.assertIn("watchlist.csv:4:", alert[0][0])
        # list and remove with the CLI; the removed pool's data stays
        r = self.candled("watchlist", "--config", cfg, "list")
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertIn("solana_" + TROLL, r.stdout)
        self.assertIn("watchlist.csv:4:", r.stderr)
        r = self.candled("watchlist", "--config", cfg, "remove", TROLL)
        self.assertEqual(r.returncode, 0, r.stderr)
        self.wait_for(lambda: self.query("SELECT active FROM gt_watchlist WHERE pool = ?", "solana_" + TROLL) == [(0,)],
                      timeout=10, what="TROLL deactivated")
        self.assertGreater(self.query("SELECT count(*) FROM candles WHERE instrument = ?", "solana_" + TROLL)[0][0], 0)
        with open(os.path.join(self.dir, "watchlist.csv")) as f:
            text = f.read()
        self.assertNotIn(TROLL, text)
        self.assertIn("not-an-address!", text, "other lines are kept as they are")
        # a pool that disappears: marked gone, alerted, data kept, others go on
        self.mock.call("POST", "/_mock/gecko", {"pools": {CBRL: {"gone": True}}})
        self.execute("UPDATE gt_pools SET last_seen = 0 WHERE pool = ?", "solana_" + CBRL)  # refresh due
        os.utime(os.path.join(self.dir, "watchlist.csv"))
        self.wait_for(lambda: self.query("SELECT status FROM gt_pools WHERE pool = ?", "solana_" + CBRL) == [("gone",)],
                      timeout=10, what="CBRL gone")
        self.assertTrue(self.query("SELECT 1 FROM alerts WHERE kind = 'pool_missing' AND subject = ?", "solana_" + CBRL))
        self.assertGreater(self.query("SELECT count(*) FROM candles WHERE instrument = ?", "solana_" + CBRL)[0][0], 0)
        code, err = self.stop_daemon(p)
        self.assertEqual(code, 0, err)
        self.limiter_ok()

    def test_progress_bar_on_a_terminal_and_empty_intervals_when_asked(self):
        cfg = self.config([CBRL], days=2, include_empty_intervals=True)
        master, slave = pty.openpty()
        try:
            r = subprocess.run([harness.ARGS.candled, "backfill", "--config", cfg, "--source", "geckoterminal",
                                "--pool", CBRL, "--timeframe", "5m"], cwd=self.dir, stdout=subprocess.PIPE,
                               stderr=slave, timeout=60, text=True)
            os.close(slave)
            slave = None
            bar = b""
            while True:
                try:
                    chunk = os.read(master, 4096)
                except OSError:
                    break
                if not chunk:
                    break
                bar += chunk
        finally:
            if slave is not None:
                os.close(slave)
            os.close(master)
        self.assertEqual(r.returncode, 0, r.stdout)
        self.assertIn(b"\r5m   [", bar)
        self.assertIn(b"100%", bar)
        # include_empty_intervals: the source's empty bars are stored (volume 0), nothing is missing
        got = sorted(self.stored_bars(CBRL, "5m"))
        self.assertEqual(got, list(range(got[0], got[-1] + 300, 300)))
        self.assertGreater(self.query("SELECT count(*) FROM candles WHERE volume = 0")[0][0], 0)
        self.assertEqual(self.query("SELECT count(*) FROM empty_intervals"), [(0,)])

    def test_trades_rotate_fairly_when_the_budget_cannot_cover_every_pool(self):
        with open(os.path.join(harness.ARGS.source, "fixtures", "geckoterminal", "watchlist.csv")) as f:
            rows = f.read()
        cfg = self.config([CBRL], timeframes=["1d"], trades_per_run=2,
                          schedules={"geckoterminal.trades": {"every": 0.5}})
        with open(os.path.join(self.dir, "watchlist.csv"), "w") as f:
            f.write(rows)                      # the fixture: 6 pools, quoted commas, CJK names
        p = self.start_daemon(cfg)
        self.wait_for(lambda: self.query("SELECT count(*) FROM runs WHERE script = 'geckoterminal.trades'")[0][0] >= 12,
                      what="twelve trades runs")
        code, err = self.stop_daemon(p)
        self.assertEqual(code, 0, err)
        fetches = dict(self.query("SELECT pool, fetches FROM gt_trade_rotation"))
        self.assertEqual(len(fetches), 6, "every pool served")
        self.assertEqual(self.query("SELECT count(*) FROM gt_watchlist WHERE active = 1"), [(6,)])
        runs = self.query("SELECT count(*) FROM runs WHERE script = 'geckoterminal.trades' AND status = 'ok'")[0][0]
        # two pools a run (the first run may start before the watchlist is read)
        self.assertIn(sum(fetches.values()), range(2 * runs - 2, 2 * runs + 1))
        self.assertGreaterEqual(min(fetches.values()), runs // 6, "no pool starves")
        # the weighting itself (pick is pure Lua): a pool with 120 qualifying trades an hour comes
        # round about three times as often as quiet ones, and a quiet one never waits long
        r = self.candled("eval", "--config", cfg, "-", stdin="""
            local trades = require "geckoterminal.trades"
            local pools, rotation, activity = { "busy", "q1", "q2", "q3" }, {}, { busy = 120 * 24 }
            local count, last, wait = {}, {}, 0
            for t = 1, 400 do
              local p = trades.pick(pools, rotation, activity, t, 1)[1]
              count[p] = (count[p] or 0) + 1
              if last[p] then wait = math.max(wait, t - last[p]) end
              last[p], rotation[p] = t, { last_fetch = t }
            end
            print(count.busy, count.q1, count.q2, count.q3, wait)""")
        self.assertEqual(r.returncode, 0, r.stderr)
        busy, q1, q2, q3, wait = map(int, r.stdout.split())
        self.assertGreater(busy, 2.5 * max(q1, q2, q3))
        self.assertLessEqual(max(q1, q2, q3) - min(q1, q2, q3), 1)
        self.assertLessEqual(wait, 8, "a quiet pool waits at most a few rotations")
        (dup,), = self.query("SELECT count(*) - count(DISTINCT instrument || trade_id) FROM trades")
        self.assertEqual(dup, 0)
        self.limiter_ok()

    def test_a_configured_dex_the_api_does_not_list_raises_an_alert(self):
        cfg = self.config([], dexes=["heaven", "pumpswap", "no-such-dex"], top_pools_pages=2)
        p = self.start_daemon(cfg)
        self.wait_for(lambda: self.query("SELECT count(*) FROM runs WHERE script IN ('geckoterminal.dexes',"
                                         " 'geckoterminal.top_pools') AND status = 'ok'")[0][0] == 2,
                      what="dexes and top pools")
        code, err = self.stop_daemon(p)
        self.assertEqual(code, 0, err)
        alerts = self.query("SELECT kind, subject FROM alerts WHERE resolved IS NULL")
        self.assertEqual(alerts, [("dex_missing", "solana/no-such-dex")])
        self.assertEqual(self.query("SELECT dex, name FROM gt_dexes WHERE dex IN ('heaven', 'pumpswap') ORDER BY 1"),
                         [("heaven", "Heaven"), ("pumpswap", "PumpSwap")])
        # two pages of pumpswap (27 pools) and one of heaven (22: 20 + 2)
        self.assertEqual(self.query("SELECT dex, count(*) FROM gt_pools GROUP BY dex ORDER BY dex"),
                         [("heaven", 22), ("pumpswap", 27)])
        self.assertEqual(self.query("SELECT count(DISTINCT pool) FROM gt_pool_snapshots"), [(49,)])

    def test_backfill_while_a_daemon_runs_is_done_by_the_daemon(self):
        # the daemon's backfill looks for new work every second here (every minute by default)
        cfg = self.config([CBRL], timeframes=["1d"], schedules={"geckoterminal.backfill": {"every": 1}})
        p = self.start_daemon(cfg)
        self.wait_complete(1)
        r = self.candled("run", "--config", cfg, timeout=20)
        self.assertEqual(r.returncode, 1)
        self.assertIn("another daemon is running on %s" % os.path.realpath(self.db_path), r.stderr)
        # no call from the command while a daemon runs (issue 19, item 11): a pool the database knows
        # costs no lookup at all, an unknown one is looked up once, by the daemon
        lookups = lambda addr: [q for q in self.mock.requests() if q["path"] == "/api/v2/networks/solana/pools/" + addr]
        self.mock.call("DELETE", "/_mock/requests")
        r = self.backfill(cfg, "--pool", CBRL, "--timeframe", "1d", "--days", "2")
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertEqual(lookups(CBRL), [], "the command looked the pool up itself")
        r = self.backfill(cfg, "--pool", TROLL, "--timeframe", "1h,4h", "--days", "2")
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertEqual(len(lookups(TROLL)), 1)
        self.assertEqual(self.query("SELECT count(*) FROM gt_pools WHERE pool = ? AND name IS NOT NULL",
                                    "solana_" + TROLL), [(1,)])
        self.assertIn("a daemon is running on this database", r.stdout)
        self.assertRegex(r.stdout, r"solana_%s 1h: \d+ bars stored" % TROLL)
        self.assertIn("2 timeframe(s), 0 failed", r.stdout)
        code, err = self.stop_daemon(p)
        self.assertEqual(code, 0, err)
        self.assertTrue(self.query("SELECT 1 FROM runs WHERE script = 'geckoterminal.backfill' AND rows > 0"))
        for tf in ("1h", "4h"):
            self.assertSeries(TROLL, tf, time.time())

    def test_watchlist_pools_are_fetched_thirty_a_call(self):
        with open(os.path.join(harness.ARGS.source, "fixtures", "geckoterminal", "pools.json")) as f:
            catalogue = json.load(f)["data"]
        rows = "".join('"S%d","Pool %d","SOL","PumpSwap","%s",""\n' % (i, i, p["attributes"]["address"])
                       for i, p in enumerate(catalogue[:35]))
        cfg = self.config([], timeframes=["1d"], trades_per_run=1)
        self.watchlist([], extra=rows)
        p = self.start_daemon(cfg)
        self.wait_for(lambda: self.query("SELECT count(*) FROM gt_watchlist w JOIN gt_pools p USING (pool)"
                                         " WHERE w.active = 1 AND p.name IS NOT NULL")[0][0] == 35,
                      what="35 pools fetched")
        code, err = self.stop_daemon(p)
        self.assertEqual(code, 0, err)
        multi = [q["path"].rsplit("/", 1)[1].split(",") for q in self.mock.requests() if "/pools/multi/" in q["path"]]
        self.assertEqual(sorted(len(m) for m in multi), [5, 30])
        self.assertEqual(self.query("SELECT count(*) FROM instruments WHERE source = 'geckoterminal'"
                                    " AND symbol IS NOT NULL AND name IS NOT NULL")[0][0] >= 35, True)
        self.limiter_ok()

    def test_cli_errors_name_what_was_wrong(self):
        cfg = self.config([CBRL])
        r = self.backfill(cfg, "--pool", "solana_0OIl")
        self.assertEqual(r.returncode, 2, "a usage error")
        self.assertIn("--pool 'solana_0OIl' is not a solana address", r.stderr)
        r = self.backfill(cfg, "--pool", CBRL, "--timeframe", "2h")
        self.assertEqual(r.returncode, 2)
        self.assertIn("--timeframe 2h is not one of 1m 5m 15m 1h 4h 12h 1d", r.stderr)
        r = self.candled("watchlist", "--config", cfg, "frobnicate")
        self.assertEqual(r.returncode, 2)
        self.assertIn("watchlist frobnicate: unknown subcommand", r.stderr)
        r = self.candled("backfill", "--config", cfg, "--source", "nope", "--pool", CBRL)
        self.assertEqual(r.returncode, 2)
        self.assertIn("no script of source 'nope'", r.stderr)
        r = self.backfill(cfg, "--pool", "So11111111111111111111111111111111111111112")
        self.assertEqual(r.returncode, 1)
        self.assertIn("is not known to GeckoTerminal", r.stderr)
        r = self.candled("watchlist", "--config", cfg, "add", CBRL)
        self.assertEqual(r.returncode, 1)
        self.assertIn("is already on line 2", r.stderr)
        r = self.candled("watchlist", "--config", cfg, "remove", TROLL)
        self.assertIn("is not in", r.stderr)
        with open(os.path.join(self.dir, "config.lua")) as f:
            text = f.read()
        with open(os.path.join(self.dir, "config.lua"), "w") as f:
            f.write(text.replace('"history_days"', '"timeframes"] = { "2h" }, ["history_days"'))
        r = self.candled("watchlist", "--config", cfg, "list")
        self.assertIn("sources.geckoterminal.timeframes: [1] must be one of", r.stderr)
        r = self.candled("run", "--config", cfg, timeout=20)
        self.assertEqual(r.returncode, 1, "a bad source option stops the daemon")
        self.assertEqual(r.stderr.strip().splitlines()[-1],
                         "candled: %s: sources.geckoterminal.timeframes: [1] must be one of"
                         " 1m 5m 15m 1h 4h 12h 1d, not 2h" % os.path.realpath(cfg))


if __name__ == "__main__":
    harness.main()
