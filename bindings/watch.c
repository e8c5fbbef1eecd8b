/*
** bindings/watch.c - Lua module "rt.watch": directory change events and SIGHUP for the daemon's
** reload task (runtime/lua/reload.lua). Scripts cannot require it (candled.sandbox refuses it);
** they have rt.fs.watch.
**
**   w               = watch.new()
**   ok, err, code   = w:add(dir)        -- change events of dir (not recursive: add subdirectories too);
**                                       -- adding a watched dir again restarts its watch
**   w:remove(dir)                       -- stop watching dir (no-op when not watched)
**   w:hup()                             -- SIGHUP counts as an event from now on
**   ev              = w:wait([timeout]) -- parks until something happened: {paths = {"dir/name", ...},
**                                       -- hup = true|nil}; false when timeout seconds passed first
**   w:close()                           -- idempotent; also __close and __gc
**
** Events that arrive while no task waits are queued; the next wait returns them at once. A watcher
** never keeps the loop alive (its handles are unref'd).
**
** Lifetime: the userdata holds a pointer to the runtime's watcher (runtime/watch.c), which owns the
** libuv handles and frees itself after its last close callback; the pointer is cleared on close.
*/
#include "bindings/bindings.h"

#include "runtime/watch.h"

#define WATCH_MT "rt.watch"

typedef struct { rt_watch_t *w; } ud_t;   /* w: NULL once closed */

static ud_t *check_open(lua_State *L) {
  ud_t *u = luaL_checkudata(L, 1, WATCH_MT);
  if (!u->w) luaL_error(L, "rt.watch: the watcher is closed");
  return u;
}

/* Completion of w:wait: resume the waiter with {paths=, hup=} or false (timeout, close). From
** w:close (inside another task) the resume is queued instead of nested. */
static void on_wait_done(void *ud, const char *const *paths, int n, int hup, int closing) {
  rt_task_t *t = ud;
  lua_State *co = rt_task_thread(t);
  if (n == 0 && !hup) {
    lua_pushboolean(co, 0);
  } else {
    lua_createtable(co, 0, 2);
    lua_createtable(co, n, 0);
    for (int i = 0; i < n; i++) {
      lua_pushstring(co, paths[i]);
      lua_rawseti(co, -2, i + 1);
    }
    lua_setfield(co, -2, "paths");
    if (hup) {
      lua_pushboolean(co, 1);
      lua_setfield(co, -2, "hup");
    }
  }
  if (closing) {
    rt_task_on_cancel(t, NULL, NULL);          /* the watcher may be freed before t runs */
    rt_task_resume_later(t, 1);
  } else {
    rt_task_resume(t, 1);
  }
}

static void cancel_wait(void *ud) { rt_watch_cancel_wait(ud); }

static int rtl_watch_new(lua_State *L) {
  ud_t *u = lua_newuserdatauv(L, sizeof *u, 0);
  u->w = NULL;
  luaL_setmetatable(L, WATCH_MT);
  if (!(u->w = rt_watch_new(rt_from_lua(L)))) return luaL_error(L, "rt.watch: out of memory");
  return 1;
}

/* w:add(dir) -> true | nil, msg, code */
static int rtl_watch_add(lua_State *L) {
  ud_t *u = check_open(L);
  const char *path = luaL_checkstring(L, 2);
  int rc = rt_watch_add(u->w, path);
  if (rc < 0) {
    lua_pushnil(L);
    lua_pushfstring(L, "watch %s: %s", path, rt_watch_strerror(rc));
    lua_pushstring(L, rt_watch_errname(rc));
    return 3;
  }
  lua_pushboolean(L, 1);
  return 1;
}

static int rtl_watch_remove(lua_State *L) {
  rt_watch_remove(check_open(L)->w, luaL_checkstring(L, 2));
  return 0;
}

static int rtl_watch_hup(lua_State *L) {
  int rc = rt_watch_hup(check_open(L)->w);
  if (rc < 0) return luaL_error(L, "rt.watch: SIGHUP: %s", rt_watch_strerror(rc));
  return 0;
}

/* w:wait([timeout]) */
static int rtl_watch_wait(lua_State *L) {
  ud_t *u = check_open(L);
  double timeout = luaL_optnumber(L, 2, -1);
  if (rt_watch_waiting(u->w)) return luaL_error(L, "rt.watch: another task is already waiting");
  rt_task_t *t = rt_task_check_can_park(L, "watch:wait");
  rt_watch_wait(u->w, timeout, on_wait_done, t);
  rt_task_on_cancel(t, cancel_wait, u->w);
  return rt_task_park(L, "watch:wait");
}

static int rtl_watch_close(lua_State *L) {
  ud_t *u = luaL_checkudata(L, 1, WATCH_MT);
  rt_watch_t *w = u->w;
  if (!w) return 0;
  u->w = NULL;
  rt_watch_close(w);
  return 0;
}

static const luaL_Reg watch_methods[] = {
  {"add", rtl_watch_add}, {"remove", rtl_watch_remove}, {"hup", rtl_watch_hup},
  {"wait", rtl_watch_wait}, {"close", rtl_watch_close}, {NULL, NULL}};

static const luaL_Reg watch_funcs[] = {{"new", rtl_watch_new}, {NULL, NULL}};

int luaopen_rt_watch(lua_State *L) {
  if (luaL_newmetatable(L, WATCH_MT)) {
    luaL_newlib(L, watch_methods);
    lua_setfield(L, -2, "__index");
    lua_pushcfunction(L, rtl_watch_close);
    lua_setfield(L, -2, "__gc");
    lua_pushcfunction(L, rtl_watch_close);
    lua_setfield(L, -2, "__close");
  }
  lua_pop(L, 1);
  luaL_newlib(L, watch_funcs);
  return 1;
}
