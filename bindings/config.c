/*
** bindings/config.c - Lua module "rt.config": the validated configuration, read-only.
**
**   v = config.get("sources.binance_spot.base_url" [, default])   -- a copy for tables
**   t = config.all()                                              -- a deep copy of everything
**   f = config.file()                                             -- the config file, or nil
**
** Scripts get copies so no script can change what another one (or the runtime) sees.
*/
#include "bindings/bindings.h"

#include "runtime/config.h"

/* Push a deep copy of the value at idx. */
static void push_copy(lua_State *L, int idx, int depth) {
  idx = lua_absindex(L, idx);
  if (!lua_istable(L, idx) || depth > 32) {
    lua_pushvalue(L, idx);
    return;
  }
  lua_newtable(L);
  lua_pushnil(L);
  while (lua_next(L, idx)) {                   /* [copy k v] */
    lua_pushvalue(L, -2);
    push_copy(L, -2, depth + 1);               /* [copy k v k v'] */
    lua_rawset(L, -5);
    lua_pop(L, 1);
  }
}

static void push_config(lua_State *L) {
  if (lua_getfield(L, LUA_REGISTRYINDEX, RTL_CONFIG_KEY) != LUA_TTABLE) {
    lua_pop(L, 1);
    luaL_error(L, "rt.config: no configuration is loaded");
  }
}

static int rtl_config_get(lua_State *L) {
  const char *path = luaL_checkstring(L, 1);
  int has_default = lua_gettop(L) >= 2;        /* counted before the config table is pushed */
  push_config(L);
  if (rt_config_get(L, -1, path) == LUA_TNIL && has_default) {
    lua_pushvalue(L, 2);
    return 1;
  }
  push_copy(L, -1, 0);
  return 1;
}

static int rtl_config_all(lua_State *L) {
  push_config(L);
  push_copy(L, -1, 0);
  return 1;
}

static int rtl_config_file(lua_State *L) {
  lua_getfield(L, LUA_REGISTRYINDEX, RTL_CONFIG_KEY ".file");
  return 1;
}

static const luaL_Reg config_funcs[] = {
  {"get", rtl_config_get}, {"all", rtl_config_all}, {"file", rtl_config_file}, {NULL, NULL}};

int luaopen_rt_config(lua_State *L) {
  luaL_newlib(L, config_funcs);
  return 1;
}
