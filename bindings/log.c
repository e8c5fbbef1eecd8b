/*
** bindings/log.c - Lua module "rt.log": structured logging through the runtime's logger.
**
**   log.debug|info|warn|error(msg [, fields])   -- fields: {key = value, ...}, written sorted
**   log.level()                                 -- the current level name
**
** The script name in each line is the running task's name (the script, for scheduled runs).
*/
#include "bindings/bindings.h"

#include <string.h>

#include "runtime/log.h"

static int write_at(lua_State *L, rt_log_level_t level) {
  rt_t *rt = rt_from_lua(L);
  size_t mlen;
  lua_settop(L, 2);                            /* [msg fields]: luaL_tolstring pushes above them */
  if (!lua_isnil(L, 2)) luaL_checktype(L, 2, LUA_TTABLE);
  const char *msg = luaL_tolstring(L, 1, &mlen);  /* any value, like print */
  if (!rt_log_enabled(rt_log_of(rt), level)) return 0;
  const char *fields = NULL;
  if (lua_istable(L, 2)) {
    int n = rtl_push_sorted_keys(L, 2, "log", NULL);   /* [.. keys] */
    int keys = lua_gettop(L);
    luaL_Buffer b;
    luaL_buffinit(L, &b);
    for (int i = 1; i <= n; i++) {
      lua_rawgeti(L, keys, i);
      lua_pushvalue(L, -1);
      lua_gettable(L, 2);                      /* [.. keys (buf) k v] */
      size_t klen, vlen;
      const char *v = luaL_tolstring(L, -1, &vlen);   /* [.. k v vs] */
      const char *k = lua_tolstring(L, -3, &klen);
      char kcopy[128], vcopy[1024];
      if (klen >= sizeof kcopy) klen = sizeof kcopy - 1;
      if (vlen >= sizeof vcopy) vlen = sizeof vcopy - 1;
      memcpy(kcopy, k, klen);
      memcpy(vcopy, v, vlen);
      lua_pop(L, 3);                           /* buffer ops need the buffer's own top */
      rt_log_append_field(&b, kcopy, klen, vcopy, vlen);
    }
    luaL_pushresult(&b);
    fields = lua_tostring(L, -1);
  }
  rt_task_t *t = rt_task_running(rt);
  rt_log_write(rt_log_of(rt), level, t ? rt_task_name(t) : NULL, msg, fields);
  return 0;
}

static int rtl_log_debug(lua_State *L) { return write_at(L, RT_LOG_DEBUG); }
static int rtl_log_info(lua_State *L) { return write_at(L, RT_LOG_INFO); }
static int rtl_log_warn(lua_State *L) { return write_at(L, RT_LOG_WARN); }
static int rtl_log_error(lua_State *L) { return write_at(L, RT_LOG_ERROR); }

static int rtl_log_level(lua_State *L) {
  static const char *const names[] = {"debug", "info", "warn", "error"};
  rt_t *rt = rt_from_lua(L);
  for (int i = RT_LOG_DEBUG; i <= RT_LOG_ERROR; i++)
    if (rt_log_enabled(rt_log_of(rt), (rt_log_level_t)i)) {
      lua_pushstring(L, names[i]);
      return 1;
    }
  lua_pushstring(L, "error");
  return 1;
}

static const luaL_Reg log_funcs[] = {
  {"debug", rtl_log_debug}, {"info", rtl_log_info}, {"warn", rtl_log_warn},
  {"error", rtl_log_error}, {"level", rtl_log_level}, {NULL, NULL}};

int luaopen_rt_log(lua_State *L) {
  luaL_newlib(L, log_funcs);
  return 1;
}
