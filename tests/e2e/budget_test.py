"""End to end: budgets across processes and scripts. A daily quota and a ban survive a restart;
several scripts share one budget against the mock's strict limiter with no 429, realtime first and
a small backfill not stuck behind a big one; failing runs leave collector metadata and an alert
that resolves when the script recovers."""
import json
import os
import subprocess

import harness

BUDGETS = {
    "quota": {"windows": [{"per": "1s", "limit": 100}, {"per": "1d", "limit": 5}]},
    # a 10% reserve absorbs loopback jitter under a loaded CI machine (1 s windows hold only 100 ms extra)
    "api": {"windows": [{"per": "1s", "limit": 10}], "reserve": 0.1, "ban": {"duration": 30}},
    # declared exactly at the mock's limit: any weight two processes fail to share draws a 429
    "pair": {"windows": [{"per": "2s", "limit": 6}], "ban": {"duration": 30}},
    # declared twice what the mock allows
    "wide": {"windows": [{"per": "2s", "limit": 10}], "ban": {"duration": 30}},
}

SEND = """
    local http, task = require "rt.http", require "rt.task"
    local fns = {}
    for i = 1, 3 do
      fns[i] = function()
        for _ = 1, tonumber(os.getenv("N")) // 3 do
          local res, err, code = http.get(os.getenv("URL") .. "/echo", {budget = "pair"})
          assert(res and res.status == 200, tostring(code or res.status) .. " " .. tostring(err))
        end
        return true
      end
    end
    task.all(table.unpack(fns))
    print("sent", os.getenv("N"))"""


