/*
** bindings/task.c - Lua module "rt.task".
**
**   h            = task.spawn(fn, ...)      -- a new task, started on the next loop iteration
**   r1, r2, ...  = task.all(f1, f2, ...)    -- each f as a child task; waits for all; first results
**                                           -- in order; the first error (by position) is raised
**   ok, ...      = h:join()                 -- waits; true + results, or false + error message
**   ok           = task.cancel(h) / h:cancel()
**   list         = task.list()              -- {{id=, name=, state=, started=, yields=}, ...}
**   h            = task.current()           -- nil outside a task
**   task.sleep(s)                           -- rt.time.sleep
**   h.id, h.name, h:status()                -- "ready" | "running" | "parked" | "ok" | "error" | "cancelled"
**
** A handle holds a reference to the task's C struct, released by __gc, so it stays valid after the
** task has ended; while a handle is alive the task's results are kept, so a join after the end
** still returns them.
*/
#include "bindings/bindings.h"

#include <stdlib.h>
#include <string.h>

#define HANDLE_MT "rt.task.handle"

typedef struct {
  rt_task_t *t;
} handle_t;

static void push_handle(lua_State *L, rt_task_t *t) {
  handle_t *h = lua_newuserdatauv(L, sizeof *h, 0);
  h->t = t;
  rt_task_ref(t);
  rt_task_handles_add(t, 1);
  luaL_setmetatable(L, HANDLE_MT);
}

static rt_task_t *check_handle(lua_State *L, int idx) {
  return ((handle_t *)luaL_checkudata(L, idx, HANDLE_MT))->t;
}

static int handle_gc(lua_State *L) {
  handle_t *h = luaL_checkudata(L, 1, HANDLE_MT);
  if (h->t) {
    rt_task_handles_add(h->t, -1);
    rt_task_unref(h->t);
    h->t = NULL;
  }
  return 0;
}

static const char *status_word(const rt_task_t *t) {
  return rt_task_state(t) == RT_TASK_DONE ? rt_task_status_name(rt_task_status(t)) : rt_task_state_name(rt_task_state(t));
}

static int handle_index(lua_State *L) {
  rt_task_t *t = check_handle(L, 1);
  const char *k = luaL_checkstring(L, 2);
  if (strcmp(k, "id") == 0) lua_pushinteger(L, (lua_Integer)rt_task_id(t));
  else if (strcmp(k, "name") == 0) lua_pushstring(L, rt_task_name(t));
  else {
    luaL_getmetafield(L, 1, "methods");
    lua_getfield(L, -1, k);
  }
  return 1;
}

static int handle_tostring(lua_State *L) {
  rt_task_t *t = check_handle(L, 1);
  lua_pushfstring(L, "task %d (%s, %s)", (int)rt_task_id(t), rt_task_name(t), status_word(t));
  return 1;
}

static int rtl_task_status(lua_State *L) {
  lua_pushstring(L, status_word(check_handle(L, 1)));
  return 1;
}

/* task.spawn(fn, ...) */
static int rtl_task_spawn(lua_State *L) {
  luaL_checktype(L, 1, LUA_TFUNCTION);
  rt_t *rt = rt_from_lua(L);
  rt_task_t *parent = rt_task_running(rt);
  const char *name = parent ? rt_task_name(parent) : "task";
  rt_task_t *t = rt_task_spawn(rt, L, lua_gettop(L) - 1, name, parent);
  if (!t) return luaL_error(L, "task.spawn: out of memory");
  push_handle(L, t);
  return 1;
}

/* task.cancel(h) -> true, or false when it had ended or is the caller itself */
static int rtl_task_cancel(lua_State *L) {
  lua_pushboolean(L, rt_task_cancel(check_handle(L, 1)) == 0);
  return 1;
}

static int rtl_task_current(lua_State *L) {
  rt_task_t *t = rt_task_running(rt_from_lua(L));
  if (t) push_handle(L, t);
  else lua_pushnil(L);
  return 1;
}

static int rtl_task_list(lua_State *L) {
  rt_t *rt = rt_from_lua(L);
  int n = 0;
  lua_newtable(L);
  for (rt_task_t *t = rt_task_first(rt); t; t = rt_task_next(t)) {
    if (rt_task_state(t) == RT_TASK_DONE) continue;
    lua_createtable(L, 0, 5);
    lua_pushinteger(L, (lua_Integer)rt_task_id(t));
    lua_setfield(L, -2, "id");
    lua_pushstring(L, rt_task_name(t));
    lua_setfield(L, -2, "name");
    lua_pushstring(L, rt_task_state_name(rt_task_state(t)));
    lua_setfield(L, -2, "state");
    lua_pushnumber(L, rt_task_started(t));
    lua_setfield(L, -2, "started");
    lua_pushinteger(L, rt_task_yields(t));
    lua_setfield(L, -2, "yields");
    lua_rawseti(L, -2, ++n);
  }
  return 1;
}

