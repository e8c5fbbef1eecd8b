#!/usr/bin/env python3
"""Run a command next to a fresh mock HTTP server and a fresh database directory.

usage: run_with_mock.py --fixtures DIR [--ws-mock] -- COMMAND [ARGS...]

Starts tests/mock/mock_http.py on an ephemeral 127.0.0.1 port, then runs COMMAND with
  MOCK_URL=http://127.0.0.1:<port>        the mock's base URL
  CANDLED_DATABASE__PATH=<tmp>/test.db    a database nobody else uses
  TEST_TMPDIR=<tmp>                       scratch space, removed afterwards
  MOCK_WS_URL=ws://127.0.0.1:<port>       with --ws-mock: tests/mock/ws_echo.py (the rt.ws tests)
and exits with COMMAND's exit code. The mock is stopped whatever happens.
"""
import os
import shutil
import subprocess
import sys
import tempfile

HERE = os.path.dirname(os.path.abspath(__file__))


def main():
    args = sys.argv[1:]
    if "--" not in args:
        sys.exit("usage: run_with_mock.py --fixtures DIR -- COMMAND [ARGS...]")
    split = args.index("--")
    opts, cmd = args[:split], args[split + 1:]
    fixtures = opts[opts.index("--fixtures") + 1] if "--fixtures" in opts else os.path.join(HERE, "..", "fixtures")
    tmp = tempfile.mkdtemp(prefix="candled-test-")
    mock = subprocess.Popen([sys.executable, os.path.join(HERE, "mock", "mock_http.py"), "--fixtures", fixtures,
                             "--exit-on-stdin-eof"], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    ws = None
    try:
        line = mock.stdout.readline().split()
        if len(line) != 2 or line[0] != "PORT":
            sys.exit("run_with_mock: the mock did not start")
        env = dict(os.environ, MOCK_URL="http://127.0.0.1:%s" % line[1],
                   CANDLED_DATABASE__PATH=os.path.join(tmp, "test.db"), TEST_TMPDIR=tmp)
        if "--ws-mock" in opts:
            ws = subprocess.Popen([sys.executable, os.path.join(HERE, "mock", "ws_echo.py"), "--exit-on-stdin-eof"],
                                  stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
            wline = ws.stdout.readline().split()
            if len(wline) != 2 or wline[0] != "PORT":
                sys.exit("run_with_mock: the WebSocket mock did not start")
            env["MOCK_WS_URL"] = "ws://127.0.0.1:%s" % wline[1]
        return subprocess.call(cmd, env=env)
    finally:
        if ws:
            ws.stdin.close()
            try:
                ws.wait(timeout=5)
            except subprocess.TimeoutExpired:
                ws.kill()
        mock.stdin.close()
        try:
            mock.wait(timeout=5)
        except subprocess.TimeoutExpired:
            mock.kill()
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
