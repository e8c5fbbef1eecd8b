/*
** bindings/fs.c - Lua module "rt.fs": small, synchronous file operations for scripts.
**
**   data, err, code = fs.read(path)
**   ok, err, code   = fs.write(path, data [, {sync = false}])   -- atomic: temp file in the same
**                                            -- directory, fsync, rename, fsync of the directory;
**                                            -- sync = false skips both fsyncs (still atomic for
**                                            -- readers; many files, then one fs.sync)
**   names, err, code= fs.list(dir)           -- sorted entry names (no "." or "..")
**   st              = fs.stat(path)          -- {type="file"|"dir"|"other", size=, mtime=, ino=, nlink=}
**                                            -- or nil, err, code
**   ok, err, code   = fs.mkdir(path)         -- with parents; an existing directory is fine
**   ok, err, code   = fs.remove(path)
**   w               = fs.watch(path [, {interval = seconds}])   -- a watcher (default interval 1)
**   changed         = w:wait([timeout])     -- parks: true on a change, false after timeout seconds
**   w:close()                               -- idempotent; also __close and __gc
**   rename, link, exchange, sync, lock        -- bindings/fs_ops.c
**   mod             = fs.confined({{path=, write=, flat=, siblings=}, ...})   -- the same functions, confined to
**                                           -- those roots (nil, msg, "EACCES" elsewhere); scripts
**                                           -- get this one (candled.sandbox), the runtime the above
**
** Codes are errno names ("ENOENT", "EACCES", ...). Relative paths resolve against the working
** directory of the process (the daemon runs from the config file's directory).
**
** A watcher polls stat(): a change is a difference in existence, inode, size or mtime from what the
** file was when the watcher was created or its last wait returned true, so it sees a file that does
** not exist yet, a removal and an atomic replace by rename (which events on the old inode would
** miss). A change made while no task waits is not lost: the next wait returns true at once. Several
** changes within one interval count as one, and so do rewrites in place that keep the size within
** the file system's mtime granularity. w:wait raises outside a task, on a closed watcher, when
** another task already waits on it, and when another task closes it during the wait.
*/
#include "bindings/bindings.h"
#include "bindings/fs_ops.h"
#include "runtime/file_watch.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

/* A FILE or DIR held while Lua allocates (a buffer, a list): boxed in a userdata whose __gc closes
** it, so a memory error (runtime.memory_limit) in the middle does not leak the descriptor. */
#define HANDLE_BOX_MT "rt.fs.handle"

typedef struct { FILE *f; DIR *d; } handle_box_t;

static int handle_box_gc(lua_State *L) {
  handle_box_t *h = lua_touserdata(L, 1);
  if (h->f) fclose(h->f);
  if (h->d) closedir(h->d);
  h->f = NULL;
  h->d = NULL;
  return 0;
}

static handle_box_t *handle_box(lua_State *L) {
  handle_box_t *h = lua_newuserdatauv(L, sizeof *h, 0);
  h->f = NULL;
  h->d = NULL;
  if (luaL_newmetatable(L, HANDLE_BOX_MT)) {
    lua_pushcfunction(L, handle_box_gc);
    lua_setfield(L, -2, "__gc");
  }
  lua_setmetatable(L, -2);
  return h;
}

