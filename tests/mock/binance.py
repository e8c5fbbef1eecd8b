"""binance.py - Binance spot, USDT-M and COIN-M REST for mock_http.py, as strict as the real API.

Routes (mock_http.py sends them here after its request log and fault injection):
  exchangeInfo  /api/v3/exchangeInfo (weight 20), /fapi/v1/exchangeInfo, /dapi/v1/exchangeInfo (1)
  klines        /api/v3/klines, /fapi/v1/klines, /dapi/v1/klines   (only in live mode, below)
  ratios        /futures/data/topLongShortPositionRatio, /futures/data/topLongShortAccountRatio,
                /futures/data/globalLongShortAccountRatio   (USDT-M by `symbol`, COIN-M by `pair`;
                one mock serves both hosts, so a `pair` or a COIN-M pair as `symbol` means COIN-M)

Data: FIXTURES/binance/exchangeInfo_<spot|usdm|coinm>.json (real captures trimmed to 4 symbols,
rateLimits of today). serverTime is the mock's clock. Symbols can be added, delisted (removed from
exchangeInfo; their klines then answer -1121) and change status through the control API.

Live mode (POST /_mock/binance {"live": true}; off: mock_http's fixture/BENCH klines as before):
  - klines of every listed symbol come from a deterministic price path, relative to the mock's
    clock (time.time() + "offset"): bars from the symbol's listing (futures: onboardDate; spot:
    "listed", default 2019-01-01) up to now; the last bar is the forming one, its close, high,
    low and volumes computed as of the moment of the answer (they change from one request to the
    next; its final values are those served once it has closed). Symbols starting with BENCH
    are any symbol's twin (same rows; pages cached by window, not by symbol).
    Window rules as the real API: startTime -> the `limit` bars from it; endTime -> the `limit`
    bars up to it; both -> from startTime, not past endTime; limit 1..1000 spot, 1..1500 futures
    (-1130); -1121 unknown symbol, -1120 bad interval (1s spot only), -1100 bad number, -1023
    start > end. COIN-M: [5] volume in contracts, [7] base-asset volume (contracts x contractSize
    / price), [9]/[10] taker buy contracts / base.
  - a strict limiter per market: fixed windows of `window` seconds (default 60: Binance's UTC
    minute; scale it down in tests) on the mock's clock, aligned to multiples of it; the limit is
    the market's exchangeInfo REQUEST_WEIGHT unless "limits" overrides it (exchangeInfo then says
    so too, and a window other than 60 s shows as SECOND/<window>). Weights: exchangeInfo
    spot 20 / futures 1; klines spot 2, futures by limit ([1,100) 1, [100,500) 2, [500,1000] 5,
    >1000 10); ratios USDT-M 0 (but 1000 requests per 5 windows of their own), COIN-M 1. Every
    answer carries x-mbx-used-weight-1m (the window's weight after this request). Over the limit:
    429 {"code":-1003,...} with Retry-After = whole seconds to the window's end; a request that
    arrives more than `grace` seconds after such a 429 was written, while that pause lasts, is
    banned: 418 with Retry-After for `ban` seconds (every request meanwhile too).
  - "straddle": {"market": M, "times": N, "after": S}: the next N klines answers of market M that
    hold a forming bar are computed on arrival and written S seconds (default 0.05) after that bar
    closed: a response sent before the bar boundary and read after it.

Control (never logged/limited/faulted; /_mock/reset turns it all off):
  POST /_mock/binance {"live": bool, "offset": seconds added to time.time(), "window": seconds,
                       "ban": seconds (120), "grace": seconds (0.05),
                       "limits": {"spot": 6000, ...} (null = exchangeInfo's),
                       "add": {"spot": [{"symbol": .., "baseAsset": .., "quoteAsset": .., ...}]},
                       "status": {"usdm": {"BTCSTUSDT": "TRADING"}},
                       "delist": {"spot": ["NKNUSDT"]},
                       "listed": {"spot": {"BTCUSDT": epoch_ms}},
                       "bench": {"usdm": 50}   (adds BENCH001USDT.. BENCH050USDT, trading),
                       "straddle": {...} | null}
  GET  /_mock/binance  the state and each market's counters: requests, admitted, admitted_weight,
                       r429, r418, bans, max_used (the most weight ever in one window), windows
                       ({window index: weight}), by_path.
  GET  /_mock/binance/bar?market=&symbol=&interval=&open=ms   the bar as served now (for tests)
"""
import copy
import json
import math
import os
import threading
import time
import zlib

