-- candled.replay (embedded): `candled replay` — stored bars through a strategy module with a
-- simulated clock, a position/PnL simulation and a report (text, JSON, CSV, SVG chart).
--
--   candled replay --strategy NAME [--instruments A,B] [--timeframes 1m,5m] [--source S]
--                  --from DATE --to DATE [--fees BPS] [--slippage BPS] [--capital N] [--out DIR]
--
-- Bars come in time order (ties: instruments, then timeframes, in the order given) from the C
-- stepper (rt.replay: one reused table per series), `warmup` bars before --from first (signals
-- ignored, as at a live start). The module, ctx and signal code are candled.strategy's, as live.
--
-- Simulation: one account starting at --capital (default 10000). A signal sets the target
-- position of its series as a fraction of equity (buy: +size, sell: -size, flat: 0); it executes
-- as a market order at the open of the series' next bar: units = size * equity / open (equity
-- marked at that open), filled at open * (1 + slippage) when buying and open * (1 - slippage)
-- when selling, fee = fees * |units| * fill price. A trade is a position from when it leaves 0
-- until it is back to 0 (or flips side); its PnL counts both fills and their fees. Equity is
-- marked at every bar's close; per time step (the smallest timeframe) returns give volatility
-- and Sharpe (risk-free 0, annualised over 365 days), drawdown is from the running peak.
local config = require "rt.config"
local db = require "rt.db"
local fs = require "rt.fs"
local json = require "rt.json"
local replay = require "rt.replay"
local vm = require "rt.vm"
local strategy = require "candled.strategy"

local M = {}

local YEAR = 365 * 86400
local MAX_POINTS = 2000

local function usage(msg)
  return nil, "replay: " .. msg .. " (usage: candled replay --strategy NAME --from DATE --to DATE [--instruments A,B]" ..
    " [--fees BPS] [--slippage BPS] [--out DIR])", 2
end

-- "2024-01-31", "2024-01-31T12:00[:00][Z]" or epoch seconds -> epoch seconds, and whether it was
-- a whole day. nil when it is none of those.
local function parse_date(s)
  if s:match("^%d+$") then return math.tointeger(tonumber(s)), false end
  local y, mo, d, rest = s:match("^(%d%d%d%d)%-(%d%d)%-(%d%d)(.*)$")
  if not y then return nil end
  local h, mi, sec = 0, 0, 0
  local day = rest == ""
  if not day then
    local hh, mm, ss = rest:match("^[T ](%d%d):(%d%d):?(%d?%d?)Z?$")
    if not hh then return nil end
    h, mi, sec = tonumber(hh), tonumber(mm), tonumber(ss ~= "" and ss or 0)
  end
  y, mo, d = tonumber(y), tonumber(mo), tonumber(d)
  if mo < 1 or mo > 12 or d < 1 or d > 31 or h > 23 or mi > 59 or sec > 59 then return nil end
  -- days from civil (Howard Hinnant), UTC whatever the local zone
  local yy = mo <= 2 and y - 1 or y
  local era = yy // 400
  local yoe = yy - era * 400
  local doy = (153 * (mo + (mo > 2 and -3 or 9)) + 2) // 5 + d - 1
  local doe = yoe * 365 + yoe // 4 - yoe // 100 + doy
  local days = era * 146097 + doe - 719468
  return days * 86400 + h * 3600 + mi * 60 + sec, day
end

local function iso(ts) return os.date("!%Y-%m-%dT%H:%M:%SZ", math.floor(ts)) end