static int rtl_fs_read(lua_State *L) {
  const char *path = luaL_checkstring(L, 1);
  lua_settop(L, 1);
  handle_box_t *box = handle_box(L);           /* [path box] */
  FILE *f = box->f = fopen(path, "rb");
  if (!f) return rtl_fs_push_errno(L, "fs.read", path, errno);
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
  box->f = NULL;
  if (err) return rtl_fs_push_errno(L, "fs.read", path, err);
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
  static const char *const allowed[] = {"sync", NULL};
  const char *path = luaL_checkstring(L, 1);
  size_t n;
  const char *data = luaL_checklstring(L, 2, &n);
  rtl_check_opts(L, 3, "fs.write", allowed);
  int sync = rtl_opt_boolean(L, 3, "sync", 1, "fs.write");
  lua_settop(L, 2);
  const char *tmp = lua_pushfstring(L, "%s.tmp.%d", path, (int)getpid());
  int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644), err;
  if (fd < 0) return rtl_fs_push_errno(L, "fs.write", path, errno);
  if (write_all(fd, data, n) < 0 || (sync && fsync(fd) < 0)) {
    err = errno;
    close(fd);
    unlink(tmp);
    return rtl_fs_push_errno(L, "fs.write", path, err);
  }
  close(fd);
  if (rename(tmp, path) < 0) {
    err = errno;
    unlink(tmp);
    return rtl_fs_push_errno(L, "fs.write", path, err);
  }
  if (!sync) return lua_pushboolean(L, 1), 1;
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
  lua_settop(L, 1);
  handle_box_t *box = handle_box(L);
  DIR *d = box->d = opendir(path);
  if (!d) return rtl_fs_push_errno(L, "fs.list", path, errno);
  lua_newtable(L);
  int n = 0;
  struct dirent *e;
  while ((e = readdir(d))) {
    if (strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0) continue;
    lua_pushstring(L, e->d_name);
    lua_rawseti(L, -2, ++n);
  }
  closedir(d);
  box->d = NULL;
  rtl_sort_list(L, -1);
  return 1;
}

static int rtl_fs_stat(lua_State *L) {
  const char *path = luaL_checkstring(L, 1);
  struct stat st;
  if (stat(path, &st) < 0) return rtl_fs_push_errno(L, "fs.stat", path, errno);
  lua_createtable(L, 0, 5);
  lua_pushinteger(L, (lua_Integer)st.st_ino);
  lua_setfield(L, -2, "ino");
  lua_pushinteger(L, (lua_Integer)st.st_nlink);
  lua_setfield(L, -2, "nlink");
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
  if (n == 0) return rtl_fs_push_errno(L, "fs.mkdir", path, ENOENT);   /* the loop starts at buf[1] */
  memcpy(buf, path, n + 1);
  for (char *p = buf + 1; ; p++) {
    if (*p == '/' || *p == 0) {
      char c = *p;
      *p = 0;
      if (mkdir(buf, 0755) < 0 && errno != EEXIST) return rtl_fs_push_errno(L, "fs.mkdir", buf, errno);
      *p = c;
      if (!c) break;
    }
  }
  struct stat st;
  if (stat(path, &st) < 0 || !S_ISDIR(st.st_mode)) return rtl_fs_push_errno(L, "fs.mkdir", path, ENOTDIR);
  lua_pushboolean(L, 1);
  return 1;
}

static int rtl_fs_remove(lua_State *L) {
  const char *path = luaL_checkstring(L, 1);
  if (remove(path) < 0) return rtl_fs_push_errno(L, "fs.remove", path, errno);
  lua_pushboolean(L, 1);
  return 1;
}

/* ---- fs.watch: the watcher is runtime/file_watch.c ------------------------------------------ */

#define WATCH_MT "rt.fs.watch"

typedef struct {
  rt_file_watch_t *w;       /* NULL once closed (w:close(), __close or __gc, whichever comes first) */
} rtl_watch_ud_t;

/* Completion of w:wait: 1 changed, 0 timeout -> the boolean; -1 (another task closed the watcher)
** -> nil on the next loop pass, which watch_wait_k turns into an error. The task is parked without
** a reference: it ends only by being resumed from here or cancelled (the hook stops the wait). */
static void on_watch_done(void *ud, int result) {
  rt_task_t *t = ud;
  if (result < 0) {
    rt_task_on_cancel(t, NULL, NULL);          /* the watcher may be freed before t runs */
    lua_pushnil(rt_task_thread(t));
    rt_task_resume_later(t, 1);
    return;
  }
  lua_pushboolean(rt_task_thread(t), result);
  rt_task_resume(t, 1);
}

static void cancel_watch_wait(void *ud) { rt_file_watch_cancel_wait(ud); }

