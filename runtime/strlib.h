/*
** runtime/strlib.h - the string methods of the Lua state: bounded pattern matching (interrupted by
** the CPU limits), string.rep under the memory limit, no string.dump, a hidden string metatable.
*/
#ifndef RT_STRLIB_H
#define RT_STRLIB_H

#include <lua.h>

/// Make a copy of the string library (without dump, with find/match/gmatch/gsub/rep replaced) the
/// __index of the string metatable and hide the metatable (__metatable = false). The global
/// `string` table is left as it is (the runtime's own Lua; scripts get a read-only view of the
/// methods, candled.sandbox).
void rt_strlib_install(lua_State *L);

#endif
