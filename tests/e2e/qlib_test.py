"""QLib export end to end: `candled export qlib` and the scheduled export on a real SQLite file.

Bars with known values are written through `candled eval` (db.upsert into candles); the export runs
in the real binary; the result is checked twice: by the independent checker qlib_check.py (found at
$QLIB_CHECK, else ../shared/tools/qlib_check.py beside the repository; when it is absent the test
says so loudly and runs its own checks only) and by the reader below, which parses the .bin files
and compares them with values computed here from the same bars: float32 bytes, NaN placement,
aggregation over complete buckets, incremental exports equal to full ones byte for byte, and a kill
in the middle of an export leaving the previous export intact.
"""
import fcntl
import filecmp
import math
import os
import shutil
import signal
import struct
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402

NAN = b"\x00\x00\xc0\x7f"
DAY0 = 1704067200                      # 2024-01-01 00:00:00 UTC
FREQ_S = {"day": 86400, "60min": 3600, "15min": 900, "5min": 300, "1min": 60}
CHECKER = None


def find_checker():
    env = os.environ.get("QLIB_CHECK")
    if env and os.path.isfile(env):
        return env
    p = os.path.normpath(os.path.join(harness.ARGS.source, "..", "shared", "tools", "qlib_check.py"))
    return p if os.path.isfile(p) else None


def f32(x):
    if x is None or (isinstance(x, float) and math.isnan(x)):
        return NAN
    return struct.pack("<f", x)


def bar(i, base=100.0, quote=True):
    """A 1m bar with known values (exact in binary where it matters)."""
    o = base + (i % 97) * 0.5
    v = 1 + (i % 13) * 0.1
    return {"open": o, "high": o + 1.25, "low": o - 0.75, "close": o + 0.25, "volume": v,
            "quote_volume": v * (o + 0.25) if quote else None}


def fmt(freq, t):
    return time.strftime("%Y-%m-%d" if freq == "day" else "%Y-%m-%d %H:%M:%S", time.gmtime(t))


def aggregate(rows, tf, S, empty=(), now=None):
    """rows: {ts: bar} of one series -> {bucket ts: bar} over complete buckets (see lib/qlib.lua)."""
    now = now or time.time()
    out, buckets = {}, {}
    for ts in sorted(rows):
        buckets.setdefault(ts - ts % S, []).append(ts)
    for b, tss in sorted(buckets.items()):
        if b + S > now:
            continue
        if len(tss) < S // tf:
            missing = [t for t in range(b, b + S, tf) if t not in rows]
            if not all(any(lo <= t <= hi for lo, hi in empty) for t in missing):
                continue
        rs = [rows[t] for t in tss]
        vol, q = 0, 0
        for r in rs:
            vol += r["volume"]
            q = None if q is None or r["quote_volume"] is None else q + r["quote_volume"]
        out[b] = {"open": rs[0]["open"], "high": max(r["high"] for r in rs), "low": min(r["low"] for r in rs),
                  "close": rs[-1]["close"], "volume": vol, "quote_volume": q}
    return out