static rt_file_watch_t *check_watch(lua_State *L, const char *what) {
  rtl_watch_ud_t *ud = luaL_checkudata(L, 1, WATCH_MT);
  if (!ud->w) luaL_error(L, "%s: the watcher is closed", what);
  return ud->w;
}

/* fs.watch(path [, {interval = seconds}]) -> watcher. The baseline is the file as it is now. */
static int rtl_fs_watch(lua_State *L) {
  static const char *const allowed[] = {"interval", NULL};
  const char *path = luaL_checkstring(L, 1);
  rtl_check_opts(L, 2, "fs.watch", allowed);
  double interval = rtl_opt_number(L, 2, "interval", 1, "fs.watch");
  if (!(interval > 0 && interval < 1e6)) return luaL_error(L, "fs.watch: option 'interval' must be > 0 seconds");
  rtl_watch_ud_t *ud = lua_newuserdatauv(L, sizeof *ud, 0);   /* created closed (liolib) */
  ud->w = NULL;
  luaL_setmetatable(L, WATCH_MT);
  if (!(ud->w = rt_file_watch_new(rt_from_lua(L), path, interval))) return luaL_error(L, "fs.watch: out of memory");
  return 1;
}

/* On resume the stack is [w timeout value]: value is what the completion pushed. */
static int watch_wait_k(lua_State *L, int status, lua_KContext ctx) {
  (void)status;
  (void)ctx;
  if (lua_isnil(L, -1)) return luaL_error(L, "fs.watch:wait: the watcher was closed while waiting");
  return 1;
}

/* w:wait([timeout]) -> true when the file changed, false when timeout seconds passed first */
static int rtl_watch_wait(lua_State *L) {
  rt_file_watch_t *w = check_watch(L, "fs.watch:wait");
  double timeout = -1;
  if (!lua_isnoneornil(L, 2)) {
    timeout = luaL_checknumber(L, 2);
    luaL_argcheck(L, timeout >= 0 && timeout < 1e9, 2, "timeout must be >= 0 seconds");
  }
  lua_settop(L, 2);
  rt_task_t *t = rt_task_check_can_park(L, "fs.watch:wait");
  if (rt_file_watch_waiting(w)) return luaL_error(L, "fs.watch:wait: another task is already waiting on this watcher");
  if (rt_file_watch_wait(w, timeout, on_watch_done, t)) {   /* changed while nobody waited */
    lua_pushboolean(L, 1);
    return 1;
  }
  rt_task_on_cancel(t, cancel_watch_wait, w);
  return rt_task_park_k(L, "fs.watch:wait", 0, watch_wait_k);
}

/* w:close(), __close and __gc */
static int rtl_watch_close(lua_State *L) {
  rtl_watch_ud_t *ud = luaL_checkudata(L, 1, WATCH_MT);
  rt_file_watch_t *w = ud->w;
  ud->w = NULL;
  if (w) rt_file_watch_close(w);
  return 0;
}

static int rtl_watch_tostring(lua_State *L) {
  rtl_watch_ud_t *ud = luaL_checkudata(L, 1, WATCH_MT);
  if (ud->w) lua_pushfstring(L, "rt.fs.watch (%s)", rt_file_watch_path(ud->w));
  else lua_pushliteral(L, "rt.fs.watch (closed)");
  return 1;
}

/* ---- confinement ---------------------------------------------------------------------------- */

/* The roots a confined module may use: resolved absolute paths, each readable or also writable.
** A userdata owned by the module's closures (upvalue). */
typedef struct {
  int n;
  struct { char path[PATH_MAX]; int write, flat, siblings; } root[32];   /* flat: its files, not below, no
                                             ** *.lua writes; siblings: also <path>.candled-* */
} roots_t;

