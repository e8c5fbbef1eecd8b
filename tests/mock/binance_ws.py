#!/usr/bin/env python3
"""binance_ws.py - Binance combined kline streams (spot, USDT-M, COIN-M) on 127.0.0.1, stdlib only.

Usage:
    python3 tests/mock/binance_ws.py --fixtures DIR [--port 0] [--scale 60] [--start-ms MS]
        [--tick 0.1] [--exit-on-stdin-eof]
Prints "PORT <n>" once listening.

Routes (a path prefix names the market; Binance's own paths follow it):
    /spot/stream?streams=a@kline_1m/b@kline_1m     spot (also /stream)
    /usdm/market/stream?streams=...                USDT-M, the /market route (also /market/stream);
                                                   the legacy un-routed /usdm/stream is refused (404)
    /coinm/stream?streams=...                      COIN-M
  Stream names are lowercase `<symbol>@kline_<interval>` of a symbol in the market's exchangeInfo
  (FIXTURES/binance/exchangeInfo_<market>.json) or BENCH<n> symbols (any number, generated); an
  unknown or upper-case name, an unknown interval or more than `max_streams` (1024) streams refuse
  the handshake with 400 {"code":2,"msg":"Invalid request: ..."}.

The clock: mock time = start + (real time since start) x scale (ms; default start: two days ago,
scale 60: a mock minute is a real second), so bars close fast and every bar is in the past for
the client's clock and the REST mock (whose live mode then serves the same bars as closed: both use
binance.py's price path, so a closed bar is identical over REST and here).
Messages: every `tick` real seconds each stream gets an update of its forming bar (k.x false, values
as of the mock's now); when a bar closes its final message (k.x true, E 200 ms after T, values equal
to the REST bar) goes first. Message shape as the real captures (fixtures/binance/ws_kline_*).
Pings: the server pings every `ping_every` mock seconds (spot 20, futures 180) with a payload; a
connection with no matching pong `pong_within` mock seconds later (spot 60, futures 600) is cut.
Each connection lives `lifetime` mock seconds (86400: Binance's 24 h), then the server cuts it.

Requests on a connection (JSON text): {"method": "SUBSCRIBE" | "UNSUBSCRIBE", "params": [names],
"id": n} -> {"result": null, "id": n}; "LIST_SUBSCRIPTIONS" -> {"result": [names], "id": n}; a bad
stream or more than max_streams -> {"code": 2, "msg": "Invalid request: ...", "id": n}, bad JSON ->
code 3. More than 5 requests a second (spot; futures 10) cut the connection (closed_by "rate").

Control (plain HTTP on the same port):
  POST /_mock/ws {"scale":, "start_ms":, "tick":, "lifetime":, "ping_every":, "pong_within":,
                  "max_streams":,
                  "drop": {"at": second-of-minute | null,    cut every open connection (no close
                           "down": mock seconds},            frame) when the mock clock next reaches
                                                             that second of a minute (null: now),
                                                             then refuse new ones for `down` seconds
                  "silent": mock seconds,                    open connections send nothing (no
                                                             data, no pings) for that long
                  "down": mock seconds}                      new connections are refused (HTTP 503)
                                                             for that long (an outage)
  GET  /_mock/ws   {"now_ms", "connections": [{id, path, streams, opened_ms, closed_ms, closed_by
                   ("client" | "drop" | "lifetime" | "no_pong" | "rate" | "eof"), sent, finals, pings,
                   pongs, subscribes}],
                   "served": {"<stream>": [open times of the k.x=true bars sent]}, "refused": n}
  POST /_mock/reset  everything back to the command line's settings
"""
import argparse
import asyncio
import json
import os
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import binance  # noqa: E402  (the REST mock: the same price path and exchangeInfo fixtures)
import wsproto  # noqa: E402

ROUTES = {"/spot/stream": "spot", "/stream": "spot", "/usdm/market/stream": "usdm", "/market/stream": "usdm",
          "/coinm/stream": "coinm"}
PING = {"spot": (20, 60), "usdm": (180, 600), "coinm": (180, 600)}
RATE = {"spot": 5, "usdm": 10, "coinm": 10}             # incoming messages a second


class Opts:
    def __init__(self, fixtures):
        self.fixtures = fixtures


