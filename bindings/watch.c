/*
** bindings/watch.c - Lua module "rt.watch": directory change events and SIGHUP for the daemon's
** reload task (runtime/lua/reload.lua). Scripts cannot require it (candled.sandbox refuses it);
** they have rt.fs.watch.
**
**   w               = watch.new()
**   ok, err, code   = w:add(dir)        -- uv_fs_event on dir (not recursive: add subdirectories too);
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
** Lifetime: the userdata holds a pointer to a malloc'd watcher_t (libuv needs the handles until their
** close callbacks, which may come after the userdata is collected). Closing closes every handle;
** the last close callback frees the struct (close_done). Close callbacks never touch Lua: they may
** run after the Lua state is gone (rt_close).
*/
#include "bindings/bindings.h"

#include <signal.h>
#include <stdlib.h>
#include <string.h>

#define WATCH_MT "rt.watch"

typedef struct watcher_s watcher_t;

typedef struct dir_s {
  uv_fs_event_t h;
  watcher_t *w;
  struct dir_s *next;
  char path[];              /* owned with the struct */
} dir_t;

struct watcher_s {
  rt_t *rt;
  dir_t *dirs;              /* watched directories; each freed in its close callback */
  uv_signal_t sig;
  int sig_on;               /* sig initialised (w:hup) */
  uv_timer_t timer;         /* the timeout of a wait */
  int closed;               /* w:close() ran: handles are closing */
  int open_handles;         /* handles initialised and not yet closed back */
  char **events;            /* queued "dir/name" paths (owned), n of cap */
  int n, cap;
  int hup;                  /* SIGHUP seen since the last wait returned */
  rt_task_t *waiter;        /* the task parked in w:wait, or NULL */
};

typedef struct { watcher_t *w; } ud_t;

static watcher_t *check_open(lua_State *L) {
  ud_t *u = luaL_checkudata(L, 1, WATCH_MT);
  if (!u->w || u->w->closed) luaL_error(L, "rt.watch: the watcher is closed");
  return u->w;
}

/* ---- closing -------------------------------------------------------------------------------- */

static void close_done(watcher_t *w) {
  if (--w->open_handles > 0) return;
  for (int i = 0; i < w->n; i++) free(w->events[i]);
  free(w->events);
  free(w);
}

static void on_uv_dir_closed(uv_handle_t *h) {
  dir_t *d = h->data;
  watcher_t *w = d->w;
  free(d);
  close_done(w);
}

static void on_uv_closed(uv_handle_t *h) { close_done(h->data); }

static void dir_close(dir_t *d) {
  uv_fs_event_stop(&d->h);
  uv_close((uv_handle_t *)&d->h, on_uv_dir_closed);
}

/* ---- delivering ----------------------------------------------------------------------------- */

/* Resume the waiter with the queued events (or false when there are none: timeout, close). `later`:
** from inside another task (w:close), queue the resume instead of nesting it. */
static void deliver_as(watcher_t *w, int later) {
  rt_task_t *t = w->waiter;
  if (!t) return;
  w->waiter = NULL;
  uv_timer_stop(&w->timer);
  lua_State *co = rt_task_thread(t);
  if (w->n == 0 && !w->hup) {
    lua_pushboolean(co, 0);
  } else {
    lua_createtable(co, 0, 2);
    lua_createtable(co, w->n, 0);
    for (int i = 0; i < w->n; i++) {
      lua_pushstring(co, w->events[i]);
      lua_rawseti(co, -2, i + 1);
      free(w->events[i]);
    }
    lua_setfield(co, -2, "paths");
    if (w->hup) {
      lua_pushboolean(co, 1);
      lua_setfield(co, -2, "hup");
    }
    w->n = 0;
    w->hup = 0;
  }
  if (later) {
    rt_task_on_cancel(t, NULL, NULL);          /* w may be freed before t runs */
    rt_task_resume_later(t, 1);
  } else {
    rt_task_resume(t, 1);
  }
}

static void deliver(watcher_t *w) { deliver_as(w, 0); }

static void queue(watcher_t *w, const char *dir, const char *name) {
  if (w->n == w->cap) {
    int cap = w->cap ? w->cap * 2 : 16;
    char **p = realloc(w->events, (size_t)cap * sizeof *p);
    if (!p) return;                            /* out of memory: the wake-up still happens */
    w->events = p;
    w->cap = cap;
  }
  size_t len = strlen(dir) + (name ? strlen(name) + 1 : 0) + 1;
  char *s = malloc(len);
  if (!s) return;
  snprintf(s, len, name ? "%s/%s" : "%s", dir, name);
  w->events[w->n++] = s;
}

static void on_uv_fs_event(uv_fs_event_t *h, const char *filename, int events, int status) {
  dir_t *d = h->data;
  watcher_t *w = d->w;
  if (w->closed) return;
  queue(w, d->path, status < 0 ? NULL : filename);
  if (w->waiter) deliver(w);
}

