"""Alert delivery to webhooks (issue 14): opened and resolved alerts reach a local receiver once
each, also when the receiver was down at first and comes back later."""
import http.server
import json
import socket
import threading
import time

import harness


class Receiver:
    def __init__(self, port):
        got = self.got = []

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_POST(self):
                body = self.rfile.read(int(self.headers["Content-Length"]))
                got.append((self.headers.get("Content-Type"), json.loads(body)))
                self.send_response(204)
                self.end_headers()

            def log_message(self, *a):
                pass

        self.server = http.server.HTTPServer(("127.0.0.1", port), Handler)
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def close(self):
        self.server.shutdown()
        self.server.server_close()


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class AlertsTest(harness.Case):
    def alert(self, config, fn, *args):
        src = "local alert = require 'rt.alert'\nalert.%s(%s)\n" % (fn, ", ".join(json.dumps(a) for a in args))
        r = self.candled("eval", "--config", config, "-", stdin=src)
        self.assertEqual(r.returncode, 0, r.stderr)

    def test_delivery_survives_a_down_receiver_and_is_once_per_event(self):
        port = free_port()
        config = self.write_config({"database": {"path": "data/candled.db"}, "repl": {"enabled": False},
                                    "runtime": {"shutdown_grace": 1}, "backup": {"enabled": False},
                                    "alerts": {"webhooks": ["http://127.0.0.1:%d/hook" % port], "poll": 0.1}})
        d = self.start_daemon(config)
        self.wait_for(lambda: self.query("SELECT count(*) FROM alert_targets")[0][0] == 1, what="the daemon's start")
        # the receiver is down: the event waits, retried
        self.alert(config, "raise", "banned", "api", "api banned for 600 s", "error")
        self.wait_for(lambda: self.query("SELECT max(attempts) FROM alert_deliveries WHERE delivered IS NULL")[0][0],
                      what="a failed attempt")
        self.alert(config, "resolve", "banned", "api")
        rx = Receiver(port)
        try:
            self.wait_for(lambda: len(rx.got) >= 2, timeout=30, what="both events delivered")
            self.alert(config, "raise", "backup_failed", "backup", "disk full", "error")
            self.wait_for(lambda: len(rx.got) >= 3, what="the next alert")
            time.sleep(1.0)                     # ten more polls: nothing is sent twice
            events = [(b["event"], b["kind"], b["subject"]) for _, b in rx.got]
            self.assertEqual(events, [("opened", "banned", "api"), ("resolved", "banned", "api"),
                                      ("opened", "backup_failed", "backup")])
            self.assertTrue(all(t == "application/json" for t, _ in rx.got))
            self.assertEqual(rx.got[0][1]["message"], "api banned for 600 s")
            self.assertEqual(rx.got[0][1]["level"], "error")
        finally:
            rx.close()
        rows = self.query("SELECT event, attempts, delivered IS NOT NULL FROM alert_deliveries ORDER BY rowid")
        self.assertTrue(all(r[2] for r in rows), rows)
        self.assertGreaterEqual(rows[0][1], 2, "the first event needed more than one attempt")
        code, err = self.stop_daemon(d)
        self.assertEqual(code, 0, err)
        self.assertIn("alert delivery failed", err)

    def test_stale_series_open_and_resolve(self):
        config = self.write_config({"database": {"path": "data/candled.db"}, "repl": {"enabled": False},
                                    "runtime": {"shutdown_grace": 1}, "backup": {"enabled": False},
                                    "alerts": {"poll": 0.1, "stale_check": 0.1}})
        self.assertEqual(self.candled("eval", "--config", config, "-", stdin="return 1").returncode, 0)
        now = int(time.time()) // 60 * 60
        self.execute("INSERT INTO candles (source, instrument, timeframe, ts, open, high, low, close, volume)"
                     " VALUES ('src', 'LATE', '1m', ?, 1, 1, 1, 1, 1)", now - 600)
        self.execute("INSERT INTO candles (source, instrument, timeframe, ts, open, high, low, close, volume)"
                     " VALUES ('src', 'RETIRED', '1m', ?, 1, 1, 1, 1, 1)", now - 30 * 86400)
        d = self.start_daemon(config)
        self.wait_for(lambda: self.query("SELECT count(*) FROM alerts WHERE kind = 'stale_series'"
                                         " AND resolved IS NULL")[0][0] == 1, what="the stale alert")
        self.assertEqual(self.query("SELECT subject FROM alerts WHERE kind = 'stale_series'")[0][0], "src/LATE/1m")
        self.execute("INSERT INTO candles (source, instrument, timeframe, ts, open, high, low, close, volume)"
                     " VALUES ('src', 'LATE', '1m', ?, 1, 1, 1, 1, 1)", now - 60)
        self.wait_for(lambda: self.query("SELECT count(*) FROM alerts WHERE kind = 'stale_series'"
                                         " AND resolved IS NOT NULL")[0][0] == 1, what="resolved when fresh")
        self.assertEqual(self.stop_daemon(d)[0], 0)


if __name__ == "__main__":
    harness.main()
