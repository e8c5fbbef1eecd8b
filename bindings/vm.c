/*
** bindings/vm.c - Lua module "rt.vm": controls of the runtime for its own embedded Lua (the daemon's
** reload code in runtime/lua/). Scripts cannot require it (candled.sandbox refuses it).
**
**   ok, ...      = vm.pcall_budget(seconds, f, ...)  -- f(...) protected, interrupted after `seconds`
**                                                   -- of wall time; false, message+traceback on error
**   seconds      = vm.task_slice([seconds])          -- get (and set) the CPU slice of tasks; 0 = off
**   bool         = vm.stopping()                     -- the daemon is shutting down
**   cfg, err     = vm.config_load()                  -- read and validate the config file again
**                                                   -- (defaults, CANDLED_* overrides); not applied;
**                                                   -- evaluation limited to runtime.task_slice
**   vm.config_commit(cfg)                            -- make cfg the config rt.config returns and apply
**                                                   -- log.level, runtime.shutdown_grace,
**                                                   -- runtime.alert_after_failures, runtime.task_slice,
**                                                   -- runtime.memory_limit
*/
#include "bindings/bindings.h"

#include "runtime/config.h"
#include "runtime/log.h"
#include "runtime/vm.h"

extern char **environ;

static int rtl_vm_pcall_budget(lua_State *L) {
  double seconds = luaL_checknumber(L, 1);
  luaL_checktype(L, 2, LUA_TFUNCTION);
  int nargs = lua_gettop(L) - 2;
  int rc = rt_vm_pcall_budget(L, nargs, LUA_MULTRET, seconds);   /* [seconds results...] */
  lua_pushboolean(L, rc == LUA_OK);
  lua_replace(L, 1);                           /* [ok results...] */
  return lua_gettop(L);
}

static int rtl_vm_task_slice(lua_State *L) {
  if (!lua_isnoneornil(L, 1)) rt_vm_set_task_slice(L, luaL_checknumber(L, 1));
  lua_pushnumber(L, rt_vm_task_slice(L));
  return 1;
}

static int rtl_vm_stopping(lua_State *L) {
  lua_pushboolean(L, rt_stopping(rt_from_lua(L)));
  return 1;
}

static int rtl_vm_config_load(lua_State *L) {
  char err[1024];
  if (lua_getfield(L, LUA_REGISTRYINDEX, RTL_CONFIG_KEY ".file") != LUA_TSTRING)
    return rtl_push_fail(L, "there is no config file to reload", "ENOENT");
  const char *path = lua_tostring(L, -1);      /* kept alive by the registry */
  lua_pop(L, 1);
  /* The chunk runs on a thread of its own under a time limit (the task slice where slices are on):
  ** an endless loop fails this load, never the calling task, which gets a fresh slice afterwards. */
  double slice = rt_vm_task_slice(L);
  rt_task_t *t = rt_task_running(rt_from_lua(L));
  int rc = rt_config_load_limited(L, path, 1, environ, slice > 0 ? slice : RT_CONFIG_TIME_LIMIT, err, sizeof err);
  rt_task_restart_slice(t);
  if (rc < 0) return rtl_push_fail(L, err, "CONFIG");
  return 1;
}

static int rtl_vm_config_commit(lua_State *L) {
  luaL_checktype(L, 1, LUA_TTABLE);
  lua_settop(L, 1);
  rt_config_apply(rt_from_lua(L), L, 1);
  lua_setfield(L, LUA_REGISTRYINDEX, RTL_CONFIG_KEY);
  return 0;
}

static const luaL_Reg vm_funcs[] = {
  {"pcall_budget", rtl_vm_pcall_budget}, {"task_slice", rtl_vm_task_slice},
  {"stopping", rtl_vm_stopping},         {"config_load", rtl_vm_config_load},
  {"config_commit", rtl_vm_config_commit}, {NULL, NULL}};

int luaopen_rt_vm(lua_State *L) {
  luaL_newlib(L, vm_funcs);
  return 1;
}
