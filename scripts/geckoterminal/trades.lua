-- GeckoTerminal trades: the last 300 trades of the past 24 h above trades_min_usd (default 100)
-- of active watchlist pools, stored once each (trades, keyed by the API's trade id, plus the
-- chain details in gt_trades).
--
-- Each run calls at most trades_per_run pools (default 10), so a watchlist larger than the budget
-- allows is served in rotation: the pools collected longest ago go first, their wait weighted by
-- activity (qualifying trades per hour over the last day, up to 4x for the busiest), so busy
-- pools come round more often and a quiet pool waits at most about four rotations. A pool never
-- collected goes first.
local db = require "rt.db"
local gt = require "lib.geckoterminal"
local log = require "rt.log"
local time = require "rt.time"

local M = { name = "geckoterminal.trades", source = gt.SOURCE, every = "5m" }

local MAX_TRADES = 300                   -- the API's page: the last 300 trades of the past 24 h
local MAX_WEIGHT = 4

local ROTATION = "SELECT pool, last_fetch, last_interval, last_new, last_count FROM gt_trade_rotation"
local ROTATED = [[INSERT INTO gt_trade_rotation (pool, last_fetch, last_new, last_count, fetches)
  VALUES (?, ?, ?, ?, 1) ON CONFLICT (pool) DO UPDATE SET last_fetch = excluded.last_fetch,
  last_interval = excluded.last_fetch - last_fetch, last_new = excluded.last_new,
  last_count = excluded.last_count, fetches = fetches + 1]]
local ACTIVITY = [[SELECT instrument, count(*) AS n FROM trades WHERE source = ? AND ts > ?
  GROUP BY instrument]]
local BASE_OF = [[SELECT t.address FROM gt_pools p JOIN gt_tokens t ON t.token = p.base_token
  WHERE p.pool = ?]]
local TRADE_COLUMNS = { "source", "instrument", "trade_id", "ts", "price", "amount", "volume_usd", "side" }
local DETAIL_COLUMNS = { "instrument", "trade_id", "block_number", "tx_hash", "tx_from_address",
                         "from_token", "to_token", "from_amount", "to_amount" }

-- The pools to call this run, most overdue first: score = seconds since the last call x weight,
-- weight = 1 + (qualifying trades per hour over the last day) / 60, at most MAX_WEIGHT. A pool
-- never called goes first. `activity[pool]` is its trades stored in the last 24 h.
function M.pick(pools, rotation, activity, now, n)
  local scored = {}
  for i, pool in ipairs(pools) do
    local r = rotation[pool]
    local score = math.huge
    if r and r.last_fetch then
      local per_hour = (activity[pool] or 0) / 24
      score = (now - r.last_fetch) * math.min(MAX_WEIGHT, 1 + per_hour / 60)
    end
    scored[i] = { pool = pool, score = score, order = i }
  end
  table.sort(scored, function(a, b)
    if a.score ~= b.score then return a.score > b.score end
    return a.order < b.order
  end)
  local out = {}
  for i = 1, math.min(n, #scored) do out[i] = scored[i].pool end
  return out
end

-- One pool's trades -> new trades stored, trades answered, or nil, message, code.
local function collect(o, pool, now)
  local addr = assert(gt.address_of(o, pool))
  local doc, err, code = gt.get(o, ("/networks/%s/pools/%s/trades"):format(o.network, addr),
                                { trade_volume_in_usd_greater_than = o.trades_min_usd }, "realtime")
  if not doc then return nil, err, code end
  local base = db.first(BASE_OF, pool)
  base = base and base.address
  local trades, details = {}, {}
  for _, t in ipairs(type(doc.data) == "table" and doc.data or {}) do
    local a = type(t) == "table" and t.attributes
    local ts = type(a) == "table" and type(a.block_timestamp) == "string" and time.parse_iso(a.block_timestamp)
    local vol = ts and gt.num(a.volume_in_usd)
    if type(t.id) == "string" and vol and vol > o.trades_min_usd and ts > now - 86400 then
      -- the base token's side of the swap gives amount and USD price
      local bought = (base and a.to_token_address == base) or (not base and a.kind == "buy")
      local amount = gt.num(bought and a.to_token_amount or a.from_token_amount)
      local price = gt.num(bought and a.price_to_in_usd or a.price_from_in_usd)
      trades[#trades + 1] = { gt.SOURCE, pool, t.id, math.floor(ts), price, amount, vol,
                              type(a.kind) == "string" and a.kind or nil }
      details[#details + 1] = { pool, t.id, math.tointeger(gt.num(a.block_number)),
        type(a.tx_hash) == "string" and a.tx_hash or nil,
        type(a.tx_from_address) == "string" and a.tx_from_address or nil,
        type(a.from_token_address) == "string" and a.from_token_address or nil,
        type(a.to_token_address) == "string" and a.to_token_address or nil,
        gt.num(a.from_token_amount), gt.num(a.to_token_amount) }
    end
  end
  local new = 0
  db.tx(function()
    local ins, e = db.upsert("trades", trades, { keys = { "source", "instrument", "trade_id" },
                                                columns = TRADE_COLUMNS, update = false })
    if not ins then error("trades: " .. e) end
    new = ins
    ins, e = db.upsert("gt_trades", details, { keys = { "instrument", "trade_id" },
                                               columns = DETAIL_COLUMNS, update = false })
    if not ins then error("gt_trades: " .. e) end
  end)
  return new, #(doc.data or {})
end

M.check = gt.options                     -- a bad sources.geckoterminal option stops the daemon

function M.run(ctx)
  local o = gt.start(ctx)
  local now = time.now()
  local rotation, activity = {}, {}
  for _, r in ipairs(db.query(ROTATION)) do rotation[r.pool] = r end
  for _, r in ipairs(db.query(ACTIVITY, gt.SOURCE, now - 86400)) do activity[r.instrument] = r.n end
  local stored, failed, first = 0, 0, nil
  for _, pool in ipairs(M.pick(gt.active_pools(), rotation, activity, now, o.trades_per_run)) do
    local new, count, code = collect(o, pool, now)
    if new then
      stored = stored + new
      local prev = rotation[pool]
      if count >= MAX_TRADES and prev and prev.last_fetch and new >= count then
        log.warn("trades may be missing: the last 300 are all new; the pool needs shorter rotations",
                 { pool = pool })
      end
      assert(db.exec(ROTATED, pool, now, new, count))
    elseif code == "NOT_FOUND" then
      gt.pool_gone(o, pool, count)
    elseif code == "BANNED" or code == "BREAKER_OPEN" or code == "CANCELLED" then
      return nil, count, code
    else
      failed, first = failed + 1, first or count
      log.warn("trades failed", { pool = pool, error = count, code = code })
    end
  end
  ctx.state.stored = stored
  if failed > 0 then return nil, ("%d pools failed; first: %s"):format(failed, first) end
  return true
end

return M
