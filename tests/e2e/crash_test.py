"""Crash safety (issue 11, issue 19 item 8): the daemon is killed with SIGKILL again and again while
it ingests a large series from the mock (BENCHUSDT 1m klines, pages of 1000, a run every 0.1 s),
and the kills are aimed at writes, not only at HTTP waits: some at random moments, some the moment
the WAL grows (a commit being written), some the moment the database file changes (a checkpoint
copying pages). Just before each kill the rows committed so far are read; after it the database
passes PRAGMA integrity_check and still holds every one of them. At the end a clean run completes
the series: exactly the mock's rows, no gap, nothing twice.

CRASH_KILLS (environment) sets the number of kills per round (20), CRASH_ROUNDS the rounds, each on a
fresh database (1 here, ctest; 5 in `make bench`)."""
import os
import random
import signal
import subprocess
import sys
import time
import urllib.request
import json

import harness

START_MS = 1600000020000 - (1600000020000 % 60000)
KILLS = int(os.environ.get("CRASH_KILLS", "20"))
ROUNDS = int(os.environ.get("CRASH_ROUNDS", "1"))   # `make bench`: several rounds, each on a fresh database
STEP = 200000          # rows the mock's series grows by whenever the daemon comes near its end
# syscalls that write a file (x86-64 and arm64 numbers): write, pwrite64, writev, pwritev, fsync, fdatasync
WRITES = {"1", "18", "20", "296", "74", "75", "64", "68", "66", "70", "82", "83"}


