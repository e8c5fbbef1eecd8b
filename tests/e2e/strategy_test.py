"""End to end: strategies (issue 16). A backtest's arithmetic against trades computed by hand, the
report files and the SVG chart; `candled replay` errors; the same signals live (fed by candle events
while the daemon collects Binance klines from the mock (scripts/binance/spot.lua)) and in replay; a strategy hot-reloaded
mid-stream keeps ctx.state; a strategy that fails never touches collection."""
import csv
import json
import math
import os
import re
import shutil
import socket
import subprocess
import time
import urllib.request
import xml.etree.ElementTree as ET

import harness

T0 = 1704067200                      # 2024-01-01T00:00:00Z

# (open, close) per 1m bar; high/low around them. The scripted strategy signals at bar indices.
BARS = [(100, 100), (100, 102), (102, 104), (105, 110), (110, 108), (108, 100), (99, 98), (98, 97),
        (96, 90), (90, 92), (93, 93), (93, 95)]

SCRIPTED = """
return {
  consumes = { source = "test", instruments = { "AAA" }, timeframes = { "1m" } },
  on_bar = function(ctx, bar)
    local i = (ctx.state.i or -1) + 1
    ctx.state.i = i
    if i == 2 then ctx.signal { side = "buy", size = 1, reason = "go long" }
    elseif i == 5 then ctx.signal { side = "flat", reason = "out" }
    elseif i == 7 then ctx.signal { side = "sell", size = 0.5, reason = "short, half" }
    elseif i == 9 then ctx.signal { side = "flat", reason = "cover" } end
  end,
}
"""

COUNTER = """
return {
  consumes = { source = "test", instruments = { "AAA" }, timeframes = { "1m" } },
  on_bar = function(ctx, bar)
    ctx.state.n = (ctx.state.n or 0) + 1
    ctx.signal { side = "buy", size = ctx.state.n / 100, reason = "%s n=" .. ctx.state.n }
  end,
  on_trade = function(ctx, trade)
    ctx.signal { side = "flat", reason = "trade " .. trade.trade_id .. " at " .. trade.price }
  end,
}
"""

SLOW = """
return {
  consumes = { source = "binance_spot", instruments = { "BTCUSDT" }, timeframes = { "1m" } },
  on_bar = function(ctx, bar)
    local t = os.clock()
    while os.clock() - t < 0.002 do end                -- 2 ms a bar: slower than collection
    ctx.state.n = (ctx.state.n or 0) + 1
  end,
}
"""

BROKEN = """
return {
  consumes = { source = "binance_spot", instruments = { "BTCUSDT" }, timeframes = { "1m" } },
  on_bar = function(ctx, bar) error("broken strategy") end,
}
"""


def fill_lua(bars, source="test", instrument="AAA"):
    rows = []
    for i, (o, c) in enumerate(bars):
        rows.append('{source="%s", instrument="%s", timeframe="1m", ts=%d, open=%r, high=%r, low=%r, close=%r, volume=1}'
                    % (source, instrument, T0 + 60 * i, float(o), float(max(o, c) + 1), float(min(o, c) - 1), float(c)))
    # and an all-null minute after them (as Yahoo stores): no price, skipped by the replay
    rows.append('{source="%s", instrument="%s", timeframe="1m", ts=%d}' % (source, instrument, T0 + 60 * len(bars)))
    return ('local db = require "rt.db"\nassert(db.upsert("candles", {%s}, {keys={"source","instrument","timeframe","ts"}}))\n'
            % ",\n".join(rows))


def hand_backtest(bars, signals, capital, fees_bps, slip_bps):
    """The documented simulation, written out plainly: a signal at bar i trades at bar i+1's open."""
    fee, slip = fees_bps / 1e4, slip_bps / 1e4
    cash, pos = capital, 0.0
    equity, exposed, trades = [], 0, []
    entry = None
    for i, (o, c) in enumerate(bars):
        if i - 1 in signals:
            target = signals[i - 1] * (cash + pos * o) / o
            delta = target - pos
            price = o * (1 + slip) if delta > 0 else o * (1 - slip)
            f = abs(delta) * price * fee
            cash -= delta * price + f
            if pos == 0:
                entry = (price, delta, f)
            else:                                   # these plans only go back to flat
                ep, units, ef = entry
                trades.append(units * (price - ep) - ef - f)
            pos = target
        if pos != 0:
            exposed += 1
        equity.append(cash + pos * c)
    return equity, exposed, trades


