/*
** runtime/rt.c - the leaf helpers of the runtime context that every runtime file may call: the
** clock, delays in milliseconds, the context of a Lua thread, counted registry references. It calls
** nothing else of the runtime, so using it never ties a file to the loop's shutdown order (loop.c).
*/
#include "runtime/rt.h"

#include <lauxlib.h>
#include <sys/time.h>

double rt_now(void) {
  struct timeval tv;
  gettimeofday(&tv, NULL);
  return (double)tv.tv_sec + tv.tv_usec / 1e6;
}

double rt_monotonic(void) { return (double)uv_hrtime() / 1e9; }

const char *rt_errno_name(int err) { return uv_err_name(uv_translate_sys_error(err)); }

uint64_t rt_ms(double seconds) {
  double ms = seconds * 1000.0;
  if (!(ms > 0)) return 0;                     /* NaN too */
  return ms >= RT_MS_MAX ? (uint64_t)RT_MS_MAX : (uint64_t)ms;
}

rt_t *rt_from_lua(lua_State *L) {
  void *ud = NULL;
  lua_getallocf(L, &ud);
  return ud;
}

int rt_ref(rt_t *rt, lua_State *L) {
  rt->refs++;
  return luaL_ref(L, LUA_REGISTRYINDEX);
}

void rt_unref(rt_t *rt, lua_State *L, int ref) {
  if (ref == LUA_NOREF || ref == LUA_REFNIL) return;
  rt->refs--;
  luaL_unref(L, LUA_REGISTRYINDEX, ref);
}

rt_store_t *rt_store_of(rt_t *rt) { return rt->store; }
rt_budgets_t *rt_budgets_of(rt_t *rt) { return rt->budgets; }
rt_log_t *rt_log_of(rt_t *rt) { return rt->log; }
rt_http_t *rt_http_of(rt_t *rt) { return rt->http; }
rt_sched_t *rt_sched_of(rt_t *rt) { return rt->sched; }
long rt_http_max_body(rt_t *rt) { return rt->http_max_body; }
int rt_stopping(rt_t *rt) { return rt->stopping; }
rt_task_t *rt_task_running(rt_t *rt) { return rt->tasks.current; }
uv_loop_t *rt_loop_of(rt_t *rt) { return &rt->loop; }
lua_State *rt_lua_of(rt_t *rt) { return rt->L; }
double rt_loop_now_ms(rt_t *rt) { return (double)uv_now(&rt->loop); }
