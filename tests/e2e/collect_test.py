"""End to end: the daemon pages Binance klines from the mock (its fixture rows, not the live mode)
into SQLite with the real scripts/binance/spot.lua; exactly the fixture rows, nothing twice, faults
recorded and recovered."""
import json
import os
import signal

import harness

FIRST_TS = 1634943780          # open time of the first fixture kline (2021-10-22T23:03:00Z)


class Collect(harness.Case):
    def config(self, **extra):
        cfg = {
            "database": {"path": "data/candled.db"},
            "log": {"level": "info"},
            "runtime": {"shutdown_grace": 2},
            "sources": {"binance_spot": {"base_url": self.mock.url, "symbols": ["BTCUSDT"],
                                         "intervals": ["1m"], "start": "2021-10-22T23:03:00Z"}},
            "schedules": {"binance.spot": {"every": "1s"}},
            "budgets": {"binance_spot": {"windows": [{"per": "1m", "limit": 6000}], "retries": 2,
                                         "backoff": {"base": 0.05, "cap": 0.2}}},
        }
        cfg.update(extra)
        src = os.path.join(harness.ARGS.source, "scripts")
        return self.write_config(cfg, scripts={f: os.path.join(src, f) for f in (
            "binance/spot.lua", "lib/binance.lua", "lib/source.lua", "lib/series.lua")})

    def fixture(self):
        with open(os.path.join(harness.ARGS.source, "fixtures", "binance", "klines_BTCUSDT_1m.json")) as f:
            return json.load(f)

    def runs(self):
        return self.query("SELECT status, rows, error FROM runs WHERE script = 'binance.spot' ORDER BY id")

    def wait_runs(self, n, status=None):
        def done():
            rs = [r for r in self.runs() if r[0] != "running"]
            return rs if len(rs) >= n and (status is None or rs[n - 1][0] == status) else None
        return self.wait_for(done, what="%d finished runs" % n)

    def test_daemon_stores_exactly_the_fixture_rows_once(self):
        cfg = self.config()
        p = self.start_daemon(cfg)
        self.wait_runs(2)                      # the second run finds nothing new
        code, err = self.stop_daemon(p)
        self.assertEqual(code, 0, err)
        rows = self.query("SELECT ts, open, high, low, close, volume, quote_volume, trades FROM candles "
                          "WHERE source='binance_spot' AND instrument='BTCUSDT' AND timeframe='1m' ORDER BY ts")
        want = [(k[0] // 1000, float(k[1]), float(k[2]), float(k[3]), float(k[4]), float(k[5]), float(k[7]), k[8])
                for k in self.fixture()]
        self.assertEqual(len(rows), 2500)
        self.assertEqual(rows, want)
        runs = self.runs()
        self.assertEqual(runs[0][0], "ok")
        self.assertGreaterEqual(runs[0][1], 2500, "the candles and the bookkeeping")
        self.assertTrue(all(r[0] == "ok" for r in runs[1:]), runs)
        # Pages: 1000, 1000, 500 on the first run (fewer than asked: nothing more up to the
        # present, no further page); later runs read the newest bar again.
        reqs = self.mock.requests("/api/v3/klines")
        starts = [int(r["query"]["startTime"]) // 1000 for r in reqs[:3]]
        self.assertEqual(starts, [FIRST_TS, FIRST_TS + 60000, FIRST_TS + 120000])
        self.assertIn("stopped", err)

        # A second daemon on the same database adds nothing.
        p = self.start_daemon(cfg)
        self.wait_runs(len(runs) + 1)
        code, err = self.stop_daemon(p)
        self.assertEqual(code, 0, err)
        self.assertEqual(self.query("SELECT count(*) FROM candles")[0][0], 2500)
        self.assertEqual(self.query("SELECT count(*) FROM (SELECT ts FROM candles GROUP BY ts HAVING count(*) > 1)")[0][0], 0)

    def check_fault_then_recovery(self, rule, expect_in_error):
        # Every attempt at the second page fails (1 attempt + 2 retries; libcurl may also retry a
        # reset on a reused connection by itself): the run fails, keeping what it stored; once the
        # fault is gone the next run resumes from the newest stored candle.
        self.mock.fault(path="/api/v3/klines", after=1, times=-1, **rule)
        p = self.start_daemon(self.config())
        self.wait_runs(1, status="failed")
        self.mock.call("DELETE", "/_mock/faults")
        n = len(self.runs())
        self.wait_for(lambda: any(r[0] == "ok" for r in self.runs()[n - 1:]), what="a run after the fault")
        code, err = self.stop_daemon(p)
        self.assertEqual(code, 0, err)
        runs = [r for r in self.runs() if r[0] != "running"]
        self.assertEqual(runs[0][0], "failed")
        self.assertIn(expect_in_error, runs[0][2])
        reqs = [r for r in self.mock.requests("/api/v3/klines") if r["status"] == 200]
        # resumed from the newest stored candle (read again): the first page was kept
        starts = [int(r["query"]["startTime"]) // 1000 for r in reqs]
        self.assertIn(FIRST_TS + 999 * 60, starts[1:])
        self.assertNotIn(FIRST_TS, starts[1:], "not from the start again")
        self.assertEqual(self.query("SELECT count(*), min(ts), max(ts) FROM candles")[0],
                         (2500, FIRST_TS, FIRST_TS + 2499 * 60))

    def test_http_503_mid_paging(self):
        self.check_fault_then_recovery({"status": 503}, "HTTP 503")

    def test_connection_reset_mid_paging(self):
        self.check_fault_then_recovery({"reset": True}, "(ECONNRESET)")

    def test_truncated_body_mid_paging(self):
        self.check_fault_then_recovery({"truncate": 100}, "(TRUNCATED)")

    def test_a_transient_fault_is_retried_within_the_run(self):
        self.mock.fault(path="/api/v3/klines", after=1, times=1, status=503)
        p = self.start_daemon(self.config())
        self.wait_runs(1)
        code, err = self.stop_daemon(p)
        self.assertEqual(code, 0, err)
        self.assertEqual(self.runs()[0][0], "ok")
        self.assertEqual(self.query("SELECT count(*) FROM candles")[0][0], 2500)
        reqs = self.mock.requests("/api/v3/klines")
        self.assertEqual([r["status"] for r in reqs[:4]], [200, 503, 200, 200])
        self.assertEqual(reqs[1]["query"], reqs[2]["query"], "the same page was asked again")

    def test_sigterm_cancels_a_stuck_run_after_the_grace_period(self):
        self.mock.fault(path="/api/v3/klines", delay=30, times=1)
        p = self.start_daemon(self.config())
        self.wait_for(lambda: self.runs() and self.runs()[0][0] == "running", what="a running run")
        code, err = self.stop_daemon(p, timeout=15)
        self.assertEqual(code, 0, err)
        self.assertEqual(self.runs()[0][0], "cancelled")
        self.assertIn("cancelling", err)

    def test_kill_9_leaves_a_consistent_database(self):
        self.mock.fault(path="/api/v3/klines", after=1, delay=30, times=1)
        p = self.start_daemon(self.config())
        self.wait_for(lambda: self.query("SELECT count(*) FROM candles")[0][0] == 1000, what="first page")
        p.send_signal(signal.SIGKILL)
        p.wait()
        self.assertEqual(self.query("PRAGMA integrity_check")[0][0], "ok")
        self.mock.call("DELETE", "/_mock/faults")
        p = self.start_daemon(self.config())
        self.wait_for(lambda: self.query("SELECT count(*) FROM candles")[0][0] == 2500, what="all rows")
        code, err = self.stop_daemon(p)
        self.assertEqual(code, 0, err)
        statuses = [r[0] for r in self.runs()]
        self.assertEqual(statuses[0], "interrupted")
        self.assertIn("ok", statuses[1:])


if __name__ == "__main__":
    harness.main()
