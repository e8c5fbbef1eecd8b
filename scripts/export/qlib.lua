-- QLib export: `candled export qlib ...` now, and the exports of config.lua kept current.
--
--   export = { qlib = { daily = { out = "qlib/binance_day", freq = "day", source = "binance_spot",
--                                 every = "1h" } } }
--
-- Each run (every minute) exports every configured root whose `every` has passed since its last
-- export (scripts/lib/qlib.lua: incremental, atomic, one root per frequency). `out` and `freq` are
-- required; the daemon does not start without them, and a config reload that drops them is
-- rejected (the previous config stays in force). A failed export raises alert `export_failed`
-- (subject: the export's name) and resolves it on the next success; the other exports still run.
local alert = require "rt.alert"
local config = require "rt.config"
local log = require "rt.log"
local time = require "rt.time"
local qlib = require "lib.qlib"

local M = { name = "export.qlib", section = "export", every = "1m" }

-- ---- options --------------------------------------------------------------------------------

local function config_dir()
  local file = config.file()
  return file and file:match("^(.*)/[^/]*$") or "."
end

local function absolute(p)
  if p:sub(1, 1) == "/" then return p end
  return config_dir() .. "/" .. p
end

-- The checked exports of ctx.config (the `export` section): a list sorted by name.
local function exports(cfg)
  local list, outs = {}, {}
  for name, e in pairs(cfg.qlib or {}) do
    local key = "export.qlib." .. tostring(name)
    if type(e) ~= "table" then error(key .. ": must be a table {out=, freq=, ...}", 0) end
    if type(e.out) ~= "string" or e.out == "" then
      error(key .. ".out: required (the folder of the QLib root)", 0)
    end
    if not qlib.FREQS[e.freq or ""] then
      error(("%s.freq: required, one of %s"):format(key, table.concat(qlib.FREQ_NAMES, ", ")), 0)
    end
    local start
    if e.start ~= nil then
      start = time.parse_iso(tostring(e.start))
      if not start then error(("%s.start: '%s' is not an ISO-8601 date"):format(key, tostring(e.start)), 0) end
    end
    local out = absolute(e.out):gsub("/+$", "")
    if outs[out] then error(("%s.out: %s is also export.qlib.%s's folder"):format(key, out, outs[out]), 0) end
    outs[out] = name
    list[#list + 1] = { name = name, key = key, out = out, freq = e.freq, source = e.source,
                        instruments = e.instruments, start = start, every = time.duration(e.every or "1h"),
                        enabled = e.enabled ~= false }
  end
  table.sort(list, function(a, b) return a.name < b.name end)
  return list
end

function M.check(cfg)
  exports(cfg)
end

local function quality_line(s, out)
  local empty = 0
  for _, q in ipairs(s.quality) do empty = empty + q.empty_intervals end
  local with_gaps = 0
  for _, q in ipairs(s.quality) do if q.gaps > 0 then with_gaps = with_gaps + 1 end end
  return ("quality: %d gaps in %d of %d instruments, %d incomplete buckets left out, %d known-empty "
    .. "intervals (details: %s/candled.json)"):format(s.gaps, with_gaps, s.instruments, s.dropped, empty, out)
end

-- ---- the scheduled exports ----------------------------------------------------------------

function M.run(ctx)
  ctx.state.last = ctx.state.last or {}
  local failed = {}
  for _, e in ipairs(exports(ctx.config)) do
    local now = time.now()
    if e.enabled and now - (ctx.state.last[e.name] or 0) >= e.every then
      local s, err = qlib.export({ out = e.out, freq = e.freq, source = e.source, instruments = e.instruments,
                                   start = e.start })
      ctx.state.last[e.name] = now
      if s then
        alert.resolve("export_failed", e.name)
        log.info("qlib export", { export = e.name, out = e.out, freq = e.freq, instruments = s.instruments,
                                  calendar = s.calendar, bytes = s.bytes, written = s.written, linked = s.linked,
                                  gaps = s.gaps, dropped = s.dropped, seconds = ("%.2f"):format(s.seconds) })
      else
        local msg = e.key .. "." .. err
        if not err:match("^%w+: ") then msg = e.key .. ": " .. err end
        alert.raise("export_failed", e.name, msg, "error")
        log.error("qlib export failed", { export = e.name, error = msg })
        failed[#failed + 1] = msg
      end
    end
  end
  if #failed > 0 then error(("%d export(s) failed; first: %s"):format(#failed, failed[1]), 0) end
end

-- ---- candled export qlib ----------------------------------------------------------------

local USAGE = "usage: candled export qlib --out DIR --freq day|60min|15min|5min|1min [--source S] "
  .. "[--instruments A,B,...] [--start DATE] [--end DATE]"

local function usage(msg) error({ usage = "export: " .. msg }, 0) end

local function bar(done, total, width)
  local n = total > 0 and math.floor(width * math.min(done / total, 1)) or width
  return ("#"):rep(n) .. ("."):rep(width - n)
end

local function date_arg(name, v, is_end)
  local t = time.parse_iso(v)
  if not t then usage(("%s: '%s' is not a date (YYYY-MM-DD) or ISO-8601 time"):format(name, v)) end
  if is_end then return v:match("^%d%d%d%d%-%d%d%-%d%d$") and t + 86400 or t + 1 end
  return t
end

M.commands = {}

function M.commands.export(ctx, args)
  if args[1] ~= "qlib" then usage(("the format '%s' is unknown (formats: qlib; see 'candled help export')"):format(tostring(args[1]))) end
  local o, i = {}, 2
  local known = { ["--out"] = "out", ["--freq"] = "freq", ["--source"] = "source", ["--instruments"] = "instruments",
                  ["--start"] = "start", ["--end"] = "end" }
  while i <= #args do
    local a, v = args[i], args[i + 1]
    local k = known[a]
    if not k then usage(("unexpected argument '%s' (see 'candled help export')"):format(a)) end
    if v == nil or v == "" then usage(a .. " needs a value") end
    if o[k] then usage(a .. " is given twice") end
    o[k] = v
    i = i + 2
  end
  if not o.out then usage("--out DIR is required (see 'candled help export')") end
  if not o.freq then usage("--freq is required (day, 60min, 15min, 5min or 1min)") end
  if not qlib.FREQS[o.freq] then
    usage(("--freq: '%s' is not one of %s (QLib's names: no 1h or 1d)"):format(o.freq, table.concat(qlib.FREQ_NAMES, ", ")))
  end
  local list
  if o.instruments then
    list = {}
    for name in o.instruments:gmatch("[^,]+") do list[#list + 1] = name end
    if #list == 0 then usage("--instruments needs at least one instrument id") end
  end
  local start = o.start and date_arg("--start", o.start)
  local stop = o["end"] and date_arg("--end", o["end"], true)
  if start and stop and stop <= start then usage("--end is before --start") end
  local total_shown = -1
  local progress
  if ctx.tty then
    progress = function(done, total)
      local pct = total > 0 and math.floor(100 * done / total) or 100
      if pct ~= total_shown then
        total_shown = pct
        ctx.err(("\rexport qlib [%s] %3d%% of %d instruments"):format(bar(done, total, 30), pct, total))
      end
    end
  end
  local s, err, code = qlib.export({ out = o.out, freq = o.freq, source = o.source, instruments = list,
                                     start = start, stop = stop, progress = progress })
  if ctx.tty then ctx.err("\r" .. (" "):rep(72) .. "\r") end
  if not s then
    err = err:gsub("^(%a+): ", function(k)
      return (k == "out" or k == "freq" or k == "source" or k == "instruments") and ("--" .. k .. ": ") or nil
    end)
    error("export qlib: " .. err, 0)
  end
  ctx.out(("qlib %s: %d instruments, %d calendar entries (%s .. %s), %d bytes in %d files (%d written, %d "
    .. "files unchanged), %.2f s -> %s\n"):format(s.freq, s.instruments, s.calendar, s.first, s.last, s.bytes,
    s.files, s.written, s.linked, s.seconds, o.out))
  ctx.out(quality_line(s, o.out) .. "\n")
  return 0
end

return M
