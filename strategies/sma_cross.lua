-- SMA cross: long when the fast simple moving average of the close crosses above the slow one,
-- flat when it crosses below. One set of averages per series, kept in ctx.state.
local I = require "lib.indicators"

return {
  consumes = { source = "binance_spot", instruments = { "BTCUSDT" }, timeframes = { "1m" }, warmup = 31 },
  options = { fast = 10, slow = 30, size = 1 },

  on_start = function(ctx)
    assert(math.type(ctx.config.fast) == "integer" and math.type(ctx.config.slow) == "integer"
           and ctx.config.fast < ctx.config.slow, "sma_cross: options fast < slow (integers)")
  end,

  on_bar = function(ctx, bar)
    local by_tf = ctx.state[bar.instrument]
    if not by_tf then
      by_tf = {}
      ctx.state[bar.instrument] = by_tf
    end
    local s = by_tf[bar.timeframe]
    if not s then
      s = { fast = I.sma(ctx.config.fast), slow = I.sma(ctx.config.slow) }
      by_tf[bar.timeframe] = s
    end
    local f = I.sma_push(s.fast, bar.close)
    local l = I.sma_push(s.slow, bar.close)
    local x = I.cross(s.pf, s.pl, f, l)
    s.pf, s.pl = f, l
    if x == "up" then
      ctx.signal { side = "buy", size = ctx.config.size, reason = "fast SMA crossed above slow" }
    elseif x == "down" then
      ctx.signal { side = "flat", reason = "fast SMA crossed below slow" }
    end
  end,
}
