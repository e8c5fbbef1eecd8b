/*
** runtime/vm_call.h - protected calls with tracebacks, and the CPU and memory limits of the Lua
** state (vm_call.c). Loop thread only.
*/
#ifndef RT_VM_CALL_H
#define RT_VM_CALL_H

#include <stddef.h>
#include <lua.h>

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

/// Anchor the limits in the registry and set the count hook on L's main thread (rt_vm_open).
void rt_vm_limits_install(lua_State *L);

#endif