/* ---- join ----------------------------------------------------------------------------------- */

/* h:join() waits on the child through a done callback. The wait record is freed by join_k when
** the joiner runs again, or by cancel_join when the joiner is cancelled first. */
typedef struct {
  rt_task_t *joiner;
  rt_task_t *child;            /* referenced until it ended; NULL after */
} join_wait_t;

static void on_joined(rt_task_t *child, void *ud) {
  join_wait_t *w = ud;
  lua_State *co = rt_task_thread(w->joiner);
  int n;
  if (rt_task_status(child) == RT_TASK_OK && lua_checkstack(rt_task_thread(child), rt_task_nres(child)) &&
      lua_checkstack(co, rt_task_nres(child) + 1)) {
    lua_pushboolean(co, 1);
    for (int i = 0; i < rt_task_nres(child); i++) lua_pushvalue(rt_task_thread(child), -rt_task_nres(child));   /* copy r1..rn */
    lua_xmove(rt_task_thread(child), co, rt_task_nres(child));
    n = 1 + rt_task_nres(child);
  } else if (rt_task_status(child) == RT_TASK_OK) {
    lua_pushboolean(co, 0);
    lua_pushliteral(co, "task.join: too many results");
    n = 2;
  } else {
    lua_pushboolean(co, 0);
    lua_pushstring(co, rt_task_status(child) == RT_TASK_ERROR ? rt_task_error(child) : "cancelled");
    n = 2;
  }
  w->child = NULL;
  rt_task_unref(child);
  rt_task_resume_later(w->joiner, n);
}

static void cancel_join(void *ud) {
  join_wait_t *w = ud;
  if (w->child) {
    rt_task_off_done(w->child, on_joined, w);
    rt_task_unref(w->child);
  }
  free(w);
}

static int join_k(lua_State *L, int status, lua_KContext ctx) {
  free((join_wait_t *)ctx);
  (void)status;
  return lua_gettop(L) - 1;                    /* what on_joined pushed (above the handle) */
}

static int rtl_task_join(lua_State *L) {
  rt_task_t *child = check_handle(L, 1);
  lua_settop(L, 1);
  if (rt_task_state(child) == RT_TASK_DONE) {
    lua_pushboolean(L, rt_task_status(child) == RT_TASK_OK);
    if (rt_task_status(child) == RT_TASK_OK) {           /* the results kept for this late join */
      if (rt_task_results_ref(child) == LUA_NOREF) return 1;
      luaL_checkstack(L, rt_task_nres(child), "task.join: too many results");
      lua_rawgeti(L, LUA_REGISTRYINDEX, rt_task_results_ref(child));
      for (int i = 1; i <= rt_task_nres(child); i++) lua_rawgeti(L, 3, i);
      lua_remove(L, 3);
      return 1 + rt_task_nres(child);
    }
    lua_pushstring(L, rt_task_status(child) == RT_TASK_ERROR ? rt_task_error(child) : "cancelled");
    return 2;
  }
  rt_task_t *self = rt_task_check_can_park(L, "task.join");
  if (child == self) return luaL_error(L, "task.join: a task cannot join itself");
  join_wait_t *w = malloc(sizeof *w);
  if (!w) return luaL_error(L, "task.join: out of memory");
  w->joiner = self;
  w->child = child;
  rt_task_ref(child);
  rt_task_on_done(child, on_joined, w);
  rt_task_on_cancel(self, cancel_join, w);
  return rt_task_park_k(L, "task.join", (lua_KContext)w, join_k);
}

/* ---- all ------------------------------------------------------------------------------------ */

typedef struct {
  rt_task_t *parent;
  int n, left, cancelled;
  int results;                 /* registry ref: table of first results by position */
  int error_at;                /* lowest position that failed, 0 = none */
  char *error;
  rt_task_t **children;
} group_t;

typedef struct {
  group_t *g;
  int pos;
} member_t;

static void group_free(rt_t *rt, group_t *g) {
  for (int i = 0; i < g->n; i++)
    if (g->children[i]) rt_task_unref(g->children[i]);
  if (rt_lua_of(rt)) rt_unref(rt, rt_lua_of(rt), g->results);
  free(g->error);
  free(g->children);
  free(g);
}

