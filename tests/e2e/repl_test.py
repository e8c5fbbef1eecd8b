"""End to end: the REPL into the running daemon (`candled repl`, `candled reload`). The real daemon
with a temporary config; inputs through stdin (non-interactive), through a pseudo-terminal (libedit:
completion, continuation prompt, history) and through the raw socket protocol (several clients)."""
import os
import pty
import select
import socket
import stat
import struct
import subprocess
import termios
import time

import harness

# Counts its runs in a table of its own, so a run triggered from the REPL shows.
COUNTER = """
local db = require "rt.db"
return {
  name = "counter",
  every = "1h",
  run = function(ctx)
    db.exec("CREATE TABLE IF NOT EXISTS counted (at REAL)")
    db.exec("INSERT INTO counted (at) VALUES (?)", os.time())
    return true
  end,
}
"""


class Frames:
    """The wire protocol (runtime/repl/proto.h) spoken directly: type byte, u32 length, payload."""

    def __init__(self, path):
        self.s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.s.settimeout(20)
        self.s.connect(path)

    def send(self, kind, payload=b""):
        if isinstance(payload, str):
            payload = payload.encode()
        self.s.sendall(kind.encode() + struct.pack(">I", len(payload)) + payload)

    def recv_exact(self, n):
        data = b""
        while len(data) < n:
            chunk = self.s.recv(n - len(data))
            if not chunk:
                raise EOFError("connection closed")
            data += chunk
        return data

    def frame(self):
        head = self.recv_exact(5)
        n = struct.unpack(">I", head[1:])[0]
        return head[:1].decode(), self.recv_exact(n).decode()

    def eval(self, src):
        """(end type, end payload, printed output)."""
        self.send("E", src)
        out = ""
        while True:
            kind, text = self.frame()
            if kind == "O":
                out += text
            else:
                return kind, text, out

    def close(self):
        self.s.close()


