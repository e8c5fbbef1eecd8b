#!/usr/bin/env python3
"""mock_http.py - local HTTP mock for candled tests and benchmarks (stdlib only, never online).

Usage:
    python3 tests/mock/mock_http.py --fixtures DIR [--host 127.0.0.1] [--port 0]
        [--port-file PATH] [--exit-on-stdin-eof] [--verbose] [--bench-end-ms MS]
        [--spot-max-limit 1000] [--futures-max-limit 1500] [--max-log 50000] [--idle-timeout 60]

Once listening it prints exactly one line "PORT <n>" on stdout (flushed) and, with --port-file,
writes "<n>\\n" to PATH atomically (tmp + rename). SIGTERM/SIGINT exit 0; with --exit-on-stdin-eof
it also exits when stdin reaches EOF (tie its lifetime to a parent's pipe). HTTP/1.1 keep-alive,
Content-Length on every response, one thread per connection, no request logging unless --verbose.

Routes (DIR = --fixtures):
    GET  /static/<path>          DIR/http/<path>; type by extension (.json -> application/json).
    GET  /api/items?page=N       DIR/http/items/page-N.json (N defaults to 1).
    any  /echo                   {"method","path","query","raw_query","headers","body"} of the request.
    GET  /api/v3/klines          Binance spot klines  (limit default 500, max --spot-max-limit).
    GET  /fapi/v1/klines         USDT-M klines        (limit default 500, max --futures-max-limit).
    GET  /dapi/v1/klines         COIN-M klines        (same limits as USDT-M).
    GET  /api/v2/...             GeckoTerminal API replay: see gecko.py (data DIR/geckoterminal/,
                                 --gecko-now, control /_mock/gecko, also cleared by /_mock/reset).
    GET  /api/v3/exchangeInfo, /fapi/v1/exchangeInfo, /dapi/v1/exchangeInfo, /futures/data/...
                                 Binance: see binance.py (data DIR/binance/exchangeInfo_*.json,
                                 control /_mock/binance; its live mode takes over the klines routes
                                 with klines relative to the mock's clock and a strict limiter).
    GET  /api/v3/coins/..., /v8/finance/chart/..., /market/..., /stats/markets, /fundingRates
                                 CoinGecko, Yahoo Finance and Drift: see markets.py (data
                                 DIR/coingecko|yahoo|drift/, --markets-now, control /_mock/markets).
    Anything else: 404 {"error":"not found","path":...}; a known path with the wrong method: 405.

Klines (Binance spot/futures klines): params symbol, interval, startTime, endTime, limit.
    Data: DIR/binance/<api|fapi|dapi>/klines_<SYMBOL>_<interval>.json if present, else
    DIR/binance/klines_<SYMBOL>_<interval>.json (JSON array of 12-element rows, ascending).
    Window: none -> last `limit` rows; startTime -> first `limit` rows with openTime >= startTime;
    endTime -> last `limit` rows with openTime <= endTime; both -> from startTime, not past endTime.
    Errors (HTTP 400, body {"code","msg"}): -1102 symbol/interval missing, -1120 bad interval
    (1s is spot only), -1100 non-numeric startTime/endTime/limit, -1130 limit < 1 or > max,
    -1023 startTime > endTime, -1121 no file for the symbol at any interval. A known symbol with
    no file for the requested interval answers 200 [].
    Every klines response (errors and injected faults too) has "x-mbx-used-weight-1m": the weight
    used this UTC minute, per family (api/fapi/dapi). Spot weight is 2 per request (so requests*2);
    futures use the doc table by limit: [1,100) 1, [100,500) 2, [500,1000] 5, >1000 10.
    Rows are serialized once per file load (reloaded if the file's mtime changes); a page is a
    b",".join of cached row bytes.

BENCH symbols (name starts with "BENCH", no file): rows generated from openTime alone, so any
    BENCH symbol gives identical, reproducible data. I = interval length (1M not supported).
    With m = openTime // I:
        open  = (30000 + m % 1000) + (m % 97)/100            close = open + ((m % 13) - 6)/10
        high  = max(open, close) + (m % 7)*0.05 + 0.01       low   = min(open, close) - (m % 11)*0.05
        volume = 1 + (m % 5000)*0.00012345                   quote = volume * close (floored at 1e-8)
        trades = 100 + m % 900                               takerBase = volume*((m % 10) + 1)/20 (floored)
        takerQuote = takerBase * close; closeTime = openTime + I - 1; decimals as 8-decimal strings.
    startTime given: first openTime = startTime rounded up to a multiple of I, then up to `limit`
    rows, none with openTime > endTime (if given) nor openTime >= --bench-end-ms (if given; exclusive,
    so --bench-end-ms = start + N*I yields exactly N rows). Without startTime the page ends at
    endTime, else at --bench-end-ms (exclusive), else at the current (open) candle; it holds the
    `limit` rows before that. Pages are cached in an LRU of 64 entries keyed by
    (symbol, interval, first openTime, count).

Fault injection by query parameter (any route; removed before routing and from the logged query):
    _status=N        respond N with {"code":N,"msg":"injected"} (no body for 1xx/204/304)
    _delay=SECONDS   sleep (float) before responding
    _reset=1         abort the TCP connection with RST (SO_LINGER 0) instead of responding
    _truncate=N      full Content-Length header but only N body bytes, then close (FIN)
    _gzip=1          gzip the body + Content-Encoding: gzip, if Accept-Encoding has gzip
    _retry_after=S   add a Retry-After: S header
    _drip=SECONDS    send the body in ~16 small chunks spread over SECONDS

Control API (never recorded, never counted, never faulted):
    POST   /_mock/faults     add a rule (or a JSON array of rules); answers {"ok":true,"ids":[...]}
        {"path": "/api/v3/klines",      exact path; omitted, null or "*" = any path
         "method": "GET",               optional
         "match": {"startTime": "123"}, optional; every key must equal the request's first value
         "status": 429, "body": {...},  body defaults to {"code":status,"msg":"injected"}
         "raw_body": "text", "content_type": "text/html",   non-JSON body instead of "body"
         "headers": {"X-A": "1"},       extra response headers
         "delay": 0, "reset": false, "truncate": null, "retry_after": 2, "gzip": false, "drip": 0,
         "after": 0, "times": 1}        let `after` matching requests through, then fault the next
                                        `times` (-1 = forever). A rule without status/reset/truncate
                                        modifies the normal response (e.g. delay only).
        Every matching rule counts every matching request; the first (oldest) rule that is due
        applies; query-parameter faults override rule fields.
    GET    /_mock/faults     the rules with their "seen" / "fired" counters
    DELETE /_mock/faults     remove all rules
    GET    /_mock/requests   recorded requests, oldest first (?path=P filters):
                             {"method","path","query" (first values),"headers" (lower-case names),
                              "time" (epoch float),"status" (int sent, "reset", or null while in
                              flight),"fault" (injected settings or null)}; at most --max-log kept.
                             Requests the limiter saw also have "weight" and "limiter" ("admit",
                             429 or 418).
    DELETE /_mock/requests   clear the log
    GET    /_mock/stats      {"requests": n, "by_path": {...}, "by_status": {...},
                              "connections": TCP connections that carried >= 1 non-control request,
                              "connections_total": every accepted TCP connection}
    DELETE /_mock/stats      zero the counters (connections too)
    POST   /_mock/limiter    enable the rate limiter (below), replacing its config, zeroing its
                             counters; answers the counters plus "ok"; 400 on an unknown key or a
                             bad value. {"limit": 0} disables it.
    GET    /_mock/limiter    {"enabled","limit","window","kind","retry_after","ban","prefix",
                              "used" (weight in the window now),"requests","admitted",
                              "admitted_weight","r429","inflight_429","r418",
                              "bans","max_used" (most weight ever in one window),"first_admit",
                              "last_admit" (monotonic s since enabled, or null),"banned_for",
                              "paused_for" (s left, 0 when none)}
    DELETE /_mock/limiter    disable the limiter; its counters stay readable
    POST   /_mock/reset      all of the above: rules, log, stats, weight counters, limiter (off,
                             counters zeroed)
    GET    /_mock/health     {"ok": true}

Rate limiter (Binance / GeckoTerminal style, strict; off until configured). POST /_mock/limiter
    {"limit": 10,           weight units per `window` (the defaults are these values)
     "window": 2.0,         seconds
     "kind": "sliding",     "sliding": a log of (monotonic time, weight) of admitted requests;
                            "fixed": counts reset at every multiple of `window` (monotonic clock)
     "ban": 5.0,            seconds of 418 ban for ignoring a 429
     "prefix": "/",         only paths starting with this are limited; /_mock/* never are
     "weight_param": "_w",  query parameter with the request's weight (default 1, non-integer 1,
                            negative 0); removed before routing/logging if it starts with "_"
     "used_header": "X-Used-Weight",  weight used in the window after admitting (like Binance's
                            X-MBX-USED-WEIGHT-1M) on admitted responses and 429s; null = none;
                            replaces a same-named header (e.g. the klines weight header)
     "retry_after": null}   Retry-After of 429s: a number; "computed" (below); "none" = no header
                            (GeckoTerminal sends none; the server's pause is the computed one);
                            null = "none" on GeckoTerminal routes (/api/v2/), else "computed"
     "delay_429": 0,        seconds a 429 takes to be written (a busy server answers late: requests
                            sent meanwhile are on the wire when it arrives)
     "grace": 0.05}         seconds after a 429 was written within which an arriving request was
                            still sent before the client could read it (loopback, the client's
                            loop, this server's thread scheduling); later ones ignored it
    Each limited request (counted in "requests"), under one lock, now = time.monotonic(), arrived =
    when its handler started (before its body was read):
    1. banned (now < ban end): 418 {"code":-1003,"msg":"banned"}, Retry-After = ceil(seconds left).
    2. paused (a 429 was sent and its pause has not passed): a request that arrived more than
       `grace` after that 429 was delivered (written out) ignored it: start a ban of `ban` seconds
       ("bans" += 1) and answer 418 as in 1. One that arrived earlier was already on the wire: 429
       again, same pause ("inflight_429" += 1, and "r429").
    3. expire old weight (sliding: log entries at least `window` old; fixed: the count of an earlier
       window); if used + weight > limit: 429 {"code":-1003,"msg":"rate limited"}; the pause lasts
       ceil(seconds until enough old entries expire for this weight to fit, or the fixed window
       ends; `window` if it never fits), at least 1, or "retry_after" when it is a number; the
       Retry-After header says so unless in "none" mode. 429/418 skip fault rules, query faults
       and routing.
    4. else admit: log (now, weight) and handle the request normally, adding used_header.
"""
import argparse
import bisect
import collections
import glob
import gzip
import json
import math
import os
import signal
import socket
import struct
import sys
import threading
import time
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, unquote, urlsplit

