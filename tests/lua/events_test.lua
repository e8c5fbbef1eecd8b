-- rt.events: publish/subscribe, commit order, staging in transactions, candle/alert events from the
-- runtime, bounded queues and their overflow policy.
local T = require "testlib"
local events = require "rt.events"
local db = require "rt.db"
local alert = require "rt.alert"
local time = require "rt.time"

local KEYS = { keys = { "source", "instrument", "timeframe", "ts" } }

-- Wait until cond() or fail after `limit` seconds.
local function until_(cond, limit)
  local t0 = time.now()
  while not cond() do
    if time.now() - t0 > (limit or 2) then error("timed out", 2) end
    time.sleep(0.005)
  end
end

local function bar(ts, close, inst)
  return { source = "evtest", instrument = inst or "X", timeframe = "1m", ts = ts, open = close, high = close,
           low = close, close = close, volume = 1 }
end

T.test("published events reach a subscriber in order, one task per subscriber", function()
  local got = {}
  local sub <close> = events.subscribe({ kind = "tick" }, function(ev) got[#got + 1] = ev end, { name = "t1" })
  for i = 1, 5 do events.publish("tick", { n = i, tag = "x", nested = { a = i * 2 } }) end
  events.publish("other", { n = 99 })
  until_(function() return #got == 5 end)
  for i = 1, 5 do
    T.eq(got[i].n, i)
    T.eq(got[i].kind, "tick")
    T.eq(got[i].nested, { a = i * 2 })
    if i > 1 then T.ok(got[i].seq > got[i - 1].seq, "seq grows") end
  end
  T.eq(sub.name, "t1")
  local st = sub:stats()
  T.eq({ st.delivered, st.dropped, st.queued, st.capacity }, { 5, 0, 0, 1024 })
end)

T.test("field filters and several kinds", function()
  local got = {}
  local sub <close> = events.subscribe({ kind = { "a", "b" }, who = { "me", "you" } },
                                       function(ev) got[#got + 1] = ev.kind .. ":" .. ev.who end)
  events.publish("a", { who = "me" })
  events.publish("a", { who = "them" })
  events.publish("c", { who = "me" })
  events.publish("b", { who = "you" })
  until_(function() return #got == 2 end)
  time.sleep(0.02)
  T.eq(got, { "a:me", "b:you" })
end)

T.test("inside a transaction: delivered after the commit, dropped on rollback", function()
  local got = {}
  local sub <close> = events.subscribe({ kind = "txk" }, function(ev) got[#got + 1] = ev.n end)
  db.tx(function()
    events.publish("txk", { n = 1 })
    pcall(db.tx, function()
      events.publish("txk", { n = 2 })
      error("inner fails")
    end)
    events.publish("txk", { n = 3 })
  end)
  T.eq(got, {}, "nothing delivered during the transaction")
  pcall(db.tx, function()
    events.publish("txk", { n = 4 })
    error("outer fails")
  end)
  until_(function() return #got >= 2 end)
  time.sleep(0.02)
  T.eq(got, { 1, 3 })
end)

T.test("candle: closed bars stored or changed; identical rows and forming bars raise nothing", function()
  local got = {}
  local sub <close> = events.subscribe({ kind = "candle", source = "evtest" }, function(ev) got[#got + 1] = ev end)
  local now = os.time()
  local t0 = now - now % 60 - 600
  db.upsert("candles", { bar(t0, 1), bar(t0 + 60, 2) }, KEYS)
  db.upsert("candles", { bar(t0, 1), bar(t0 + 60, 2.5) }, KEYS)     -- one identical, one changed
  local forming = now - now % 60
  db.upsert("candles", { bar(forming, 7) }, KEYS)                   -- still forming
  until_(function() return #got == 3 end)
  time.sleep(0.02)
  T.eq(#got, 3)
  T.eq({ got[1].source, got[1].instrument, got[1].timeframe }, { "evtest", "X", "1m" })
  T.eq({ got[1].bar.ts, got[1].bar.close }, { t0, 1 })
  T.eq({ got[2].bar.ts, got[2].bar.close }, { t0 + 60, 2 })
  T.eq({ got[3].bar.ts, got[3].bar.close }, { t0 + 60, 2.5 })
  T.eq(got[1].bar.volume, 1)
end)

T.test("trade: a stored or changed trade; an identical one raises nothing", function()
  local got = {}
  local sub <close> = events.subscribe({ kind = "trade", source = "evtest" }, function(ev) got[#got + 1] = ev end)
  local function trade(id, price)
    return { source = "evtest", instrument = "P", trade_id = id, ts = 1700000000, price = price, amount = 2, side = "buy" }
  end
  local keys = { keys = { "source", "instrument", "trade_id" } }
  db.upsert("trades", { trade("t1", 10), trade("t2", 11) }, keys)
  db.upsert("trades", { trade("t1", 10), trade("t2", 12) }, keys)
  until_(function() return #got == 3 end)
  time.sleep(0.02)
  T.eq(#got, 3)
  T.eq({ got[1].trade_id, got[1].price, got[1].instrument, got[1].side }, { "t1", 10, "P", "buy" })
  T.eq({ got[3].trade_id, got[3].price }, { "t2", 12 })
end)

T.test("alert: opened and resolved", function()
  local got = {}
  local sub <close> = events.subscribe({ kind = "alert", alert = "evtest_kind" },
                                       function(ev) got[#got + 1] = ev.event .. ":" .. ev.subject end)
  alert.raise("evtest_kind", "s1", "something", "warn")
  alert.raise("evtest_kind", "s1", "again", "warn")    -- refreshed: no event
  alert.resolve("evtest_kind", "s1")
  until_(function() return #got == 2 end)
  T.eq(got, { "opened:s1", "resolved:s1" })
end)

T.test("overflow: a full queue drops, counts, tells the subscriber and alerts; never blocks", function()
  local got, alerts = {}, {}
  local asub <close> = events.subscribe({ kind = "alert", alert = "events_overflow" },
                                        function(ev) alerts[#alerts + 1] = ev.event end)
  local sub <close> = events.subscribe({ kind = "burst" }, function(ev) got[#got + 1] = ev end,
                                       { queue = 4, name = "slowpoke" })
  for i = 1, 10 do events.publish("burst", { n = i }) end    -- no yield: the queue takes 4
  T.eq(sub:stats().dropped, 6)
  T.eq(sub:stats().queued, 4)
  until_(function() return #got == 5 end)
  T.eq({ got[1].n, got[2].n, got[3].n, got[4].n }, { 1, 2, 3, 4 })
  T.eq(got[5].kind, "overflow")
  T.eq(got[5].dropped, 6)
  T.eq(got[5].last_seq - got[5].first_seq, 5)
  until_(function() return #alerts == 2 end)
  T.eq(alerts, { "opened", "resolved" })
  events.publish("burst", { n = 11 })
  until_(function() return #got == 6 end)
  T.eq(got[6].n, 11, "delivery goes on after the overflow")
end)

T.test("a handler that raises ends its subscription; publishing goes on", function()
  local n = 0
  local sub = events.subscribe({ kind = "boom" }, function() n = n + 1; error("handler failed") end)
  events.publish("boom", {})
  until_(function() return sub:stats() == nil end)
  events.publish("boom", {})
  time.sleep(0.02)
  T.eq(n, 1)
end)

T.test("misuse raises", function()
  T.raises(function() events.publish("candle", {}) end, "raised by the runtime only")
  T.raises(function() events.publish("x", { f = function() end }) end, "cannot be sent")
  T.raises(function() events.subscribe({ kind = 3 }, print) end, "filter.kind")
  T.raises(function() events.subscribe({}, print, { queue = 0 }) end, "queue")
  T.raises(function() events.subscribe({}, print, { bogus = 1 }) end, "bogus")
end)

T.test("a closed subscription's task ends", function()
  local sub = events.subscribe({ kind = "nothing" }, print)
  T.eq(#events.stats() > 0, true)
  sub:close()
  until_(function() return sub:stats() == nil end)
end)

T.run()