class BenchMock(harness.Mock):
    """The mock with BENCH klines ending at end_ms (exclusive), BENCHUSDT listed."""

    def __init__(self, end_ms):
        fixtures = os.path.join(harness.ARGS.source, "fixtures")
        script = os.path.join(harness.ARGS.source, "tests", "mock", "mock_http.py")
        self.proc = subprocess.Popen([sys.executable, script, "--fixtures", fixtures, "--bench-end-ms", str(end_ms),
                                      "--exit-on-stdin-eof"], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
        line = self.proc.stdout.readline().split()
        assert line and line[0] == "PORT", "mock did not start"
        self.url = "http://127.0.0.1:%s" % line[1]
        self.call("POST", "/_mock/binance",
                  {"add": {"spot": [{"symbol": "BENCHUSDT", "baseAsset": "BENCH", "quoteAsset": "USDT"}]}})


def thread_states(pid):
    """{tid: first field of /proc/pid/task/tid/syscall} ("running" or a syscall number)."""
    out = {}
    try:
        for tid in os.listdir("/proc/%d/task" % pid):
            try:
                with open("/proc/%d/task/%s/syscall" % (pid, tid)) as f:
                    out[tid] = f.read().split()[0]
            except (OSError, IndexError):
                pass
    except OSError:
        pass
    return out


class CrashTest(harness.Case):
    def setUp(self):
        super().setUp()
        self.mock.close()
        self.rows = STEP
        self.mock = BenchMock(START_MS + self.rows * 60000)

    def grow(self):
        """A longer series (the same rows, more of them) when the daemon is near the end: a new mock
        while no daemon runs; the next config points at it."""
        if self.committed()[0] < self.rows - STEP // 4:
            return
        self.mock.close()
        self.rows += STEP
        self.mock = BenchMock(START_MS + self.rows * 60000)

    def start_daemon(self, config, env=None):
        """The daemon with its log appended to daemon.log (a pipe nobody reads would fill up)."""
        with open(os.path.join(self.dir, "daemon.log"), "a") as log:
            p = subprocess.Popen([harness.ARGS.candled, "run", "--config", config], stdout=subprocess.DEVNULL,
                                 stderr=log, cwd=self.dir)
        self.procs.append(p)
        return p

    def stop_daemon(self, p, sig=signal.SIGTERM, timeout=20):
        p.send_signal(sig)
        p.wait(timeout=timeout)
        with open(os.path.join(self.dir, "daemon.log")) as f:
            return p.returncode, f.read()[-4000:]

    def config(self):
        cfg = {
            "database": {"path": self.db_path},
            "log": {"level": "info"},
            "repl": {"enabled": False}, "backup": {"enabled": False}, "http_server": {"listen": False},
            "runtime": {"shutdown_grace": 2, "min_every": 0.1},
            "sources": {"binance_spot": {"base_url": self.mock.url, "symbols": ["BENCHUSDT"], "intervals": ["1m"],
                                         "start": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(START_MS // 1000))}},
            "schedules": {"binance.spot": {"every": 0.1}},
            # no limit that matters: the daemon ingests as fast as it can, so writes fill its time
            "budgets": {"binance_spot": {"windows": [{"per": "1m", "limit": 10 ** 7}], "retries": 2,
                                         "backoff": {"base": 0.05, "cap": 0.2}}},
        }
        src = os.path.join(harness.ARGS.source, "scripts")
        return self.write_config(cfg, scripts={f: os.path.join(src, f) for f in (
            "binance/spot.lua", "lib/binance.lua", "lib/source.lua", "lib/series.lua")})

    def committed(self):
        """(rows, newest ts) committed now (ts are unique: the count up to the newest names the set)."""
        return tuple(self.query("SELECT count(*), coalesce(max(ts), 0) FROM candles"
                                " WHERE instrument = 'BENCHUSDT' AND timeframe = '1m'")[0])

    def committed_up_to(self, ts):
        return tuple(self.query("SELECT count(*), coalesce(max(ts), 0) FROM candles"
                                " WHERE instrument = 'BENCHUSDT' AND timeframe = '1m' AND ts <= ?", ts)[0])

    def wait_state(self, pid, kind, deadline):
        """Poll the daemon's threads until `kind` shows (or the deadline): "upsert", the loop thread in a
        file write or sync (a commit writing its WAL frames); "checkpoint", another thread (the worker
        pool: the WAL checkpoint) running or writing. Returns the states seen last and whether it showed."""
        main = str(pid)
        if kind == "upsert":                      # one file, read as fast as possible
            fd = os.open("/proc/%d/task/%d/syscall" % (pid, pid), os.O_RDONLY)
            try:
                while time.time() < deadline:
                    for _ in range(200):
                        state = os.pread(fd, 64, 0).split(None, 1)[0].decode()
                        if state in WRITES:
                            return {main: state}, True
            finally:
                os.close(fd)
            return {main: state}, False
        while True:
            states = thread_states(pid)
            if any(t != main and (s == "running" or s in WRITES) for t, s in states.items()):
                return states, True
            if time.time() > deadline:
                return states, False

    def test_kill_9_during_writes_loses_no_committed_row(self):
        for r in range(ROUNDS):
            if r:                                  # a fresh database and series
                self.db_path = os.path.join(self.dir, "round%d" % r, "candled.db")
                self.mock.close()
                self.rows = STEP
                self.mock = BenchMock(START_MS + self.rows * 60000)
            self.one_round()

    def one_round(self):
        cfg = self.config()
        rng = random.Random(int(os.environ.get("CRASH_SEED", "0")) or None)
        db, wal = self.db_path, self.db_path + "-wal"
        kinds, hits = {"random": 0, "upsert": 0, "checkpoint": 0}, {"random": 0, "upsert": 0, "checkpoint": 0}
        kills = 0
        while kills < KILLS:
            if os.path.exists(db):
                self.grow()
                cfg = self.config()
            p = self.start_daemon(cfg)
            before = self.committed()[0] if os.path.exists(db) else 0
            try:
                self.wait_for(lambda: self.committed()[0] > before or self.committed()[0] >= self.rows, timeout=60,
                              what="ingest going on after restart %d" % kills)
            except AssertionError:
                with open(os.path.join(self.dir, "daemon.log")) as f:
                    raise AssertionError("no ingest after restart %d; the daemon's log ends: %s"
                                         % (kills, f.read()[-3000:]))
            if self.committed()[0] >= self.rows:
                self.stop_daemon(p)
                self.fail("the series was complete after %d kills" % kills)
            kind = ("random", "upsert", "checkpoint")[kills % 3]
            seen = self.committed()                # committed before the kill: all of it must survive
            if kind == "random":
                time.sleep(rng.uniform(0, 0.08))
                states, hit = thread_states(p.pid), True
            else:                                  # the kill follows the sample within microseconds
                states, hit = self.wait_state(p.pid, kind, time.time() + 1.5)
            p.send_signal(signal.SIGKILL)
            p.wait()
            kills += 1
            kinds[kind] += 1
            hits[kind] += hit
            if os.environ.get("CRASH_VERBOSE"):
                print("%.2f kill %d (%s%s): %d rows committed, threads %s" % (time.time() % 100, kills, kind, "" if hit else ", missed",
                                                                        seen[0], states), file=sys.stderr)
            self.assertEqual(self.query("PRAGMA integrity_check")[0][0], "ok", "after kill %d (%s)" % (kills, kind))
            self.assertEqual(self.committed_up_to(seen[1]), seen,
                             "kill %d (%s): every row committed before it is still there" % (kills, kind))
        print("\n%d kills: %s; landed as aimed: %s" % (kills, kinds, hits), file=sys.stderr)
        # the aim is checked from /proc right before each kill: some must have hit a commit's WAL
        # writes and some a checkpoint at work (the rest of the time the daemon fetches and decodes)
        self.assertGreater(hits["upsert"] + hits["checkpoint"], 0, "no kill landed in a commit or a checkpoint")
        # a clean run completes the series: exactly the mock's rows
        p = self.start_daemon(cfg)
        self.wait_for(lambda: self.committed()[0] >= self.rows, timeout=180, what="the whole series")
        code, err = self.stop_daemon(p)
        self.assertEqual(code, 0, err)
        self.assertEqual(self.query("PRAGMA integrity_check")[0][0], "ok")
        got = self.query("SELECT ts, open, high, low, close, volume, quote_volume, trades FROM candles"
                         " WHERE instrument = 'BENCHUSDT' AND timeframe = '1m' ORDER BY ts")
        want = []
        start = START_MS
        while start < START_MS + self.rows * 60000:
            with urllib.request.urlopen("%s/api/v3/klines?symbol=BENCHUSDT&interval=1m&limit=1000&startTime=%d"
                                        % (self.mock.url, start)) as r:
                page = json.loads(r.read())
            if not page:
                break
            want += [(k[0] // 1000, float(k[1]), float(k[2]), float(k[3]), float(k[4]), float(k[5]), float(k[7]), k[8])
                     for k in page]
            start = page[-1][0] + 60000
        self.assertEqual(len(want), self.rows)
        self.assertEqual(len(got), self.rows, "gap-free and nothing twice")
        self.assertEqual(got, want)
        statuses = [r[0] for r in self.query("SELECT status FROM runs WHERE script = 'binance.spot'")]
        self.assertIn("interrupted", statuses)


if __name__ == "__main__":
    harness.main()
