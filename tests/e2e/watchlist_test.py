"""The GeckoTerminal watchlist file (issue 11 item 12): a file that does not parse as a watchlist
(empty, blank, a first line that is not the header, garbage, rows of which none is valid, an
unterminated quote) is rejected as a whole: the list in force is kept and the alert and the run's
error name the file and the line. The header alone is a valid, empty list. A 100,000-row list
loads without running into runtime.task_slice (the script yields while it parses and writes)."""
import os
import signal

import harness

CBRL = "7bqJG2ZdMKbEkgSmfuqNVBvqEvWavgL8UEo33ZqdL3NP"
TROLL = "4w2cysotX6czaUGmmWg13hDpY4QEMG2CzeKYEQyK9Ama"
HEADER = "tokenSymbol,tokenName,chain,dex,poolAddress,networkAddress\n"
ROWS = {
    CBRL: '"CBRL","Cracker Barrel","SOL","PumpSwap","%s","5LKHMd2rMSRaG9y4iHwSLRtrJ3dCrJ2CytvBeak8pump"\n' % CBRL,
    TROLL: '"TROLL","TROLL","SOL","PumpSwap","%s","5UUH9RTDiSpq6HKS6bp4NdU9PNJpXRXuiw6ShBTBhgH2"\n' % TROLL,
}
B58 = "123456789ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnopqrstuvwxyz"
OTHER_GT = ("geckoterminal.dexes", "geckoterminal.top_pools", "geckoterminal.ohlcv", "geckoterminal.backfill",
            "geckoterminal.trades")