JSON_TYPE = "application/json;charset=UTF-8"
MARKETS = {"api": "spot", "fapi": "usdm", "dapi": "coinm"}
PREFIX = {"spot": "/api/v3/", "usdm": "/fapi/v1/", "coinm": "/dapi/v1/"}
RATIO_PATHS = ("/futures/data/topLongShortPositionRatio", "/futures/data/topLongShortAccountRatio",
               "/futures/data/globalLongShortAccountRatio")
RATIO_PERIODS = {"5m": 300, "15m": 900, "30m": 1800, "1h": 3600, "2h": 7200, "4h": 14400,
                 "6h": 21600, "12h": 43200, "1d": 86400}
INTERVALS = {"1s": 1, "1m": 60, "3m": 180, "5m": 300, "15m": 900, "30m": 1800, "1h": 3600,
             "2h": 7200, "4h": 14400, "6h": 21600, "8h": 28800, "12h": 43200, "1d": 86400,
             "3d": 259200, "1w": 604800}
SPOT_LISTED = 1546300800000                      # 2019-01-01: spot symbols' first bars
BASES = {"BTC": 60000.0, "ETH": 3000.0}


def dumps(obj):
    return json.dumps(obj, separators=(",", ":"), ensure_ascii=False).encode("utf-8")


class BinanceError(Exception):
    def __init__(self, code, msg, status=400):
        super().__init__(msg)
        self.response = (status, dumps({"code": code, "msg": msg}), [("Content-Type", JSON_TYPE)])


def price(asset, t):
    """The asset's price at time t (seconds, float): a smooth deterministic path."""
    base = BASES.get(asset) or (1.0 + zlib.crc32(asset.encode()) % 5000 / 100.0)
    ph = zlib.crc32(asset.encode()) % 1000 / 159.0
    x = (0.05 * math.sin(2 * math.pi * t / (7.1 * 86400) + ph) + 0.01 * math.sin(2 * math.pi * t / 5003 + ph)
         + 0.002 * math.sin(2 * math.pi * t / 97 + 2 * ph) + 0.0007 * math.sin(2 * math.pi * t / 7.3 + ph))
    return base * math.exp(x)


def weight_by_limit(limit):
    return 1 if limit < 100 else 2 if limit < 500 else 5 if limit <= 1000 else 10


class Limiter:
    """Fixed windows on the mock's clock; 429 then 418 for a client that ignores it."""

    def __init__(self, market):
        self.market = market
        self.lock = threading.Lock()
        self.reset()

    def reset(self):
        with self.lock:
            self.index, self.used = None, 0
            self.ratio_index, self.ratio_used = None, 0
            self.pause_until = self.ban_until = 0.0
            self.delivered = None
            self.requests = self.admitted = self.admitted_weight = 0
            self.r429 = self.r418 = self.bans = self.max_used = 0
            self.windows, self.by_path = {}, {}

    def check(self, now, arrived, weight, limit, window, ban, grace, path, ratio=False):
        """-> (status, used, retry_after): status 0 = admitted."""
        with self.lock:
            self.requests += 1
            self.by_path[path] = self.by_path.get(path, 0) + 1
            k = math.floor(now / window)
            if k != self.index:
                self.index, self.used = k, 0
            if now < self.ban_until or (now < self.pause_until and self.delivered is not None
                                        and arrived > self.delivered + grace):
                if now >= self.ban_until:        # ignored a 429 it had read: banned
                    self.ban_until, self.pause_until = now + ban, 0.0
                    self.bans += 1
                self.r418 += 1
                return 418, self.used, max(1, math.ceil(self.ban_until - now))
            if now < self.pause_until:           # sent before the 429 could be read: 429 again
                self.r429 += 1
                return 429, self.used, max(1, math.ceil(self.pause_until - now))
            over = self.used + weight > limit
            if ratio and not over:               # USDT-M ratios: 1000 requests per 5 windows
                r = math.floor(now / (5 * window))
                if r != self.ratio_index:
                    self.ratio_index, self.ratio_used = r, 0
                over = self.ratio_used + 1 > 1000
            if over:
                end = (k + 1) * window if not ratio else (math.floor(now / (5 * window)) + 1) * 5 * window
                self.pause_until, self.delivered = end, None
                self.r429 += 1
                return 429, self.used, max(1, math.ceil(end - now))
            if ratio:
                self.ratio_used += 1
            self.used += weight
            self.admitted += 1
            self.admitted_weight += weight
            self.max_used = max(self.max_used, self.used)
            self.windows[k] = self.used
            return 0, self.used, None

    def sent_429(self, clock):
        with self.lock:
            if self.delivered is None:
                self.delivered = clock()

    def counters(self):
        with self.lock:
            return {"requests": self.requests, "admitted": self.admitted,
                    "admitted_weight": self.admitted_weight, "r429": self.r429, "r418": self.r418,
                    "bans": self.bans, "max_used": self.max_used, "used": self.used,
                    "windows": {str(k): v for k, v in sorted(self.windows.items())},
                    "by_path": dict(self.by_path)}


