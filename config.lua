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
    -- Binance (scripts/binance/, scripts/lib/binance.lua): symbols from exchangeInfo daily, klines
    -- every minute up to the last closed bar with history and gap repair, long/short ratios of the
    -- futures every 5 minutes. Each market has its own budget, from its exchangeInfo rateLimits
    -- (REQUEST_WEIGHT per minute) unless budgets.binance_<market> below says otherwise.
    binance_spot = {
      base_url = "https://data-api.binance.vision",   -- market-data-only mirror of api.binance.com
      symbols = { "BTCUSDT", "ETHUSDT" },   -- and/or quote_assets = { "USDT" } for every USDT pair
      intervals = { "1m", "30m", "1d" },
      history_days = 30,               -- or "listing"
      ws_enabled = true,               -- live 1m klines over WebSocket (scripts/binance/stream.lua)
    },
    binance_usdm = {
      base_url = "https://fapi.binance.com",
      symbols = { "BTCUSDT", "ETHUSDT" },
      intervals = { "30m", "1d" },
      history_days = 365,
      ratio_period = "5m",             -- top-trader and global long/short ratios, 30 days kept
      ws_enabled = true,
    },
    binance_coinm = {
      base_url = "https://dapi.binance.com",
      symbols = { "BTCUSD_PERP" },
      intervals = { "30m", "1d" },
      history_days = 365,
      ws_enabled = true,
    },
    -- GeckoTerminal (Solana DEX pools): scripts/geckoterminal/. DEXes daily, the top pools of each
    -- configured DEX hourly; OHLCV, history and trades for the pools of the watchlist file
    -- (edit it, or use `candled watchlist add|remove`: the daemon applies changes within seconds).
    geckoterminal = {
      base_url = "https://api.geckoterminal.com/api/v2",
      network = "solana",
      dexes = { "heaven", "pumpswap" },
      top_pools_pages = 1,             -- 20 pools a page; more than 10 need a paid plan
      watchlist = "watchlist.csv",     -- tokenSymbol,tokenName,chain,dex,poolAddress,networkAddress
      timeframes = { "1m", "5m", "15m", "1h", "4h", "12h", "1d" },
      currency = "usd",                -- or "token": prices in the quote token
      token = "base",                  -- or "quote": the quote token's prices
      include_empty_intervals = false, -- true: store the source's empty bars (volume 0)
      history_days = 180,              -- backfill depth (the API keeps about 6 months)
      refresh_min = 300,               -- seconds between calls for one series (1m bars come 5 at a time)
      trades_min_usd = 100,            -- only trades above this volume
      trades_per_run = 10,             -- pools called per trades run (every 5 minutes); rotation beyond
    },
    -- CoinGecko (scripts/coingecko/collect.lua), every 15 minutes. The keyless plan allows 5-15
    -- calls a minute (it varies); plan = "demo" or "pro" reads the key from $COINGECKO_API_KEY.
    coingecko = {
      plan = "public",
      coins = { "bitcoin", "ethereum" },   -- CoinGecko ids (case-sensitive)
      vs_currencies = { "usd" },
      ohlc = { "4h", "4d" },           -- 30m (1 day back), 4h (30 days), 4d (365 days)
      market_chart = { "1d" },         -- 5m, 1h, 1d points: price, market cap, 24 h volume
      history_days = 365,              -- the keyless limit
    },
    -- Yahoo Finance chart API (scripts/yahoo/chart.lua), every 5 minutes; no published limits.
    yahoo = {
      tickers = { "BTC-USD", "ETH-USD", "^GSPC" },
      intervals = { "1d" },            -- 1m (30 days), 2m..90m (60 days), 60m (730 days), 1d
      history_days = 3650,
    },
    -- Drift perpetuals (scripts/drift/collect.lua), every minute: candles, funding, fills.
    drift = {
      base_url = "https://data.api.drift.trade",   -- or https://data.velocity.exchange (since 2026-06)
      markets = { "BTC-PERP", "ETH-PERP", "SOL-PERP" },
      resolutions = { "1h" },          -- 1m 5m 15m 1h 4h 1d
      history_days = 30,
    },
    -- Canonical instruments (scripts/canonical/): BTC/USD daily from CoinGecko, Yahoo when
    -- CoinGecko is unhealthy (breaker open, banned, failing, stale); closes compared hourly.
    canonical = {
      instruments = {
        ["BTC/USD"] = {
          timeframe = "1d",
          sources = { { source = "coingecko", instrument = "bitcoin/usd" },
                      { source = "yahoo", instrument = "BTC-USD" } },
          tolerance = 0.01,            -- closes may differ by 1% before a divergence alert
          grace = 7200,                -- CoinGecko publishes the last day at 00:35 UTC
        },
      },
    },
  },
  -- Strategies run live on the candles as they land (strategies/<name>.lua; see README,
  -- Strategies), e.g. the example on the Binance BTCUSDT minutes:
  --   strategies = { sma_cross = { fast = 10, slow = 30 } },
  -- and over stored history: candled replay --strategy sma_cross --from 2024-01-01 --to 2024-01-31
  -- Request budgets, shared by every script that names them. The Binance markets' budgets come
  -- from their exchangeInfo (spot 6000 weight a minute, futures 2400), corrected by the server's
  -- X-MBX-USED-WEIGHT-1M; declare budgets.binance_spot (_usdm, _coinm) here to set your own, e.g.
  --   binance_spot = { windows = { { per = "1m", limit = 3000 } }, reserve = 0.1,
  --                    used_weight_header = "x-mbx-used-weight-1m" },
  budgets = {
    -- GeckoTerminal's keyless API: 30 calls a minute per IP. The daily cap is ours, to leave
    -- room for other tools on the same IP; raise or drop it as you see fit.
    geckoterminal = {
      windows = { { per = "1m", limit = 30 }, { per = "1d", limit = 20000 } },
      backoff = { base = 15, cap = 300 },
      breaker = { failures = 5, cooldown = "5m" },
      ban = { after_429s = 4, duration = "15m" },
    },
  },
}
