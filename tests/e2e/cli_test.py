"""End to end: the CLI contract. Exit 0 ok, 1 failure, 2 usage; errors are one line naming what is wrong."""
import os

import harness


class Cli(harness.Case):
    def one_line(self, text):
        lines = [l for l in text.splitlines() if l.strip()]
        self.assertEqual(len(lines), 1, text)
        return lines[0]

    def test_version_and_help(self):
        r = self.candled("--version")
        self.assertEqual(r.returncode, 0)
        self.assertRegex(r.stdout, r"^candled \d+\.\d+\.\d+ \(Lua 5\.4")
        r = self.candled("help")
        self.assertEqual(r.returncode, 0)
        for cmd in ("run", "eval", "help"):
            self.assertIn(cmd, r.stdout)
        r = self.candled("help", "eval")
        self.assertEqual(r.returncode, 0)
        self.assertIn("usage: candled eval", r.stdout)

    def test_usage_errors_exit_2_with_one_line(self):
        for args, needle in ((["frobnicate"], "unknown command: frobnicate"),
                             (["eval"], "eval needs a FILE"),
                             (["run", "--bogus"], "unknown option: --bogus"),
                             (["run", "--config"], "--config needs a file"),
                             (["help", "nope"], "no such command: nope")):
            r = self.candled(*args)
            self.assertEqual(r.returncode, 2, args)
            self.assertIn(needle, self.one_line(r.stderr))
        r = self.candled()
        self.assertEqual(r.returncode, 2)

    def test_bad_config_names_file_and_key(self):
        cfg = self.write_config({"database": {"pathh": "x.db"}})
        r = self.candled("run", "--config", cfg)
        self.assertEqual(r.returncode, 1)
        line = self.one_line(r.stderr)
        self.assertIn(cfg, line)
        self.assertIn("database.pathh: unknown key", line)
        cfg = self.write_config({"http": {"timeout": "fast"}})
        line = self.one_line(self.candled("eval", "--config", cfg, "-", stdin="").stderr)
        self.assertIn("http.timeout: expected a number, got string", line)
        cfg = self.write_config({"budgets": {"api": {"windows": [{"per": "fortnight", "limit": 5}]}}})
        line = self.one_line(self.candled("run", "--config", cfg).stderr)
        self.assertIn(cfg + ": budgets.api.windows[1].per: expected a duration", line)
        cfg = self.write_config({"budgets": {"api": {"reserve": 1.5, "windows": [{"per": "1m", "limit": 5}]}}})
        line = self.one_line(self.candled("eval", "--config", cfg, "-", stdin="").stderr)
        self.assertIn("budgets.api.reserve: must be at least 0 and below 1", line)
        self.assertFalse(os.path.exists(os.path.join(self.dir, "data")), "nothing is created for a bad config")

    def test_a_config_error_with_line_breaks_is_one_line(self):
        # found by tests/fuzz/fuzz_config.c: error() text and key names with line breaks
        for text, want in (('error("line one\\nline two")', "line one\\nline two"),
                           ('return { ["x\\ny"] = 1 }', "x\\ny: unknown key")):
            path = os.path.join(self.dir, "config.lua")
            with open(path, "w") as f:
                f.write(text + "\n")
            r = self.candled("eval", "--config", path, "-", stdin="")
            self.assertEqual(r.returncode, 1)
            self.assertIn(want, self.one_line(r.stderr))

    def test_missing_explicit_config(self):
        r = self.candled("run", "--config", os.path.join(self.dir, "nope.lua"))
        self.assertEqual(r.returncode, 1)
        self.assertIn("nope.lua: cannot read", self.one_line(r.stderr))

    def test_environment_overrides(self):
        cfg = self.write_config({})
        other = os.path.join(self.dir, "elsewhere", "x.db")
        r = self.candled("eval", "--config", cfg, "-", env={"CANDLED_DATABASE__PATH": other},
                         stdin='print(require("rt.db").path())')
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertEqual(r.stdout.strip(), other)
        r = self.candled("eval", "--config", cfg, "-", env={"CANDLED_HTTP__TIMEOUT": "soon"}, stdin="")
        self.assertEqual(r.returncode, 1)
        self.assertIn("CANDLED_HTTP__TIMEOUT: expected a number, got 'soon'", self.one_line(r.stderr))
        r = self.candled("eval", "--config", cfg, "-", env={"CANDLED_NOPE": "1"}, stdin="")
        self.assertEqual(r.returncode, 1)
        self.assertIn("CANDLED_NOPE", self.one_line(r.stderr))

    def test_eval_exit_codes_and_args(self):
        cfg = self.write_config({})
        r = self.candled("eval", "--config", cfg, "-", "a", "b", stdin='print(select("#", ...), ...)')
        self.assertEqual((r.returncode, r.stdout), (0, "2\ta\tb\n"))
        r = self.candled("eval", "--config", cfg, "-", stdin='error("boom")')
        self.assertEqual(r.returncode, 1)
        self.assertIn("boom", r.stderr)
        self.assertIn("stack traceback", r.stderr)
        r = self.candled("eval", "--config", cfg, "-", stdin="this is not lua")
        self.assertEqual(r.returncode, 1)
        self.assertIn("syntax error", self.one_line(r.stderr))

    def test_a_broken_script_does_not_stop_the_daemon(self):
        cfg = self.write_config({"schedules": {"good": {"every": "1s"}}, "runtime": {"shutdown_grace": 1}}, scripts={
            "good.lua": 'return { every = "1m", run = function(ctx) ctx.state.n = (ctx.state.n or 0) + 1 end }',
            "broken.lua": "return { every = ",
            "raises.lua": 'return { every = "1s", run = function() error("kaboom") end }',
            "lib/helper.lua": "return { x = 1 }",
        })
        p = self.start_daemon(cfg)
        self.wait_for(lambda: self.query("SELECT count(*) FROM runs WHERE script='good' AND status='ok'")[0][0] >= 2,
                      what="two good runs")
        self.wait_for(lambda: self.query("SELECT count(*) FROM runs WHERE script='raises' AND status='error'")[0][0] >= 1,
                      what="an error run")
        code, err = self.stop_daemon(p)
        self.assertEqual(code, 0, err)
        self.assertIn('msg="script rejected"', err)
        self.assertIn("broken.lua", err)
        self.assertNotIn("helper", self.query("SELECT group_concat(script) FROM runs")[0][0] or "")
        error = self.query("SELECT error FROM runs WHERE script='raises' AND status='error'")[0][0]
        self.assertIn("kaboom", error)
        self.assertIn("stack traceback", error)
        state = self.query("SELECT state FROM script_state WHERE script='good'")[0][0]
        self.assertRegex(state, r'"n":\d+')


if __name__ == "__main__":
    harness.main()
