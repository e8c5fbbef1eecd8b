"""gecko.py - GeckoTerminal API v2 replay for mock_http.py (stdlib only, never online).

mock_http.py routes every request whose path starts with /api/v2/ here, after its usual request
log, rate limiter and fault injection (so `_status=429`, POST /_mock/faults rules, the strict
limiter etc. work on these routes exactly as on the klines routes). Data: FIXTURES/geckoterminal/
(dexes_solana_page*.json, pools.json; see fixtures/geckoterminal/README.md). Only the network
"solana" exists. Facts mirrored: the public API v2 as it answers (limits, errors and headers below).

Routes (GET/HEAD; other methods 405). Bodies are JSON:API, Content-Type application/json;
charset=utf-8, with Cloudflare-like headers (Cache-Control max-age=30,public,must-revalidate,
s-maxage=60, CF-Cache-Status, CF-Ray, X-Request-Id). Errors have the swagger's shape
{"errors":[{"status":"<code>","title":<text>}]}: 404 "Not Found" (unknown /api/v2 path, network,
dex or pool), 400 with the reason as title, 405 for methods other than GET/HEAD.

  /api/v2/networks/{net}/dexes?page=N
      The fixture pages (12 + 11 dexes; pumpswap on page 1, heaven on page 2). links.first/prev/
      next/last point at this mock (http://<Host header>/api/v2/...). A page past the last:
      {"data":[],"links":{...}}. page must be an integer >= 1 (else 400).
  /api/v2/networks/{net}/dexes/{dex}/pools?page=N&include=base_token,quote_token,dex&sort=S
      The catalogue pools of that dex, 20 per page, sorted by h24 transactions (buys + sells)
      desc, ties by address (sort=h24_volume_usd_desc: by h24 volume; other values: default).
      No links (like the real response). page > 10: 401 {"errors":[{"status":"401","title":
      "Pagination beyond 10 pages requires Analyst plan or above","code":"10005"}]} (docs: beyond
      10 pages needs a paid plan; CoinGecko error 10005 = plan restricted; the real body is not
      documented). A page past the data: {"data":[]}. Unknown dex id: 404; a known dex with no
      catalogue pools: {"data":[]}.
  /api/v2/networks/{net}/pools/multi/{a1,a2,...}?include=...
      Up to 30 addresses (31+: 400); exact, case-sensitive match; unknown addresses are ignored;
      each pool once, in request order.
  /api/v2/networks/{net}/pools/{address}?include=...
      "data" is one object; 404 when unknown.
  Pools are served with attributes.pool_created_at = the start of their OHLCV history (below),
  so a client may rely on it to know where a pool's history begins.
  `include` (comma list of base_token, quote_token, dex) adds "included": the token / dex
  objects in order of first appearance; unknown names are ignored.

  /api/v2/networks/{net}/pools/{address}/ohlcv/{minute|hour|day}
      ?aggregate=&before_timestamp=&limit=&currency=usd|token&token=base|quote|<address>
      &include_empty_intervals=true|false
      aggregate: minute 1,5,15 (default 1); hour 1,4,12; day 1 - else 400. limit: default 100,
      1..1000 else 400 (the docs give max 1000 and say nothing about larger values).
      before_timestamp: integer epoch s; rows have ts < before_timestamp (exclusive); default:
      no bound. Rows never start after mock-now: the newest row is the current, still forming
      interval (close = price at now, volume so far) unless that interval is empty.
      Body: {"data":{"id":<uuid = X-Request-Id>,"type":"ohlcv_request_response","attributes":
      {"ohlcv_list":[[ts,o,h,l,c,v],...]}},"meta":{"base":{address,name,symbol,
      coingecko_coin_id},"quote":{...}}}; rows newest first, JSON numbers (ts an integer,
      floats in Python repr, which matches the API's Ruby formatting), ts = interval start
      aligned to the interval length I = unit * aggregate.
      History: from the interval containing the pool's start (default: anchor - 200 days, see
      below) to now; before it no rows (a page wholly before it: "ohlcv_list": []).
      Empty intervals (no trades): interval n (= ts // I) is empty when sha-seeded noise says so
      (~3%), or with the pool override empty_every=K exactly when n % K == 0 (K = 0: none); the
      first interval is never empty. They are absent unless include_empty_intervals=true, which
      shows them as [ts, prev close x4, 0]. `limit` counts returned rows (the default), or with
      "limit_counts": "intervals" the intervals a page spans (empty ones included, so a page
      holds fewer rows than `limit` whenever one of its intervals is empty): the reference data
      does not settle which one the real API does, so clients must be exact under both.
      "stale": S answers every OHLCV request with the page as it was S seconds ago (a CDN copy:
      the real API caches answers up to a minute): bars younger than that are missing and the
      bar forming then has its values of then.
      Prices: a deterministic path P(t) = base_token_price_usd * exp(noise(t)) seeded by the
      address (same P for every timeframe, so open/close agree across timeframes); open = close
      of the previous non-empty interval (as in the real data), close = P(interval end), high/low
      = max/min of open, close and P(mid) widened by a seeded wick. volume (USD) ~ the pool's
      h24 volume spread over time. currency=token divides prices by the pool's
      quote_token_price_usd (token=quote: quote prices ~ quote_token_price_usd, divided by
      base_token_price_usd); volume stays USD; meta is never swapped.
  /api/v2/networks/{net}/pools/{address}/trades?trade_volume_in_usd_greater_than=X&token=...
      The last 300 trades of the past 24 h (mock time) with volume_in_usd > X (default 0; not a
      number: 400; token other than base/quote/a pool token address: 400 "Provided token is
      invalid"), newest first (equal timestamps: block ascending, as in the real capture).
      Trades are a deterministic per-pool stream on the time axis (rate ~ h24 transactions,
      capped at 20/min; mean size ~ h24 volume / count), so polling again later returns the
      same trades plus newer ones. Attributes are the raw API names (block_number, tx_hash,
      tx_from_address, from_token_amount, to_token_amount, price_from_in_currency_token,
      price_to_in_currency_token, price_from_in_usd, price_to_in_usd, block_timestamp ISO Z,
      kind buy|sell, volume_in_usd, from_token_address, to_token_address; block_number is a JSON
      integer as in the swagger, the amounts/prices/volume are decimal strings),
      id "solana_<block>_<tx_hash>_<index>_<unix ts a few s after block_timestamp>" (the format
      of the real capture). buy = quote (SOL) -> base, sell = base -> quote.

Mock time ("now"): real time, or fixed by --gecko-now EPOCH or POST /_mock/gecko {"now": EPOCH}
({"now": null} = real time again). The "anchor" is now as of startup / reset / the last POST
that set "now"; a pool's default OHLCV start is anchor - 200 days (rounded down to a minute),
so advancing now does not move history.

Control (never logged/limited/faulted; /_mock/reset also resets all of this):
    POST   /_mock/gecko  {"now": EPOCH|null, "stale": SECONDS|null (0/null: fresh answers),
                          "limit_counts": "rows"|"intervals"|null (null: rows),
                          "pools": {"<address>": {"start": EPOCH|null,  OHLCV history start
                                                  "empty_every": K|null, every n%K==0 interval
                                                                          empty, 0 = none
                                                  "gone": true|false|null}}}  404 everywhere,
                                                                 left out of multi / top pools
                 Keys merge into the current overrides (null removes one); unknown keys or
                 addresses, or bad values: 400 (nothing applied). Answers the state (as GET).
    GET    /_mock/gecko  {"now","fixed_now","anchor","default_start","pools","catalogue","stale",
                          "limit_counts"}
    DELETE /_mock/gecko  back to the startup state (like /_mock/reset)
"""
import collections
import datetime
import hashlib
import json
import math
import os
import threading
import time
import uuid
from decimal import Decimal

