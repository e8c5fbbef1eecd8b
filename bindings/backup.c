/*
** bindings/backup.c - rt.backup (private to the runtime's embedded Lua: candled.backup holds the
** policy): the store's backups and checks, run on a background thread while the task waits.
**
**   info = backup.take(dest)   -- parks; a verified copy of the database at dest:
**       {path, size, started, finished, check = "ok", tables = {name = rows, ...}}
**       or nil, message, "BACKUP_FAILED"
**   ok, problem = backup.quick_check()   -- parks; quick_check of the database file:
**       true | false, "first problem" | nil, message, "UNREADABLE"
**   path = backup.database()   -- the database file's path
*/
#include <stdlib.h>
#include <string.h>

#include "bindings/bindings.h"
#include "runtime/store.h"
#include "runtime/store_backup.h"

/* One waiting task per job; the job outlives a cancelled task (abandoned, freed when it ends). */
typedef struct {
  rt_task_t *t;
  void *job;
  int is_check;
} waiter_t;

static void on_cancel(void *ud) {
  waiter_t *w = ud;
  if (w->is_check) rt_check_abandon(w->job);
  else rt_backup_abandon(w->job);
  rt_task_unref(w->t);
  free(w);
}

static void on_backup_done(void *ud, const rt_backup_result_t *r) {
  waiter_t *w = ud;
  rt_task_t *t = w->t;
  lua_State *co = rt_task_thread(t);
  int n = 1;
  if (r->ok) {
    lua_createtable(co, 0, 6);
    lua_pushnumber(co, (lua_Number)r->size);
    lua_setfield(co, -2, "size");
    lua_pushnumber(co, r->started);
    lua_setfield(co, -2, "started");
    lua_pushnumber(co, r->finished);
    lua_setfield(co, -2, "finished");
    lua_pushstring(co, r->check);
    lua_setfield(co, -2, "check");
    lua_createtable(co, 0, r->ntables);
    for (int i = 0; i < r->ntables; i++) {
      lua_pushinteger(co, r->tables[i].rows);
      lua_setfield(co, -2, r->tables[i].name);
    }
    lua_setfield(co, -2, "tables");
  } else {
    n = rtl_push_fail(co, r->err, "BACKUP_FAILED");
  }
  free(w);
  rt_task_resume(t, n);
  rt_task_unref(t);
}

static int l_take(lua_State *L) {
  const char *dest = luaL_checkstring(L, 1);
  rt_t *rt = rt_from_lua(L);
  rt_task_t *t = rt_task_check_can_park(L, "backup.take");
  if (!rt_store_of(rt)) return luaL_error(L, "backup.take: no database is open");
  waiter_t *w = calloc(1, sizeof *w);
  if (!w) return luaL_error(L, "backup.take: out of memory");
  w->t = t;
  w->job = rt_backup_queue(rt_loop_of(rt), rt_store_path(rt_store_of(rt)), dest, on_backup_done, w);
  if (!w->job) {
    free(w);
    return rtl_push_fail(L, "backup.take: cannot queue the backup", "BACKUP_FAILED");
  }
  rt_task_ref(t);
  rt_task_on_cancel(t, on_cancel, w);
  return rt_task_park(L, "backup.take");
}

static void on_check_done(void *ud, int ok, const char *problem) {
  waiter_t *w = ud;
  rt_task_t *t = w->t;
  lua_State *co = rt_task_thread(t);
  int n = 1;
  if (ok < 0) {
    n = rtl_push_fail(co, problem, "UNREADABLE");
  } else {
    lua_pushboolean(co, ok);
    if (!ok) {
      lua_pushstring(co, problem);
      n = 2;
    }
  }
  free(w);
  rt_task_resume(t, n);
  rt_task_unref(t);
}

static int l_quick_check(lua_State *L) {
  rt_t *rt = rt_from_lua(L);
  rt_task_t *t = rt_task_check_can_park(L, "backup.quick_check");
  if (!rt_store_of(rt)) return luaL_error(L, "backup.quick_check: no database is open");
  waiter_t *w = calloc(1, sizeof *w);
  if (!w) return luaL_error(L, "backup.quick_check: out of memory");
  w->t = t;
  w->is_check = 1;
  w->job = rt_check_queue(rt_loop_of(rt), rt_store_path(rt_store_of(rt)), on_check_done, w);
  if (!w->job) {
    free(w);
    return rtl_push_fail(L, "backup.quick_check: cannot queue the check", "UNREADABLE");
  }
  rt_task_ref(t);
  rt_task_on_cancel(t, on_cancel, w);
  return rt_task_park(L, "backup.quick_check");
}

static int l_database(lua_State *L) {
  rt_t *rt = rt_from_lua(L);
  if (!rt_store_of(rt)) return 0;
  lua_pushstring(L, rt_store_path(rt_store_of(rt)));
  return 1;
}

int luaopen_rt_backup(lua_State *L) {
  static const luaL_Reg fns[] = {
    {"take", l_take}, {"quick_check", l_quick_check}, {"database", l_database}, {NULL, NULL}};
  luaL_newlib(L, fns);
  return 1;
}
