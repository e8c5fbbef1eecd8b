/*
** bindings/budget_lua.c - budgets between Lua and the runtime: a budget table (config.lua's
** budgets.<name>, or budget.define's spec, validated by the config schema) becomes an
** rt_budget_spec_t, and a budget's state becomes the table rt.budget.status() returns.
*/
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "bindings/bindings.h"
#include "runtime/budget.h"
#include "runtime/config.h"
#include "runtime/duration.h"

#define MAX_WINDOWS 16

/* ---- spec from a Lua table ------------------------------------------------------------------ */

static double field_num(lua_State *L, int t, const char *k, double dflt) {
  lua_getfield(L, t, k);
  double v = lua_isnumber(L, -1) ? lua_tonumber(L, -1) : dflt;
  lua_pop(L, 1);
  return v;
}

/* A duration field (seconds or "30s"/"5m"/...): dflt when absent, -1 when malformed. */
static double field_duration(lua_State *L, int t, const char *k, double dflt) {
  double d = dflt;
  lua_getfield(L, t, k);
  if (rt_duration_value(L, -1, &d) == -1) d = -1;
  lua_pop(L, 1);
  return d;
}

/* Create budget `name` from the validated table at t. Errors are prefixed with `where` + ".". */
static rt_budget_t *create_from(lua_State *L, rt_t *rt, const char *name, int t, const char *where, char *err,
                                size_t errlen) {
  rt_budget_window_spec_t win[MAX_WINDOWS];
  rt_budget_spec_t sp = {0};
  char msg[400];
  t = lua_absindex(L, t);
  sp.reserve = field_num(L, t, "reserve", 0);
  sp.retries = (int)field_num(L, t, "retries", 3);
  sp.queue_max = (int)field_num(L, t, "queue", 10000);
  lua_getfield(L, t, "backoff");
  sp.backoff_base = lua_istable(L, -1) ? field_num(L, -1, "base", 1) : 1;
  sp.backoff_cap = lua_istable(L, -1) ? field_num(L, -1, "cap", 300) : 300;
  lua_getfield(L, t, "breaker");
  sp.breaker_failures = lua_istable(L, -1) ? (int)field_num(L, -1, "failures", 5) : 5;
  sp.breaker_cooldown = lua_istable(L, -1) ? field_duration(L, lua_gettop(L), "cooldown", 60) : 60;
  lua_getfield(L, t, "ban");
  sp.ban_after = lua_istable(L, -1) ? (int)field_num(L, -1, "after_429s", 3) : 3;
  sp.ban_default = lua_istable(L, -1) ? field_duration(L, lua_gettop(L), "duration", 600) : 600;
  lua_getfield(L, t, "used_weight_header");
  sp.used_header = lua_type(L, -1) == LUA_TSTRING ? lua_tostring(L, -1) : NULL;   /* kept on the stack */
  lua_getfield(L, t, "windows");
  int wt = lua_gettop(L);
  sp.nwin = lua_istable(L, wt) ? (int)lua_rawlen(L, wt) : 0;
  if (sp.nwin > MAX_WINDOWS) {
    lua_settop(L, t);
    snprintf(err, errlen, "%s.windows: at most %d windows", where, MAX_WINDOWS);
    return NULL;
  }
  for (int i = 0; i < sp.nwin; i++) {
    lua_rawgeti(L, wt, i + 1);
    win[i].month = 0;
    win[i].per = 0;
    win[i].limit = field_num(L, -1, "limit", 0);
    lua_getfield(L, -1, "per");
    if (lua_type(L, -1) == LUA_TSTRING && strcmp(lua_tostring(L, -1), "month") == 0) win[i].month = 1;
    lua_pop(L, 1);
    if (!win[i].month) win[i].per = field_duration(L, lua_gettop(L), "per", 0);
    lua_pop(L, 1);
  }
  sp.windows = win;
  rt_budget_t *b = rt_budget_create(rt_budgets_of(rt), name, &sp, msg, sizeof msg);
  lua_settop(L, t);
  if (!b) snprintf(err, errlen, "%s.%s", where, msg);
  return b;
}

int rtl_budgets_open(rt_t *rt, lua_State *L, int idx, char *err, size_t errlen) {
  if (rt_budgets_new(rt) < 0) return snprintf(err, errlen, "budgets: out of memory"), -1;
  idx = lua_absindex(L, idx);
  if (rt_config_get(L, idx, "budgets") != LUA_TTABLE) {
    lua_pop(L, 1);
    return 0;
  }
  int t = lua_gettop(L);
  char where[160];
  lua_pushnil(L);
  while (lua_next(L, t)) {
    const char *name = lua_tostring(L, -2);
    snprintf(where, sizeof where, "budgets.%s", name);
    if (!create_from(L, rt, name, lua_gettop(L), where, err, errlen)) {
      lua_settop(L, t - 1);
      return -1;
    }
    lua_pop(L, 1);
  }
  lua_pop(L, 1);
  return 0;
}

