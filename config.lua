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
}
