-- rt.csv: RFC 4180 parsing with line numbers, formatting and encoding, the watchlist format.
local T = require "testlib"
local csv = require "rt.csv"

T.test("plain fields, LF line ends, last line without a line end", function()
  local rows, lines = csv.parse("a,b,c\n1,2,3\nx,y,z")
  T.eq(rows, { { "a", "b", "c" }, { "1", "2", "3" }, { "x", "y", "z" } })
  T.eq(lines, { 1, 2, 3 })
end)

T.test("CRLF line ends", function()
  local rows, lines = csv.parse("a,b\r\n1,2\r\n")
  T.eq(rows, { { "a", "b" }, { "1", "2" } })
  T.eq(lines, { 1, 2 })
  T.eq(csv.parse("a,b\r\n1,2\n3,4\r\n"), { { "a", "b" }, { "1", "2" }, { "3", "4" } }, "mixed")
end)

T.test("quoted fields with separators, doubled quotes and embedded newlines", function()
  local rows = csv.parse('"a,b","say ""hi""","two\nlines","crlf\r\ninside",""\n')
  T.eq(rows, { { "a,b", 'say "hi"', "two\nlines", "crlf\r\ninside", "" } })
end)

T.test("empty fields and trailing separators", function()
  T.eq(csv.parse("a,,c\n,,\nx,\n"), { { "a", "", "c" }, { "", "", "" }, { "x", "" } })
  T.eq(csv.parse('""\n'), { { "" } }, "a quoted empty field is a row, not a blank line")
end)

T.test("blank lines are skipped; line numbers count them", function()
  local rows, lines = csv.parse("\na\n\n\nb\r\n\r\nc\n\n")
  T.eq(rows, { { "a" }, { "b" }, { "c" } })
  T.eq(lines, { 2, 5, 7 })
  T.eq({ csv.parse("") }, { {}, {} })
  T.eq({ csv.parse("\n\r\n") }, { {}, {} })
end)

T.test("a multi-line quoted field shifts later rows' line numbers", function()
  local rows, lines = csv.parse('h1,h2\n"one\ntwo\nthree",x\nlast,row\n')
  T.eq(rows, { { "h1", "h2" }, { "one\ntwo\nthree", "x" }, { "last", "row" } })
  T.eq(lines, { 1, 2, 5 })
end)

T.test("a UTF-8 byte-order mark is stripped", function()
  local rows, lines = csv.parse("\239\187\191tokenSymbol,tokenName\nA,B\n")
  T.eq(rows, { { "tokenSymbol", "tokenName" }, { "A", "B" } })
  T.eq(lines, { 1, 2 })
  T.eq(csv.parse('\239\187\191"q",x\n'), { { "q", "x" } }, "BOM before a quoted field")
end)

T.test("unterminated quote -> nil, message naming the line, CSV", function()
  local msg = T.fails("CSV", csv.parse('a,b\n"open,c\nd\n'))
  T.ok(msg:find("line 2", 1, true), msg)
  msg = T.fails("CSV", csv.parse('a\n\nb,"x\ny\nz\n'))
  T.ok(msg:find("line 3", 1, true), "the line the field starts on: " .. msg)
  T.fails("CSV", csv.parse('"'))
end)

T.test("text after a closing quote is kept (lenient)", function()
  T.eq(csv.parse('"ab"cd,e\n'), { { "abcd", "e" } })
end)

T.test("another separator with {sep=}", function()
  T.eq(csv.parse("a;b;\"c;d\"\n1;2;3", { sep = ";" }), { { "a", "b", "c;d" }, { "1", "2", "3" } })
  T.eq(csv.parse("a\tb\n", { sep = "\t" }), { { "a", "b" } })
  T.eq(csv.parse("a,b\n", { sep = ";" }), { { "a,b" } })
end)

T.test("parse misuse raises", function()
  T.raises(function() csv.parse() end, "string expected")
  T.raises(function() csv.parse("a", { sep = ";;" }) end, "'sep' must be one character")
  T.raises(function() csv.parse("a", { sep = "" }) end, "'sep' must be one character")
  T.raises(function() csv.parse("a", { sep = 1 }) end, "option 'sep' must be a string")
  T.raises(function() csv.parse("a", { delimiter = ";" }) end, "unknown option 'delimiter'")
end)

T.test("format_row quotes only when needed", function()
  T.eq(csv.format_row({ "a", "b c", "x,y", 'say "hi"', "two\nlines", "cr\rhere", "", "plain" }),
       'a,b c,"x,y","say ""hi""","two\nlines","cr\rhere",,plain')
  T.eq(csv.format_row({ " lead", "trail ", "in side" }), '" lead","trail ",in side', "edge spaces are kept by quoting")
  T.eq(csv.format_row({ 1, 2.5, true }), "1,2.5,true")
  T.eq(csv.format_row({}), "")
  T.eq(csv.format_row({ "" }), '""', "a lone empty field is quoted so the line is not blank")
  T.raises(function() csv.format_row("a") end, "table expected")
end)

