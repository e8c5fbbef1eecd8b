-- rt.fs: read/write (atomic), list, stat, mkdir, remove, watch, and errno codes for expected failures.
local T = require "testlib"
local fs = require "rt.fs"
local task = require "rt.task"
local time = require "rt.time"

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

-- ---- fs.watch ---------------------------------------------------------------------------------

local FAST = { interval = 0.02 }

-- Run fn(...) in its own task after `delay` seconds (so the test's task is parked in w:wait() first).
local function later(delay, fn, ...)
  return task.spawn(function(...)
    time.sleep(delay)
    return fn(...)
  end, ...)
end

T.test("watch: an atomic replace by fs.write is seen, once", function()
  local dir = fresh_dir()
  local path = dir .. "/watched.json"
  fs.write(path, "v1")
  local w <close> = fs.watch(path, FAST)
  local writer = later(0.05, fs.write, path, "v2")
  local t0 = time.monotonic()
  T.eq(w:wait(3), true)
  T.ok(time.monotonic() - t0 < 1, "seen within a few intervals")
  T.eq(writer:join(), true)
  T.eq(w:wait(0.1), false, "nothing changed since the last wait returned")
  later(0.05, fs.write, path, "v3")                -- same size, new inode and mtime
  T.eq(w:wait(3), true)
  T.eq(fs.read(path), "v3")
end)

T.test("watch: a file that does not exist yet, its creation and its removal", function()
  local dir = fresh_dir()
  local path = dir .. "/later.txt"
  local w <close> = fs.watch(path, FAST)
  T.eq(w:wait(0.1), false, "still missing")
  later(0.05, fs.write, path, "here")
  T.eq(w:wait(3), true, "created")
  T.eq(fs.read(path), "here")
  later(0.05, fs.remove, path)
  T.eq(w:wait(3), true, "removed")
  T.eq(fs.stat(path), nil)
  T.eq(w:wait(0.1), false, "still removed")
end)

T.test("watch: a directory that does not exist yet is fine too", function()
  local dir = fresh_dir()
  local w <close> = fs.watch(dir .. "/no/such/dir/file", FAST)
  T.eq(w:wait(0.05), false)
  fs.mkdir(dir .. "/no/such/dir")
  T.eq(w:wait(0.05), false, "the directory is not the file")
  fs.write(dir .. "/no/such/dir/file", "x")
  T.eq(w:wait(0), true)
end)

T.test("watch: the timeout returns false after about that long", function()
  local dir = fresh_dir()
  fs.write(dir .. "/f", "x")
  local w <close> = fs.watch(dir .. "/f", FAST)
  local t0 = time.monotonic()
  T.eq(w:wait(0.2), false)
  local took = time.monotonic() - t0
  T.ok(took >= 0.15 and took < 1.5, "took " .. took)
  T.eq(w:wait(0), false, "timeout 0: a check, no wait")
end)

T.test("watch: a change made while no task waits is not lost", function()
  local dir = fresh_dir()
  local path = dir .. "/f"
  fs.write(path, "1")
  local w <close> = fs.watch(path, { interval = 60 })   -- no poll would come in time
  fs.write(path, "2")
  local t0 = time.monotonic()
  T.eq(w:wait(5), true, "at once")
  T.ok(time.monotonic() - t0 < 0.5, "without waiting for a poll")
  T.eq(w:wait(0), false)
  -- between two waits too
  T.eq(w:wait(0.05), false)
  fs.write(path, "3")
  T.eq(w:wait(5), true)
  -- a change that ends a wait is consumed by it; a later one is kept for the next wait
  local w2 <close> = fs.watch(path, FAST)
  later(0.05, fs.write, path, "4")
  T.eq(w2:wait(3), true)
  fs.write(path, "55")
  time.sleep(0.1)
  T.eq(w2:wait(0), true, "the second write, made while nobody waited")
  T.eq(w2:wait(0), false)
end)

T.test("watch: close is idempotent, also by <close>; wait on a closed watcher raises", function()
  local dir = fresh_dir()
  local w = fs.watch(dir .. "/f")
  T.ok(tostring(w):find(dir .. "/f", 1, true), tostring(w))
  w:close()
  w:close()
  T.eq(tostring(w), "rt.fs.watch (closed)")
  T.raises(function() w:wait(0) end, "the watcher is closed")
  local kept
  do
    local w2 <close> = fs.watch(dir .. "/f")
    kept = w2
  end
  T.raises(function() kept:wait(0) end, "the watcher is closed")
  fs.watch(dir .. "/g")                             -- never closed: __gc closes it
  collectgarbage()
  collectgarbage()
end)

T.test("watch: wait outside a task raises; the watcher stays usable", function()
  local dir = fresh_dir()
  local w <close> = fs.watch(dir .. "/f", FAST)
  local ok, err = coroutine.wrap(function() return pcall(w.wait, w, 1) end)()
  T.eq(ok, false)
  T.ok(err:find("must be called from a task", 1, true), err)
  T.raises(function() table.sort({ 1, 2, 3 }, function(a, b) w:wait(1) return a < b end) end, "inside a C call")
  fs.write(dir .. "/f", "x")
  T.eq(w:wait(1), true)
end)

T.test("watch: a second waiter raises; closing under a waiter makes its wait raise", function()
  local dir = fresh_dir()
  local w = fs.watch(dir .. "/f", FAST)
  local h = task.spawn(function() return w:wait() end)
  time.sleep(0.05)
  T.eq(h:status(), "parked")
  T.raises(function() w:wait(0) end, "another task is already waiting")
  w:close()
  local ok, err = h:join()
  T.eq(ok, false)
  T.ok(err:find("closed while waiting", 1, true), err)
end)

T.test("watch: cancelling a task parked in wait cleans up; the watcher can be waited on again", function()
  local dir = fresh_dir()
  local path = dir .. "/f"
  local w <close> = fs.watch(path, FAST)
  local h = task.spawn(function() return w:wait() end)
  time.sleep(0.1)                                   -- a few polls ran while it waited
  T.eq(h:status(), "parked")
  T.eq(h:cancel(), true)
  T.eq(h:status(), "cancelled")
  T.eq(w:wait(0.05), false, "the cancelled wait left nothing behind")
  later(0.05, fs.write, path, "x")
  T.eq(w:wait(3), true)
  -- a task that owns its watcher with <close>: cancelling it closes the watcher
  local seen
  local h2 = task.spawn(function()
    local w2 <close> = fs.watch(path, FAST)
    seen = w2
    return w2:wait(10)
  end)
  time.sleep(0.05)
  T.eq(h2:cancel(), true)
  T.eq(tostring(seen), "rt.fs.watch (closed)")
  -- cancelled with a timeout armed and a stat possibly in flight, many times over
  for _ = 1, 20 do
    local h3 = task.spawn(function() return w:wait(5) end)
    time.sleep(0.025)
    h3:cancel()
  end
  T.eq(w:wait(0), false)
end)

T.test("watch: misuse raises", function()
  T.raises(function() fs.watch() end, "string expected")
  T.raises(function() fs.watch(TMP, { interval = 0 }) end, "'interval' must be > 0")
  T.raises(function() fs.watch(TMP, { interval = "1s" }) end, "must be a number")
  T.raises(function() fs.watch(TMP, { intervall = 1 }) end, "unknown option 'intervall'")
  local w <close> = fs.watch(TMP)
  T.raises(function() w:wait(-1) end, "timeout must be >= 0")
  T.raises(function() w:wait("soon") end, "number expected")
  T.raises(function() w.wait({}) end, "rt.fs.watch expected")
end)


-- Issue 11, item 8: scripts' rt.fs reaches only its roots; symlinks and ".." do not get out.
T.test("fs.confined: inside the roots as usual, outside EACCES, no way out by .. or a symlink", function()
  local dir = fresh_dir()
  local data, ro, out = dir .. "/data", dir .. "/ro", dir .. "/outside"
  for _, d in ipairs({ data, ro, out }) do T.eq(fs.mkdir(d), true) end
  T.eq(fs.write(ro .. "/r.txt", "r"), true)
  T.eq(fs.write(out .. "/secret", "s"), true)
  local cfs = fs.confined({ { path = data, write = true }, { path = ro } })
  T.eq(cfs.write(data .. "/new/x.csv", "x"), nil, "mkdir first")
  T.eq(cfs.mkdir(data .. "/new"), true)
  T.eq(cfs.write(data .. "/new/x.csv", "x"), true)
  T.eq(cfs.read(data .. "/new/x.csv"), "x")
  T.eq(cfs.list(data), { "new" })
  T.eq(cfs.read(ro .. "/r.txt"), "r", "read-only root: reads")
  T.fails("EACCES", cfs.write(ro .. "/r.txt", "w"))
  T.fails("EACCES", cfs.remove(ro .. "/r.txt"))
  T.fails("EACCES", cfs.read(out .. "/secret"))
  T.fails("EACCES", cfs.read(data .. "/../outside/secret"))
  T.fails("EACCES", cfs.read("/etc/passwd"))
  T.fails("EACCES", cfs.stat(dir))
  T.fails("EACCES", cfs.write(data .. "/nope/../../outside/planted", "p"))
  T.ok(os.execute("ln -s " .. out .. " " .. data .. "/link"), "a symlink out of the root")
  local msg = T.fails("EACCES", cfs.read(data .. "/link/secret"))
  T.ok(msg:find("outside the paths scripts may read", 1, true), msg)
  T.fails("EACCES", cfs.write(data .. "/link/planted", "p"))
  T.eq(fs.stat(out .. "/planted"), nil)
  T.eq(select(3, cfs.watch(out .. "/secret")), "EACCES")
  local w = cfs.watch(data .. "/new/x.csv")
  w:close()
  -- a flat root: its own files (not .lua for writing), nothing below it
  local flat = fs.confined({ { path = dir, write = true, flat = true } })
  T.eq(flat.write(dir .. "/watchlist.csv", "w"), true)
  T.eq(flat.read(dir .. "/watchlist.csv"), "w")
  T.fails("EACCES", flat.write(dir .. "/config.lua", "return {}"))
  T.fails("EACCES", flat.read(data .. "/new/x.csv"))
end)


-- A read or list that runs into runtime.memory_limit (64 MiB in tests/lua/config.lua) fails with a
-- memory error and leaves no descriptor open.
T.test("fs.read over the memory limit fails without leaking its descriptor", function()
  local dir = fresh_dir()
  local big = dir .. "/big"
  T.ok(os.execute("head -c 80000000 /dev/zero > " .. big))
  local before = #fs.list("/proc/self/fd")
  for _ = 1, 5 do
    local ok, err = task.spawn(function() return fs.read(big) end):join()
    T.eq(ok, false)
    T.ok(err:find("runtime.memory_limit", 1, true), err)
  end
  collectgarbage()
  T.eq(#fs.list("/proc/self/fd"), before, "no descriptor left open")
  fs.remove(big)
end)

T.test("rename, link, exchange: atomic moves; a hard link shares the inode", function()
  local dir = fresh_dir()
  T.eq(fs.write(dir .. "/a", "A"), true)
  T.eq(fs.rename(dir .. "/a", dir .. "/b"), true)
  T.fails("ENOENT", fs.stat(dir .. "/a"))
  T.eq(fs.read(dir .. "/b"), "A")
  T.eq(fs.link(dir .. "/b", dir .. "/c"), true)
  T.eq(fs.stat(dir .. "/c").ino, fs.stat(dir .. "/b").ino)
  T.eq(fs.stat(dir .. "/c").nlink, 2)
  T.fails("EEXIST", fs.link(dir .. "/b", dir .. "/c"))
  -- two folders swap names in one step
  T.eq(fs.mkdir(dir .. "/old"), true)
  T.eq(fs.mkdir(dir .. "/new"), true)
  T.eq(fs.write(dir .. "/old/x", "old", { sync = false }), true)
  T.eq(fs.write(dir .. "/new/x", "new", { sync = false }), true)
  local ok, _, code = fs.exchange(dir .. "/old", dir .. "/new")
  if ok then
    T.eq(fs.read(dir .. "/old/x"), "new")
    T.eq(fs.read(dir .. "/new/x"), "old")
  else
    T.ok(code == "ENOSYS" or code == "EINVAL", "a file system without RENAME_EXCHANGE says so: " .. tostring(code))
  end
  T.fails("ENOENT", fs.exchange(dir .. "/none", dir .. "/old"))
  T.eq(fs.sync(dir .. "/b"), true)
  T.eq(fs.sync(dir, { filesystem = true }), true)
  T.fails("ENOENT", fs.sync(dir .. "/none"))
  T.raises(function() fs.sync(dir, { everything = true }) end, "unknown option")
  T.raises(function() fs.write(dir .. "/b", "x", { fsync = false }) end, "unknown option")
end)

T.test("fs.lock: one holder at a time, released by unlock, <close> and garbage collection", function()
  local dir = fresh_dir()
  local l1 = fs.lock(dir .. "/x.lock")
  T.ok(l1, "first lock")
  local msg = T.fails("EAGAIN", fs.lock(dir .. "/x.lock"))
  T.ok(msg:find("held", 1, true), msg)
  l1:unlock()
  l1:unlock()                                  -- idempotent
  do
    local l2 <close> = assert(fs.lock(dir .. "/x.lock"))
    T.fails("EAGAIN", fs.lock(dir .. "/x.lock"))
  end
  local l3 = fs.lock(dir .. "/x.lock")
  T.ok(l3, "free again after <close>")
  l3 = nil
  collectgarbage()
  local l5 = fs.lock(dir .. "/x.lock")
  T.ok(l5, "free again after collection")
  l5:unlock()
  -- another process sees the lock too
  local l4 = assert(fs.lock(dir .. "/x.lock"))
  T.eq(os.execute("flock -n " .. dir .. "/x.lock true"), nil, "flock(1) in another process is refused")
  l4:unlock()
  T.eq(os.execute("flock -n " .. dir .. "/x.lock true"), true)
end)

T.test("fs.confined checks both paths of rename, link and exchange; siblings roots reach <root>.candled-*", function()
  local dir = fresh_dir()
  local out, other = dir .. "/out", dir .. "/other"
  T.eq(fs.mkdir(out), true)
  T.eq(fs.mkdir(other), true)
  T.eq(fs.write(other .. "/f", "f"), true)
  local cfs = fs.confined({ { path = out, write = true, siblings = true } })
  T.eq(cfs.mkdir(out .. ".candled-next"), true)
  T.eq(cfs.write(out .. ".candled-next/x", "x"), true)
  T.eq(cfs.write(out .. "/y", "y"), true)
  T.ok(cfs.lock(out .. ".candled-lock"), "lock beside the root")
  T.fails("EACCES", cfs.write(out .. ".candled-", "no name"))
  T.fails("EACCES", cfs.write(out .. "x/z", "z"))
  T.fails("EACCES", cfs.rename(out .. "/y", other .. "/y"))
  T.fails("EACCES", cfs.rename(other .. "/f", out .. "/f"))
  T.fails("EACCES", cfs.link(other .. "/f", out .. "/f"))
  T.fails("EACCES", cfs.exchange(out, other))
  T.eq(cfs.link(out .. "/y", out .. ".candled-next/y"), true)
  local ok, _, code = cfs.exchange(out, out .. ".candled-next")
  T.ok(ok or code == "ENOSYS" or code == "EINVAL", tostring(code))
  local plain = fs.confined({ { path = out, write = true } })
  T.fails("EACCES", plain.write(out .. ".candled-next/z", "z"))
end)

T.run()
