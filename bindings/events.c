/*
** bindings/events.c - Lua module "rt.events" over the runtime's event bus (runtime/events.c).
**
**   sub  = events.subscribe(filter, fn [, {queue = 1024, name = "..."}])
**          filter: {kind = "candle" | {"candle", "alert"} (nil: every kind), <field> = "v" | {"v", ...}}
**          fn(event) runs in a task of the subscriber's own, once per event, in commit order.
**   true = events.publish(kind, payload)   -- payload: string keys -> string/number/boolean, or one
**                                          -- level of such tables (bar = {...}); delivered when
**                                          -- the caller's transaction commits (at once outside one)
**   list = events.stats()                  -- {{id, name, kinds, queued, capacity, delivered, dropped,
**                                          --   closed}, ...}
**   sub.id, sub.name, sub:close(), sub:stats()
**
** An event is a new table per subscriber: {kind=, seq=, time=, <fields>}. A handler that raises
** ends its task (logged like any task error) and the subscription. Subscriptions end when the
** daemon stops. Kinds the runtime raises itself (candle, trade, alert, overflow) cannot be
** published by scripts.
*/
#include "bindings/bindings.h"

#include <stdlib.h>
#include <string.h>

#include "runtime/events.h"

#define SUB_MT "rt.events.sub"
#define MAX_FILTER 16
#define MAX_VALUES 64
#define MAX_FIELDS 64
#define BATCH 64                               /* events handed out before the task gives way */

typedef struct {
  uint64_t id;
} sub_handle_t;

static const char *const reserved[] = {"candle", "trade", "alert", "overflow", NULL};

/* ---- events as Lua tables ------------------------------------------------------------------- */

static void push_value(lua_State *L, const rt_event_field_t *f) {
  switch (f->type) {
  case RT_EV_TEXT: lua_pushlstring(L, f->s, f->n); break;
  case RT_EV_INT: lua_pushinteger(L, f->i); break;
  case RT_EV_REAL: lua_pushnumber(L, f->d); break;
  default: lua_pushboolean(L, (int)f->i);
  }
}

static void push_event(lua_State *L, const rt_event_t *ev) {
  lua_createtable(L, 0, ev->nfields + 3);
  for (int i = 0; i < ev->nfields; i++) {
    const char *k = ev->f[i].key, *dot = strchr(k, '.');
    if (!dot) {
      push_value(L, &ev->f[i]);
      lua_setfield(L, -2, k);
      continue;
    }
    lua_pushlstring(L, k, (size_t)(dot - k));
    if (lua_rawget(L, -2) != LUA_TTABLE) {     /* [ev sub?] */
      lua_pop(L, 1);
      lua_newtable(L);
      lua_pushlstring(L, k, (size_t)(dot - k));
      lua_pushvalue(L, -2);
      lua_rawset(L, -4);
    }
    push_value(L, &ev->f[i]);
    lua_setfield(L, -2, dot + 1);
    lua_pop(L, 1);
  }
  lua_pushstring(L, ev->kind);
  lua_setfield(L, -2, "kind");
  lua_pushinteger(L, (lua_Integer)ev->seq);
  lua_setfield(L, -2, "seq");
  lua_pushnumber(L, ev->time);
  lua_setfield(L, -2, "time");
}

/* ---- the subscriber's task ------------------------------------------------------------------ */

static void wake(rt_events_sub_t *sub) {
  rt_task_t *t = sub->waiter;
  sub->waiter = NULL;
  rt_task_resume_later(t, 0);
}

static void cancel_wait(void *ud) { ((rt_events_sub_t *)ud)->waiter = NULL; }

static void on_task_done(rt_task_t *t, void *ud) {
  rt_events_sub_t *sub = rt_events_sub_find(rt_task_rt(t), (uint64_t)(uintptr_t)ud);
  if (!sub) return;
  sub->closed = 1;
  sub->waiter = NULL;
  rt_events_sub_free(sub);
}

