/*
** runtime/vm_call.c - protected calls with tracebacks, and the CPU and memory limits they run under.
**
** CPU limits (docs/architecture.md, Sandbox). A count hook is set on the main thread, so every thread created later
** (tasks, and a script's own coroutines) inherits it. Every HOOK_COUNT instructions it checks two
** clocks: the task slice (time since the current task was last resumed, rt_task_t.resumed_ns) and
** the deadline of rt_vm_pcall_budget (a script's top level at load). Past either it raises and
** switches the thread to a per-line hook, so a pcall loop cannot swallow the interruption: an
** interrupted task raises on every line until it ends (Redis' luaMaskCountHook does the same).
** The limits live in a userdata anchored in the registry (owned by the Lua state, freed with it).
*/
#include "runtime/vm_call.h"

#include <lauxlib.h>
#include <stdio.h>
#include <string.h>

#include "runtime/rt.h"
#include "runtime/task.h"

#define HOOK_COUNT 10000                       /* instructions between clock checks */

/* The limits of one Lua state; a userdata in the registry under &limits_key. */
typedef struct {
  uint64_t slice_ns;        /* runtime.task_slice in ns; 0 = tasks are never interrupted */
  uint64_t deadline_ns;     /* uv_hrtime() deadline of the running rt_vm_pcall_budget, or 0 */
  double budget_s;          /* that budget in seconds (for the message) */
} limits_t;

static const char limits_key = 0;              /* its address is the registry key */

static limits_t *limits(lua_State *L) {
  lua_rawgetp(L, LUA_REGISTRYINDEX, &limits_key);
  limits_t *lim = lua_touserdata(L, -1);
  lua_pop(L, 1);
  return lim;
}

/*
** Whether the running code is past a limit: the deadline of a budgeted call or the current task's
** slice. Writes the reason ("<what> ran longer than ...") into why and marks an over-slice task as
** interrupted.
*/
static int over_limit(lua_State *L, const char *what, char *why, size_t n) {
  limits_t *lim = limits(L);
  if (!lim) return 0;
  uint64_t now = uv_hrtime();
  if (lim->deadline_ns && now > lim->deadline_ns) {
    snprintf(why, n, "interrupted: %s ran longer than its budget of %gs (runtime.task_slice)", what, lim->budget_s);
    return 1;
  }
  rt_task_t *t = rt_from_lua(L)->tasks.current;
  if (!t || !(t->interrupted || (lim->slice_ns && now - t->resumed_ns > lim->slice_ns))) return 0;
  t->interrupted = 1;
  snprintf(why, n, "interrupted: %s ran longer than runtime.task_slice (%gs) without yielding", what,
           (double)lim->slice_ns / 1e9);
  return 1;
}

/*
** The count hook. Raises "<where>: interrupted: ..." when the deadline of a budgeted call or the
** current task's slice has passed; re-arms itself on every line first.
*/
static void on_count_hook(lua_State *L, lua_Debug *ar) {
  char why[160];
  limits_t *lim = limits(L);
  if (!lim) return;
  int budget = lim->deadline_ns && uv_hrtime() > lim->deadline_ns;
  if (!over_limit(L, budget ? "the top level" : "the task", why, sizeof why)) return;
  if (!budget)                                 /* the message scripts and tests know */
    snprintf(why, sizeof why, "interrupted: ran longer than runtime.task_slice (%gs) without yielding",
             (double)lim->slice_ns / 1e9);
  lua_sethook(L, on_count_hook, LUA_MASKCOUNT | LUA_MASKLINE, HOOK_COUNT);
  if (lua_getinfo(L, "Sl", ar) && ar->currentline > 0)
    lua_pushfstring(L, "%s:%d: %s", ar->short_src, ar->currentline, why);
  else
    lua_pushstring(L, why);
  lua_error(L);
}

