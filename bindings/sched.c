/*
** bindings/sched.c - Lua module "rt.sched": the runtime's scheduler, used by the embedded daemon
** code that loads scripts (runtime/lua/daemon.lua) and by the REPL.
**
**   sched.put{name=, every=seconds|"5m", cron="*\/5 * * * *", run=function, done=function(status),
**             first_delay=seconds}                -- done runs after each run, outside the task
**   sched.remove(name) -> bool
**   sched.trigger(name) -> bool             -- run now (or right after the current run)
**   ok, err = sched.check(every, cron)  -- would put accept this timing? (true, or nil + why)
**   sched.list() -> {{name=, every=, cron=, next_due=, running=, pending=, runs=, failures=,
**                     last_status=}, ...}
*/
#include "bindings/bindings.h"

#include "runtime/config.h"
#include "runtime/cron.h"
#include "runtime/duration.h"
#include "runtime/sched.h"

/* runtime.min_every of the config in force (1 s without one). */
static double min_every(lua_State *L) {
  double m = 1;
  if (lua_getfield(L, LUA_REGISTRYINDEX, RTL_CONFIG_KEY) == LUA_TTABLE) {
    if (rt_config_get(L, -1, "runtime.min_every") == LUA_TNUMBER) m = lua_tonumber(L, -1);
    lua_pop(L, 1);
  }
  lua_pop(L, 1);
  return m;
}

/* The seconds of `every` at idx, or NULL and why in buf (a number or duration text, finite, between
** runtime.min_every and RT_SCHED_EVERY_MAX: an infinite or 0 ms interval would spin the loop). */
static const char *every_seconds(lua_State *L, int idx, double *out, char *buf, size_t n) {
  double d = 0, lo = min_every(L);
  if (rt_duration_value(L, idx, &d) < 0) {
    snprintf(buf, n, "bad duration '%s' for 'every'", luaL_tolstring(L, idx, NULL));
    lua_pop(L, 1);
    return buf;
  }
  if (!(d >= lo && d <= RT_SCHED_EVERY_MAX)) {
    snprintf(buf, n, "'every' must be between %gs (runtime.min_every) and %gs, got %g", lo, RT_SCHED_EVERY_MAX, d);
    return buf;
  }
  *out = d;
  return NULL;
}

static int rtl_sched_put(lua_State *L) {
  static const char *const allowed[] = {"name", "every", "cron", "run", "done", "first_delay", NULL};
  luaL_checktype(L, 1, LUA_TTABLE);
  rtl_check_opts(L, 1, "sched.put", allowed);
  rt_t *rt = rt_from_lua(L);
  rt_sched_spec_t spec = {0};
  spec.name = rtl_opt_string(L, 1, "name", NULL, "sched.put");
  spec.cron = rtl_opt_string(L, 1, "cron", NULL, "sched.put");
  spec.first_delay = rtl_opt_number(L, 1, "first_delay", 0, "sched.put");
  if (!spec.name) return luaL_error(L, "sched.put: 'name' is required");
  lua_getfield(L, 1, "every");
  char why[160];
  if (!lua_isnil(L, -1) && every_seconds(L, -1, &spec.every, why, sizeof why))
    return luaL_error(L, "sched.put %s: %s", spec.name, why);
  lua_pop(L, 1);
  if (!spec.cron && !(spec.every > 0)) return luaL_error(L, "sched.put %s: needs 'every' or 'cron'", spec.name);
  if (spec.cron && spec.every > 0) return luaL_error(L, "sched.put %s: give 'every' or 'cron', not both", spec.name);
  if (lua_getfield(L, 1, "run") != LUA_TFUNCTION) return luaL_error(L, "sched.put %s: 'run' must be a function", spec.name);
  int dt = lua_getfield(L, 1, "done");
  if (dt != LUA_TNIL && dt != LUA_TFUNCTION) return luaL_error(L, "sched.put %s: 'done' must be a function", spec.name);
  if (dt == LUA_TNIL) lua_pop(L, 1);
  spec.done = dt == LUA_TFUNCTION;
  if (!rt_sched_of(rt)) return luaL_error(L, "sched.put: there is no scheduler (only `candled run` schedules)");
  char err[256];
  if (rt_sched_put(rt, L, &spec, err, sizeof err) < 0) return luaL_error(L, "sched.put %s: %s", spec.name, err);
  return 0;
}

static int rtl_sched_check(lua_State *L) {
  double d = 0;
  rt_cron_t c;
  char err[256];
  int has_every = !lua_isnoneornil(L, 1), has_cron = !lua_isnoneornil(L, 2);
  if (has_every && has_cron) return rtl_push_fail(L, "give 'every' or 'cron', not both", "EINVAL");
  if (!has_every && !has_cron) return rtl_push_fail(L, "needs 'every' or 'cron'", "EINVAL");
  if (has_cron) {
    if (lua_type(L, 2) != LUA_TSTRING) return rtl_push_fail(L, "'cron' must be a string", "EINVAL");
    if (rt_cron_parse(lua_tostring(L, 2), &c, err, sizeof err) < 0) return rtl_push_fail(L, err, "EINVAL");
  } else if (every_seconds(L, 1, &d, err, sizeof err)) {
    return rtl_push_fail(L, err, "EINVAL");
  }
  lua_pushboolean(L, 1);
  return 1;
}

static int rtl_sched_remove(lua_State *L) {
  lua_pushboolean(L, rt_sched_remove(rt_from_lua(L), luaL_checkstring(L, 1)) == 0);
  return 1;
}

static int rtl_sched_trigger(lua_State *L) {
  lua_pushboolean(L, rt_sched_trigger(rt_from_lua(L), luaL_checkstring(L, 1)) == 0);
  return 1;
}

static int push_info(const rt_sched_info_t *i, void *ud) {
  lua_State *L = ud;
  lua_createtable(L, 0, 9);
  lua_pushstring(L, i->name);
  lua_setfield(L, -2, "name");
  if (i->cron) lua_pushstring(L, i->cron);
  else lua_pushnumber(L, i->every);
  lua_setfield(L, -2, i->cron ? "cron" : "every");
  lua_pushnumber(L, i->next_due);
  lua_setfield(L, -2, "next_due");
  lua_pushboolean(L, i->running);
  lua_setfield(L, -2, "running");
  lua_pushboolean(L, i->pending);
  lua_setfield(L, -2, "pending");
  lua_pushinteger(L, (lua_Integer)i->runs);
  lua_setfield(L, -2, "runs");
  lua_pushinteger(L, (lua_Integer)i->failures);
  lua_setfield(L, -2, "failures");
  lua_pushstring(L, i->last_status);
  lua_setfield(L, -2, "last_status");
  lua_rawseti(L, -2, (lua_Integer)lua_rawlen(L, -2) + 1);
  return 0;
}

static int rtl_sched_list(lua_State *L) {
  lua_newtable(L);
  rt_sched_each(rt_from_lua(L), push_info, L);
  return 1;
}

static const luaL_Reg sched_funcs[] = {
  {"put", rtl_sched_put}, {"remove", rtl_sched_remove}, {"trigger", rtl_sched_trigger},
  {"list", rtl_sched_list}, {"check", rtl_sched_check}, {NULL, NULL}};

int luaopen_rt_sched(lua_State *L) {
  luaL_newlib(L, sched_funcs);
  return 1;
}