def expected_root(series, freq):
    """series: {symbol: {bucket ts: bar}} -> {relative path: bytes} of the export."""
    cal = sorted({t for bars in series.values() for t in bars})
    index = {t: i for i, t in enumerate(cal)}
    files = {"calendars/%s.txt" % freq: "".join(fmt(freq, t) + "\n" for t in cal).encode()}
    lines = []
    for sym in sorted(series):
        bars = series[sym]
        if not bars:
            continue
        ts = sorted(bars)
        start, end = index[ts[0]], index[ts[-1]]
        n = end - start + 1
        cols = {f: [None] * n for f in ("open", "high", "low", "close", "volume", "factor", "change")}
        quote = any(b["quote_volume"] is not None for b in bars.values())
        if quote:
            cols["amount"], cols["vwap"] = [None] * n, [None] * n
        prev = None
        for t in ts:
            b, p = bars[t], index[t] - start
            for f in ("open", "high", "low", "close", "volume"):
                cols[f][p] = b[f]
            cols["factor"][p] = 1.0
            if prev is not None and prev != 0:
                cols["change"][p] = b["close"] / prev - 1
            prev = b["close"]
            if quote and b["quote_volume"] is not None:
                cols["amount"][p] = b["quote_volume"]
                cols["vwap"][p] = b["quote_volume"] / b["volume"] if b["volume"] > 0 else None
        folder = sym.lower()
        if sym.upper() in {"CON", "PRN", "AUX", "NUL"} | {"COM%d" % d for d in range(10)} | {"LPT%d" % d for d in range(10)}:
            folder = "_qlib_" + folder
        for f, vals in cols.items():
            files["features/%s/%s.%s.bin" % (folder, f, freq)] = struct.pack("<f", start) + b"".join(f32(v) for v in vals)
        lines.append("%s\t%s\t%s\n" % (sym, fmt(freq, ts[0]), fmt(freq, ts[-1])))
    files["instruments/all.txt"] = "".join(lines).encode()
    return files


def read_root(root):
    """Every file of an export except the metadata: {relative path: bytes}."""
    out = {}
    for d, _, names in os.walk(root):
        for n in names:
            p = os.path.join(d, n)
            rel = os.path.relpath(p, root)
            if rel in ("candled.json", "instruments/map.csv"):
                continue
            with open(p, "rb") as f:
                out[rel] = f.read()
    return out


def count_lines(path):
    with open(path) as f:
        return f.read().count("\n")


def write_csvs(series, freq, dirname):
    """dump_bin's input layout (one <symbol>.csv per symbol) for qlib_check --source-csv."""
    os.makedirs(dirname, exist_ok=True)
    for sym, bars in series.items():
        quote = any(b["quote_volume"] is not None for b in bars.values())
        fields = ["open", "high", "low", "close", "volume", "factor"] + (["amount"] if quote else [])
        with open(os.path.join(dirname, sym + ".csv"), "w") as f:
            f.write("date," + ",".join(fields) + "\n")
            for t in sorted(bars):
                b = dict(bars[t], factor=1.0, amount=bars[t]["quote_volume"])
                f.write(fmt(freq, t) + "," + ",".join("" if b[k] is None else "%.17g" % b[k] for k in fields) + "\n")


