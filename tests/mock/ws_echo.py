#!/usr/bin/env python3
"""ws_echo.py - a WebSocket mock on 127.0.0.1 for the rt.ws tests (stdlib only, never online).

Usage: python3 tests/mock/ws_echo.py [--port 0] [--exit-on-stdin-eof]
Prints "PORT <n>" once listening. Routes (query parameters in brackets):
    /echo                  every message back, same type
    /hello                 "hello" first, then as /echo
    /headers               one text message: the handshake's headers as JSON
    /burst [n, size]       n text messages "<i>:<padding to size>" at once (i from 1), then as /echo
    /close [after, code, reason]   `after` messages "m1".."mN", then a close frame (code, reason)
    /drop [after]          `after` messages, then the TCP connection is cut (no close frame)
    /silent                accepts, then never sends
    /ping [payload]        sends a ping; on the matching pong answers "pong:<payload>" (else after
                           5 s "nopong"); then as /echo
    /pingcheck             answers every client ping with a text "ping:<payload>"
    /frag                  one text message "abcdefghi" in three frames, then as /echo
    /big [size]            one binary message of `size` bytes ("x" repeated)
    /reject                refuses the handshake with HTTP 404
    /hang                  never answers the handshake
"""
import argparse
import asyncio
import json
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import wsproto  # noqa: E402


async def echo(ws):
    while True:
        op, data = await ws.recv()
        await ws.send_frame(op, data)


async def handle(reader, writer):
    req = await wsproto.read_request(reader)
    if req is None:
        writer.close()
        return
    if req.path == "/hang":                 # never answers the handshake
        await reader.read()
        writer.close()
        return
    if req.path == "/reject":
        await wsproto.reject(writer, 404, "Not Found")
        return
    ws = await wsproto.accept(req, reader, writer)
    if ws is None:
        return
    q = req.query
    try:
        if req.path == "/hello":
            await ws.send_text("hello")
        elif req.path == "/headers":
            await ws.send_text(json.dumps(req.headers))
        elif req.path == "/burst":
            n, size = int(q.get("n", "100")), int(q.get("size", "0"))
            for i in range(1, n + 1):
                s = "%d:" % i
                ws.write_text_nowait(s + "x" * max(0, size - len(s)))
                if i % 256 == 0:
                    await ws.writer.drain()
            await ws.writer.drain()
        elif req.path in ("/close", "/drop"):
            for i in range(1, int(q.get("after", "0")) + 1):
                await ws.send_text("m%d" % i)
            await asyncio.sleep(0.05)
            if req.path == "/drop":
                ws.abort()
            else:
                await ws.close(int(q.get("code", "1000")), q.get("reason", ""))
            return
        elif req.path == "/silent":
            await ws.reader.read()          # until the client goes away
            return
        elif req.path == "/ping":
            payload = q.get("payload", "p").encode()
            await ws.send_ping(payload)
            recv = asyncio.ensure_future(ws.recv())
            for _ in range(100):
                if payload in ws.pongs or recv.done():
                    break
                await asyncio.sleep(0.05)
            await ws.send_text("pong:" + payload.decode() if payload in ws.pongs else "nopong")
            op, data = await recv
            await ws.send_frame(op, data)
        elif req.path == "/pingcheck":
            seen = 0
            recv = asyncio.ensure_future(ws.recv())
            while not recv.done():
                while seen < len(ws.pings):
                    await ws.send_text("ping:" + ws.pings[seen].decode("utf-8", "replace"))
                    seen += 1
                await asyncio.sleep(0.02)
            await recv
        elif req.path == "/frag":
            await ws.send_frame(wsproto.OP_TEXT, b"abc", fin=False)
            await ws.send_frame(wsproto.OP_CONT, b"def", fin=False)
            await ws.send_frame(wsproto.OP_CONT, b"ghi", fin=True)
        elif req.path == "/big":
            await ws.send_binary(b"x" * int(q.get("size", "100000")))
        elif req.path != "/echo":
            await ws.close(1008, "unknown path")
            return
        await echo(ws)
    except wsproto.Closed:
        pass
    finally:
        writer.close()


async def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--port", type=int, default=0)
    ap.add_argument("--exit-on-stdin-eof", action="store_true")
    a = ap.parse_args()
    server = await asyncio.start_server(handle, "127.0.0.1", a.port)
    print("PORT %d" % server.sockets[0].getsockname()[1], flush=True)
    if a.exit_on_stdin_eof:
        loop = asyncio.get_running_loop()
        await loop.run_in_executor(None, sys.stdin.read)
    else:
        await asyncio.Event().wait()
    server.close()


if __name__ == "__main__":
    try:
        asyncio.run(main())
    except KeyboardInterrupt:
        pass
