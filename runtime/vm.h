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
/* Generated from runtime/lua at build time (cmake/embed_lua.cmake); ended by {NULL}. */
extern const rt_vm_embedded_t rt_vm_embedded[];

typedef struct { const char *name; lua_CFunction open; } rt_vm_module_t;

/// Create rt->L: standard libraries, `modules` (ended by {NULL}) and the embedded Lua in
/// package.preload. Returns 0 or -1.
int rt_vm_open(rt_t *rt, const rt_vm_module_t *modules);
void rt_vm_close(rt_t *rt);

/// lua_pcall with a traceback message handler: [f, args] -> [results] or [message+traceback].
int rt_vm_pcall(lua_State *L, int nargs, int nresults);

/// [f, args] -> [results] or [message+traceback], like rt_vm_pcall, but the call is interrupted
/// (a Lua error "<file>:<line>: interrupted: ...") once it has run `seconds` of wall time without
/// returning. Nested calls keep the earlier deadline. Loop thread; used for scripts' top levels.
int rt_vm_pcall_budget(lua_State *L, int nargs, int nresults, double seconds);

/// The CPU slice of tasks: a task that runs `seconds` since its last resume without yielding is
/// interrupted (0 = never, the default; `candled run` sets runtime.task_slice).
void rt_vm_set_task_slice(lua_State *L, double seconds);
double rt_vm_task_slice(lua_State *L);

/// Raise "<where>interrupted: <what> ran longer than ..." when the running task is past its slice or
/// a budgeted call past its deadline (what the count hook does between instructions); for C code
/// that runs long without returning to Lua (the pattern matcher, strlib.c).
void rt_vm_check_limits(lua_State *L, const char *what);

/// runtime.memory_limit in bytes (0 = none), and the bytes Lua may still take under it.
size_t rt_vm_memory_limit(lua_State *L);
size_t rt_vm_memory_room(lua_State *L);
/// Replace the error value on top of L (Lua's "not enough memory") with one naming the limit, when
/// a limit is set.
void rt_vm_name_memory_error(lua_State *L);

/// Prepend `dir/?.lua;dir/?/init.lua` to package.path.
void rt_vm_add_path(lua_State *L, const char *dir);

#endif
