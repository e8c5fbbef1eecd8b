"""Backups, retention, checks, restore and the start-up recovery of a damaged database (issue 14).

The real binary on a real SQLite file: backups are taken while a daemon's script writes, checked
and restored; a database file damaged on purpose is detected at start, moved aside and replaced by
the newest verified backup with no row of that backup lost.
"""
import glob
import os
import sqlite3
import time

import harness

# Writes 50 numbered rows per run, in one transaction: a consistent copy holds whole runs only.
WRITER = """
local db = require "rt.db"
return {
  name = "writer", every = 0.05,
  run = function(ctx)
    db.exec("CREATE TABLE IF NOT EXISTS seq (n INTEGER PRIMARY KEY, payload TEXT)")
    db.tx(function()
      local top = db.first("SELECT coalesce(max(n), 0) AS n FROM seq").n
      for i = top + 1, top + 50 do db.exec("INSERT INTO seq VALUES (?, ?)", i, string.rep("x", 200)) end
    end)
    return true
  end,
}
"""


class BackupTest(harness.Case):
    def cfg(self, backup=None, scripts=None):
        cfg = {"database": {"path": "data/candled.db"}, "repl": {"enabled": False},
               "runtime": {"shutdown_grace": 1, "min_every": 0.05}}
        if backup is not None:
            cfg["backup"] = backup
        return self.write_config(cfg, scripts=scripts if scripts is not None else {})

    def read_bytes(self, path):
        with open(path, "rb") as f:
            return f.read()

    def seq_of(self, path):
        con = sqlite3.connect(path)
        try:
            return [r[0] for r in con.execute("SELECT n FROM seq ORDER BY n")]
        finally:
            con.close()

    def test_backups_while_the_daemon_writes_are_consistent_and_restorable(self):
        config = self.cfg({"enabled": False}, {"writer.lua": WRITER})
        d = self.start_daemon(config)
        self.wait_for(lambda: self.query("SELECT count(*) FROM seq")[0][0] >= 200, what="rows written")
        copies = []
        for i in range(3):
            dest = os.path.join(self.dir, "copy%d.db" % i)
            r = self.candled("backup", "--config", config, "--to", dest)
            self.assertEqual(r.returncode, 0, r.stderr)
            self.assertIn("integrity_check ok", r.stdout)
            copies.append(dest)
        rows = self.query("SELECT path, kind, check_result, size, tables FROM backups ORDER BY id")
        self.assertEqual([(r[0], r[1], r[2]) for r in rows], [(c, "manual", "ok") for c in copies])
        for path, _, _, size, tables in rows:
            self.assertEqual(size, os.path.getsize(path))
            n = self.seq_of(path)
            self.assertIn('"seq":%d' % len(n), tables.replace(" ", ""))
            self.assertTrue(len(n) > 0 and len(n) % 50 == 0, "whole transactions only: %d rows" % len(n))
            self.assertEqual(n, list(range(1, len(n) + 1)), "a copy with a gap")
            self.assertFalse(os.path.exists(path + "-wal"), "a backup is one self-contained file")
        # restore refuses while the daemon holds the database
        r = self.candled("restore", "--config", config, copies[0])
        self.assertEqual(r.returncode, 1)
        self.assertIn("a daemon is running on", r.stderr)
        # the writer carries on past the first copy (on a loaded machine three backups can take less
        # time than its next run), so the restore below visibly replaces newer rows
        first = len(self.seq_of(copies[0]))
        self.wait_for(lambda: self.query("SELECT count(*) FROM seq")[0][0] > first, what="rows after the copy")
        self.assertEqual(self.stop_daemon(d)[0], 0)
        live = len(self.seq_of(self.db_path))
        self.assertGreater(live, len(self.seq_of(copies[0])))
        # restore: the copy takes the database's place, the replaced file is kept aside
        r = self.candled("restore", "--config", config, copies[0])
        self.assertEqual(r.returncode, 0, r.stderr)
        aside = glob.glob(self.db_path + ".replaced-*")
        aside = [a for a in aside if not a.endswith(("-wal", "-shm"))]
        self.assertEqual(len(aside), 1, aside)
        self.assertEqual(self.seq_of(self.db_path), self.seq_of(copies[0]))
        self.assertEqual(len(self.seq_of(aside[0])), live)
        r = self.candled("check", "--config", config)
        self.assertEqual(r.returncode, 0, r.stdout + r.stderr)
        self.assertRegex(r.stdout, r"seq\s+%d\s+ok" % len(self.seq_of(copies[0])))

    def test_restore_refuses_a_damaged_backup(self):
        config = self.cfg({"enabled": False})
        bad = os.path.join(self.dir, "bad.db")
        with open(bad, "wb") as f:
            f.write(b"not a database at all" * 100)
        self.assertEqual(self.candled("eval", "--config", config, "-", stdin="return 1").returncode, 0)
        before = os.path.getsize(self.db_path)
        r = self.candled("restore", "--config", config, bad)
        self.assertEqual(r.returncode, 1)
        self.assertIn("bad.db", r.stderr)
        self.assertEqual(os.path.getsize(self.db_path), before)
        self.assertEqual(glob.glob(self.db_path + ".replaced-*"), [])

    def test_schedule_and_retention(self):
        config = self.cfg({"dir": "bk", "keep_daily": 2, "keep_weekly": 1})
        # the first scheduled backup of a database is a weekly one, taken at start
        d = self.start_daemon(config)
        self.wait_for(lambda: self.query("SELECT count(*) FROM backups WHERE kind = 'weekly'")[0][0] == 1,
                      what="the first weekly backup")
        self.assertEqual(self.stop_daemon(d)[0], 0)
        # older history: files and rows of 4 daily, 2 weekly and 1 manual backups, then prune
        now = time.time()
        con = sqlite3.connect(self.db_path)
        with con:
            for i, kind in enumerate(["daily"] * 4 + ["weekly"] * 2 + ["manual"]):
                path = os.path.join(self.dir, "bk", "old-%d-%s.db" % (i, kind))
                open(path, "w").close()
                at = now - 86400 * (10 - i)
                con.execute("INSERT INTO backups (path, kind, started, finished, size, tables, check_result)"
                            " VALUES (?, ?, ?, ?, 0, '{}', 'ok')", (path, kind, at, at))
        con.close()
        r = self.candled("eval", "--config", config, "-",
                         stdin='for _, p in ipairs(require("candled.backup").prune()) do print(p) end')
        self.assertEqual(r.returncode, 0, r.stderr)
        gone = sorted(os.path.basename(p) for p in r.stdout.split())
        self.assertEqual(gone, ["old-0-daily.db", "old-1-daily.db", "old-4-weekly.db", "old-5-weekly.db"])
        left = sorted(os.path.basename(p) for p in glob.glob(os.path.join(self.dir, "bk", "*.db")))
        self.assertEqual(len(left), 4, left)
        self.assertIn("old-2-daily.db", left)
        self.assertIn("old-6-manual.db", left)
        self.assertEqual(self.query("SELECT count(*) FROM backups WHERE removed IS NOT NULL")[0][0], 4)
        r = self.candled("backups", "--config", config)
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertIn("deleted by retention", r.stdout)
        self.assertIn("weekly", r.stdout)

    def test_damaged_database_is_moved_aside_and_recovered(self):
        config = self.cfg({"dir": "bk", "enabled": False})
        fill = ("local db = require 'rt.db'\n"
                "db.exec('CREATE TABLE IF NOT EXISTS seq (n INTEGER PRIMARY KEY, payload TEXT)')\n"
                "local a, b = ...\n"
                "db.tx(function() for i = tonumber(a), tonumber(b) do\n"
                "  db.exec('INSERT INTO seq VALUES (?, ?)', i, string.rep('y', 300)) end end)\n")
        with open(os.path.join(self.dir, "fill.lua"), "w") as f:
            f.write(fill)
        self.assertEqual(self.candled("eval", "--config", config, "fill.lua", "1", "2000").returncode, 0)
        r = self.candled("backup", "--config", config)
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertEqual(self.candled("eval", "--config", config, "fill.lua", "2001", "2500").returncode, 0)
        # damage the middle of the file (the WAL is checkpointed into it when the last connection closed)
        size = os.path.getsize(self.db_path)
        with open(self.db_path, "r+b") as f:
            f.seek(size // 2)
            f.write(os.urandom(4096 * 8))
        r = self.candled("check", "--config", config)
        self.assertEqual(r.returncode, 1, r.stdout)
        self.assertIn("DAMAGED", r.stdout)
        # the daemon: detects it, moves it aside, restores the newest verified backup, raises an alert
        d = self.start_daemon(config)
        self.wait_for(lambda: self.query("SELECT count(*) FROM alerts WHERE kind = 'corruption'"
                                         " AND resolved IS NULL")[0][0] == 1, what="the corruption alert")
        code, err = self.stop_daemon(d)
        self.assertEqual(code, 0, err)
        self.assertIn("moved aside", err)
        self.assertEqual(self.seq_of(self.db_path), list(range(1, 2001)), "every row of the backup is back")
        aside = [a for a in glob.glob(self.db_path + ".corrupt-*") if not a.endswith(("-wal", "-shm"))]
        self.assertEqual(len(aside), 1)
        self.assertEqual(os.path.getsize(aside[0]), size, "the damaged file is kept as it was")

    def test_damaged_database_without_a_backup_is_left_alone(self):
        config = self.cfg({"dir": "bk", "enabled": False})
        self.assertEqual(self.candled("eval", "--config", config, "-",
                                      stdin="require('rt.db').exec('CREATE TABLE x (a)')").returncode, 0)
        size = os.path.getsize(self.db_path)
        with open(self.db_path, "r+b") as f:
            f.seek(0)
            f.write(b"\0" * 100)
        before = self.read_bytes(self.db_path)
        d = self.start_daemon(config)
        out, err = d.communicate(timeout=30)
        self.assertEqual(d.returncode, 1)
        self.assertIn("no verified backup", err)
        self.assertEqual(self.read_bytes(self.db_path), before, "never written over")
        self.assertEqual(os.path.getsize(self.db_path), size)


if __name__ == "__main__":
    harness.main()