static void on_member_done(rt_task_t *child, void *ud) {
  member_t *m = ud;
  group_t *g = m->g;
  rt_t *rt = rt_task_rt(child);
  if (rt_task_status(child) == RT_TASK_OK && rt_task_nres(child) > 0) {
    lua_rawgeti(rt_task_thread(child), LUA_REGISTRYINDEX, g->results);
    lua_pushvalue(rt_task_thread(child), -1 - rt_task_nres(child));   /* the first result */
    lua_rawseti(rt_task_thread(child), -2, m->pos);
    lua_pop(rt_task_thread(child), 1);
  } else if (rt_task_status(child) != RT_TASK_OK && (g->error_at == 0 || m->pos < g->error_at)) {
    free(g->error);
    g->error = strdup(rt_task_error(child) ? rt_task_error(child) : "cancelled");
    g->error_at = m->pos;
  }
  free(m);
  if (--g->left > 0) return;
  if (g->cancelled) group_free(rt, g);
  else rt_task_resume_later(g->parent, 0);
}

/* The parent was cancelled: cancel the children still going. The group is freed by the last
** member's done callback, which may run inside this loop, so work from a private copy. */
static void cancel_group(void *ud) {
  group_t *g = ud;
  rt_t *rt = rt_task_rt(g->parent);
  if (g->left == 0) {                          /* all ended; the parent's resume was still queued */
    group_free(rt, g);
    return;
  }
  int n = g->n;
  rt_task_t **kids = malloc((size_t)n * sizeof *kids);
  if (!kids) return;
  for (int i = 0; i < n; i++) rt_task_ref(kids[i] = g->children[i]);
  g->cancelled = 1;
  for (int i = 0; i < n; i++)
    if (kids[i]->state != RT_TASK_DONE) rt_task_cancel(kids[i]);
  for (int i = 0; i < n; i++) rt_task_unref(kids[i]);
  free(kids);
}

static int all_k(lua_State *L, int status, lua_KContext ctx) {
  group_t *g = (group_t *)ctx;
  rt_t *rt = rt_from_lua(L);
  (void)status;
  if (g->error) {
    lua_pushfstring(L, "task.all: task %d failed: %s", g->error_at, g->error);
    group_free(rt, g);
    return lua_error(L);
  }
  lua_rawgeti(L, LUA_REGISTRYINDEX, g->results);
  int n = g->n, t = lua_gettop(L);
  luaL_checkstack(L, n, "task.all: too many results");
  for (int i = 1; i <= n; i++) lua_rawgeti(L, t, i);
  group_free(rt, g);
  return n;
}

/* task.all(f1, f2, ...) */
static int rtl_task_all(lua_State *L) {
  int n = lua_gettop(L);
  for (int i = 1; i <= n; i++) luaL_checktype(L, i, LUA_TFUNCTION);
  rt_task_t *self = rt_task_check_can_park(L, "task.all");
  if (n == 0) return 0;
  rt_t *rt = self->rt;
  group_t *g = calloc(1, sizeof *g);
  if (!g || !(g->children = calloc((size_t)n, sizeof *g->children))) {
    free(g);
    return luaL_error(L, "task.all: out of memory");
  }
  g->parent = self;
  g->n = n;
  lua_newtable(L);
  g->results = rt_ref(rt, L);
  for (int i = 1; i <= n; i++) {
    member_t *m = malloc(sizeof *m);
    if (!m) return luaL_error(L, "task.all: out of memory");
    m->g = g;
    m->pos = i;
    lua_pushvalue(L, i);
    rt_task_t *c = rt_task_spawn(rt, L, 0, self->name, self);
    if (!c) return luaL_error(L, "task.all: out of memory");
    rt_task_ref(c);
    g->children[i - 1] = c;
    g->left++;
    rt_task_on_done(c, on_member_done, m);
  }
  rt_task_on_cancel(self, cancel_group, g);
  return rt_task_park_k(L, "task.all", (lua_KContext)g, all_k);
}

static const luaL_Reg task_funcs[] = {
  {"spawn", rtl_task_spawn}, {"all", rtl_task_all}, {"cancel", rtl_task_cancel},
  {"list", rtl_task_list}, {"current", rtl_task_current}, {NULL, NULL}};

static const luaL_Reg handle_methods[] = {
  {"join", rtl_task_join}, {"cancel", rtl_task_cancel}, {"status", rtl_task_status}, {NULL, NULL}};

int luaopen_rt_task(lua_State *L) {
  if (luaL_newmetatable(L, HANDLE_MT)) {
    lua_pushcfunction(L, handle_gc);
    lua_setfield(L, -2, "__gc");
    lua_pushcfunction(L, handle_index);
    lua_setfield(L, -2, "__index");
    lua_pushcfunction(L, handle_tostring);
    lua_setfield(L, -2, "__tostring");
    luaL_newlib(L, handle_methods);
    lua_setfield(L, -2, "methods");
  }
  lua_pop(L, 1);
  luaL_newlib(L, task_funcs);
  luaL_requiref(L, "rt.time", luaopen_rt_time, 0);   /* task.sleep is rt.time.sleep */
  lua_getfield(L, -1, "sleep");
  lua_setfield(L, -3, "sleep");
  lua_pop(L, 1);
  return 1;
}
