/*
** runtime/repl/link.c - the Lua module "rt.repl": what the REPL's Lua (repl.lua, beside it) needs
** from the server. It lives with the REPL, not in bindings/, so the REPL is one folder that no
** other layer calls back into; app/main.c installs it with the other rt.* modules.
**
**   ok        = repl.send(client, text)   -- text to REPL client `client` (an 'O' frame);
**                                         -- false when that client has gone
**   ok, err   = repl.cancel(task_id)      -- cancel any task by id: true, or nil and why
**   yes       = repl.listening()          -- the daemon's REPL socket is open
*/
#include "runtime/repl/link.h"

#include <lauxlib.h>

#include "runtime/repl/proto.h"
#include "runtime/repl/server.h"
#include "runtime/task.h"

/* nil, msg, code (the convention of every rt.* module). */
static int push_fail(lua_State *L, const char *msg, const char *code) {
  lua_pushnil(L);
  lua_pushstring(L, msg);
  lua_pushstring(L, code);
  return 3;
}

static int repl_send(lua_State *L) {
  lua_Integer id = luaL_checkinteger(L, 1);
  size_t len;
  const char *text = luaL_checklstring(L, 2, &len);
  lua_pushboolean(L, rt_repl_send(rt_from_lua(L), (uint64_t)id, RT_REPL_OUTPUT, text, len) == 0);
  return 1;
}

static int repl_cancel(lua_State *L) {
  lua_Integer id = luaL_checkinteger(L, 1);
  rt_t *rt = rt_from_lua(L);
  rt_task_t *t = id > 0 ? rt_task_find(rt, (uint64_t)id) : NULL;
  if (!t || t->state == RT_TASK_DONE) return push_fail(L, lua_pushfstring(L, "no running task %I", id), "ENOENT");
  if (t == rt->tasks.current || t->state == RT_TASK_RUNNING)
    return push_fail(L, "a task cannot cancel itself", "EINVAL");
  rt_task_cancel(t);
  lua_pushboolean(L, 1);
  return 1;
}

static int repl_listening(lua_State *L) {
  lua_pushboolean(L, rt_from_lua(L)->repl != NULL);
  return 1;
}

static const luaL_Reg repl_funcs[] = {
  {"send", repl_send}, {"cancel", repl_cancel}, {"listening", repl_listening}, {NULL, NULL}};

int rt_repl_luaopen(lua_State *L) {
  luaL_newlib(L, repl_funcs);
  return 1;
}