def address(i):
    """A distinct 44-character base58 address for each i."""
    tail = "".join(B58[(i // 58 ** k) % 58] for k in range(6))
    return "P" * 38 + tail


class WatchlistTest(harness.Case):
    def config(self, budget_limit=100):
        scripts = {name: {"enabled": False} for name in OTHER_GT}
        scripts["binance.klines"] = {"enabled": False}
        return self.write_config({
            "database": {"path": "data/candled.db"}, "repl": {"enabled": False},
            "backup": {"enabled": False}, "runtime": {"shutdown_grace": 1},
            "paths": {"scripts": os.path.join(harness.ARGS.source, "scripts")},
            "scripts": scripts,
            "sources": {"geckoterminal": {"base_url": self.mock.url + "/api/v2"}},
            "budgets": {"geckoterminal": {"windows": [{"per": "1h", "limit": budget_limit}]}}})

    def write(self, data):
        path = os.path.join(self.dir, "watchlist.csv")
        with open(path + ".tmp", "wb") as f:
            f.write(data if isinstance(data, bytes) else data.encode())
        os.replace(path + ".tmp", path)

    def start_daemon(self, config, env=None):
        d = super().start_daemon(config, env)
        self.addCleanup(lambda: d.poll() is None and self.stop_daemon(d, sig=signal.SIGKILL))
        return d

    def active(self):
        return sorted(r[0] for r in self.query("SELECT pool FROM gt_watchlist WHERE active = 1"))

    def run_errors(self):
        return [r[0] for r in self.query("SELECT error FROM runs WHERE script = 'geckoterminal.watchlist'"
                                         " AND error IS NOT NULL")]

    def test_a_file_that_is_not_a_watchlist_is_rejected_as_a_whole(self):
        self.write(HEADER + ROWS[CBRL] + ROWS[TROLL])
        d = self.start_daemon(self.config())
        both = sorted("solana_" + a for a in (CBRL, TROLL))
        self.wait_for(lambda: self.active() == both, what="the two pools active")
        cases = [
            ("empty", "", "watchlist.csv:1: the file is empty"),
            ("blank lines", "\n  \n\r\n", "watchlist.csv:1: the file is empty"),
            ("a line that is no header", "pools\n", "watchlist.csv:1: not a watchlist: expected the header"),
            ("no header before the rows", "\n" + ROWS[CBRL] + ROWS[TROLL],
             "watchlist.csv:2: not a watchlist: expected the header"),
            ("garbage", b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR\xff\xfe,,\"\"\n" * 3,
             "watchlist.csv:1: not a watchlist: expected the header"),
            ("a header, then garbage", HEADER + "x,y\n\x00\x01\x02\nlorem ipsum\n",
             "watchlist.csv:2: not a watchlist: none of its 3 row(s) is valid (the first: 2 fields"),
            ("an unterminated quote", HEADER + ROWS[CBRL] + '"TROLL,TROLL,SOL,PumpSwap,%s,\n\n' % TROLL,
             "watchlist.csv:3: unterminated quoted field"),
        ]
        for what, data, message in cases:
            self.write(data)
            self.wait_for(lambda: any(message in e for e in self.run_errors()), timeout=15,
                          what="the run's error for %s: %r (got %r)" % (what, message, self.run_errors()[-1:]))
            alert = self.query("SELECT message FROM alerts WHERE kind = 'watchlist_malformed' AND resolved IS NULL")
            self.assertEqual(len(alert), 1, what)
            self.assertIn(message, alert[0][0], what)
            self.assertIn("the watchlist in force is kept", alert[0][0], what)
            self.assertEqual(self.active(), both, "%s: the list in force is kept" % what)
            self.execute("DELETE FROM runs WHERE script = 'geckoterminal.watchlist'")
        # the header alone is a valid, empty watchlist: every pool deactivated, the alert resolved
        self.write(HEADER)
        self.wait_for(lambda: self.active() == [], timeout=15, what="the empty list taken")
        self.wait_for(lambda: not self.query("SELECT 1 FROM alerts WHERE kind = 'watchlist_malformed'"
                                             " AND resolved IS NULL"), timeout=15, what="the alert resolved")
        self.assertEqual(self.query("SELECT count(*) FROM gt_watchlist WHERE active = 0")[0][0], 2, "data kept")
        code, err = self.stop_daemon(d)
        self.assertEqual(code, 0, err)
        # the CLI refuses to edit a file that is not a watchlist, and starts an empty one with the header
        self.write("pools\n")
        cfg = os.path.join(self.dir, "config.lua")
        r = self.candled("watchlist", "--config", cfg, "add", CBRL, "--symbol", "C", "--name", "C",
                         "--dex", "PumpSwap", "--network-address", "x")
        self.assertEqual(r.returncode, 1)
        self.assertIn("watchlist.csv:1: not a watchlist", r.stderr)
        r = self.candled("watchlist", "--config", cfg, "list")
        self.assertEqual(r.returncode, 1)
        self.assertIn("watchlist.csv:1: not a watchlist", r.stderr)
        self.write("\n")
        r = self.candled("watchlist", "--config", cfg, "add", CBRL, "--symbol", "C", "--name", "C",
                         "--dex", "PumpSwap", "--network-address", "x")
        self.assertEqual(r.returncode, 0, r.stderr)
        with open(os.path.join(self.dir, "watchlist.csv")) as f:
            self.assertEqual(f.read(), HEADER + "C,C,SOL,PumpSwap,%s,x\n" % CBRL)

    def test_a_100k_row_watchlist_loads_without_running_into_the_task_slice(self):
        n = 100000
        self.write(HEADER + "".join('"S%d","Pool %d","SOL","PumpSwap","%s",""\n' % (i, i, address(i))
                                    for i in range(n)))
        # one multi-pool call an hour: the run loads the list, asks for 30 pools and then waits
        d = self.start_daemon(self.config(budget_limit=1))
        self.wait_for(lambda: self.query("SELECT count(*) FROM gt_watchlist WHERE active = 1")[0][0] == n,
                      timeout=120, what="100,000 pools active")
        self.assertEqual(self.query("SELECT min(line), max(line) FROM gt_watchlist"), [(2, n + 1)])
        self.assertEqual(self.run_errors(), [])
        code, err = self.stop_daemon(d)
        self.assertEqual(code, 0, err)
        self.assertNotIn("task_slice", err)
        self.assertIn("watchlist changed", err)


if __name__ == "__main__":
    harness.main()
