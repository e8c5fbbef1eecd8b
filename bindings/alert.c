/*
** bindings/alert.c - Lua module "rt.alert": the alerts table, for scripts and the operator.
**
**   new        = alert.raise(kind, subject, message [, level])  -- level "info" | "warn" | "error"
**                                                              -- (default "warn"); true when newly opened
**   was_open   = alert.resolve(kind, subject)
**   rows       = alert.list([{all=true}])    -- open alerts (or all), newest first
**
** The runtime raises its own: rate_limited, banned, breaker_open (subject: the budget) and
** run_failing (subject: the script); each resolves when its condition clears.
*/
#include <string.h>

#include "bindings/bindings.h"
#include "runtime/alert.h"
#include "runtime/store.h"

static int rtl_alert_raise(lua_State *L) {
  static const char *const levels[] = {"info", "warn", "error", NULL};
  rt_t *rt = rt_from_lua(L);
  const char *kind = luaL_checkstring(L, 1), *subject = luaL_checkstring(L, 2);
  const char *msg = luaL_checkstring(L, 3);
  const char *level = levels[luaL_checkoption(L, 4, "warn", levels)];
  if (!rt_store_of(rt)) return luaL_error(L, "alert.raise: no database");
  int rc = rt_alert_raise(rt, kind, subject, level, msg);
  if (rc < 0) return rtl_push_fail(L, rt_store_errmsg(rt_store_of(rt)), "SQLITE_ERROR");
  lua_pushboolean(L, rc == 1);
  return 1;
}

static int rtl_alert_resolve(lua_State *L) {
  rt_t *rt = rt_from_lua(L);
  const char *kind = luaL_checkstring(L, 1), *subject = luaL_checkstring(L, 2);
  if (!rt_store_of(rt)) return luaL_error(L, "alert.resolve: no database");
  int rc = rt_alert_resolve(rt, kind, subject);
  if (rc < 0) return rtl_push_fail(L, rt_store_errmsg(rt_store_of(rt)), "SQLITE_ERROR");
  lua_pushboolean(L, rc == 1);
  return 1;
}

static int rtl_alert_list(lua_State *L) {
  static const char *const allowed[] = {"all", NULL};
  rt_t *rt = rt_from_lua(L);
  rtl_check_opts(L, 1, "alert.list", allowed);
  int all = rtl_opt_boolean(L, 1, "all", 0, "alert.list");
  if (!rt_store_of(rt)) return luaL_error(L, "alert.list: no database");
  const char *sql = all ? "SELECT id, kind, subject, level, message, opened, last_seen, count, resolved"
                          " FROM alerts ORDER BY id DESC"
                        : "SELECT id, kind, subject, level, message, opened, last_seen, count, resolved"
                          " FROM alerts WHERE resolved IS NULL ORDER BY id DESC";
  rt_store_stmt_t *st;
  if (rt_store_query(rt_store_of(rt), sql, strlen(sql), &st, NULL) != RT_STORE_OK)
    return rtl_push_fail(L, rt_store_errmsg(rt_store_of(rt)), "SQLITE_ERROR");
  lua_newtable(L);
  int n = 0, rc;
  while ((rc = rt_store_stmt_step(st)) == RT_STORE_ROW) {
    rtl_push_store_row(L, st);
    lua_rawseti(L, -2, ++n);
  }
  rt_store_stmt_reset(st);
  if (rc != RT_STORE_DONE) return rtl_push_fail(L, rt_store_errmsg(rt_store_of(rt)), "SQLITE_ERROR");
  return 1;
}

static const luaL_Reg alert_funcs[] = {
  {"raise", rtl_alert_raise},
  {"resolve", rtl_alert_resolve},
  {"list", rtl_alert_list},
  {NULL, NULL}};

int luaopen_rt_alert(lua_State *L) {
  luaL_newlib(L, alert_funcs);
  return 1;
}
