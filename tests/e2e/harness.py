"""Shared pieces of the end-to-end tests: the mock server, temp configs, the real binary.

Every test gets a fresh directory with its own config.lua and database, a mock HTTP server on an
ephemeral 127.0.0.1 port (tests/mock/mock_http.py) and runs the real `candled` binary.
"""
import argparse
import json
import os
import shutil
import signal
import sqlite3
import subprocess
import sys
import tempfile
import time
import unittest
import urllib.request

ARGS = None


def parse_args():
    global ARGS
    p = argparse.ArgumentParser()
    p.add_argument("--candled", required=True)
    p.add_argument("--source", required=True)
    ARGS, rest = p.parse_known_args()
    sys.argv = [sys.argv[0]] + rest


class Mock:
    def __init__(self):
        fixtures = os.path.join(ARGS.source, "fixtures")
        script = os.path.join(ARGS.source, "tests", "mock", "mock_http.py")
        self.proc = subprocess.Popen([sys.executable, script, "--fixtures", fixtures, "--exit-on-stdin-eof"],
                                     stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
        line = self.proc.stdout.readline().split()
        assert line and line[0] == "PORT", "mock did not start"
        self.url = "http://127.0.0.1:%s" % line[1]

    def call(self, method, path, body=None):
        data = json.dumps(body).encode() if body is not None else None
        req = urllib.request.Request(self.url + path, data=data, method=method,
                                     headers={"Content-Type": "application/json"})
        with urllib.request.urlopen(req, timeout=10) as r:
            text = r.read()
            return json.loads(text) if text else None

    def fault(self, **rule):
        return self.call("POST", "/_mock/faults", rule)

    def requests(self, path=None):
        return self.call("GET", "/_mock/requests" + ("?path=" + path if path else ""))

    def close(self):
        self.proc.stdin.close()
        try:
            self.proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()


def lua(value, indent=""):
    """A Python value as Lua source (enough for configs)."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return repr(value)
    if isinstance(value, str):
        return json.dumps(value)
    if isinstance(value, list):
        return "{ " + ", ".join(lua(v) for v in value) + " }"
    if isinstance(value, dict):
        inner = indent + "  "
        items = ",\n".join('%s[%s] = %s' % (inner, json.dumps(k), lua(v, inner)) for k, v in value.items())
        return "{\n" + items + "\n" + indent + "}"
    raise TypeError(value)


def write_atomically(path, text):
    """Write a file as editors do: a temp file, then a rename. A running daemon's watcher (which
    may read at any moment, sooner still on a loaded machine) never sees the file half written."""
    tmp = path + ".tmp"
    with open(tmp, "w") as f:
        f.write(text)
    os.replace(tmp, path)


class Case(unittest.TestCase):
    """A temp directory, a mock, and helpers to run candled against them."""

    def setUp(self):
        self.dir = tempfile.mkdtemp(prefix="candled-e2e-")
        self.mock = Mock()
        self.db_path = os.path.join(self.dir, "data", "candled.db")
        self.procs = []

    def tearDown(self):
        for p in self.procs:
            if p.poll() is None:
                p.kill()
                p.wait()
        self.mock.close()
        shutil.rmtree(self.dir, ignore_errors=True)

    def write_config(self, cfg, scripts=None):
        path = os.path.join(self.dir, "config.lua")
        cfg = dict(cfg)
        cfg.setdefault("http_server", {"listen": "127.0.0.1:0"})   # parallel daemons never share a port
        if scripts is not None:
            sdir = os.path.join(self.dir, "scripts")
            os.makedirs(sdir, exist_ok=True)
            for name, src in scripts.items():
                target = os.path.join(sdir, name)
                os.makedirs(os.path.dirname(target), exist_ok=True)
                if os.path.isfile(src):
                    with open(src) as f:
                        src = f.read()
                write_atomically(target, src)
        write_atomically(path, "return " + lua(cfg) + "\n")
        return path

    def candled(self, *args, env=None, timeout=60, stdin=None):
        e = dict(os.environ, **(env or {}))
        return subprocess.run([ARGS.candled] + list(args), capture_output=True, text=True, timeout=timeout,
                              env=e, input=stdin, cwd=self.dir)

    def start_daemon(self, config, env=None):
        e = dict(os.environ, **(env or {}))
        p = subprocess.Popen([ARGS.candled, "run", "--config", config], stdout=subprocess.PIPE,
                             stderr=subprocess.PIPE, text=True, env=e, cwd=self.dir)
        self.procs.append(p)
        return p

    def stop_daemon(self, p, sig=signal.SIGTERM, timeout=20):
        p.send_signal(sig)
        out, err = p.communicate(timeout=timeout)
        return p.returncode, err

    def query(self, sql, *params):
        con = sqlite3.connect(self.db_path, timeout=10)
        try:
            return con.execute(sql, params).fetchall()
        finally:
            con.close()

    def execute(self, sql, *params):
        """A write, committed (the daemon may be running: SQLite's busy timeout waits for it)."""
        con = sqlite3.connect(self.db_path, timeout=10)
        try:
            with con:
                return con.execute(sql, params).rowcount
        finally:
            con.close()

    def wait_for(self, fn, timeout=30, what="condition"):
        deadline = time.time() + timeout
        while time.time() < deadline:
            try:
                v = fn()
                if v:
                    return v
            except sqlite3.OperationalError:
                pass
            time.sleep(0.05)
        self.fail("timed out waiting for " + what)


def main():
    parse_args()
    unittest.main(verbosity=2)
