"""Running as a service (issue 14): sd_notify readiness on $NOTIFY_SOCKET, SIGHUP does not stop
the daemon, `candled status` on one screen, and the unit file's directives."""
import os
import signal
import socket
import time

import harness


class ServiceTest(harness.Case):
    def test_ready_and_stopping_are_notified_and_status_reports(self):
        config = self.write_config({"database": {"path": "data/candled.db"}, "repl": {"enabled": False},
                                    "runtime": {"shutdown_grace": 1}, "backup": {"enabled": False},
                                    "budgets": {"api": {"windows": [{"per": "1m", "limit": 100}]}}})
        path = os.path.join(self.dir, "notify.sock")
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        sock.bind(path)
        sock.settimeout(30)
        try:
            d = self.start_daemon(config, env={"NOTIFY_SOCKET": path})
            self.assertIn("READY=1", sock.recv(4096).decode())
            self.execute("INSERT INTO alerts (kind, subject, level, message, opened, last_seen)"
                         " VALUES ('run_failing', 'x.y', 'error', 'x.y failed 3 times', 1, 1)")
            r = self.candled("status", "--config", config)
            self.assertEqual(r.returncode, 0, r.stderr)
            self.assertIn("daemon: running", r.stdout)
            self.assertRegex(r.stdout, r"api\s+1m 0/100")
            self.assertIn("x.y failed 3 times", r.stdout)
            d.send_signal(signal.SIGHUP)           # a reload, never a stop
            time.sleep(0.5)
            self.assertIsNone(d.poll())
            code, err = self.stop_daemon(d)
            self.assertEqual(code, 0, err)
            self.assertIn("STOPPING=1", sock.recv(4096).decode())
        finally:
            sock.close()
        r = self.candled("status", "--config", config)
        self.assertIn("daemon: NOT RUNNING", r.stdout)

    def test_the_unit_file(self):
        with open(os.path.join(harness.ARGS.source, "docs", "candled.service")) as f:
            unit = dict(line.split("=", 1) for line in f.read().splitlines()
                        if "=" in line and not line.startswith("#"))
        self.assertEqual(unit["Type"], "notify")
        self.assertEqual(unit["NoNewPrivileges"], "yes")
        self.assertEqual(unit["ProtectSystem"], "strict")
        self.assertEqual(unit["StateDirectory"], "candled")
        self.assertIn("kill -HUP", unit["ExecReload"])
        self.assertIn(" run --config ", unit["ExecStart"])


if __name__ == "__main__":
    harness.main()
