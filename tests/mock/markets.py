"""markets.py - CoinGecko (v3), Yahoo Finance chart (v8) and Drift data API replay for mock_http.py.

mock_http.py routes these paths here after its request log, rate limiter and fault injection
(so `_status=`, POST /_mock/faults rules etc. work on them as on every route):

  CoinGecko  /api/v3/ping, /api/v3/coins/list, /api/v3/coins/{id}/ohlc, /api/v3/coins/{id}/market_chart
  Yahoo      /v8/finance/chart/{symbol}
  Drift      /stats/markets, /market/{symbol}/candles/{resolution}, /market/{symbol}/trades,
             /fundingRates?marketName=

Data (FIXTURES/coingecko, yahoo, drift): the coin list, the symbols' metadata, the market list,
the real error bodies and one recorded Yahoo answer (served verbatim for its exact query). Prices
come from one deterministic path per asset (BTC, ETH, SOL, SPX, AAPL), so the three APIs agree
to within 0.05% (a per-API wobble) unless a divergence is injected; bars are those of the path.

The real APIs' rules, enforced:
  CoinGecko  ids and vs_currency case-sensitive (unknown id: 404 {"error":"coin not found"}); ohlc
             days one of 1 7 14 30 90 180 365 max, granularity chosen by days (1-2: 30 min, 3-30:
             4 h, 31+: 4 days), timestamps are candle CLOSE times in ms and the last candle is the
             forming one (closes in the future); market_chart granularity by days (1: 5-minutely
             with odd millisecond stamps, 2-90: hourly (odd ms), 91+: daily at 00:00 UTC;
             interval=daily forces daily), the last point is "now"; without a paid key days > 365
             or max is 401 error 10012 (the real body); keys: a configured demo key is accepted in
             x-cg-demo-api-key (or x_cg_demo_api_key), a pro key only in x-cg-pro-api-key (a key in
             the wrong header: 401 10011, a wrong key 401 10002).
  Yahoo      a User-Agent that is not a browser's (not "Mozilla/...") gets 429 "Too Many Requests"
             (plain text) as the real edge does; unknown symbol (case-sensitive) 404 with the real
             body; intervals 1m 2m 5m 15m 30m 60m 90m 1h 1d (30m answers 60-minute bars, as the
             real API did); range limits per interval as chart.error with HTTP 422 (1m: 7 days a
             request and within 30 days; 2m..90m within 60 days; 60m/1h within 730 days); the bar
             starting at period2 is included; crypto trades 24/7 on the UTC grid, ^GSPC/AAPL in
             New York sessions (09:30-16:00 on weekdays; daily bars stamped at 09:30 local); inside
             an open session the last bar is the live one stamped regularMarketTime (off the
             grid); intraday indices carry nulls (about 4% all-null, 3% volume 0, 1% volume null);
             adjclose for 1d; the key order inside indicators.quote[0] varies.
  Drift      market symbols case-sensitive (unknown: 400 {"success":false,...}); resolutions 1 5 15
             60 240 D W M; limit 1..1000; records NEWEST FIRST, startTs (or endTs) = the newest
             open time wanted; intervals without fills have no record (about 5%); the forming
             candle is included; trades newest first with an opaque meta.nextPage cursor (24 h);
             fundingRates hourly for 30 days.

Per-API strict limiter (off until configured): fixed windows of `window` seconds whose limit
cycles through `limits` (CoinGecko's keyless limit varies with traffic); over it 429 (CoinGecko:
the real JSON body with retry-after = seconds to the window's end; Yahoo: plain text, no
Retry-After; Drift: JSON); a request that arrives more than `grace` after a 429 was delivered
while the pause lasts is blocked for `ban` seconds (CoinGecko: Cloudflare's 429 "error code:
1015", Yahoo and Drift: 429 again, which also restarts the block).

Control (never logged/limited/faulted; /_mock/reset resets it):
  POST /_mock/markets {"now": EPOCH|null,
                       "limits": {"coingecko"|"yahoo"|"drift": {"limits": [5, 15], "window": 60,
                                  "ban": 30, "grace": 0.05} | null},
                       "keys": {"demo": KEY|null, "pro": KEY|null},
                       "diverge": [{"api": "yahoo", "symbol": "BTC-USD", "from": TS, "to": TS,
                                    "factor": 1.05}]}   (replaces the list)
  GET  /_mock/markets the state with each limiter's counters (requests, r429, blocked).
"""
import base64
import calendar
import datetime
import json
import math
import os
import threading
import time
import zlib

