/*
** bindings/util.c - helpers shared by the rt.* modules.
*/
#include "bindings/bindings.h"

#include <string.h>

int rtl_push_fail(lua_State *L, const char *msg, const char *code) {
  lua_pushnil(L);
  lua_pushstring(L, msg);
  lua_pushstring(L, code);
  return 3;
}

void rtl_check_opts(lua_State *L, int idx, const char *fn, const char *const *allowed) {
  if (lua_isnoneornil(L, idx)) return;
  luaL_checktype(L, idx, LUA_TTABLE);
  idx = lua_absindex(L, idx);
  lua_pushnil(L);
  while (lua_next(L, idx)) {
    lua_pop(L, 1);
    const char *k = lua_type(L, -1) == LUA_TSTRING ? lua_tostring(L, -1) : NULL;
    const char *const *a = allowed;
    while (k && *a && strcmp(*a, k) != 0) a++;
    if (!k || !*a) {
      const char *shown = k ? k : luaL_typename(L, -1);
      luaL_error(L, "%s: unknown option '%s'", fn, shown);
    }
  }
}

static int get_field(lua_State *L, int idx, const char *key) {
  if (lua_isnoneornil(L, idx)) return LUA_TNIL;
  return lua_getfield(L, idx, key);
}

double rtl_opt_number(lua_State *L, int idx, const char *key, double dflt, const char *fn) {
  int t = get_field(L, idx, key);
  if (t == LUA_TNIL) {
    if (!lua_isnoneornil(L, idx)) lua_pop(L, 1);
    return dflt;
  }
  if (t != LUA_TNUMBER) luaL_error(L, "%s: option '%s' must be a number, got %s", fn, key, lua_typename(L, t));
  double v = lua_tonumber(L, -1);
  lua_pop(L, 1);
  return v;
}

double rtl_opt_range(lua_State *L, int idx, const char *key, double dflt, double lo, double hi, const char *fn) {
  double v = rtl_opt_number(L, idx, key, dflt, fn);
  if (!(v >= lo && v <= hi))      /* luaL_error's %f prints a lua_Number like %.14g */
    luaL_error(L, "%s: option '%s' must be between %f and %f, got %f", fn, key, (lua_Number)lo, (lua_Number)hi, (lua_Number)v);
  return v;
}

const char *rtl_opt_string(lua_State *L, int idx, const char *key, const char *dflt, const char *fn) {
  int t = get_field(L, idx, key);
  if (t == LUA_TNIL) {
    if (!lua_isnoneornil(L, idx)) lua_pop(L, 1);
    return dflt;
  }
  if (t != LUA_TSTRING) luaL_error(L, "%s: option '%s' must be a string, got %s", fn, key, lua_typename(L, t));
  const char *s = lua_tostring(L, -1);         /* kept alive by the options table */
  lua_pop(L, 1);
  return s;
}

int rtl_opt_boolean(lua_State *L, int idx, const char *key, int dflt, const char *fn) {
  int t = get_field(L, idx, key);
  if (t == LUA_TNIL) {
    if (!lua_isnoneornil(L, idx)) lua_pop(L, 1);
    return dflt;
  }
  if (t != LUA_TBOOLEAN) luaL_error(L, "%s: option '%s' must be a boolean, got %s", fn, key, lua_typename(L, t));
  int v = lua_toboolean(L, -1);
  lua_pop(L, 1);
  return v;
}

void rtl_count_rows(lua_State *L, int64_t n) {
  rt_task_t *t = rt_task_running(rt_from_lua(L));   /* also inside a script's own coroutine */
  if (t) rt_task_count_rows(t, n);
}

void rtl_sort_list(lua_State *L, int idx) {
  idx = lua_absindex(L, idx);
  lua_getglobal(L, "table");
  lua_getfield(L, -1, "sort");
  lua_pushvalue(L, idx);
  lua_call(L, 1, 0);
  lua_pop(L, 1);
}

int rtl_push_sorted_keys(lua_State *L, int idx, const char *fn, const char *what) {
  idx = lua_absindex(L, idx);
  lua_newtable(L);
  int keys = lua_gettop(L), n = 0;
  lua_pushnil(L);
  while (lua_next(L, idx)) {
    lua_pop(L, 1);
    if (lua_type(L, -1) != LUA_TSTRING) {
      if (what) luaL_error(L, "%s: %s", fn, what);
      continue;
    }
    lua_pushvalue(L, -1);
    lua_rawseti(L, keys, ++n);
  }
  rtl_sort_list(L, keys);
  return n;
}
