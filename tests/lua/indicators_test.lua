-- lib/indicators.lua: windows, SMA, EMA, RSI (Wilder), ATR (Wilder) and crossings against values
-- computed by hand.
local here = debug.getinfo(1, "S").source:match("^@(.*)/tests/lua/[^/]*$")
package.path = here .. "/scripts/?.lua;" .. package.path
local T = require "testlib"
local I = require "lib.indicators"

T.test("window: rolling values, sum and the value that falls out", function()
  local w = I.window(3)
  T.eq({ I.window_push(w, 1), I.window_push(w, 2), I.window_push(w, 3) }, {})
  T.eq(I.window_full(w), true)
  T.eq(I.window_push(w, 4), 1)
  T.eq({ I.window_get(w, 1), I.window_get(w, 2), I.window_get(w, 3), I.window_get(w, 4) }, { 4, 3, 2 })
  T.eq(w.sum, 9)
  T.raises(function() I.window(0) end, "integer >= 1")
end)

T.test("sma: nil until n values, then the mean of the last n; no drift over many values", function()
  local s = I.sma(3)
  T.eq({ I.sma_push(s, 1), I.sma_push(s, 2) }, {})
  T.eq(I.sma_push(s, 3), 2)
  T.eq(I.sma_push(s, 10), 5)
  T.eq(I.sma_push(s, -1), 4)
  local big = I.sma(7)
  local v
  for i = 1, 100000 do v = I.sma_push(big, (i % 13) * 0.1 + 1e6) end
  local want = 0
  for i = 100000 - 6, 100000 do want = want + (i % 13) * 0.1 + 1e6 end
  T.near(v, want / 7, 1e-6)
end)

T.test("ema: seeded with the SMA of the first n, then alpha = 2/(n+1)", function()
  local e = I.ema(3)
  T.eq({ I.ema_push(e, 2), I.ema_push(e, 4) }, {})
  T.eq(I.ema_push(e, 6), 4)                        -- (2+4+6)/3
  T.eq(I.ema_push(e, 8), 6)                        -- 4 + 0.5 * (8 - 4)
  T.eq(I.ema_push(e, 2), 4)                        -- 6 + 0.5 * (2 - 6)
end)

T.test("rsi: Wilder's smoothing", function()
  local r = I.rsi(2)
  T.eq(I.rsi_push(r, 10), nil)
  T.eq(I.rsi_push(r, 12), nil)                     -- one change: +2
  T.near(I.rsi_push(r, 11), 100 - 100 / (1 + (2 / 2) / (1 / 2)), 1e-12)   -- gains 1, losses 0.5
  -- next: +3; gain = (1*1 + 3)/2 = 2, loss = (0.5*1 + 0)/2 = 0.25
  T.near(I.rsi_push(r, 14), 100 - 100 / (1 + 2 / 0.25), 1e-12)
  local up = I.rsi(3)
  for _, c in ipairs({ 1, 2, 3 }) do I.rsi_push(up, c) end
  T.eq(I.rsi_push(up, 4), 100.0, "only gains")
end)

T.test("atr: true range with the previous close, Wilder's smoothing", function()
  local a = I.atr(2)
  T.eq(I.atr_push(a, 10, 8, 9), nil)               -- tr 2
  T.eq(I.atr_push(a, 12, 11, 11.5), 2.5)           -- tr max(1, |12-9|, |11-9|) = 3; (2+3)/2
  T.eq(I.atr_push(a, 11, 10.5, 11), (2.5 + 1) / 2) -- tr max(0.5, 0.5, 1) = 1
end)

T.test("cross: up, down, none", function()
  T.eq(I.cross(1, 2, 3, 2), "up")
  T.eq(I.cross(3, 2, 1, 2), "down")
  T.eq(I.cross(1, 2, 1.5, 2), nil)
  T.eq(I.cross(nil, 2, 3, 2), nil)
end)

T.run()
