-- rt.log: the level from the config, every level function, fields, and what reaches stderr (checked
-- in a child candled whose output is captured).
local T = require "testlib"
local log = require "rt.log"

local function lines_with(out, pattern)
  local found = {}
  for line in out:gmatch("[^\n]+") do
    if line:find(pattern) then found[#found + 1] = line end
  end
  return found
end

T.test("level() is 'warn' with tests/lua/config.lua", function()
  T.eq(log.level(), "warn")
end)

T.test("every level function accepts a message alone", function()
  for _, name in ipairs({ "debug", "info", "warn", "error" }) do
    T.eq(select("#", log[name]("log_test: " .. name .. " without fields")), 0, name)
  end
end)

T.test("messages and fields may be any tostring-able values", function()
  local obj = setmetatable({}, { __tostring = function() return "custom object" end })
  log.warn("log_test: fields", { n = 1, f = 1.5, b = true, s = "two words", o = obj, t = {}, [1] = "positional" })
  log.warn(42)
  log.warn(nil, { k = "v" })
  log.warn(obj)
  log.warn()
  log.warn("log_test: no fields given", nil)
  log.debug("log_test: below the level, fields still checked", { x = 1 })
  log.warn("log_test: a long value", { v = string.rep("x", 5000), [string.rep("k", 300)] = 1 })
end)

T.test("fields must be a table", function()
  for _, name in ipairs({ "debug", "info", "warn", "error" }) do
    T.raises(function() log[name]("msg", "not a table") end, "table expected", name)
    T.raises(function() log[name]("msg", 5) end, "table expected", name)
    T.raises(function() log[name]("msg", true) end, "table expected", name)
  end
end)

T.test("a __tostring that raises propagates as an error", function()
  local bad = setmetatable({}, { __tostring = function() error("no string for you") end })
  T.raises(function() log.warn(bad) end, "no string for you")
  T.raises(function() log.warn("msg", { v = bad }) end, "no string for you")
end)

T.test("output: logfmt lines at or above the level, fields sorted and quoted", function()
  local out, code = T.candled([[
    local log = require "rt.log"
    log.debug("dbg line")
    log.info("info line")
    log.warn("warn line", { b = 2, a = "x y", c = true, [1] = "skipped" })
    log.error("error line", { q = 'say "hi"' })
    log.warn(42)
    log.warn("obj", { o = setmetatable({}, { __tostring = function() return "custom" end }) })
    log.warn("two\nlines")
  ]])
  T.eq(code, 0, out)
  T.eq(lines_with(out, "dbg line"), {}, "debug is below warn")
  T.eq(lines_with(out, "info line"), {}, "info is below warn")
  local w = lines_with(out, "warn line")
  T.eq(#w, 1, out)
  T.ok(w[1]:find('^ts=%d%d%d%d%-%d%d%-%d%dT%d%d:%d%d:%d%d%.%d%d%dZ level=warn script=eval msg="warn line" a="x y" b=2 c=true$'), w[1])
  local e = lines_with(out, "error line")
  T.ok(e[1] and e[1]:find('level=error script=eval msg="error line" q="say \\"hi\\""$'), e[1] or out)
  T.eq(#lines_with(out, "level=warn script=eval msg=42$"), 1, out)
  T.eq(#lines_with(out, "msg=obj o=custom$"), 1, out)
  T.eq(#lines_with(out, 'msg="two\\nlines"$'), 1, out)
end)

T.test("output: CANDLED_LOG__LEVEL=debug lets debug lines through", function()
  local out, code = T.candled([[
    local log = require "rt.log"
    log.debug("dbg line", { level = log.level() })
  ]], { env = { CANDLED_LOG__LEVEL = "debug" } })
  T.eq(code, 0, out)
  T.eq(#lines_with(out, "level=debug script=eval msg=\"dbg line\" level=debug$"), 1, out)
end)

T.run()
