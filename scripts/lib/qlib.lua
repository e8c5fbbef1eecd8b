-- qlib: the stored candles as a QLib data root (what QLib's dump_bin `dump_all` writes, without
-- its traps), incremental and atomic. Used by `candled export qlib` and the scheduled export
-- (scripts/export/qlib.lua).
--
--   summary, err, code = qlib.export{out=, freq=, source=, instruments={...}, start=, stop=,
--                                    progress=function(done, total) end, now=}
--   symbol   = qlib.symbol(instrument)     -- the reversible, case-safe QLib name
--   instr    = qlib.instrument(symbol)     -- its inverse (nil for a name symbol() never makes)
--   folder   = qlib.folder(symbol)         -- features/<folder>: lower case, QLib's _qlib_ rule
--   plan, err, code = qlib.plan(opts)      -- what an export would read (series, symbols)
--
-- The root (one per frequency; QLib's instruments/all.txt has no frequency in its name):
--   calendars/<freq>.txt        the sorted union of the exported bar times, UTC, "%Y-%m-%d" for day,
--                               "%Y-%m-%d %H:%M:%S" otherwise, LF
--   instruments/all.txt         SYMBOL<TAB>first<TAB>last
--   instruments/map.csv         symbol,source,instrument,timeframe,quote: where each symbol comes from
--   features/<folder>/<field>.<freq>.bin   float32 LE: the calendar index of the symbol's first bar,
--                               then one value per calendar entry up to its last bar, NaN (0x7FC00000)
--                               where it has no bar
--   candled.json                what was exported: freq, source, fields, quote currencies, the
--                               data-quality summary (gaps, dropped buckets, known-empty intervals)
-- Fields: open, high, low, close, volume, factor (1.0), change (close / previous close - 1, the
-- previous close carried over gaps), and where the source gives quote volume: amount (its sum) and
-- vwap (amount / volume).
--
-- Frequencies come from stored timeframes: the one equal to the frequency, else the coarsest that
-- divides it (1m -> 5min/15min/60min, 1h -> day), aggregated over complete buckets only: a bucket
-- whose period has ended and which holds every sub-bar, or whose missing sub-bars the source
-- reported empty. open = first, close = last, high = max, low = min, volume and amount = sums.
-- A bar still forming (its period not over at `now`) is never exported.
--
-- Atomic: the new root is built in <out>.candled-next and swapped with <out> in one rename
-- (rt.fs.exchange; where the file system cannot, two renames that the next export repairs if cut
-- in between), so readers and a killed export leave <out> as the previous complete export. A file
-- whose bytes did not change is hard-linked from the previous export (not rewritten); the result is
-- always byte-identical to a full export of the same rows. <out>.candled-lock keeps two exports
-- into one root from interleaving (the second fails with EBUSY).
local column = require "rt.column"
local csv = require "rt.csv"
local db = require "rt.db"
local fs = require "rt.fs"
local json = require "rt.json"
local time = require "rt.time"
require "lib.series"                  -- its tables (series_empty) are in place once it is loaded

local M = {}

M.FREQS = { day = 86400, ["60min"] = 3600, ["15min"] = 900, ["5min"] = 300, ["1min"] = 60 }
M.FREQ_NAMES = { "day", "60min", "15min", "5min", "1min" }
M.BASE_FIELDS = { "open", "high", "low", "close", "volume", "factor", "change" }
M.QUOTE_FIELDS = { "amount", "vwap" }

local NAN = 0 / 0

-- ---- symbols --------------------------------------------------------------------------------

-- QLib lower-cases feature folder names and Solana addresses are case-sensitive, so a symbol keeps
-- only [A-Z0-9_] and says which letters were lower case:
--   A-Z 0-9 as they are; a-z upper-cased; "_" -> "__"; any other byte -> "_" + two hex digits;
--   then, when any letter was lower case, "_L" + a hex mask over the letters in order (first
--   letter = highest bit of the first digit, 4 letters a digit, 1 = was lower case).
-- "BTCUSDT" -> "BTCUSDT"; "solana_7xKX" -> "SOLANA__7XKX_LFE0" ('L' is no hex digit, so the mask
-- cannot be mistaken for an escape). Two instruments never share a symbol (the mapping is
-- reversible), and no symbol holds "/", "." or a lower-case letter.
function M.symbol(instrument)
  local out, bits = {}, {}
  for i = 1, #instrument do
    local b = instrument:byte(i)
    if (b >= 65 and b <= 90) or (b >= 48 and b <= 57) then
      out[#out + 1] = string.char(b)
      if b >= 65 then bits[#bits + 1] = 0 end
    elseif b >= 97 and b <= 122 then
      out[#out + 1] = string.char(b - 32)
      bits[#bits + 1] = 1
    elseif b == 95 then
      out[#out + 1] = "__"
    else
      out[#out + 1] = string.format("_%02X", b)
    end
  end
  local lower = false
  for _, v in ipairs(bits) do lower = lower or v == 1 end
  if lower then
    out[#out + 1] = "_L"
    for i = 1, #bits, 4 do
      local d = 0
      for k = 0, 3 do d = d * 2 + (bits[i + k] or 0) end
      out[#out + 1] = string.format("%X", d)
    end
  end
  return table.concat(out)
end

function M.instrument(symbol)
  local out, letters, i, mask = {}, {}, 1, nil
  while i <= #symbol do
    local c = symbol:sub(i, i)
    if c:match("^[A-Z0-9]$") then
      out[#out + 1] = c
      if c:match("%u") then letters[#letters + 1] = #out end
      i = i + 1
    elseif c == "_" then
      local n = symbol:sub(i + 1, i + 1)
      if n == "_" then
        out[#out + 1] = "_"
        i = i + 2
      elseif n == "L" then
        mask = symbol:sub(i + 2)
        if not mask:match("^[0-9A-F]+$") then return nil end
        break
      else
        local h = symbol:sub(i + 1, i + 2)
        if not h:match("^[0-9A-F][0-9A-F]$") then return nil end
        out[#out + 1] = string.char(tonumber(h, 16))
        i = i + 3
      end
    else
      return nil
    end
  end
  if mask then
    if #mask ~= (#letters + 3) // 4 then return nil end
    for k, pos in ipairs(letters) do
      local d = tonumber(mask:sub((k - 1) // 4 + 1, (k - 1) // 4 + 1), 16)
      if (d >> (3 - (k - 1) % 4)) & 1 == 1 then out[pos] = out[pos]:lower() end
    end
  end
  return table.concat(out)
end

-- Names Windows reserves: QLib itself stores them under "_qlib_" + name (and reads them there).
local RESERVED = { CON = true, PRN = true, AUX = true, NUL = true }
for d = 0, 9 do RESERVED["COM" .. d], RESERVED["LPT" .. d] = true, true end

function M.folder(symbol)
  if RESERVED[symbol:upper()] then return "_qlib_" .. symbol:lower() end
  return symbol:lower()
end

-- ---- what to read ---------------------------------------------------------------------------

local function fail(msg, code) return nil, msg, code or "EINVAL" end

local function tf_seconds(tf)
  local ok, s = pcall(time.duration, tf)
  if ok and math.type(s) == "integer" and s > 0 then return s end
  if ok and type(s) == "number" and s > 0 and s == math.floor(s) then return math.tointeger(s) end
end

-- The series an export reads: for each instrument of the source the stored timeframe equal to the
-- frequency, else the coarsest one dividing it. opts: freq, source, instruments.
function M.plan(opts)
  local S = M.FREQS[opts.freq or ""]
  if not S then
    return fail(("freq: '%s' is not one of %s"):format(tostring(opts.freq), table.concat(M.FREQ_NAMES, ", ")))
  end
  local source = opts.source
  if not source then
    local rows = db.query("SELECT DISTINCT source FROM series WHERE timeframe <> 'trades' ORDER BY source")
    if #rows == 0 then return fail("source: the database holds no candles", "ENOENT") end
    if #rows > 1 then
      local names = {}
      for _, r in ipairs(rows) do names[#names + 1] = r.source end
      return fail("source: the database holds candles of several sources (" .. table.concat(names, ", ") ..
        "): choose one (one root per source: their prices are in different currencies)")
    end
    source = rows[1].source
  end
  local best, any = {}, false
  for _, r in ipairs(db.query([[SELECT s.id, s.instrument, s.timeframe FROM series s
      WHERE s.source = ? AND s.timeframe <> 'trades' AND EXISTS (SELECT 1 FROM bars b WHERE b.series = s.id)
      ORDER BY s.instrument, s.timeframe]], source)) do
    any = true
    local tf = tf_seconds(r.timeframe)
    if tf and tf <= S and S % tf == 0 then
      local b = best[r.instrument]
      if not b or tf > b.tf then best[r.instrument] = { series = r.id, timeframe = r.timeframe, tf = tf } end
    end
  end
  if not any then return fail(("source: no candles of source '%s' are stored"):format(source), "ENOENT") end
  local wanted = opts.instruments
  if wanted and #wanted > 0 then
    for _, name in ipairs(wanted) do
      if not best[name] then
        return fail(("instruments: no %s candles of '%s' (source %s) that make %s bars"):format(
          "stored", name, source, opts.freq), "ENOENT")
      end
    end
  else
    wanted = {}
    for name in pairs(best) do wanted[#wanted + 1] = name end
    if #wanted == 0 then
      return fail(("source %s: no stored timeframe makes %s bars"):format(source, opts.freq), "ENOENT")
    end
  end
  local items, by_symbol, seen = {}, {}, {}
  for _, name in ipairs(wanted) do
    if not seen[name] then
      seen[name] = true
      local b = best[name]
      local sym = M.symbol(name)
      if sym == "" then return fail("instruments: an empty instrument id cannot be exported") end
      local other = by_symbol[M.folder(sym)]
      if other then return fail(("instruments: '%s' and '%s' map to one QLib folder"):format(other, name)) end
      by_symbol[M.folder(sym)] = name
      items[#items + 1] = { instrument = name, series = b.series, timeframe = b.timeframe, tf = b.tf,
                            symbol = sym, folder = M.folder(sym) }
    end
  end
  table.sort(items, function(a, b) return a.symbol < b.symbol end)
  return { source = source, freq = opts.freq, seconds = S, items = items }
end

-- ---- buckets --------------------------------------------------------------------------------

local EMPTY = "SELECT start, stop FROM series_empty WHERE series = ? AND stop >= ? AND start < ? ORDER BY start"

-- The complete buckets of one series' rows (ts sorted, unique): a list of {bucket ts, first row,
-- last row}, and how many buckets were dropped as incomplete or forming.
local function buckets(ts, n, tf, S, series, lo, hi, now)
  local out, dropped = {}, 0
  if tf == S then
    for i = 1, n do
      if ts[i] + S <= now then out[#out + 1] = { ts[i], i, i } else dropped = dropped + 1 end
    end
    return out, dropped
  end
  local need = S // tf
  local empty = db.columns(EMPTY, series, lo, hi)
  local ep, en = 1, #empty.start
  local i = 1
  while i <= n do
    local b = ts[i] - ts[i] % S
    local j = i
    while j < n and ts[j + 1] < b + S do j = j + 1 end
    local ok = b + S <= now
    if ok and j - i + 1 < need then
      -- every missing sub-bar must be a known-empty interval
      local k = i
      for t = b, b + S - 1, tf do
        if k <= j and ts[k] == t then
          k = k + 1
        else
          while ep <= en and empty.stop[ep] < t do ep = ep + 1 end
          if not (ep <= en and empty.start[ep] <= t) then
            ok = false
            break
          end
        end
      end
    end
    if ok then out[#out + 1] = { b, i, j } else dropped = dropped + 1 end
    i = j + 1
  end
  return out, dropped
end

local ROWS = [[SELECT ts, open, high, low, close, volume, quote_volume FROM bars
  WHERE series = ? AND ts >= ? AND ts < ? AND open IS NOT NULL AND high IS NOT NULL
    AND low IS NOT NULL AND close IS NOT NULL AND volume IS NOT NULL ORDER BY ts]]
local TIMES = [[SELECT ts FROM bars WHERE series = ? AND ts >= ? AND ts < ? AND open IS NOT NULL
  AND high IS NOT NULL AND low IS NOT NULL AND close IS NOT NULL AND volume IS NOT NULL ORDER BY ts]]
local EMPTY_COUNT = [[SELECT count(*) AS n, coalesce(sum(stop - start), 0) AS span FROM series_empty
  WHERE series = ? AND stop >= ? AND start <= ?]]

-- The start times of one aggregated item's complete buckets, as buckets() finds them, in one
-- pass over the times without a table per bucket: a bucket short of sub-bars is looked at closely
-- only when a known-empty interval overlaps it.
-- From this many sub-bars per bucket up (60min and day from 1m, day from 1h), pass 1 aggregates
-- each item once and keeps its buckets for pass 2 (at most 1/24 of its rows in memory); below it,
-- pass 1 reads the times only and pass 2 reads the rows.
local KEEP_FACTOR = 24

local function complete_buckets(item, S, lo, hi, now)
  local r, n = db.columns(TIMES, item.series, lo, hi)
  local ts, need, out = r.ts, S // item.tf, {}
  local empty = db.columns(EMPTY, item.series, lo, hi)
  local ep, en = 1, #empty.start
  local i = 1
  while i <= n do
    local b = ts[i] - ts[i] % S
    local e = b + S
    if e > now then break end
    local j = i + need - 1
    if j <= n and ts[i] == b and ts[j] == e - item.tf and (j == n or ts[j + 1] >= e) then
      out[#out + 1] = b                         -- every sub-bar there (times are unique and aligned)
      i = j + 1
    else
      j = i
      while j < n and ts[j + 1] < e do j = j + 1 end
      while ep <= en and empty.stop[ep] < b do ep = ep + 1 end
      if ep <= en and empty.start[ep] < e then
        local sub = { }
        for m = i, j do sub[#sub + 1] = ts[m] end
        if #buckets(sub, #sub, item.tf, S, item.series, lo, hi, now) == 1 then out[#out + 1] = b end
      end
      i = j + 1
    end
  end
  return out
end

-- One item's bars at the export's frequency: arrays bts, o, h, l, c, v, q (q[k] nil where a
-- sub-bar had no quote volume), the count, and the buckets dropped.
local function bars(item, S, lo, hi, now)
  local r, n = db.columns(ROWS, item.series, lo, hi)
  if item.tf == S then
    -- as stored: the rows themselves, less the forming bars at the end (no table per row)
    local ts, k = r.ts, n
    while k > 0 and ts[k] + S > now do k = k - 1 end
    local rq, quote = r.quote_volume, false
    for m = 1, k do if rq[m] then quote = true break end end
    return { ts = ts, o = r.open, h = r.high, l = r.low, c = r.close, v = r.volume, q = rq, n = k,
             dropped = n - k, quote = quote }
  end
  local bk, dropped = buckets(r.ts, n, item.tf, S, item.series, lo, hi, now)
  local B = { ts = {}, o = {}, h = {}, l = {}, c = {}, v = {}, q = {}, n = #bk, dropped = dropped, quote = false }
  local ro, rh, rl, rc, rv, rq = r.open, r.high, r.low, r.close, r.volume, r.quote_volume
  for k, x in ipairs(bk) do
    local i, j = x[2], x[3]
    local hh, ll, vv, qq = rh[i], rl[i], 0, 0
    for m = i, j do
      if rh[m] > hh then hh = rh[m] end
      if rl[m] < ll then ll = rl[m] end
      vv = vv + rv[m]
      if qq and rq[m] then qq = qq + rq[m] else qq = nil end
    end
    B.ts[k], B.o[k], B.h[k], B.l[k], B.c[k], B.v[k], B.q[k] = x[1], ro[i], hh, ll, rc[j], vv, qq
    if qq then B.quote = true end
  end
  return B
end

-- ---- formatting -----------------------------------------------------------------------------

local function fmt_time(freq, t)
  return os.date(freq == "day" and "!%Y-%m-%d" or "!%Y-%m-%d %H:%M:%S", t)
end

-- ---- the tree on disk ---------------------------------------------------------------------

local function remove_tree(path)
  local st = fs.stat(path)
  if not st then return true end
  if st.type == "dir" then
    local names, err, code = fs.list(path)
    if not names then return nil, err, code end
    for _, name in ipairs(names) do
      local ok, e, c = remove_tree(path .. "/" .. name)
      if not ok then return nil, e, c end
    end
  end
  return fs.remove(path)
end
M.remove_tree = remove_tree

-- A root we may replace: missing, empty, or an export of the same frequency.
local function check_root(out, freq)
  local st = fs.stat(out)
  if not st then return true end
  if st.type ~= "dir" then return fail(("out: %s is not a folder"):format(out)) end
  local names, err, code = fs.list(out)
  if not names then return nil, "out: " .. err, code end
  if #names == 0 then return true end
  local cals = fs.list(out .. "/calendars")
  if not cals then
    return fail(("out: %s is not empty and holds no QLib export (no calendars/): refusing to replace it"):format(out))
  end
  for _, c in ipairs(cals) do
    local f = c:match("^(.+)%.txt$")
    if f and f ~= freq then
      return fail(("out: %s holds a '%s' export: use one folder per frequency (QLib shares instruments/all.txt "
        .. "between the frequencies of a root)"):format(out, f))
    end
  end
  return true
end

-- After a cut between the two renames of the fallback swap, <out> is missing and the previous
-- export sits in <out>.candled-old: put it back. A stale <out>.candled-next is an unfinished export.
local function recover(out)
  local old, nxt = out .. ".candled-old", out .. ".candled-next"
  if not fs.stat(out) and fs.stat(old) then
    local ok, err, code = fs.rename(old, out)
    if not ok then return nil, err, code end
  end
  local ok, err, code = remove_tree(old)
  if not ok then return nil, err, code end
  return remove_tree(nxt)
end

-- Put the staged tree in place of out: one exchange, else two renames.
local function swap(out, nxt)
  if not fs.stat(out) then return fs.rename(nxt, out) end
  local ok, err, code = fs.exchange(out, nxt)
  if ok then return remove_tree(nxt) end
  if code ~= "ENOSYS" and code ~= "EINVAL" and code ~= "EOPNOTSUPP" then return nil, err, code end
  local old = out .. ".candled-old"
  ok, err, code = fs.rename(out, old)
  if not ok then return nil, err, code end
  ok, err, code = fs.rename(nxt, out)
  if not ok then return nil, err, code end
  return remove_tree(old)
end

-- Writes into the staging tree, linking what did not change from the previous export.
local function writer(out, nxt)
  local w = { files = 0, bytes = 0, written = 0, linked = 0, appended = 0, rewritten = 0, created = 0 }
  function w.put(rel, data)
    local old_path, new_path = out .. "/" .. rel, nxt .. "/" .. rel
    w.files, w.bytes = w.files + 1, w.bytes + #data
    local st = fs.stat(old_path)
    if st and st.type == "file" and st.size <= #data then
      local old = fs.read(old_path)
      if old == data then
        local ok, err, code = fs.link(old_path, new_path)
        if ok then
          w.linked = w.linked + 1
          return true
        end
        if code ~= "EXDEV" and code ~= "EPERM" and code ~= "ENOTSUP" then return nil, err, code end
      elseif old and data:sub(1, #old) == old then
        w.appended = w.appended + 1
      else
        w.rewritten = w.rewritten + 1
      end
    elseif st then
      w.rewritten = w.rewritten + 1
    else
      w.created = w.created + 1
    end
    w.written = w.written + #data
    return fs.write(new_path, data, { sync = false })
  end
  return w
end

-- ---- the export -----------------------------------------------------------------------------

local function quote_of(source, instrument)
  local cur = (require "rt.config").get("sources." .. source .. ".currency")
  if cur == "usd" then return "USD" end
  local r = db.first("SELECT quote FROM instruments WHERE source = ? AND instrument = ?", source, instrument)
  if r and type(r.quote) == "string" and r.quote ~= "" then return r.quote end
  return "unknown"
end

local function do_export(opts, plan, out, nxt, t0)
  local S, freq = plan.seconds, plan.freq
  local lo, hi = opts.start or 0, opts.stop or (1 << 62)
  local now = opts.now or time.now()
  local total = #plan.items
  local progress = opts.progress or function() end
  -- pass 1: the calendar (the union of every item's complete buckets)
  local set, cal, kept = {}, {}, {}
  for k, item in ipairs(plan.items) do
    if item.tf == S then
      local r, n = db.columns(TIMES, item.series, lo, hi)
      local ts = r.ts
      for m = 1, n do
        local t = ts[m]
        if t + S > now then break end
        if not set[t] then
          set[t] = true
          cal[#cal + 1] = t
        end
      end
    elseif S // item.tf >= KEEP_FACTOR then
      -- few buckets per row: aggregate once, keep them for pass 2
      local B = kept[k] or bars(item, S, lo, hi, now)
    kept[k] = nil
      kept[k] = B
      for m = 1, B.n do
        local b = B.ts[m]
        if not set[b] then
          set[b] = true
          cal[#cal + 1] = b
        end
      end
    else
      for _, b in ipairs(complete_buckets(item, S, lo, hi, now)) do
        if not set[b] then
          set[b] = true
          cal[#cal + 1] = b
        end
      end
    end
    progress(k * 0.25, total)
    time.sleep(0)
  end
  if #cal == 0 then return fail("no complete " .. freq .. " bars to export in the chosen range", "ENOENT") end
  if #cal >= (1 << 24) then return fail("the calendar would hold 2^24 entries or more (QLib's float32 index)") end
  table.sort(cal)
  local index = {}
  for i, t in ipairs(cal) do index[t] = i - 1 end
  time.sleep(0)
  -- the tree
  local ok, err, code = fs.mkdir(nxt)
  if not ok then return nil, err, code end
  for _, d in ipairs({ "/calendars", "/instruments", "/features" }) do
    ok, err, code = fs.mkdir(nxt .. d)
    if not ok then return nil, err, code end
  end
  local w = writer(out, nxt)
  local lines = {}
  for i, t in ipairs(cal) do lines[i] = fmt_time(freq, t) end
  ok, err, code = w.put("calendars/" .. freq .. ".txt", table.concat(lines, "\n") .. "\n")
  if not ok then return nil, err, code end
  lines = nil
  -- pass 2: every item's columns
  local all, map, quality, fields_seen = {}, { csv.format_row({ "symbol", "source", "instrument", "timeframe", "quote" }) }, {}, {}
  local exported = 0
  for k, item in ipairs(plan.items) do
    local B = kept[k] or bars(item, S, lo, hi, now)
    kept[k] = nil
    if B.n > 0 then
      exported = exported + 1
      local start = index[B.ts[1]]
      local n = index[B.ts[B.n]] - start + 1
      local cols = {}
      local names = { table.unpack(M.BASE_FIELDS) }
      if B.quote then for _, f in ipairs(M.QUOTE_FIELDS) do names[#names + 1] = f end end
      for _, f in ipairs(names) do cols[f] = column.fill(n, NAN) end
      local O, H, L, C, V, F, CH = cols.open, cols.high, cols.low, cols.close, cols.volume, cols.factor, cols.change
      local A, VW = cols.amount, cols.vwap
      local prev
      for m = 1, B.n do
        local p = index[B.ts[m]] - start + 1
        local c = B.c[m]
        O[p], H[p], L[p], C[p], V[p], F[p] = B.o[m], B.h[m], B.l[m], c, B.v[m], 1.0
        if prev and prev ~= 0 then CH[p] = c / prev - 1 end
        prev = c
        local q = B.q[m]
        if A and q then
          A[p] = q
          if B.v[m] > 0 then VW[p] = q / B.v[m] end
        end
      end
      local dir = "features/" .. item.folder
      ok, err, code = fs.mkdir(nxt .. "/" .. dir)
      if not ok then return nil, err, code end
      local header = column.pack({ start })
      for _, f in ipairs(names) do
        ok, err, code = w.put(dir .. "/" .. f .. "." .. freq .. ".bin", header .. column.pack(cols[f], 1, n))
        if not ok then return nil, err, code end
        fields_seen[f] = true
      end
      local first, last = fmt_time(freq, B.ts[1]), fmt_time(freq, B.ts[B.n])
      all[#all + 1] = item.symbol .. "\t" .. first .. "\t" .. last .. "\n"
      map[#map + 1] = csv.format_row({ item.symbol, plan.source, item.instrument, item.timeframe,
                                       quote_of(plan.source, item.instrument) })
      local e = db.first(EMPTY_COUNT, item.series, B.ts[1], B.ts[B.n] + S - 1)
      quality[#quality + 1] = { symbol = item.symbol, instrument = item.instrument, bars = B.n, gaps = n - B.n,
                                dropped = B.dropped, empty_intervals = e.n, first = first, last = last }
    end
    progress(total * 0.25 + k * 0.75, total)
    time.sleep(0)
  end
  ok, err, code = w.put("instruments/all.txt", table.concat(all))
  if not ok then return nil, err, code end
  ok, err, code = w.put("instruments/map.csv", table.concat(map, "\n") .. "\n")
  if not ok then return nil, err, code end
  local fields = {}
  for _, f in ipairs(M.BASE_FIELDS) do fields[#fields + 1] = f end
  for _, f in ipairs(M.QUOTE_FIELDS) do if fields_seen[f] then fields[#fields + 1] = f end end
  local summary = {
    freq = freq, source = plan.source, instruments = exported, calendar = #cal,
    first = fmt_time(freq, cal[1]), last = fmt_time(freq, cal[#cal]), fields = fields,
    gaps = 0, dropped = 0, quality = quality,
  }
  for _, q in ipairs(quality) do summary.gaps, summary.dropped = summary.gaps + q.gaps, summary.dropped + q.dropped end
  local meta = json.encode({ format = "qlib", freq = freq, source = plan.source, fields = fields,
    prices = "in each instrument's quote currency (instruments/map.csv, column quote)",
    calendar = { entries = #cal, first = summary.first, last = summary.last },
    quality = quality, exported_at = time.format_iso(time.now()) })
  ok, err, code = w.put("candled.json", meta .. "\n")
  if not ok then return nil, err, code end
  ok, err, code = fs.sync(nxt, { filesystem = true })
  if not ok then return nil, err, code end
  ok, err, code = swap(out, nxt)
  if not ok then return nil, err, code end
  summary.files, summary.bytes, summary.written = w.files, w.bytes, w.written
  summary.linked, summary.appended, summary.rewritten, summary.created = w.linked, w.appended, w.rewritten, w.created
  summary.seconds = time.monotonic() - t0
  return summary
end

-- The export: see the top of this file. Returns the summary {freq, source, instruments, calendar,
-- first, last, fields, files, bytes (of the export), written (bytes written this time), linked,
-- appended, rewritten, created (files), gaps, dropped, quality = {{symbol, instrument, bars, gaps,
-- dropped, empty_intervals, first, last}, ...}, seconds}, or nil, message, code (EBUSY: another
-- export into the same root is running).
function M.export(opts)
  local t0 = time.monotonic()
  local out = opts.out
  if type(out) ~= "string" or out == "" then return fail("out: a folder is required") end
  out = out:gsub("/+$", "")
  if out == "" then return fail("out: the root folder cannot be an export") end
  local plan, perr, pcode = M.plan(opts)
  if not plan then return nil, perr, pcode end
  local created = not fs.stat(out)
  if created then                              -- with its parents (the lock file sits beside it)
    local ok, err, code = fs.mkdir(out)
    if not ok then return nil, "out: " .. err, code end
  end
  local lock, lerr, lcode = fs.lock(out .. ".candled-lock")
  if not lock then
    if lcode == "EAGAIN" then return fail(("out: another export into %s is running"):format(out), "EBUSY") end
    return nil, "out: " .. lerr, lcode
  end
  local ok, err, code = recover(out)
  if ok then ok, err, code = check_root(out, plan.freq) end
  local summary
  if ok then
    local nxt = out .. ".candled-next"
    summary, err, code = do_export(opts, plan, out, nxt, t0)
    if not summary then remove_tree(nxt) end
  end
  if not summary and created then fs.remove(out) end   -- an empty folder we made; never a full one
  lock:unlock()
  if not summary then return nil, err, code end
  return summary
end

return M
