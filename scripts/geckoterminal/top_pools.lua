-- GeckoTerminal top pools: the first `top_pools_pages` pages (20 pools each, by 24 h
-- transactions) of every configured DEX, with their tokens (include=base_token,quote_token,dex,
-- so names, symbols and decimals need no extra call). Each run adds one snapshot per pool to
-- gt_pool_snapshots (prices, reserve, volumes, price changes, transaction counts) and keeps
-- gt_pools, gt_tokens and instruments current.
local gt = require "lib.geckoterminal"
local log = require "rt.log"

local M = { name = "geckoterminal.top_pools", source = gt.SOURCE, every = "1h" }

M.check = gt.options                     -- a bad sources.geckoterminal option stops the daemon

function M.run(ctx)
  local o = gt.start(ctx)
  local stored = 0
  for _, dex in ipairs(o.dexes) do
    for page = 1, o.top_pools_pages do
      local path = ("/networks/%s/dexes/%s/pools"):format(o.network, dex)
      local doc, err, code = gt.get(o, path, { page = page, include = "base_token,quote_token,dex" },
                                    "discovery")
      if not doc and code == "NOT_FOUND" then         -- not listed: geckoterminal.dexes alerts
        log.warn("top pools: the API does not know this DEX", { dex = dex, error = err })
        break
      end
      if not doc then return nil, err, code end
      local ids = gt.store_pools(o, doc)
      stored = stored + #ids
      if #ids < 20 then break end            -- the last page
    end
  end
  ctx.state.pools = stored
  return true
end

return M
