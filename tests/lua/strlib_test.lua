-- The string methods of every string (runtime/strlib.c): the bounded matcher gives exactly what
-- Lua's own string.find/match/gmatch/gsub give (results and errors) on the pattern language's
-- corners, and getmetatable("") is hidden (issue 11, items 3 and 5).
local T = require "testlib"

local cases = {
  {"hello world", "o"}, {"hello world", "o", 6}, {"hello world", "l+"}, {"hello world", "(h)(e)"},
  {"hello world", "()ll()"}, {"hello", "^h"}, {"hello", "^e"}, {"hello", "o$"}, {"hello", "l$"},
  {"a+b", "+", 1, true}, {"key = value", "(%w+)%s*=%s*(%w+)"}, {"THE (quick) fox", "%((%a+)%)"},
  {"f(a(b)c)d", "%b()"}, {"THE (quick) fox", "%f[%a]%a+"}, {"abcabc", "(abc)%1"}, {"[x]", "[]]"},
  {"a-b", "[a%-]+"}, {"x^y", "[^%^]+"}, {"12ab", "%d-b"}, {"aaa", "a-"}, {"aaa", "a*"}, {"", "a*"},
  {"", ""}, {"abc", "", 10}, {"abc", "", 4}, {"abc", "b", -1}, {"abc", "b", -2}, {"abc", "b", -10},
  {"a.b", "."}, {"a.b", "%."}, {"x\0y", "\0"}, {"x\0y", "[\0]"}, {"x\0y", "%z"}, {"2024-01-02", "(%d+)-(%d+)-(%d+)"},
  {"  trim  ", "^%s*(.-)%s*$"}, {"abc", "[a-"}, {"abc", "%"}, {"abc", "(a"}, {"abc", "a)"}, {"abc", "%1"},
  {"abc", "%f"}, {"abc", "%bx"}, {"aXb", "%u"}, {"aXb", "%U+"}, {"é", "[\128-\255]+"}, {"a,b,,c", "([^,]*)"},
  {"hello", "l?l?"}, {"hello", "h?e"}, {"one two", "%S+$"}, {"x", "x?x?x?x"},
}
local function pack(ok, ...) return { ok = ok, n = select("#", ...), ... } end
local real = string
local mine = { find = ("").find, match = ("").match, gmatch = ("").gmatch, gsub = ("").gsub }

local function gmatch_all(g, s, p, init)
  local ok, it = pcall(g, s, p, init)
  if not ok then return { "error: " .. it } end
  local out = {}
  local ok2, e = pcall(function()
    for a, b, c in it do out[#out + 1] = tostring(a) .. "|" .. tostring(b) .. "|" .. tostring(c) end
  end)
  if not ok2 then out[#out + 1] = "error: " .. e end
  return out
end

T.test("find and match agree with Lua's", function()
  for _, c in ipairs(cases) do
    for _, fn in ipairs({ "find", "match" }) do
      T.eq(pack(pcall(mine[fn], table.unpack(c, 1, 4))), pack(pcall(real[fn], table.unpack(c, 1, 4))),
           ("%s(%q, %q)"):format(fn, c[1], c[2]))
    end
  end
end)

T.test("gmatch agrees with Lua's", function()
  for _, c in ipairs(cases) do
    T.eq(gmatch_all(mine.gmatch, c[1], c[2], c[3]), gmatch_all(real.gmatch, c[1], c[2], c[3]),
         ("gmatch(%q, %q)"):format(c[1], c[2]))
  end
end)

T.test("gsub agrees with Lua's for string, table, function and number replacements", function()
  local repls = { "<%0>", "%1%1", "%%", { hello = "H", o = false }, function(x) return x and x:upper() end,
                  "%2", "%x", 7, function() return {} end }
  for _, c in ipairs(cases) do
    for _, r in ipairs(repls) do
      for _, n in ipairs({ false, 1, 0 }) do
        local args = n and { c[1], c[2], r, n } or { c[1], c[2], r }
        T.eq(pack(pcall(mine.gsub, table.unpack(args, 1, 4))), pack(pcall(real.gsub, table.unpack(args, 1, 4))),
             ("gsub(%q, %q, %s, %s)"):format(c[1], c[2], tostring(r), tostring(n)))
      end
    end
  end
end)

T.test("the string metatable is hidden and has no dump", function()
  T.eq(getmetatable(""), false)
  T.eq(("").dump, nil)
  T.eq(("abc"):upper(), "ABC")
end)

T.run()
