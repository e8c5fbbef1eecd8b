/*
** runtime/vm.c - the Lua state.
**
** The allocator counts bytes into rt->lua_mem and carries the runtime context as its user data,
** which is how rt_from_lua() finds the context from any thread without a registry lookup.
** Modules (bindings) and embedded Lua (the files of runtime/lua/ and runtime/repl/ as "candled.<name>") are installed in
** package.preload: nothing is loaded until required.
**
** CPU limits and protected calls: vm_call.c.
*/
#include "runtime/vm.h"

#include <lauxlib.h>
#include <lualib.h>
#include <stdlib.h>
#include <string.h>

#include "runtime/log.h"
#include "runtime/rt.h"
#include "runtime/strlib.h"
#include "runtime/vm_call.h"
#include "runtime/task.h"

static void *rt_alloc(void *ud, void *ptr, size_t osize, size_t nsize) {
  rt_t *rt = ud;
  if (nsize == 0) {
    if (ptr) rt->lua_mem -= osize;
    free(ptr);
    return NULL;
  }
  /* The limit holds while a task runs (a protected call: the failure is a Lua memory error there);
  ** the runtime's own allocations from loop callbacks are never refused (no panic). */
  if (rt->lua_mem_limit && nsize > (ptr ? osize : 0) && rt->tasks.current &&
      rt->lua_mem + (nsize - (ptr ? osize : 0)) > rt->lua_mem_limit)
    return NULL;
  void *p = realloc(ptr, nsize);
  if (p) rt->lua_mem += nsize - (ptr ? osize : 0);
  return p;
}

static int on_panic(lua_State *L) {
  rt_t *rt = rt_from_lua(L);
  const char *msg = lua_tostring(L, -1);
  rt_log_printf(rt->log, RT_LOG_ERROR, NULL, "unprotected Lua error: %s", msg ? msg : "?");
  abort();
}

/* package.preload loader for embedded Lua: upvalue 1 = index into rt_vm_embedded. */
static int load_embedded(lua_State *L) {
  const rt_vm_embedded_t *e = &rt_vm_embedded[lua_tointeger(L, lua_upvalueindex(1))];
  char chunk[128];
  snprintf(chunk, sizeof chunk, "=[embedded %s]", e->name);
  if (luaL_loadbufferx(L, e->src, e->len, chunk, "t") != LUA_OK) return lua_error(L);
  lua_pushstring(L, e->name);
  lua_call(L, 1, 1);
  return 1;
}

void rt_vm_add_path(lua_State *L, const char *dir) {
  lua_getglobal(L, "package");
  lua_getfield(L, -1, "path");
  lua_pushfstring(L, "%s/?.lua;%s/?/init.lua;%s", dir, dir, lua_tostring(L, -1));
  lua_setfield(L, -3, "path");
  lua_pop(L, 2);
}

int rt_vm_open(rt_t *rt, const rt_vm_module_t *modules) {
  lua_State *L = lua_newstate(rt_alloc, rt);
  if (!L) return -1;
  /* Lua leaves the main thread's extra space uninitialised and copies it into every new thread:
  ** zero it, so rt_task_current() finds no task on the main thread or a script's own coroutines. */
  memset(lua_getextraspace(L), 0, LUA_EXTRASPACE);
  rt->L = L;
  lua_atpanic(L, on_panic);
  lua_gc(L, LUA_GCGEN, 0, 0);                  /* collectors make many short-lived row tables */
  luaL_openlibs(L);
  rt_strlib_install(L);                        /* bounded matching, no dump, a hidden metatable */
  lua_getglobal(L, "package");
  lua_getfield(L, -1, "preload");              /* [package preload] */
  for (const rt_vm_module_t *m = modules; m && m->name; m++) {
    lua_pushcfunction(L, m->open);
    lua_setfield(L, -2, m->name);
  }
  for (int i = 0; rt_vm_embedded[i].name; i++) {
    lua_pushinteger(L, i);
    lua_pushcclosure(L, load_embedded, 1);
    lua_setfield(L, -2, rt_vm_embedded[i].name);
  }
  lua_pop(L, 1);
  /* Scripts find their modules through paths added by the daemon; never the system's. */
  lua_pushliteral(L, "");
  lua_setfield(L, -2, "cpath");
  lua_pushliteral(L, "");
  lua_setfield(L, -2, "path");
  lua_pop(L, 1);
  rt_vm_limits_install(L);                     /* the count hook, inherited by every new thread */
  return 0;
}

void rt_vm_close(rt_t *rt) {
  if (!rt->L) return;
  lua_close(rt->L);
  rt->L = NULL;
}
