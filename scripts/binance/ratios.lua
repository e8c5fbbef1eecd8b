-- Binance futures long/short ratios every 5 minutes: top traders' positions and accounts and the
-- global account ratio, for every selected USDT-M symbol and COIN-M pair (sources.binance_usdm and
-- sources.binance_coinm: `ratios`, `ratio_period`, `ratio_days`), history back to the 30 days the
-- API keeps, into binance_ratios. Everything is in scripts/lib/binance.lua.
local B = require "lib.binance"

local M = { name = "binance.ratios", every = "5m" }

function M.check() B.options("usdm") B.options("coinm") end

function M.run(ctx)
  local failed = {}
  for _, market in ipairs { "usdm", "coinm" } do
    local o = B.options(market)
    if o.enabled and o.ratios then
      local ok, err, code = B.ratios(o, ctx)
      if not ok then
        if code == "BANNED" or code == "BREAKER_OPEN" then return nil, err, code end
        failed[#failed + 1] = err
      end
    end
  end
  if #failed > 0 then return nil, table.concat(failed, "; ") end
  return true
end

return M