class State:
    def __init__(self, args):
        self.args = args
        self.rest = binance.Binance(Opts(args.fixtures))     # exchangeInfo + rows; no server
        self.symbols = {m: {s["symbol"]: s for s in self.rest.info[m]["symbols"]} for m in binance.PREFIX}
        self.reset()

    def reset(self):
        a = self.args
        self.scale = a.scale
        self.t0 = time.time()
        self.start_ms = a.start_ms if a.start_ms else (int(time.time()) // 60 - 2 * 1440) * 60000
        self.tick = a.tick
        self.lifetime = 86400.0
        self.ping_every = self.pong_within = None      # per market unless set
        self.max_streams = 1024
        self.drop_at = None                              # mock ms of a pending drop
        self.down_after_drop = 0
        self.silent_until = 0.0                          # mock ms
        self.down_until = 0.0                            # mock ms
        self.refused = 0                                 # handshakes refused while down
        self.conns = []
        self.served = {}
        self.next_id = 1

    def now_ms(self):
        return self.start_ms + (time.time() - self.t0) * self.scale * 1000.0

    def set_clock(self, scale=None, start_ms=None):
        now = self.now_ms()
        self.t0 = time.time()
        self.start_ms = start_ms if start_ms is not None else now
        if scale is not None:
            self.scale = float(scale)

    def drop_all(self):
        """Cut every open connection without a close frame (once); then refuse new ones for
        `down_after_drop` mock seconds."""
        self.drop_at = None
        if self.down_after_drop:
            self.down_until = self.now_ms() + self.down_after_drop * 1000
            self.down_after_drop = 0
        for c in self.conns:
            if not c.ws.closed:
                c.end("drop")
                c.ws.abort()

    def symbol(self, m, name):
        if name.startswith("BENCH"):
            quote = "USD" if m == "coinm" else "USDT"
            return {"symbol": name, "baseAsset": "BENCH", "quoteAsset": quote, "contractSize": 100}
        return self.symbols[m].get(name)


def kline_msg(st, m, sym, stream, iv_name, t, iv, now_ms, final, cache=None):
    """One combined-stream message for the bar opening at t (ms). `cache` (a dict for one tick)
    shares the bar's values between streams of the same asset (the BENCH symbols)."""
    asset = "BENCH" if sym["symbol"].startswith("BENCH") else sym["symbol"]
    key = (m, asset, t, final)
    row = cache.get(key) if cache is not None else None
    if row is None:
        row = json.loads(st.rest.row(m, sym, t, iv, None if final else now_ms))
        if cache is not None:
            cache[key] = row
    e_ms = t + iv - 1 + 200 if final else int(now_ms)
    first = 100000 + t // 1000
    k = {"t": t, "T": t + iv - 1, "s": sym["symbol"], "i": iv_name, "f": first, "L": first + row[8], "o": row[1],
         "c": row[4], "h": row[2], "l": row[3], "v": row[5], "n": row[8], "x": final, "q": row[7], "V": row[9],
         "Q": row[10], "B": "0"}
    return json.dumps({"stream": stream, "data": {"e": "kline", "E": e_ms, "s": sym["symbol"], "k": k}},
                      separators=(",", ":"))


class Conn:
    def __init__(self, st, ws, market, path, streams):
        self.st, self.ws, self.market, self.path = st, ws, market, path
        self.streams = streams                           # [(name, symbol dict, interval name, iv ms)]
        self.id = st.next_id
        st.next_id += 1
        self.opened = st.now_ms()
        self.closed_ms, self.closed_by = None, None
        self.sent = self.finals = self.pings = self.subscribes = 0
        self.arrivals = []                               # real times of the client's last messages

    def over_rate(self):
        """Binance allows 5 incoming messages a second on spot, 10 on futures (pings and pongs
        count too; the mock counts the client's requests); past it the connection is cut."""
        now = time.time()
        self.arrivals.append(now)
        self.arrivals = [t for t in self.arrivals if t > now - 1.0]
        return len(self.arrivals) > RATE[self.market]


    def info(self):
        return {"id": self.id, "path": self.path, "market": self.market, "streams": [s[0] for s in self.streams],
                "opened_ms": int(self.opened), "closed_ms": self.closed_ms and int(self.closed_ms),
                "closed_by": self.closed_by, "sent": self.sent, "finals": self.finals, "pings": self.pings,
                "subscribes": self.subscribes,
                "pongs": len(self.ws.pongs)}

    def end(self, by):
        if by == "eof" and self.ws.close_received is not None:
            by = "client"
        if self.closed_by is None:
            self.closed_by, self.closed_ms = by, self.st.now_ms()

    async def run(self):
        st, ws = self.st, self.ws
        cur = {}
        now = st.now_ms()
        for name, _, _, iv in self.streams:
            cur[name] = int(now // iv * iv)
        ping_every, pong_within = PING[self.market]
        next_ping = now + (st.ping_every or ping_every) * 1000
        waiting = None                                   # (payload, deadline ms)
        next_tick = time.monotonic()
        while not ws.closed:
            now = st.now_ms()
            if now - self.opened >= st.lifetime * 1000:
                self.end("lifetime")
                ws.abort()
                return
            if st.drop_at is not None and now >= st.drop_at:
                st.drop_all()
                return
            if waiting and waiting[0] in ws.pongs:
                waiting = None
            if waiting and now > waiting[1]:
                self.end("no_pong")
                ws.abort()
                return
            if now >= st.silent_until:
                if now >= next_ping:
                    payload = str(int(now)).encode()
                    await ws.send_ping(payload)
                    self.pings += 1
                    waiting = waiting or (payload, now + (st.pong_within or pong_within) * 1000)
                    next_ping = now + (st.ping_every or ping_every) * 1000
                cache = {}
                for name, sym, iv_name, iv in list(self.streams):
                    t = int(now // iv * iv)
                    if name not in cur:                  # subscribed since the last tick
                        cur[name] = t
                    while cur[name] < t:                  # bars that closed since the last tick
                        ws.write_text_nowait(kline_msg(st, self.market, sym, name, iv_name, cur[name], iv, now, True,
                                                         cache))
                        st.served.setdefault(name, []).append(cur[name])
                        self.finals += 1
                        self.sent += 1
                        cur[name] += iv
                    ws.write_text_nowait(kline_msg(st, self.market, sym, name, iv_name, t, iv, now, False, cache))
                    self.sent += 1
                try:
                    await ws.writer.drain()
                except ConnectionError:
                    return                               # the reader tells how it ended
            else:
                for name, _, _, iv in list(self.streams):  # silence loses the closes of that time
                    cur[name] = int(now // iv * iv)
            next_tick = max(next_tick + st.tick, time.monotonic())   # a steady rate, late ticks not caught up
            await asyncio.sleep(next_tick - time.monotonic())


def schedule_drop(st, at):
    """A timer of its own for a drop at mock ms `at`: the cut comes when the clock reaches it, not
    at the next tick of a connection (a tick is `tick` real seconds, several mock seconds)."""
    loop = asyncio.get_running_loop()

    def fire():
        if st.drop_at != at:
            return                                       # dropped meanwhile, or rescheduled
        left = at - st.now_ms()
        if left > 0:                                     # a timer may fire a little early
            loop.call_later(left / st.scale / 1000.0, fire)
        else:
            st.drop_all()
    loop.call_later(max(0.0, (at - st.now_ms()) / st.scale / 1000.0), fire)


async def control(st, req, writer):
    body = b""
    n = int(req.headers.get("content-length", "0") or 0)
    if n:
        body = await req.reader.readexactly(n)
    if req.path == "/_mock/reset" and req.method == "POST":
        st.drop_all()
        st.reset()
        out = {"ok": True}
    elif req.path == "/_mock/ws" and req.method == "POST":
        spec = json.loads(body or b"{}")
        if "scale" in spec or "start_ms" in spec:
            st.set_clock(spec.get("scale"), spec.get("start_ms"))
        for k in ("tick", "lifetime", "ping_every", "pong_within", "max_streams"):
            if k in spec:
                setattr(st, k, spec[k])
        if "drop" in spec:
            at = (spec["drop"] or {}).get("at")
            st.down_after_drop = float((spec["drop"] or {}).get("down", 0))
            if at is None:
                st.drop_all()
            else:                                        # the next moment at that second of a minute
                now = st.now_ms()
                st.drop_at = now // 60000 * 60000 + float(at) * 1000
                if st.drop_at <= now:
                    st.drop_at += 60000
                schedule_drop(st, st.drop_at)
        if "down" in spec:
            st.down_until = st.now_ms() + float(spec["down"]) * 1000
        if "silent" in spec:
            st.silent_until = st.now_ms() + float(spec["silent"]) * 1000
        out = {"ok": True, "now_ms": int(st.now_ms())}
    elif req.path == "/_mock/ws" and req.method == "GET":
        out = {"now_ms": int(st.now_ms()), "scale": st.scale, "connections": [c.info() for c in st.conns],
               "served": st.served, "refused": st.refused}
    else:
        out = {"error": "not found", "path": req.path}
    data = json.dumps(out).encode()
    status = b"404 Not Found" if "error" in out else b"200 OK"
    writer.write(b"HTTP/1.1 " + status + b"\r\nContent-Type: application/json\r\nContent-Length: %d\r\n"
                 b"Connection: close\r\n\r\n" % len(data) + data)
    await writer.drain()
    writer.close()


def parse_streams(st, market, names):
    """[(name, symbol, interval, iv ms)] or raise ValueError naming the bad stream."""
    out = []
    for name in names:
        sym_name, _, kind = name.partition("@")
        iv_name = kind[len("kline_"):] if kind.startswith("kline_") else None
        sym = st.symbol(market, sym_name.upper()) if sym_name == sym_name.lower() else None
        if not sym or iv_name not in binance.INTERVALS or (iv_name == "1s" and market != "spot"):
            raise ValueError(name)
        out.append((name, sym, iv_name, binance.INTERVALS[iv_name] * 1000))
    return out


async def on_message(st, conn, data):
    """A client's JSON request: SUBSCRIBE, UNSUBSCRIBE, LIST_SUBSCRIPTIONS (Binance's answers)."""
    ws = conn.ws
    try:
        req = json.loads(data)
        method, params, rid = req.get("method"), req.get("params", []), req.get("id")
    except (ValueError, AttributeError):
        await ws.send_text(json.dumps({"code": 3, "msg": "Invalid JSON: expected an object"}))
        return
    if method in ("SUBSCRIBE", "UNSUBSCRIBE") and isinstance(params, list):
        try:
            streams = parse_streams(st, conn.market, params)
        except ValueError as e:
            await ws.send_text(json.dumps({"code": 2, "msg": "Invalid request: unknown stream '%s'" % e, "id": rid}))
            return
        have = {s[0] for s in conn.streams}
        if method == "SUBSCRIBE":
            new = [s for s in streams if s[0] not in have]
            if len(conn.streams) + len(new) > st.max_streams:
                await ws.send_text(json.dumps({"code": 2, "msg": "Invalid request: more than %d streams" %
                                               st.max_streams, "id": rid}))
                return
            conn.streams.extend(new)
        else:
            gone = {s[0] for s in streams}
            conn.streams[:] = [s for s in conn.streams if s[0] not in gone]
        conn.subscribes += 1
        await ws.send_text(json.dumps({"result": None, "id": rid}))
    elif method == "LIST_SUBSCRIPTIONS":
        await ws.send_text(json.dumps({"result": [s[0] for s in conn.streams], "id": rid}))
    else:
        await ws.send_text(json.dumps({"code": 2, "msg": "Invalid request: unknown method", "id": rid}))


async def handle(st, reader, writer):
    req = await wsproto.read_request(reader)
    if req is None:
        writer.close()
        return
    req.reader = reader
    if req.path.startswith("/_mock/"):
        await control(st, req, writer)
        return
    market = ROUTES.get(req.path)
    if market is not None and st.now_ms() < st.down_until:
        st.refused += 1
        await wsproto.reject(writer, 503, "Service Unavailable")
        return
    if market is None:
        await wsproto.reject(writer, 404, "Not Found")
        return
    names = [s for s in req.query.get("streams", "").split("/") if s]
    streams, bad = [], None
    try:
        streams = parse_streams(st, market, names)
    except ValueError as e:
        bad = str(e)
    if bad or not streams or len(streams) > st.max_streams:
        why = ("Invalid request: unknown stream '%s'" % bad if bad else "Invalid request: no streams" if not streams
               else "Invalid request: more than %d streams" % st.max_streams)
        await wsproto.reject(writer, 400, json.dumps({"code": 2, "msg": why}))
        return
    ws = await wsproto.accept(req, reader, writer)
    if ws is None:
        return
    conn = Conn(st, ws, market, req.path, streams)
    st.conns.append(conn)

    async def reader_loop():                             # pongs and client messages
        try:
            while True:
                op, data = await ws.recv()
                if conn.over_rate():
                    conn.end("rate")
                    ws.abort()
                    return
                if op == wsproto.OP_TEXT:
                    await on_message(st, conn, data)
        except wsproto.Closed as e:
            conn.end("client" if e.code != 1006 else "eof")
            ws.closed = True
    rd = asyncio.ensure_future(reader_loop())
    try:
        await conn.run()
        await asyncio.wait_for(asyncio.shield(rd), 1.0)  # a close frame may still be in the buffer
    except (wsproto.Closed, asyncio.TimeoutError):
        pass
    except asyncio.CancelledError:                       # the mock is stopping
        pass
    finally:
        rd.cancel()
        conn.end("eof")
        writer.close()


async def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--fixtures", required=True)
    ap.add_argument("--port", type=int, default=0)
    ap.add_argument("--scale", type=float, default=60.0)
    ap.add_argument("--start-ms", type=int, default=0)
    ap.add_argument("--tick", type=float, default=0.1)
    ap.add_argument("--exit-on-stdin-eof", action="store_true")
    a = ap.parse_args()
    st = State(a)
    server = await asyncio.start_server(lambda r, w: handle(st, r, w), "127.0.0.1", a.port)
    print("PORT %d" % server.sockets[0].getsockname()[1], flush=True)
    if a.exit_on_stdin_eof:
        await asyncio.get_running_loop().run_in_executor(None, sys.stdin.read)
    else:
        await asyncio.Event().wait()
    server.close()


if __name__ == "__main__":
    try:
        asyncio.run(main())
    except KeyboardInterrupt:
        pass