JSON = "application/json; charset=utf-8"
ASSETS = {  # base price, 24 h volume in units, supply (market cap)
    "BTC": (60000.0, 25000.0, 19.8e6), "ETH": (3000.0, 400000.0, 120e6), "SOL": (150.0, 3e6, 480e6),
    "SPX": (5000.0, 2.5e9, 0), "AAPL": (190.0, 5e7, 0),
}
COINS = {"bitcoin": "BTC", "ethereum": "ETH", "solana": "SOL", "wrapped-bitcoin": "BTC"}
VS = ("usd", "eur", "btc")
FX = {"usd": 1.0, "eur": 0.92}
OHLC_DAYS = ("1", "7", "14", "30", "90", "180", "365", "max")
YH_INTERVALS = {"1m": 60, "2m": 120, "5m": 300, "15m": 900, "30m": 3600, "60m": 3600, "90m": 5400,
                "1h": 3600, "1d": 86400}
YH_LIMITS = {"1m": 30, "2m": 60, "5m": 60, "15m": 60, "30m": 60, "90m": 60, "60m": 730, "1h": 730}
DRIFT_RES = {"1": 60, "5": 300, "15": 900, "60": 3600, "240": 14400, "D": 86400, "W": 604800,
             "M": 2592000}
DRIFT_START = 1667260800                        # 2022-11-01: the markets' first candles


def add_args(parser):
    parser.add_argument("--markets-now", type=float, default=None,
                        help="CoinGecko/Yahoo/Drift routes: fixed mock time (epoch s)")


def dumps(obj):
    return json.dumps(obj, separators=(",", ":"), ensure_ascii=False).encode("utf-8")


def unit(*salt):
    """A deterministic number in [0, 1) from integers/strings."""
    x = zlib.crc32(repr(salt).encode()) & 0xffffffff
    x = ((x ^ (x >> 16)) * 0x45d9f3b) & 0xffffffff
    x = ((x ^ (x >> 16)) * 0x45d9f3b) & 0xffffffff
    return (x ^ (x >> 16)) / 4294967296.0


def price(asset, t):
    """The asset's price at time t: a smooth deterministic path."""
    base = ASSETS[asset][0]
    ph = zlib.crc32(asset.encode()) % 1000 / 159.0
    x = (0.08 * math.sin(2 * math.pi * t / (9.3 * 86400) + ph) + 0.03 * math.sin(2 * math.pi * t / 29000 + ph)
         + 0.004 * math.sin(2 * math.pi * t / 6100 + 2 * ph) + 0.0015 * math.sin(2 * math.pi * t / 370 + 3 * ph))
    return base * math.exp(x)


