-- rt.config: the validated configuration, read-only copies, defaults, env overrides, config.file().
local T = require "testlib"
local config = require "rt.config"
local fs = require "rt.fs"
local json = require "rt.json"

local TMP = assert(os.getenv("TEST_TMPDIR"), "TEST_TMPDIR is not set")

T.test("database.path is the absolute CANDLED_DATABASE__PATH (env override applied)", function()
  local want = os.getenv("CANDLED_DATABASE__PATH")
  T.ok(want and want:sub(1, 1) == "/", "the harness passes an absolute path: " .. tostring(want))
  T.eq(config.get("database.path"), want)
  T.eq(config.get("database.path"), require("rt.db").path())
end)

T.test("values from tests/lua/config.lua and schema defaults", function()
  T.eq(config.get("log.level"), "warn")
  T.eq(config.get("http.timeout"), 10)
  T.eq(config.get("http.max_host_connections"), 8, "a default the file does not set")
  T.eq(config.get("database.busy_timeout_ms"), 5000)
  T.eq(config.get("runtime.shutdown_grace"), 10)
end)

T.test("a missing key is nil, or the default given", function()
  T.eq(config.get("no.such.key"), nil)
  T.eq(select("#", config.get("no.such.key")), 1)
  T.eq(config.get("nosuchkey"), nil)
  T.eq(config.get("http.nope"), nil)
  T.eq(config.get("log.level.deeper"), nil, "below a string")
  T.eq(config.get("no.such.key", 5), 5)
  T.eq(config.get("http.nope", "dflt"), "dflt")
  T.eq(config.get("http.timeout", 99), 10, "the default is only for missing keys")
  local d = {}
  T.ok(config.get("nope", d) == d, "a table default is returned as given")
end)

T.test("tables returned by get are copies", function()
  local http = config.get("http")
  T.eq(type(http), "table")
  T.eq(http.timeout, 10)
  http.timeout = 99
  http.extra = true
  T.eq(config.get("http.timeout"), 10)
  T.eq(config.get("http").extra, nil)
  T.ok(config.get("http") ~= config.get("http"), "a fresh table per call")
end)

T.test("all() is a deep copy of everything", function()
  local all = config.all()
  T.eq(all.log.level, "warn")
  T.eq(all.database.path, os.getenv("CANDLED_DATABASE__PATH"))
  T.eq(all.http.timeout, 10)
  all.log.level = "debug"
  all.database = nil
  T.eq(config.get("log.level"), "warn")
  T.eq(config.all().log.level, "warn")
  T.ok(config.all().database.path, "the stored config is intact")
end)

T.test("file() is the absolute path of tests/lua/config.lua", function()
  local f = config.file()
  T.eq(type(f), "string")
  T.eq(f:sub(1, 1), "/")
  T.ok(f:find("/tests/lua/config%.lua$"), f)
  T.eq(fs.stat(f).type, "file")
end)

T.test("misuse raises", function()
  T.raises(function() config.get() end, "string expected")
  T.raises(function() config.get({}) end, "string expected")
end)

-- Child processes: relative paths resolve against the config file's directory.
local PROBE = [[
  local config = require "rt.config"
  local json = require "rt.json"
  print("RESULT " .. json.encode({ db = config.get("database.path"), file = config.file() or false,
                                    scripts = config.get("paths.scripts"), level = config.get("log.level") }))
]]

local function probe(opts)
  local out, code = T.candled(PROBE, opts)
  T.eq(code, 0, out)
  return json.decode(T.ok(out:match("RESULT (%b{})"), out))
end

T.test("a relative database.path resolves against the config file's directory", function()
  local dir = TMP .. "/cfg-rel"
  fs.mkdir(dir)
  fs.write(dir .. "/config.lua", 'return { database = { path = "data/rel.db" }, log = { level = "error" } }')
  local r = probe { config = dir .. "/config.lua", env = { CANDLED_DATABASE__PATH = false } }
  T.ok(r.db:find("^/.*/cfg%-rel/data/rel%.db$"), r.db)
  T.ok(r.scripts:find("^/.*/cfg%-rel/scripts$"), r.scripts)
  T.ok(r.file:find("^/.*/cfg%-rel/config%.lua$"), r.file)
  T.eq(r.level, "error")
  T.eq(fs.stat(dir .. "/data/rel.db").type, "file", "the database was created there")
end)

T.test("a relative CANDLED_DATABASE__PATH resolves the same way", function()
  local dir = TMP .. "/cfg-env"
  fs.mkdir(dir)
  fs.write(dir .. "/config.lua", "return {}")
  local r = probe { config = dir .. "/config.lua", env = { CANDLED_DATABASE__PATH = "from-env.db",
                                                          CANDLED_LOG__LEVEL = "debug" } }
  T.ok(r.db:find("^/.*/cfg%-env/from%-env%.db$"), r.db)
  T.eq(r.level, "debug")
end)

T.test("without a config file: defaults, and file() is nil", function()
  local dir = TMP .. "/cfg-none"
  fs.mkdir(dir)
  local r = probe { config = false, cwd = dir, env = { CANDLED_DATABASE__PATH = false } }
  T.eq(r.file, false)
  T.eq(r.level, "info")
  T.ok(r.db:find("^/.*/cfg%-none/data/candled%.db$"), r.db)
end)

T.test("a bad override stops candled with a message", function()
  local out, code = T.candled(PROBE, { env = { CANDLED_LOG__LEVEL = "loud" } })
  T.eq(code, 1, out)
  T.ok(out:find("log.level", 1, true), out)
  T.ok(not out:find("RESULT", 1, true), out)
end)

T.run()
