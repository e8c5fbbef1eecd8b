/*
** bindings/budget.c - Lua module "rt.budget": the request budgets declared in config.lua.
**
**   st          = budget.status([name])   -- every budget by name, or one: windows, queue, pause,
**                                         -- ban, breaker and metrics (see README)
**   ok, err, code = budget.admit(name [, {weight=1, priority="realtime"}])
**                                         -- waits for admission without an HTTP request (for
**                                         -- WebSocket subscriptions and other costs); parks
**   names       = budget.names()
**   st          = budget.define(name, spec) -- a source's default budget (same keys as
**                                         -- budgets.<name> in config.lua); config wins: when
**                                         -- config declares `name`, its budget is kept
**
** HTTP requests use a budget through rt.http's `budget`, `weight` and `priority` options.
*/
#include <stdlib.h>

#include "bindings/bindings.h"
#include "runtime/budget.h"
#include "runtime/config.h"

static rt_budget_t *check_budget(lua_State *L, int idx, const char *fn) {
  rt_t *rt = rt_from_lua(L);
  const char *name = luaL_checkstring(L, idx);
  rt_budget_t *b = rt_budget_find(rt_budgets_of(rt), name);
  if (!b) luaL_error(L, "%s: unknown budget '%s' (declare it under budgets in config.lua)", fn, name);
  return b;
}

/* Read weight and priority options shared with rt.http. */
void rtl_budget_opts(lua_State *L, int o, const char *fn, double *weight, int *prio) {
  *weight = rtl_opt_range(L, o, "weight", 1, 0, 1e9, fn);
  const char *p = rtl_opt_string(L, o, "priority", "realtime", fn);
  int pr = rt_prio_parse(p);
  if (pr < 0) luaL_error(L, "%s: option 'priority' must be realtime, backfill or discovery, not '%s'", fn, p);
  *prio = pr;
}

static int rtl_budget_status(lua_State *L) {
  rt_t *rt = rt_from_lua(L);
  rtl_budget_push_status(L, rt_budgets_of(rt), lua_isnoneornil(L, 1) ? NULL : check_budget(L, 1, "budget.status"));
  return 1;
}

static int rtl_budget_names(lua_State *L) {
  rt_t *rt = rt_from_lua(L);
  rtl_budget_push_status(L, rt_budgets_of(rt), NULL);   /* {name = status}: keep the keys, sorted */
  rtl_push_sorted_keys(L, -1, "budget.names", NULL);
  return 1;
}

/* A parked budget.admit: freed by whichever of admission, rejection or cancellation comes first. */
typedef struct {
  rt_admit_t a;
  rt_task_t *t;
  rt_budget_t *b;
} waiter_t;

static void on_admit(rt_admit_t *a, int rc) {
  waiter_t *w = a->ud;
  lua_State *co = rt_task_thread(w->t);
  int n;
  if (rc == 0) {
    lua_pushboolean(co, 1);
    n = 1;
  } else {
    n = rtl_push_fail(co, a->errmsg, a->code);
  }
  rt_task_resume_later(w->t, n);
  rt_task_on_cancel(w->t, NULL, NULL);
  free(w);
}

static void on_cancel(void *ud) {
  waiter_t *w = ud;
  rt_budget_cancel(w->b, &w->a);
  free(w);
}

static int rtl_budget_admit(lua_State *L) {
  static const char *const allowed[] = {"weight", "priority", NULL};
  rt_budget_t *b = check_budget(L, 1, "budget.admit");
  rtl_check_opts(L, 2, "budget.admit", allowed);
  rt_task_t *t = rt_task_check_can_park(L, "budget.admit");
  double weight;
  int prio;
  rtl_budget_opts(L, 2, "budget.admit", &weight, &prio);   /* may raise: before the allocation */
  waiter_t *w = calloc(1, sizeof *w);
  if (!w) return luaL_error(L, "budget.admit: out of memory");
  w->a.weight = weight;
  w->a.prio = (rt_prio_t)prio;
  w->t = t;
  w->b = b;
  w->a.flow_name = rt_task_run_name(t);
  w->a.fn = on_admit;
  w->a.ud = w;
  int rc = rt_budget_admit(b, &w->a);
  if (rc <= 0) {
    if (rc == 0) lua_pushboolean(L, 1);
    else rtl_push_fail(L, w->a.errmsg, w->a.code);
    free(w);
    return rc == 0 ? 1 : 3;
  }
  rt_task_on_cancel(t, on_cancel, w);
  return rt_task_park(L, "budget.admit");
}

static int rtl_budget_define_fn(lua_State *L) {
  rt_t *rt = rt_from_lua(L);
  const char *name = luaL_checkstring(L, 1);
  luaL_checktype(L, 2, LUA_TTABLE);
  if (!rt_budgets_of(rt)) return luaL_error(L, "budget.define: budgets are not set up");
  char err[512], where[160];
  if (!rt_budget_find(rt_budgets_of(rt), name)) {
    lua_settop(L, 2);
    lua_newtable(L);                           /* 3: a copy: validation fills in defaults */
    lua_pushnil(L);
    while (lua_next(L, 2)) {                   /* [.. copy k v] -> shallow copy is enough: */
      lua_pushvalue(L, -2);                    /* nested tables are only read and defaulted */
      lua_insert(L, -2);
      lua_settable(L, 3);
    }
    snprintf(where, sizeof where, "budget.define('%s')", name);
    if (rt_config_validate(L, 3, &rt_config_budget_schema, where, err, sizeof err) < 0)
      return luaL_error(L, "%s", err);
    if (!rtl_budget_define(L, name, 3, err, sizeof err)) return luaL_error(L, "%s", err);
  }
  rtl_budget_push_status(L, rt_budgets_of(rt), rt_budget_find(rt_budgets_of(rt), name));
  return 1;
}

static const luaL_Reg budget_funcs[] = {
  {"define", rtl_budget_define_fn},
  {"status", rtl_budget_status},
  {"admit", rtl_budget_admit},
  {"names", rtl_budget_names},
  {NULL, NULL}};

int luaopen_rt_budget(lua_State *L) {
  luaL_newlib(L, budget_funcs);
  return 1;
}