class QlibCase(harness.Case):
    def setUp(self):
        super().setUp()
        self.config = self.write_config({"database": {"path": "data/candled.db"}, "log": {"level": "warn"},
                                         "paths": {"scripts": os.path.join(harness.ARGS.source, "scripts")}})
        self.rows = {}                 # (source, instrument, timeframe) -> {ts: bar}
        self.empty = {}                # (source, instrument, timeframe) -> [(start, stop)]

    # ---- data -----------------------------------------------------------------------------

    def put(self, source, instrument, timeframe, bars):
        """Store bars ({ts: bar}) through candled eval (db.upsert into candles)."""
        self.rows.setdefault((source, instrument, timeframe), {}).update(bars)
        chunks = []
        for ts, b in sorted(bars.items()):
            vals = [b[k] for k in ("open", "high", "low", "close", "volume", "quote_volume")]
            chunks.append("{%s,%s,%s,%d,%s}" % (harness.lua(source), harness.lua(instrument), harness.lua(timeframe), ts,
                                                ",".join("nil" if v is None else repr(float(v)) for v in vals)))
        src = ("local db = require 'rt.db'\nrequire 'lib.series'   -- its tables: put_empty writes series_empty\n"
               "local rows = {\n" + ",\n".join(chunks) + "\n}\n"
               "db.upsert('candles', rows, {keys = {'source','instrument','timeframe','ts'}, columns = "
               "{'source','instrument','timeframe','ts','open','high','low','close','volume','quote_volume'}})\n")
        path = os.path.join(self.dir, "put.lua")
        with open(path, "w") as f:
            f.write(src)
        r = self.candled("eval", "--config", self.config, path)
        self.assertEqual(r.returncode, 0, r.stderr)

    def put_empty(self, source, instrument, timeframe, start, stop):
        self.empty.setdefault((source, instrument, timeframe), []).append((start, stop))
        self.execute("INSERT INTO series_empty SELECT id, ?, ? FROM series WHERE source = ? AND instrument = ? "
                     "AND timeframe = ?", start, stop, source, instrument, timeframe)

    def expected(self, source, freq, symbols, tf="1m", tf_s=60):
        """{symbol: buckets} for the given {symbol: instrument}."""
        out = {}
        for sym, inst in symbols.items():
            key = (source, inst, tf)
            out[sym] = aggregate(self.rows[key], tf_s, FREQ_S[freq], self.empty.get(key, ()))
        return out

    # ---- running --------------------------------------------------------------------------

    def export(self, out, freq, *extra, code=0):
        r = self.candled("export", "--config", self.config, "qlib", "--out", out, "--freq", freq, *extra)
        self.assertEqual(r.returncode, code, "stdout: %s\nstderr: %s" % (r.stdout, r.stderr))
        return r

    def check(self, root, freq, csvdir=None):
        if not CHECKER:
            return
        # vwap is recommended, but an instrument without quote volume has none: warnings stay warnings
        cmd = [sys.executable, CHECKER, root, "--freq", freq, "--strict", "--recommend", "change", "-q"]
        if csvdir:
            cmd += ["--source-csv", csvdir]
        r = subprocess.run(cmd, capture_output=True, text=True)
        self.assertEqual(r.returncode, 0, "qlib_check failed on %s:\n%s%s" % (root, r.stdout, r.stderr))

    def assertRoot(self, root, expected):
        got = read_root(root)
        self.assertEqual(sorted(got), sorted(expected), "the set of files")
        for rel, data in expected.items():
            if got[rel] != data:
                if rel.endswith(".bin"):
                    n = min(len(got[rel]), len(data)) // 4
                    first = next((i for i in range(n) if got[rel][4 * i:4 * i + 4] != data[4 * i:4 * i + 4]), n)
                    self.fail("%s differs at value %d: got %s, expected %s (sizes %d, %d)" % (
                        rel, first, got[rel][4 * first:4 * first + 4].hex(), data[4 * first:4 * first + 4].hex(),
                        len(got[rel]), len(data)))
                self.fail("%s differs:\n%r\n%r" % (rel, got[rel][:300], data[:300]))

    # ---- data sets ------------------------------------------------------------------------

    def binance_two_days(self):
        """BTCUSDT: 2 days of 1m bars, minutes 1500-1504 missing (day 2's first 5min buckets near
        01:00 incomplete, so day 2 is incomplete as a day). ETHUSDT: from 06:00 of day 1, no quote
        volume, minutes 420-479 missing (a whole hour)."""
        btc = {DAY0 + 60 * i: bar(i) for i in range(2 * 1440) if not 1500 <= i <= 1504}
        eth = {DAY0 + 60 * i: bar(i, base=2000.0, quote=False) for i in range(360, 2 * 1440) if not 420 <= i <= 479}
        self.put("binance_spot", "BTCUSDT", "1m", btc)
        self.put("binance_spot", "ETHUSDT", "1m", eth)
        return {"BTCUSDT": "BTCUSDT", "ETHUSDT": "ETHUSDT"}


