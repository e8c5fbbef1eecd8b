-- candled.strategy (embedded): strategy modules (paths.strategies/<name>.lua), the same code live
-- (fed by candle events as bars land) and in replay (candled.replay).
--
-- A strategy module returns a table:
--   consumes = {source = "binance_spot", instruments = {"BTCUSDT"}, timeframes = {"1m"}, warmup = 30}
--   options  = {fast = 10, ...}           defaults of ctx.config (optional)
--   on_start(ctx)                         once, before the first bar (optional)
--   on_bar(ctx, bar)                      every closed bar, in time order per series
--   on_trade(ctx, trade)                  every stored trade of its instruments (live only; optional)
-- Config `strategies.<name> = {enabled, source, instruments, timeframes, warmup, queue, ...}`
-- overrides `consumes`; its other keys overlay `options` in ctx.config.
--
-- ctx = {name, config, state, now (the bar's close time: the simulated clock), warming (true
-- while warm-up bars are fed: signals are ignored), mode = "live"|"replay", log,
-- signal{side = "buy"|"sell"|"flat", size = fraction of equity (default 1; 0 for flat), reason}}.
-- A signal sets the target position of the bar's instrument: buy = long `size`, sell = short
-- `size`, flat = none. `bar` = {source, instrument, timeframe, ts, open, high, low, close, volume};
-- in a replay one table per series is reused for each of its bars: copy what you keep.
--
-- API (for candled.daemon, candled.replay and tests):
--   mod, err          = strategy.load(name)          the module (through candled.modules)
--   spec, err         = strategy.spec(name, mod [, cfg])   consumes overlaid by config; err names the key
--   ctx               = strategy.context(name, spec, state, mode, on_signal)
--   strategy.feed(ctx, mod, bar)                       -> calls on_bar with ctx.now and the current bar
--   count, err        = strategy.start()              the live runners of every enabled strategy
--   err               = strategy.check()               why an enabled strategy cannot run, or nil
local alert = require "rt.alert"
local config = require "rt.config"
local db = require "rt.db"
local events = require "rt.events"
local log = require "rt.log"
local modules = require "candled.modules"
local sandbox = require "candled.sandbox"

local M = {}

local FRAMEWORK = { enabled = true, source = true, instruments = true, timeframes = true, warmup = true,
                    queue = true }
local SIDES = { buy = true, sell = true, flat = true }
local TF_UNIT = { s = 1, m = 60, h = 3600, d = 86400, w = 604800 }

-- Seconds of a timeframe ("1m", "4h", "1d"), or nil.
local tf_known = {}
function M.tf_seconds(tf)
  local s = tf_known[tf]
  if s then return s end
  local n, u = tostring(tf):match("^(%d+)([smhdw])$")
  s = n and tonumber(n) * TF_UNIT[u] or nil
  if s and type(tf) == "string" then tf_known[tf] = s end
  return s
end

function M.load(name)
  if type(name) ~= "string" or not name:match("^[%w_]+$") then
    return nil, ("strategy name '%s' must be letters, digits and _"):format(tostring(name))
  end
  local n = "strategies." .. name
  if modules.live[n] then return modules.live[n].value end
  local path = modules.find(n)
  if not path then
    return nil, ("no strategy '%s' (%s/%s.lua)"):format(name, config.get("paths.strategies"), name)
  end
  local b = modules.batch({ [n] = true })
  local rec, err = b:load(n, path)
  if not rec then return nil, modules.first_line(err) end
  b:commit()
  return rec.value
end

-- The module as it is now (a hot reload replaces it in candled.modules).
local function current(name)
  local rec = modules.live["strategies." .. name]
  return rec and rec.value
end

local function string_list(v)
  if type(v) == "string" then return { v } end
  if type(v) ~= "table" or #v == 0 then return nil end
  for _, x in ipairs(v) do if type(x) ~= "string" then return nil end end
  return v
end

