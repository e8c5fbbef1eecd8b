/*
** bindings/repl.c - Lua module "rt.repl": what the embedded REPL code (runtime/lua/repl.lua) needs
** from the C side of the REPL server.
**
**   ok        = repl.send(client, text)   -- text to REPL client `client` (an 'O' frame);
**                                         -- false when that client has gone
**   ok, err   = repl.cancel(task_id)      -- cancel any task by id: true, or nil and why
**   yes       = repl.listening()          -- the daemon's REPL socket is open
*/
#include "bindings/bindings.h"
#include "runtime/repl.h"
#include "runtime/repl_proto.h"

static int rtl_repl_send(lua_State *L) {
  lua_Integer id = luaL_checkinteger(L, 1);
  size_t len;
  const char *text = luaL_checklstring(L, 2, &len);
  lua_pushboolean(L, rt_repl_send(rt_from_lua(L), (uint64_t)id, RT_REPL_OUTPUT, text, len) == 0);
  return 1;
}

static int rtl_repl_cancel(lua_State *L) {
  lua_Integer id = luaL_checkinteger(L, 1);
  rt_t *rt = rt_from_lua(L);
  rt_task_t *t = id > 0 ? rt_task_find(rt, (uint64_t)id) : NULL;
  if (!t || t->state == RT_TASK_DONE) return rtl_push_fail(L, lua_pushfstring(L, "no running task %I", id), "ENOENT");
  if (t == rt->tasks.current || t->state == RT_TASK_RUNNING)
    return rtl_push_fail(L, "a task cannot cancel itself", "EINVAL");
  rt_task_cancel(t);
  lua_pushboolean(L, 1);
  return 1;
}

static int rtl_repl_listening(lua_State *L) {
  lua_pushboolean(L, rt_from_lua(L)->repl != NULL);
  return 1;
}

static const luaL_Reg repl_funcs[] = {
  {"send", rtl_repl_send}, {"cancel", rtl_repl_cancel}, {"listening", rtl_repl_listening}, {NULL, NULL}};

int luaopen_rt_repl(lua_State *L) {
  luaL_newlib(L, repl_funcs);
  return 1;
}
