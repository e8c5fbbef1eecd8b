-- rt.column: float32 little-endian columns (QLib's feature files).
local T = require "testlib"
local column = require "rt.column"

local function hex(s) return (s:gsub(".", function(c) return string.format("%02x", c:byte()) end)) end

T.test("pack writes float32 LE, NaN and nil as 0x7FC00000 whatever the NaN's sign", function()
  T.eq(hex(column.pack({ 1.0, -2.5, 0.0 })), "0000803f000020c000000000")
  local neg_nan = -(0 / 0)
  T.eq(hex(column.pack({ 0 / 0, neg_nan, nil, 3 }, 1, 4)), "0000c07f0000c07f0000c07f00004040")
  T.eq(column.pack({}), "")
  T.eq(column.pack({ 1, 2, 3 }, 3, 2), "")
  T.eq(hex(column.pack({ 1, 2, 3 }, 2, 3)), "0000004000004040")
  T.eq(hex(column.pack({ 7 })), "0000e040", "an integer packs as its float")
end)

T.test("pack rounds to nearest like a (float) cast; infinities stay infinities", function()
  T.eq(hex(column.pack({ 123456789.123 })), hex(string.pack("<f", 123456789.123)))
  T.eq(hex(column.pack({ 0.1 })), "cdcccc3d")
  T.eq(hex(column.pack({ 1e300, -1e300 })), "0000807f000080ff")
end)

T.test("unpack reads values back; NaN replaceable; sizes that are not whole values raise", function()
  local v, n = column.unpack(column.pack({ 1.5, 0 / 0, -4 }))
  T.eq(n, 3)
  T.eq(v[1], 1.5)
  T.ok(v[2] ~= v[2], "NaN")
  T.eq(v[3], -4.0)
  local w = column.unpack(column.pack({ 0 / 0, 2 }), { nan = false })
  T.eq(w, { false, 2.0 })
  T.raises(function() column.unpack("abc") end, "not a whole number")
  T.raises(function() column.unpack("abcd", { nope = 1 }) end, "unknown option")
end)

T.test("pack raises naming the index of a value that is not a number", function()
  T.raises(function() column.pack({ 1, "2", 3 }) end, "values%[2%] is a string")
  T.raises(function() column.pack({ 1 }, 0) end, "at least 1")
end)

T.test("fill makes a column of one value", function()
  T.eq(column.fill(3, 1.0), { 1.0, 1.0, 1.0 })
  T.eq(column.fill(0, 1), {})
  T.raises(function() column.fill(-1, 0) end, "n must be")
end)

T.run()