NETWORK = "solana"
REAL_BASE = "https://api.geckoterminal.com/api/v2"
JSON_TYPE = "application/json; charset=utf-8"
CACHE_CONTROL = "max-age=30,public,must-revalidate,s-maxage=60"
TIMEFRAMES = {"minute": (60, (1, 5, 15)), "hour": (3600, (1, 4, 12)), "day": (86400, (1,))}
PAGE_SIZE = 20
FREE_PAGES = 10
MAX_MULTI = 30
DEFAULT_LIMIT = 100
MAX_LIMIT = 1000
MAX_TRADES = 300
HISTORY_DAYS = 200
EMPTY_FRACTION = 0.03
INCLUDE_NAMES = ("base_token", "quote_token", "dex")
# price noise octaves: (period s, amplitude in ln units)
OCTAVES = ((14 * 86400, 1.0), (86400, 0.45), (4 * 3600, 0.2), (3600, 0.1), (900, 0.05),
           (300, 0.03), (60, 0.015))
# solana block height vs time, from the real trade capture (block 363106602 at 2025-08-28T16:15:08Z)
BLOCK0, BLOCK0_TIME, BLOCKS_PER_S = 363106602, 1756397708, 2.5
B58 = "123456789ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnopqrstuvwxyz"
M64 = (1 << 64) - 1


