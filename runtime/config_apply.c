/*
** runtime/config_apply.c - the one place where a validated config reaches the runtime context's
** settings that follow a reload: app/main.c's setup calls it at start, rt.vm.config_commit on every
** accepted config reload. Settings fixed for the process's life (database, HTTP engine, budgets)
** are read by the setup alone.
*/
#include "runtime/config.h"

#include "runtime/log.h"
#include "runtime/vm.h"

void rt_config_apply(rt_t *rt, lua_State *L, int idx) {
  idx = lua_absindex(L, idx);
  rt_config_get(L, idx, "log.level");
  int level = rt_log_parse_level(lua_tostring(L, -1));
  if (level >= 0) rt_log_set_level(rt->log, (rt_log_level_t)level);
  rt_config_get(L, idx, "runtime.shutdown_grace");
  rt->shutdown_grace = lua_tonumber(L, -1);
  rt_config_get(L, idx, "runtime.alert_after_failures");
  rt->alert_after_failures = (int)lua_tointeger(L, -1);
  if (rt_config_get(L, idx, "runtime.task_slice") == LUA_TNUMBER && rt_vm_task_slice(L) > 0)
    rt_vm_set_task_slice(L, lua_tonumber(L, -1));   /* only where slices are on (the daemon) */
  rt_config_get(L, idx, "runtime.memory_limit");
  rt->lua_mem_limit = (size_t)lua_tointeger(L, -1) << 20;   /* validated: 0..2^20 MiB */
  lua_pop(L, 5);
}