/* Stack of the task: [id fn]. Hands queued events to fn one by one; parks when the queue is empty;
** gives way (time.sleep(0)) after BATCH events so other tasks and I/O run. */
static int deliver_k(lua_State *L, int status, lua_KContext ctx) {
  (void)status;
  int given = (int)ctx;
  for (;;) {
    lua_settop(L, 2);
    rt_t *rt = rt_from_lua(L);
    rt_events_sub_t *sub = rt_events_sub_find(rt, (uint64_t)lua_tointeger(L, 1));
    if (!sub || sub->closed) return 0;
    if (given >= BATCH) {
      lua_getfield(L, LUA_REGISTRYINDEX, LUA_LOADED_TABLE);
      lua_getfield(L, -1, "rt.time");
      lua_getfield(L, -1, "sleep");
      lua_replace(L, 3);
      lua_settop(L, 3);
      lua_pushinteger(L, 0);
      lua_callk(L, 1, 0, 0, deliver_k);
      given = 0;
      continue;
    }
    rt_event_t *ev = rt_events_pop(sub);
    if (!ev) {
      rt_task_t *self = rt_task_current(L);
      sub->waiter = self;
      rt_task_on_cancel(self, cancel_wait, sub);
      return rt_task_park_k(L, "events", 0, deliver_k);
    }
    lua_pushvalue(L, 2);
    push_event(L, ev);
    rt_event_unref(ev);
    lua_callk(L, 1, 0, (lua_KContext)(given + 1), deliver_k);
    given++;
  }
}

static int deliver(lua_State *L) { return deliver_k(L, LUA_OK, 0); }

/* ---- subscribe ------------------------------------------------------------------------------ */

/* Strings of the value at idx (a string or a list of strings) into out (up to max), NULL-ended.
** Raises naming `what`. The strings stay alive on the Lua stack / in the filter table. */
static void string_list(lua_State *L, int idx, const char **out, int max, const char *what) {
  int n = 0;
  if (lua_type(L, idx) == LUA_TSTRING) {
    out[n++] = lua_tostring(L, idx);
  } else if (lua_istable(L, idx)) {
    int len = (int)lua_rawlen(L, idx);
    if (len == 0 || len > max - 1) luaL_error(L, "events.subscribe: filter.%s must list 1 to %d strings", what, max - 1);
    for (int i = 1; i <= len; i++) {
      lua_rawgeti(L, idx, i);
      if (lua_type(L, -1) != LUA_TSTRING) luaL_error(L, "events.subscribe: filter.%s[%d] must be a string", what, i);
      out[n++] = lua_tostring(L, -1);
      lua_pop(L, 1);                           /* kept alive by the list */
    }
  } else {
    luaL_error(L, "events.subscribe: filter.%s must be a string or a list of strings, got %s", what,
               luaL_typename(L, idx));
  }
  out[n] = NULL;
}

static int rtl_events_subscribe(lua_State *L) {
  static const char *const allowed[] = {"queue", "name", NULL};
  rt_t *rt = rt_from_lua(L);
  luaL_checktype(L, 1, LUA_TTABLE);
  luaL_checktype(L, 2, LUA_TFUNCTION);
  rtl_check_opts(L, 3, "events.subscribe", allowed);
  int cap = (int)rtl_opt_range(L, 3, "queue", 1024, 1, 1000000, "events.subscribe");
  rt_task_t *cur = rt_task_current(L);
  const char *dflt = cur ? rt_task_name(cur) : "eval";
  const char *name = rtl_opt_string(L, 3, "name", dflt, "events.subscribe");
  lua_settop(L, 3);
  const char *kinds[MAX_VALUES + 1], *fkeys[MAX_FILTER + 1];
  const char *vals[MAX_FILTER][MAX_VALUES + 1];
  const char *const *fvals[MAX_FILTER + 1];
  int have_kinds = 0, nf = 0;
  lua_pushnil(L);
  while (lua_next(L, 1)) {                     /* [.. k v] */
    if (lua_type(L, -2) != LUA_TSTRING) luaL_error(L, "events.subscribe: filter keys must be strings");
    const char *k = lua_tostring(L, -2);
    if (strcmp(k, "kind") == 0) {
      string_list(L, lua_gettop(L), kinds, MAX_VALUES + 1, "kind");
      have_kinds = 1;
    } else {
      if (nf == MAX_FILTER) luaL_error(L, "events.subscribe: more than %d field filters", MAX_FILTER);
      string_list(L, lua_gettop(L), vals[nf], MAX_VALUES + 1, k);
      fkeys[nf] = k;
      fvals[nf] = vals[nf];
      nf++;
    }
    lua_pop(L, 1);                             /* strings stay alive in the filter table */
  }
  fkeys[nf] = NULL;
  fvals[nf] = NULL;
  rt_events_sub_t *sub = rt_events_subscribe(rt, name, have_kinds ? kinds : NULL, fkeys, fvals, cap);
  if (!sub) return luaL_error(L, "events.subscribe: out of memory");
  sub->wake = wake;
  char tname[64];
  snprintf(tname, sizeof tname, "events:%s", name);
  lua_pushcfunction(L, deliver);
  lua_pushinteger(L, (lua_Integer)sub->id);
  lua_pushvalue(L, 2);
  rt_task_t *t = rt_task_spawn(rt, L, 2, tname, NULL);
  if (!t) {
    rt_events_sub_free(sub);
    return luaL_error(L, "events.subscribe: cannot start the task");
  }
  rt_task_on_done(t, on_task_done, (void *)(uintptr_t)sub->id);
  sub_handle_t *h = lua_newuserdatauv(L, sizeof *h, 0);
  h->id = sub->id;
  luaL_setmetatable(L, SUB_MT);
  return 1;
}

