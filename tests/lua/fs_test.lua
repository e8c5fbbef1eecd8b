-- rt.fs: read/write (atomic), list, stat, mkdir, remove, and errno codes for expected failures.
local T = require "testlib"
local fs = require "rt.fs"

local TMP = assert(os.getenv("TEST_TMPDIR"), "TEST_TMPDIR is not set")
local seq = 0

-- A fresh, empty directory for one test.
local function fresh_dir()
  seq = seq + 1
  local dir = string.format("%s/fs-%d", TMP, seq)
  T.eq(fs.mkdir(dir), true)
  return dir
end

T.test("write then read round-trips bytes exactly", function()
  local dir = fresh_dir()
  local data = "line 1\nline 2\r\n\0binary\255\254 end"
  T.eq(fs.write(dir .. "/a.bin", data), true)
  T.eq(fs.read(dir .. "/a.bin"), data)
  T.eq(fs.write(dir .. "/empty", ""), true)
  T.eq(fs.read(dir .. "/empty"), "")
end)

T.test("a large file round-trips", function()
  local dir = fresh_dir()
  local data = string.rep("0123456789abcdef", 100000) .. "tail"
  T.eq(fs.write(dir .. "/big", data), true)
  local back = fs.read(dir .. "/big")
  T.eq(#back, #data)
  T.ok(back == data, "same bytes")
end)

T.test("write replaces a file atomically and leaves no temp file", function()
  local dir = fresh_dir()
  T.eq(fs.write(dir .. "/state.json", "old"), true)
  T.eq(fs.write(dir .. "/state.json", "new contents"), true)
  T.eq(fs.read(dir .. "/state.json"), "new contents")
  T.eq(fs.list(dir), { "state.json" }, "only the target file is in the directory")
end)

T.test("write into a missing directory -> nil, msg, ENOENT, and nothing created", function()
  local dir = fresh_dir()
  local msg = T.fails("ENOENT", fs.write(dir .. "/no/such/dir/file", "x"))
  T.ok(msg:find("fs.write", 1, true), msg)
  T.eq(fs.list(dir), {})
end)

T.test("write over a directory fails and leaves no temp file", function()
  local dir = fresh_dir()
  T.eq(fs.mkdir(dir .. "/sub"), true)
  local v, msg, code = fs.write(dir .. "/sub", "x")
  T.eq(v, nil)
  T.ok(type(msg) == "string" and code == "EISDIR", tostring(msg) .. " " .. tostring(code))
  T.eq(fs.list(dir), { "sub" })
end)

T.test("read missing -> nil, msg, ENOENT; read a directory fails", function()
  local msg = T.fails("ENOENT", fs.read(TMP .. "/does-not-exist"))
  T.ok(msg:find("does-not-exist", 1, true), msg)
  local v, _, code = fs.read(TMP)
  T.eq(v, nil)
  T.eq(code, "EISDIR")
end)

T.test("list: sorted names, no . or ..", function()
  local dir = fresh_dir()
  for _, name in ipairs({ "b.txt", "a.txt", "C.txt", "10", "2", ".hidden" }) do fs.write(dir .. "/" .. name, name) end
  fs.mkdir(dir .. "/zdir")
  T.eq(fs.list(dir), { ".hidden", "10", "2", "C.txt", "a.txt", "b.txt", "zdir" })
  T.eq(fs.list(fresh_dir()), {})
  T.fails("ENOENT", fs.list(dir .. "/nope"))
  T.fails("ENOTDIR", fs.list(dir .. "/a.txt"))
end)

T.test("stat: type, size, mtime", function()
  local dir = fresh_dir()
  fs.write(dir .. "/f", "12345")
  local st = fs.stat(dir .. "/f")
  T.eq(st.type, "file")
  T.eq(st.size, 5)
  T.eq(math.type(st.size), "integer")
  T.ok(math.abs(st.mtime - os.time()) < 60, "mtime " .. st.mtime)
  T.eq(fs.stat(dir).type, "dir")
  T.eq(fs.stat("/dev/null").type, "other")
  T.fails("ENOENT", fs.stat(dir .. "/missing"))
end)

T.test("mkdir: with parents; an existing directory is fine", function()
  local dir = fresh_dir()
  local deep = dir .. "/a/b/c"
  T.eq(fs.mkdir(deep), true)
  T.eq(fs.stat(deep).type, "dir")
  T.eq(fs.mkdir(deep), true, "again")
  T.eq(fs.mkdir(dir .. "/a/b/c/"), true, "a trailing slash")
  T.eq(fs.write(deep .. "/f", "x"), true)
end)

T.test("mkdir over a file fails", function()
  local dir = fresh_dir()
  fs.write(dir .. "/file", "x")
  local v, msg, code = fs.mkdir(dir .. "/file")
  T.eq(v, nil)
  T.eq(code, "ENOTDIR", msg)
  v, msg, code = fs.mkdir(dir .. "/file/sub")
  T.eq(v, nil)
  T.eq(code, "ENOTDIR", msg)
end)

T.test("mkdir of an empty path fails cleanly", function()
  T.fails("ENOENT", fs.mkdir(""))
end)

T.test("remove: files and empty directories", function()
  local dir = fresh_dir()
  fs.write(dir .. "/f", "x")
  fs.mkdir(dir .. "/d")
  T.eq(fs.remove(dir .. "/f"), true)
  T.eq(fs.remove(dir .. "/d"), true)
  T.eq(fs.list(dir), {})
  T.fails("ENOENT", fs.remove(dir .. "/f"))
  fs.mkdir(dir .. "/full")
  fs.write(dir .. "/full/x", "x")
  T.fails("ENOTEMPTY", fs.remove(dir .. "/full"))
end)

T.test("misuse raises", function()
  T.raises(function() fs.read() end, "string expected")
  T.raises(function() fs.write(TMP .. "/x") end, "string expected")
  T.raises(function() fs.write(TMP .. "/x", {}) end, "string expected")
  T.raises(function() fs.list({}) end, "string expected")
  T.raises(function() fs.stat() end, "string expected")
  T.raises(function() fs.mkdir(string.rep("a/", 3000)) end, "path too long")
  T.raises(function() fs.remove(nil) end, "string expected")
end)

T.run()