static void on_uv_sighup(uv_signal_t *s, int signum) {
  watcher_t *w = s->data;
  if (w->closed) return;
  w->hup = 1;
  if (w->waiter) deliver(w);
}

static void on_uv_timeout(uv_timer_t *tm) { deliver(tm->data); }

static void cancel_wait(void *ud) {
  watcher_t *w = ud;
  w->waiter = NULL;
  uv_timer_stop(&w->timer);
}

/* ---- the API -------------------------------------------------------------------------------- */

static int rtl_watch_new(lua_State *L) {
  rt_t *rt = rt_from_lua(L);
  ud_t *u = lua_newuserdatauv(L, sizeof *u, 0);
  u->w = NULL;
  luaL_setmetatable(L, WATCH_MT);
  watcher_t *w = calloc(1, sizeof *w);
  if (!w) return luaL_error(L, "rt.watch: out of memory");
  w->rt = rt;
  uv_timer_init(&rt->loop, &w->timer);
  uv_unref((uv_handle_t *)&w->timer);
  w->timer.data = w;
  w->open_handles = 1;
  u->w = w;
  return 1;
}

static dir_t *find_dir(watcher_t *w, const char *path, dir_t ***link) {
  for (dir_t **pp = &w->dirs; *pp; pp = &(*pp)->next)
    if (strcmp((*pp)->path, path) == 0) {
      if (link) *link = pp;
      return *pp;
    }
  return NULL;
}

static void remove_dir(watcher_t *w, const char *path) {
  dir_t **pp, *d = find_dir(w, path, &pp);
  if (!d) return;
  *pp = d->next;
  dir_close(d);
}

/* w:add(dir) */
static int rtl_watch_add(lua_State *L) {
  watcher_t *w = check_open(L);
  size_t len;
  const char *path = luaL_checklstring(L, 2, &len);
  remove_dir(w, path);
  dir_t *d = malloc(sizeof *d + len + 1);
  if (!d) return luaL_error(L, "rt.watch: out of memory");
  memcpy(d->path, path, len + 1);
  d->w = w;
  uv_fs_event_init(&w->rt->loop, &d->h);
  d->h.data = d;
  w->open_handles++;
  int rc = uv_fs_event_start(&d->h, on_uv_fs_event, path, 0);
  if (rc < 0) {
    uv_close((uv_handle_t *)&d->h, on_uv_dir_closed);
    lua_pushnil(L);
    lua_pushfstring(L, "watch %s: %s", path, uv_strerror(rc));
    lua_pushstring(L, uv_err_name(rc));
    return 3;
  }
  uv_unref((uv_handle_t *)&d->h);
  d->next = w->dirs;
  w->dirs = d;
  lua_pushboolean(L, 1);
  return 1;
}

static int rtl_watch_remove(lua_State *L) {
  remove_dir(check_open(L), luaL_checkstring(L, 2));
  return 0;
}

static int rtl_watch_hup(lua_State *L) {
  watcher_t *w = check_open(L);
  if (w->sig_on) return 0;
  uv_signal_init(&w->rt->loop, &w->sig);
  w->sig.data = w;
  w->sig_on = 1;
  w->open_handles++;
  int rc = uv_signal_start(&w->sig, on_uv_sighup, SIGHUP);
  if (rc < 0) return luaL_error(L, "rt.watch: SIGHUP: %s", uv_strerror(rc));
  uv_unref((uv_handle_t *)&w->sig);
  return 0;
}

/* w:wait([timeout]) */
static int rtl_watch_wait(lua_State *L) {
  watcher_t *w = check_open(L);
  double timeout = luaL_optnumber(L, 2, -1);
  if (w->waiter) return luaL_error(L, "rt.watch: another task is already waiting");
  rt_task_t *t = rt_task_check_can_park(L, "watch:wait");
  w->waiter = t;
  if (w->n > 0 || w->hup) {                    /* queued: deliver from the loop, not from here */
    uv_timer_start(&w->timer, on_uv_timeout, 0, 0);
  } else if (timeout >= 0) {
    uv_timer_start(&w->timer, on_uv_timeout, rt_ms(timeout), 0);
  }
  rt_task_on_cancel(t, cancel_wait, w);
  return rt_task_park(L, "watch:wait");
}

static int rtl_watch_close(lua_State *L) {
  ud_t *u = luaL_checkudata(L, 1, WATCH_MT);
  watcher_t *w = u->w;
  if (!w) return 0;
  u->w = NULL;
  w->closed = 1;
  if (w->waiter) deliver_as(w, 1);             /* the waiting task gets false */
  while (w->dirs) {
    dir_t *d = w->dirs;
    w->dirs = d->next;
    dir_close(d);
  }
  if (w->sig_on) {
    uv_signal_stop(&w->sig);
    uv_close((uv_handle_t *)&w->sig, on_uv_closed);
  }
  uv_close((uv_handle_t *)&w->timer, on_uv_closed);
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