import gecko  # noqa: E402  (GeckoTerminal routes; lives next to this file)
import markets  # noqa: E402  (CoinGecko, Yahoo Finance and Drift routes; next to this file)
import binance  # noqa: E402  (Binance exchangeInfo, live klines, ratios, strict limiter; next to this file)

FAULT_PARAMS = ("_status", "_delay", "_reset", "_truncate", "_gzip", "_retry_after", "_drip")

KLINE_ROUTES = {  # path -> API family (weight counters and per-family fixture dirs)
    "/api/v3/klines": "api",
    "/fapi/v1/klines": "fapi",
    "/dapi/v1/klines": "dapi",
}

INTERVAL_MS = {
    "1s": 1000, "1m": 60000, "3m": 180000, "5m": 300000, "15m": 900000, "30m": 1800000,
    "1h": 3600000, "2h": 7200000, "4h": 14400000, "6h": 21600000, "8h": 28800000,
    "12h": 43200000, "1d": 86400000, "3d": 259200000, "1w": 604800000,
    "1M": None,  # calendar month: valid for fixture files, not for BENCH generation
}

JSON_TYPE = "application/json"
BINANCE_JSON_TYPE = "application/json;charset=UTF-8"


def dumps(obj):
    return json.dumps(obj, separators=(",", ":"), ensure_ascii=False).encode("utf-8")