-- What the strategy consumes, with the config's overrides. Returns spec or nil and why (naming
-- the module or config key).
function M.spec(name, mod, cfg)
  if type(mod) ~= "table" then return nil, ("strategies/%s.lua must return a table"):format(name) end
  if type(mod.on_bar) ~= "function" then return nil, ("strategies/%s.lua: on_bar must be a function"):format(name) end
  for _, f in ipairs({ "on_start", "on_trade" }) do
    if mod[f] ~= nil and type(mod[f]) ~= "function" then
      return nil, ("strategies/%s.lua: %s must be a function"):format(name, f)
    end
  end
  cfg = cfg or config.get("strategies." .. name) or {}
  local c = type(mod.consumes) == "table" and mod.consumes or {}
  local key = "strategies." .. name
  local spec = { name = name, source = cfg.source or c.source, queue = cfg.queue or 65536 }
  local function pick(a, b)                     -- the config's empty list (its default) is no override
    if a == nil or (type(a) == "table" and next(a) == nil) then return b end
    return a
  end
  spec.instruments = string_list(pick(cfg.instruments, c.instruments))
  if not spec.instruments then return nil, key .. ".instruments: the strategy consumes no instruments (consumes.instruments or config)" end
  spec.timeframes = string_list(pick(cfg.timeframes, c.timeframes))
  if not spec.timeframes then return nil, key .. ".timeframes: the strategy consumes no timeframes (consumes.timeframes or config)" end
  for _, tf in ipairs(spec.timeframes) do
    if not M.tf_seconds(tf) then return nil, ("%s.timeframes: '%s' is not a timeframe like 1m, 4h, 1d"):format(key, tf) end
  end
  if spec.source ~= nil and type(spec.source) ~= "string" then return nil, key .. ".source: must be a string" end
  local w = cfg.warmup or c.warmup or 0
  if math.type(w) ~= "integer" or w < 0 then return nil, key .. ".warmup: must be an integer >= 0" end
  spec.warmup = w
  local opts = {}
  if type(mod.options) == "table" then for k, v in pairs(mod.options) do opts[k] = v end end
  for k, v in pairs(cfg) do if not FRAMEWORK[k] then opts[k] = v end end
  spec.config = opts
  return spec
end

-- A context: ctx.signal records through on_signal(sig) unless warming.
function M.context(name, spec, state, mode, on_signal)
  local ctx = { name = name, config = spec.config, state = state, mode = mode, warming = false, now = nil,
                log = sandbox.rt_module("rt.log") }
  local bar_of = {}                             -- ctx.bar is private: the bar being fed
  ctx.signal = function(s)
    if type(s) ~= "table" then error("ctx.signal: expects {side=, size=, reason=}", 2) end
    if not SIDES[s.side] then error("ctx.signal: side must be buy, sell or flat, got " .. tostring(s.side), 2) end
    local size = s.size
    if size == nil then size = s.side == "flat" and 0 or 1 end
    if type(size) ~= "number" or size < 0 or size ~= size or size == math.huge then
      error("ctx.signal: size must be a number >= 0", 2)
    end
    if s.reason ~= nil and type(s.reason) ~= "string" then error("ctx.signal: reason must be a string", 2) end
    local bar = bar_of[1]
    if not bar then error("ctx.signal: only from on_bar or on_trade", 2) end
    if ctx.warming then return false end
    on_signal({ strategy = name, source = bar.source, instrument = bar.instrument, timeframe = bar.timeframe,
                ts = bar.ts, side = s.side, size = s.side == "flat" and 0 or size, reason = s.reason,
                price = bar.close or bar.price })
    return true
  end
  ctx._bar = bar_of
  return ctx
end

-- Feed one bar: the clock moves to its close, then on_bar runs.
function M.feed(ctx, mod, bar, step)
  ctx.now = bar.ts + step
  ctx._bar[1] = bar
  mod.on_bar(ctx, bar)
  ctx._bar[1] = nil
end

-- ---- live ---------------------------------------------------------------------------------------

