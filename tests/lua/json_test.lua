-- rt.json: lua-cjson configured for market data (NaN -> null, exact ms timestamps, json.null).
local T = require "testlib"
local json = require "rt.json"

T.test("decode: objects, arrays, strings, numbers, booleans", function()
  local v = json.decode('{"a":[1,2.5,-3e2,{"b":true}],"s":"x","f":false,"o":{}}')
  T.eq(v, { a = { 1, 2.5, -300, { b = true } }, s = "x", f = false, o = {} })
end)

T.test("round trip: encode then decode gives the same value", function()
  local values = {
    { 1, 2, 3 }, { a = 1, b = { c = "d", e = { 1.5, "x" } } }, "text", 0, -1.25, true, false,
    { s = 'quote " backslash \\ slash / newline \n tab \t nul \0 end' },
  }
  for i, v in ipairs(values) do T.eq(json.decode(json.encode(v)), v, "value " .. i) end
end)

T.test("encode: arrays, objects, empty table, escapes", function()
  T.eq(json.encode({ 1, 2, 3 }), "[1,2,3]")
  T.eq(json.encode({ a = 1 }), '{"a":1}')
  T.eq(json.encode({}), "{}")
  T.eq(json.encode("a\"b\\c\n"), '"a\\"b\\\\c\\n"')
  T.eq(json.encode(true), "true")
  T.eq(json.encode(1.5), "1.5")
end)

T.test("json.null: decoded JSON null, encodes as null", function()
  local v = json.decode('{"a":null,"b":[null,1]}')
  T.ok(v.a == json.null, "object member null is json.null")
  T.ok(v.b[1] == json.null and v.b[2] == 1, "array element null keeps its slot")
  T.ok(json.decode("null") == json.null)
  T.eq(json.encode({ a = json.null }), '{"a":null}')
  T.eq(json.encode({ json.null, 2 }), "[null,2]")
end)

T.test("NaN and infinities encode as null", function()
  T.eq(json.encode(0 / 0), "null")
  T.eq(json.encode({ math.huge, -math.huge, 1 }), "[null,null,1]")
  T.eq(json.decode(json.encode({ x = 0 / 0 })).x, json.null)
end)

T.test("decode accepts NaN and Infinity from sources that send them", function()
  local v = json.decode('[NaN, Infinity, -Infinity]')
  T.ok(v[1] ~= v[1], "NaN")
  T.eq(v[2], math.huge)
  T.eq(v[3], -math.huge)
end)

T.test("big integers (ms timestamps) decode and encode exactly", function()
  local v = json.decode("[1634943780000, 9007199254740992, -1634943780000]")
  T.eq(v[1], 1634943780000)
  T.eq(math.tointeger(v[1]), 1634943780000)
  T.eq(v[2], 2 ^ 53)
  T.eq(math.tointeger(v[3]), -1634943780000)
  T.eq(math.type(v[1]), "integer", "integral numbers below 2^53 decode as integers")
  T.eq(math.type(v[2]), "float", "2^53 itself is not exact as a neighbour: it stays a float")
  T.eq(json.encode(1634943780000), "1634943780000")
  T.eq(json.encode({ t = 1700000000000 }), '{"t":1700000000000}')
  -- Binance kline rows: integers and decimal strings side by side
  local row = json.decode('[1499040000000,"0.01634790","0.80000000",148976.11427815,1499644799999,308]')
  T.eq(math.tointeger(row[1]), 1499040000000)
  T.eq(row[2], "0.01634790")
  T.eq(math.tointeger(row[5]), 1499644799999)
end)

