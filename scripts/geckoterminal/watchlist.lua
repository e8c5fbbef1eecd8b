-- GeckoTerminal watchlist: the CSV file sources.geckoterminal.watchlist (default watchlist.csv
-- beside config.lua) decides which pools are collected. Columns, with a header row:
--   tokenSymbol,tokenName,chain,dex,poolAddress,networkAddress
-- (fields may be quoted; poolAddress is the raw, case-sensitive pool address). The daemon runs
-- this script when the file changes and hourly: added rows become active at once and their pools
-- are fetched with the multi-pool API (30 a call, with their tokens), then OHLCV, backfill and
-- trades are started; removed rows are deactivated and their data kept.
--
-- A file that does not parse as a watchlist is rejected as a whole and the list in force is kept
-- (a `watchlist_malformed` alert and the run's error name the file and line): an empty file, a
-- first line that is not the header, an unterminated quoted field, or rows of which not one is
-- valid. The header line alone is a valid, empty watchlist (every pool is deactivated). In a file
-- that parses, a malformed row is reported with its line number (log and alert) and skipped; the
-- other rows still apply. Long files are parsed, checked and written a piece at a time, yielding
-- in between (a 100k-row list never runs into runtime.task_slice).
--
-- `candled watchlist list|add|remove` edits the same file (commands.watchlist below): an atomic
-- replace, retried when the file changed between reading and writing, other lines kept as they are.
local alert = require "rt.alert"
local csv = require "rt.csv"
local db = require "rt.db"
local fs = require "rt.fs"
local gt = require "lib.geckoterminal"
local log = require "rt.log"
local sched = require "rt.sched"
local time = require "rt.time"

local M = { name = "geckoterminal.watchlist", source = gt.SOURCE, every = "1h" }

local HEADER = { "tokenSymbol", "tokenName", "chain", "dex", "poolAddress", "networkAddress" }
local REFRESH = 3000                    -- seconds: pool data older than this is fetched again
local CHAINS = { solana = { sol = true, solana = true } }
local PIECE = 2000                      -- rows parsed, checked or written between two yields

function M.watch(cfg) return { gt.watchlist_path(gt.options(cfg)) } end

local function trim(s) return (s:gsub("^%s+", ""):gsub("%s+$", "")) end

-- Give the loop back every PIECE steps (time.sleep(0) ends the task's slice and resumes it at once).
local function breathe(i) if i % PIECE == 0 then time.sleep(0) end end

-- The whole text as rows and their first lines, PIECE rows per csv.parse call -> rows, lines, or
-- nil, "file:line: why".
local function parse_csv(text, file)
  local rows, lines = {}, {}
  local from, line = 1, 1
  while from do
    local r, l, next_from, next_line = csv.parse(text, { max_rows = PIECE, from = from, line = line })
    if not r then
      local at, why = l:match("^csv: line (%d+): (.*)$")
      return nil, at and ("%s:%s: %s"):format(file, at, why) or ("%s: %s"):format(file, l)
    end
    for k = 1, #r do
      rows[#rows + 1], lines[#lines + 1] = r[k], l[k]
    end
    from, line = next_from, next_line
    if from then time.sleep(0) end
  end
  return rows, lines
end

-- Parse the watchlist text -> entries (by row order), problems ("file:line: why"), rows, lines;
-- or nil, { "file:line: why" } when the file is rejected as a whole (see the top of this file).
function M.parse(o, text, file)
  local rows, lines = parse_csv(text, file)
  if not rows then return nil, { lines } end
  if not rows[1] or not text:find("[^%s\239\187\191]") then   -- nothing but blanks (and a BOM)
    return nil, { ("%s:1: the file is empty; an empty watchlist is the header line alone (%s)")
                    :format(file, table.concat(HEADER, ",")) }
  end
  for i, h in ipairs(HEADER) do
    if not rows[1][i] or trim(rows[1][i]):lower() ~= h:lower() or #rows[1] ~= #HEADER then
      return nil, { ("%s:%d: not a watchlist: expected the header %s"):format(file, lines[1], table.concat(HEADER, ",")) }
    end
  end
  local entries, problems, seen = {}, {}, {}
  local chains = CHAINS[o.network]
  for i = 2, #rows do
    local r, line = rows[i], lines[i]
    local function bad(why) problems[#problems + 1] = ("%s:%d: %s"):format(file, line, why) end
    for k, v in ipairs(r) do r[k] = trim(v) end
    if #r ~= #HEADER then
      bad(("%d fields, expected %d (%s)"):format(#r, #HEADER, table.concat(HEADER, ",")))
    else
      local addr, why = gt.address_of(o, r[5])
      if not addr then bad("poolAddress " .. why)
      elseif chains and not chains[r[3]:lower()] then
        bad(("chain '%s' is not the configured network %s"):format(r[3], o.network))
      elseif seen[addr] then bad(("pool %s is already on line %d"):format(addr, seen[addr]))
      else
        seen[addr] = line
        entries[#entries + 1] = { pool = gt.pool_id(o, addr), address = addr, symbol = r[1], name = r[2],
                                  chain = r[3], dex = r[4], network_address = r[6], line = line }
      end
    end
    breathe(i)
  end
  if #entries == 0 and #problems > 0 then         -- rows, and not one of them a watchlist row
    local line, why = problems[1]:sub(#file + 2):match("^(%d+): (.*)$")
    return nil, { ("%s:%s: not a watchlist: none of its %d row(s) is valid (the first: %s)")
                    :format(file, line, #problems, why) }
  end
  return entries, problems, rows, lines
end

local COLUMNS = { "symbol", "name", "chain", "dex", "network_address", "line" }

-- Make gt_watchlist match the entries -> added pool ids, removed pool ids. Only rows that changed
-- are written, PIECE a transaction, yielding in between: while a long list is written, readers may
-- see part of the change (never a rejected file: that is refused before); a run cut short leaves
-- the rest to the next run, which compares again.
local function sync(entries, now)
  local active, after = {}, ""
  repeat                                          -- the list in force, a page at a time
    local page = db.query([[SELECT pool, symbol, name, chain, dex, network_address, line FROM gt_watchlist
        WHERE active = 1 AND pool > ? ORDER BY pool LIMIT ?]], after, PIECE)
    for _, r in ipairs(page) do active[r.pool] = r end
    if #page > 0 then after = page[#page].pool end
    if #page == PIECE then time.sleep(0) end
  until #page < PIECE
  local added, removed, listed, writes = {}, {}, {}, {}
  for i, e in ipairs(entries) do
    listed[e.pool] = true
    local cur = active[e.pool]
    if not cur then added[#added + 1] = e.pool end
    local same = cur ~= nil
    for _, c in ipairs(COLUMNS) do
      if same and cur[c] ~= e[c] then same = false end
    end
    if not same then writes[#writes + 1] = e end
    breathe(i)
  end
  for pool in pairs(active) do
    if not listed[pool] then removed[#removed + 1] = pool end
  end
  table.sort(removed)
  for i = 1, #writes, PIECE do
    db.tx(function()
      for j = i, math.min(i + PIECE - 1, #writes) do
        local e = writes[j]
        assert(db.exec([[INSERT INTO gt_watchlist (pool, symbol, name, chain, dex, network_address,
              active, line, added, removed, updated) VALUES (?, ?, ?, ?, ?, ?, 1, ?, ?, NULL, ?)
            ON CONFLICT (pool) DO UPDATE SET symbol = excluded.symbol, name = excluded.name,
              chain = excluded.chain, dex = excluded.dex, network_address = excluded.network_address,
              line = excluded.line, updated = excluded.updated, removed = NULL,
              added = CASE WHEN active = 1 THEN added ELSE excluded.added END, active = 1]],
          e.pool, e.symbol, e.name, e.chain, e.dex, e.network_address, e.line, now, now))
      end
    end)
    time.sleep(0)
  end
  for i = 1, #removed, PIECE do
    db.tx(function()
      for j = i, math.min(i + PIECE - 1, #removed) do
        assert(db.exec("UPDATE gt_watchlist SET active = 0, removed = ?, updated = ? WHERE pool = ?", now, now,
                       removed[j]))
      end
    end)
    time.sleep(0)
  end
  return added, removed
end

-- Fetch the pools that are new or stale, 30 a call (the due ones read PIECE at a time first: a
-- long list is never read in one piece). Pools the API does not return are gone.
local function refresh(o, now)
  local due, after = {}, -1
  repeat
    local page = db.query([[SELECT w.pool, w.line FROM gt_watchlist w LEFT JOIN gt_pools p USING (pool)
        WHERE w.active = 1 AND (p.last_seen IS NULL OR p.last_seen < ? OR p.status = 'gone') AND w.line > ?
        ORDER BY w.line LIMIT ?]], now - REFRESH, after, PIECE)
    for _, r in ipairs(page) do due[#due + 1] = r.pool end
    if #page > 0 then after = page[#page].line end
    if #page == PIECE then time.sleep(0) end
  until #page < PIECE
  local fetched = 0
  for i = 1, #due, gt.MAX_MULTI do
    local batch, addrs = {}, {}
    for j = i, math.min(i + gt.MAX_MULTI - 1, #due) do
      batch[#batch + 1] = due[j]
      addrs[#addrs + 1] = assert(gt.address_of(o, due[j]))
    end
    local path = ("/networks/%s/pools/multi/%s"):format(o.network, table.concat(addrs, ","))
    local doc, err, code = gt.get(o, path, { include = "base_token,quote_token,dex" }, "realtime")
    if not doc then return nil, err, code end
    local got = {}
    for _, id in ipairs(gt.store_pools(o, doc, now)) do got[id] = true end
    for _, pool in ipairs(batch) do
      if got[pool] then fetched = fetched + 1
      else gt.pool_gone(o, pool, "not returned by the multi-pool API") end
    end
  end
  return fetched
end

M.check = gt.options                     -- a bad sources.geckoterminal option stops the daemon

function M.run(ctx)
  local o = gt.start(ctx)
  local file = gt.watchlist_path(o)
  local text, err, code = fs.read(file)
  if not text then
    local active = db.first("SELECT count(*) AS n FROM gt_watchlist WHERE active = 1").n
    if code == "ENOENT" and active == 0 then return true end        -- no watchlist yet: nothing to do
    -- a file that vanished or cannot be read: keep the current watchlist, say so
    alert.raise("watchlist_unreadable", file, "the watchlist cannot be read: " .. err)
    return nil, err, code
  end
  alert.resolve("watchlist_unreadable", file)
  local entries, problems = M.parse(o, text, file)
  if not entries then                             -- rejected as a whole: the list in force stays
    local why = problems[1] .. " (the file is not used: the watchlist in force is kept)"
    alert.raise("watchlist_malformed", file, why)
    return nil, why
  end
  for _, p in ipairs(problems) do log.warn("watchlist row skipped", { problem = p }) end
  if #problems > 0 then
    local shown = table.concat(problems, "; ", 1, math.min(#problems, 10))
    alert.raise("watchlist_malformed", file, ("%d row(s) skipped: %s%s"):format(#problems, shown,
                                                                                 #problems > 10 and "; ..." or ""))
  else
    alert.resolve("watchlist_malformed", file)
  end
  local now = os.time()
  local added, removed = sync(entries, now)
  if #added > 0 or #removed > 0 then
    log.info("watchlist changed", { added = #added, removed = #removed, active = #entries })
  end
  local fetched, ferr, fcode = refresh(o, now)
  if not fetched then return nil, ferr, fcode end
  if #added > 0 then
    for _, name in ipairs { "geckoterminal.ohlcv", "geckoterminal.backfill", "geckoterminal.trades" } do
      sched.trigger(name)
    end
  end
  ctx.state.active, ctx.state.added, ctx.state.removed = #entries, #added, #removed
  return true
end

-- ---- candled watchlist ---------------------------------------------------------------------------

local USAGE = [[usage: candled watchlist list
       candled watchlist add <pool address> [--symbol S] [--name N] [--dex D] [--network-address MINT] [--chain C]
       candled watchlist remove <pool address>]]

local function usage(msg) error({ usage = "watchlist " .. msg }, 0) end

local function split_lines(text)
  local out = {}
  for line in text:gmatch("[^\n]*\n?") do if line ~= "" then out[#out + 1] = line end end
  return out
end

-- What the database (or one API call) knows of a pool, for the columns `add` was not given.
local function describe(o, addr)
  local pool = gt.pool_id(o, addr)
  local function known()
    return db.first([[SELECT t.symbol, t.name, t.address AS mint, coalesce(d.name, p.dex) AS dex
        FROM gt_pools p LEFT JOIN gt_tokens t ON t.token = p.base_token
        LEFT JOIN gt_dexes d ON d.network = p.network AND d.dex = p.dex WHERE p.pool = ? AND p.status = 'active']], pool)
  end
  local row = known()
  if not row then
    local doc, err, code = gt.get(o, ("/networks/%s/pools/%s"):format(o.network, addr),
                                  { include = "base_token,quote_token,dex" }, "realtime")
    if not doc then
      if code == "NOT_FOUND" then return nil, ("pool %s is not known to GeckoTerminal"):format(pool) end
      return nil, err
    end
    gt.store_pools(o, doc)
    row = known()
  end
  return row or {}
end

-- Read the file, let `edit(text, entries, rows, lines) -> new text | nil, error` change it, and
-- write it back atomically unless it changed in between (then try again).
local function edit_file(o, file, edit)
  for _ = 1, 5 do
    local text, err, code = fs.read(file)
    if not text then
      if code ~= "ENOENT" then return nil, err end
      text = nil
    end
    local entries, problems, rows, lines = {}, {}, {}, {}
    local blank = not (text and text:find("%S"))    -- nothing yet: `add` writes the header
    if not blank then entries, problems, rows, lines = M.parse(o, text, file) end
    if not entries then return nil, problems[1] end
    local new, why = edit(not blank and text or nil, entries, rows, lines)
    if not new then return nil, why end
    if fs.read(file) == text then
      local ok, werr = fs.write(file, new)
      if not ok then return nil, werr end
      return true
    end
  end
  return nil, file .. ": keeps changing while being edited; try again"
end

M.commands = {}

function M.commands.watchlist(ctx, args)
  local o = gt.start(ctx)
  local file = gt.watchlist_path(o)
  local sub = args[1]
  if sub == "list" then
    local text, err, code = fs.read(file)
    if not text and code ~= "ENOENT" then error("watchlist: " .. err, 0) end
    local entries, problems = M.parse(o, text or "", file)
    if not entries then error("watchlist: " .. problems[1], 0) end
    ctx.out(("%-5s %-12s %-10s %-46s %s\n"):format("LINE", "SYMBOL", "DEX", "POOL", "NAME"))
    for _, e in ipairs(entries) do
      ctx.out(("%-5d %-12s %-10s %-46s %s\n"):format(e.line, e.symbol, e.dex, e.pool, e.name))
    end
    for _, p in ipairs(problems) do ctx.err("skipped: " .. p .. "\n") end
    ctx.out(("%d pool(s) in %s\n"):format(#entries, file))
    return 0
  end
  if sub ~= "add" and sub ~= "remove" then
    usage((sub and ("%s: unknown subcommand\n"):format(sub) or "needs a subcommand\n") .. USAGE)
  end
  local opts, target = {}, nil
  local i = 2
  while i <= #args do
    local a = args[i]
    local flag = a:match("^%-%-([%w-]+)$")
    if flag and flag ~= "source" and sub == "add" and args[i + 1] then
      if not ({ symbol = 1, name = 1, dex = 1, ["network-address"] = 1, chain = 1, pool = 1 })[flag] then
        usage(("add: unknown option --%s\n%s"):format(flag, USAGE))
      end
      opts[flag], i = args[i + 1], i + 2
    elseif flag == "source" or flag == "pool" then
      if flag == "pool" then target = args[i + 1] end
      i = i + 2
    elseif not flag and not target then target, i = a, i + 1
    else usage(("%s: unexpected argument '%s'\n%s"):format(sub, a, USAGE)) end
  end
  target = target or opts.pool
  if not target then usage(("%s: a pool address is required\n%s"):format(sub, USAGE)) end
  local addr, why = gt.address_of(o, target)
  if not addr then usage(("%s: %s"):format(sub, why)) end
  local ok, err
  if sub == "add" then
    local known, derr = nil, nil
    if not (opts.symbol and opts.name and opts.dex and opts["network-address"]) then
      known, derr = describe(o, addr)
      if not known then error("watchlist add: " .. derr, 0) end
    end
    known = known or {}
    local fields = { opts.symbol or known.symbol or "", opts.name or known.name or "",
                     opts.chain or (o.network == "solana" and "SOL" or o.network),
                     opts.dex or known.dex or "", addr, opts["network-address"] or known.mint or "" }
    ok, err = edit_file(o, file, function(text, entries)
      for _, e in ipairs(entries) do
        if e.address == addr then return nil, ("%s is already on line %d of %s"):format(addr, e.line, file) end
      end
      local nl = text and text:find("\r\n", 1, true) and "\r\n" or "\n"
      local head = text and text ~= "" and text or (table.concat(HEADER, ",") .. nl)
      if not head:match("\n$") then head = head .. nl end
      return head .. csv.format_row(fields) .. nl
    end)
    if ok then ctx.out(("added %s (%s) to %s\n"):format(gt.pool_id(o, addr), fields[1], file)) end
  else
    ok, err = edit_file(o, file, function(text, entries, rows, lines)
      local pieces = split_lines(text or "")
      for _, e in ipairs(entries) do
        if e.address == addr then
          -- the row's text runs from its line to the line before the next row
          local stop = #pieces
          for r = 1, #rows do
            if lines[r] > e.line then stop = lines[r] - 1 break end
          end
          for l = stop, e.line, -1 do table.remove(pieces, l) end
          return table.concat(pieces)
        end
      end
      return nil, ("%s is not in %s"):format(addr, file)
    end)
    if ok then ctx.out(("removed %s from %s (its data is kept)\n"):format(gt.pool_id(o, addr), file)) end
  end
  if not ok then error(("watchlist %s: %s"):format(sub, err), 0) end
  return 0
end

return M