def binance_error(code, msg):
    return 400, dumps({"code": code, "msg": msg})


class KlineError(Exception):
    def __init__(self, code, msg):
        super().__init__(msg)
        self.response = binance_error(code, msg)


# --------------------------------------------------------------------------------------------
# Kline data


class KlineFile:
    """One fixture file: open times (for bisect) and each row's compact JSON bytes."""

    def __init__(self, path, mtime):
        with open(path, "rb") as f:
            rows = json.load(f)
        self.mtime = mtime
        self.opens = [r[0] for r in rows]
        self.rows = [dumps(r) for r in rows]

    def page(self, start, end, limit):
        opens = self.opens
        if start is not None:
            i = bisect.bisect_left(opens, start)
            j = min(i + limit, len(opens))
            if end is not None:
                j = min(j, bisect.bisect_right(opens, end))
        else:
            j = len(opens) if end is None else bisect.bisect_right(opens, end)
            i = max(0, j - limit)
        return b"[" + b",".join(self.rows[i:j]) + b"]" if j > i else b"[]"


def _e8(units):
    """Non-negative integer in 1e-8 units -> "123.45678901"."""
    q, r = divmod(units, 100000000)
    return "%d.%08d" % (q, r)


def _cents(c):
    """Non-negative price in cents -> "30001.01000000"."""
    q, r = divmod(c, 100)
    return "%d.%02d000000" % (q, r)


