/*
** bindings/bindings.h - what every rt.* module shares: the openers and the error convention.
**
** Convention (docs/conventions.md, Errors): misuse raises; expected failures return `nil, message, CODE`;
** waiting calls park the calling task and raise outside a task.
*/
#ifndef RTL_BINDINGS_H
#define RTL_BINDINGS_H

#include <lauxlib.h>
#include <lua.h>

#include "runtime/rt.h"
#include "runtime/store_query.h"
#include "runtime/task.h"

int luaopen_rt_http(lua_State *L);
int luaopen_rt_db(lua_State *L);
int luaopen_rt_json(lua_State *L);
int luaopen_rt_time(lua_State *L);
int luaopen_rt_task(lua_State *L);
int luaopen_rt_log(lua_State *L);
int luaopen_rt_fs(lua_State *L);
int luaopen_rt_column(lua_State *L);
int luaopen_rt_csv(lua_State *L);
int luaopen_rt_config(lua_State *L);
int luaopen_rt_sched(lua_State *L);
int luaopen_rt_budget(lua_State *L);
int luaopen_rt_alert(lua_State *L);
int luaopen_rt_events(lua_State *L);
int luaopen_rt_ws(lua_State *L);
int luaopen_rt_replay(lua_State *L);   /* private: candled replay (runtime/lua/replay.lua) */
int luaopen_rt_vm(lua_State *L);      /* private to the runtime's embedded Lua */
int luaopen_rt_watch(lua_State *L);   /* private to the runtime's embedded Lua */
int luaopen_rt_backup(lua_State *L);  /* private: backups and checks (runtime/lua/backup.lua) */

/* The registry key under which main.c stores the validated config table. */
#define RTL_CONFIG_KEY "candled.config"

/// Push nil, msg, code and return 3 (`return rtl_push_fail(L, ...)`).
int rtl_push_fail(lua_State *L, const char *msg, const char *code);

/// Raise unless every key of the options table at idx is in `allowed` (NULL-ended).
/// A nil/none idx is accepted (no options). `fn` names the function in the error.
void rtl_check_opts(lua_State *L, int idx, const char *fn, const char *const *allowed);

/// Optional fields of an options table (idx may be nil/none). Raise on a wrong type.
double rtl_opt_number(lua_State *L, int idx, const char *key, double dflt, const char *fn);
/// rtl_opt_number that must lie in [lo, hi] (NaN and infinities fail): raises naming fn and key.
double rtl_opt_range(lua_State *L, int idx, const char *key, double dflt, double lo, double hi, const char *fn);
const char *rtl_opt_string(lua_State *L, int idx, const char *key, const char *dflt, const char *fn);
int rtl_opt_boolean(lua_State *L, int idx, const char *key, int dflt, const char *fn);

/// Read the `weight` and `priority` options (rt.budget and rt.http) from the options table at o.
void rtl_budget_opts(lua_State *L, int o, const char *fn, double *weight, int *prio);

/// Create the budgets of the validated config table at idx (budgets.<name>) in a new rt->budgets
/// (bindings/budget_lua.c); called before the store opens. Returns 0, or -1 with a message naming
/// the key path ("budgets.api.windows[1].per: ...") in err.
int rtl_budgets_open(rt_t *rt, lua_State *L, int idx, char *err, size_t errlen);
/// budget.define's creation from the validated spec at idx; NULL with a message in err.
struct rt_budget_s *rtl_budget_define(lua_State *L, const char *name, int idx, char *err, size_t errlen);
/// Push rt.budget.status() for one budget (b) or every budget (b == NULL, a table by name).
void rtl_budget_push_status(lua_State *L, struct rt_budgets_s *set, struct rt_budget_s *b);

/// Add json.decode_rows to the rt.json table on the top of the stack (bindings/json_rows.c).
void rtl_json_add_rows(lua_State *L);

/// Sort the list at idx in place (table.sort).
void rtl_sort_list(lua_State *L, int idx);
/// Push the string keys of the table at idx as a sorted list; returns how many. A key of another
/// type raises "<fn>: <what>" when `what` is given, else it is skipped.
int rtl_push_sorted_keys(lua_State *L, int idx, const char *fn, const char *what);

/// Stored values as Lua values and back (bindings/store_rows.c). Text and blobs push as strings,
/// NULL as nil; a row is a table keyed by column name (NULL columns absent). rtl_to_store_value:
/// booleans as 0/1, strings as text that stays valid while the Lua string is on the stack, any other
/// type as NULL (callers raise first where a table or function must not be stored).
void rtl_push_store_value(lua_State *L, const rt_store_value_t *v);
void rtl_push_store_column(lua_State *L, rt_store_stmt_t *st, int c);
void rtl_push_store_row(lua_State *L, rt_store_stmt_t *st);
void rtl_to_store_value(lua_State *L, int idx, rt_store_value_t *v);

/// Count rows written by the current task's run (no-op outside a task).
void rtl_count_rows(lua_State *L, int64_t n);

#endif