/* `path` made absolute with symlinks resolved, as far as it exists: the longest existing prefix goes
** through realpath(), the rest (a file or directories still to be created) is appended as written
** but may not contain "." or "..". Returns 0, or -1 when it cannot be resolved. */
static int resolve(const char *path, char *out) {
  char buf[PATH_MAX], rest[PATH_MAX] = "";
  if (snprintf(buf, sizeof buf, "%s", path) >= (int)sizeof buf || !*buf) return -1;
  for (;;) {
    if (realpath(buf, out)) break;
    if (errno != ENOENT) return -1;
    char *slash = strrchr(buf, '/');
    const char *name = slash ? slash + 1 : buf;
    if (!strcmp(name, ".") || !strcmp(name, "..")) return -1;
    char tmp[PATH_MAX];
    if (snprintf(tmp, sizeof tmp, "/%s%s", name, rest) >= (int)sizeof tmp) return -1;
    memcpy(rest, tmp, sizeof rest);
    if (!slash) snprintf(buf, sizeof buf, ".");
    else if (slash == buf) snprintf(buf, sizeof buf, "/");
    else *slash = 0;
  }
  size_t n = strlen(out);
  if (n + strlen(rest) >= PATH_MAX) return -1;
  memcpy(out + (n == 1 && *rest ? 0 : n), rest, strlen(rest) + 1);   /* "/" + "/x" -> "/x" */
  return 0;
}

static int within(const char *p, const char *root) {
  size_t n = strlen(root);
  return strncmp(p, root, n) == 0 && (p[n] == 0 || p[n] == '/' || (n == 1 && root[0] == '/'));
}

/* A file directly in a flat root (and, to write, not a .lua file: code is not data). */
static int within_flat(const char *p, const char *root, int write) {
  size_t n = strlen(root), lp = strlen(p);
  if (!within(p, root)) return 0;
  if (p[n] == 0) return !write;                /* the root itself: list it, never replace it */
  if (strchr(p + n + 1, '/')) return 0;
  return !(write && lp >= 4 && strcmp(p + lp - 4, ".lua") == 0);
}

/* A root's companion: "<root>.candled-<anything>" and below (an export's staging folder and lock). */
static int within_siblings(const char *p, const char *root) {
  size_t n = strlen(root);
  return strncmp(p, root, n) == 0 && strncmp(p + n, ".candled-", 9) == 0 && p[n + 9] && p[n + 9] != '/';
}

static int allowed_path(const roots_t *r, const char *path, int write) {
  char abs[PATH_MAX];
  if (resolve(path, abs) != 0) return 0;
  for (int i = 0; i < r->n; i++) {
    int in = r->root[i].flat ? within_flat(abs, r->root[i].path, write) : within(abs, r->root[i].path);
    if (!in && r->root[i].siblings) in = within_siblings(abs, r->root[i].path);
    if (in && (r->root[i].write || !write)) return 1;
  }
  return 0;
}

/* The confined function: upvalues original, roots, access. `access` holds one letter per path
** argument ('r' read, 'w' write): each is checked, then the original is called. */
static int confined_call(lua_State *L) {
  roots_t *r = lua_touserdata(L, lua_upvalueindex(2));
  const char *access = lua_tostring(L, lua_upvalueindex(3));
  for (int a = 0; access[a]; a++) {
    const char *path = luaL_checkstring(L, a + 1);
    int write = access[a] == 'w';
    if (!allowed_path(r, path, write)) {
      lua_pushnil(L);
      lua_pushfstring(L, "%s: outside the paths scripts may %s (the data folder, paths.fs_roots, watchlists, "
                      "export folders; see README)", path, write ? "write" : "read");
      lua_pushliteral(L, "EACCES");
      return 3;
    }
  }
  lua_pushvalue(L, lua_upvalueindex(1));
  lua_insert(L, 1);
  lua_call(L, lua_gettop(L) - 1, LUA_MULTRET);
  return lua_gettop(L);
}

static const struct { const char *name; lua_CFunction f; const char *access; } confinable[] = {
  {"read", rtl_fs_read, "r"},     {"write", rtl_fs_write, "w"},       {"list", rtl_fs_list, "r"},
  {"stat", rtl_fs_stat, "r"},     {"mkdir", rtl_fs_mkdir, "w"},       {"remove", rtl_fs_remove, "w"},
  {"watch", rtl_fs_watch, "r"},   {"rename", rtl_fs_rename, "ww"},    {"link", rtl_fs_link, "rw"},
  {"exchange", rtl_fs_exchange, "ww"}, {"sync", rtl_fs_sync, "r"},    {"lock", rtl_fs_lock, "w"},
  {NULL, NULL, NULL}};

