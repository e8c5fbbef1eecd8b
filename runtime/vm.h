/*
** runtime/vm.h - the Lua state: allocation accounting, preloaded modules, embedded Lua,
** protected calls with tracebacks.
*/
#ifndef RT_VM_H
#define RT_VM_H

#include <stddef.h>
#include <lua.h>

typedef struct rt_s rt_t;

typedef struct { const char *name; const char *src; size_t len; } rt_vm_embedded_t;
/* Generated from runtime/lua and runtime/repl at build time (cmake/embed_lua.cmake); ended by {NULL}. */
extern const rt_vm_embedded_t rt_vm_embedded[];

typedef struct { const char *name; lua_CFunction open; } rt_vm_module_t;

/// Create rt->L: standard libraries, `modules` (ended by {NULL}) and the embedded Lua in
/// package.preload. Returns 0 or -1.
int rt_vm_open(rt_t *rt, const rt_vm_module_t *modules);
void rt_vm_close(rt_t *rt);

#include "runtime/vm_call.h"   /* protected calls and limits (vm_call.c) */

/// Prepend `dir/?.lua;dir/?/init.lua` to package.path.
void rt_vm_add_path(lua_State *L, const char *dir);

#endif
