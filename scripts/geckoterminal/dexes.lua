-- GeckoTerminal DEXes: every DEX of the configured network, refreshed daily. A configured DEX
-- (sources.geckoterminal.dexes, default heaven and pumpswap) that the API no longer lists raises
-- a `dex_missing` alert, resolved when it is listed again.
local alert = require "rt.alert"
local db = require "rt.db"
local gt = require "lib.geckoterminal"
local log = require "rt.log"

local MAX_PAGES = 50                       -- a guard against a `next` link that never ends

local UPSERT = [[INSERT INTO gt_dexes (network, dex, name, first_seen, last_seen) VALUES (?, ?, ?, ?, ?)
  ON CONFLICT (network, dex) DO UPDATE SET name = excluded.name, last_seen = excluded.last_seen]]

local M = { name = "geckoterminal.dexes", source = gt.SOURCE, every = "1d" }

M.check = gt.options                     -- a bad sources.geckoterminal option stops the daemon

function M.run(ctx)
  local o = gt.start(ctx)
  local seen, now, page = {}, os.time(), 1
  repeat
    local doc, err, code = gt.get(o, ("/networks/%s/dexes"):format(o.network), { page = page }, "discovery")
    if not doc then return nil, err, code end
    local data = type(doc.data) == "table" and doc.data or {}
    db.tx(function()
      for _, d in ipairs(data) do
        if type(d.id) == "string" then
          local name = type(d.attributes) == "table" and d.attributes.name or nil
          assert(db.exec(UPSERT, o.network, d.id, type(name) == "string" and name or nil, now, now))
          seen[d.id] = true
        end
      end
    end)
    local links = type(doc.links) == "table" and doc.links or {}
    page = page + 1
  until #data == 0 or type(links.next) ~= "string" or page > MAX_PAGES
  for _, dex in ipairs(o.dexes) do
    local subject = o.network .. "/" .. dex
    if seen[dex] then
      alert.resolve("dex_missing", subject)
    else
      local msg = ("configured DEX %s is not listed by GeckoTerminal for network %s"):format(dex, o.network)
      alert.raise("dex_missing", subject, msg, "warn")
      log.warn(msg, { dex = dex })
    end
  end
  ctx.state.dexes = 0
  for _ in pairs(seen) do ctx.state.dexes = ctx.state.dexes + 1 end
  return true
end

return M
