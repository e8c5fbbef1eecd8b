-- Binance COIN-M futures klines (sources.binance_coinm): the symbols from exchangeInfo (refreshed daily, with their
-- lifecycle), every selected symbol's configured intervals up to the last closed bar, history back
-- to history_days or the listing, gaps fetched again; `concurrency` series at once within the
-- budget. `candled backfill --source binance_coinm --symbol S --timeframe 1m --days N`.
-- Everything is in scripts/lib/binance.lua.
return require("lib.binance").klines_script("coinm")
