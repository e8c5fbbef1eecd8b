"""End to end: scripts that react to files. A script's `watch(config)` names files; the daemon runs
the script again soon after one changes (edit in place, atomic replace, removal, creation), on top of
its schedule. A bad `watch` is logged with its file and the daemon keeps running the others. Also the
contract of candled.scripts, the loader behind the daemon and the subcommands scripts provide."""
import json
import os
import subprocess
import time

import harness

# Counts its runs in a table of its own; `watch` returns the file named in its config section.
WATCHED = """
local db = require "rt.db"
return {
  name = "%(name)s",
  every = "1h",
  watch = function(config) return { config.file } end,
  run = function(ctx)
    db.exec("CREATE TABLE IF NOT EXISTS seen (script TEXT, at REAL)")
    db.exec("INSERT INTO seen (script, at) VALUES (?, ?)", ctx.name, os.time())
    return true
  end,
}
"""

# A script with a broken `watch`: it still runs on its schedule.
BROKEN = """
return {
  name = "%(name)s",
  every = "1h",
  watch = %(watch)s,
  run = function() return true end,
}
"""


class Watch(harness.Case):
    def config(self, scripts, script_options):
        cfg = {
            "database": {"path": "data/candled.db"},
            "runtime": {"shutdown_grace": 10},
            "scripts": script_options,
        }
        return self.write_config(cfg, scripts=scripts)

    def start_daemon_in(self, cwd, config):
        """The daemon with a working directory other than the config file's."""
        p = subprocess.Popen([harness.ARGS.candled, "run", "--config", config], stdout=subprocess.PIPE,
                             stderr=subprocess.PIPE, text=True, cwd=cwd)
        self.procs.append(p)
        return p

    def ok_runs(self, name):
        return self.query("SELECT count(*) FROM runs WHERE script = ? AND status = 'ok'", name)[0][0]

    def wait_runs(self, name, n, timeout=30):
        return self.wait_for(lambda: self.ok_runs(name) >= n, timeout=timeout, what="%d runs of %s" % (n, name))

    def check_reacts(self, name, n, change, what):
        """change() makes the n-th run of `name` happen within 3 seconds, and only one."""
        time.sleep(0.3)                       # apart from the previous change by more than an mtime tick
        t0 = time.time()
        change()
        self.wait_runs(name, n, timeout=3)
        self.assertLess(time.time() - t0, 3, what)
        time.sleep(1.5)                       # a poll or two later: still that one run
        self.assertEqual(self.ok_runs(name), n, what + ": one change, one run")

    def test_editing_a_watched_file_runs_the_script_again(self):
        inputs = os.path.join(self.dir, "inputs")
        os.makedirs(inputs)
        path = os.path.join(inputs, "watched.txt")
        with open(path, "w") as f:
            f.write("v1\n")
        cfg = self.config({"watched.lua": WATCHED % {"name": "watched"}},
                          {"watched": {"file": "inputs/watched.txt"}})    # relative to config.lua's directory
        elsewhere = os.path.join(self.dir, "elsewhere")
        os.makedirs(elsewhere)
        p = self.start_daemon_in(elsewhere, cfg)
        self.wait_runs("watched", 1)
        time.sleep(0.5)
        self.assertEqual(self.ok_runs("watched"), 1, "every = 1h: nothing runs again by itself")

        def edit_in_place():
            with open(path, "a") as f:
                f.write("v2\n")

        def replace_atomically():
            with open(path + ".tmp", "w") as f:
                f.write("v3 with another size\n")
            os.replace(path + ".tmp", path)

        self.check_reacts("watched", 2, edit_in_place, "an edit in place")
        self.check_reacts("watched", 3, replace_atomically, "an atomic replace")
        self.check_reacts("watched", 4, lambda: os.remove(path), "a removal")
        self.check_reacts("watched", 5, edit_in_place, "the file created again")
        self.assertEqual(self.query("SELECT count(*) FROM seen")[0][0], 5)
        self.assertEqual(self.query("SELECT count(*) FROM runs WHERE script = 'watched' AND status != 'ok'")[0][0], 0)

        # Stopping does not wait out the grace period for the watching tasks.
        t0 = time.time()
        code, err = self.stop_daemon(p)
        self.assertEqual(code, 0, err)
        self.assertLess(time.time() - t0, 5, "stopped promptly")
        self.assertIn("script watches a file", err)
        self.assertIn(path, err, "the path is resolved against the config file's directory")
        self.assertNotIn("level=error", err)

    def test_a_bad_watch_is_logged_and_the_daemon_keeps_running_the_others(self):
        path = os.path.join(self.dir, "good.txt")
        with open(path, "w") as f:
            f.write("x")
        broken = {
            "raises": 'function() error("no watch today") end',
            "not_a_function": '"good.txt"',
            "not_strings": "function() return { 42 } end",
            "not_a_list": 'function() return "good.txt" end',
        }
        scripts = {"good.lua": WATCHED % {"name": "good"}}
        for name, watch in broken.items():
            scripts[name + ".lua"] = BROKEN % {"name": name, "watch": watch}
        cfg = self.config(scripts, {"good": {"file": path}})
        p = self.start_daemon(cfg)
        for name in list(broken) + ["good"]:
            self.wait_runs(name, 1)
        time.sleep(0.3)
        t0 = time.time()
        with open(path, "w") as f:
            f.write("changed")
        self.wait_runs("good", 2, timeout=3)
        self.assertLess(time.time() - t0, 3)
        self.assertIsNone(p.poll(), "the daemon is still running")
        code, err = self.stop_daemon(p)
        self.assertEqual(code, 0, err)
        failed = [l for l in err.splitlines() if "script 'watch' failed" in l]
        for name, needle in (("raises", "no watch today"), ("not_a_function", "must be a function, got string"),
                             ("not_strings", "got a number at [1]"), ("not_a_list", "list of paths, got string")):
            lines = [l for l in failed if name + ".lua" in l]
            self.assertEqual(len(lines), 1, "\n".join(failed))
            self.assertIn("level=error", lines[0])
            self.assertIn(needle, lines[0])
        self.assertEqual(len(failed), 4, "\n".join(failed))
        for name in broken:
            self.assertEqual(self.ok_runs(name), 1, name + " keeps its schedule")

    def test_discover_lists_every_script_for_the_daemon_and_the_cli(self):
        # candled.scripts, the loader the daemon and the script-provided subcommands share
        cfg = self.config({
            "a/job.lua": 'return { every = "1h", source = "src", run = function() end, watch = function() return {} end }',
            "tool.lua": 'return { name = "tool", commands = { hello = function() return 0 end } }',
            "off.lua": 'return { name = "off", every = "1m", run = function() end }',
            "broken.lua": "return {",
            "lib/helper.lua": "return {}",
            ".hidden/x.lua": "return {}",
            "notes.txt": "not a script",
        }, {"off": {"enabled": False}, "a.job": {"extra": 7}})
        code = """
local json = require "rt.json"
local scripts = require "candled.scripts"
local out = {}
for _, s in ipairs(scripts.discover()) do
  out[#out + 1] = { module = s.module, name = s.name, enabled = s.enabled, why = s.why or json.null,
                    error = s.error and true or false, has_run = s.mod and s.mod.run ~= nil or false,
                    commands = s.mod and type(s.mod.commands) == "table" or false,
                    watch = s.mod and type(s.mod.watch) == "function" or false,
                    extra = s.config and s.config.extra or json.null }
end
local none, err = scripts.discover("/no/such/dir")
out[#out + 1] = { missing = #none, err = err ~= nil }
print(json.encode(out))
"""
        r = self.candled("eval", "--config", cfg, "-", stdin=code)
        self.assertEqual(r.returncode, 0, r.stderr)
        got = json.loads(r.stdout)
        self.assertEqual([g.get("module") for g in got[:-1]], ["a.job", "broken", "off", "tool"])
        job, broken, off, tool = got[:-1]
        self.assertEqual((job["name"], job["enabled"], job["has_run"], job["watch"], job["extra"]),
                         ("a.job", True, True, True, 7))
        self.assertEqual((broken["error"], broken["enabled"]), (True, False))
        self.assertEqual((off["enabled"], off["why"]), (False, "scripts.off.enabled"))
        self.assertEqual((tool["name"], tool["has_run"], tool["commands"], tool["enabled"]), ("tool", False, True, True))
        self.assertEqual(got[-1], {"missing": 0, "err": True})


if __name__ == "__main__":
    harness.main()