local SIGNALS = [[CREATE TABLE IF NOT EXISTS signals (
  id INTEGER PRIMARY KEY, strategy TEXT NOT NULL, source TEXT, instrument TEXT NOT NULL,
  timeframe TEXT, ts INTEGER NOT NULL, side TEXT NOT NULL, size REAL NOT NULL, reason TEXT,
  price REAL, created REAL NOT NULL);
  CREATE INDEX IF NOT EXISTS signals_by_strategy ON signals (strategy, ts)]]
local SIGNAL_INSERT = [[INSERT INTO signals (strategy, source, instrument, timeframe, ts, side, size, reason,
  price, created) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)]]
local WARM = [[SELECT ts, open, high, low, close, volume FROM candles WHERE source = ? AND instrument = ?
  AND timeframe = ? AND ts <= ? AND open IS NOT NULL AND close IS NOT NULL ORDER BY ts DESC LIMIT ?]]
local WARM_ANY = [[SELECT source, ts, open, high, low, close, volume FROM candles WHERE instrument = ?
  AND timeframe = ? AND ts <= ? AND open IS NOT NULL AND close IS NOT NULL ORDER BY ts DESC LIMIT ?]]

local states = {}          -- ctx.state by strategy: outlives the module's code (hot reload)
local runners = {}         -- by strategy: {sub, ctx, last = {series key = ts}}

local function store_signal(sig)
  local ok, err = pcall(db.tx, function()
    db.exec(SIGNAL_INSERT, sig.strategy, sig.source, sig.instrument, sig.timeframe, sig.ts, sig.side, sig.size,
            sig.reason, sig.price, os.time())
    events.publish("signal", sig)
  end)
  if not ok then log.error("strategy signal not stored", { strategy = sig.strategy, error = tostring(err) }) end
end

-- A failing bar is skipped. The first failure after a success is logged with its traceback and
-- opens alert strategy_failed; the next ones are counted (and logged at debug level) until a bar
-- succeeds again, which resolves the alert: a broken strategy cannot flood the log or the store.
local function failed(r, err)
  r.failures = (r.failures or 0) + 1
  if r.failing then
    log.debug("strategy failed on a bar again", { strategy = r.name, failures = r.failures, error = modules.first_line(tostring(err)) })
    return
  end
  r.failing = true
  log.error("strategy failed on a bar: the bar is skipped", { strategy = r.name, error = tostring(err) })
  alert.raise("strategy_failed", r.name, modules.first_line(tostring(err)), "error")
end

-- One bar for a live runner: bars of a series at or before the last one fed are skipped (a
-- corrected bar or a warm-up bar that also arrived as an event), so each bar is fed once.
local function live_bar(r, bar)
  if bar.open == nil or bar.close == nil then return end   -- an all-null minute: no price (as in replay)
  local key = bar.source .. "\31" .. bar.instrument .. "\31" .. bar.timeframe
  local last = r.last[key]
  if last and bar.ts <= last then return end
  r.last[key] = bar.ts
  local mod = current(r.name)
  if not mod then return end
  local ok, err = xpcall(M.feed, debug.traceback, r.ctx, mod, bar, M.tf_seconds(bar.timeframe) or 0)
  if not ok then return failed(r, err) end
  if r.failing then
    r.failing = false
    alert.resolve("strategy_failed", r.name)
  end
end

