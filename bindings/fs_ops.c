/*
** bindings/fs_ops.c - rt.fs functions for replacing a whole folder safely (a QLib export root, a
** dataset other programs read while it is rewritten):
**
**   ok, err, code = fs.rename(from, to)       -- rename(2): atomic; `to` is replaced if it exists
**   ok, err, code = fs.link(existing, new)    -- a hard link: `new` shares the file, no bytes copied
**   ok, err, code = fs.exchange(a, b)         -- renameat2(RENAME_EXCHANGE): a and b (files or
**                                             -- folders) swap names in one step, so a reader of
**                                             -- `a` sees the old tree or the new one, never none;
**                                             -- "ENOSYS"/"EINVAL" where the file system cannot
**   ok, err, code = fs.sync(path [, {filesystem = true}])   -- fsync(2) of a file or folder; with
**                                             -- filesystem = true syncfs(2): every file of its
**                                             -- file system (one call after writing many files)
**   lock, err, code = fs.lock(path)           -- flock(LOCK_EX | LOCK_NB) on path (created if
**                                             -- missing): "EAGAIN" while another holder has it
**   lock:unlock()                             -- idempotent; also __close and __gc
**
** A lock is held by its open file description: it excludes other processes and other fs.lock calls
** of this one (two tasks of the daemon), and the kernel drops it when the holder dies (kill -9
** included). The lock file is left in place (removing it would let two holders lock two inodes).
*/
#define _GNU_SOURCE
#include "bindings/fs_ops.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/file.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "bindings/bindings.h"

#ifndef RENAME_EXCHANGE
#define RENAME_EXCHANGE (1 << 1)
#endif

#define LOCK_MT "rt.fs.lock"

int rtl_fs_push_errno(lua_State *L, const char *op, const char *path, int err) {
  lua_pushnil(L);
  lua_pushfstring(L, "%s %s: %s", op, path, strerror(err));
  lua_pushstring(L, rt_errno_name(err));
  return 3;
}

static int push_true(lua_State *L) {
  lua_pushboolean(L, 1);
  return 1;
}

int rtl_fs_rename(lua_State *L) {
  const char *from = luaL_checkstring(L, 1), *to = luaL_checkstring(L, 2);
  if (rename(from, to) < 0) return rtl_fs_push_errno(L, "fs.rename", from, errno);
  return push_true(L);
}

int rtl_fs_link(lua_State *L) {
  const char *from = luaL_checkstring(L, 1), *to = luaL_checkstring(L, 2);
  if (link(from, to) < 0) return rtl_fs_push_errno(L, "fs.link", to, errno);
  return push_true(L);
}

int rtl_fs_exchange(lua_State *L) {
  const char *a = luaL_checkstring(L, 1), *b = luaL_checkstring(L, 2);
#ifdef SYS_renameat2
  if (syscall(SYS_renameat2, AT_FDCWD, a, AT_FDCWD, b, RENAME_EXCHANGE) < 0)
    return rtl_fs_push_errno(L, "fs.exchange", a, errno);
  return push_true(L);
#else
  (void)b;
  return rtl_fs_push_errno(L, "fs.exchange", a, ENOSYS);
#endif
}

int rtl_fs_sync(lua_State *L) {
  static const char *const allowed[] = {"filesystem", NULL};
  const char *path = luaL_checkstring(L, 1);
  rtl_check_opts(L, 2, "fs.sync", allowed);
  int whole = rtl_opt_boolean(L, 2, "filesystem", 0, "fs.sync");
  int fd = open(path, O_RDONLY | O_CLOEXEC);
  if (fd < 0) return rtl_fs_push_errno(L, "fs.sync", path, errno);
  int rc = whole ? syncfs(fd) : fsync(fd), err = errno;
  close(fd);
  if (rc < 0) return rtl_fs_push_errno(L, "fs.sync", path, err);
  return push_true(L);
}

typedef struct {
  int fd;                   /* -1 once unlocked */
} lock_ud_t;

int rtl_fs_lock(lua_State *L) {
  const char *path = luaL_checkstring(L, 1);
  lock_ud_t *u = lua_newuserdatauv(L, sizeof *u, 0);
  u->fd = -1;
  luaL_setmetatable(L, LOCK_MT);
  int fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0644);
  if (fd < 0) return rtl_fs_push_errno(L, "fs.lock", path, errno);
  if (flock(fd, LOCK_EX | LOCK_NB) < 0) {
    int err = errno;
    close(fd);
    if (err == EWOULDBLOCK) {
      lua_pushnil(L);
      lua_pushfstring(L, "fs.lock %s: held by another holder", path);
      lua_pushliteral(L, "EAGAIN");
      return 3;
    }
    return rtl_fs_push_errno(L, "fs.lock", path, err);
  }
  u->fd = fd;
  return 1;
}

static int lock_unlock(lua_State *L) {
  lock_ud_t *u = luaL_checkudata(L, 1, LOCK_MT);
  if (u->fd >= 0) {
    close(u->fd);                              /* closing the description releases the flock */
    u->fd = -1;
  }
  return 0;
}

static int lock_tostring(lua_State *L) {
  lock_ud_t *u = luaL_checkudata(L, 1, LOCK_MT);
  lua_pushstring(L, u->fd >= 0 ? "rt.fs.lock (held)" : "rt.fs.lock (released)");
  return 1;
}

void rtl_fs_ops_open(lua_State *L) {
  if (luaL_newmetatable(L, LOCK_MT)) {
    lua_pushcfunction(L, lock_unlock);
    lua_setfield(L, -2, "__gc");
    lua_pushcfunction(L, lock_unlock);
    lua_setfield(L, -2, "__close");
    lua_pushcfunction(L, lock_tostring);
    lua_setfield(L, -2, "__tostring");
    lua_newtable(L);
    lua_pushcfunction(L, lock_unlock);
    lua_setfield(L, -2, "unlock");
    lua_setfield(L, -2, "__index");
  }
  lua_pop(L, 1);
}