def add_args(parser):
    parser.add_argument("--gecko-now", type=float, default=None,
                        help="GeckoTerminal routes: fixed mock time (epoch s); default real time")


def dumps(obj):
    return json.dumps(obj, separators=(",", ":"), ensure_ascii=False).encode("utf-8")


class ApiError(Exception):
    """-> {"errors":[{"status":"<status>","title":...}]} (the swagger's error shape)."""

    def __init__(self, status, title, code=None):
        super().__init__(title)
        err = {"status": str(status), "title": title}
        if code:
            err["code"] = code
        self.status = status
        self.body = {"errors": [err]}


def not_found():
    return ApiError(404, "Not Found")


def bad_request(title):
    return ApiError(400, title)


# --------------------------------------------------------------------------------------------
# Deterministic noise


def mix(x):
    """splitmix64 finalizer."""
    x = (x + 0x9E3779B97F4A7C15) & M64
    x = ((x ^ (x >> 30)) * 0xBF58476D1CE4E5B9) & M64
    x = ((x ^ (x >> 27)) * 0x94D049BB133111EB) & M64
    return x ^ (x >> 31)


def seed_of(text):
    return int.from_bytes(hashlib.sha256(text.encode("utf-8")).digest()[:8], "big")


def unit(seed, a, b=0):
    """Deterministic float in [0, 1) from (seed, a, b) (a, b non-negative ints)."""
    return mix(seed ^ mix((a * 0x100000001B3 + b) & M64)) / 18446744073709551616.0


def b58(seed, tag, n, length):
    """Deterministic base58-looking string (tx hashes, wallets) of `length` <= 128 chars."""
    key = b"%d|%d|%d" % (seed, tag, n)
    raw = hashlib.sha512(key).digest() + hashlib.sha512(key + b"+").digest()
    return "".join(B58[b % 58] for b in raw[:length])


def dec(x, sig):
    """Positional decimal string with `sig` significant digits (no exponent), like the API."""
    if x == 0:
        return "0.0"
    s = format(Decimal("%.*e" % (sig - 1, x)), "f")
    if "." in s:
        s = s.rstrip("0")
        return s + "0" if s.endswith(".") else s
    return s + ".0"


def amount(x, decimals):
    s = "%.*f" % (decimals, x)
    if "." in s:
        s = s.rstrip("0")
        if s.endswith("."):
            s += "0"
    return s