class Limiter:
    """Fixed windows with a limit cycling through `limits`; 429, then a block for ignoring it."""

    def __init__(self, spec, clock=time.monotonic):
        if not isinstance(spec, dict) or set(spec) - {"limits", "window", "ban", "grace"}:
            raise ValueError("limiter keys: limits, window, ban, grace")
        self.limits = [int(x) for x in spec.get("limits", [10])]
        self.window = float(spec.get("window", 60))
        self.ban = float(spec.get("ban", 30))
        self.grace = float(spec.get("grace", 0.05))
        if not self.limits or min(self.limits) < 1 or self.window <= 0:
            raise ValueError("limits must be positive integers, window > 0")
        self.clock = clock
        self.lock = threading.Lock()
        self.t0 = clock()
        self.index, self.count = 0, 0
        self.pause_until = self.block_until = 0.0
        self.delivered = None
        self.requests = self.r429 = self.blocked = 0

    def check(self, arrived):
        """-> None (admitted), ("429", seconds to wait) or ("block", seconds)."""
        with self.lock:
            now = self.clock()
            self.requests += 1
            if now < self.block_until or (now < self.pause_until and self.delivered is not None
                                          and arrived > self.delivered + self.grace):
                if now >= self.block_until:
                    self.block_until = now + self.ban
                self.blocked += 1
                return "block", math.ceil(self.block_until - now)
            k = int((now - self.t0) // self.window)
            if k != self.index:
                self.index, self.count = k, 0
            if self.count >= self.limits[k % len(self.limits)]:
                end = self.t0 + (k + 1) * self.window
                if now >= self.pause_until:
                    self.pause_until, self.delivered = end, None
                self.r429 += 1
                return "429", max(1, math.ceil(end - now))
            self.count += 1
            return None

    def sent_429(self):
        with self.lock:
            if self.delivered is None:
                self.delivered = self.clock()

    def counters(self):
        with self.lock:
            return {"limits": self.limits, "window": self.window, "requests": self.requests,
                    "r429": self.r429, "blocked": self.blocked}


class ApiError(Exception):
    def __init__(self, status, body, ctype=JSON, headers=()):
        super().__init__(status)
        self.response = (status, body if isinstance(body, bytes) else dumps(body), [("Content-Type", ctype)] +
                         list(headers))


def _int(v, name, err):
    try:
        return int(v)
    except (TypeError, ValueError):
        raise err(name)


class Markets:
    def __init__(self, opts):
        self.fixed_now = opts.markets_now
        root = opts.fixtures
        load = lambda *p: json.load(open(os.path.join(root, *p)))  # noqa: E731
        self.cg_list = load("coingecko", "coins_list.json")
        self.cg_429 = load("coingecko", "error_429.json")
        self.cg_10012 = load("coingecko", "error_10012.json")
        self.yh_symbols = load("yahoo", "symbols.json")
        self.yh_dir = os.path.join(root, "yahoo")
        self.yh_meta = load("yahoo", "chart_BTC-USD_1d_1577836800_1578009600.json")["chart"]["result"][0]["meta"]
        self.dr_markets = load("drift", "stats_markets.json")
        self.dr_trade = load("drift", "trades_BTC-PERP_sample.json")["records"][0]
        self.lock = threading.Lock()
        self.reset()

    def reset(self):
        with self.lock:
            self.now_override = None
            self.limiters = {}
            self.keys = {}
            self.diverge = []

    def now(self):
        if self.now_override is not None:
            return self.now_override
        return self.fixed_now if self.fixed_now is not None else time.time()

    # ---- control

    def control(self, method, body):
        if method == "POST":
            try:
                spec = json.loads(body or b"{}")
                if not isinstance(spec, dict) or set(spec) - {"now", "limits", "keys", "diverge"}:
                    raise ValueError("keys: now, limits, keys, diverge")
                limiters = {}
                for api, s in (spec.get("limits") or {}).items():
                    if api not in ("coingecko", "yahoo", "drift"):
                        raise ValueError("unknown api " + api)
                    limiters[api] = None if s is None else Limiter(s)
            except (ValueError, TypeError) as e:
                return 400, {"ok": False, "error": str(e)}
            with self.lock:
                if "now" in spec:
                    self.now_override = spec["now"]
                self.limiters.update(limiters)
                for k, v in (spec.get("keys") or {}).items():
                    self.keys[k] = v
                if "diverge" in spec:
                    self.diverge = list(spec["diverge"] or [])
        elif method == "DELETE":
            self.reset()
        elif method != "GET":
            return 405, {"error": "method not allowed"}
        with self.lock:
            return 200, {"now": self.now(), "keys": {k: bool(v) for k, v in self.keys.items()},
                         "diverge": self.diverge,
                         "limiters": {k: v.counters() for k, v in self.limiters.items() if v}}

    # ---- routing

    @staticmethod
    def api_of(path):
        if path.startswith("/api/v3/coins/") or path == "/api/v3/ping":
            return "coingecko"
        if path.startswith("/v8/finance/chart/"):
            return "yahoo"
        if path.startswith("/market/") or path in ("/stats/markets", "/fundingRates"):
            return "drift"
        return None

    def route(self, method, path, query, headers, arrived):
        api = self.api_of(path)
        if method not in ("GET", "HEAD"):
            return 405, dumps({"error": "method not allowed"}), [("Content-Type", JSON)]
        lim = self.limiters.get(api)
        if lim is not None:
            verdict = lim.check(arrived)
            if verdict is not None:
                return self.limited(api, lim, *verdict)
        try:
            return getattr(self, api)(path, query, {k.lower(): v for k, v in headers.items()})
        except ApiError as e:
            return e.response

    def limited(self, api, lim, kind, wait):
        if api == "coingecko":
            if kind == "block":
                return 429, b"error code: 1015", [("Content-Type", "text/plain; charset=UTF-8")]
            return 429, dumps(self.cg_429), [("Content-Type", JSON), ("retry-after", str(wait))], lim.sent_429
        if api == "yahoo":
            return 429, b"Too Many Requests", [("Content-Type", "text/plain;charset=utf-8")], lim.sent_429
        return 429, dumps({"success": False, "error": "Too many requests"}), [("Content-Type", JSON)], lim.sent_429

    def bar(self, api, symbol, asset, t0, step, now):
        """(o, h, l, c, volume) of the bar [t0, t0 + step) as of `now` (a forming bar ends at now)."""
        end = min(t0 + step, now)
        o, c, m = price(asset, t0), price(asset, end), price(asset, (t0 + end) / 2)
        wick = 0.0003 + 0.001 * unit(asset, t0, step)
        w = 1 + 0.0005 * (unit(api, asset, t0, step) - 0.5)
        for d in self.diverge:
            if d.get("api") == api and d.get("symbol") == symbol and d.get("from", 0) <= t0 <= d.get("to", 1e12):
                w *= float(d.get("factor", 1))
        vol = ASSETS[asset][1] * (end - t0) / 86400 * (0.5 + unit("v", asset, t0))
        return (o * w, max(o, c, m) * (1 + wick) * w, min(o, c, m) * (1 - wick) * w, c * w, vol)

    # ---- CoinGecko

    def coingecko(self, path, q, headers):
        pro = headers.get("x-cg-pro-api-key")
        demo = headers.get("x-cg-demo-api-key") or q.get("x_cg_demo_api_key")
        keys = self.keys
        def fail(code, msg):
            raise ApiError(401, {"status": {"error_code": code, "error_message": msg}})
        plan = "public"
        if pro is not None:
            if keys.get("pro") is None:
                fail(10011, "Your API key is a Pro API key: use https://pro-api.coingecko.com/api/v3")
            if pro != keys["pro"]:
                fail(10002, "Invalid API key")
            plan = "pro"
        elif demo is not None:
            if keys.get("demo") is None:
                fail(10010, "Your API key is a Demo API key: use https://api.coingecko.com/api/v3")
            if demo != keys["demo"]:
                fail(10002, "Invalid API key")
            plan = "demo"
        elif keys.get("pro") is not None:
            fail(10002, "API Key Missing")
        if path == "/api/v3/ping":
            return 200, dumps({"gecko_says": "(V3) To the Moon!"}), [("Content-Type", JSON)]
        if path == "/api/v3/coins/list":
            return 200, dumps(self.cg_list), [("Content-Type", JSON)]
        parts = path.split("/")                   # ['', 'api', 'v3', 'coins', id, what]
        if len(parts) != 6 or parts[5] not in ("ohlc", "market_chart"):
            raise ApiError(404, {"error": "Not Found"})
        coin, what = parts[4], parts[5]
        if coin not in COINS:
            raise ApiError(404, {"error": "coin not found"})
        vs = q.get("vs_currency")
        if not vs:
            raise ApiError(400, {"error": "Missing parameter vs_currency"})
        if vs not in VS:
            raise ApiError(400, {"error": "invalid vs_currency"})
        days = q.get("days")
        if not days:
            raise ApiError(400, {"error": "Missing parameter days"})
        if days == "max" or (days.replace(".", "", 1).isdigit() and float(days) > 365):
            if plan != "pro":
                raise ApiError(401, self.cg_10012)
        asset, now = COINS[coin], self.now()
        fx = (lambda p: p / price("BTC", now)) if vs == "btc" else (lambda p: p * FX[vs])
        if what == "ohlc":
            if days not in OHLC_DAYS:
                raise ApiError(400, {"error": "invalid days: must be one of 1, 7, 14, 30, 90, 180, 365, max"})
            d = 3650 if days == "max" else int(days)
            g = 1800 if d <= 2 else 14400 if d <= 30 else 345600
            first = (int(now - d * 86400) // g + 1) * g     # close times after now - days
            rows = []
            for close in range(first, int(math.ceil(now / g)) * g + 1, g):
                o, h, l, c, _ = self.bar("coingecko", coin, asset, close - g, g, now)
                rows.append([close * 1000] + [round(fx(x), 2) for x in (o, h, l, c)])
            return 200, dumps(rows), [("Content-Type", JSON)]
        try:
            d = 3650.0 if days == "max" else float(days)
        except ValueError:
            raise ApiError(400, {"error": "invalid days"})
        g = 86400 if q.get("interval") == "daily" or d > 90 else 300 if d <= 1 else 3600
        supply = ASSETS[asset][2]
        prices, caps, vols = [], [], []
        for t in range((int(now - d * 86400) // g + 1) * g, int(now), g):
            ms = t * 1000 + (0 if g == 86400 else int(unit("ms", t) * 60000))
            if ms / 1000 > now:
                continue
            o, _, _, _, _ = self.bar("coingecko", coin, asset, t, g, now)
            vol = ASSETS[asset][1] * price(asset, t) * (0.5 + unit("v24", asset, t // 3600))
            prices.append([ms, fx(o)])
            caps.append([ms, fx(o) * supply])
            vols.append([ms, fx(vol)])
        p = price(asset, now)
        prices.append([int(now * 1000), fx(p)])
        caps.append([int(now * 1000), fx(p) * supply])
        vols.append([int(now * 1000), vols[-1][1] if vols else fx(p)])
        return 200, dumps({"prices": prices, "market_caps": caps, "total_volumes": vols}), [("Content-Type", JSON)]

    # ---- Yahoo

    def yahoo(self, path, q, headers):
        if not headers.get("user-agent", "").startswith("Mozilla/"):
            return 429, b"Too Many Requests", [("Content-Type", "text/plain;charset=utf-8")]
        symbol = path[len("/v8/finance/chart/"):]
        info = self.yh_symbols.get(symbol)
        if info is None:
            raise ApiError(404, {"chart": {"result": None, "error": {"code": "Not Found",
                                 "description": "No data found, symbol may be delisted"}}})
        interval = q.get("interval", "1d")
        if interval not in YH_INTERVALS:
            raise ApiError(400, {"chart": {"result": None, "error": {"code": "Bad Request",
                "description": "Invalid input - interval=%s is not supported. Valid intervals: "
                               "[1m, 2m, 5m, 15m, 30m, 60m, 90m, 1h, 1d, 5d, 1wk, 1mo, 3mo]" % interval}}})
        now = self.now()
        bad = lambda n: ApiError(400, {"chart": {"result": None, "error": {  # noqa: E731
            "code": "Bad Request", "description": "Invalid input - %s must be an integer" % n}}})
        p1 = _int(q.get("period1"), "period1", bad) if "period1" in q else int(now - 30 * 86400)
        p2 = _int(q.get("period2"), "period2", bad) if "period2" in q else int(now)
        recorded = os.path.join(self.yh_dir, "chart_%s_%s_%d_%d.json" % (symbol, interval, p1, p2))
        if os.path.isfile(recorded):
            with open(recorded, "rb") as f:
                return 200, f.read(), [("Content-Type", "application/json;charset=utf-8")]

        def unprocessable(desc):
            raise ApiError(422, {"chart": {"result": None, "error": {"code": "Unprocessable Entity",
                                                                       "description": desc}}})
        if interval == "1m" and p2 - p1 > 7 * 86400 + 60:
            unprocessable("Only 7 days worth of 1m granularity data are allowed to be fetched per request.")
        days = YH_LIMITS.get(interval)
        if days and p1 < now - days * 86400:
            unprocessable("%s data not available for startTime=%d and endTime=%d. The requested range must "
                          "be within the last %d days." % (interval, p1, p2, days))
        step = YH_INTERVALS[interval]
        asset, tzname = info["asset"], info["exchangeTimezoneName"]
        times = self.yh_times(tzname, step, p1, min(p2, now))
        ts, cols = [], {k: [] for k in ("open", "high", "low", "close", "volume")}
        adj = []
        for t, live in times:
            t0 = t
            o, h, l, c, v = self.bar("yahoo", symbol, asset, t0, step if step < 86400 else
                                     (23400 if tzname != "UTC" else 86400), now)
            row = [round(o, 4), round(h, 4), round(l, 4), round(c, 4), int(v)]
            r = unit("null", symbol, t0)
            if step < 86400 and not live:
                if r < 0.04:
                    row = [None] * 5
                elif r < 0.07:
                    row[4] = 0
                elif r < 0.08:
                    row[4] = None
            ts.append(int(now) if live else t)
            for k, x in zip(("open", "high", "low", "close", "volume"), row):
                cols[k].append(x)
            div = info.get("dividend")
            factor = 1.0
            if div and t < calendar.timegm(time.strptime(div["date"], "%Y-%m-%d")):
                factor = 1 - div["amount"] / price(asset, t)
            adj.append(None if row[3] is None else round(row[3] * factor, 4))
        keys = sorted(cols, key=lambda k: unit("order", k, p1, p2))
        quote = {k: cols[k] for k in keys} if ts else {}
        meta = dict(self.yh_meta)
        offset = int(datetime.datetime.fromtimestamp(now, _zone(tzname)).utcoffset().total_seconds())
        meta.update(symbol=symbol, exchangeName=info["exchangeName"], fullExchangeName=info["exchangeName"],
                    instrumentType=info["instrumentType"], timezone=info["timezone"],
                    exchangeTimezoneName=tzname, gmtoffset=offset, currency=info["currency"],
                    firstTradeDate=info["firstTradeDate"], longName=info["longName"],
                    shortName=info["longName"], regularMarketTime=int(now),
                    regularMarketPrice=round(price(asset, now), 2), dataGranularity=interval, range="")
        meta.pop("tradingPeriods", None)
        result = {"meta": meta}
        if ts:
            result["timestamp"] = ts
        result["indicators"] = {"quote": [quote]}
        if step >= 86400:
            result["indicators"]["adjclose"] = [{"adjclose": adj} if ts else {}]
        return 200, dumps({"chart": {"result": [result], "error": None}}), \
            [("Content-Type", "application/json;charset=utf-8"),
             ("cache-control", "public, max-age=10, stale-while-revalidate=20")]

    def yh_times(self, tzname, step, p1, p2):
        """[(bar time, live)] of bars starting in [p1, p2] (the bar at p2 included)."""
        out = []
        if tzname == "UTC":
            for t in range(-(-p1 // step) * step, int(p2) + 1, step):
                live = step < 86400 and t + step > self.now()
                out.append((t, live))
            return out
        zone = _zone(tzname)
        day = datetime.datetime.fromtimestamp(p1, zone).date() - datetime.timedelta(days=1)
        last = datetime.datetime.fromtimestamp(p2, zone).date()
        while day <= last:
            if day.weekday() < 5:
                open_ = int(datetime.datetime(day.year, day.month, day.day, 9, 30, tzinfo=zone).timestamp())
                close = open_ + 23400
                if step >= 86400:
                    if p1 <= open_ <= p2:
                        out.append((open_, False))
                else:
                    for t in range(open_, close, step):
                        if p1 <= t <= p2:
                            out.append((t, t + step > self.now()))
            day += datetime.timedelta(days=1)
        return out

    # ---- Drift

    def drift(self, path, q, headers):
        def bad(msg, status=400):
            raise ApiError(status, {"success": False, "error": msg})
        markets = {m["symbol"]: m for m in self.dr_markets["markets"]}
        if path == "/stats/markets":
            return 200, dumps(self.dr_markets), [("Content-Type", JSON)]
        now = int(self.now())
        if path == "/fundingRates":
            m = markets.get(q.get("marketName", ""))
            if m is None or m["marketType"] != "perp":
                bad("Invalid marketName")
            asset, out = m["baseAsset"], []
            for t in range((now - 30 * 86400) // 3600 * 3600 + 3600, now + 1, 3600):
                twap = price(asset, t)
                rate = (unit("fr", asset, t) - 0.45) * 2e-5 * twap
                out.append({"ts": str(t), "slot": str(300000000 + (t - DRIFT_START) * 5 // 2),
                            "marketIndex": m["marketIndex"], "recordId": str((t - DRIFT_START) // 3600),
                            "fundingRate": str(int(rate * 1e9)), "fundingRateLong": str(int(rate * 1e9)),
                            "fundingRateShort": str(int(-rate * 1e9)),
                            "oraclePriceTwap": str(int(twap * 1e6)), "markPriceTwap": str(int(twap * 1.0002 * 1e6))})
            return 200, dumps({"fundingRates": out}), [("Content-Type", JSON)]
        parts = path.split("/")                   # ['', 'market', sym, 'candles', res] or trades
        if len(parts) < 4 or parts[3] not in ("candles", "trades"):
            bad("Not found", 404)
        symbol = parts[2]
        if symbol not in markets:
            bad("Invalid market symbol: %s" % symbol)
        asset = markets[symbol]["baseAsset"]
        if parts[3] == "trades":
            return self.drift_trades(symbol, markets[symbol], q, now)
        if len(parts) != 5 or parts[4] not in DRIFT_RES:
            bad("Invalid resolution")
        step = DRIFT_RES[parts[4]]
        limit = q.get("limit", "1000")
        if not limit.isdigit() or not 1 <= int(limit) <= 1000:
            bad("limit must be between 1 and 1000")
        newest = q.get("startTs") or q.get("endTs")
        if newest is not None and not newest.isdigit():
            bad("startTs must be a unix timestamp in seconds")
        t = min(int(newest) if newest else now, now) // step * step
        recs = []
        while len(recs) < int(limit) and t >= DRIFT_START:
            forming = t + step > now
            if forming or unit("empty", symbol, t, step) >= 0.05:
                o, h, l, c, v = self.bar("drift", symbol, asset, t, step, now)
                oo, oh, ol, oc, _ = self.bar("drift-oracle", symbol, asset, t, step, now)
                recs.append({"ts": t, "fillOpen": round(o, 2), "fillHigh": round(h, 2), "fillClose": round(c, 2),
                             "fillLow": round(l, 2), "oracleOpen": round(oo, 6), "oracleHigh": round(oh, 6),
                             "oracleClose": round(oc, 6), "oracleLow": round(ol, 6),
                             "quoteVolume": round(v * c, 5), "baseVolume": round(v, 4)})
            t -= step
        return 200, dumps({"success": True, "records": recs}), [("Content-Type", JSON)]

    def drift_trades(self, symbol, market, q, now):
        page = q.get("page")
        newest = now
        if page:
            try:
                newest = int(json.loads(base64.b64decode(page))["before"]) - 1
            except (ValueError, KeyError, TypeError):
                raise ApiError(400, {"success": False, "error": "Invalid page"})
        recs, t = [], newest
        while len(recs) < 50 and t > now - 86400:
            if unit("trade", symbol, t) < 1 / 37:
                r = dict(self.dr_trade)
                base = 0.001 + unit("amt", symbol, t) * 0.5
                p = price(market["baseAsset"], t)
                r.update(ts=t, symbol=symbol, marketIndex=market["marketIndex"],
                         fillRecordId=str(t - DRIFT_START), txSig="%064x" % (zlib.crc32(b"%d" % t) * 7919 + t),
                         baseAssetAmountFilled="%.9f" % base, quoteAssetAmountFilled="%.6f" % (base * p),
                         oraclePrice="%.6f" % p,
                         takerOrderDirection="long" if unit("dir", t) < 0.5 else "short")
                recs.append(r)
            t -= 1
        nxt = base64.b64encode(dumps({"before": recs[-1]["ts"]})).decode() if len(recs) == 50 else None
        return 200, dumps({"success": True, "records": recs, "meta": {"nextPage": nxt}}), [("Content-Type", JSON)]


_zones = {}


def _zone(name):
    import zoneinfo
    if name not in _zones:
        _zones[name] = datetime.timezone.utc if name == "UTC" else zoneinfo.ZoneInfo(name)
    return _zones[name]
