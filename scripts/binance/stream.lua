-- Binance live 1m klines over WebSocket (rt.ws), for spot, USDT-M and COIN-M.
--
-- For each market whose source has `ws_enabled = true`: every selected symbol (lib/binance.lua's
-- selection: the `symbols` list and the `quote_assets`, in `statuses`, futures also by contract
-- type) gets a `<symbol>@kline_1m` stream; streams are grouped into combined-stream connections of
-- at most `ws_streams_per_connection` (Binance's limit: 1024) at `ws_url` + "/stream?streams=..."
-- (the USDT-M ws_url ends with the /market route): the first `ws_url_streams` in the URL, the others
-- SUBSCRIBEd in batches of `ws_subscribe_batch`, one request every `ws_subscribe_pace` seconds. Only closed candles (k.x = true) are stored, in
-- `candles` as the REST scripts store them (COIN-M: volume = base volume, quote_volume = contracts x
-- contract size).
--
-- Keeping the series whole:
--   - reconnect after a close or failure with full-jitter backoff (ws_backoff_base .. ws_backoff_cap);
--   - a watchdog: a connection with no message for 2 x ws_cadence, or a stream of it without one for
--     2 x ws_cadence, is closed and opened again (ws_cadence: Binance's update speed, 2 s spot and
--     250 ms futures);
--   - a connection older than ws_max_age (default 23 h 50 min) is replaced before Binance's 24 h cut:
--     the next one is opened and subscribed first, then the old one's buffered messages are taken
--     and it is closed (make before break: nothing to fetch over REST);
--   - after every (re)connect, the first message of each stream tells the minute the stream is at:
--     the minutes between the newest stored bar and that one are fetched over REST (binance.fill,
--     through the market's budget), as are minutes skipped between two closed bars of a stream;
--   - server pings are answered by the runtime; spot's `serverShutdown` event reconnects at once.
-- The selection is read again every ws_reselect seconds; a changed set of streams reconnects.
local B = require "lib.binance"
local db = require "rt.db"
local json = require "rt.json"
local kit = require "lib.source"
local log = require "rt.log"
local series = require "lib.series"
local task = require "rt.task"
local time = require "rt.time"
local ws = require "rt.ws"

local C = kit.check
local STEP = 60

local function WS_SPEC(market)
  local futures = market ~= "spot"
  return {
    ws_enabled = { false, C.boolean },
    ws_streams_per_connection = { 1024, C.number(1, 1024) },
    ws_cadence = { futures and 0.25 or 2, C.number(0.01, 60) },
    ws_backoff_base = { 1, C.number(0.01, 600) },
    ws_backoff_cap = { 60, C.number(0.01, 3600) },
    ws_max_age = { 85800, C.number(1, 86400) },
    ws_connect_timeout = { 10, C.number(0.1, 300) },
    ws_reselect = { 300, C.number(1, 86400) },
    ws_fill_concurrency = { 4, C.number(1, 64) },
    ws_queue = { 16384, C.number(16, 1e6) },
    ws_url_streams = { 50, C.number(1, 1024) },
    ws_subscribe_batch = { 200, C.number(1, 1024) },
    ws_subscribe_pace = { futures and 0.125 or 0.25, C.number(0, 60) },
  }
end

-- The market's options (lib/binance.lua) with the ws_* keys checked and defaulted.
local function options(market, cfg)
  local o = B.options(market, cfg)
  local mine = {}
  for k, v in pairs(o) do
    if type(k) == "string" and (k:match("^ws_") or k:match("^stream_")) and k ~= "ws_url" then
      mine[k], o[k] = v, nil
    end
  end
  for k, v in pairs(kit.options(o.source, WS_SPEC(market), mine)) do o[k] = v end
  o.ws_url = o.ws_url:gsub("/+$", "")
  return o
end

-- Stored row of a kline event's k (the REST scripts' columns).
local function row_of(o, k)
  local vol, qv = tonumber(k.v), tonumber(k.q)
  if o.market == "coinm" then
    local size = o.contract_size and o.contract_size[k.s]
    vol, qv = tonumber(k.q), size and tonumber(k.v) * size or nil
  end
  return { o.source, k.s, "1m", k.t // 1000, tonumber(k.o), tonumber(k.h), tonumber(k.l), tonumber(k.c), vol, qv,
           math.tointeger(k.n) }
end

local function jitter(o, attempt)
  return math.random() * math.min(o.ws_backoff_cap, o.ws_backoff_base * 2 ^ attempt)
end

-- ---- REST fill of missed minutes ----------------------------------------------------------------

-- A queue of (symbol, from_s, to_s) worked by ws_fill_concurrency tasks of the connection.
local function filler(o, stats)
  local F = { queue = {}, workers = {} }
  local function work()
    while true do
      local job = table.remove(F.queue, 1)
      if not job then
        time.sleep(0.2)
      else
        local sym, from, to = job[1], job[2], job[3]
        local wait = to + STEP + o.clock_skew + 0.5 - time.now()      -- the last minute must have closed
        if wait > 0 then time.sleep(wait) end
        local n, err, code = B.fill(o.market, sym, "1m", from * 1000, to * 1000, o)
        if n then
          stats.filled = stats.filled + n
        else
          log.warn("stream fill failed", { source = o.source, symbol = sym, error = err, code = code })
          if code == "BANNED" or code == "BREAKER_OPEN" then time.sleep(5) end
          F.queue[#F.queue + 1] = job                                  -- again, after the others
          time.sleep(1)
        end
      end
    end
  end
  function F.add(sym, from, to)
    if to >= from then F.queue[#F.queue + 1] = { sym, from, to } end
  end
  function F.start()
    for i = 1, o.ws_fill_concurrency do F.workers[i] = task.spawn(work) end
  end
  function F.stop()
    for _, h in ipairs(F.workers) do h:cancel() end
    F.workers = {}
  end
  return F
end

-- ---- one combined-stream connection -----------------------------------------------------------

-- Run the streams `names` (lowercase stream name -> symbol) until cancelled: connect, receive, store,
-- reconnect. `stats` is shared with the market's supervisor.
local function connection(o, names, stats)
  local list = {}
  for name in pairs(names) do list[#list + 1] = name end
  table.sort(list)
  -- A URL with 1024 stream names is ~25 KB: the first ws_url_streams go in the URL, the rest are
  -- subscribed in batches, paced under Binance's limit on incoming messages (5/s spot, 10/s futures).
  local url = o.ws_url .. "/stream?streams=" .. table.concat(list, "/", 1, math.min(#list, o.ws_url_streams))
  local F <close> = setmetatable(filler(o, stats), { __close = function(f) f.stop() end })
  F.start()

  -- One open connection: its per-stream state and the task subscribing the streams past the URL.
  -- `gap_check`: the first message of each stream fetches the minutes since the newest stored bar
  -- (not after a handover, where the old connection covered them).
  local function attach(c, gap_check)
    local L = { c = c, opened = time.monotonic(), seen = {}, fresh = {}, last_final = {}, pending = {} }
    for i, name in ipairs(list) do
      L.seen[name] = i <= o.ws_url_streams and L.opened or math.huge  -- subscribed later: from then
      L.fresh[name] = gap_check or nil
    end
    L.last = L.opened
    if #list > o.ws_url_streams then
      L.sub = task.spawn(function()
        local id, i = 0, o.ws_url_streams + 1
        while i <= #list do
          local batch = {}
          for j = i, math.min(#list, i + o.ws_subscribe_batch - 1) do batch[#batch + 1] = list[j] end
          id = id + 1
          time.sleep(o.ws_subscribe_pace)
          if not c:send(json.encode({ method = "SUBSCRIBE", params = batch, id = id })) then return end
          local now = time.monotonic()
          for _, name in ipairs(batch) do L.seen[name] = now end     -- the watchdog starts now
          i = i + #batch
        end
      end)
    end
    return L
  end
  local function detach(L)
    if not L then return end
    if L.sub then L.sub:cancel() end
    L.c:close()
  end
  local function flush(L)
    if #L.pending > 0 then
      local rows = L.pending
      L.pending = {}
      db.tx(function() kit.store(rows) end)
      stats.stored = stats.stored + #rows
    end
  end
  -- One message of L; returns why the connection must go, or nil.
  local function handle(L, msg, now)
    L.last = now
    local ok, m = pcall(json.decode, msg)
    local d = ok and type(m) == "table" and m.data
    if type(d) == "table" and d.e == "kline" and type(d.k) == "table" and names[m.stream] then
      local k, name = d.k, m.stream
      stats.messages = stats.messages + 1
      local t = math.tointeger(k.t) // 1000
      if L.fresh[name] then                                   -- the stream's first message: the gap
        L.fresh[name] = nil
        local newest = series.newest(o.source, k.s, "1m")
        if newest then F.add(k.s, newest + STEP, t - STEP) end
      end
      L.seen[name] = now
      if k.x == true then
        local prev = L.last_final[name]
        if prev and t > prev + STEP then F.add(k.s, prev + STEP, t - STEP) end   -- a close went missing
        L.last_final[name] = t
        L.pending[#L.pending + 1] = row_of(o, k)
      end
    elseif type(d) == "table" and d.e == "serverShutdown" then
      return "serverShutdown"
    elseif ok and type(m) == "table" and m.code ~= nil then        -- a refused request
      log.warn("stream request refused", { source = o.source, code = m.code, error = m.msg, id = m.id })
    end
    if #L.pending >= 512 or L.c:stats().queued == 0 then flush(L) end
  end
  -- Receive on L until it must go: returns why.
  local function serve(L)
    local next_scan = L.opened + o.ws_cadence
    while true do
      local msg, err, code = L.c:receive(2 * o.ws_cadence)
      local now = time.monotonic()
      if not msg then return code == "TIMEOUT" and "silent" or (err or "closed") end
      local why = handle(L, msg, now)
      if why then return why end
      if now >= next_scan then                                 -- the per-stream watchdog
        next_scan = now + o.ws_cadence
        for name, at in pairs(L.seen) do
          if now - at > 2 * o.ws_cadence then return "stream " .. name .. " silent" end
        end
        if now - L.opened >= o.ws_max_age then return "max_age" end
      end
    end
  end
  -- Before the 24 h cut: open the next connection while the old one still receives (its messages
  -- wait in its queue), let the new one subscribe everything and deliver, then take what the old
  -- one holds and close it. Every bar that closed is on one of the two: no REST call needed.
  local function handover(old)
    local c2 = ws.connect(url, { timeout = o.ws_connect_timeout, queue = o.ws_queue })
    if not c2 then return nil end
    local L = attach(c2, false)
    local function subscribing()
      local st = L.sub and L.sub:status()
      return st == "ready" or st == "running" or st == "parked"
    end
    local settle = time.monotonic() + 2 * o.ws_cadence           -- every stream has spoken by then
    while (subscribing() or time.monotonic() < settle) and c2:state() ~= "closed" do
      local msg = c2:receive(o.ws_cadence)
      if msg then handle(L, msg, time.monotonic()) end
    end
    repeat                                                     -- what the old connection holds
      local msg = old.c:receive(0)
      if msg then handle(old, msg, time.monotonic()) end
    until not msg
    flush(old)
    if c2:state() == "closed" then
      detach(L)
      return nil
    end
    return L
  end

  local cur = {}
  local guard <close> = setmetatable({}, { __close = function() detach(cur.L) end })
  local attempt = 0
  while true do
    if not cur.L then
      local conn, err, code = ws.connect(url, { timeout = o.ws_connect_timeout, queue = o.ws_queue })
      if not conn then
        stats.failures = stats.failures + 1
        local d = jitter(o, attempt)
        log.warn("stream connect failed", { source = o.source, error = err, code = code, retry_in = ("%.2f"):format(d) })
        attempt = attempt + 1
        time.sleep(d)
      else
        stats.connects = stats.connects + 1
        cur.L = attach(conn, true)
      end
    else
      local L = cur.L
      local why = serve(L)
      stats.reconnects = stats.reconnects + 1
      local nxt = why == "max_age" and handover(L)
      flush(L)
      detach(L)
      cur.L = nil
      if nxt then
        stats.proactive = stats.proactive + 1
        stats.connects = stats.connects + 1
        cur.L = nxt
        attempt = 0
        log.info("stream replaced before the 24 h cut", { source = o.source, streams = #list })
      else
        if why == "silent" or why:match("^stream ") then stats.silent = stats.silent + 1 end
        log.info("stream reconnecting", { source = o.source, why = why, streams = #list })
        if L.last - L.opened > 10 * o.ws_cadence then attempt = 0 end
        local d = jitter(o, attempt)
        attempt = attempt + 1
        if d > 0 then time.sleep(d) end
      end
    end
  end
end

-- ---- a market -----------------------------------------------------------------------------------

local function selection(o)
  if not B.refreshed(o) then
    local ok, err, code = B.refresh(o)
    if not ok then return nil, err, code end
  end
  local rows = B.selected(o)
  o.contract_size = {}
  for _, r in ipairs(db.query("SELECT symbol, contract_size FROM binance_symbols WHERE market = ?", o.market)) do
    o.contract_size[r.symbol] = r.contract_size
  end
  local names, n = {}, 0
  for _, r in ipairs(rows) do names[r.symbol:lower() .. "@kline_1m"], n = r.symbol, n + 1 end
  return names, n
end

local function key_of(names)
  local l = {}
  for k in pairs(names) do l[#l + 1] = k end
  table.sort(l)
  return table.concat(l, "/")
end

local function market_loop(market, stats)
  local o = options(market)
  local ok, err, code = B.budget(o)
  if not ok then return nil, err, code end
  local handles, current = {}, nil
  local function stop()
    for _, h in ipairs(handles) do h:cancel() end
    handles = {}
  end
  local guard <close> = setmetatable({}, { __close = stop })
  while true do
    local names, n = selection(o)
    if not names then
      log.warn("stream selection failed", { source = o.source, error = n })
    else
      local key = key_of(names)
      if key ~= current then
        stop()
        current = key
        local chunk, size = {}, 0
        local list = {}
        for name in pairs(names) do list[#list + 1] = name end
        table.sort(list)
        for i, name in ipairs(list) do
          chunk[name], size = names[name], size + 1
          if size == o.ws_streams_per_connection or i == #list then
            local part = chunk
            handles[#handles + 1] = task.spawn(function() return connection(o, part, stats) end)
            chunk, size = {}, 0
          end
        end
        log.info("streams", { source = o.source, streams = n, connections = #handles })
      end
    end
    time.sleep(o.ws_reselect)
  end
end

local M = { name = "binance.stream", every = "10s" }

-- The statistics of the running streams, by market (for the REPL and the tests).
M.stats = {}

function M.check()
  for market in pairs(B.MARKETS) do options(market) end
end

function M.run(ctx)
  local work = {}
  for _, market in ipairs({ "spot", "usdm", "coinm" }) do
    local o = options(market)
    if o.enabled and o.ws_enabled and o.configured then
      local stats = { connects = 0, reconnects = 0, failures = 0, messages = 0, stored = 0, filled = 0,
                      silent = 0, proactive = 0 }
      M.stats[market] = stats
      work[#work + 1] = function() return market_loop(market, stats) end
    end
  end
  if #work == 0 then return true end
  task.all(table.unpack(work))
  return true
end

return M
