"""wsproto.py - the server side of RFC 6455 WebSocket for the mocks (asyncio, stdlib only).

    req = await read_request(reader)             # None on EOF / garbage
    ws = await accept(req, reader, writer)       # None (400 sent) when the upgrade is not valid
    await reject(writer, 404, "not found")       # refuse the handshake with an HTTP status
    await ws.send_text("..."); await ws.send_ping(b"x"); await ws.close(1001, "bye")
    op, data = await ws.recv()                   # a whole message (fragments joined); raises Closed

As strict as a real server: the request must be GET with Upgrade: websocket, Connection: Upgrade,
Sec-WebSocket-Version: 13 and a 16-byte base64 key; client frames must be masked, reserved bits
clear, control frames final and at most 125 bytes, text valid UTF-8 (else a close 1002 / 1007).
Pings from the client are answered with a pong echoing the payload (unless auto_pong is False);
every ping and pong received is recorded (ws.pings, ws.pongs).
"""
import asyncio
import base64
import hashlib
import struct
import urllib.parse

GUID = b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11"
OP_CONT, OP_TEXT, OP_BINARY, OP_CLOSE, OP_PING, OP_PONG = 0, 1, 2, 8, 9, 10


class Closed(Exception):
    """The connection ended (close frame, EOF or a protocol error); .code, .reason."""

    def __init__(self, code=1006, reason=""):
        super().__init__("closed %d %s" % (code, reason))
        self.code, self.reason = code, reason


class Request:
    def __init__(self, method, target, headers):
        self.method, self.target, self.headers = method, target, headers
        u = urllib.parse.urlsplit(target)
        self.path = u.path
        self.query = dict(urllib.parse.parse_qsl(u.query, keep_blank_values=True))
        self.raw_query = u.query


async def read_request(reader):
    try:
        head = await reader.readuntil(b"\r\n\r\n")
    except (asyncio.IncompleteReadError, asyncio.LimitOverrunError, ConnectionError):
        return None
    lines = head.decode("latin-1").split("\r\n")
    parts = lines[0].split(" ")
    if len(parts) != 3:
        return None
    headers = {}
    for line in lines[1:]:
        if ":" in line:
            k, v = line.split(":", 1)
            headers[k.strip().lower()] = v.strip()
    return Request(parts[0], parts[1], headers)


async def reject(writer, status, text):
    body = text.encode()
    writer.write(b"HTTP/1.1 %d %s\r\nContent-Type: text/plain\r\nContent-Length: %d\r\nConnection: close\r\n\r\n"
                 % (status, text.encode(), len(body)) + body)
    try:
        await writer.drain()
    except ConnectionError:
        pass
    writer.close()


async def accept(req, reader, writer):
    h = req.headers
    key = h.get("sec-websocket-key", "")
    ok = (req.method == "GET" and h.get("upgrade", "").lower() == "websocket"
          and "upgrade" in h.get("connection", "").lower() and h.get("sec-websocket-version") == "13")
    try:
        ok = ok and len(base64.b64decode(key, validate=True)) == 16
    except ValueError:
        ok = False
    if not ok:
        await reject(writer, 400, "Bad Request")
        return None
    acc = base64.b64encode(hashlib.sha1(key.encode() + GUID).digest())
    writer.write(b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                 b"Sec-WebSocket-Accept: " + acc + b"\r\n\r\n")
    await writer.drain()
    return WS(reader, writer)


def frame(op, payload, fin=True):
    n = len(payload)
    b0 = (0x80 if fin else 0) | op
    if n < 126:
        hdr = struct.pack("!BB", b0, n)
    elif n < 65536:
        hdr = struct.pack("!BBH", b0, 126, n)
    else:
        hdr = struct.pack("!BBQ", b0, 127, n)
    return hdr + payload


class WS:
    def __init__(self, reader, writer, auto_pong=True):
        self.reader, self.writer = reader, writer
        self.auto_pong = auto_pong
        self.pings, self.pongs = [], []
        self.closed = False
        self.close_received = None                       # the client's close code, once one came

    async def send_frame(self, op, payload, fin=True):
        if self.closed:
            raise Closed(1006, "closed")
        self.writer.write(frame(op, payload, fin))
        try:
            await self.writer.drain()
        except ConnectionError:
            self.closed = True
            raise Closed(1006, "connection lost")

    def write_text_nowait(self, s):
        """Queue a text frame without waiting for the socket (callers drain themselves)."""
        self.writer.write(frame(OP_TEXT, s.encode() if isinstance(s, str) else s))

    async def send_text(self, s):
        await self.send_frame(OP_TEXT, s.encode())

    async def send_binary(self, b):
        await self.send_frame(OP_BINARY, b)

    async def send_ping(self, payload=b""):
        await self.send_frame(OP_PING, payload)

    async def close(self, code=1000, reason=""):
        if not self.closed:
            try:
                await self.send_frame(OP_CLOSE, struct.pack("!H", code) + reason.encode())
            except Closed:
                pass
        self.closed = True
        self.writer.close()

    def abort(self):
        """Drop the TCP connection without a close frame (a network cut)."""
        self.closed = True
        self.writer.transport.abort()

    async def _read_frame(self):
        try:
            b0, b1 = await self.reader.readexactly(2)
            n = b1 & 0x7F
            if n == 126:
                n = struct.unpack("!H", await self.reader.readexactly(2))[0]
            elif n == 127:
                n = struct.unpack("!Q", await self.reader.readexactly(8))[0]
            if not b1 & 0x80:
                await self._fail(1002, "client frames must be masked")
            if b0 & 0x70:
                await self._fail(1002, "reserved bits set")
            mask = await self.reader.readexactly(4)
            data = bytearray(await self.reader.readexactly(n))
        except (asyncio.IncompleteReadError, ConnectionError):
            self.closed = True
            raise Closed(1006, "connection lost")
        for i in range(n):
            data[i] ^= mask[i & 3]
        return bool(b0 & 0x80), b0 & 0x0F, bytes(data)

    async def _fail(self, code, reason):
        await self.close(code, reason)
        raise Closed(code, reason)

    async def recv(self):
        """The next data message as (opcode, bytes); control frames are handled on the way."""
        op0, parts = None, []
        while True:
            fin, op, data = await self._read_frame()
            if op >= 8:
                if not fin or len(data) > 125:
                    await self._fail(1002, "bad control frame")
                if op == OP_PING:
                    self.pings.append(data)
                    if self.auto_pong:
                        await self.send_frame(OP_PONG, data)
                elif op == OP_PONG:
                    self.pongs.append(data)
                elif op == OP_CLOSE:
                    code = struct.unpack("!H", data[:2])[0] if len(data) >= 2 else 1005
                    self.close_received = code
                    await self.close(code if code != 1005 else 1000)
                    raise Closed(code, data[2:].decode("utf-8", "replace"))
                else:
                    await self._fail(1002, "unknown opcode")
                continue
            if op == OP_CONT:
                if op0 is None:
                    await self._fail(1002, "continuation without a message")
            else:
                if op0 is not None:
                    await self._fail(1002, "new message inside a fragmented one")
                if op not in (OP_TEXT, OP_BINARY):
                    await self._fail(1002, "unknown opcode")
                op0 = op
            parts.append(data)
            if fin:
                msg = b"".join(parts)
                if op0 == OP_TEXT:
                    try:
                        msg.decode("utf-8")
                    except UnicodeDecodeError:
                        await self._fail(1007, "text is not UTF-8")
                return op0, msg