class ExportTest(QlibCase):
    def test_frequencies_values_nan_and_aggregation(self):
        """1min as stored, 5min/60min/day aggregated over complete buckets: the bytes equal values
        computed here, the checker passes with --source-csv, and hand-computed buckets agree."""
        syms = self.binance_two_days()
        for freq in ("1min", "5min", "60min", "day"):
            out = os.path.join(self.dir, "qlib", freq)
            r = self.export(out, freq, "--source", "binance_spot")
            exp = self.expected("binance_spot", freq, syms)
            self.assertRoot(out, expected_root(exp, freq))
            csvdir = os.path.join(self.dir, "csv", freq)
            write_csvs(exp, freq, csvdir)
            self.check(out, freq, csvdir)
            self.assertIn("qlib %s: 2 instruments" % freq, r.stdout)
            self.assertIn("quality:", r.stdout)
        # hand-computed: the first 5min bucket of BTCUSDT is minutes 0-4
        b = self.expected("binance_spot", "5min", syms)["BTCUSDT"][DAY0]
        self.assertEqual(b["open"], 100.0)
        self.assertEqual(b["close"], 100.0 + 4 * 0.5 + 0.25)
        self.assertEqual(b["high"], 100.0 + 4 * 0.5 + 1.25)
        self.assertEqual(b["low"], 100.0 - 0.75)
        self.assertAlmostEqual(b["volume"], 1.0 + 1.1 + 1.2 + 1.3 + 1.4)
        with open(os.path.join(self.dir, "qlib", "5min", "features", "btcusdt", "open.5min.bin"), "rb") as f:
            data = f.read()
        self.assertEqual(data[:8], struct.pack("<f", 0) + struct.pack("<f", 100.0))
        # the bucket holding minutes 1500-1504 (day 2, 01:00) is missing: NaN in every field
        with open(os.path.join(self.dir, "qlib", "5min", "instruments", "all.txt")) as f:
            self.assertIn("BTCUSDT\t2024-01-01 00:00:00\t2024-01-02 23:55:00\n", f.read())
        with open(os.path.join(self.dir, "qlib", "5min", "calendars", "5min.txt")) as f:
            cal = f.read().split("\n")
        self.assertIn("2024-01-02 01:00:00", cal, "ETHUSDT has that bucket")
        pos = cal.index("2024-01-02 01:00:00")
        for field in ("open", "close", "volume", "factor", "vwap"):
            with open(os.path.join(self.dir, "qlib", "5min", "features", "btcusdt", "%s.5min.bin" % field), "rb") as f:
                data = f.read()
            self.assertEqual(data[4 + 4 * pos:8 + 4 * pos], NAN, field)
        # ETHUSDT has no quote volume: no amount/vwap files; its missing hour is NaN at 60min
        eth = os.listdir(os.path.join(self.dir, "qlib", "60min", "features", "ethusdt"))
        self.assertNotIn("vwap.60min.bin", eth)
        self.assertIn("change.60min.bin", eth)
        # day: BTCUSDT's day 2 is incomplete (5 minutes missing) and left out; ETHUSDT's day 1 too
        with open(os.path.join(self.dir, "qlib", "day", "instruments", "all.txt")) as f:
            self.assertEqual(f.read(), "BTCUSDT\t2024-01-01\t2024-01-01\nETHUSDT\t2024-01-02\t2024-01-02\n")
        with open(os.path.join(self.dir, "qlib", "day", "calendars", "day.txt")) as f:
            self.assertEqual(f.read(), "2024-01-01\n2024-01-02\n")

    def test_known_empty_minutes_complete_a_bucket_and_unknown_ones_do_not(self):
        """5min and 15min from 1m with minutes missing: a bucket whose missing minutes are all
        known-empty intervals is exported, one with a minute merely missing is not, at either size."""
        missing = {7, 8, 17, 40, 41, 42, 43}             # 7-8 and 40-43 known-empty, 17 not
        bars = {DAY0 + 60 * i: bar(i) for i in range(90) if i not in missing}
        self.put("binance_spot", "SOLUSDT", "1m", bars)
        self.put_empty("binance_spot", "SOLUSDT", "1m", DAY0 + 60 * 7, DAY0 + 60 * 8)
        self.put_empty("binance_spot", "SOLUSDT", "1m", DAY0 + 60 * 40, DAY0 + 60 * 43)
        for freq in ("5min", "15min"):
            out = os.path.join(self.dir, "qlib", "sol_" + freq)
            self.export(out, freq, "--source", "binance_spot")
            exp = self.expected("binance_spot", freq, {"SOLUSDT": "SOLUSDT"})
            S = FREQ_S[freq]
            self.assertIn(DAY0 + 5 * 60 if S == 300 else DAY0, exp["SOLUSDT"], "the known-empty bucket is kept")
            self.assertNotIn(DAY0 + 15 * 60 if S == 300 else DAY0 + 15 * 60, exp["SOLUSDT"], "minute 17 drops it")
            self.assertRoot(out, expected_root(exp, freq))

    def test_symbols_are_case_safe_reversible_and_stay_inside_the_root(self):
        """Case-only twins, reserved names and odd characters: distinct lower-case folders, a map
        that gives the instruments back, nothing outside features/; the checker passes."""
        names = ["solana_AbC", "solana_aBc", "solana_abc", "CON", "com1", "a/../b", "x y.z", "_qlib_con"]
        for k, name in enumerate(names):
            bars = {DAY0 + 3600 * i: bar(i + k) for i in range(48)}
            self.put("geckoterminal", name, "1h", bars)
        # a known-empty hour completes a day that lacks it
        del self.rows[("geckoterminal", "CON", "1h")][DAY0 + 3600 * 30]
        self.execute("DELETE FROM candles WHERE source = 'geckoterminal' AND instrument = 'CON' AND ts = ?",
                     DAY0 + 3600 * 30)
        self.put_empty("geckoterminal", "CON", "1h", DAY0 + 3600 * 30, DAY0 + 3600 * 30)
        out = os.path.join(self.dir, "qlib", "gt_day")
        self.export(out, "day", "--source", "geckoterminal")
        with open(os.path.join(out, "instruments", "map.csv")) as f:
            lines = f.read().splitlines()
        self.assertEqual(lines[0], "symbol,source,instrument,timeframe,quote")
        mapping = {}
        for line in lines[1:]:
            sym, rest = line.split(",", 1)
            inst = rest.split(",")[1]
            mapping[sym] = inst
        self.assertEqual(sorted(mapping.values()), sorted(names))
        folders = os.listdir(os.path.join(out, "features"))
        self.assertEqual(len(folders), len(names), folders)
        self.assertEqual(len({f.lower() for f in folders}), len(names), "no two folders differ only in case")
        self.assertIn("_qlib_con", folders)
        for sym in mapping:
            self.assertRegex(sym, r"^[A-Z0-9_]+$")
        # worked by hand: "_" -> "__", other bytes -> _XX, then _L + a mask of the lower-case letters
        self.assertEqual(mapping["SOLANA__ABC_LFD0"], "solana_AbC")
        self.assertEqual(mapping["SOLANA__ABC_LFE8"], "solana_aBc")
        self.assertEqual(mapping["SOLANA__ABC_LFF8"], "solana_abc")
        self.assertEqual(mapping["A_2F_2E_2E_2FB_LC"], "a/../b")
        self.assertEqual(mapping["X_20Y_2EZ_LE"], "x y.z")
        self.assertEqual(mapping["__QLIB__CON_LFE"], "_qlib_con")
        self.assertEqual(mapping["CON"], "CON")
        self.assertEqual(mapping["COM1_LE"], "com1")
        for d, dirs, files in os.walk(self.dir):
            for n in dirs + files:
                self.assertNotIn(n, ("b", "z"), "nothing escapes the root: %s/%s" % (d, n))
        exp = {sym: aggregate(self.rows[("geckoterminal", inst, "1h")], 3600, 86400,
                              self.empty.get(("geckoterminal", inst, "1h"), ())) for sym, inst in mapping.items()}
        self.assertEqual(sorted(exp["CON"]), [DAY0, DAY0 + 86400], "the known-empty hour completes day 2")
        self.assertRoot(out, expected_root(exp, "day"))
        csvdir = os.path.join(self.dir, "csv")
        write_csvs(exp, "day", csvdir)
        self.check(out, "day", csvdir)

    def test_incremental_equals_full_and_keeps_unchanged_files(self):
        """New rows at the end: unchanged files are the same inodes (not rewritten), grown files
        keep their old bytes as a prefix; a back-filled row inside exported dates is rewritten;
        every result equals a full export of the same rows into a fresh folder, byte for byte."""
        btc = {DAY0 + 60 * i: bar(i) for i in range(600) if not 100 <= i <= 104}
        eth = {DAY0 + 60 * i: bar(i, base=2000.0) for i in range(300)}
        self.put("binance_spot", "BTCUSDT", "1m", btc)
        self.put("binance_spot", "ETHUSDT", "1m", eth)
        out = os.path.join(self.dir, "qlib", "m5")
        self.export(out, "5min")
        before = read_root(out)
        inode = lambda rel: os.stat(os.path.join(out, rel)).st_ino
        eth_inodes = {rel: inode(rel) for rel in before if "/ethusdt/" in rel}
        btc_inodes = {rel: inode(rel) for rel in before if "/btcusdt/" in rel}
        # 1) BTCUSDT grows by an hour; ETHUSDT unchanged
        self.put("binance_spot", "BTCUSDT", "1m", {DAY0 + 60 * i: bar(i) for i in range(600, 660)})
        r = self.export(out, "5min")
        self.assertIn("10 files unchanged", r.stdout, "ETHUSDT's 9 bins and the map")
        after = read_root(out)
        for rel, ino in eth_inodes.items():
            self.assertEqual(inode(rel), ino, "%s is not rewritten" % rel)
        for rel, ino in btc_inodes.items():
            self.assertNotEqual(inode(rel), ino)
            self.assertTrue(after[rel].startswith(before[rel]), "%s: the old bytes are a prefix" % rel)
            self.assertEqual(len(after[rel]) - len(before[rel]), 4 * 12, "%s: 12 new buckets" % rel)
        full = os.path.join(self.dir, "qlib", "full1")
        self.export(full, "5min")
        self.assertEqual(read_root(full), after, "incremental == full")
        # 2) back-fill the gap inside exported dates and change an old bar
        self.put("binance_spot", "BTCUSDT", "1m", {DAY0 + 60 * i: bar(i) for i in range(100, 105)})
        changed = bar(7)
        changed["high"] = 999.0
        self.put("binance_spot", "BTCUSDT", "1m", {DAY0 + 60 * 7: changed})
        self.export(out, "5min")
        full2 = os.path.join(self.dir, "qlib", "full2")
        self.export(full2, "5min")
        self.assertEqual(read_root(out), read_root(full2), "incremental == full after a back-fill")
        exp = self.expected("binance_spot", "5min", {"BTCUSDT": "BTCUSDT", "ETHUSDT": "ETHUSDT"})
        self.assertEqual(exp["BTCUSDT"][DAY0 + 300]["high"], 999.0)
        self.assertRoot(out, expected_root(exp, "5min"))
        self.check(out, "5min")
        self.assertFalse(os.path.exists(out + ".candled-next"), "no staging folder left")

    def test_a_killed_export_leaves_the_previous_export_intact(self):
        """kill -9 at growing delays during an export: the root is always the previous export or the
        new one, complete (never a mix, never missing); the next export cleans up and completes."""
        for k in range(12):
            self.put("binance_spot", "S%02d" % k, "1m", {DAY0 + 60 * i: bar(i + k) for i in range(2000)})
        out = os.path.join(self.dir, "qlib", "m1")
        self.export(out, "1min")
        old = read_root(out)
        for k in range(12):
            self.put("binance_spot", "S%02d" % k, "1m", {DAY0 + 60 * i: bar(i + k + 1) for i in range(1000, 2100)})
        new_full = os.path.join(self.dir, "qlib", "m1_full")
        self.export(new_full, "1min")
        new = read_root(new_full)
        self.assertNotEqual(old, new)
        staged, delay, outcomes = 0, 0.02, []
        for _ in range(25):
            p = subprocess.Popen([harness.ARGS.candled, "export", "--config", self.config, "qlib", "--out", out,
                                  "--freq", "1min"], cwd=self.dir, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            time.sleep(delay)
            p.send_signal(signal.SIGKILL)
            p.wait()
            if os.path.exists(out + ".candled-next"):
                staged += 1
            now = read_root(out)
            self.assertTrue(now == old or now == new, "after a kill at %.2fs the root is a whole export" % delay)
            outcomes.append(now == new)
            if now == new:
                break
            delay *= 1.4
        self.assertGreater(staged, 0, "at least one kill landed in the middle of an export")
        self.export(out, "1min")
        self.assertEqual(read_root(out), new)
        self.assertFalse(os.path.exists(out + ".candled-next"))
        self.check(out, "1min")

    def test_cli_errors_name_the_option_and_use_the_exit_codes(self):
        self.put("binance_spot", "BTCUSDT", "1m", {DAY0 + 60 * i: bar(i) for i in range(10)})
        out = os.path.join(self.dir, "qlib", "x")
        cases = [
            ((), 2, "--out DIR is required"),
            (("--out", out), 2, "--freq is required"),
            (("--out", out, "--freq", "1h"), 2, "--freq: '1h' is not one of"),
            (("--out", out, "--freq", "day", "--bogus", "1"), 2, "unexpected argument '--bogus'"),
            (("--out", out, "--freq", "day", "--start", "yesterday"), 2, "--start: 'yesterday' is not a date"),
            (("--out", out, "--freq", "5min", "--instruments", "NOPE"), 1, "--instruments: no stored candles of 'NOPE'"),
            (("--out", out, "--freq", "5min", "--source", "nope"), 1, "--source: no candles of source 'nope'"),
        ]
        for args, code, msg in cases:
            r = self.candled("export", "--config", self.config, "qlib", *args)
            self.assertEqual(r.returncode, code, (args, r.stderr))
            self.assertIn(msg, r.stderr)
            self.assertEqual(len(r.stderr.strip().splitlines()), 1, r.stderr)
        r = self.candled("export", "--config", self.config, "csv", "--out", out)
        self.assertEqual(r.returncode, 2)
        self.assertIn("the format 'csv' is unknown", r.stderr)
        # a folder that is not an export is never replaced
        os.makedirs(os.path.join(self.dir, "notqlib"))
        with open(os.path.join(self.dir, "notqlib", "keep.txt"), "w") as f:
            f.write("mine")
        r = self.export(os.path.join(self.dir, "notqlib"), "5min", code=1)
        self.assertIn("--out:", r.stderr)
        self.assertIn("holds no QLib export", r.stderr)
        self.assertTrue(os.path.exists(os.path.join(self.dir, "notqlib", "keep.txt")))
        # another frequency in the same root is refused
        self.export(out, "5min")
        r = self.export(out, "1min", code=1)
        self.assertIn("holds a '5min' export", r.stderr)
        # two exports into one root never interleave: the lock is held by someone else
        with open(out + ".candled-lock", "a") as f:
            fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
            r = self.export(out, "5min", code=1)
            self.assertIn("another export into", r.stderr)
        self.export(out, "5min")
        # --start/--end limit the rows (dates inclusive)
        self.put("binance_spot", "BTCUSDT", "1m", {DAY0 + 86400 + 60 * i: bar(i) for i in range(10)})
        lim = os.path.join(self.dir, "qlib", "lim")
        self.export(lim, "5min", "--start", "2024-01-02", "--end", "2024-01-02")
        with open(os.path.join(lim, "instruments", "all.txt")) as f:
            self.assertEqual(f.read(), "BTCUSDT\t2024-01-02 00:00:00\t2024-01-02 00:05:00\n")


class ScheduledExportTest(QlibCase):
    def daemon_config(self, exports):
        scripts = {"export/qlib.lua": os.path.join(harness.ARGS.source, "scripts", "export", "qlib.lua"),
                   "lib/qlib.lua": os.path.join(harness.ARGS.source, "scripts", "lib", "qlib.lua"),
                   "lib/series.lua": os.path.join(harness.ARGS.source, "scripts", "lib", "series.lua")}
        return self.write_config({"database": {"path": "data/candled.db"}, "log": {"level": "info"},
                                  "runtime": {"reload_debounce": 0.05},
                                  "schedules": {"export.qlib": {"every": 1}},
                                  "export": {"qlib": exports}}, scripts)

    def test_configured_exports_are_kept_current_and_checked_at_start_and_reload(self):
        self.put("binance_spot", "BTCUSDT", "1m", {DAY0 + 60 * i: bar(i) for i in range(30)})
        # start: a configured export without out stops the daemon, naming the key
        cfg = self.daemon_config({"m5": {"freq": "5min"}})
        p = self.start_daemon(cfg)
        p.wait(timeout=30)
        err = p.stderr.read()
        p.stdout.close()
        p.stderr.close()
        self.assertNotEqual(p.returncode, 0)
        self.assertIn("export.qlib.m5.out: required", err)
        # a good config: the export appears and follows new rows
        cfg = self.daemon_config({"m5": {"out": "qlib/m5", "freq": "5min", "every": 1, "source": "binance_spot"}})
        p = self.start_daemon(cfg)
        out = os.path.join(self.dir, "qlib", "m5")
        cal = os.path.join(out, "calendars", "5min.txt")
        self.wait_for(lambda: os.path.exists(cal), what="the scheduled export")
        self.put("binance_spot", "BTCUSDT", "1m", {DAY0 + 60 * i: bar(i) for i in range(30, 40)})
        self.wait_for(lambda: count_lines(cal) == 8, what="the export to follow new rows")
        exp = self.expected("binance_spot", "5min", {"BTCUSDT": "BTCUSDT"})
        self.wait_for(lambda: read_root(out) == expected_root(exp, "5min"), what="the export's bytes")
        self.check(out, "5min")
        # a reload that drops freq is rejected; the running export keeps going
        self.daemon_config({"m5": {"out": "qlib/m5", "every": 1}})
        r = self.candled("reload", "--config", cfg)
        self.assertEqual(r.returncode, 1, r.stdout + r.stderr)
        self.assertIn("export.qlib.m5.freq: required", r.stdout + r.stderr)
        self.put("binance_spot", "BTCUSDT", "1m", {DAY0 + 60 * i: bar(i) for i in range(40, 45)})
        self.wait_for(lambda: count_lines(cal) == 9, what="the export under the previous config")
        # a second export added by a reload: its folder becomes writable for scripts
        self.daemon_config({"m5": {"out": "qlib/m5", "freq": "5min", "every": 1},
                            "h1": {"out": "qlib/h1", "freq": "60min", "every": 1}})
        r = self.candled("reload", "--config", cfg)
        self.assertEqual(r.returncode, 0, r.stdout + r.stderr)
        self.put("binance_spot", "BTCUSDT", "1m", {DAY0 + 60 * i: bar(i) for i in range(45, 60)})
        self.wait_for(lambda: os.path.exists(os.path.join(self.dir, "qlib", "h1", "calendars", "60min.txt")),
                      what="the export added by a reload")
        code, err = self.stop_daemon(p)
        self.assertEqual(code, 0, err)
        self.assertNotIn("export_failed", err)


if __name__ == "__main__":
    harness.parse_args()
    CHECKER = find_checker()
    if CHECKER:
        print("qlib_check: %s" % CHECKER, file=sys.stderr)
    else:
        print("!" * 78 + "\n!! qlib_check.py NOT FOUND ($QLIB_CHECK or ../shared/tools/qlib_check.py):\n"
              "!! only this test's own reader checks the exports\n" + "!" * 78, file=sys.stderr)
    import unittest
    unittest.main(verbosity=2)