def iso(ts):
    return datetime.datetime.fromtimestamp(ts, datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def num(s, default):
    """Catalogue string number -> float (null / "NaN" / garbage -> default)."""
    try:
        v = float(s)
    except (TypeError, ValueError):
        return default
    return v if math.isfinite(v) and v > 0 else default


class Market:
    """Per-pool deterministic price path and trade stream parameters."""

    def __init__(self, pool):
        a = pool["attributes"]
        self.address = a["address"]
        self.seed = seed_of("gecko|" + self.address)
        self.qseed = seed_of("gecko-quote|" + self.address)
        self.base_usd = num(a.get("base_token_price_usd"), 1e-5)
        self.quote_usd = num(a.get("quote_token_price_usd"), 200.0)
        tx = (a.get("transactions") or {}).get("h24") or {}
        self.tx24 = int(tx.get("buys") or 0) + int(tx.get("sells") or 0)
        self.vol24 = num((a.get("volume_usd") or {}).get("h24"), 1.0)

    @staticmethod
    def _noise(seed, t, octaves, memo):
        """Sum of smoothstep-interpolated value noise; memo caches knot values (per request)."""
        f = 0.0
        for k, (period, amp) in enumerate(octaves):
            j, r = divmod(t, period)
            s = r / period
            s = s * s * (3.0 - 2.0 * s)
            v0 = memo.get((k, j))
            if v0 is None:
                v0 = memo[(k, j)] = unit(seed, k + 1, j)
            v1 = memo.get((k, j + 1))
            if v1 is None:
                v1 = memo[(k, j + 1)] = unit(seed, k + 1, j + 1)
            f += amp * (2.0 * (v0 + (v1 - v0) * s) - 1.0)
        return f

    def price(self, t, memo=None):
        """Base token price in USD at epoch second t (pass one dict as memo for many calls)."""
        return self.base_usd * math.exp(self._noise(self.seed, t, OCTAVES, {} if memo is None else memo))

    def quote_price(self, t, memo=None):
        return self.quote_usd * math.exp(
            0.1 * self._noise(self.qseed, t, OCTAVES[:4], {} if memo is None else memo))


# --------------------------------------------------------------------------------------------
# Fixtures


class Catalogue:
    def __init__(self, root):
        self.dex_pages = []                      # solana dexes fixture docs, page order
        self.dexes = {}                          # id -> dex object
        self.pools = collections.OrderedDict()   # exact address -> pool object
        self.tokens = {}                         # "solana_<mint>" -> token object
        self.markets = {}
        n = 1
        while True:
            path = os.path.join(root, "dexes_%s_page%d.json" % (NETWORK, n))
            if not os.path.isfile(path):
                break
            with open(path, encoding="utf-8") as f:
                doc = json.load(f)
            self.dex_pages.append(doc)
            for d in doc["data"]:
                self.dexes[d["id"]] = d
            n += 1
        path = os.path.join(root, "pools.json")
        if os.path.isfile(path):
            with open(path, encoding="utf-8") as f:
                doc = json.load(f)
            for p in doc["data"]:
                self.pools[p["attributes"]["address"]] = p
                self.markets[p["attributes"]["address"]] = Market(p)
            for t in doc.get("included", []):
                self.tokens[t["id"]] = t

    def token_of(self, pool, rel):
        return self.tokens.get(pool["relationships"][rel]["data"]["id"])


# --------------------------------------------------------------------------------------------
# The API


class Gecko:
    OVERRIDE_KEYS = ("start", "empty_every", "gone")

    def __init__(self, opts, clock=time.time):
        self.clock = clock
        self.cli_now = getattr(opts, "gecko_now", None)
        if self.cli_now is not None and float(self.cli_now).is_integer():
            self.cli_now = int(self.cli_now)
        self.cat = Catalogue(os.path.join(opts.fixtures, "geckoterminal"))
        self.lock = threading.Lock()
        self.cache = collections.OrderedDict()   # OHLCV bodies, keyed with self.generation
        self.reset()

    # ---- state

    def reset(self):
        with self.lock:
            self.fixed_now = self.cli_now
            self.anchor = self._now_locked()
            self.overrides = {}
            self.stale = 0
            self.limit_counts = "rows"
            self.generation = getattr(self, "generation", 0) + 1
            self.cache.clear()

    def _now_locked(self):
        return int(math.floor(self.fixed_now if self.fixed_now is not None else self.clock()))

    def now(self):
        with self.lock:
            return self._now_locked()

    def state(self):
        with self.lock:
            return {"now": self._now_locked(), "fixed_now": self.fixed_now, "anchor": self.anchor,
                    "default_start": self._default_start_locked(),
                    "pools": {a: dict(o) for a, o in self.overrides.items()},
                    "catalogue": len(self.cat.pools), "stale": self.stale,
                    "limit_counts": self.limit_counts}

    def _default_start_locked(self):
        return (self.anchor - HISTORY_DAYS * 86400) // 60 * 60

    def _pool_view(self, address):
        """-> (pool object or None if unknown/gone, start epoch, empty_every or None)."""
        pool = self.cat.pools.get(address)
        with self.lock:
            o = self.overrides.get(address, {})
            start = o.get("start")
            start = self._default_start_locked() if start is None else int(start)
        if pool is None or o.get("gone"):
            return None, start, None
        return pool, start, o.get("empty_every")

    def _gone(self, address):
        with self.lock:
            return bool(self.overrides.get(address, {}).get("gone"))

    def control(self, method, body):
        if method == "GET":
            return 200, self.state()
        if method == "DELETE":
            self.reset()
            return 200, dict(self.state(), ok=True)
        if method != "POST":
            return 405, {"error": "method not allowed", "path": "/_mock/gecko"}
        try:
            spec = json.loads(body or b"{}")
            if not isinstance(spec, dict):
                raise ValueError("body must be a JSON object")
            unknown = sorted(set(spec) - {"now", "pools", "stale", "limit_counts"})
            if unknown:
                raise ValueError("unknown key(s): " + ", ".join(unknown))
            now = spec.get("now")
            if now is not None and (isinstance(now, bool) or not isinstance(now, (int, float))
                                    or not math.isfinite(now) or now < 0):
                raise ValueError("now must be an epoch number or null")
            stale = spec.get("stale")
            if stale is not None and (isinstance(stale, bool) or not isinstance(stale, int) or stale < 0):
                raise ValueError("stale must be an integer number of seconds >= 0 or null")
            if spec.get("limit_counts") not in (None, "rows", "intervals"):
                raise ValueError("limit_counts must be rows, intervals or null")
            pools = spec.get("pools") or {}
            if not isinstance(pools, dict):
                raise ValueError("pools must be an object")
            for addr, o in pools.items():
                if addr not in self.cat.pools:
                    raise ValueError("unknown pool address (exact match): " + addr)
                if not isinstance(o, dict):
                    raise ValueError("pools[%s] must be an object" % addr)
                bad = sorted(set(o) - set(self.OVERRIDE_KEYS))
                if bad:
                    raise ValueError("unknown pool key(s): " + ", ".join(bad))
                st, k, g = o.get("start"), o.get("empty_every"), o.get("gone")
                if st is not None and (isinstance(st, bool) or not isinstance(st, (int, float))
                                       or not math.isfinite(st) or st < 0):
                    raise ValueError("start must be an epoch number or null")
                if k is not None and (isinstance(k, bool) or not isinstance(k, int) or k < 0):
                    raise ValueError("empty_every must be an integer >= 0 or null")
                if g is not None and not isinstance(g, bool):
                    raise ValueError("gone must be true, false or null")
        except (ValueError, TypeError) as e:
            return 400, {"ok": False, "error": str(e)}
        with self.lock:
            if "now" in spec:
                self.fixed_now = None if now is None else float(now)
                self.anchor = self._now_locked()
            if "stale" in spec:
                self.stale = stale or 0
            if "limit_counts" in spec:
                self.limit_counts = spec["limit_counts"] or "rows"
            for addr, o in pools.items():
                cur = self.overrides.setdefault(addr, {})
                for k, v in o.items():
                    if v is None:
                        cur.pop(k, None)
                    else:
                        cur[k] = v
                if not cur:
                    del self.overrides[addr]
            self.generation += 1
            self.cache.clear()
        return 200, dict(self.state(), ok=True)

    # ---- dispatch

    def route(self, method, path, query, headers):
        rid = str(uuid.uuid4())
        host = headers.get("Host") if headers is not None else None
        try:
            if method not in ("GET", "HEAD"):
                raise ApiError(405, "Method Not Allowed")
            parts = path[len("/api/v2/"):].strip("/").split("/")
            if len(parts) < 3 or parts[0] != "networks" or parts[1] != NETWORK:
                raise not_found()
            rest = parts[2:]
            if rest == ["dexes"]:
                body = self.dexes(query, host)
            elif len(rest) == 3 and rest[0] == "dexes" and rest[2] == "pools":
                body = self.top_pools(rest[1], query)
            elif len(rest) == 3 and rest[:2] == ["pools", "multi"]:
                body = self.multi(rest[2], query)
            elif len(rest) == 2 and rest[0] == "pools":
                body = self.one_pool(rest[1], query)
            elif len(rest) == 4 and rest[0] == "pools" and rest[2] == "ohlcv":
                body = self.ohlcv(rest[1], rest[3], query, rid)
            elif len(rest) == 3 and rest[0] == "pools" and rest[2] == "trades":
                body = self.trades(rest[1], query)
            else:
                raise not_found()
            status = 200
        except ApiError as e:
            status, body = e.status, dumps(e.body)
        hdrs = [("Content-Type", JSON_TYPE), ("Cache-Control", CACHE_CONTROL),
                ("Vary", "Accept-Encoding,Accept,Origin"), ("CF-Cache-Status", "MISS"),
                ("CF-Ray", rid.replace("-", "")[:16] + "-DEN"), ("X-Request-Id", rid)]
        return status, body, hdrs

    # ---- helpers

    @staticmethod
    def _page(query):
        raw = query.get("page")
        if raw in (None, ""):
            return 1
        if not raw.isdigit() or int(raw) < 1:
            raise bad_request("page must be an integer >= 1")
        return int(raw)

    @staticmethod
    def _includes(query):
        names = [s.strip() for s in (query.get("include") or "").split(",")]
        return [n for n in INCLUDE_NAMES if n in names] if query.get("include") is not None else None

    def _included(self, pools, includes):
        out, seen = [], set()
        for p in pools:
            for rel in includes:
                ref = p["relationships"][rel]["data"]
                key = (ref["type"], ref["id"])
                if key in seen:
                    continue
                obj = self.cat.dexes.get(ref["id"]) if rel == "dex" else self.cat.tokens.get(ref["id"])
                if obj is not None:
                    seen.add(key)
                    out.append(obj)
        return out

    def _served(self, pool):
        """A pool object as served: pool_created_at is the start of its OHLCV history."""
        _, start, _ = self._pool_view(pool["attributes"]["address"])
        return dict(pool, attributes=dict(pool["attributes"], pool_created_at=iso(start)))

    def _pool_doc(self, data, pools, query):
        data = [self._served(p) for p in data] if isinstance(data, list) else self._served(data)
        doc = {"data": data}
        inc = self._includes(query)
        if inc is not None:
            doc["included"] = self._included(pools, inc)
        return dumps(doc)

    # ---- routes

    def dexes(self, query, host):
        page = self._page(query)
        pages = self.cat.dex_pages
        if not pages:
            raise not_found()
        base = "http://%s/api/v2" % host if host else REAL_BASE
        url = base + "/networks/%s/dexes?page=%%d" % NETWORK
        if page <= len(pages):
            doc = dict(pages[page - 1])
            doc["links"] = {k: (v.replace(REAL_BASE, base, 1) if isinstance(v, str) else v)
                            for k, v in pages[page - 1].get("links", {}).items()}
        else:
            doc = {"data": [], "links": {"first": url % 1, "prev": None, "next": None,
                                         "last": url % len(pages)}}
        return dumps(doc)

    def top_pools(self, dex, query):
        if dex not in self.cat.dexes:
            raise not_found()
        page = self._page(query)
        if page > FREE_PAGES:
            raise ApiError(401, "Pagination beyond 10 pages requires Analyst plan or above",
                           code="10005")
        pools = [p for a, p in self.cat.pools.items()
                 if p["relationships"]["dex"]["data"]["id"] == dex and not self._gone(a)]

        def tx24(p):
            t = p["attributes"]["transactions"]["h24"]
            return t["buys"] + t["sells"]
        if query.get("sort") == "h24_volume_usd_desc":
            pools.sort(key=lambda p: (-num(p["attributes"]["volume_usd"]["h24"], 0.0),
                                      p["attributes"]["address"]))
        else:
            pools.sort(key=lambda p: (-tx24(p), p["attributes"]["address"]))
        chunk = pools[(page - 1) * PAGE_SIZE: page * PAGE_SIZE]
        return self._pool_doc(chunk, chunk, query)

    def multi(self, csv_addrs, query):
        addrs = [a for a in csv_addrs.split(",") if a]
        if len(addrs) > MAX_MULTI:
            raise bad_request("at most %d addresses per request" % MAX_MULTI)
        out, seen = [], set()
        for a in addrs:
            if a in seen:
                continue
            seen.add(a)
            p = self.cat.pools.get(a)
            if p is not None and not self._gone(a):
                out.append(p)
        return self._pool_doc(out, out, query)

    def one_pool(self, address, query):
        pool, _, _ = self._pool_view(address)
        if pool is None:
            raise not_found()
        return self._pool_doc(pool, [pool], query)

    # ---- OHLCV

    def ohlcv(self, address, timeframe, q, rid):
        pool, start, empty_every = self._pool_view(address)
        if pool is None:
            raise not_found()
        if timeframe not in TIMEFRAMES:
            raise bad_request("timeframe must be one of day, hour, minute")
        unit_s, allowed = TIMEFRAMES[timeframe]
        agg = q.get("aggregate") or "1"
        if not agg.isdigit() or int(agg) not in allowed:
            raise bad_request("aggregate for %s must be one of %s" %
                              (timeframe, ", ".join(map(str, allowed))))
        interval = unit_s * int(agg)
        limit = q.get("limit")
        if limit in (None, ""):
            limit = DEFAULT_LIMIT
        elif not limit.isdigit() or not 1 <= int(limit) <= MAX_LIMIT:
            raise bad_request("limit must be an integer from 1 to %d" % MAX_LIMIT)
        limit = int(limit)
        before = q.get("before_timestamp")
        if before in (None, ""):
            before = None
        elif not before.isdigit():
            raise bad_request("before_timestamp must be an epoch timestamp in seconds")
        else:
            before = int(before)
        currency = q.get("currency") or "usd"
        if currency not in ("usd", "token"):
            raise bad_request("currency must be usd or token")
        base_tok = self.cat.token_of(pool, "base_token")
        quote_tok = self.cat.token_of(pool, "quote_token")
        token = q.get("token") or "base"
        if token == base_tok["attributes"]["address"]:
            token = "base"
        elif token == quote_tok["attributes"]["address"]:
            token = "quote"
        if token not in ("base", "quote"):
            raise bad_request("token must be base, quote or one of the pool's token addresses")
        include_empty = (q.get("include_empty_intervals") or "").lower() == "true"
        with self.lock:
            now = self._now_locked() - self.stale       # a stale copy: the page as it was then
            gen, by_intervals = self.generation, self.limit_counts == "intervals"
        key = (gen, address, interval, before, limit, currency, token, include_empty, now, by_intervals)
        with self.lock:
            rows = self.cache.get(key)
            if rows is not None:
                self.cache.move_to_end(key)
        if rows is None:
            rows = self._candles(self.cat.markets[address], interval, start, empty_every, now,
                                 before, limit, include_empty, currency, token, by_intervals)
            with self.lock:
                self.cache[key] = rows
                while len(self.cache) > 64:
                    self.cache.popitem(last=False)

        def meta(t):
            a = t["attributes"]
            return {"address": a["address"], "name": a["name"], "symbol": a["symbol"],
                    "coingecko_coin_id": a["coingecko_coin_id"]}
        head = dumps({"id": rid, "type": "ohlcv_request_response"})[:-1]
        return (b'{"data":' + head + b',"attributes":{"ohlcv_list":' + rows + b'}},"meta":' +
                dumps({"base": meta(base_tok), "quote": meta(quote_tok)}) + b"}")

    @staticmethod
    def _is_empty(mk, interval, n, n_first, empty_every):
        if n == n_first:
            return False
        if empty_every is None:
            return unit(mk.seed, 1000 + interval, n) < EMPTY_FRACTION
        return empty_every > 0 and n % empty_every == 0

    def _candles(self, mk, I, start, empty_every, now, before, limit, include_empty,
                 currency, token, by_intervals=False):
        """-> JSON bytes of the ohlcv_list. `limit` counts rows, or the intervals spanned."""
        n_first = start // I
        n_top = now // I
        if before is not None:
            n_top = min(n_top, (before - 1) // I)
        if n_top < n_first or now < start:
            return b"[]"
        picked = []                              # (n, empty), newest first
        n = n_top
        n_stop = n_top - limit                   # by intervals: the page spans n_stop+1 .. n_top
        while n >= n_first and (n > n_stop if by_intervals else len(picked) < limit):
            if empty_every == 1 and not include_empty and not by_intervals:
                picked.append((n_first, False))  # everything else is empty
                break
            e = self._is_empty(mk, I, n, n_first, empty_every)
            if include_empty or not e:
                picked.append((n, e))
            n -= 1
        if not picked:
            return b"[]"
        memo = {}
        path = mk.price if token == "base" else mk.quote_price

        def price(t):
            return path(t, memo)
        div = 1.0
        if currency == "token":
            div = mk.quote_usd if token == "base" else mk.base_usd
        oldest = picked[-1][0]
        if oldest == n_first:
            prev = price(start)
        else:                                    # close of the latest non-empty interval before
            m = oldest - 1
            while m > n_first and self._is_empty(mk, I, m, n_first, empty_every):
                m -= 1
            prev = price(min((m + 1) * I, now))
        vps = mk.vol24 / 86400.0
        wick = min(0.08, 0.01 * (I / 60.0) ** 0.25)
        out = []
        for n, e in reversed(picked):
            ts = n * I
            if e:
                p = prev / div
                out.append("[%d,%r,%r,%r,%r,0]" % (ts, p, p, p, p))
                continue
            t0 = max(ts, start)
            t1 = min(ts + I, now)
            o = prev
            c = price(t1)
            mid = price((t0 + t1) // 2)
            hi = max(o, c, mid) * (1.0 + wick * unit(mk.seed, 7, n * 4 + 1))
            lo = min(o, c, mid) * (1.0 - wick * unit(mk.seed, 7, n * 4 + 2))
            u = unit(mk.seed, 7, n * 4 + 3)
            v = vps * max(1, t1 - t0) * (0.25 + 1.5 * u * u) + 0.01
            out.append("[%d,%r,%r,%r,%r,%r]" % (ts, o / div, hi / div, lo / div, c / div, v))
            prev = c
        out.reverse()
        return ("[" + ",".join(out) + "]").encode("ascii")

    # ---- trades

    def trades(self, address, q):
        pool, _, _ = self._pool_view(address)
        if pool is None:
            raise not_found()
        raw = q.get("trade_volume_in_usd_greater_than")
        floor = 0.0
        if raw not in (None, ""):
            try:
                floor = float(raw)
            except ValueError:
                raise bad_request("trade_volume_in_usd_greater_than must be a number")
            if not math.isfinite(floor):
                raise bad_request("trade_volume_in_usd_greater_than must be a number")
        mk = self.cat.markets[address]
        base = self.cat.token_of(pool, "base_token")["attributes"]
        quote = self.cat.token_of(pool, "quote_token")["attributes"]
        if (q.get("token") or "base") not in ("base", "quote", base["address"], quote["address"]):
            raise bad_request("Provided token is invalid")
        now = self.now()
        rate = min(max(mk.tx24 / 1440.0, 0.05), 20.0)     # trades per minute
        mean = max(mk.vol24, 1.0) / (rate * 1440.0)
        seed = mk.seed
        found = []
        slot = now // 60
        last_slot = (now - 86400) // 60
        while slot >= last_slot and len(found) < MAX_TRADES:
            k = int(2.0 * rate * unit(seed, 20, slot) + unit(seed, 21, slot))
            for i in range(k - 1, -1, -1):
                ts = slot * 60 + int(60 * (i + unit(seed, 22, slot * 64 + i)) / k)
                if ts > now or ts <= now - 86400:
                    continue
                z = (unit(seed, 23, slot * 64 + i) + unit(seed, 24, slot * 64 + i) +
                     unit(seed, 25, slot * 64 + i) - 1.5) * 2.0
                vol = mean * math.exp(1.1 * z - 0.605) + 0.01
                if vol > floor:                  # == float(dec(vol, 20)): 20 digits round-trip
                    found.append((ts, slot, i, dec(vol, 20)))
            slot -= 1
        rows = []
        for ts, slot, i, vol_s in found[:MAX_TRADES]:
            rows.append(self._trade(mk, base, quote, ts, slot, i, vol_s))
        rows.sort(key=lambda r: (-r[0], r[1]))
        return dumps({"data": [r[2] for r in rows]})

    def _trade(self, mk, base, quote, ts, slot, i, vol_s):
        seed, j = mk.seed, slot * 64 + i
        vol = float(vol_s)
        p = mk.price(ts)
        qp = mk.quote_usd
        block = BLOCK0 + int((ts - BLOCK0_TIME) * BLOCKS_PER_S) + int(3 * unit(seed, 26, j))
        tx = b58(seed, 27, j, 87 + int(2 * unit(seed, 28, j)))
        wallet = b58(seed, 29, int(40 * unit(seed, 30, j)), 44)
        buy = unit(seed, 31, j) < 0.53
        base_amt = amount(vol / p, int(base["decimals"] or 6))
        quote_amt = amount(vol / qp, int(quote["decimals"] or 9))
        ratio = dec(p / qp, 15)
        if buy:
            attrs = (quote_amt, base_amt, "1.0", ratio, dec(qp, 48), dec(p, 48),
                     quote["address"], base["address"])
        else:
            attrs = (base_amt, quote_amt, ratio, "1.0", dec(p, 48), dec(qp, 48),
                     base["address"], quote["address"])
        index = (20, 30, 40, 41, 42, 50, 52, 60, 62)[int(9 * unit(seed, 32, j))]
        lag = 3 + int(10 * unit(seed, 33, j))
        return (ts, block, {
            "id": "%s_%d_%s_%d_%d" % (NETWORK, block, tx, index, ts + lag),
            "type": "trade",
            "attributes": {
                "block_number": block,
                "tx_hash": tx,
                "tx_from_address": wallet,
                "from_token_amount": attrs[0],
                "to_token_amount": attrs[1],
                "price_from_in_currency_token": attrs[2],
                "price_to_in_currency_token": attrs[3],
                "price_from_in_usd": attrs[4],
                "price_to_in_usd": attrs[5],
                "block_timestamp": iso(ts),
                "kind": "buy" if buy else "sell",
                "volume_in_usd": vol_s,
                "from_token_address": attrs[6],
                "to_token_address": attrs[7],
            }})
