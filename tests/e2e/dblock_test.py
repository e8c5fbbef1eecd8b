"""One daemon per database (issue 11 item 11): the lock is on the database file itself, so a second
daemon reaching the same file through a symlink or a hard link, or after every lock file in sight
was deleted, refuses with a clear message; `candled restore` refuses while a daemon runs and
`candled status` sees it, whichever path they were given."""
import glob
import os
import signal

import harness


class DbLockTest(harness.Case):
    def config_in(self, sub, db):
        """A config in its own directory (own REPL socket), database.path = db."""
        d = os.path.join(self.dir, sub)
        os.makedirs(d, exist_ok=True)
        path = os.path.join(d, "config.lua")
        with open(path, "w") as f:
            f.write("return " + harness.lua({
                "database": {"path": db}, "repl": {"enabled": False}, "http_server": {"listen": False},
                "runtime": {"shutdown_grace": 1}, "backup": {"enabled": False}}) + "\n")
        return path

    def refused(self, cfg):
        """Start a daemon that must refuse: its stderr (it fails the test if it keeps running)."""
        p = self.start_daemon(cfg)
        try:
            _, err = p.communicate(timeout=20)
        except harness.subprocess.TimeoutExpired:
            self.stop_daemon(p, sig=signal.SIGKILL)
            self.fail("a second daemon started on the same database (%s)" % cfg)
        self.assertEqual(p.returncode, 1, err)
        return err

    def status(self, cfg):
        r = self.candled("status", "--config", cfg)
        self.assertEqual(r.returncode, 0, r.stderr)
        return r.stdout

    def test_a_second_daemon_through_a_symlink_or_after_deleting_lock_files_refuses(self):
        a = self.config_in("a", self.db_path)
        os.makedirs(os.path.dirname(self.db_path), exist_ok=True)
        real = os.path.realpath(self.db_path)
        d = self.start_daemon(a)
        self.wait_for(lambda: "daemon: running" in self.status(a), what="the first daemon")
        # every lock file anyone might think of, deleted
        for f in glob.glob(os.path.join(self.dir, "**", "*.lock"), recursive=True):
            os.remove(f)
        # the same file through a symlink, through a symlinked directory, and through a hard link
        os.makedirs(os.path.join(self.dir, "b"))
        os.symlink(self.db_path, os.path.join(self.dir, "b", "link.db"))
        os.symlink(os.path.dirname(self.db_path), os.path.join(self.dir, "c"))
        os.link(self.db_path, os.path.join(self.dir, "hard.db"))
        for sub, db in (("b", os.path.join(self.dir, "b", "link.db")), ("c", "../c/candled.db"),
                        ("h", os.path.join(self.dir, "hard.db"))):
            cfg = self.config_in(sub, db)
            err = self.refused(cfg)
            self.assertIn("candled: another daemon is running on", err)
            self.assertEqual(len(err.strip().splitlines()), 1, err)
            if sub != "h":
                self.assertIn(real, err)
            self.assertIn("daemon: running", self.status(cfg))
        self.assertIsNone(d.poll(), "the first daemon still runs")
        # restore through the symlink refuses while the daemon runs, and changes nothing
        backup = os.path.join(self.dir, "copy.db")
        r = self.candled("backup", "--config", a, "--to", backup)
        self.assertEqual(r.returncode, 0, r.stderr)
        b = os.path.join(self.dir, "b", "config.lua")
        r = self.candled("restore", "--config", b, backup)
        self.assertEqual(r.returncode, 1, r.stdout)
        self.assertIn("a daemon is running on %s: stop it first" % real, r.stderr)
        self.assertTrue(os.path.islink(os.path.join(self.dir, "b", "link.db")))
        code, err = self.stop_daemon(d)
        self.assertEqual(code, 0, err)
        # the lock goes with the daemon: status says so, restore through the symlink replaces the
        # file it points to (the symlink stays), and a daemon through the symlink starts
        self.assertIn("daemon: NOT RUNNING", self.status(b))
        r = self.candled("restore", "--config", b, backup)
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertTrue(os.path.islink(os.path.join(self.dir, "b", "link.db")))
        d2 = self.start_daemon(b)
        self.wait_for(lambda: "daemon: running" in self.status(a), what="the daemon through the symlink")
        self.assertIn("another daemon is running on %s" % real, self.refused(a))
        code, err = self.stop_daemon(d2)
        self.assertEqual(code, 0, err)

    def test_a_killed_daemon_leaves_no_lock_behind(self):
        a = self.config_in("a", self.db_path)
        d = self.start_daemon(a)
        self.wait_for(lambda: "daemon: running" in self.status(a), what="the daemon")
        self.stop_daemon(d, sig=signal.SIGKILL)
        self.assertIn("daemon: NOT RUNNING", self.status(a))
        d = self.start_daemon(a)
        self.wait_for(lambda: "daemon: running" in self.status(a), what="the daemon after kill -9")
        code, err = self.stop_daemon(d)
        self.assertEqual(code, 0, err)


if __name__ == "__main__":
    harness.main()