local function warm_up(r, spec)
  if spec.warmup == 0 then return end
  local now = os.time()
  local bars = {}
  for _, inst in ipairs(spec.instruments) do
    for _, tf in ipairs(spec.timeframes) do
      local step = M.tf_seconds(tf)
      local rows = spec.source and db.query(WARM, spec.source, inst, tf, now - step, spec.warmup)
                   or db.query(WARM_ANY, inst, tf, now - step, spec.warmup)
      for _, b in ipairs(rows) do
        b.source, b.instrument, b.timeframe = b.source or spec.source, inst, tf
        bars[#bars + 1] = b
      end
    end
  end
  table.sort(bars, function(a, b)
    if a.ts ~= b.ts then return a.ts < b.ts end
    if a.instrument ~= b.instrument then return a.instrument < b.instrument end
    return a.timeframe < b.timeframe
  end)
  r.ctx.warming = true
  for _, b in ipairs(bars) do live_bar(r, b) end
  r.ctx.warming = false
end

-- Start the live runner of one strategy. Returns true or nil, why.
local function start_one(name)
  local mod, err = M.load(name)
  if not mod then return nil, err end
  local spec
  spec, err = M.spec(name, mod)
  if not spec then return nil, err end
  states[name] = states[name] or {}
  local r = { name = name, last = {}, spec = spec }
  r.ctx = M.context(name, spec, states[name], "live", store_signal)
  local filter = { kind = "candle", instrument = spec.instruments, timeframe = spec.timeframes }
  if spec.source then filter.source = spec.source end
  r.sub = events.subscribe(filter, function(ev)
    if ev.kind == "overflow" then              -- the queue was full: bars were dropped (alerted)
      r.missed = (r.missed or 0) + ev.dropped
      log.warn("strategy missed bars: its queue was full", { strategy = name, dropped = ev.dropped,
                                                              queue = spec.queue })
      return
    end
    local b = ev.bar
    b.source, b.instrument, b.timeframe = ev.source, ev.instrument, ev.timeframe
    live_bar(r, b)
  end, { name = "strategy:" .. name, queue = spec.queue })
  if type(mod.on_trade) == "function" then
    local tfilter = { kind = "trade", instrument = spec.instruments }
    if spec.source then tfilter.source = spec.source end
    r.trades = events.subscribe(tfilter, function(ev)
      if ev.kind == "overflow" then
        log.warn("strategy missed trades: its queue was full", { strategy = name, dropped = ev.dropped })
        return
      end
      local m = current(name)
      if not m or type(m.on_trade) ~= "function" then return end
      r.ctx._bar[1] = ev
      local ok, terr = xpcall(m.on_trade, debug.traceback, r.ctx, ev)
      r.ctx._bar[1] = nil
      if not ok then failed(r, terr) end
    end, { name = "strategy:" .. name .. ":trades", queue = spec.queue })
  end
  if type(mod.on_start) == "function" then
    local ok, serr = xpcall(mod.on_start, debug.traceback, r.ctx)
    if not ok then
      r.sub:close()
      if r.trades then r.trades:close() end
      return nil, modules.first_line(serr)
    end
  end
  warm_up(r, spec)
  runners[name] = r
  log.info("strategy live", { strategy = name, instruments = table.concat(spec.instruments, ","),
                              timeframes = table.concat(spec.timeframes, ","), warmup = spec.warmup })
  return true
end

local function enabled_names()
  local names = {}
  for name, c in pairs(config.get("strategies") or {}) do
    if c.enabled ~= false then names[#names + 1] = name end
  end
  table.sort(names)
  return names
end

-- Why an enabled strategy cannot run (module missing, not loading, bad consumes), or nil.
function M.check()
  for _, name in ipairs(enabled_names()) do
    local mod, err = M.load(name)
    if not mod then return ("strategies.%s: %s"):format(name, err) end
    local _, serr = M.spec(name, mod)
    if serr then return serr end
  end
end

function M.start()
  db.exec(SIGNALS)
  local n = 0
  for _, name in ipairs(enabled_names()) do
    local ok, err = start_one(name)
    if ok then
      n = n + 1
    else
      log.error("strategy not started", { strategy = name, error = err })
      alert.raise("strategy_failed", name, err, "error")
    end
  end
  return n
end

-- The live runners (for status and tests): {name = {instruments, timeframes, queued, dropped}}.
function M.status()
  local out = {}
  for name, r in pairs(runners) do
    local st = r.sub:stats()
    out[name] = { instruments = r.spec.instruments, timeframes = r.spec.timeframes,
                  queued = st and st.queued, dropped = st and st.dropped, missed = r.missed or 0,
                  failures = r.failures or 0, state = states[name] }
  end
  return out
end

return M