local function parse_args(args)
  local o = { fees = 0, slippage = 0, capital = 10000 }
  local i = 1
  local function value(flag)
    local v = args[i + 1]
    if v == nil or v == "" then return nil end
    i = i + 2
    return v
  end
  while i <= #args do
    local a = args[i]
    local v
    if a == "--strategy" or a == "--from" or a == "--to" or a == "--instruments" or a == "--timeframes"
       or a == "--source" or a == "--fees" or a == "--slippage" or a == "--out" or a == "--capital" then
      v = value(a)
      if not v then return usage(a .. " needs a value") end
      o[a:sub(3)] = v
    else
      return usage("unexpected argument '" .. a .. "'")
    end
  end
  if not o.strategy then return usage("--strategy is required") end
  if not o.from then return usage("--from is required") end
  if not o.to then return usage("--to is required") end
  local from, to, whole = parse_date(o.from), parse_date(o.to)
  if not from then return usage("--from: '" .. o.from .. "' is not a date (YYYY-MM-DD[THH:MM[:SS]] or epoch seconds)") end
  to, whole = parse_date(o.to)
  if not to then return usage("--to: '" .. o.to .. "' is not a date (YYYY-MM-DD[THH:MM[:SS]] or epoch seconds)") end
  if whole then to = to + 86399 end
  if to < from then return usage("--to is before --from") end
  o.from_ts, o.to_ts = from, to
  for _, k in ipairs({ "fees", "slippage", "capital" }) do
    local n = tonumber(o[k])
    if not n or n ~= n or n < 0 or n == math.huge or (k == "capital" and n == 0) then
      return usage(("--%s: '%s' must be a number %s"):format(k, tostring(o[k]), k == "capital" and "> 0" or ">= 0"))
    end
    o[k] = n
  end
  if o.fees >= 10000 or o.slippage >= 10000 then return usage("--fees and --slippage are basis points below 10000") end
  local function list(s)
    local out = {}
    for x in s:gmatch("[^,]+") do out[#out + 1] = x end
    return out
  end
  if o.instruments then o.instruments = list(o.instruments) end
  if o.timeframes then o.timeframes = list(o.timeframes) end
  return o
end

-- ---- series --------------------------------------------------------------------------------------

local SERIES = "SELECT id, source FROM series WHERE instrument = ? AND timeframe = ? AND (?3 IS NULL OR source = ?3) ORDER BY source"
local WARM_FROM = [[SELECT ts FROM bars WHERE series = ? AND ts < ? AND open IS NOT NULL AND close IS NOT NULL
  ORDER BY ts DESC LIMIT 1 OFFSET ?]]

local function resolve_series(spec, from)
  local list = {}
  for _, inst in ipairs(spec.instruments) do
    for _, tf in ipairs(spec.timeframes) do
      local rows = db.query(SERIES, inst, tf, spec.source)
      if #rows == 0 then
        return nil, ("no stored bars for %s%s %s"):format(spec.source and spec.source .. " " or "", inst, tf)
      end
      if #rows > 1 then
        local names = {}
        for _, r in ipairs(rows) do names[#names + 1] = r.source end
        return nil, ("%s %s is stored by several sources (%s): choose one with --source"):format(inst, tf,
          table.concat(names, ", "))
      end
      local start = from
      if spec.warmup > 0 then
        local w = db.first(WARM_FROM, rows[1].id, from, spec.warmup - 1)
        if w then start = w.ts
        else
          local first = db.first("SELECT min(ts) AS ts FROM bars WHERE series = ? AND ts < ?", rows[1].id, from)
          start = first and first.ts or from
        end
      end
      list[#list + 1] = { id = rows[1].id, source = rows[1].source, instrument = inst, timeframe = tf,
                          step = strategy.tf_seconds(tf), start = start }
    end
  end
  return list
end

-- ---- buffered CSV output -------------------------------------------------------------------------

local function csv_field(v)
  if v == nil then return "" end
  if type(v) == "number" then
    if math.type(v) == "integer" then return tostring(v) end
    return ("%.10g"):format(v)
  end
  v = tostring(v)
  if v:find(",", 1, true) or v:find('"', 1, true) or v:find("\n", 1, true) or v:find("\r", 1, true) then
    return '"' .. v:gsub('"', '""') .. '"'
  end
  return v
end

local function csv_writer(path, header)
  local f, err = io.open(path, "w")
  if not f then return nil, err end
  local buf, n = { table.concat(header, ",") }, 1
  local w = {}
  local function line(text)
    n = n + 1
    buf[n] = text
    if n >= 4096 then
      f:write(table.concat(buf, "\n", 1, n), "\n")
      buf, n = {}, 0
    end
  end
  w.line = line
  function w.row(...)
    local t = table.pack(...)
    for i = 1, t.n do t[i] = csv_field(t[i]) end
    line(table.concat(t, ",", 1, t.n))
  end
  function w.close()
    if n > 0 then f:write(table.concat(buf, "\n", 1, n), "\n") end
    local ok, cerr = f:close()
    return ok, cerr
  end
  return w
end

-- ---- the simulation ------------------------------------------------------------------------------

-- Run the module over the series; returns the summary (and writes signals.csv, trades.csv as it
-- goes). Raises with the strategy's error.
local function simulate(o, name, mod, spec, series, out)
  local fees, slip = o.fees / 10000, o.slippage / 10000
  local from = o.from_ts
  local cash, mtm = o.capital, 0.0
  local pos, last, pending, entry = {}, {}, {}, {}
  local sig_csv = assert(csv_writer(out .. "/signals.csv",
    { "ts", "time", "source", "instrument", "timeframe", "side", "size", "price", "reason" }))
  local trade_csv = assert(csv_writer(out .. "/trades.csv",
    { "instrument", "timeframe", "side", "entry_ts", "entry_price", "exit_ts", "exit_price", "units", "pnl", "return" }))
  local nsignals, ntrades, wins, fee_total = 0, 0, 0, 0.0
  local nbars, exposed = 0, 0
  local cur_ts, prev_eq = nil, o.capital
  local first_ts, last_ts
  local peak, maxdd, maxdd_ts = o.capital, 0.0, nil
  local rn, rsum, rsq = 0, 0.0, 0.0
  local points, stride, tick = {}, 1, 0
  local min_step = math.huge
  for k, s in ipairs(series) do
    pos[k], last[k] = 0.0, nil
    if s.step < min_step then min_step = s.step end
  end

  -- per series: "source,instrument,timeframe" escaped; reasons escaped once (the first 256 kept)
  local prefix, tprefix, reasons, nreasons = {}, {}, {}, 0
  for k, se in ipairs(series) do
    prefix[k] = csv_field(se.source) .. "," .. csv_field(se.instrument) .. "," .. csv_field(se.timeframe)
    tprefix[k] = csv_field(se.instrument) .. "," .. csv_field(se.timeframe)
  end
  local ctx
  ctx = strategy.context(name, spec, {}, "replay", function(sig)
    nsignals = nsignals + 1
    local k = ctx._bar[1].k
    pending[k] = (sig.side == "buy" and sig.size) or (sig.side == "sell" and -sig.size) or 0.0
    local reason = sig.reason or ""
    local r = reasons[reason]
    if not r then
      r = csv_field(reason)
      if nreasons < 256 then
        reasons[reason], nreasons = r, nreasons + 1
      end
    end
    sig_csv.line(("%d,%s,%s,%s,%.10g,%.10g,%s"):format(sig.ts, iso(sig.ts), prefix[k], sig.side, sig.size,
                                                     sig.price or 0, r))
  end)

  -- close (part of) a trade: `units` leave the position at `price` with `fee`
  local function close_leg(k, s, units, price, fee, ts)
    local e = entry[k]
    local side = e.units > 0 and "long" or "short"
    local pnl = units * (price - e.price) - fee - e.fee * (units / e.units)
    e.fee = e.fee - e.fee * (units / e.units)
    e.units = e.units - units
    e.pnl = e.pnl + pnl
    if math.abs(e.units) < 1e-12 then
      ntrades = ntrades + 1
      if e.pnl > 0 then wins = wins + 1 end
      trade_csv.line(("%s,%s,%d,%.10g,%d,%.10g,%.10g,%.10g,%.10g"):format(tprefix[k], side, e.ts, e.price, ts, price,
                                                                         e.size, e.pnl, e.pnl / math.abs(e.size * e.price)))
      entry[k] = nil
    end
  end

  -- a market order to `target_frac` of equity at this bar's open (equity already marked there)
  local function fill(k, s, target_frac, open, ts)
    local p0 = pos[k]
    local target = target_frac * (cash + mtm) / open
    local delta = target - p0
    if math.abs(delta) < 1e-12 then return end
    local price = delta > 0 and open * (1 + slip) or open * (1 - slip)
    local fee = math.abs(delta) * price * fees
    fee_total = fee_total + fee
    cash = cash - delta * price - fee
    mtm = mtm + delta * open
    pos[k] = target
    local p, rest = p0, delta
    if p ~= 0 and (p > 0) ~= (rest > 0) then -- the part that reduces or closes the position
      local closing = math.abs(rest) >= math.abs(p) and p or -rest
      local share = math.abs(closing) / math.abs(delta)
      close_leg(k, s, closing, price, fee * share, ts)
      fee = fee * (1 - share)
      rest = rest + closing
    end
    if math.abs(rest) > 1e-12 then           -- opens or adds
      local e = entry[k]
      if not e then
        entry[k] = { ts = ts, price = price, units = rest, size = rest, fee = fee, pnl = 0.0 }
      else
        e.price = (e.price * e.units + price * rest) / (e.units + rest)
        e.units, e.size, e.fee = e.units + rest, e.size + rest, e.fee + fee
      end
    end
  end

  local function sample(ts, eq, dd)
    tick = 0
    points[#points + 1] = { ts, eq, dd }
    if #points >= MAX_POINTS then            -- keep every other point: the curve stays bounded
      local kept = {}
      for i = 1, #points, 2 do kept[#kept + 1] = points[i] end
      points, stride = kept, stride * 2
    end
  end

  -- the end of a time step: its return, the drawdown, a point of the curve
  local function close_step(ts)
    local eq = cash + mtm
    local r = eq / prev_eq - 1
    rn, rsum, rsq = rn + 1, rsum + r, rsq + r * r
    prev_eq = eq
    if eq > peak then peak = eq end
    local dd = (peak - eq) / peak
    if dd > maxdd then maxdd, maxdd_ts = dd, ts end
    tick = tick + 1
    if tick >= stride then sample(ts, eq, dd) end
  end

  -- The hot path (once per stored bar): kept flat, no allocation.
  local strat_on_bar, cbar = mod.on_bar, ctx._bar
  local on_bar = function(bar)
    local ts = bar.ts
    cbar[1] = bar
    if ts < from then                        -- warm-up: the strategy only
      ctx.warming = true
      ctx.now = ts + bar.step
      strat_on_bar(ctx, bar)
      ctx.warming = false
      return
    end
    if ts ~= cur_ts then
      if cur_ts then
        local eq = cash + mtm                -- close_step, inlined
        local r = eq / prev_eq - 1
        rn, rsum, rsq = rn + 1, rsum + r, rsq + r * r
        prev_eq = eq
        if eq > peak then peak = eq end
        local dd = (peak - eq) / peak
        if dd > maxdd then maxdd, maxdd_ts = dd, cur_ts end
        tick = tick + 1
        if tick >= stride then sample(cur_ts, eq, dd) end
      else
        first_ts = ts
      end
      cur_ts = ts
    end
    local k = bar.k
    local open, close = bar.open, bar.close
    local p = pos[k]
    if p ~= 0 then mtm = mtm + p * (open - last[k]) end
    local want = pending[k]
    if want then
      pending[k] = nil
      fill(k, series[k], want, open, ts)
      p = pos[k]
    end
    if p ~= 0 then
      mtm = mtm + p * (close - open)
      exposed = exposed + 1
    end
    last[k] = close
    nbars = nbars + 1
    ctx.now = ts + bar.step
    strat_on_bar(ctx, bar)
  end

  local bars, ids, froms = {}, {}, {}
  for k, s in ipairs(series) do
    bars[k] = { k = k, step = s.step, source = s.source, instrument = s.instrument, timeframe = s.timeframe }
    ids[k], froms[k] = s.id, s.start
  end
  if type(mod.on_start) == "function" then mod.on_start(ctx) end
  local n, err = replay.bars(ids, froms, o.to_ts, bars, on_bar)
  cbar[1] = nil
  if not n then error(err, 0) end
  last_ts = cur_ts
  if cur_ts then close_step(cur_ts) end
  local ok1, e1 = sig_csv.close()
  local ok2, e2 = trade_csv.close()
  if not ok1 or not ok2 then error("cannot write the report: " .. tostring(e1 or e2), 0) end
  local final = cash + mtm
  local open_positions = 0
  for k in pairs(entry) do open_positions = open_positions + 1; local _ = k end
  local duration = first_ts and (last_ts + min_step - first_ts) or 0
  local ppy = min_step < math.huge and YEAR / min_step or 0
  local mean = rn > 0 and rsum / rn or 0
  local var = rn > 1 and math.max(0, (rsq - rn * mean * mean) / (rn - 1)) or 0
  local sd = math.sqrt(var)
  local total = final / o.capital - 1
  return {
    strategy = name, instruments = spec.instruments, timeframes = spec.timeframes,
    from = iso(o.from_ts), to = iso(o.to_ts), first_bar = first_ts and iso(first_ts), last_bar = last_ts and iso(last_ts),
    bars = nbars, rows = n, warmup = spec.warmup, signals = nsignals,
    fees_bps = o.fees, slippage_bps = o.slippage, capital = o.capital, final_equity = final,
    total_return = total,
    annualised_return = duration > 0 and final > 0 and (final / o.capital) ^ (YEAR / duration) - 1 or 0,
    annualised_volatility = sd * math.sqrt(ppy),
    sharpe = sd > 0 and mean / sd * math.sqrt(ppy) or 0,
    max_drawdown = maxdd, max_drawdown_at = maxdd_ts and iso(maxdd_ts),
    trades = ntrades, win_rate = ntrades > 0 and wins / ntrades or 0, fees_paid = fee_total,
    exposure = nbars > 0 and exposed / nbars or 0, open_positions = open_positions,
  }, points
end

local function pct(v) return v and ("%+.2f%%"):format(v * 100) or "n/a" end

-- ---- the chart ------------------------------------------------------------------------------------

local function esc(t) return (tostring(t):gsub("&", "&amp;"):gsub("<", "&lt;"):gsub(">", "&gt;")) end

-- An SVG of the equity curve (top) and the drawdown below it; points = {{ts, equity, dd}, ...}.
local function svg(r, points)
  local W, H, L, R, T1, H1, T2, H2 = 960, 540, 80, 20, 40, 300, 380, 120
  local out = {}
  local function add(...) for i = 1, select("#", ...) do out[#out + 1] = select(i, ...) end end
  add('<?xml version="1.0" encoding="UTF-8"?>\n',
      ('<svg xmlns="http://www.w3.org/2000/svg" width="%d" height="%d" viewBox="0 0 %d %d" font-family="sans-serif" font-size="12">\n'):format(W, H, W, H),
      ('<rect width="%d" height="%d" fill="#ffffff"/>\n'):format(W, H),
      ('<text x="%d" y="22" font-size="15">%s: total return %s, max drawdown %.2f%%, Sharpe %s, %d trades</text>\n'):format(
        L, esc(r.strategy), pct(r.total_return), r.max_drawdown * 100, r.sharpe and ("%.2f"):format(r.sharpe) or "n/a",
        r.trades))
  if #points == 0 then
    add('<text x="80" y="200">no bars in the range</text>\n</svg>\n')
    return table.concat(out)
  end
  local t0, t1 = points[1][1], points[#points][1]
  if t1 == t0 then t1 = t0 + 1 end
  local lo, hi, ddmax = math.huge, -math.huge, 0
  for _, p in ipairs(points) do
    if p[2] < lo then lo = p[2] end
    if p[2] > hi then hi = p[2] end
    if p[3] > ddmax then ddmax = p[3] end
  end
  if hi == lo then hi, lo = hi + 1, lo - 1 end
  if ddmax == 0 then ddmax = 0.01 end
  local pw = W - L - R
  local function x(ts) return L + (ts - t0) / (t1 - t0) * pw end
  local function y(eq) return T1 + (hi - eq) / (hi - lo) * H1 end
  local function yd(dd) return T2 + dd / ddmax * H2 end
  -- frames, axes labels
  add(('<rect x="%d" y="%d" width="%d" height="%d" fill="none" stroke="#999"/>\n'):format(L, T1, pw, H1),
      ('<rect x="%d" y="%d" width="%d" height="%d" fill="none" stroke="#999"/>\n'):format(L, T2, pw, H2),
      ('<text x="%d" y="%d" text-anchor="end">%.2f</text>\n'):format(L - 6, T1 + 4, hi),
      ('<text x="%d" y="%d" text-anchor="end">%.2f</text>\n'):format(L - 6, T1 + H1, lo),
      ('<text x="%d" y="%d" text-anchor="end">0%%</text>\n'):format(L - 6, T2 + 4),
      ('<text x="%d" y="%d" text-anchor="end">-%.1f%%</text>\n'):format(L - 6, T2 + H2, ddmax * 100),
      ('<text x="%d" y="%d">equity</text>\n'):format(L + 6, T1 + 16),
      ('<text x="%d" y="%d">drawdown</text>\n'):format(L + 6, T2 + 16),
      ('<text x="%d" y="%d">%s</text>\n'):format(L, H - 12, iso(t0)),
      ('<text x="%d" y="%d" text-anchor="end">%s</text>\n'):format(W - R, H - 12, iso(points[#points][1])))
  local eq, dd = {}, { ("%.2f,%.2f"):format(x(t0), yd(0)) }
  for i, p in ipairs(points) do
    eq[i] = ("%.2f,%.2f"):format(x(p[1]), y(p[2]))
    dd[#dd + 1] = ("%.2f,%.2f"):format(x(p[1]), yd(p[3]))
  end
  dd[#dd + 1] = ("%.2f,%.2f"):format(x(points[#points][1]), yd(0))
  add('<polyline id="equity" fill="none" stroke="#1f6feb" stroke-width="1.5" points="', table.concat(eq, " "), '"/>\n',
      '<polygon id="drawdown" fill="#e5534b" fill-opacity="0.5" stroke="#e5534b" points="', table.concat(dd, " "), '"/>\n',
      '</svg>\n')
  return table.concat(out)
end

-- ---- the command ----------------------------------------------------------------------------------

local ORDER = { "strategy", "from", "to", "first_bar", "last_bar", "bars", "warmup", "signals", "capital",
                "final_equity", "total_return", "annualised_return", "annualised_volatility", "sharpe",
                "max_drawdown", "max_drawdown_at", "trades", "win_rate", "exposure", "fees_paid",
                "open_positions", "fees_bps", "slippage_bps" }

local function write(path, text)
  local f, err = io.open(path, "w")
  if not f then return nil, err end
  local ok, werr = f:write(text)
  if ok then ok, werr = f:close() else f:close() end
  return ok, werr
end


-- Run a replay. Returns the summary, the output folder, or nil, message, exit code.
function M.run(args)
  local o, uerr, ucode = parse_args(args)
  if not o then return nil, uerr, ucode end
  local name = o.strategy
  local mod, err = strategy.load(name)
  if not mod then return nil, "replay: " .. err, 1 end
  local cfg = {}
  for k, v in pairs(config.get("strategies." .. name) or {}) do cfg[k] = v end
  if o.instruments then cfg.instruments = o.instruments end
  if o.timeframes then cfg.timeframes = o.timeframes end
  if o.source then cfg.source = o.source end
  local spec, serr = strategy.spec(name, mod, cfg)
  if not spec then return nil, "replay: " .. serr, 1 end
  local series, rerr = resolve_series(spec, o.from_ts)
  if not series then return nil, "replay: " .. rerr, 1 end
  local out = o.out or ("replay-" .. name)
  local ok, merr = fs.mkdir(out)
  if not ok then return nil, ("replay: --out %s"):format(tostring(merr)), 1 end
  vm.task_slice(0)                             -- one long step: the replay yields to nothing
  local done, r, points = xpcall(simulate, function(e)
    if type(e) == "string" and not e:match("^[^\n]*:%d+: ") then return e end
    return tostring(e)
  end, o, name, mod, spec, series, out)
  if not done then return nil, "replay: " .. tostring(r):match("^[^\n]*"), 1 end
  for k, v in pairs(r) do                      -- a figure too large for a double (a huge annualised
    if type(v) == "number" and (v ~= v or v == math.huge or v == -math.huge) then r[k] = nil end   -- return) is n/a
  end
  local eqcsv = { "ts,time,equity,drawdown" }
  for _, p in ipairs(points) do eqcsv[#eqcsv + 1] = ("%d,%s,%.6f,%.6f"):format(p[1], iso(p[1]), p[2], p[3]) end
  local row, head = {}, {}
  for i, k in ipairs(ORDER) do
    head[i] = k
    local v = r[k]
    row[i] = type(v) == "number" and (math.type(v) == "integer" and tostring(v) or ("%.10g"):format(v)) or (v and tostring(v) or "")
  end
  r.instruments_csv = nil
  local files = {
    { "report.json", json.encode(r) .. "\n" },
    { "report.csv", table.concat(head, ",") .. "\n" .. table.concat(row, ",") .. "\n" },
    { "equity.csv", table.concat(eqcsv, "\n") .. "\n" },
    { "equity.svg", svg(r, points) },
  }
  for _, f in ipairs(files) do
    local wok, werr = write(out .. "/" .. f[1], f[2])
    if not wok then return nil, ("replay: %s/%s: %s"):format(out, f[1], tostring(werr)), 1 end
  end
  return r, out
end

M.commands = {}

function M.commands.replay(args)
  local r, out, code = M.run(args)
  if not r then return nil, out, code end
  io.stdout:write(("replay %s: %s %s, %d bars from %s to %s (warm-up %d), %d signals\n"):format(r.strategy,
    table.concat(r.instruments, ","), table.concat(r.timeframes, ","), r.bars, r.first_bar or r.from,
    r.last_bar or r.to, r.warmup, r.signals))
  io.stdout:write(("total return %s  annualised %s  volatility %s  Sharpe %s\n"):format(pct(r.total_return),
    pct(r.annualised_return), pct(r.annualised_volatility):gsub("^%+", ""), r.sharpe and ("%.2f"):format(r.sharpe) or "n/a"))
  io.stdout:write(("max drawdown %.2f%%  trades %d  win rate %.1f%%  exposure %.1f%%  fees paid %.2f (%g bps, slippage %g bps)\n"):format(
    r.max_drawdown * 100, r.trades, r.win_rate * 100, r.exposure * 100, r.fees_paid, r.fees_bps, r.slippage_bps))
  io.stdout:write(("wrote %s/: report.json report.csv signals.csv trades.csv equity.csv equity.svg\n"):format(out))
  return 0
end

return M
