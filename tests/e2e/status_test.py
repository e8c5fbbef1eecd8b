"""The daemon's HTTP endpoint (issue 14): /metrics read by a strict Prometheus text-format parser,
the JSON API, and the status page in headless Chromium showing live values and a drawn chart."""
import json
import os
import re
import shutil
import struct
import subprocess
import time
import urllib.error
import urllib.request
import zlib

import harness

# Every run writes one more 1m candle of src/BTC (and its rows count in the run history).
WRITER = """
local db = require "rt.db"
return {
  name = "writer", every = 0.2,
  run = function(ctx)
    local top = db.first("SELECT max(ts) AS ts FROM candles WHERE source = 'src'")
    local ts = top and top.ts and top.ts + 60 or 1700000000
    local o = 100 + (ts - 1700000000) / 60 % 40
    assert(db.upsert("candles", { { source = "src", instrument = "BTC", timeframe = "1m", ts = ts, open = o,
      high = o + 2, low = o - 1, close = o + 1, volume = 3 } }, { keys = { "source", "instrument", "timeframe", "ts" } }))
    return true
  end,
}
"""

NAME = r"[a-zA-Z_:][a-zA-Z0-9_:]*"
SAMPLE = re.compile(r"^(%s)(\{(.*)\})? (\S+)$" % NAME)
LABEL = re.compile(r'([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\\n]|\\\\|\\"|\\n)*)"(,|$)')


def parse_exposition(text):
    """Prometheus text format 0.0.4, strictly: HELP/TYPE once per family and before its samples,
    a family's samples together, valid names, labels and float values; returns
    {family: {"type": t, "samples": [(name, {labels}, value)]}}."""
    fams, current, seen_done = {}, None, set()
    assert text.endswith("\n"), "the exposition ends with a newline"
    for n, line in enumerate(text.split("\n")[:-1], 1):
        where = "line %d: %r" % (n, line)
        if line.startswith("# HELP ") or line.startswith("# TYPE "):
            kind, name, rest = line[2:6], line.split(" ")[2], line.split(" ", 3)[3:]
            assert re.fullmatch(NAME, name), where
            if current != name:
                assert name not in seen_done and name not in fams or fams[name].get(kind) is None, where
                if current:
                    seen_done.add(current)
                current = name
            f = fams.setdefault(name, {"samples": []})
            assert kind not in f, "duplicate %s: %s" % (kind, where)
            assert not f["samples"], "%s after samples: %s" % (kind, where)
            if kind == "TYPE":
                assert rest and rest[0] in ("counter", "gauge", "histogram", "summary", "untyped"), where
                f["type"] = rest[0]
            else:
                f["HELP"] = rest[0] if rest else ""
            continue
        assert not line.startswith("#") and line.strip(), where
        m = SAMPLE.match(line)
        assert m, where
        name, labels_text, value = m.group(1), m.group(3), m.group(4)
        fam = current
        assert fam and (name == fam or (fams[fam]["type"] == "histogram" and
                                        name in (fam + "_bucket", fam + "_sum", fam + "_count"))), \
            "sample outside its family: " + where
        labels = {}
        if labels_text:
            pos = 0
            while pos < len(labels_text):
                lm = LABEL.match(labels_text, pos)
                assert lm, "bad labels: " + where
                assert lm.group(1) not in labels, where
                labels[lm.group(1)] = lm.group(2)
                pos = lm.end()
        assert value in ("+Inf", "-Inf", "NaN") or re.fullmatch(r"-?\d+(\.\d+)?([eE][-+]?\d+)?", value), where
        fams[fam]["samples"].append((name, labels, float(value)))
    for name, f in fams.items():
        assert "type" in f, name + " has no TYPE"
        if f["type"] == "counter":
            assert name.endswith("_total"), "a counter is named *_total: " + name
    return fams


