-- candled configuration. Every key is checked at start: an unknown key or a wrong type stops the
-- daemon with a message naming the key. Any value can be overridden from the environment:
-- CANDLED_<PATH> with "__" between levels, e.g. CANDLED_DATABASE__PATH=/tmp/test.db.
-- Relative paths resolve against this file's directory.
return {
  database = {
    path = "data/candled.db",          -- SQLite file (WAL mode)
  },
  log = {
    level = "info",                    -- debug | info | warn | error
  },
  http = {
    timeout = 30,                      -- seconds per request (whole transfer)
    connect_timeout = 10,
  },
  sources = {
    binance_spot = {
      base_url = "https://data-api.binance.vision",   -- market-data-only mirror of api.binance.com
      symbols = { "BTCUSDT", "ETHUSDT" },
      intervals = { "1m" },
      history_days = 1,                -- how far back an empty database starts
    },
  },
  -- Request budgets, shared by every script that names them. Binance counts request weight per
  -- IP: 6000 per minute on spot, reported back in X-MBX-USED-WEIGHT-1M.
  budgets = {
    binance_spot = {
      windows = { { per = "1m", limit = 6000 } },
      reserve = 0.1,                   -- leave 10% of every window unused
      used_weight_header = "x-mbx-used-weight-1m",
      backoff = { base = 1, cap = 300 },          -- seconds, full jitter
      breaker = { failures = 5, cooldown = "1m" },
      ban = { after_429s = 3, duration = "10m" },
    },
  },
}