class Budgets(harness.Case):
    def config(self, scripts=None, **extra):
        cfg = {"database": {"path": "data/candled.db"}, "log": {"level": "info"},
               "runtime": {"shutdown_grace": 2}, "budgets": BUDGETS,
               "sources": {"mock": {"base_url": self.mock.url}}}
        cfg.update(extra)
        return self.write_config(cfg, scripts=scripts or {})

    def eval(self, cfg, code):
        r = self.candled("eval", "--config", cfg, "-", stdin=code)
        self.assertEqual(r.returncode, 0, r.stderr)
        return r.stdout

    def test_daily_quota_survives_a_restart(self):
        cfg = self.config()
        out = self.eval(cfg, """
            local budget = require "rt.budget"
            for _ = 1, 3 do assert(budget.admit("quota")) end
            print(budget.status("quota").windows[2].used)""")
        self.assertEqual(out.strip(), "3")
        out = self.eval(cfg, """
            local budget, task, time = require "rt.budget", require "rt.task", require "rt.time"
            local st = budget.status("quota")
            print(st.windows[2].used)
            assert(budget.admit("quota")); assert(budget.admit("quota"))
            task.spawn(budget.admit, "quota")          -- the sixth waits for tomorrow (UTC)
            time.sleep(0.2)
            st = budget.status("quota")
            print(st.windows[2].used, st.queued, st.windows[2].resets_at > os.time())""")
        self.assertEqual(out.split("\n")[:2], ["3", "5\t1\ttrue"])
        row = self.query("SELECT value FROM budget_state WHERE budget = 'quota' AND key = '1d'")
        self.assertEqual(row, [(5.0,)])

    def test_a_ban_survives_a_restart(self):
        cfg = self.config()
        self.mock.fault(path="/echo", status=418, retry_after=30, times=1)
        code = """
            local http = require "rt.http"
            local res, err, code = http.get(os.getenv("URL") .. "/echo", {budget = "api"})
            print(code, err)"""
        r = self.candled("eval", "--config", cfg, "-", stdin=code, env={"URL": self.mock.url})
        self.assertIn("BANNED", r.stdout)
        self.assertIn("HTTP 418", r.stdout)
        sent = len(self.mock.requests())
        r = self.candled("eval", "--config", cfg, "-", stdin=code, env={"URL": self.mock.url})
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertIn("BANNED", r.stdout)
        self.assertIn("banned until", r.stdout)
        self.assertEqual(len(self.mock.requests()), sent, "a restarted process sent nothing while banned")
        alerts = self.query("SELECT kind, subject, resolved FROM alerts WHERE kind = 'banned'")
        self.assertEqual(alerts, [("banned", "api", None)])

    def test_processes_and_restarts_share_the_windows(self):
        """Every admission counts in every process on the database: back to back (a restart a moment
        later) and side by side, two processes never push the mock's strict window over."""
        self.mock.call("POST", "/_mock/limiter", {"limit": 6, "window": 2, "ban": 30, "used_header": None})
        cfg = self.config()
        env = {"URL": self.mock.url, "N": "6"}
        for _ in range(2):                             # the second fills a window the first just used
            r = self.candled("eval", "--config", cfg, "-", stdin=SEND, env=env)
            self.assertEqual((r.returncode, r.stdout.strip()), (0, "sent\t6"), r.stderr)
        e = dict(os.environ, **env)
        procs = [subprocess.Popen([harness.ARGS.candled, "eval", "--config", cfg, "-"], stdin=subprocess.PIPE,
                                  stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=e, cwd=self.dir)
                 for _ in range(2)]
        self.procs.extend(procs)
        for p in procs:
            out, err = p.communicate(SEND, timeout=60)
            self.assertEqual((p.returncode, out.strip()), (0, "sent\t6"), err)
        lim = self.mock.call("GET", "/_mock/limiter")
        self.assertEqual((lim["admitted"], lim["r429"], lim["r418"]), (24, 0, 0))
        self.assertLessEqual(lim["max_used"], 6)
        self.assertGreaterEqual(lim["last_admit"] - lim["first_admit"], 6 * 0.99,
                                "24 requests at 6 per 2 s take three more windows")
        self.assertTrue(os.path.exists(self.db_path + "-budgets"), "the shared file sits by the database")

    def test_a_learned_limit_is_logged_once_shown_and_kept_by_the_next_process(self):
        self.mock.call("POST", "/_mock/limiter", {"limit": 5, "window": 2, "ban": 30,
                                                  "used_header": None})
        cfg = self.config()
        code = """
            local budget, http = require "rt.budget", require "rt.http"
            for _ = 1, tonumber(os.getenv("N")) do
              local res, err, code = http.get(os.getenv("URL") .. "/echo", {budget = "wide"})
              assert(res and res.status == 200, tostring(code) .. " " .. tostring(err))
            end
            local w = budget.status("wide").windows[1]
            print(w.declared, w.effective, w.learned)"""
        r = self.candled("eval", "--config", cfg, "-", stdin=code, env={"URL": self.mock.url, "N": "8"})
        self.assertEqual(r.returncode, 0, r.stderr)
        declared, effective, learned = r.stdout.split()
        self.assertEqual((declared, learned), ("10", "true"))
        self.assertIn(effective, ("5", "6"), "learned 5; a clean window may have probed one higher")
        lines = [ln for ln in r.stderr.splitlines() if "learned" in ln and "alert=" not in ln]
        self.assertEqual(len(lines), 1, r.stderr)
        self.assertIn("declared 10, learned 5", lines[0])
        alert = self.query("SELECT message FROM alerts WHERE kind = 'limit_learned' AND subject = 'wide'"
                           " AND resolved IS NULL")
        self.assertEqual(len(alert), 1)
        # the next process starts from the learned limit, without a request (let alone a 429)
        r = self.candled("eval", "--config", cfg, "-", stdin=code, env={"URL": self.mock.url, "N": "0"})
        self.assertEqual(r.returncode, 0, r.stderr)
        declared, effective, learned = r.stdout.split()
        self.assertEqual((declared, learned), ("10", "true"))
        self.assertLessEqual(int(effective), 7)
        self.assertEqual(self.mock.call("GET", "/_mock/limiter")["r418"], 0)

    def test_a_pause_holds_in_every_process(self):
        """A 429 in one process pauses the budget for the others on the database too."""
        self.mock.fault(path="/echo", status=429, retry_after=3, times=1)
        cfg = self.config()
        code = """
            local http = require "rt.http"
            local res, err, code = http.get(os.getenv("URL") .. "/echo", {budget = "pair", query = {who = os.getenv("WHO")}})
            assert(res and res.status == 200, tostring(code) .. " " .. tostring(err))
            print("ok")"""
        e = dict(os.environ, URL=self.mock.url, WHO="first")
        first = subprocess.Popen([harness.ARGS.candled, "eval", "--config", cfg, "-"], stdin=subprocess.PIPE,
                                 stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=e, cwd=self.dir)
        self.procs.append(first)
        first.stdin.write(code)
        first.stdin.close()
        self.wait_for(lambda: self.query("SELECT 1 FROM alerts WHERE kind = 'rate_limited' AND subject = 'pair'"),
                      what="the first process paused by its 429")
        r = self.candled("eval", "--config", cfg, "-", stdin=code, env={"URL": self.mock.url, "WHO": "second"})
        self.assertEqual((r.returncode, r.stdout.strip()), (0, "ok"), r.stderr)
        self.assertEqual(first.wait(timeout=30), 0, first.stderr.read())
        log = self.mock.requests("/echo")
        self.assertEqual([(e["query"]["who"], e["status"]) for e in log][0], ("first", 429))
        second = [e for e in log if e["query"]["who"] == "second"]
        self.assertEqual(len(second), 1)
        self.assertGreaterEqual(second[0]["time"] - log[0]["time"], 2.9, "the second process waited out the pause")

    def test_scripts_share_a_budget_fairly_with_no_429(self):
        self.mock.call("POST", "/_mock/limiter", {"limit": 10, "window": 1, "ban": 30})
        script = """
            local db, http, task, time = require "rt.db", require "rt.http", require "rt.task", require "rt.time"
            local M = {{ name = "{name}", every = "1h", source = "mock" }}
            function M.run(ctx)
              local fns = {{}}
              for i = 1, {n} do
                fns[i] = function()
                  local res, err = http.get(ctx.config.base_url .. "/echo", {{ budget = "api", priority = "{prio}" }})
                  assert(res and res.status == 200, err or (res and res.status))
                  return true
                end
              end
              task.all(table.unpack(fns))
              db.exec("CREATE TABLE IF NOT EXISTS done (script TEXT, t REAL)")
              db.exec("INSERT INTO done VALUES (?, ?)", "{name}", time.monotonic())
              return true
            end
            return M
        """
        scripts = {
            "bulk.lua": script.format(name="bulk", n=30, prio="backfill"),
            "small.lua": script.format(name="small", n=5, prio="backfill"),
            "live.lua": script.format(name="live", n=5, prio="realtime"),
        }
        cfg = self.config(scripts=scripts)
        p = self.start_daemon(cfg)
        done = self.wait_for(lambda: (lambda r: r if len(r) == 3 else None)(
            self.query("SELECT script FROM done ORDER BY t")), what="three scripts done")
        code, err = self.stop_daemon(p)
        self.assertEqual(code, 0, err)
        order = [r[0] for r in done]
        self.assertEqual(order[0], "live", "realtime goes first")
        self.assertEqual(order, ["live", "small", "bulk"], "the small backfill is not stuck behind the big one")
        lim = self.mock.call("GET", "/_mock/limiter")
        self.assertEqual((lim["admitted"], lim["r429"], lim["r418"]), (40, 0, 0))
        self.assertLessEqual(lim["max_used"], 10)
        runs = self.query("SELECT script, status FROM runs ORDER BY id")
        self.assertEqual(sorted(runs), [("bulk", "ok"), ("live", "ok"), ("small", "ok")])
        m = self.query("SELECT sum(requests), sum(waits) FROM budget_metrics WHERE budget = 'api'")
        self.assertEqual(m[0][0], 40)
        self.assertGreater(m[0][1], 0)

    def test_failing_runs_leave_metadata_and_an_alert_that_resolves(self):
        script = """
            local M = { name = "flaky", every = 0.2 }
            function M.run(ctx)
              ctx.state.n = (ctx.state.n or 0) + 1
              if ctx.state.n <= 3 then return nil, "boom " .. ctx.state.n end
              return true
            end
            return M
        """
        cfg = self.config(scripts={"flaky.lua": script})
        p = self.start_daemon(cfg)
        self.wait_for(lambda: self.query("SELECT 1 FROM alerts WHERE kind = 'run_failing' AND subject = 'flaky'"),
                      what="a run_failing alert")
        self.wait_for(lambda: self.query("SELECT 1 FROM alerts WHERE kind = 'run_failing' AND resolved IS NOT NULL"),
                      what="the alert resolved")
        self.wait_for(lambda: self.query("SELECT 1 FROM collectors WHERE script = 'flaky' AND runs >= 5"),
                      what="five runs")
        code, err = self.stop_daemon(p)
        self.assertEqual(code, 0, err)
        (runs, ok, failures, streak, success_rate, last_success, last_error, mean), = self.query(
            "SELECT runs, ok, failures, consecutive_failures, success_rate, last_success, last_error,"
            " mean_duration FROM collectors WHERE script = 'flaky'")
        self.assertEqual(failures, 3)
        self.assertEqual(ok, runs - 3)
        self.assertEqual(streak, 0)
        self.assertAlmostEqual(success_rate, ok / runs)
        self.assertIsNotNone(last_success)
        self.assertEqual(last_error, "boom 3")
        self.assertGreaterEqual(mean, 0)
        alert = self.query("SELECT message, count FROM alerts WHERE kind = 'run_failing'")
        self.assertEqual(len(alert), 1)
        self.assertIn("3 runs in a row", alert[0][0])
        self.assertIn("boom 3", alert[0][0])
        self.assertIn("run_failing", err)


if __name__ == "__main__":
    harness.main()