T.test("encode writes one LF-ended line per row", function()
  T.eq(csv.encode({ { "a", "b" }, { "1", "x,y" } }), 'a,b\n1,"x,y"\n')
  T.eq(csv.encode({}), "")
  T.raises(function() csv.encode({ { "a" }, "b" }) end, "row 2 is not a table")
  T.raises(function() csv.encode("a") end, "table expected")
end)

T.test("encode then parse gives the rows back", function()
  local rows = {
    { "tokenSymbol", "tokenName", "note" },
    { "A,B", 'quote "q"', "multi\nline\nvalue" },
    { "", "empty first", " spaced " },
    { "" },
    { "ünïcödé", "中文", "🚀" },
    { "crlf\r\nin field", "last", "" },
  }
  local back, lines = csv.parse(csv.encode(rows))
  T.eq(back, rows)
  T.eq(lines, { 1, 2, 5, 6, 7, 8 })
end)

T.test("the GeckoTerminal watchlist format", function()
  local text = table.concat({
    "tokenSymbol,tokenName,chain,dex,poolAddress,networkAddress",
    '"CBRL","Cracker Barrel Old Country Store","SOL","PumpSwap","7bqJG2ZdMKbEkgSmfuqNVBvqEvWavgL8UEo33ZqdL3NP","5LKHMd2rMSRaG9y4iHwSLRtrJ3dCrJ2CytvBeak8pump"',
    '"TROLL","TROLL","SOL","PumpSwap","4w2cysotX6czaUGmmWg13hDpY4QEMG2CzeKYEQyK9Ama","5UUH9RTDiSpq6HKS6bp4NdU9PNJpXRXuiw6ShBTBhgH2"',
    '"WEIRD","A ""quoted"", comma name","ETH","Uniswap V3","0xabc","0xdef"',
  }, "\r\n") .. "\r\n"
  local rows, lines = csv.parse(text)
  T.eq(#rows, 4)
  T.eq(lines, { 1, 2, 3, 4 })
  local header, items = rows[1], {}
  T.eq(header, { "tokenSymbol", "tokenName", "chain", "dex", "poolAddress", "networkAddress" })
  for i = 2, #rows do
    local item = {}
    for c, name in ipairs(header) do item[name] = rows[i][c] end
    items[#items + 1] = item
  end
  T.eq(items[1], { tokenSymbol = "CBRL", tokenName = "Cracker Barrel Old Country Store", chain = "SOL",
                   dex = "PumpSwap", poolAddress = "7bqJG2ZdMKbEkgSmfuqNVBvqEvWavgL8UEo33ZqdL3NP",
                   networkAddress = "5LKHMd2rMSRaG9y4iHwSLRtrJ3dCrJ2CytvBeak8pump" })
  T.eq(items[2].poolAddress, "4w2cysotX6czaUGmmWg13hDpY4QEMG2CzeKYEQyK9Ama")
  T.eq(items[3].tokenName, 'A "quoted", comma name')
  T.eq(items[3].dex, "Uniswap V3")
end)

T.test("max_rows parses a piece at a time; from/line go on where it stopped", function()
  local text = 'h1,h2\n\n"one\ntwo",x\r\nlast,row\n\nz,"q""q"\n'
  local all, all_lines = csv.parse(text)
  local rows, lines, from, line = {}, {}, 1, 1
  local calls = 0
  while from do
    local r, l, nf, nl = csv.parse(text, { max_rows = 1, from = from, line = line })
    calls = calls + 1
    T.eq(#r, 1, "one row per call")
    for k = 1, #r do rows[#rows + 1], lines[#lines + 1] = r[k], l[k] end
    from, line = nf, nl
  end
  T.eq(rows, all)
  T.eq(lines, all_lines)
  T.eq(lines, { 1, 3, 5, 7 })
  T.eq(calls, 4)
  local r, l, nf = csv.parse(text, { max_rows = 10 })
  T.eq({ #r, nf }, { 4, nil }, "done: no next position")
  -- an unterminated field after a stop still names its own line
  local msg = T.fails("CSV", csv.parse('a\nb\n"c\n', { from = 5, line = 3 }))
  T.ok(msg:find("line 3", 1, true), msg)
  T.raises(function() csv.parse("a", { from = 0 }) end, "from")
  T.raises(function() csv.parse("a", { max_rows = 0 }) end, "max_rows")
  T.raises(function() csv.parse("a", { sep = '"' }) end, "sep")
end)

T.run()