class Strategies(harness.Case):
    def setUp(self):
        super().setUp()
        self.sdir = os.path.join(self.dir, "strategies")
        os.makedirs(self.sdir)

    def strategy(self, name, src):
        path = os.path.join(self.sdir, name + ".lua")
        with open(path + ".tmp", "w") as f:
            f.write(src)
        os.replace(path + ".tmp", path)

    def base_config(self, **extra):
        cfg = {"database": {"path": "data/candled.db"}, "log": {"level": "info"},
               "runtime": {"shutdown_grace": 2, "reload_debounce": 0.05},
               "paths": {"strategies": "strategies"}}
        cfg.update(extra)
        return cfg

    def eval(self, cfg, src):
        path = os.path.join(self.dir, "fill.lua")
        with open(path, "w") as f:
            f.write(src)
        r = self.candled("eval", "--config", cfg, path)
        self.assertEqual(r.returncode, 0, r.stderr)

    # ---- replay --------------------------------------------------------------------------------

    def test_backtest_arithmetic_report_files_and_chart(self):
        self.strategy("scripted", SCRIPTED)
        cfg = self.write_config(self.base_config(), scripts={})
        self.eval(cfg, fill_lua(BARS))
        r = self.candled("replay", "--config", cfg, "--strategy", "scripted", "--from", "2024-01-01",
                         "--to", "2024-01-01", "--fees", "10", "--slippage", "20", "--out", "out")
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertIn("replay scripted: AAA 1m, 12 bars", r.stdout)
        out = os.path.join(self.dir, "out")
        for f in ("report.json", "report.csv", "signals.csv", "trades.csv", "equity.csv", "equity.svg"):
            self.assertTrue(os.path.getsize(os.path.join(out, f)) > 0, f)
        with open(os.path.join(out, "report.json")) as f:
            rep = json.load(f)

        # By hand: long 10000/105 units bought at 105 * 1.002 with a 0.1% fee, sold at 99 * 0.998;
        # then short half the equity at 96 * 0.998, covered at 93 * 1.002.
        u1 = 10000 / 105
        pnl1 = u1 * (99 * 0.998 - 105 * 1.002) - u1 * 105 * 1.002 * 0.001 - u1 * 99 * 0.998 * 0.001
        e1 = 10000 + pnl1
        u2 = 0.5 * e1 / 96
        pnl2 = u2 * (96 * 0.998 - 93 * 1.002) - u2 * 96 * 0.998 * 0.001 - u2 * 93 * 1.002 * 0.001
        final = 10000 + pnl1 + pnl2
        self.assertAlmostEqual(rep["final_equity"], final, places=6)
        self.assertAlmostEqual(rep["total_return"], final / 10000 - 1, places=9)
        self.assertAlmostEqual(rep["fees_paid"], u1 * 0.001 * (105 * 1.002 + 99 * 0.998)
                               + u2 * 0.001 * (96 * 0.998 + 93 * 1.002), places=6)
        self.assertEqual(rep["trades"], 2)
        self.assertEqual(rep["win_rate"], 0.5)                 # the long lost, the short won
        self.assertAlmostEqual(rep["exposure"], 5 / 12)        # bars 3-5 long, 8-9 short
        self.assertEqual(rep["signals"], 4)
        self.assertEqual(rep["bars"], 12)

        equity, exposed, trades = hand_backtest(BARS, {2: 1.0, 5: 0.0, 7: -0.5, 9: 0.0}, 10000, 10, 20)
        self.assertAlmostEqual(trades[0], pnl1, places=6)
        self.assertAlmostEqual(trades[1], pnl2, places=6)
        peak, maxdd = 10000, 0
        for e in equity:
            peak = max(peak, e)
            maxdd = max(maxdd, (peak - e) / peak)
        self.assertAlmostEqual(rep["max_drawdown"], maxdd, places=9)
        # the peak is the close of bar 3 (long from 105.21, close 110), the trough bar 6 or later
        self.assertGreater(maxdd, 0.09)
        rets = [b / a - 1 for a, b in zip([10000] + equity[:-1], equity)]
        mean = sum(rets) / len(rets)
        sd = math.sqrt(sum((x - mean) ** 2 for x in rets) / (len(rets) - 1))
        ppy = 365 * 86400 / 60
        self.assertAlmostEqual(rep["annualised_volatility"], sd * math.sqrt(ppy), places=6)
        self.assertAlmostEqual(rep["sharpe"], mean / sd * math.sqrt(ppy), places=6)
        years = 12 * 60 / (365 * 86400)
        self.assertAlmostEqual(rep["annualised_return"], (final / 10000) ** (1 / years) - 1, places=9)

        with open(os.path.join(out, "trades.csv")) as f:
            tr = list(csv.DictReader(f))
        self.assertEqual([t["side"] for t in tr], ["long", "short"])
        self.assertAlmostEqual(float(tr[0]["pnl"]), pnl1, places=4)
        self.assertAlmostEqual(float(tr[1]["pnl"]), pnl2, places=4)
        self.assertEqual([int(t["entry_ts"]) for t in tr], [T0 + 180, T0 + 480])
        self.assertAlmostEqual(float(tr[0]["entry_price"]), 105 * 1.002, places=6)
        with open(os.path.join(out, "signals.csv")) as f:
            sig = list(csv.DictReader(f))
        self.assertEqual([(int(s["ts"]), s["side"], float(s["size"])) for s in sig],
                         [(T0 + 120, "buy", 1.0), (T0 + 300, "flat", 0.0), (T0 + 420, "sell", 0.5), (T0 + 540, "flat", 0.0)])
        self.assertEqual(sig[2]["reason"], "short, half")
        with open(os.path.join(out, "report.csv")) as f:
            row = list(csv.DictReader(f))[0]
        self.assertAlmostEqual(float(row["final_equity"]), final, places=4)
        with open(os.path.join(out, "equity.csv")) as f:
            eq = list(csv.DictReader(f))
        self.assertEqual(len(eq), 12)
        for got, want in zip(eq, equity):
            self.assertAlmostEqual(float(got["equity"]), want, places=4)

        # The chart: an SVG whose equity polyline has one point per equity.csv row, x growing with
        # time and y lowest (largest) where equity is lowest; the drawdown below it.
        tree = ET.parse(os.path.join(out, "equity.svg"))
        ns = {"s": "http://www.w3.org/2000/svg"}
        line = tree.getroot().find(".//s:polyline[@id='equity']", ns)
        self.assertIsNotNone(line)
        pts = [tuple(map(float, p.split(","))) for p in line.get("points").split()]
        self.assertEqual(len(pts), 12)
        self.assertEqual(sorted(p[0] for p in pts), [p[0] for p in pts])
        lowest = min(range(12), key=lambda i: equity[i])
        self.assertEqual(max(range(12), key=lambda i: pts[i][1]), lowest)
        self.assertIsNotNone(tree.getroot().find(".//s:polygon[@id='drawdown']", ns))
        self.chromium_renders(os.path.join(out, "equity.svg"))

    def chromium_renders(self, svg):
        """Optional: the SVG opens in headless Chromium (skipped when none is installed)."""
        exe = shutil.which("chromium") or shutil.which("chromium-browser")
        if not exe:
            return
        png = os.path.join(self.dir, "chart.png")
        subprocess.run([exe, "--headless", "--no-sandbox", "--disable-gpu", "--screenshot=" + png,
                        "--user-data-dir=" + os.path.join(self.dir, "chromium"),
                        "--window-size=960,540", "file://" + svg], capture_output=True, timeout=60)
        self.assertTrue(os.path.exists(png) and os.path.getsize(png) > 1000, "chromium did not render the chart")

    def test_replay_errors_are_one_line_with_exit_codes(self):
        self.strategy("scripted", SCRIPTED)
        self.strategy("raises", SCRIPTED.replace('ctx.state.i = i', 'ctx.state.i = i; if i == 3 then error("bad bar") end'))
        cfg = self.write_config(self.base_config(), scripts={})
        self.eval(cfg, fill_lua(BARS))
        cases = [
            (["--from", "2024-01-01", "--to", "2024-01-02"], 2, "--strategy is required"),
            (["--strategy", "scripted", "--from", "2024-13-01", "--to", "2024-01-02"], 2, "--from: '2024-13-01' is not a date"),
            (["--strategy", "scripted", "--from", "2024-01-02", "--to", "2024-01-01"], 2, "--to is before --from"),
            (["--strategy", "scripted", "--from", "2024-01-01", "--to", "2024-01-02", "--fees", "-1"], 2, "--fees"),
            (["--strategy", "nosuch", "--from", "2024-01-01", "--to", "2024-01-02"], 1, "no strategy 'nosuch'"),
            (["--strategy", "scripted", "--instruments", "ZZZ", "--from", "2024-01-01", "--to", "2024-01-02"], 1,
             "no stored bars for test ZZZ 1m"),
            (["--strategy", "raises", "--from", "2024-01-01", "--to", "2024-01-02", "--out", "o2"], 1, "raises.lua:"),
        ]
        for args, code, text in cases:
            r = self.candled("replay", "--config", cfg, *args)
            self.assertEqual(r.returncode, code, (args, r.stderr))
            self.assertEqual(len(r.stderr.strip().splitlines()), 1, r.stderr)
            self.assertIn(text, r.stderr)
            self.assertTrue(r.stderr.startswith("candled: replay: "), r.stderr)

    # ---- live -----------------------------------------------------------------------------------

    def test_live_signals_equal_replay_bar_for_bar_and_a_failing_strategy_does_not_touch_collection(self):
        shutil.copy(os.path.join(harness.ARGS.source, "strategies", "sma_cross.lua"), self.sdir)
        self.strategy("broken", BROKEN)
        self.strategy("slow", SLOW)
        cfg = self.base_config(
            sources={"binance_spot": {"base_url": self.mock.url, "symbols": ["BTCUSDT"], "intervals": ["1m"],
                                      "start": "2021-10-22T23:03:00Z"}},
            schedules={"binance.spot": {"every": "1s"}},
            budgets={"binance_spot": {"windows": [{"per": "1m", "limit": 6000}], "retries": 2,
                                      "backoff": {"base": 0.05, "cap": 0.2}}},
            strategies={"sma_cross": {"fast": 5, "slow": 20, "warmup": 0}, "broken": {}, "slow": {"queue": 16}})
        src = os.path.join(harness.ARGS.source, "scripts")
        path = self.write_config(cfg, scripts={f: os.path.join(src, f) for f in (
            "binance/spot.lua", "lib/binance.lua", "lib/source.lua", "lib/series.lua", "lib/indicators.lua")})
        p = self.start_daemon(path)
        self.wait_for(lambda: self.query("SELECT count(*) FROM runs WHERE script = 'binance.spot' AND status = 'ok'")[0][0] >= 2,
                      what="two collection runs")
        time.sleep(0.5)
        code, err = self.stop_daemon(p)
        self.assertEqual(code, 0, err)
        self.assertEqual(self.query("SELECT count(*) FROM candles")[0][0], 2500, "collection is complete")
        self.assertIn("strategy live", err)
        alerts = self.query("SELECT subject FROM alerts WHERE kind = 'strategy_failed' AND resolved IS NULL")
        self.assertEqual(alerts, [("broken",)])
        # The slow strategy's queue of 16 overflowed (a page of 1,000 bars commits at once): the
        # drops were counted and alerted, the strategy told, collection never waited for it.
        over = self.query("SELECT subject, message FROM alerts WHERE kind = 'events_overflow'")
        self.assertEqual([o[0] for o in over], ["strategy:slow"], over)
        self.assertIn("event(s) dropped (queue of 16)", over[0][1])
        self.assertIn("strategy missed bars", err)
        live = self.query("SELECT ts, side, size, price FROM signals WHERE strategy = 'sma_cross' ORDER BY ts")
        self.assertGreater(len(live), 20)
        st = self.candled("status", "--config", path)
        self.assertEqual(st.returncode, 0, st.stderr)
        self.assertRegex(st.stdout, r"\n  sma_cross\s+live signals %d\s+last (buy|flat) BTCUSDT" % len(live))
        self.assertRegex(st.stdout, r"\n  broken\s+live signals 0\s+none yet")
        r = self.candled("replay", "--config", path, "--strategy", "sma_cross", "--from", "2021-10-22",
                         "--to", "2021-10-25", "--out", "replayed")
        self.assertEqual(r.returncode, 0, r.stderr)
        with open(os.path.join(self.dir, "replayed", "signals.csv")) as f:
            replayed = [(int(s["ts"]), s["side"], float(s["size"]), float(s["price"])) for s in csv.DictReader(f)]
        self.assertEqual(len(replayed), len(live))
        for a, b in zip(live, replayed):
            self.assertEqual(a[:3], b[:3])
            self.assertAlmostEqual(a[3], b[3], places=6)

    def test_a_strategy_hot_reloaded_mid_stream_keeps_its_state(self):
        self.strategy("counter", COUNTER % "v1")
        with socket.socket() as s:                  # a free port for /metrics
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
        cfg = self.write_config(self.base_config(strategies={"counter": {}},
                                                 http_server={"listen": "127.0.0.1:%d" % port}), scripts={})
        p = self.start_daemon(cfg)
        self.wait_for(lambda: os.path.exists(os.path.join(self.dir, "data", "candled.sock")), what="the REPL socket")

        def feed(first, n):
            lines = ['db.upsert("candles", {{source="test", instrument="AAA", timeframe="1m", ts=%d, open=1, high=1, '
                     'low=1, close=%d, volume=1}}, {keys={"source","instrument","timeframe","ts"}})' % (T0 + 60 * i, i)
                     for i in range(first, first + n)]
            r = self.candled("repl", "--config", cfg, stdin="\n".join(lines) + "\n")
            self.assertEqual(r.returncode, 0, r.stderr)

        def signals():
            return [x[0] for x in self.query("SELECT reason FROM signals WHERE strategy = 'counter' AND side = 'buy' "
                                             "ORDER BY ts")]

        feed(0, 3)
        self.wait_for(lambda: len(signals()) == 3, what="three signals")
        self.strategy("counter", COUNTER % "v2")
        r = self.candled("reload", "--config", cfg, "strategies.counter")
        self.assertEqual(r.returncode, 0, r.stdout + r.stderr)
        feed(3, 2)
        self.wait_for(lambda: len(signals()) == 5, what="five signals")
        self.assertEqual(signals(), ["v1 n=1", "v1 n=2", "v1 n=3", "v2 n=4", "v2 n=5"])
        # the subscription's counts on /metrics
        with urllib.request.urlopen("http://127.0.0.1:%d/metrics" % port, timeout=10) as r:
            body = r.read().decode()
        got = {}
        for line in body.splitlines():
            m = re.match(r'(candled_events_\w+)\{subscriber="strategy:counter",id="\d+"\} (\S+)$', line)
            if m:
                got[m.group(1)] = float(m.group(2))
        self.assertEqual(got, {"candled_events_delivered_total": 5, "candled_events_dropped_total": 0,
                               "candled_events_queued": 0, "candled_events_queue_capacity": 65536}, body[-3000:])
        # on_trade: stored trades of its instruments reach it live
        r = self.candled("repl", "--config", cfg, stdin='db.upsert("trades", {{source="test", instrument="AAA", '
                         'trade_id="x1", ts=%d, price=7.5, amount=1, side="sell"}}, {keys={"source","instrument",'
                         '"trade_id"}})\n' % (T0 + 400))
        self.assertEqual(r.returncode, 0, r.stderr)
        self.wait_for(lambda: self.query("SELECT reason, instrument, price FROM signals WHERE side = 'flat'"),
                      what="the trade's signal")
        self.assertEqual(self.query("SELECT reason, instrument, price, ts FROM signals WHERE side = 'flat'"),
                         [("trade x1 at 7.5", "AAA", 7.5, T0 + 400)])
        code, err = self.stop_daemon(p)
        self.assertEqual(code, 0, err)

    def test_an_enabled_strategy_that_cannot_run_stops_the_start(self):
        cfg = self.write_config(self.base_config(strategies={"nosuch": {}}), scripts={})
        r = self.candled("run", "--config", cfg, timeout=30)
        self.assertEqual(r.returncode, 1, r.stderr)
        self.assertIn("strategies.nosuch: no strategy 'nosuch'", r.stderr)


if __name__ == "__main__":
    harness.main()