/* ---- publish -------------------------------------------------------------------------------- */

static int to_field(lua_State *L, int idx, rt_event_field_t *f, const char *key) {
  f->key = key;
  switch (lua_type(L, idx)) {
  case LUA_TSTRING: f->type = RT_EV_TEXT; f->s = lua_tolstring(L, idx, &f->n); return 1;
  case LUA_TBOOLEAN: f->type = RT_EV_BOOL; f->i = lua_toboolean(L, idx); return 1;
  case LUA_TNUMBER:
    if (lua_isinteger(L, idx)) f->type = RT_EV_INT, f->i = lua_tointeger(L, idx);
    else f->type = RT_EV_REAL, f->d = lua_tonumber(L, idx);
    return 1;
  default: return 0;
  }
}

static int rtl_events_publish(lua_State *L) {
  rt_t *rt = rt_from_lua(L);
  const char *kind = luaL_checkstring(L, 1);
  if (!kind[0] || strlen(kind) > 63) luaL_argerror(L, 1, "a kind of 1 to 63 characters");
  for (int i = 0; reserved[i]; i++)
    if (strcmp(kind, reserved[i]) == 0) luaL_error(L, "events.publish: '%s' is raised by the runtime only", kind);
  if (lua_isnoneornil(L, 2)) lua_newtable(L), lua_replace(L, 2);
  luaL_checktype(L, 2, LUA_TTABLE);
  lua_settop(L, 2);
  rt_event_field_t f[MAX_FIELDS];
  int n = 0, na = 0;
  lua_newtable(L);                             /* 3: keeps the dotted keys alive */
  lua_pushnil(L);
  while (lua_next(L, 2)) {                     /* [payload anchor k v] */
    if (lua_type(L, -2) != LUA_TSTRING) luaL_error(L, "events.publish: payload keys must be strings");
    const char *k = lua_tostring(L, -2);
    if (strchr(k, '.')) luaL_error(L, "events.publish: payload key '%s' has a dot", k);
    if (lua_istable(L, -1)) {
      int sub = lua_gettop(L);
      lua_pushnil(L);
      while (lua_next(L, sub)) {               /* [.. k tbl k2 v2] */
        if (lua_type(L, -2) != LUA_TSTRING) luaL_error(L, "events.publish: payload.%s keys must be strings", k);
        if (n == MAX_FIELDS) luaL_error(L, "events.publish: more than %d fields", MAX_FIELDS);
        const char *dotted = lua_pushfstring(L, "%s.%s", k, lua_tostring(L, -2));
        lua_rawseti(L, 3, ++na);
        if (!to_field(L, -1, &f[n], dotted))
          luaL_error(L, "events.publish: payload.%s: a %s cannot be sent", dotted, luaL_typename(L, -1));
        n++;
        lua_pop(L, 1);
      }
    } else {
      if (n == MAX_FIELDS) luaL_error(L, "events.publish: more than %d fields", MAX_FIELDS);
      if (!to_field(L, -1, &f[n], k))
        luaL_error(L, "events.publish: payload.%s: a %s cannot be sent", k, luaL_typename(L, -1));
      n++;
    }
    lua_pop(L, 1);
  }
  if (!rt_events_wants(rt, kind)) {
    lua_pushboolean(L, 1);
    return 1;
  }
  rt_event_t *ev = rt_event_new(kind, f, n);
  if (!ev) return luaL_error(L, "events.publish: out of memory");
  rt_events_emit(rt, ev);
  lua_pushboolean(L, 1);
  return 1;
}

