/*
** runtime/repl/link.h - the opener of "rt.repl", the private Lua module of the REPL's embedded code.
*/
#ifndef RT_REPL_LINK_H
#define RT_REPL_LINK_H

#include <lua.h>

/// luaopen for "rt.repl": send(client, text), cancel(task_id), listening().
int rt_repl_luaopen(lua_State *L);

#endif
