/*
** bindings/fs.c - Lua module "rt.fs": small, synchronous file operations for scripts.
**
**   data, err, code = fs.read(path)
**   ok, err, code   = fs.write(path, data)   -- atomic: temp file in the same directory, fsync, rename
**   names, err, code= fs.list(dir)           -- sorted entry names (no "." or "..")
**   st              = fs.stat(path)          -- {type="file"|"dir"|"other", size=, mtime=} or nil, err, code
**   ok, err, code   = fs.mkdir(path)         -- with parents; an existing directory is fine
**   ok, err, code   = fs.remove(path)
**
** Codes are errno names ("ENOENT", "EACCES", ...). Relative paths resolve against the working
** directory of the process (the daemon runs from the config file's directory).
*/
#include "bindings/bindings.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static int push_errno(lua_State *L, const char *op, const char *path, int err) {
  lua_pushnil(L);
  lua_pushfstring(L, "%s %s: %s", op, path, strerror(err));
  lua_pushstring(L, uv_err_name(uv_translate_sys_error(err)));
  return 3;
}

static int rtl_fs_read(lua_State *L) {
  const char *path = luaL_checkstring(L, 1);
  FILE *f = fopen(path, "rb");
  if (!f) return push_errno(L, "fs.read", path, errno);
  luaL_Buffer b;
  luaL_buffinit(L, &b);
  size_t n;
  do {
    char *p = luaL_prepbuffer(&b);
    n = fread(p, 1, LUAL_BUFFERSIZE, f);
    luaL_addsize(&b, n);
  } while (n == LUAL_BUFFERSIZE);
  int err = ferror(f) ? errno : 0;
  fclose(f);
  if (err) return push_errno(L, "fs.read", path, err);
  luaL_pushresult(&b);
  return 1;
}

static int write_all(int fd, const char *p, size_t n) {
  while (n > 0) {
    ssize_t w = write(fd, p, n);
    if (w < 0) {
      if (errno == EINTR) continue;
      return -1;
    }
    p += w;
    n -= (size_t)w;
  }
  return 0;
}

/* fs.write(path, data): readers see the old file or the new one, never half of it. */
static int rtl_fs_write(lua_State *L) {
  const char *path = luaL_checkstring(L, 1);
  size_t n;
  const char *data = luaL_checklstring(L, 2, &n);
  const char *tmp = lua_pushfstring(L, "%s.tmp.%d", path, (int)getpid());
  int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644), err;
  if (fd < 0) return push_errno(L, "fs.write", path, errno);
  if (write_all(fd, data, n) < 0 || fsync(fd) < 0) {
    err = errno;
    close(fd);
    unlink(tmp);
    return push_errno(L, "fs.write", path, err);
  }
  close(fd);
  if (rename(tmp, path) < 0) {
    err = errno;
    unlink(tmp);
    return push_errno(L, "fs.write", path, err);
  }
  /* make the rename durable: fsync the directory */
  const char *slash = strrchr(path, '/');
  const char *dir = slash ? lua_pushlstring(L, path, slash == path ? 1 : (size_t)(slash - path)) : ".";
  int dfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (dfd >= 0) {
    fsync(dfd);
    close(dfd);
  }
  lua_pushboolean(L, 1);
  return 1;
}

static int rtl_fs_list(lua_State *L) {
  const char *path = luaL_checkstring(L, 1);
  DIR *d = opendir(path);
  if (!d) return push_errno(L, "fs.list", path, errno);
  lua_newtable(L);
  int n = 0;
  struct dirent *e;
  while ((e = readdir(d))) {
    if (strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0) continue;
    lua_pushstring(L, e->d_name);
    lua_rawseti(L, -2, ++n);
  }
  closedir(d);
  rtl_sort_list(L, -1);
  return 1;
}

static int rtl_fs_stat(lua_State *L) {
  const char *path = luaL_checkstring(L, 1);
  struct stat st;
  if (stat(path, &st) < 0) return push_errno(L, "fs.stat", path, errno);
  lua_createtable(L, 0, 3);
  lua_pushstring(L, S_ISREG(st.st_mode) ? "file" : S_ISDIR(st.st_mode) ? "dir" : "other");
  lua_setfield(L, -2, "type");
  lua_pushinteger(L, (lua_Integer)st.st_size);
  lua_setfield(L, -2, "size");
  lua_pushnumber(L, (double)st.st_mtim.tv_sec + st.st_mtim.tv_nsec / 1e9);
  lua_setfield(L, -2, "mtime");
  return 1;
}

static int rtl_fs_mkdir(lua_State *L) {
  size_t n;
  const char *path = luaL_checklstring(L, 1, &n);
  char buf[4096];
  if (n >= sizeof buf) return luaL_argerror(L, 1, "path too long");
  if (n == 0) return push_errno(L, "fs.mkdir", path, ENOENT);   /* the loop starts at buf[1] */
  memcpy(buf, path, n + 1);
  for (char *p = buf + 1; ; p++) {
    if (*p == '/' || *p == 0) {
      char c = *p;
      *p = 0;
      if (mkdir(buf, 0755) < 0 && errno != EEXIST) return push_errno(L, "fs.mkdir", buf, errno);
      *p = c;
      if (!c) break;
    }
  }
  struct stat st;
  if (stat(path, &st) < 0 || !S_ISDIR(st.st_mode)) return push_errno(L, "fs.mkdir", path, ENOTDIR);
  lua_pushboolean(L, 1);
  return 1;
}

static int rtl_fs_remove(lua_State *L) {
  const char *path = luaL_checkstring(L, 1);
  if (remove(path) < 0) return push_errno(L, "fs.remove", path, errno);
  lua_pushboolean(L, 1);
  return 1;
}

static const luaL_Reg fs_funcs[] = {
  {"read", rtl_fs_read}, {"write", rtl_fs_write}, {"list", rtl_fs_list}, {"stat", rtl_fs_stat},
  {"mkdir", rtl_fs_mkdir}, {"remove", rtl_fs_remove}, {NULL, NULL}};

int luaopen_rt_fs(lua_State *L) {
  luaL_newlib(L, fs_funcs);
  return 1;
}