class Repl(harness.Case):
    def setUp(self):
        super().setUp()
        self.config = self.write_config({
            "database": {"path": "data/candled.db"},
            "runtime": {"shutdown_grace": 5},
            "sources": {"mock": {"base_url": self.mock.url}},
        }, scripts={"counter.lua": COUNTER})
        self.sock = os.path.join(self.dir, "data", "candled.sock")

    def start(self, **kw):
        p = self.start_daemon(self.config, **kw)
        self.wait_for(lambda: os.path.exists(self.sock) or p.poll() is not None, what="the REPL socket")
        self.assertIsNone(p.poll(), "the daemon started")
        return p

    def repl(self, stdin, *args):
        return self.candled("repl", "--config", self.config, *args, stdin=stdin)

    # ---- stdin -------------------------------------------------------------------------------

    def test_stdin_expressions_statements_and_exit_codes(self):
        p = self.start()
        r = self.repl("return 1+1\n")
        self.assertEqual((r.returncode, r.stdout, r.stderr), (0, "2\n", ""))
        r = self.repl("1 + 2\n")                       # an expression without `return`
        self.assertEqual(r.stdout, "3\n")
        src = ("x = 40\n"
               "function add(a)\n"                       # a definition across lines
               "  return a + x\n"
               "end\n"
               "return add(2)\n"
               "print('printed', 1, nil)\n"
               "return {b = 1, a = {c = 'x'}, 10, 20}\n"
               "return nil, 'two'\n")
        r = self.repl(src)
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertEqual(r.stdout.splitlines(),
                         ["42", "printed\t1\tnil", '{ 10, 20, a = { c = "x" }, b = 1 }', "nil\ttwo"])
        # an error prints with a traceback, exits 1, and the inputs after it still run
        r = self.repl("error('boom')\nreturn 'after'\n")
        self.assertEqual(r.returncode, 1)
        self.assertIn("repl:1: boom", r.stderr)
        self.assertIn("stack traceback:", r.stderr)
        self.assertEqual(r.stdout, "after\n")
        r = self.repl("return 1 +* 2\n")               # a syntax error that is not incomplete input
        self.assertEqual(r.returncode, 1)
        self.assertIn("unexpected symbol", r.stderr)
        r = self.repl("function f()\n")               # input ends in the middle of a definition
        self.assertEqual(r.returncode, 1)
        self.assertIn("incomplete input", r.stderr)
        self.assertIsNone(p.poll(), "errors never hurt the daemon")
        self.assertEqual(self.stop_daemon(p)[0], 0)
        self.assertFalse(os.path.exists(self.sock), "the socket is removed at shutdown")

    def test_tables_are_depth_and_size_limited_with_sorted_keys(self):
        self.start()
        r = self.repl("t = {} for i = 1, 150 do t[i] = i end return t\n"
                      "return {z = 1, y = 2, [3] = 'c', ['a b'] = true}\n"
                      "return {a = {b = {c = {d = {e = 1}}}}}\n"
                      "c = {} c.self = c return c\n")
        self.assertEqual(r.returncode, 0, r.stderr)
        lines = r.stdout.splitlines()
        self.assertIn("...(50 more)", r.stdout)
        self.assertIn('{ [3] = "c", ["a b"] = true, y = 2, z = 1 }', lines)
        self.assertIn("{ a = { b = { c = { d = {...} } } } }", lines)
        self.assertIn("{ self = <cycle> }", lines)

    def test_waiting_calls_and_helpers(self):
        p = self.start()
        self.wait_for(lambda: self.query("SELECT count(*) FROM counted")[0][0] >= 1, what="the first run")
        r = self.repl("res = http.get(config.get('sources').mock.base_url .. '/static/hello.json')\n"
                      "return res.status\n"
                      "t0 = time.monotonic() time.sleep(0.3) return time.monotonic() - t0 >= 0.29\n"
                      "return sql('SELECT count(*) AS n FROM counted')[1].n\n"
                      "return sql('SELECT ? + ? AS s', 2, 3)[1].s\n"
                      "for _, s in ipairs(status()) do if s.name == 'counter' then return s.name, s.runs >= 1 end end\n"
                      "for _, t in ipairs(tasks()) do if t.name:match('^repl') then return t.state end end\n"
                      "return type(budgets()), type(alerts()), #runs('counter') >= 1\n"
                      "return run('counter')\n")
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertEqual(r.stdout.splitlines(),
                         ["200", "true", "1", "5", "counter\ttrue", "running", "table\ttable\ttrue", "true"])
        self.wait_for(lambda: self.query("SELECT count(*) FROM counted")[0][0] >= 2, what="the run run() asked for")
        r = self.repl("return run('nope')\n")
        self.assertEqual(r.returncode, 1)
        self.assertIn("no script 'nope' is scheduled", r.stderr)
        self.assertNotIn("traceback", r.stderr, "a helper's refusal is one line")
        r = self.repl("return sql('SELECT * FROM no_such_table')\n")
        self.assertEqual(r.returncode, 1)
        self.assertIn("no_such_table", r.stderr)
        # reload(): the report of candled.daemon.reload, a broken script named in it
        r = self.repl("r = reload('counter') return #r.rejected, #r.loaded\n")
        self.assertEqual((r.returncode, r.stdout, r.stderr), (0, "0\t1\n", ""))
        with open(os.path.join(self.dir, "scripts", "broken.lua"), "w") as f:
            f.write("return {name = 'broken', every = '1h', run = function() end\n")
        r = self.repl("r = reload() return #r.rejected, r.rejected[1].name\n")
        self.assertEqual((r.returncode, r.stdout, r.stderr), (0, "1\tbroken\n", ""))
        self.assertIsNone(p.poll())

    def test_cancel_a_task_by_id(self):
        self.start()
        with_sleeper = ("h = task.spawn(function() time.sleep(60) end)\n"
                        "return cancel(h.id), h:status()\n"
                        "return cancel(h.id)\n")
        r = self.repl(with_sleeper)
        self.assertEqual(r.stdout.splitlines(), ["true\tcancelled"])
        self.assertIn("no running task", r.stderr)
        self.assertEqual(r.returncode, 1)

    def test_cannot_connect(self):
        r = self.candled("repl", "--socket", os.path.join(self.dir, "none.sock"), stdin="return 1\n")
        self.assertEqual(r.returncode, 1)
        lines = r.stderr.strip().splitlines()
        self.assertEqual(len(lines), 1, r.stderr)
        self.assertIn("cannot connect to the daemon at " + os.path.join(self.dir, "none.sock"), lines[0])
        r = self.candled("reload", "--config", self.config)
        self.assertEqual(r.returncode, 1)
        self.assertIn("cannot connect to the daemon at " + self.sock, r.stderr)
        r = self.candled("repl", "--config", self.config, "extra")
        self.assertEqual(r.returncode, 2)
        r = self.candled("help", "repl")
        self.assertEqual(r.returncode, 0)
        self.assertIn("usage: candled repl", r.stdout)
        r = self.candled("help", "reload")
        self.assertIn("usage: candled reload", r.stdout)

    def test_reload_command(self):
        self.start()
        r = self.candled("reload", "--config", self.config)
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertIn("loaded:", r.stdout)
        with open(os.path.join(self.dir, "scripts", "broken.lua"), "w") as f:
            f.write("return {name = 'broken', every = '1h', run = function() end\n")
        r = self.candled("reload", "--config", self.config)
        self.assertEqual(r.returncode, 1)
        self.assertIn("rejected: broken (" + os.path.join(self.dir, "scripts", "broken.lua"), r.stdout)
        self.assertEqual(r.stderr, "candled: reload: 1 rejected\n")

    # ---- the socket --------------------------------------------------------------------------

    def test_socket_is_private_and_foreign_paths_are_refused(self):
        p = self.start()
        st = os.lstat(self.sock)
        self.assertTrue(stat.S_ISSOCK(st.st_mode))
        self.assertEqual(stat.S_IMODE(st.st_mode), 0o600)
        self.assertEqual(st.st_uid, os.geteuid())
        # a second daemon (another database) on the same socket: somebody listens there
        other = self.write_config({"database": {"path": "data/other.db"},
                                   "repl": {"socket": "data/candled.sock"}})
        r = self.candled("run", "--config", other)
        self.assertEqual(r.returncode, 1)
        self.assertIn("another process is listening", r.stderr)
        self.assertEqual(self.stop_daemon(p)[0], 0)
        # a regular file where the socket should be: refused, left alone
        with open(self.sock, "w") as f:
            f.write("not a socket")
        r = self.candled("run", "--config", self.config)
        self.assertEqual(r.returncode, 1)
        self.assertIn("repl.socket " + self.sock + ": exists and is not a socket", r.stderr)
        with open(self.sock) as f:
            self.assertEqual(f.read(), "not a socket")
        os.unlink(self.sock)
        if os.geteuid() == 0:                          # root can make a socket another user's
            foreign = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            foreign.bind(self.sock)
            foreign.close()
            os.chown(self.sock, 65534, 65534)
            r = self.candled("run", "--config", self.config)
            self.assertEqual(r.returncode, 1)
            self.assertIn("repl.socket " + self.sock + ": a socket owned by uid 65534, not us", r.stderr)
            self.assertTrue(os.path.exists(self.sock), "another user's socket is left alone")
            os.unlink(self.sock)
        # a stale socket of ours (nobody listening) is replaced
        stale = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        stale.bind(self.sock)
        stale.close()
        p = self.start_daemon(self.config)
        self.wait_for(lambda: self.repl("return 'up'\n").stdout == "up\n" or p.poll() is not None,
                      what="the stale socket replaced")
        self.assertIsNone(p.poll(), "a stale socket does not stop the daemon")
        self.assertEqual(self.stop_daemon(p)[0], 0)
        # repl.enabled = false: no socket
        cfg = self.write_config({"database": {"path": "data/candled.db"}, "repl": {"enabled": False}})
        p = self.start_daemon(cfg)
        time.sleep(1)
        self.assertIsNone(p.poll())
        self.assertFalse(os.path.exists(self.sock))
        self.assertEqual(self.stop_daemon(p)[0], 0)

    def test_socket_path_from_config_and_environment(self):
        cfg = self.write_config({"database": {"path": "data/candled.db"}, "repl": {"socket": "run/r.sock"}})
        p = self.start_daemon(cfg)
        path = os.path.join(self.dir, "run", "r.sock")
        self.wait_for(lambda: os.path.exists(path), what="repl.socket")
        r = self.candled("repl", "--config", cfg, stdin="return 'cfg'\n")
        self.assertEqual(r.stdout, "cfg\n")
        r = self.candled("repl", "--socket", path, stdin="return 'flag'\n")
        self.assertEqual(r.stdout, "flag\n")
        r = self.candled("repl", "--config", cfg, stdin="return 'env'\n",
                         env={"CANDLED_REPL__SOCKET": path})
        self.assertEqual(r.stdout, "env\n")
        self.assertEqual(self.stop_daemon(p)[0], 0)
        self.assertFalse(os.path.exists(path))

    # ---- several clients ---------------------------------------------------------------------

    def test_two_clients_at_once_have_their_own_variables(self):
        p = self.start()
        a, b = Frames(self.sock), Frames(self.sock)
        self.assertEqual(a.eval("x = 'a'"), ("R", "", ""))
        self.assertEqual(b.eval("x = 'b'"), ("R", "", ""))
        self.assertEqual(a.eval("return x"), ("R", "a", ""))
        self.assertEqual(b.eval("return x"), ("R", "b", ""))
        # a waits in time.sleep while b keeps working; print goes to the client that printed
        a.send("E", "print('from a') time.sleep(0.5) return 'a done'")
        self.assertEqual(a.frame(), ("O", "from a\n"))
        self.assertEqual(b.eval("print('from b') return 1"), ("R", "1", "from b\n"))
        self.assertEqual(a.frame(), ("R", "a done"))
        # busy: one input at a time per client
        a.send("E", "time.sleep(0.3)")
        a.send("E", "return 2")
        kind, text = a.frame()
        self.assertEqual(kind, "X")
        self.assertIn("busy", text)
        self.assertEqual(a.frame(), ("R", ""))
        # incomplete input, completion, cancel
        kind, text = a.eval("function f()")[:2]
        self.assertEqual(kind, "M")
        self.assertIn("<eof>", text)
        a.send("C", "sta")
        self.assertEqual(a.frame(), ("L", "status"))
        a.send("C", "rt.ht")
        self.assertEqual(a.frame(), ("L", "rt.http"))
        a.send("C", "http.re")
        self.assertEqual(a.frame(), ("L", "http.request"))
        a.eval("h = task.spawn(function() end)")
        a.send("C", "h:jo")
        self.assertEqual(a.frame(), ("L", "h:join"))
        a.send("C", "x")                             # the session's own globals complete too
        self.assertIn("x", a.frame()[1].split("\n"))
        a.send("E", "time.sleep(30)")
        time.sleep(0.2)
        a.send("K")
        self.assertEqual(a.frame(), ("X", "cancelled"))
        # a client that leaves while its input runs: the input is cancelled
        b.send("E", "time.sleep(30)")
        time.sleep(0.2)
        b.close()
        time.sleep(0.3)
        self.assertEqual(a.eval("for _, t in ipairs(tasks()) do if t.name == 'repl:2' then return 'left' end end"
                                " return 'gone'"), ("R", "gone", ""))
        a.close()
        self.assertIsNone(p.poll())
        self.assertEqual(self.stop_daemon(p)[0], 0)

    def test_a_client_that_stops_reading_is_dropped_and_memory_stays_bounded(self):
        """issue 11, item 4: output queued for a client is bounded; the daemon goes on."""
        p = self.start()
        def rss_mb():
            with open("/proc/%d/status" % p.pid) as f:
                for line in f:
                    if line.startswith("VmRSS:"):
                        return int(line.split()[1]) / 1024
        base = rss_mb()
        stalled = Frames(self.sock)
        stalled.s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        stalled.send("E", "local s = string.rep('x', 60000) for i = 1, 1e6 do print(s) "
                          "if i % 50 == 0 then require('rt.time').sleep(0) end end")
        time.sleep(4)                                  # gigabytes if nothing bounded it
        # the bound is 32 MiB of queued output; the margin covers ASan's quarantine of freed memory
        self.assertLess(rss_mb() - base, 600, "the daemon's memory stayed bounded")
        self.assertIsNone(p.poll())
        other = Frames(self.sock)
        self.assertEqual(other.eval("return 6 * 7")[:2], ("R", "42"))
        other.close()
        # the stalled client was dropped: its stream ends after what was queued
        stalled.s.settimeout(5)
        got = 0
        try:
            while True:
                chunk = stalled.s.recv(1 << 20)
                if not chunk:
                    break
                got += len(chunk)
        except (ConnectionResetError, socket.timeout):
            pass
        self.assertLess(got, 100 << 20)
        stalled.close()
        code, err = self.stop_daemon(p)
        self.assertEqual(code, 0)
        self.assertIn("dropped: it does not read its output", err)

    def test_a_connected_client_sees_the_daemon_stop(self):
        p = self.start()
        a = Frames(self.sock)
        self.assertEqual(a.eval("return 1"), ("R", "1", ""))
        self.assertEqual(self.stop_daemon(p)[0], 0)
        with self.assertRaises(EOFError):
            a.frame()
        a.close()

    # ---- a terminal --------------------------------------------------------------------------

    def test_terminal_completion_continuation_and_history(self):
        self.start()
        history = os.path.join(self.dir, ".candled_history")
        pid, fd = pty.fork()
        if pid == 0:                                      # the child: never returns into unittest
            try:
                os.environ.update({"TERM": "xterm", "HOME": self.dir})
                os.execv(harness.ARGS.candled, [harness.ARGS.candled, "repl", "--config", self.config])
            finally:
                os._exit(127)
        try:
            seen = [b""]

            def expect(needle, timeout=10):
                deadline = time.time() + timeout
                while needle.encode() not in seen[0]:
                    left = deadline - time.time()
                    self.assertGreater(left, 0, "no %r in %r" % (needle, seen[0]))
                    r, _, _ = select.select([fd], [], [], left)
                    if r:
                        try:
                            data = os.read(fd, 4096)
                        except OSError:
                            data = b""
                        self.assertTrue(data, "terminal closed; saw %r" % seen[0])
                        seen[0] += data
                at = seen[0].index(needle.encode()) + len(needle)
                text, seen[0] = seen[0][:at].decode(errors="replace"), seen[0][at:]   # keep what follows
                return text

            def keys(data, editing=True):
                """Type once the client is at its prompt (libedit's raw mode) or, with editing=False,
                running an input (canonical mode): a ^D typed before libedit switched modes would
                reach it as a NUL, as the line discipline turns EOF into one in canonical mode."""
                deadline = time.time() + 10
                while bool(termios.tcgetattr(fd)[3] & termios.ICANON) == editing:
                    self.assertLess(time.time(), deadline, "the terminal mode never changed")
                    time.sleep(0.01)
                os.write(fd, data)

            expect("candled> ")
            keys(b"sta\t")                                 # a global
            self.assertIn("tus", expect("tus"))
            keys(b"()[1] ~= nil\r")
            expect("true")
            expect("candled> ")
            keys(b"return rt.ht\t")                        # a table field
            expect("tp")
            keys(b".request ~= nil\r")
            expect("true")
            expect("candled> ")
            keys(b"function twice(v)\r")                   # continuation prompt
            expect("candled>> ")
            keys(b"return v * 2 end\r")
            expect("candled> ")
            keys(b"twice(21)\r")
            expect("42")
            expect("candled> ")
            keys(b"error('oops')\r")                       # an error, then the session goes on
            expect("oops")
            expect("candled> ")
            keys(b"time.sleep(30)\r")
            keys(b"\x03", editing=False)                   # Ctrl-C cancels the running input
            expect("cancelled")
            expect("candled> ")
            keys(b"return 'still here'\r")
            expect("\r\nstill here\r\n")                  # the result, not the echo
            expect("candled> ")
            keys(b"function unfinished()\r")               # Ctrl-C at a prompt drops the lines so far
            expect("candled>> ")
            keys(b"\x03")
            expect("candled> ")
            keys(b"return 'fresh'\r")
            expect("\r\nfresh\r\n")
            expect("candled> ")
            keys(b"\x04")                                  # Ctrl-D ends the session
            deadline = time.time() + 10
            done, status = os.waitpid(pid, os.WNOHANG)
            while not done:
                self.assertLess(time.time(), deadline, "Ctrl-D did not end the session")
                time.sleep(0.05)
                done, status = os.waitpid(pid, os.WNOHANG)
            pid = 0
            self.assertEqual(os.waitstatus_to_exitcode(status), 0)
        finally:
            if pid:
                os.kill(pid, 9)
                os.waitpid(pid, 0)
            os.close(fd)
        with open(history) as f:
            text = f.read()
        self.assertIn("twice(21)", text)
        self.assertIn("function\\040twice(v)", text)       # libedit's encoding of one multi-line entry


if __name__ == "__main__":
    harness.main()