/* ---- stats and handles ---------------------------------------------------------------------- */

static void push_stats(lua_State *L, const rt_events_sub_t *s) {
  lua_createtable(L, 0, 8);
  lua_pushinteger(L, (lua_Integer)s->id);
  lua_setfield(L, -2, "id");
  lua_pushstring(L, s->name);
  lua_setfield(L, -2, "name");
  lua_newtable(L);
  for (int i = 0; s->kinds && s->kinds[i]; i++) {
    lua_pushstring(L, s->kinds[i]);
    lua_rawseti(L, -2, i + 1);
  }
  lua_setfield(L, -2, "kinds");
  lua_pushinteger(L, s->len);
  lua_setfield(L, -2, "queued");
  lua_pushinteger(L, s->cap);
  lua_setfield(L, -2, "capacity");
  lua_pushinteger(L, (lua_Integer)s->delivered);
  lua_setfield(L, -2, "delivered");
  lua_pushinteger(L, (lua_Integer)s->dropped);
  lua_setfield(L, -2, "dropped");
  lua_pushboolean(L, s->closed);
  lua_setfield(L, -2, "closed");
}

static int rtl_events_stats(lua_State *L) {
  lua_newtable(L);
  int n = 0;
  for (rt_events_sub_t *s = rt_events_subs(rt_from_lua(L)); s; s = s->next) {
    push_stats(L, s);
    lua_rawseti(L, -2, ++n);
  }
  return 1;
}

static int rtl_sub_close(lua_State *L) {
  sub_handle_t *h = luaL_checkudata(L, 1, SUB_MT);
  rt_events_sub_t *sub = rt_events_sub_find(rt_from_lua(L), h->id);
  if (sub) rt_events_sub_close(sub);
  return 0;
}

static int rtl_sub_stats(lua_State *L) {
  sub_handle_t *h = luaL_checkudata(L, 1, SUB_MT);
  rt_events_sub_t *sub = rt_events_sub_find(rt_from_lua(L), h->id);
  if (!sub) {
    lua_pushnil(L);
    return 1;
  }
  push_stats(L, sub);
  return 1;
}

static int rtl_sub_index(lua_State *L) {
  sub_handle_t *h = luaL_checkudata(L, 1, SUB_MT);
  const char *k = luaL_checkstring(L, 2);
  if (strcmp(k, "id") == 0) {
    lua_pushinteger(L, (lua_Integer)h->id);
  } else if (strcmp(k, "name") == 0) {
    rt_events_sub_t *sub = rt_events_sub_find(rt_from_lua(L), h->id);
    if (sub) lua_pushstring(L, sub->name);
    else lua_pushnil(L);
  } else if (strcmp(k, "close") == 0) {
    lua_pushcfunction(L, rtl_sub_close);
  } else if (strcmp(k, "stats") == 0) {
    lua_pushcfunction(L, rtl_sub_stats);
  } else {
    lua_pushnil(L);
  }
  return 1;
}

static const luaL_Reg funcs[] = {
  {"subscribe", rtl_events_subscribe}, {"publish", rtl_events_publish}, {"stats", rtl_events_stats}, {NULL, NULL}};

int luaopen_rt_events(lua_State *L) {
  if (luaL_newmetatable(L, SUB_MT)) {
    lua_pushcfunction(L, rtl_sub_index);
    lua_setfield(L, -2, "__index");
    lua_pushcfunction(L, rtl_sub_close);
    lua_setfield(L, -2, "__close");
  }
  lua_pop(L, 1);
  luaL_newlib(L, funcs);
  return 1;
}
