"""End to end: one canonical instrument (BTC/USD, 1m) from Yahoo BTC-USD (primary) and Drift
BTC-PERP (secondary), in the real daemon against the mock. Failover: the primary's breaker opens
(every call answered 500), the secondary fills the series with its rows marked as its own, and the
primary takes over again once healthy. Validation: a divergence injected into one source raises
an alert naming the bars; the API health shows in the REPL's status()."""
import json
import os
import time

import harness


class Canonical(harness.Case):
    def config(self, extra=None, validate_every=3600):
        rule = {"timeframe": "1m", "grace": 300, "failures": 2, "tolerance": 0.005,
                "sources": [{"source": "yahoo", "instrument": "BTC-USD"},
                            {"source": "drift", "instrument": "BTC-PERP"}]}
        rule.update(extra or {})
        fast = {"windows": [{"per": "1s", "limit": 50}], "backoff": {"base": 0.1, "cap": 0.5}}
        cfg = {"database": {"path": "data/candled.db"}, "log": {"level": "info"},
               "runtime": {"shutdown_grace": 2, "min_every": 0.1},
               "paths": {"scripts": os.path.join(harness.ARGS.source, "scripts")},
               "scripts": {"binance.spot": {"enabled": False}},
               "sources": {"geckoterminal": {"enabled": False},
                           "yahoo": {"base_url": self.mock.url, "tickers": ["BTC-USD"], "intervals": ["1m"],
                                     "history_days": 0.05},
                           "drift": {"base_url": self.mock.url, "markets": ["BTC-PERP"], "resolutions": ["1m"],
                                     "history_days": 0.05, "funding": False, "trades": False},
                           "canonical": {"instruments": {"BTC/USD": rule}}},
               "budgets": {"yahoo": dict(fast, retries=0, breaker={"failures": 2, "cooldown": 2}),
                           "drift": fast},
               "schedules": {"yahoo.chart": {"every": 0.5}, "drift.collect": {"every": 0.5},
                             "canonical.failover": {"every": 0.3},
                             "canonical.validate": {"every": validate_every}}}
        return self.write_config(cfg)

    def sources(self):
        return dict(self.query("SELECT source, count(*) FROM canonical_bars WHERE instrument = 'BTC/USD'"
                               " GROUP BY source"))

    def drift_bars(self):
        return self.query("SELECT count(*) FROM candles WHERE source = 'drift' AND instrument = 'BTC-PERP'"
                          " AND timeframe = '1m'")[0][0]

    def active(self):
        rows = self.query("SELECT active FROM canonical_state WHERE instrument = 'BTC/USD'")
        return rows[0][0] if rows else None

    def test_failover_when_the_primary_breaker_opens_and_back(self):
        p = self.start_daemon(self.config())
        self.wait_for(lambda: self.active() == "yahoo" and self.sources().get("yahoo", 0) > 60
                      and self.drift_bars() > 60, what="yahoo fills, drift has collected")
        self.assertNotIn("drift", self.sources())
        # the primary fails (every call answers 500) and never delivered its newest minutes (as if
        # it had failed a minute ago: the test does not wait for the next minute to close, when it
        # would be asked again). They start at the newest minute drift has: drift has no bar for a
        # minute without fills (1 in 20, a hash of the minute), and one of those cannot be filled.
        self.mock.fault(path="/v8/finance/chart/BTC-USD", status=500, times=-1)
        # a yahoo run started before the fault (at a minute's close) may still store its answer:
        # the rows are deleted after it ended, or that minute would not be asked again until the next
        before = self.query("SELECT coalesce(max(id), 0) FROM runs WHERE script = 'yahoo.chart'")[0][0]
        self.wait_for(lambda: not self.query("SELECT 1 FROM runs WHERE script = 'yahoo.chart' AND id <= ?"
                                             " AND status = 'running'", before), what="the yahoo run in flight")
        newest = self.query("SELECT max(y.ts) FROM candles y JOIN candles d ON d.source = 'drift'"
                            " AND d.instrument = 'BTC-PERP' AND d.timeframe = '1m' AND d.ts = y.ts"
                            " WHERE y.source = 'yahoo'")[0][0]
        self.execute("DELETE FROM candles WHERE source = 'yahoo' AND ts >= ?", newest)
        self.execute("DELETE FROM canonical_bars WHERE ts >= ?", newest)
        failed_at = time.time()
        self.wait_for(lambda: self.active() == "drift", what="failover to drift")
        delay = time.time() - failed_at
        self.wait_for(lambda: self.sources().get("drift", 0) >= 1, what="drift rows")
        rows = self.query("SELECT ts, source, source_instrument, rank FROM canonical_bars WHERE source = 'drift'")
        self.assertTrue(all(r[2] == "BTC-PERP" and r[3] == 2 for r in rows), rows)
        self.assertIn(newest, [r[0] for r in rows])
        # drift fills only what yahoo lacks (its deleted newest minute, a minute it had all-null)
        yahoo = {r[0] for r in self.query("SELECT ts FROM candles WHERE source = 'yahoo'")}
        self.assertFalse([r for r in rows if r[0] in yahoo], rows)
        event = self.query("SELECT from_source, to_source, reason FROM canonical_events ORDER BY ts DESC LIMIT 1")[0]
        self.assertEqual(event[:2], ("yahoo", "drift"))
        self.assertTrue("breaker open" in event[2] or "failing" in event[2], event)
        self.assertTrue(self.query("SELECT 1 FROM alerts WHERE kind = 'failover' AND subject = 'BTC/USD'"
                                   " AND resolved IS NULL"))
        health = self.query("SELECT requests > ok, last_code FROM source_health WHERE source = 'yahoo'")[0]
        self.assertEqual(health[0], 1)
        # healthy again: yahoo fetches its missing minutes and takes them over
        self.mock.call("DELETE", "/_mock/faults")
        self.wait_for(lambda: self.active() == "yahoo", timeout=30, what="yahoo back")
        self.wait_for(lambda: not self.query(
            "SELECT 1 FROM canonical_bars b JOIN candles c ON c.source = 'yahoo' AND c.instrument = 'BTC-USD'"
            " AND c.timeframe = '1m' AND c.ts = b.ts WHERE b.instrument = 'BTC/USD' AND b.source <> 'yahoo'"),
            what="yahoo's bars replace drift's")
        self.assertFalse(self.query("SELECT 1 FROM alerts WHERE kind = 'failover' AND resolved IS NULL"))
        out = self.candled("repl", "--config", os.path.join(self.dir, "config.lua"),
                           stdin="s = status()\nfor _, r in ipairs(s) do if r.name == 'yahoo.chart' then "
                                 "print(r.health.requests > 0, r.health.last_code) end end\n")
        self.assertRegex(out.stdout, "true\t(HTTP|BREAKER_OPEN)\n", out.stderr)
        code, err = self.stop_daemon(p)
        self.assertEqual(code, 0, err[-2000:])
        self.assertIn('msg="canonical source switched"', err)
        print("\nfrom the first 500 to the switch: %.2f s (failover every 0.3 s, breaker after 2 failures)" % delay)

    def test_a_divergence_in_one_source_raises_an_alert_naming_the_bars(self):
        now = int(time.time()) // 60 * 60
        bad = [now - 40 * 60, now - 39 * 60, now - 38 * 60]
        self.mock.call("POST", "/_mock/markets", {"diverge": [{"api": "yahoo", "symbol": "BTC-USD", "from": bad[0],
                                                               "to": bad[-1], "factor": 1.03}]})
        p = self.start_daemon(self.config(validate_every=1))
        self.wait_for(lambda: self.query("SELECT 1 FROM canonical_checks WHERE bars > 40"), what="a check")
        self.wait_for(lambda: self.query("SELECT message FROM alerts WHERE kind = 'divergence'"), what="the alert")
        code, err = self.stop_daemon(p)
        self.assertEqual(code, 0, err[-2000:])
        (subject, message), = self.query("SELECT subject, message FROM alerts WHERE kind = 'divergence'")
        self.assertEqual(subject, "BTC/USD yahoo/drift")
        # the diverging bars both sources have (a Yahoo minute may be all-null: not stored)
        both = [r[0] for r in self.query("SELECT y.ts FROM candles y JOIN candles d ON d.source = 'drift'"
                                         " AND d.timeframe = '1m' AND d.ts = y.ts WHERE y.source = 'yahoo'"
                                         " AND y.timeframe = '1m' AND y.ts BETWEEN ? AND ? ORDER BY y.ts",
                                         bad[0], bad[-1])]
        self.assertTrue(both)
        for ts in both:
            self.assertIn(time.strftime("%Y-%m-%dT%H:%M:%SZ 1m", time.gmtime(ts)), message)
        self.assertIn("%d of " % len(both), message)
        worst = json.loads(self.query("SELECT worst_bars FROM canonical_checks WHERE diverging > 0"
                                      " ORDER BY ts DESC LIMIT 1")[0][0])
        self.assertEqual(sorted(w["ts"] for w in worst), both)
        self.assertTrue(all(abs(w["diff"] - 0.03) < 0.002 for w in worst))


if __name__ == "__main__":
    harness.main()