rt_budget_t *rtl_budget_define(lua_State *L, const char *name, int idx, char *err, size_t errlen) {
  char where[160];
  snprintf(where, sizeof where, "budget.define('%s')", name);
  return create_from(L, rt_from_lua(L), name, idx, where, err, errlen);
}

/* ---- status tables -------------------------------------------------------------------------- */

static void set_num(lua_State *L, const char *k, double v) {   /* whole numbers as integers */
  if (v == floor(v) && fabs(v) < 9007199254740992.0) lua_pushinteger(L, (lua_Integer)v);
  else lua_pushnumber(L, v);
  lua_setfield(L, -2, k);
}

static void set_int(lua_State *L, const char *k, lua_Integer v) {
  lua_pushinteger(L, v);
  lua_setfield(L, -2, k);
}

static void push_window(lua_State *L, const rt_window_t *w) {
  lua_createtable(L, 0, 10);
  lua_pushstring(L, w->key);
  lua_setfield(L, -2, "per");
  set_num(L, "limit", w->limit);
  set_num(L, "declared", w->limit);
  set_num(L, "effective", rt_window_limit(w));
  lua_pushboolean(L, rt_window_limit(w) < w->limit);
  lua_setfield(L, -2, "learned");
  double cap = rt_window_capacity(w);
  set_num(L, "capacity", cap);
  set_num(L, "used", w->st->used);
  set_num(L, "remaining", cap - w->st->used > 0 ? cap - w->st->used : 0);
  lua_pushstring(L, w->fixed ? "fixed" : "sliding");
  lua_setfield(L, -2, "kind");
  if (w->fixed) set_num(L, "resets_at", rt_window_fixed_end(w, w->st->start));
}

static void push_one(lua_State *L, rt_budget_t *b) {
  double now = rt_now();
  rt_budget_info_t in;
  rt_budget_info(b, &in);
  lua_createtable(L, 0, 16);
  lua_pushstring(L, in.name);
  lua_setfield(L, -2, "name");
  lua_pushboolean(L, in.shared);
  lua_setfield(L, -2, "shared");
  lua_createtable(L, in.nwin, 0);
  for (int i = 0; i < in.nwin; i++) {
    push_window(L, &in.win[i]);
    lua_rawseti(L, -2, i + 1);
  }
  lua_setfield(L, -2, "windows");
  set_int(L, "queued", in.queued);
  set_int(L, "queue_peak", in.queue_peak);
  set_int(L, "queue_max", in.queue_max);
  lua_createtable(L, 0, RT_PRIO_N);
  for (int p = 0; p < RT_PRIO_N; p++) set_int(L, rt_prio_name((rt_prio_t)p), in.waiting[p]);
  lua_setfield(L, -2, "waiting");
  if (in.paused_until > now) {
    set_num(L, "paused_until", in.paused_until);
    set_num(L, "paused_for", in.paused_until - now);
  }
  if (in.banned_until > now) {
    set_num(L, "banned_until", in.banned_until);
    lua_pushstring(L, in.ban_reason);
    lua_setfield(L, -2, "ban_reason");
  }
  set_int(L, "consecutive_429", in.consecutive_429);
  lua_createtable(L, 0, 4);
  lua_pushstring(L, in.breaker == RT_BREAKER_CLOSED ? "closed" : in.breaker == RT_BREAKER_OPEN ? "open" : "half_open");
  lua_setfield(L, -2, "state");
  set_int(L, "failures", in.failures);
  if (in.breaker == RT_BREAKER_OPEN) set_num(L, "open_until", in.open_until);
  lua_setfield(L, -2, "breaker");
  lua_createtable(L, 0, 11);
  set_int(L, "requests", (lua_Integer)in.total.requests);
  set_num(L, "weight", in.total.weight);
  set_int(L, "waits", (lua_Integer)in.total.waits);
  set_num(L, "wait_seconds", in.total.wait_seconds);
  set_num(L, "wait_max", in.wait_max);
  set_int(L, "retries", (lua_Integer)in.total.retries);
  set_int(L, "throttled", (lua_Integer)in.total.throttled);
  set_int(L, "learned", (lua_Integer)in.total.learned);
  set_int(L, "bans", (lua_Integer)in.total.bans);
  set_int(L, "failures", (lua_Integer)in.total.failures);
  set_int(L, "rejected", (lua_Integer)in.total.rejected);
  lua_setfield(L, -2, "metrics");
}

void rtl_budget_push_status(lua_State *L, rt_budgets_t *set, rt_budget_t *b) {
  if (b) {
    push_one(L, b);
    return;
  }
  lua_newtable(L);
  for (rt_budget_t *x = rt_budget_first(set); x; x = rt_budget_next(x)) {
    push_one(L, x);
    lua_setfield(L, -2, rt_budget_name(x));
  }
}