/* fs.confined({{path=, write=bool, flat=bool, siblings=bool}, ...}) -> a module like rt.fs whose functions
** only reach paths inside those roots (resolved now, symlinks included; a flat root: only the files
** directly in it, and no *.lua written there; siblings: also "<path>.candled-*", an export's staging
** folder and lock beside it); anything else is nil, msg, "EACCES". Every path argument is checked
** (both of rename, link and exchange).
** A root that does not exist yet is resolved as far as it exists. */
static int rtl_fs_confined(lua_State *L) {
  luaL_checktype(L, 1, LUA_TTABLE);
  roots_t *r = lua_newuserdatauv(L, sizeof *r, 0);   /* [roots r] */
  r->n = 0;
  lua_Integer n = (lua_Integer)lua_rawlen(L, 1);
  if (n > (lua_Integer)(sizeof r->root / sizeof *r->root)) return luaL_error(L, "fs.confined: more than 32 roots");
  for (lua_Integer i = 1; i <= n; i++) {
    lua_rawgeti(L, 1, i);
    if (!lua_istable(L, -1)) return luaL_error(L, "fs.confined: root %d must be a table {path=, write=}", (int)i);
    lua_getfield(L, -1, "path");
    const char *p = lua_tostring(L, -1);
    if (!p) return luaL_error(L, "fs.confined: root %d needs a path", (int)i);
    if (resolve(p, r->root[r->n].path) == 0) {
      lua_getfield(L, -2, "write");
      r->root[r->n].write = lua_toboolean(L, -1);
      lua_getfield(L, -3, "flat");
      r->root[r->n].flat = lua_toboolean(L, -1);
      lua_getfield(L, -4, "siblings");
      r->root[r->n].siblings = lua_toboolean(L, -1);
      lua_pop(L, 3);
      r->n++;
    }
    lua_pop(L, 2);
  }
  lua_newtable(L);                             /* [roots r mod] */
  for (int i = 0; confinable[i].name; i++) {
    lua_pushcfunction(L, confinable[i].f);
    lua_pushvalue(L, -3);
    lua_pushstring(L, confinable[i].access);
    lua_pushcclosure(L, confined_call, 3);
    lua_setfield(L, -2, confinable[i].name);
  }
  return 1;
}

static const luaL_Reg fs_funcs[] = {
  {"confined", rtl_fs_confined},
  {"read", rtl_fs_read}, {"write", rtl_fs_write}, {"list", rtl_fs_list}, {"stat", rtl_fs_stat},
  {"mkdir", rtl_fs_mkdir}, {"remove", rtl_fs_remove}, {"watch", rtl_fs_watch},
  {"rename", rtl_fs_rename}, {"link", rtl_fs_link}, {"exchange", rtl_fs_exchange}, {"sync", rtl_fs_sync},
  {"lock", rtl_fs_lock}, {NULL, NULL}};

static const luaL_Reg watch_methods[] = {{"wait", rtl_watch_wait}, {"close", rtl_watch_close}, {NULL, NULL}};

static const luaL_Reg watch_metamethods[] = {
  {"__gc", rtl_watch_close}, {"__close", rtl_watch_close}, {"__tostring", rtl_watch_tostring},
  {"__index", NULL}, {NULL, NULL}};

int luaopen_rt_fs(lua_State *L) {
  if (luaL_newmetatable(L, WATCH_MT)) {
    luaL_setfuncs(L, watch_metamethods, 0);
    luaL_newlib(L, watch_methods);
    lua_setfield(L, -2, "__index");
  }
  lua_pop(L, 1);
  rtl_fs_ops_open(L);
  luaL_newlib(L, fs_funcs);
  return 1;
}