def bench_row(t, interval_ms):
    """Deterministic kline for openTime t (formula documented in the module docstring).

    Formatted by hand (no json.dumps): the values never need escaping and this runs
    1000 times per uncached benchmark page."""
    m = t // interval_ms
    o = (30000 + m % 1000) * 100 + m % 97          # cents
    c = o + (m % 13 - 6) * 10
    h = max(o, c) + (m % 7) * 5 + 1
    low = min(o, c) - (m % 11) * 5
    vol = 100000000 + (m % 5000) * 12345            # 1e-8 units
    taker = vol * (m % 10 + 1) // 20
    return ('[%d,"%s","%s","%s","%s","%s",%d,"%s",%d,"%s","%s","0"]' % (
        t, _cents(o), _cents(h), _cents(low), _cents(c), _e8(vol), t + interval_ms - 1,
        _e8(vol * c // 100), 100 + m % 900, _e8(taker), _e8(taker * c // 100))).encode("ascii")


class KlineStore:
    def __init__(self, fixtures, bench_end_ms=None, lru_size=64):
        self.dir = os.path.join(fixtures, "binance")
        self.bench_end_ms = bench_end_ms
        self.lock = threading.Lock()
        self.files = {}                          # path -> KlineFile
        self.lru = collections.OrderedDict()     # (symbol, interval, first, count) -> bytes
        self.lru_size = lru_size

    def _file(self, family, symbol, interval):
        """KlineFile for the request, or None when no such file exists."""
        name = "klines_%s_%s.json" % (symbol, interval)
        for path in (os.path.join(self.dir, family, name), os.path.join(self.dir, name)):
            try:
                mtime = os.stat(path).st_mtime_ns
            except OSError:
                continue
            with self.lock:
                kf = self.files.get(path)
            if kf is None or kf.mtime != mtime:
                kf = KlineFile(path, mtime)      # parse outside the lock; last writer wins
                with self.lock:
                    self.files[path] = kf
            return kf
        return None

    def _symbol_known(self, family, symbol):
        pat = "klines_%s_*.json" % glob.escape(symbol)
        return bool(glob.glob(os.path.join(self.dir, family, pat)) or
                    glob.glob(os.path.join(self.dir, pat)))

    def page(self, family, symbol, interval, start, end, limit):
        kf = self._file(family, symbol, interval)
        if kf is not None:
            return kf.page(start, end, limit)
        if symbol.startswith("BENCH"):
            return self._bench_page(symbol, interval, start, end, limit)
        if self._symbol_known(family, symbol):
            return b"[]"
        raise KlineError(-1121, "Invalid symbol.")

    def _bench_page(self, symbol, interval, start, end, limit):
        iv = INTERVAL_MS[interval]
        if iv is None:
            raise KlineError(-1120, "Invalid interval.")
        stop = self.bench_end_ms                 # exclusive bound on openTime, or None
        if end is not None:
            stop = end + 1 if stop is None else min(stop, end + 1)
        if start is not None:
            first = -(-start // iv) * iv         # round up to a multiple of iv
            count = limit
            if stop is not None:
                count = min(count, max(0, -(-(stop - first) // iv)))
        else:
            if stop is None:
                stop = int(time.time() * 1000) + 1
            last = (stop - 1) // iv * iv         # last openTime < stop
            first = max(0, last - (limit - 1) * iv)
            count = max(0, (last - first) // iv + 1)
        if count <= 0:
            return b"[]"
        key = (symbol, interval, first, count)
        with self.lock:
            body = self.lru.get(key)
            if body is not None:
                self.lru.move_to_end(key)
                return body
        body = b"[" + b",".join(bench_row(first + k * iv, iv) for k in range(count)) + b"]"
        with self.lock:
            self.lru[key] = body
            while len(self.lru) > self.lru_size:
                self.lru.popitem(last=False)
        return body


def kline_weight(family, limit):
    if family == "api":
        return 2
    return 1 if limit < 100 else 2 if limit < 500 else 5 if limit <= 1000 else 10


# --------------------------------------------------------------------------------------------
# Shared mutable state: fault rules, request log, counters


class Rule:
    FIELDS = ("status", "body", "raw_body", "content_type", "headers", "delay", "reset",
              "truncate", "retry_after", "gzip", "drip")

    def __init__(self, rid, spec):
        if not isinstance(spec, dict):
            raise ValueError("a rule must be a JSON object")
        self.id = rid
        self.spec = spec
        self.path = spec.get("path")
        self.method = spec.get("method")
        self.match = {k: str(v) for k, v in (spec.get("match") or {}).items()}
        self.after = int(spec.get("after") or 0)
        times = spec.get("times")
        self.times = 1 if times is None else int(times)
        self.seen = 0
        self.fired = 0

    def matches(self, method, path, query):
        if self.path not in (None, "*", path):
            return False
        if self.method and self.method.upper() != method:
            return False
        return all(query.get(k) == v for k, v in self.match.items())

    def fault(self):
        return {k: self.spec[k] for k in self.FIELDS if self.spec.get(k) is not None}

    def as_json(self):
        return dict(self.spec, id=self.id, seen=self.seen, fired=self.fired)


class State:
    def __init__(self, max_log):
        self.lock = threading.Lock()
        self.rules = []
        self.next_rule_id = 1
        self.log = collections.deque(maxlen=max_log) if max_log > 0 else None
        self.weights = {}                        # family -> [minute, used weight]
        self.limiter = Limiter()
        self.reset_stats()

    def reset_stats(self):
        self.requests = 0
        self.by_path = collections.Counter()
        self.by_status = collections.Counter()
        self.connections = 0
        self.connections_total = 0
        self.stats_epoch = getattr(self, "stats_epoch", 0) + 1  # lets handlers re-count after reset

    def add_rules(self, specs):
        with self.lock:
            ids = []
            for spec in specs:
                rule = Rule(self.next_rule_id, spec)
                self.next_rule_id += 1
                self.rules.append(rule)
                ids.append(rule.id)
            return ids

    def pick_fault(self, method, path, query):
        """Count the request against every matching rule; return (rule id, fault) of the first due."""
        chosen = None
        with self.lock:
            for rule in self.rules:
                if not rule.matches(method, path, query):
                    continue
                rule.seen += 1
                due = rule.seen > rule.after and (rule.times < 0 or rule.fired < rule.times)
                if due and chosen is None:
                    rule.fired += 1
                    chosen = (rule.id, rule.fault())
        return chosen

    def record(self, entry):
        with self.lock:
            self.requests += 1
            self.by_path[entry["path"]] += 1
            if self.log is not None:
                self.log.append(entry)

    def sent(self, entry, status):
        with self.lock:
            entry["status"] = status
            self.by_status[str(status)] += 1

    def add_weight(self, family, weight):
        minute = int(time.time() // 60)
        with self.lock:
            w = self.weights.get(family)
            if w is None or w[0] != minute:
                w = self.weights[family] = [minute, 0]
            w[1] += weight
            return w[1]


class Limiter:
    """Strict sliding-window rate limiter with 429 -> 418 ban escalation (Binance-like).

    One instance per server; every method takes self.lock (never the State lock). `clock` is
    time.monotonic unless a test swaps it."""

    DEFAULTS = {"limit": 10, "window": 2.0, "ban": 5.0, "prefix": "/", "weight_param": "_w",
                "used_header": "X-Used-Weight", "retry_after": None, "kind": "sliding",
                "delay_429": 0, "grace": 0.05}
    GECKO_PREFIX = "/api/v2/"                    # GeckoTerminal sends no Retry-After

    def __init__(self, clock=time.monotonic):
        self.lock = threading.Lock()
        self.clock = clock
        self.configure({"limit": 0})

    @classmethod
    def parse(cls, spec):
        """Validate a POST body -> config dict (ValueError on anything odd)."""
        if not isinstance(spec, dict):
            raise ValueError("the limiter config must be a JSON object")
        unknown = sorted(set(spec) - set(cls.DEFAULTS))
        if unknown:
            raise ValueError("unknown limiter key(s): %s" % ", ".join(unknown))
        cfg = dict(cls.DEFAULTS)
        cfg.update({k: v for k, v in spec.items()          # null = default, except these two
                    if v is not None or k in ("retry_after", "used_header")})

        def number(k, minimum, strict=False):
            v = cfg[k]
            if isinstance(v, bool) or not isinstance(v, (int, float)) or v < minimum or \
                    (strict and v == minimum):
                raise ValueError("%s must be a number %s %s" % (k, ">" if strict else ">=", minimum))
            return v

        number("limit", 0)
        if cfg["limit"] > 0:
            number("window", 0, strict=True)
            number("ban", 0)
            if cfg["retry_after"] not in (None, "none", "computed"):
                number("retry_after", 0)
            number("delay_429", 0)
            number("grace", 0)
            if cfg["kind"] not in ("sliding", "fixed"):
                raise ValueError('kind must be "sliding" or "fixed"')
        for k in ("prefix", "weight_param"):
            if not isinstance(cfg[k], str) or not cfg[k]:
                raise ValueError("%s must be a non-empty string" % k)
        if cfg["used_header"] is not None and not isinstance(cfg["used_header"], str):
            raise ValueError("used_header must be a string or null")
        return cfg

    def configure(self, spec):
        """Replace the config and zero every counter; {"limit": 0} leaves the limiter off."""
        cfg = self.parse(spec)
        with self.lock:
            self.cfg = cfg
            self.enabled = cfg["limit"] > 0
            self.log = collections.deque()       # (monotonic time, weight) of admitted requests
            self.used = 0                        # sum of the weights in self.log
            self.ban_until = self.pause_until = 0.0
            self.delivered_at = None             # when the 429 that began the pause was written out
            self.fixed_index = None              # fixed kind: the window the count belongs to
            self.t0 = self.clock()
            self.requests = self.admitted = self.admitted_weight = 0
            self.r429 = self.r418 = self.bans = self.max_used = self.inflight_429 = 0
            self.first_admit = self.last_admit = None

    def disable(self):
        """Stop limiting; counters stay readable."""
        with self.lock:
            self.enabled = False

    def take_weight(self, qs):
        """Pop the weight parameter from parse_qs() output if it is a mock one ("_..."), then
        -> the request's weight (default 1; a non-integer counts 1, a negative one 0)."""
        with self.lock:
            name = self.cfg["weight_param"]
        vals = qs.pop(name, None) if name.startswith("_") else qs.get(name)
        return max(0, _int_or(vals[0], 1)) if vals else 1

    def _expire(self, now):
        window = self.cfg["window"]
        if self.cfg["kind"] == "fixed":
            k = math.floor(now / window)
            if k != self.fixed_index:
                self.fixed_index, self.used = k, 0
                self.log.clear()
            return
        log, horizon = self.log, now - window
        while log and log[0][0] <= horizon:
            self.used -= log.popleft()[1]

    def _wait(self, now, weight):
        """Seconds until `weight` fits (at least 1, whole): the server's pause after a 429."""
        cfg = self.cfg
        if cfg["kind"] == "fixed":
            wait = (self.fixed_index + 1) * cfg["window"] - now
        else:                                    # until enough old weight leaves the window
            wait, freed = cfg["window"], 0
            for t, w in self.log:
                freed += w
                if self.used - freed + weight <= cfg["limit"]:
                    wait = t + cfg["window"] - now
                    break
        return max(1, math.ceil(wait))

    def _announce(self, path):
        ra = self.cfg["retry_after"]
        if ra is None:
            return "none" if path.startswith(self.GECKO_PREFIX) else "computed"
        return ra

    def delivered(self):
        """A 429 was written out: requests arriving from now on while paused ignored it."""
        with self.lock:
            if self.delivered_at is None and self.clock() < self.pause_until:
                self.delivered_at = self.clock()

    def check(self, path, weight, arrived=None):
        """Decide one request. -> None when not limited, else (status, headers, body):
        status 0 = admitted (headers to add to the normal response), 429 or 418."""
        with self.lock:
            if not self.enabled or not path.startswith(self.cfg["prefix"]):
                return None
            cfg, now = self.cfg, self.clock()
            arrived = now if arrived is None else arrived
            self.requests += 1
            announce = self._announce(path)
            if now < self.pause_until and now >= self.ban_until and \
                    (self.delivered_at is None or arrived < self.delivered_at + cfg["grace"]):
                self.r429 += 1                   # on the wire before the 429 went out: same pause
                self.inflight_429 += 1
                headers = [] if announce == "none" else \
                    [("Retry-After", str(max(1, math.ceil(self.pause_until - now))))]
                return 429, headers, dumps({"code": -1003, "msg": "rate limited"})
            if now < self.ban_until or now < self.pause_until:
                if now >= self.ban_until:        # ignored a delivered 429: ban
                    self.ban_until = now + cfg["ban"]
                    self.pause_until = 0.0
                    self.bans += 1
                self.r418 += 1
                wait = max(1, math.ceil(self.ban_until - now))
                return 418, [("Retry-After", str(wait))], dumps({"code": -1003, "msg": "banned"})
            self._expire(now)
            if self.used + weight > cfg["limit"]:
                wait = announce if isinstance(announce, (int, float)) else self._wait(now, weight)
                if float(wait).is_integer():
                    wait = int(wait)
                self.pause_until = now + wait
                self.delivered_at = None
                self.r429 += 1
                headers = [] if announce == "none" else [("Retry-After", str(wait))]
                if cfg["used_header"]:
                    headers.append((cfg["used_header"], str(self.used)))
                return 429, headers, dumps({"code": -1003, "msg": "rate limited"})
            self.log.append((now, weight))
            self.used += weight
            self.admitted += 1
            self.admitted_weight += weight
            self.max_used = max(self.max_used, self.used)
            if self.first_admit is None:
                self.first_admit = now - self.t0
            self.last_admit = now - self.t0
            return 0, [(cfg["used_header"], str(self.used))] if cfg["used_header"] else [], None

    def counters(self):
        with self.lock:
            now, cfg = self.clock(), self.cfg
            if self.enabled:
                self._expire(now)
            r3 = lambda v: None if v is None else round(v, 3)  # noqa: E731
            return {"enabled": self.enabled, "limit": cfg["limit"], "window": cfg["window"],
                    "kind": cfg["kind"], "retry_after": cfg["retry_after"],
                    "inflight_429": self.inflight_429,
                    "ban": cfg["ban"], "prefix": cfg["prefix"], "used": self.used,
                    "requests": self.requests, "admitted": self.admitted,
                    "admitted_weight": self.admitted_weight, "r429": self.r429,
                    "r418": self.r418, "bans": self.bans, "max_used": self.max_used,
                    "first_admit": r3(self.first_admit), "last_admit": r3(self.last_admit),
                    "banned_for": r3(max(0.0, self.ban_until - now)),
                    "paused_for": r3(max(0.0, self.pause_until - now))}


# --------------------------------------------------------------------------------------------
# HTTP


class MockServer(ThreadingHTTPServer):
    daemon_threads = True
    block_on_close = False
    request_queue_size = 256
    allow_reuse_address = True

    def __init__(self, addr, opts):
        self.opts = opts
        self.state = State(opts.max_log)
        self.klines = KlineStore(opts.fixtures, opts.bench_end_ms)
        self.http_dir = os.path.realpath(os.path.join(opts.fixtures, "http"))
        self.gecko = gecko.Gecko(opts)
        self.markets = markets.Markets(opts)
        self.binance = binance.Binance(opts)
        super().__init__(addr, Handler)

    def get_request(self):
        conn, addr = super().get_request()
        with self.state.lock:
            self.state.connections_total += 1
        return conn, addr

    def handle_error(self, request, client_address):
        if self.opts.verbose:  # client hang-ups during drip/delay are expected; stay quiet
            super().handle_error(request, client_address)


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "candled-mock/1"
    sys_version = ""

    def setup(self):
        self.timeout = self.server.opts.idle_timeout or None  # idle keep-alive connections
        super().setup()
        self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.counted_epoch = 0               # stats epoch in which this connection was counted

    def log_message(self, fmt, *args):
        if self.server.opts.verbose:
            super().log_message(fmt, *args)

    # Every method goes through one dispatcher.
    def do_GET(self):
        self.dispatch()

    do_HEAD = do_POST = do_PUT = do_DELETE = do_PATCH = do_OPTIONS = do_GET

    # ---- request plumbing

    def read_body(self):
        if "chunked" in self.headers.get("Transfer-Encoding", "").lower():
            parts = []
            while True:
                size = int(self.rfile.readline().split(b";")[0].strip() or b"0", 16)
                if size == 0:
                    while self.rfile.readline() not in (b"\r\n", b"\n", b""):
                        pass                      # trailers
                    return b"".join(parts)
                parts.append(self.rfile.read(size))
                self.rfile.readline()
        n = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(n) if n > 0 else b""

    def header_dict(self):
        d = {}
        for k, v in self.headers.items():
            k = k.lower()
            d[k] = d[k] + ", " + v if k in d else v
        return d

    def dispatch(self):
        st = self.server.state
        arrived = st.limiter.clock()             # before the body: when the request was on the wire
        self.arrived, self.after_send = arrived, None
        url = urlsplit(self.path)
        path = unquote(url.path)
        qs = parse_qs(url.query, keep_blank_values=True)
        body = self.read_body()
        if path.startswith("/_mock/"):
            status, payload = self.control(path, qs, body)
            return self.send(status, dumps(payload), [("Content-Type", JSON_TYPE)])

        qfault = {k[1:]: qs.pop(k)[0] for k in FAULT_PARAMS if k in qs}
        weight = st.limiter.take_weight(qs)
        query = {k: v[0] for k, v in qs.items()}
        with st.lock:
            if self.counted_epoch != st.stats_epoch:
                self.counted_epoch = st.stats_epoch
                st.connections += 1
        entry = {"method": self.command, "path": path, "query": query,
                 "headers": self.header_dict(), "time": time.time(), "status": None, "fault": None}
        limited = st.limiter.check(path, weight, arrived)
        limit_headers = []
        if limited is not None:
            entry["weight"] = weight
            entry["limiter"] = limited[0] or "admit"
        st.record(entry)
        if limited is not None:
            status, limit_headers, payload = limited
            if status:                           # 429/418: before rules, faults and routing
                st.sent(entry, status)
                if status == 429 and st.limiter.cfg["delay_429"]:
                    time.sleep(st.limiter.cfg["delay_429"])
                if status == 429:                # marked as the write starts: once sent, the client's
                    st.limiter.delivered()       # next request may be checked before this thread runs
                self.send(status, payload, [("Content-Type", JSON_TYPE)] + limit_headers)
                return

        picked = st.pick_fault(self.command, path, query)
        fault = dict(picked[1]) if picked else {}
        fault.update(qfault)
        if fault:
            entry["fault"] = dict(fault, rule=picked[0]) if picked else fault

        family = KLINE_ROUTES.get(path)
        used = None
        if family and not self.server.binance.live:
            used = st.add_weight(family, kline_weight(family, _int_or(query.get("limit"), 500)))

        try:
            if fault.get("delay"):
                time.sleep(float(fault["delay"]))
            if _truthy(fault.get("reset")):
                st.sent(entry, "reset")
                return self.reset_connection()
            if fault.get("status") is not None:
                status = int(fault["status"])
                if fault.get("raw_body") is not None:
                    payload = str(fault["raw_body"]).encode("utf-8")
                elif fault.get("body") is not None:
                    payload = dumps(fault["body"])
                else:
                    payload = dumps({"code": status, "msg": "injected"})
                headers = [("Content-Type", fault.get("content_type") or JSON_TYPE)]
            else:
                status, payload, headers = self.route(path, query, body, family)
            truncate = None if fault.get("truncate") is None else int(fault["truncate"])
            drip = float(fault.get("drip") or 0)
        except Exception as e:  # bad fault value or broken fixture: say so instead of hanging up
            status, payload, headers = 500, dumps({"error": "mock error", "detail": repr(e)}), \
                [("Content-Type", JSON_TYPE)]
            truncate, drip = None, 0.0

        if used is not None:
            headers.append(("x-mbx-used-weight-1m", str(used)))
        for name, value in limit_headers:        # the limiter's used header wins over a same-named one
            headers = [h for h in headers if h[0].lower() != name.lower()] + [(name, value)]
        if fault.get("retry_after") is not None:
            headers.append(("Retry-After", str(fault["retry_after"])))
        for k, v in (fault.get("headers") or {}).items():
            headers.append((k, str(v)))
        if _truthy(fault.get("gzip")) and "gzip" in self.headers.get("Accept-Encoding", "").lower():
            payload = gzip.compress(payload, mtime=0)
            headers.append(("Content-Encoding", "gzip"))
            headers.append(("Vary", "Accept-Encoding"))

        st.sent(entry, status)
        self.send(status, payload, headers, truncate=truncate, drip=drip)
        if self.after_send:                      # e.g. a markets limiter's 429 was delivered
            self.after_send()

    def send(self, status, payload, headers, truncate=None, drip=0.0):
        """Write the whole response; headers and a small body go out in one write."""
        if status < 200 or status in (204, 304):
            payload = b""
        try:
            reason = HTTPStatus(status).phrase
        except ValueError:
            reason = "Mock"
        lines = ["HTTP/1.1 %d %s" % (status, reason),
                 "Server: " + self.server_version,
                 "Date: " + self.date_time_string()]
        lines += ["%s: %s" % kv for kv in headers]
        if status >= 200 and status not in (204, 304):
            lines.append("Content-Length: %d" % len(payload))
        if truncate is not None:
            payload = payload[:max(0, truncate)]
            self.close_connection = True          # peer sees EOF before Content-Length is met
        elif self.close_connection:
            lines.append("Connection: close")
        else:
            lines.append("Connection: keep-alive")
        head = ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")
        if self.command == "HEAD":
            payload = b""
        self.log_request(status, len(payload))
        if drip > 0 and payload:
            self.wfile.write(head)
            step = -(-len(payload) // 16)         # ~16 chunks (fewer for tiny bodies)
            chunks = range(0, len(payload), step)
            for k in chunks:
                time.sleep(drip / len(chunks))
                self.wfile.write(payload[k:k + step])
        else:
            self.wfile.write(head + payload)

    def reset_connection(self):
        """Abort with RST: SO_LINGER {on, 0} then close the fd (rfile holds a ref, close it too)."""
        self.close_connection = True
        try:
            self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        except OSError:
            pass
        self.rfile.close()
        self.connection.close()

    # ---- control API

    def control(self, path, qs, body):
        st = self.server.state
        m = self.command
        if path == "/_mock/faults":
            if m == "POST":
                try:
                    spec = json.loads(body or b"{}")
                    ids = st.add_rules(spec if isinstance(spec, list) else [spec])
                except (ValueError, TypeError) as e:
                    return 400, {"ok": False, "error": str(e)}
                return 200, {"ok": True, "ids": ids}
            if m == "GET":
                with st.lock:
                    return 200, [r.as_json() for r in st.rules]
            if m == "DELETE":
                with st.lock:
                    st.rules.clear()
                return 200, {"ok": True}
        elif path == "/_mock/requests":
            if m == "GET":
                want = qs.get("path", [None])[0]
                with st.lock:
                    log = [dict(e) for e in (st.log or ()) if want is None or e["path"] == want]
                return 200, log
            if m == "DELETE":
                with st.lock:
                    if st.log is not None:
                        st.log.clear()
                return 200, {"ok": True}
        elif path == "/_mock/stats":
            if m == "GET":
                with st.lock:
                    return 200, {"requests": st.requests, "by_path": dict(st.by_path),
                                 "by_status": dict(st.by_status), "connections": st.connections,
                                 "connections_total": st.connections_total}
            if m == "DELETE":
                with st.lock:
                    st.reset_stats()
                return 200, {"ok": True}
        elif path == "/_mock/limiter":
            if m == "POST":
                try:
                    st.limiter.configure(json.loads(body or b"{}"))
                except (ValueError, TypeError) as e:
                    return 400, {"ok": False, "error": str(e)}
                return 200, dict(st.limiter.counters(), ok=True)
            if m == "GET":
                return 200, st.limiter.counters()
            if m == "DELETE":
                st.limiter.disable()
                return 200, {"ok": True}
        elif path == "/_mock/reset":
            if m == "POST":
                with st.lock:
                    st.rules.clear()
                    if st.log is not None:
                        st.log.clear()
                    st.weights.clear()
                    st.reset_stats()
                st.limiter.configure({"limit": 0})
                self.server.gecko.reset()
                self.server.markets.reset()
                self.server.binance.reset()
                return 200, {"ok": True}
        elif path == "/_mock/gecko":
            return self.server.gecko.control(m, body)
        elif path == "/_mock/markets":
            return self.server.markets.control(m, body)
        elif path in ("/_mock/binance", "/_mock/binance/bar"):
            return self.server.binance.control(m, path, qs, body)
        elif path == "/_mock/health":
            return 200, {"ok": True}
        else:
            return 404, {"error": "not found", "path": path}
        return 405, {"error": "method not allowed", "path": path}

    # ---- routes

    def route(self, path, query, body, family):
        method = self.command
        if self.server.binance.handles(path):
            r = self.server.binance.route(method, path, query, self.arrived, self.server.state.limiter.clock)
            if len(r) == 4:
                self.after_send = r[3]
            return r[:3]
        if family:
            if method not in ("GET", "HEAD"):
                return self.not_allowed(path)
            status, payload = self.klines(family, query)
            return status, payload, [("Content-Type", BINANCE_JSON_TYPE)]
        if path.startswith("/api/v2/"):
            return self.server.gecko.route(method, path, query, self.headers)
        if self.server.markets.api_of(path):
            r = self.server.markets.route(method, path, query, self.headers, self.arrived)
            if len(r) == 4:
                self.after_send = r[3]
            return r[:3]
        if path == "/echo":
            return 200, dumps({"method": method, "path": path, "query": query,
                               "raw_query": urlsplit(self.path).query,
                               "headers": self.header_dict(),
                               "body": body.decode("utf-8", "replace")}), [("Content-Type", JSON_TYPE)]
        if path.startswith("/static/"):
            if method not in ("GET", "HEAD"):
                return self.not_allowed(path)
            return self.static(path[len("/static/"):], path)
        if path == "/api/items":
            if method not in ("GET", "HEAD"):
                return self.not_allowed(path)
            page = query.get("page") or "1"
            if not page.isdigit():
                return self.not_found(path)
            return self.static("items/page-%d.json" % int(page), path)
        return self.not_found(path)

    def not_found(self, path):
        return 404, dumps({"error": "not found", "path": path}), [("Content-Type", JSON_TYPE)]

    def not_allowed(self, path):
        return 405, dumps({"error": "method not allowed", "path": path}), [("Content-Type", JSON_TYPE)]

    def static(self, rel, path):
        root = self.server.http_dir
        full = os.path.realpath(os.path.join(root, rel))
        if not full.startswith(root + os.sep) or not os.path.isfile(full):
            return self.not_found(path)
        with open(full, "rb") as f:
            data = f.read()
        return 200, data, [("Content-Type", content_type(full))]

    def klines(self, family, q):
        try:
            symbol, interval = q.get("symbol"), q.get("interval")
            for name, val in (("symbol", symbol), ("interval", interval)):
                if not val:
                    raise KlineError(-1102, "Mandatory parameter '%s' was not sent, was empty/null, "
                                            "or malformed." % name)
            if interval not in INTERVAL_MS or (interval == "1s" and family != "api"):
                raise KlineError(-1120, "Invalid interval.")
            start, end, limit = (_param_int(q, k) for k in ("startTime", "endTime", "limit"))
            max_limit = self.server.opts.spot_max_limit if family == "api" \
                else self.server.opts.futures_max_limit
            if limit is None:
                limit = 500
            if limit < 1 or limit > max_limit:
                raise KlineError(-1130, "Invalid data sent for a parameter.")
            if start is not None and end is not None and start > end:
                raise KlineError(-1023, "Start time is greater than end time.")
            return 200, self.server.klines.page(family, symbol, interval, start, end, limit)
        except KlineError as e:
            return e.response


def _param_int(q, name):
    v = q.get(name)
    if v is None or v == "":
        return None
    if not v.isdigit() or len(v) > 20:
        raise KlineError(-1100, "Illegal characters found in parameter '%s'; legal range is "
                                "'^[0-9]{1,20}$'." % name)
    return int(v)


def _int_or(v, default):
    try:
        return int(v)
    except (TypeError, ValueError):
        return default


def _truthy(v):
    return v not in (None, False, 0, "", "0", "false", "False")


def content_type(path):
    ext = os.path.splitext(path)[1].lower()
    return {".json": JSON_TYPE, ".txt": "text/plain; charset=utf-8", ".csv": "text/csv",
            ".html": "text/html; charset=utf-8", ".xml": "application/xml",
            ".gz": "application/gzip"}.get(ext, "application/octet-stream")




# --------------------------------------------------------------------------------------------
# Main


class _Stop(Exception):
    """Raised by the SIGTERM/SIGINT handler to leave the main wait."""


def parse_args(argv=None):
    p = argparse.ArgumentParser(description="candled mock HTTP server (see module docstring)")
    p.add_argument("--fixtures", required=True, help="fixtures directory (has http/ and binance/)")
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=0, help="0 = ephemeral")
    p.add_argument("--port-file", help="also write the port number here (atomically)")
    p.add_argument("--exit-on-stdin-eof", action="store_true")
    p.add_argument("--verbose", action="store_true", help="log requests and handler errors to stderr")
    p.add_argument("--bench-end-ms", type=int, help="BENCH klines: no openTime >= this (exclusive)")
    p.add_argument("--spot-max-limit", type=int, default=1000)
    p.add_argument("--futures-max-limit", type=int, default=1500)
    p.add_argument("--max-log", type=int, default=50000, help="request log size (0 = keep none)")
    p.add_argument("--idle-timeout", type=float, default=60.0,
                   help="close keep-alive connections idle this long (0 = never)")
    gecko.add_args(p)
    markets.add_args(p)
    return p.parse_args(argv)


def main(argv=None):
    opts = parse_args(argv)
    server = MockServer((opts.host, opts.port), opts)
    port = server.server_address[1]

    # Signals raise in the main thread (setting an Event from a handler can deadlock if the
    # signal lands while the main thread holds the Event's lock); stdin EOF sets the Event.
    stop = threading.Event()

    def on_signal(signum, frame):
        raise _Stop()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    if opts.exit_on_stdin_eof:
        def watch_stdin():
            try:
                while sys.stdin.buffer.read1(65536):
                    pass
            except (OSError, ValueError):
                pass
            stop.set()
        threading.Thread(target=watch_stdin, daemon=True).start()

    threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.2}, daemon=True).start()
    try:                                   # a signal may arrive as early as the port is known
        if opts.port_file:
            tmp = "%s.tmp.%d" % (opts.port_file, os.getpid())
            with open(tmp, "w") as f:
                f.write("%d\n" % port)
            os.replace(tmp, opts.port_file)
        sys.stdout.write("PORT %d\n" % port)
        sys.stdout.flush()
        stop.wait()
    except _Stop:
        pass
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    server.shutdown()
    server.server_close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