void rt_vm_check_limits(lua_State *L, const char *what) {
  char why[200];
  if (!over_limit(L, what, why, sizeof why)) return;
  lua_sethook(L, on_count_hook, LUA_MASKCOUNT | LUA_MASKLINE, HOOK_COUNT);   /* as the hook does */
  luaL_where(L, 1);
  lua_pushstring(L, why);
  lua_concat(L, 2);
  lua_error(L);
}

size_t rt_vm_memory_limit(lua_State *L) { return rt_from_lua(L)->lua_mem_limit; }

size_t rt_vm_memory_room(lua_State *L) {
  rt_t *rt = rt_from_lua(L);
  if (!rt->lua_mem_limit) return (size_t)-1;
  return rt->lua_mem < rt->lua_mem_limit ? rt->lua_mem_limit - rt->lua_mem : 0;
}

void rt_vm_name_memory_error(lua_State *L) {
  rt_t *rt = rt_from_lua(L);
  if (!rt->lua_mem_limit) return;
  lua_pop(L, 1);
  lua_pushfstring(L, "not enough memory: the Lua heap reached its limit (runtime.memory_limit = %d MiB)",
                  (int)(rt->lua_mem_limit >> 20));
}

void rt_vm_set_task_slice(lua_State *L, double seconds) {
  limits_t *lim = limits(L);
  if (lim) lim->slice_ns = rt_ms(seconds) * 1000000;   /* NaN and <= 0: off; capped (rt_ms) */
}

double rt_vm_task_slice(lua_State *L) {
  limits_t *lim = limits(L);
  return lim ? (double)lim->slice_ns / 1e9 : 0;
}

static int msgh(lua_State *L) {
  const char *msg = lua_tostring(L, 1);
  if (!msg) {
    if (luaL_callmeta(L, 1, "__tostring") && lua_type(L, -1) == LUA_TSTRING) return 1;
    msg = lua_pushfstring(L, "(error object is a %s value)", luaL_typename(L, 1));
  }
  luaL_traceback(L, L, msg, 1);
  return 1;
}

/*
** rt_vm_pcall under a wall-clock budget. Nested calls never extend the outer deadline. Inside a task
** the call starts a fresh slice and the task gets another one after it: the budget, not the caller's
** slice, bounds the call (only the runtime's own Lua calls this, never a script).
*/
int rt_vm_pcall_budget(lua_State *L, int nargs, int nresults, double seconds) {
  limits_t *lim = limits(L);
  rt_task_t *t = rt_from_lua(L)->tasks.current;
  uint64_t saved = lim->deadline_ns, now = uv_hrtime();
  double saved_s = lim->budget_s;
  uint64_t dl = now + rt_ms(seconds) * 1000000;
  if (saved && saved < dl) dl = saved;
  else lim->budget_s = seconds;
  lim->deadline_ns = dl;
  if (t) t->resumed_ns = now;
  int rc = rt_vm_pcall(L, nargs, nresults);
  lim->deadline_ns = saved;
  lim->budget_s = saved_s;
  if (t && !t->interrupted) t->resumed_ns = uv_hrtime();
  lua_sethook(L, on_count_hook, LUA_MASKCOUNT, HOOK_COUNT);   /* undo a per-line re-arm */
  return rc;
}

int rt_vm_pcall(lua_State *L, int nargs, int nresults) {
  int base = lua_gettop(L) - nargs;            /* the function's index */
  lua_pushcfunction(L, msgh);
  lua_insert(L, base);
  int rc = lua_pcall(L, nargs, nresults, base);
  if (rc == LUA_ERRMEM) rt_vm_name_memory_error(L);
  lua_remove(L, base);
  return rc;
}

void rt_vm_limits_install(lua_State *L) {
  limits_t *lim = lua_newuserdatauv(L, sizeof *lim, 0);
  memset(lim, 0, sizeof *lim);
  lua_rawsetp(L, LUA_REGISTRYINDEX, &limits_key);
  lua_sethook(L, on_count_hook, LUA_MASKCOUNT, HOOK_COUNT);   /* inherited by every new thread */
}
