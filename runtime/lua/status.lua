-- candled.status (embedded): one row per script, lib/strategy module and the config, for the REPL's
-- status() and the status page (candled.daemon.status documents the rows).
local config = require "rt.config"
local modules = require "candled.modules"
local state = require "candled.state"

local M = {}

local entries, failed_modules, cfg_status = state.entries, state.failed_modules, state.cfg

function M.status()
  local out = {}
  for _, e in pairs(entries) do
    out[#out + 1] = { name = e.mod and e.name or e.module, file = e.file, kind = "script", version = e.gen,
                      loaded_at = e.loaded_at, every = e.every, cron = e.cron, scheduled = e.scheduled ~= nil,
                      last_error = e.last_error, rejected_at = e.rejected_at,
                      module_version = e.mod and e.mod.version, source = e.mod and e.mod.source }
  end
  local seen = {}
  for n, rec in pairs(modules.live) do
    if rec.kind == "module" then
      local f = failed_modules[rec.file]
      seen[rec.file] = true
      out[#out + 1] = { name = n, file = rec.file, kind = "module", version = rec.gen, loaded_at = rec.loaded_at,
                        last_error = f and f.last_error, rejected_at = f and f.rejected_at }
    end
  end
  for file, f in pairs(failed_modules) do
    if not seen[file] then
      out[#out + 1] = { name = f.name, file = file, kind = "module", last_error = f.last_error, rejected_at = f.rejected_at }
    end
  end
  if config.file() then
    out[#out + 1] = { name = "config", file = config.file(), kind = "config", version = cfg_status.version,
                      loaded_at = cfg_status.loaded_at, last_error = cfg_status.last_error,
                      rejected_at = cfg_status.rejected_at }
  end
  table.sort(out, function(a, b) return a.file < b.file end)
  return out
end

return M