T.test("integers survive decode: a paging loop sends startTime=...000, never ...000.0", function()
  local rows = json.decode('[[1499040000000,"0.1"],[1499040060000,"0.2"]]')
  T.eq("startTime=" .. rows[#rows][1], "startTime=1499040060000")
  local v = json.decode('{"n":42,"neg":-7,"f":2.5,"e":1e3,"big":9007199254740993,"nested":{"a":[[3]]},"z":-0.0}')
  T.eq(math.type(v.n), "integer")
  T.eq(math.type(v.neg), "integer")
  T.eq(math.type(v.f), "float")
  T.eq(math.type(v.e), "integer", "1e3 is integral")
  T.eq(math.type(v.big), "float", "beyond 2^53 a number is not exact: float")
  T.eq(math.type(v.nested.a[1][1]), "integer", "nested tables too")
  T.eq(v.z, 0)
  T.eq(math.type(json.decode("17")), "integer", "a bare number")
  T.eq(math.type(json.safe.decode("[17]")[1]), "integer", "json.safe.decode too")
  local bad, err = json.safe.decode("[1,")
  T.eq(bad, nil)
  T.ok(type(err) == "string", "safe.decode still fails softly")
  T.eq(json.encode(json.decode('{"t":1700000000000}')), '{"t":1700000000000}')
end)

T.test("unicode: \\u escapes (incl. surrogate pairs) decode to UTF-8, UTF-8 passes through", function()
  T.eq(json.decode('"\\u00e9\\u4e2d\\ud83d\\ude00"'), "é中😀")
  T.eq(json.decode('"é中😀"'), "é中😀")
  T.eq(json.decode(json.encode({ name = "Ünïcödé 中文 🚀" })).name, "Ünïcödé 中文 🚀")
end)

T.test("decode raises on malformed input", function()
  for _, bad in ipairs({ "", "{", '{"a":', "[1,]", "nope", "{'a':1}", '{"a" 1}', '"unterminated', "[1] x" }) do
    T.raises(function() json.decode(bad) end, nil, "decoding " .. string.format("%q", bad))
  end
  T.raises(function() json.decode(string.rep("[", 2000)) end, "too many nested")
  T.raises(function() json.decode() end, "argument")
end)

T.test("encode raises on what JSON cannot hold", function()
  T.raises(function() json.encode(print) end, "Cannot serialise function")
  local cyclic = {}
  cyclic.self = cyclic
  T.raises(function() json.encode(cyclic) end, "excessive nesting")
end)

T.test("safe.decode / safe.encode return nil, err instead of raising", function()
  local v, err = json.safe.decode("{")
  T.eq(v, nil)
  T.ok(type(err) == "string" and err ~= "", "an error message")
  T.eq(json.safe.decode('{"ok":1}'), { ok = 1 })
  v, err = json.safe.encode(print)
  T.eq(v, nil)
  T.ok(err:find("Cannot serialise"), err)
  T.eq(json.safe.encode({ 1 }), "[1]")
  T.eq(json.safe.encode(0 / 0), "null", "the safe variant is configured the same way")
end)

T.test("decode_rows: arrays of scalars with integers kept integral", function()
  local rows = json.decode_rows(' [[1600000020000, "30667.09", 1.5e3, -2, true, false, null, ""],\n [] , [0.25]] ')
  T.eq(#rows, 3)
  local r = rows[1]
  T.eq(math.type(r[1]), "integer")
  T.eq(r[1], 1600000020000)
  T.eq(r[2], "30667.09")
  T.eq(math.type(r[3]), "float")
  T.eq(r[3], 1500.0)
  T.eq(r[4], -2)
  T.eq(r[5], true)
  T.eq(r[6], false)
  T.ok(r[7] == json.null, "null is json.null")
  T.eq(r[8], "")
  T.eq(#rows[2], 0)
  T.eq(rows[3][1], 0.25)
  T.eq(json.decode_rows("[]"), {})
  T.eq(math.type(json.decode_rows("[[99999999999999999999]]")[1][1]), "float", "overflow becomes a float")
end)

T.test("decode_rows: numbers = {...} turns decimal strings in those fields into floats", function()
  local rows = json.decode_rows('[["1.5", "0.00000001", "7", 3, "x"], ["695011.47918450", "1e-3", "2", 4, "y"]]',
                                { numbers = { 1, 2 } })
  T.eq(rows[1], { 1.5, 1e-8, "7", 3, "x" })
  T.eq(math.type(rows[1][1]), "float")
  T.ok(rows[2][1] == tonumber("695011.47918450"), "correctly rounded, like tonumber")
  T.eq(rows[2][2], 0.001)
  T.raises(function() json.decode_rows('[["1.5"], ["abc"]]', { numbers = { 1 } }) end,
           'row 2 field 1: "abc" is not a number')
  T.raises(function() json.decode_rows('[[""]]', { numbers = { 1 } }) end, "is not a number")
  T.raises(function() json.decode_rows("[]", { numbers = { 0 } }) end, "from 1 to 64")
  T.raises(function() json.decode_rows("[]", { numbers = 2 }) end, "numbers must be a list")
  T.raises(function() json.decode_rows("[]", { number = { 1 } }) end, "number")
end)

T.test("decode_rows: decimals read without strtod are the values tonumber (strtod) gives", function()
  local texts = { "0", "-0", "0.0", "-0.0", "5.", ".5", "-.5", "0.1", "0.3", "695011.47918450", "0.00000001",
                  "9007199254740992", "9007199254740993", "9007199254740993.0", "12345678901234567890.5",
                  "1.0000000000000000000001", "0.0000000000000000000001", "0.00000000000000000000001",
                  "123456789012345.6789", "4503599627370497.5", "1e3", "+1.5", " 1.5", "00012.50",
                  "123456789012345678", "-123456789012345678", "1234567890123456789" }
  math.randomseed(7)
  for _ = 1, 3000 do                           -- prices and volumes of every size, 0 to 20 decimals
    local int, frac = tostring(math.random(0, 10 ^ math.random(0, 15))), ""
    for _ = 1, math.random(0, 20) do frac = frac .. math.random(0, 9) end
    local t = int .. (frac ~= "" and "." .. frac or "")
    texts[#texts + 1] = math.random(4) == 1 and "-" .. t or t
  end
  local parts, plain = {}, {}                  -- as a decimal string, and as a JSON number when it is one
  for i, t in ipairs(texts) do
    plain[i] = t:match("^%-?%d+$") or t:match("^%-?%d+%.%d+$")
    parts[i] = ('["%s", %s]'):format(t, plain[i] or "0")
  end
  local rows = json.decode_rows("[" .. table.concat(parts, ",") .. "]", { numbers = { 1 } })
  for i, t in ipairs(texts) do
    local want = tonumber((t:gsub("^%s+", "")))
    if math.type(want) == "integer" then want = tonumber(t .. ".0") end   -- as strtod reads it ("-0": -0.0)
    T.ok(rows[i][1] == want and 1 / rows[i][1] == 1 / want, ("%q: %s, tonumber %s"):format(t, rows[i][1], want))
    local p = plain[i]
    if p and p:find("%.") then
      T.ok(rows[i][2] == tonumber(p) and math.type(rows[i][2]) == "float", "JSON number " .. p)
    elseif p then                              -- an integer: exact when it fits in 64 bits
      T.ok(rows[i][2] == math.tointeger(tonumber(p)) and math.type(rows[i][2]) == "integer", "JSON number " .. p)
    end
  end
  T.raises(function() json.decode_rows('[["1.5.0"]]', { numbers = { 1 } }) end, '"1.5.0" is not a number')
end)

T.test("decode_rows: string escapes, unicode and surrogate pairs", function()
  local rows = json.decode_rows([=[ [["a\"b\\c\/d\n\t", "\u00e9\u20ac", "\ud83d\ude00"]] ]=])
  T.eq(rows[1][1], 'a"b\\c/d\n\t')
  T.eq(rows[1][2], "é€")
  T.eq(rows[1][3], "😀")
end)

T.test("decode_rows: agrees with decode on a kline fixture", function()
  local http = require "rt.http"
  local text = assert(http.get(os.getenv("MOCK_URL") .. "/api/v3/klines", {
    query = { symbol = "BTCUSDT", interval = "1m", limit = 1000, startTime = 1634943780000 } })).body
  local fast, slow = json.decode_rows(text), json.decode(text)
  T.eq(#fast, 1000)
  T.eq(#fast, #slow)
  for i = 1, #slow do
    for j = 1, #slow[i] do T.ok(fast[i][j] == slow[i][j], ("row %d field %d"):format(i, j)) end
  end
end)

T.test("decode_rows raises on other shapes, naming the byte", function()
  for bad, what in pairs({
    ["{}"] = "expected '%[' %(an array of rows%) at byte 1", ["[1]"] = "expected '%[' %(a row%) at byte 2",
    ["[[1,[2]]]"] = "nested value", ['[[{"a":1}]]'] = "nested value", ["[[1,]]"] = "unexpected character",
    ["[[1]"] = "expected ',' or ']'", ["[[1]] x"] = "trailing characters", ['[["a]]'] = "unterminated string",
    ['[["\\x"]]'] = "bad escape", ["[[nul]]"] = "unexpected character", ["[[1 2]]"] = "expected ',' or ']'",
    ['[["\\u12"]]'] = "u escape", [""] = "at byte 1", ["[[-]]"] = "unexpected character",
  }) do
    T.raises(function() json.decode_rows(bad) end, what, ("decoding %q"):format(bad))
  end
  T.raises(function() json.decode_rows() end, "argument")
end)

T.run()
