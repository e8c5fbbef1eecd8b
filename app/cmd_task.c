/*
** app/cmd_task.c - `candled eval` (a Lua file as a task) and the subcommands scripts provide
** (backfill, watchlist, export, backup, backups, status, replay: runtime/lua/cli.lua).
*/
#include "app/app.h"

#include <lauxlib.h>
#include <string.h>
#include <unistd.h>

#include "runtime/dblock.h"
#include "runtime/sched.h"
#include "runtime/store.h"
#include "runtime/task.h"

/* ---- eval ----------------------------------------------------------------------------------- */

static void on_eval_done(rt_task_t *t, void *ud) {
  rt_t *rt = ud;
  rt->shutdown_grace = 0;                      /* leftover tasks are cancelled at once */
  rt_stop(rt, t->status == RT_TASK_OK ? 0 : 1);
}

int cmd_eval(rt_t *rt, const char *file, int argc, char **argv) {
  lua_State *L = rt->L;
  int rc = strcmp(file, "-") == 0 ? luaL_loadfilex(L, NULL, "t") : luaL_loadfilex(L, file, "t");
  if (rc != LUA_OK) {
    fprintf(stderr, "candled: %s\n", lua_tostring(L, -1));
    lua_pop(L, 1);
    return 1;
  }
  for (int i = 0; i < argc; i++) lua_pushstring(L, argv[i]);
  rt_task_t *t = rt_task_spawn(rt, L, argc, "eval", NULL);
  if (!t || rt_signals_start(rt) < 0) {
    fprintf(stderr, "candled: cannot start the task\n");
    return 1;
  }
  rt_task_on_done(t, on_eval_done, rt);
  return rt_run(rt);
}

/* ---- subcommands provided by scripts (backfill, watchlist) --------------------------------- */

/* The task ran candled.cli's run(): its one result is the exit code. */
static void on_command_done(rt_task_t *t, void *ud) {
  rt_t *rt = ud;
  int code = 1;
  if (t->status == RT_TASK_OK && t->nres > 0 && lua_isinteger(rt_task_thread(t), -1))
    code = (int)lua_tointeger(rt_task_thread(t), -1);
  else if (t->status == RT_TASK_ERROR)
    fprintf(stderr, "candled: %s\n", t->error ? t->error : "error");
  rt->shutdown_grace = 0;
  rt_stop(rt, code);
}

int cmd_script(rt_t *rt, const char *command, int argc, char **argv) {
  lua_State *L = rt->L;
  /* only asking whether a daemon runs; the descriptor stays open until rt_close (see rt.h) */
  int daemon = rt_dblock_held(rt_store_path(rt->store), &rt->db_fd) == 1;
  if (rt_sched_init(rt) < 0) {                 /* scripts may trigger schedules: none exist here */
    fprintf(stderr, "candled: cannot start the scheduler\n");
    return 1;
  }
  lua_getglobal(L, "require");
  lua_pushliteral(L, "candled.cli");
  if (rt_vm_pcall(L, 1, 1) != LUA_OK) {
    fprintf(stderr, "candled: %s\n", lua_tostring(L, -1));
    return 1;
  }
  lua_getfield(L, -1, "run");
  lua_remove(L, -2);
  lua_pushstring(L, command);
  lua_pushboolean(L, isatty(STDERR_FILENO));
  lua_pushboolean(L, daemon);
  luaL_checkstack(L, argc, "too many arguments");
  for (int i = 0; i < argc; i++) lua_pushstring(L, argv[i]);
  rt_task_t *t = rt_task_spawn(rt, L, argc + 3, command, NULL);
  if (!t || rt_signals_start(rt) < 0) {
    fprintf(stderr, "candled: cannot start the task\n");
    return 1;
  }
  rt_task_on_done(t, on_command_done, rt);
  return rt_run(rt);
}