class Binance:
    def __init__(self, opts):
        self.dir = os.path.join(opts.fixtures, "binance")
        self.lock = threading.Lock()
        self.limiters = {m: Limiter(m) for m in PREFIX}
        self.cache = {}
        self.reset()

    def reset(self):
        with self.lock:
            self.info = {}
            for m in PREFIX:
                with open(os.path.join(self.dir, "exchangeInfo_%s.json" % m)) as f:
                    self.info[m] = json.load(f)
            self.live = False
            self.offset = 0.0
            self.window, self.ban, self.grace = 60.0, 120.0, 0.05
            self.limits = {}
            self.listed = {m: {} for m in PREFIX}
            self.straddle = None
            self.cache = {}
        for lim in self.limiters.values():
            lim.reset()

    def now(self):
        return time.time() + self.offset

    # ---- control

    def control(self, method, path, query, body):
        if path == "/_mock/binance/bar":
            q = {k: v[0] for k, v in query.items()}
            with self.lock:
                s = self.symbol(q.get("market"), q.get("symbol"))
            if s is None:
                return 404, {"error": "unknown symbol"}
            iv = INTERVALS[q["interval"]] * 1000
            return 200, json.loads(self.row(q["market"], s, int(q["open"]), iv, self.now() * 1000))
        if method == "POST":
            try:
                spec = json.loads(body or b"{}")
                self.configure(spec)
            except (ValueError, TypeError, KeyError) as e:
                return 400, {"ok": False, "error": str(e)}
        elif method == "DELETE":
            self.reset()
        elif method != "GET":
            return 405, {"error": "method not allowed"}
        with self.lock:
            return 200, {"live": self.live, "now": self.now(), "window": self.window,
                         "straddle": self.straddle,
                         "symbols": {m: [s["symbol"] for s in self.info[m]["symbols"]] for m in PREFIX},
                         "limits": {m: self.limit(m) for m in PREFIX},
                         "markets": {m: self.limiters[m].counters() for m in PREFIX}}

    def configure(self, spec):
        keys = {"live", "offset", "window", "ban", "grace", "limits", "add", "status", "delist",
                "listed", "bench", "straddle"}
        if not isinstance(spec, dict) or set(spec) - keys:
            raise ValueError("keys: " + ", ".join(sorted(keys)))
        for m in [m for k in ("limits", "add", "status", "delist", "listed", "bench")
                  for m in (spec.get(k) or {})]:
            if m not in PREFIX:
                raise ValueError("unknown market " + m)
        with self.lock:
            for k in ("live", "offset", "window", "ban", "grace"):
                if k in spec:
                    setattr(self, k, spec[k] if k == "live" else float(spec[k]))
            if self.window <= 0:
                raise ValueError("window must be > 0")
            for m, v in (spec.get("limits") or {}).items():
                self.limits[m] = v
            for m, rows in (spec.get("add") or {}).items():
                for r in rows:
                    self.add(m, dict(r))
            for m, n in (spec.get("bench") or {}).items():
                quote = {"spot": "USDT", "usdm": "USDT", "coinm": "USD"}[m]
                for i in range(1, int(n) + 1):
                    name = "BENCH%03d" % i
                    self.add(m, {"symbol": name + quote + ("_PERP" if m == "coinm" else ""),
                                 "baseAsset": name, "quoteAsset": quote})
            for m, st in (spec.get("status") or {}).items():
                for sym, status in st.items():
                    s = self.symbol(m, sym)
                    if s is None:
                        raise ValueError("unknown symbol %s %s" % (m, sym))
                    s["contractStatus" if m == "coinm" else "status"] = status
            for m, syms in (spec.get("delist") or {}).items():
                self.info[m]["symbols"] = [s for s in self.info[m]["symbols"] if s["symbol"] not in syms]
            for m, at in (spec.get("listed") or {}).items():
                self.listed[m].update({k: int(v) for k, v in at.items()})
            if "straddle" in spec:
                self.straddle = dict(spec["straddle"]) if spec["straddle"] else None
                if self.straddle is not None:
                    self.straddle.setdefault("times", 1)
                    self.straddle.setdefault("after", 0.05)

    def add(self, m, r):
        """A new symbol, shaped like the market's first one."""
        if self.symbol(m, r["symbol"]) is not None:
            return
        s = copy.deepcopy(self.info[m]["symbols"][0])
        s.update(r)
        if m != "spot":
            sym = r["symbol"]
            s.setdefault("pair", sym.split("_")[0])
            s["pair"] = r.get("pair", sym.split("_")[0])
            s["contractType"] = r.get("contractType", "PERPETUAL")
            s["deliveryDate"] = r.get("deliveryDate", 4133404800000)
            s["onboardDate"] = r.get("onboardDate", 1569398400000)
            s["marginAsset"] = r.get("marginAsset", s["baseAsset"] if m == "coinm" else s["quoteAsset"])
        s["contractStatus" if m == "coinm" else "status"] = r.get("status", "TRADING")
        self.info[m]["symbols"].append(s)

    def symbol(self, m, sym):
        for s in self.info.get(m, {}).get("symbols", []):
            if s["symbol"] == sym:
                return s
        return None

    def limit(self, m):
        if self.limits.get(m) is not None:
            return self.limits[m]
        for r in self.info[m]["rateLimits"]:
            if r["rateLimitType"] == "REQUEST_WEIGHT":
                return r["limit"]
        return 1200

    # ---- routing

    @staticmethod
    def market_of(path):
        if path in RATIO_PATHS:
            return "ratio"
        for m, p in PREFIX.items():
            if path == p + "exchangeInfo":
                return m
        return None

    def handles(self, path):
        if self.market_of(path):
            return True
        return self.live and path in ("/api/v3/klines", "/fapi/v1/klines", "/dapi/v1/klines")

    def route(self, method, path, query, arrived, clock):
        """-> (status, payload, headers[, after_send])."""
        if method not in ("GET", "HEAD"):
            return 405, dumps({"error": "method not allowed"}), [("Content-Type", JSON_TYPE)]
        kind = self.market_of(path) or "klines"
        m = kind
        if kind == "klines":
            m = {"/api/v3/klines": "spot", "/fapi/v1/klines": "usdm", "/dapi/v1/klines": "coinm"}[path]
        elif kind == "ratio":
            m = "coinm" if "pair" in query or self.is_pair("coinm", query.get("symbol")) else "usdm"
        try:
            limit = self._int(query, "limit")
            if kind == "klines":
                weight = 2 if m == "spot" else weight_by_limit(500 if limit is None else limit)
            elif kind == "ratio":
                weight = 0 if m == "usdm" else 1
            else:
                weight = 20 if m == "spot" else 1
            headers = []
            lim = self.limiters[m]
            if self.live or kind != "klines":
                status, used, wait = lim.check(self.now(), arrived + (time.time() - clock()), weight,
                                               self.limit(m), self.window, self.ban, self.grace,
                                               path, ratio=(kind == "ratio" and m == "usdm"))
                headers = [("Content-Type", JSON_TYPE), ("x-mbx-used-weight-1m", str(used))]
                if status:
                    headers.append(("Retry-After", str(wait)))
                    if status == 418:
                        until = int((self.now() + wait) * 1000)
                        return 418, dumps({"code": -1003, "msg": "Way too much request weight used; IP banned "
                                           "until %d. Please use WebSocket Streams for live updates to avoid "
                                           "bans." % until}), headers
                    return 429, dumps({"code": -1003, "msg": "Too much request weight used; current limit is "
                                       "%d request weight per 1 MINUTE. Please use WebSocket Streams for live "
                                       "updates to avoid polling the API." % self.limit(m)}), headers, \
                        lambda: lim.sent_429(time.time)
            if kind == "klines":
                body, delay_to = self.klines(m, query, limit)
                if delay_to is not None:
                    time.sleep(max(0.0, delay_to - self.now()))
                return 200, body, headers
            if kind == "ratio":
                return 200, self.ratios(m, path, query, limit), headers
            with self.lock:
                doc = copy.deepcopy(self.info[m])
            doc["serverTime"] = int(self.now() * 1000)
            for r in doc["rateLimits"]:              # what the limiter enforces, as the real API says it
                if r["rateLimitType"] == "REQUEST_WEIGHT":
                    r["limit"] = self.limit(m)
                    if self.window != 60:
                        r["interval"], r["intervalNum"] = "SECOND", int(self.window)
            return 200, dumps(doc), headers
        except BinanceError as e:
            st, payload, h = e.response
            return st, payload, h + [x for x in headers if x[0] != "Content-Type"]

    def is_pair(self, m, pair):
        return pair is not None and any(s.get("pair") == pair for s in self.info[m]["symbols"])

    @staticmethod
    def _int(q, name):
        v = q.get(name)
        if v is None or v == "":
            return None
        if not v.isdigit() or len(v) > 20:
            raise BinanceError(-1100, "Illegal characters found in parameter '%s'; legal range is "
                                      "'^[0-9]{1,20}$'." % name)
        return int(v)

    # ---- klines

    def klines(self, m, q, limit):
        symbol, interval = q.get("symbol"), q.get("interval")
        for name, val in (("symbol", symbol), ("interval", interval)):
            if not val:
                raise BinanceError(-1102, "Mandatory parameter '%s' was not sent, was empty/null, or "
                                          "malformed." % name)
        if interval not in INTERVALS or (interval == "1s" and m != "spot"):
            raise BinanceError(-1120, "Invalid interval.")
        start, end = self._int(q, "startTime"), self._int(q, "endTime")
        limit = 500 if limit is None else limit
        if limit < 1 or limit > (1000 if m == "spot" else 1500):
            raise BinanceError(-1130, "Invalid data sent for a parameter.")
        if start is not None and end is not None and start > end:
            raise BinanceError(-1023, "Start time is greater than end time.")
        with self.lock:
            s = self.symbol(m, symbol)
            s = copy.deepcopy(s) if s else None
        if s is None:
            raise BinanceError(-1121, "Invalid symbol.")
        iv = INTERVALS[interval] * 1000
        now_ms = self.now() * 1000
        first_ok = self.listed[m].get(symbol, s.get("onboardDate") or SPOT_LISTED)
        first_ok = -(-first_ok // iv) * iv
        forming = int(now_ms // iv * iv)          # the open time of the forming bar
        if start is not None:
            a = max(first_ok, -(-start // iv) * iv)
            b = min(forming, a + (limit - 1) * iv)
            if end is not None:
                b = min(b, end // iv * iv)
        else:
            b = forming if end is None else min(forming, end // iv * iv)
            a = max(first_ok, b - (limit - 1) * iv)
        if b < a:
            return b"[]", None
        rows = []
        closed_hi = min(b, forming - iv)
        if closed_hi >= a:
            rows.append(self.page(m, s, a, closed_hi, iv))
        delay_to = None
        if b == forming:
            rows.append(self.row(m, s, forming, iv, now_ms))
            with self.lock:
                sd = self.straddle
                if sd and sd.get("market") == m and sd["times"] != 0:
                    sd["times"] -= 1
                    delay_to = (forming + iv) / 1000.0 + float(sd["after"])
        return b"[" + b",".join(rows) + b"]", delay_to

    def page(self, m, s, a, b, iv):
        """Closed bars a..b (open times, ms) as one byte string; BENCH symbols share a cache."""
        bench = s["symbol"].startswith("BENCH")
        key = (m, "BENCH" if bench else s["symbol"], iv, a, b)
        with self.lock:
            hit = self.cache.get(key)
        if hit is not None:
            return hit
        out = b",".join(self.row(m, s, t, iv, None) for t in range(a, b + 1, iv))
        if bench:
            with self.lock:
                if len(self.cache) > 256:
                    self.cache.clear()
                self.cache[key] = out
        return out

    def row(self, m, s, t, iv, now_ms):
        """The bar opening at t (ms); as of now_ms when it is still forming (None: closed)."""
        asset = "BENCH" if s["symbol"].startswith("BENCH") else s["baseAsset"]
        t0 = t / 1000.0
        end = t0 + iv / 1000.0
        if now_ms is not None and now_ms < t + iv:
            end = max(t0, now_ms / 1000.0)
        pts = [t0] + [t0 + k * iv / 4000.0 for k in (1, 2, 3) if t0 + k * iv / 4000.0 < end] + [end]
        ps = [price(asset, x) for x in pts]
        o, c = ps[0], ps[-1]
        h, lo = max(ps) * 1.0002, min(ps) * 0.9998
        frac = (end - t0) / (iv / 1000.0)
        u = zlib.crc32(("%s%d" % (asset, t)).encode()) % 1000 / 1000.0
        vol = (0.5 + u) * frac * iv / 60000.0 * (10.0 if asset == "BTC" else 100.0)
        trades = int((50 + u * 500) * frac * iv / 60000.0)
        dec = 2 if o > 100 else 6
        fmt = lambda x: "%.*f" % (dec, x)          # noqa: E731
        if m == "coinm":                          # volume in contracts, [7] in the base asset
            size = s.get("contractSize") or 100
            contracts = int(vol * o / size) + trades
            base = contracts * size / c
            return dumps([t, fmt(o), fmt(h), fmt(lo), fmt(c), str(contracts), t + iv - 1, "%.8f" % base,
                          trades, str(contracts // 2), "%.8f" % (base / 2), "0"])
        q = vol * (o + c) / 2
        return dumps([t, fmt(o), fmt(h), fmt(lo), fmt(c), "%.8f" % vol, t + iv - 1, "%.8f" % q, trades,
                      "%.8f" % (vol / 2), "%.8f" % (q / 2), "0"])

    # ---- long/short ratios

    def ratios(self, m, path, q, limit):
        key = "pair" if m == "coinm" else "symbol"
        name = q.get("pair") or q.get("symbol")
        period = q.get("period")
        if not name:
            raise BinanceError(-1102, "Mandatory parameter '%s' was not sent, was empty/null, or "
                                      "malformed." % key)
        if period not in RATIO_PERIODS:
            raise BinanceError(-1120, "Invalid period.")
        with self.lock:
            ok = self.is_pair(m, name) if m == "coinm" else self.symbol(m, name) is not None
        if not ok:
            raise BinanceError(-1121, "Invalid symbol.")
        limit = 30 if limit is None else limit
        if limit < 1 or limit > 500:
            raise BinanceError(-1130, "Invalid data sent for a parameter.")
        start, end = self._int(q, "startTime"), self._int(q, "endTime")
        p = RATIO_PERIODS[period] * 1000
        now = int(self.now() * 1000)
        newest = (now // p - 1) * p                 # the last period that has ended
        oldest = -(-(now - 30 * 86400000) // p) * p  # 30 days kept
        if start is not None:
            a = max(oldest, -(-start // p) * p)
            b = min(newest, a + (limit - 1) * p)
            if end is not None:
                b = min(b, end // p * p)
        else:
            b = newest if end is None else min(newest, end // p * p)
            a = max(oldest, b - (limit - 1) * p)
        out = []
        kind = path.rsplit("/", 1)[1]
        for t in range(a, b + 1, p) if b >= a else ():
            u = zlib.crc32(("%s%s%d" % (kind, name, t)).encode()) % 10000 / 10000.0
            long_ = 0.35 + 0.3 * u
            r = {key: name, "longShortRatio": "%.4f" % (long_ / (1 - long_))}
            if m == "coinm" and kind == "topLongShortPositionRatio":
                r["longPosition"], r["shortPosition"] = "%.4f" % long_, "%.4f" % (1 - long_)
            else:
                r["longAccount"], r["shortAccount"] = "%.4f" % long_, "%.4f" % (1 - long_)
            r["timestamp"] = t
            out.append(r)
        return dumps(out)
