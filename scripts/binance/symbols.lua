-- Binance symbols of every enabled market (spot, USDT-M, COIN-M) from exchangeInfo, daily: into
-- binance_symbols (first seen, status and since when, delisted kept), binance_symbol_events (each
-- status change with its time), instruments and canonical_map. The klines scripts also refresh a
-- market whose list is older than its `symbols_every`. On demand: `sched.trigger("binance.symbols")`
-- in the REPL. A market with neither `symbols` nor `quote_assets` is not called.
local B = require "lib.binance"

local M = { name = "binance.symbols", every = "1d" }

function M.run(ctx)
  local failed = {}
  for _, market in ipairs { "spot", "usdm", "coinm" } do
    local o = B.options(market)
    if o.enabled and o.configured then
      local ok, err, code = B.refresh(o)
      if not ok then
        failed[#failed + 1] = err
        ctx.log.warn("symbols refresh failed", { market = market, error = err, code = code })
      end
    end
  end
  if #failed > 0 then return nil, table.concat(failed, "; ") end
  return true
end

return M
