-- indicators: technical indicators for strategies, over plain tables.
--
-- Each indicator is a state table made by a constructor and a push function that takes one new
-- value (or bar) and returns the indicator's current value, or nil while it has seen too few
-- values. The state holds only numbers and lists (no functions, no metatables): it lives in
-- ctx.state, is kept across a hot reload of the strategy, and a replay builds the same numbers.
--
--   w = I.window(n);      I.window_push(w, x) -> the value that fell out (or nil)
--                         I.window_get(w, i)   -> the i-th newest value (1 = newest), nil if unseen
--                         I.window_full(w), w.count (values in the window), w.sum
--   s = I.sma(n);         I.sma_push(s, x)     -> mean of the last n values
--   e = I.ema(n);         I.ema_push(e, x)     -> exponential mean, alpha = 2 / (n + 1), seeded
--                                                 with the SMA of the first n values
--   r = I.rsi(n);         I.rsi_push(r, close) -> Wilder's RSI (0..100) after n + 1 closes
--   a = I.atr(n);         I.atr_push(a, high, low, close) -> Wilder's average true range after n bars
--   I.cross(prev_a, prev_b, a, b) -> "up" when a crossed above b, "down" below, nil otherwise
local I = {}

-- ---- rolling window ----------------------------------------------------------------------------

function I.window(n)
  assert(math.type(n) == "integer" and n >= 1, "indicators.window: n must be an integer >= 1")
  return { n = n, i = 0, count = 0, sum = 0.0, buf = {} }
end

function I.window_push(w, x)
  local n, i = w.n, w.i + 1
  if i > n then i = 1 end
  w.i = i
  local buf = w.buf
  local old = buf[i]
  buf[i] = x
  if w.count < n then
    w.count = w.count + 1
    w.sum = w.sum + x
    return nil
  end
  w.sum = w.sum + x - old
  return old
end

function I.window_get(w, k)
  if k < 1 or k > w.count then return nil end
  local j = w.i - k + 1
  if j < 1 then j = j + w.n end
  return w.buf[j]
end

function I.window_full(w) return w.count == w.n end

-- ---- moving averages ---------------------------------------------------------------------------

-- The sum is kept incrementally and recomputed from the window every n pushes, so rounding
-- errors do not pile up over millions of bars.
function I.sma(n)
  local s = I.window(n)
  s.since = 0
  return s
end

function I.sma_push(s, x)
  local n, i = s.n, s.i + 1
  if i > n then i = 1 end
  s.i = i
  local buf = s.buf
  local count = s.count
  if count < n then
    buf[i] = x
    count = count + 1
    s.count = count
    s.sum = s.sum + x
    if count < n then return nil end
    return s.sum / n
  end
  local sum = s.sum + x - buf[i]
  buf[i] = x
  local since = s.since + 1
  if since >= n then
    sum = 0.0
    for j = 1, n do sum = sum + buf[j] end
    since = 0
  end
  s.since = since
  s.sum = sum
  return sum / n
end

function I.ema(n)
  assert(math.type(n) == "integer" and n >= 1, "indicators.ema: n must be an integer >= 1")
  return { n = n, alpha = 2 / (n + 1), count = 0, sum = 0.0, value = nil }
end

function I.ema_push(e, x)
  local v = e.value
  if v then
    v = v + e.alpha * (x - v)
    e.value = v
    return v
  end
  e.count = e.count + 1
  e.sum = e.sum + x
  if e.count < e.n then return nil end
  e.value = e.sum / e.n
  return e.value
end

-- ---- RSI and ATR (Wilder's smoothing) ------------------------------------------------------------

function I.rsi(n)
  assert(math.type(n) == "integer" and n >= 1, "indicators.rsi: n must be an integer >= 1")
  return { n = n, prev = nil, count = 0, gain = 0.0, loss = 0.0 }
end

function I.rsi_push(r, close)
  local prev = r.prev
  r.prev = close
  if prev == nil then return nil end
  local d = close - prev
  local up, down = d > 0 and d or 0.0, d < 0 and -d or 0.0
  local n = r.n
  if r.count < n then
    r.count = r.count + 1
    r.gain, r.loss = r.gain + up, r.loss + down
    if r.count < n then return nil end
    r.gain, r.loss = r.gain / n, r.loss / n
  else
    r.gain = (r.gain * (n - 1) + up) / n
    r.loss = (r.loss * (n - 1) + down) / n
  end
  if r.loss == 0 then return r.gain == 0 and 50.0 or 100.0 end
  return 100 - 100 / (1 + r.gain / r.loss)
end

function I.atr(n)
  assert(math.type(n) == "integer" and n >= 1, "indicators.atr: n must be an integer >= 1")
  return { n = n, prev = nil, count = 0, sum = 0.0, value = nil }
end

function I.atr_push(a, high, low, close)
  local prev = a.prev
  a.prev = close
  local tr = high - low
  if prev then
    local u, d = math.abs(high - prev), math.abs(low - prev)
    if u > tr then tr = u end
    if d > tr then tr = d end
  end
  local n = a.n
  if a.value then
    a.value = (a.value * (n - 1) + tr) / n
    return a.value
  end
  a.count = a.count + 1
  a.sum = a.sum + tr
  if a.count < n then return nil end
  a.value = a.sum / n
  return a.value
end

-- ---- crossings -----------------------------------------------------------------------------------

function I.cross(pa, pb, a, b)
  if pa == nil or pb == nil or a == nil or b == nil then return nil end
  if pa <= pb and a > b then return "up" end
  if pa >= pb and a < b then return "down" end
  return nil
end

return I