def decode_png(data):
    """Width, height and rows of RGB(A) tuples of an 8-bit, non-interlaced PNG."""
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    pos, idat = 8, b""
    while pos < len(data):
        length, kind = struct.unpack(">I4s", data[pos:pos + 8])
        chunk = data[pos + 8:pos + 8 + length]
        if kind == b"IHDR":
            w, h, depth, color, _, _, interlace = struct.unpack(">IIBBBBB", chunk)
            assert depth == 8 and interlace == 0 and color in (2, 6)
        elif kind == b"IDAT":
            idat += chunk
        pos += 12 + length
    bpp = 3 if color == 2 else 4
    raw, stride, rows, prev = zlib.decompress(idat), w * bpp, [], bytearray(w * bpp)
    for y in range(h):
        f, line = raw[y * (stride + 1)], bytearray(raw[y * (stride + 1) + 1:(y + 1) * (stride + 1)])
        for i in range(stride):
            a = line[i - bpp] if i >= bpp else 0
            b, c = prev[i], prev[i - bpp] if i >= bpp else 0
            if f == 1:
                line[i] = (line[i] + a) & 255
            elif f == 2:
                line[i] = (line[i] + b) & 255
            elif f == 3:
                line[i] = (line[i] + (a + b) // 2) & 255
            elif f == 4:
                p = a + b - c
                pa, pb, pc = abs(p - a), abs(p - b), abs(p - c)
                line[i] = (line[i] + (a if pa <= pb and pa <= pc else b if pb <= pc else c)) & 255
        rows.append(line)
        prev = line
    return w, h, [[tuple(r[x * bpp:x * bpp + 3]) for x in range(w)] for r in rows]


class StatusTest(harness.Case):
    def start(self, extra=None):
        cfg = {"database": {"path": "data/candled.db"}, "repl": {"enabled": False},
               "runtime": {"shutdown_grace": 1, "min_every": 0.05}, "backup": {"enabled": False},
               "budgets": {"api": {"windows": [{"per": "1m", "limit": 100}]}}}
        cfg.update(extra or {})
        self.daemon = self.start_daemon(self.write_config(cfg, scripts={"writer.lua": WRITER}))
        deadline = time.time() + 30
        while time.time() < deadline:
            line = self.daemon.stderr.readline()
            m = re.search(r"http server listening on (http://[0-9.]+:\d+)/", line)
            if m:
                return m.group(1)
        self.fail("the daemon did not log its HTTP port")

    def get(self, url):
        with urllib.request.urlopen(url, timeout=10) as r:
            return r.status, r.headers.get("Content-Type"), r.read().decode()

    def chromium(self, *args):
        exe = shutil.which("chromium") or "/usr/bin/chromium"
        profile = os.path.join(self.dir, "chromium")
        r = subprocess.run([exe, "--headless", "--no-sandbox", "--disable-gpu", "--user-data-dir=" + profile,
                            "--virtual-time-budget=3000"] + list(args), capture_output=True, timeout=120)
        self.assertEqual(r.returncode, 0, r.stderr[-2000:])
        return r.stdout.decode()

    def test_metrics_parse_strictly_and_count_the_runs(self):
        url = self.start()
        self.wait_for(lambda: self.query("SELECT coalesce(max(runs), 0) FROM collectors WHERE script = 'writer'")[0][0] >= 3,
                      what="a few runs")
        status, ctype, body = self.get(url + "/metrics")
        self.assertEqual(status, 200)
        self.assertTrue(ctype.startswith("text/plain; version=0.0.4"), ctype)
        fams = parse_exposition(body)

        def value(fam, **labels):
            for name, l, v in fams[fam]["samples"]:
                if name == fam and l == labels:
                    return v
            self.fail("no %s %s" % (fam, labels))
        self.assertGreaterEqual(value("candled_script_runs_total", script="writer"), 3)
        self.assertEqual(value("candled_script_failures_total", script="writer"), 0)
        self.assertGreaterEqual(value("candled_script_rows_written_total", script="writer"), 3)
        self.assertEqual(value("candled_budget_window_limit", budget="api", window="1m"), 100)
        self.assertEqual(value("candled_budget_breaker_state", budget="api", state="closed"), 1)
        self.assertEqual(fams["candled_budget_throttled_total"]["type"], "counter")
        self.assertGreater(value("candled_series_age_seconds", source="src", instrument="BTC", timeframe="1m"), 0)
        self.assertEqual(value("candled_series_timeframe_seconds", source="src", instrument="BTC", timeframe="1m"), 60)
        self.assertGreater(value("candled_database_size_bytes"), 0)
        self.assertGreaterEqual(value("candled_loop_lag_seconds"), 0)
        # the histogram: cumulative buckets ending at +Inf == _count
        h = fams["candled_script_run_duration_seconds"]
        self.assertEqual(h["type"], "histogram")
        buckets = [(l["le"], v) for n, l, v in h["samples"] if n.endswith("_bucket") and l["script"] == "writer"]
        counts = [v for _, v in buckets]
        self.assertEqual(counts, sorted(counts))
        self.assertEqual(buckets[-1][0], "+Inf")
        count = [v for n, l, v in h["samples"] if n.endswith("_count") and l["script"] == "writer"][0]
        self.assertEqual(buckets[-1][1], count)
        # JSON API and read-only
        _, ctype, body = self.get(url + "/api/status")
        s = json.loads(body)
        self.assertEqual([r["name"] for r in s["scripts"]], ["writer"])
        self.assertEqual(s["budgets"][0]["name"], "api")
        _, _, body = self.get(url + "/api/candles?source=src&instrument=BTC&timeframe=1m&limit=2")
        self.assertEqual(len(json.loads(body)["candles"]), 2)
        with self.assertRaises(urllib.error.HTTPError) as e:
            self.get(url + "/api/candles?source=src")
        self.assertEqual(e.exception.code, 400)
        req = urllib.request.Request(url + "/api/status", data=b"{}", method="POST")
        with self.assertRaises(urllib.error.HTTPError) as e:
            urllib.request.urlopen(req, timeout=10)
        self.assertEqual(e.exception.code, 405)
        self.assertEqual(self.stop_daemon(self.daemon)[0], 0)

    def test_status_page_is_live_and_draws_the_chart(self):
        url = self.start()
        self.wait_for(lambda: self.query("SELECT count(*) FROM candles")[0][0] >= 5, what="candles")
        page = url + "/#" + "src%7CBTC%7C1m"

        def shown():
            dom = self.chromium("--dump-dom", page)
            self.assertIn('id="state" class="muted">live<', dom)
            row = re.search(r"<td>writer</td>.*?</tr>", dom, re.S)
            self.assertIsNotNone(row, "the writer script is listed")
            drawn = re.search(r'data-drawn="(\d+)"', dom)
            self.assertIsNotNone(drawn, "the chart was drawn")
            last = re.search(r"candles to ([0-9: -]+), last close", dom)
            return int(drawn.group(1)), last.group(1), re.findall(r'<td class="num">(\d+)</td>', row.group(0))

        n1, last1, nums1 = shown()
        before = self.query("SELECT max(ts) FROM candles")[0][0]
        self.wait_for(lambda: self.query("SELECT max(ts) FROM candles")[0][0] > before + 120, what="more candles")
        n2, last2, nums2 = shown()
        self.assertGreater(n1, 0)
        self.assertNotEqual(last1, last2, "the chart follows new candles")
        self.assertGreater(int(nums2[0]), int(nums1[0]), "the runs count moved")
        # the screenshot: the chart's canvas holds green and red candle pixels
        shot = os.path.join(self.dir, "page.png")
        self.chromium("--window-size=1000,1000", "--screenshot=" + shot, page)
        with open(shot, "rb") as f:
            w, h, px = decode_png(f.read())
        green = sum(1 for row in px for p in row if p == (0x13, 0x73, 0x33))
        red = sum(1 for row in px for p in row if p == (0xb3, 0x26, 0x1e))
        self.assertGreater(green + red, 200, "candles drawn on the canvas (%d green, %d red)" % (green, red))
        self.assertEqual(self.stop_daemon(self.daemon)[0], 0)


if __name__ == "__main__":
    harness.main()
