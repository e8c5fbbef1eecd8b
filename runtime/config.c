/*
** runtime/config.c - the config schema, its validation and CANDLED_* overrides (loading a
** config.lua: config_load.c).
**
** Validation walks the user's table against rt_config_schema, builds the key path as it goes
** ("budgets.binance.windows[2].limit") and stops at the first problem with a one-line message that
** names the file and that path. Defaults are filled in so the rest of the runtime can index freely.
*/
#include "runtime/config.h"

#include <ctype.h>
#include <errno.h>
#include <lauxlib.h>
#include <lualib.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "runtime/cron.h"
#include "runtime/duration.h"
#include "runtime/sched.h"

/* Budget fields: the lower bounds (with their own messages) are budget.c's; only the upper bounds
** that keep its integer casts defined are checked here. */
#define NO_MIN (-1e308)
#define END {NULL, 0, NULL, NULL, NULL, 0, NULL, 0, 0}

static const char *const log_levels[] = {"debug", "info", "warn", "error", NULL};

static const rt_cfield_t database_fields[] = {
  {"path", RT_CT_STRING, NULL, NULL, "data/candled.db", 0, NULL, 0, 0},
  {"busy_timeout_ms", RT_CT_INTEGER, NULL, NULL, "5000", 0, NULL, 0, 3600000},
  {"allow_unsafe_sql", RT_CT_BOOLEAN, NULL, NULL, "false", 0, NULL, 0, 0},   /* ATTACH, durability pragmas */
  {"migrate_batch", RT_CT_INTEGER, NULL, NULL, "1000", 0, NULL, 0, 0},   /* series layout (issue 18); range: main.c */
  END};
static const rt_cfield_t log_fields[] = {
  {"level", RT_CT_STRING, NULL, NULL, "info", 0, log_levels, 0, 0},
  END};
static const rt_cfield_t fs_root_elem = {"*", RT_CT_STRING, NULL, NULL, NULL, 0, NULL, 0, 0};
static const rt_cfield_t paths_fields[] = {
  {"scripts", RT_CT_STRING, NULL, NULL, "scripts", 0, NULL, 0, 0},
  {"strategies", RT_CT_STRING, NULL, NULL, "strategies", 0, NULL, 0, 0},
  {"fs_roots", RT_CT_LIST, NULL, &fs_root_elem, NULL, 0, NULL, 0, 0},   /* more places scripts' rt.fs reaches */
  END};
static const rt_cfield_t runtime_fields[] = {
  {"shutdown_grace", RT_CT_NUMBER, NULL, NULL, "10", 0, NULL, 0, 86400},
  {"alert_after_failures", RT_CT_INTEGER, NULL, NULL, "3", 0, NULL, 0, 1e6},
  {"task_slice", RT_CT_NUMBER, NULL, NULL, "1", 0, NULL, 0, 3600},         /* hot reload + sandbox (issue 5) */
  {"reload_debounce", RT_CT_NUMBER, NULL, NULL, "0.05", 0, NULL, 0, 60},
  {"reload_watch", RT_CT_BOOLEAN, NULL, NULL, "true", 0, NULL, 0, 0},
  {"min_every", RT_CT_NUMBER, NULL, NULL, "1", 0, NULL, RT_SCHED_EVERY_MIN, 86400},
  {"memory_limit", RT_CT_INTEGER, NULL, NULL, "1024", 0, NULL, 0, 1048576},   /* MiB of Lua heap; 0 = none */
  END};
static const rt_cfield_t http_fields[] = {
  {"timeout", RT_CT_NUMBER, NULL, NULL, "30", 0, NULL, 0.001, 86400},
  {"connect_timeout", RT_CT_NUMBER, NULL, NULL, "10", 0, NULL, 0.001, 3600},
  {"user_agent", RT_CT_STRING, NULL, NULL, NULL, 0, NULL, 0, 0},
  {"max_host_connections", RT_CT_INTEGER, NULL, NULL, "8", 0, NULL, 1, 1024},
  {"max_body", RT_CT_INTEGER, NULL, NULL, "67108864", 0, NULL, 1, 1073741824},
  END};
static const rt_cfield_t repl_fields[] = {
  {"socket", RT_CT_STRING, NULL, NULL, "data/candled.sock", 0, NULL, 0, 0},   /* beside config.lua */
  {"enabled", RT_CT_BOOLEAN, NULL, NULL, "true", 0, NULL, 0, 0},
  END};
static const rt_cfield_t backup_fields[] = {   /* issue 14: runtime/lua/backup.lua */
  {"enabled", RT_CT_BOOLEAN, NULL, NULL, "true", 0, NULL, 0, 0},
  {"dir", RT_CT_STRING, NULL, NULL, "data/backups", 0, NULL, 0, 0},       /* beside config.lua */
  {"every", RT_CT_DURATION, NULL, NULL, "86400", 0, NULL, 60, 1e9},
  {"keep_daily", RT_CT_INTEGER, NULL, NULL, "30", 0, NULL, 0, 100000},
  {"keep_weekly", RT_CT_INTEGER, NULL, NULL, "12", 0, NULL, 0, 100000},
  {"check_every", RT_CT_DURATION, NULL, NULL, "21600", 0, NULL, 1, 1e9},   /* quick_check */
  END};
static const rt_cfield_t http_server_fields[] = {   /* issue 14: runtime/http_server.c */
  {"listen", RT_CT_ANY, NULL, NULL, "127.0.0.1:8642", 0, NULL, 0, 0},   /* "HOST:PORT" or false; main.c checks */
  END};
static const rt_cfield_t webhook_elem = {"*", RT_CT_STRING, NULL, NULL, NULL, 0, NULL, 0, 0};
static const rt_cfield_t alerts_fields[] = {   /* issue 14: runtime/lua/notify.lua */
  {"webhooks", RT_CT_LIST, NULL, &webhook_elem, NULL, 0, NULL, 0, 0},
  {"poll", RT_CT_DURATION, NULL, NULL, "2", 0, NULL, 0.05, 3600},
  {"stale_check", RT_CT_DURATION, NULL, NULL, "60", 0, NULL, 0.05, 86400},   /* stale_series alerts */
  {"stale_horizon", RT_CT_DURATION, NULL, NULL, "604800", 0, NULL, 60, 1e9},
  END};
static const rt_cfield_t source_fields[] = {
  {"enabled", RT_CT_BOOLEAN, NULL, NULL, "true", 0, NULL, 0, 0},
  {"base_url", RT_CT_STRING, NULL, NULL, NULL, 0, NULL, 0, 0},
  {"ws_url", RT_CT_STRING, NULL, NULL, NULL, 0, NULL, 0, 0},
  END};
static const rt_cfield_t source_elem = {"*", RT_CT_TABLE, source_fields, NULL, NULL, 1, NULL, 0, 0};
static const rt_cfield_t script_fields[] = {
  {"enabled", RT_CT_BOOLEAN, NULL, NULL, "true", 0, NULL, 0, 0},
  END};
static const rt_cfield_t script_elem = {"*", RT_CT_TABLE, script_fields, NULL, NULL, 1, NULL, 0, 0};
/* strategies.<name>: a strategy module run live (runtime/lua/strategy.lua checks the module at
** start and on a reload); keys other than these are the strategy's own options (ctx.config). */
static const rt_cfield_t strategy_list_elem = {"*", RT_CT_STRING, NULL, NULL, NULL, 0, NULL, 0, 0};
static const rt_cfield_t strategy_fields[] = {
  {"enabled", RT_CT_BOOLEAN, NULL, NULL, "true", 0, NULL, 0, 0},
  {"source", RT_CT_STRING, NULL, NULL, NULL, 0, NULL, 0, 0},
  {"instruments", RT_CT_LIST, NULL, &strategy_list_elem, NULL, 0, NULL, 0, 0},
  {"timeframes", RT_CT_LIST, NULL, &strategy_list_elem, NULL, 0, NULL, 0, 0},
  {"warmup", RT_CT_INTEGER, NULL, NULL, NULL, 0, NULL, 0, 1e6},
  {"queue", RT_CT_INTEGER, NULL, NULL, "65536", 0, NULL, 1, 1e6},
  END};
static const rt_cfield_t strategy_elem = {"*", RT_CT_TABLE, strategy_fields, NULL, NULL, 1, NULL, 0, 0};
static const rt_cfield_t schedule_fields[] = {
  {"every", RT_CT_DURATION, NULL, NULL, NULL, 0, NULL, RT_SCHED_EVERY_MIN, RT_SCHED_EVERY_MAX},
  {"cron", RT_CT_STRING, NULL, NULL, NULL, 0, NULL, 0, 0},
  END};
static const rt_cfield_t schedule_elem = {"*", RT_CT_TABLE, schedule_fields, NULL, NULL, 0, NULL, 0, 0};

/* export.qlib.<name>: a QLib export kept current by scripts/export/qlib.lua (which also requires
** out and freq, at start and on a reload). */
static const char *const qlib_freqs[] = {"day", "60min", "15min", "5min", "1min", NULL};
static const rt_cfield_t export_list_elem = {"*", RT_CT_STRING, NULL, NULL, NULL, 0, NULL, 0, 0};
static const rt_cfield_t qlib_export_fields[] = {
  {"out", RT_CT_STRING, NULL, NULL, NULL, 0, NULL, 0, 0},
  {"freq", RT_CT_STRING, NULL, NULL, NULL, 0, qlib_freqs, 0, 0},
  {"source", RT_CT_STRING, NULL, NULL, NULL, 0, NULL, 0, 0},
  {"every", RT_CT_DURATION, NULL, NULL, "3600", 0, NULL, 1, RT_SCHED_EVERY_MAX},
  {"instruments", RT_CT_LIST, NULL, &export_list_elem, NULL, 0, NULL, 0, 0},
  {"start", RT_CT_STRING, NULL, NULL, NULL, 0, NULL, 0, 0},
  {"enabled", RT_CT_BOOLEAN, NULL, NULL, "true", 0, NULL, 0, 0},
  END};
static const rt_cfield_t qlib_export_elem = {"*", RT_CT_TABLE, qlib_export_fields, NULL, NULL, 0, NULL, 0, 0};
static const rt_cfield_t export_fields[] = {
  {"qlib", RT_CT_MAP, NULL, &qlib_export_elem, NULL, 0, NULL, 0, 0},
  END};

static const rt_cfield_t window_fields[] = {
  {"per", RT_CT_ANY, NULL, NULL, NULL, 0, NULL, 0, 0},          /* a duration or "month": budget.c checks */
  {"limit", RT_CT_NUMBER, NULL, NULL, NULL, 0, NULL, NO_MIN, 1e12},
  END};
static const rt_cfield_t window_elem = {"*", RT_CT_TABLE, window_fields, NULL, NULL, 0, NULL, 0, 0};
static const rt_cfield_t backoff_fields[] = {
  {"base", RT_CT_NUMBER, NULL, NULL, "1", 0, NULL, NO_MIN, 86400},
  {"cap", RT_CT_NUMBER, NULL, NULL, "300", 0, NULL, NO_MIN, 86400},
  END};
static const rt_cfield_t breaker_fields[] = {
  {"failures", RT_CT_INTEGER, NULL, NULL, "5", 0, NULL, NO_MIN, 1e6},
  {"cooldown", RT_CT_DURATION, NULL, NULL, "60", 0, NULL, 0.001, 1e9},
  END};
static const rt_cfield_t ban_fields[] = {
  {"after_429s", RT_CT_INTEGER, NULL, NULL, "3", 0, NULL, NO_MIN, 1e6},
  {"duration", RT_CT_DURATION, NULL, NULL, "600", 0, NULL, 0.001, 1e9},
  END};
static const rt_cfield_t budget_fields[] = {
  {"windows", RT_CT_LIST, NULL, &window_elem, NULL, 0, NULL, 0, 0},
  {"reserve", RT_CT_NUMBER, NULL, NULL, "0", 0, NULL, 0, 0},
  {"used_weight_header", RT_CT_STRING, NULL, NULL, NULL, 0, NULL, 0, 0},
  {"retries", RT_CT_INTEGER, NULL, NULL, "3", 0, NULL, NO_MIN, 1000},
  {"queue", RT_CT_INTEGER, NULL, NULL, "10000", 0, NULL, NO_MIN, 1e9},
  {"backoff", RT_CT_TABLE, backoff_fields, NULL, NULL, 0, NULL, 0, 0},
  {"breaker", RT_CT_TABLE, breaker_fields, NULL, NULL, 0, NULL, 0, 0},
  {"ban", RT_CT_TABLE, ban_fields, NULL, NULL, 0, NULL, 0, 0},
  END};
static const rt_cfield_t budget_elem = {"*", RT_CT_TABLE, budget_fields, NULL, NULL, 0, NULL, 0, 0};
const rt_cfield_t rt_config_budget_schema = {"*", RT_CT_TABLE, budget_fields, NULL, NULL, 0, NULL, 0, 0};

static const rt_cfield_t root_fields[] = {
  {"database", RT_CT_TABLE, database_fields, NULL, NULL, 0, NULL, 0, 0},
  {"log", RT_CT_TABLE, log_fields, NULL, NULL, 0, NULL, 0, 0},
  {"paths", RT_CT_TABLE, paths_fields, NULL, NULL, 0, NULL, 0, 0},
  {"runtime", RT_CT_TABLE, runtime_fields, NULL, NULL, 0, NULL, 0, 0},
  {"http", RT_CT_TABLE, http_fields, NULL, NULL, 0, NULL, 0, 0},
  {"repl", RT_CT_TABLE, repl_fields, NULL, NULL, 0, NULL, 0, 0},
  {"backup", RT_CT_TABLE, backup_fields, NULL, NULL, 0, NULL, 0, 0},
  {"http_server", RT_CT_TABLE, http_server_fields, NULL, NULL, 0, NULL, 0, 0},
  {"alerts", RT_CT_TABLE, alerts_fields, NULL, NULL, 0, NULL, 0, 0},
  {"sources", RT_CT_MAP, NULL, &source_elem, NULL, 0, NULL, 0, 0},
  {"scripts", RT_CT_MAP, NULL, &script_elem, NULL, 0, NULL, 0, 0},
  {"schedules", RT_CT_MAP, NULL, &schedule_elem, NULL, 0, NULL, 0, 0},
  {"strategies", RT_CT_MAP, NULL, &strategy_elem, NULL, 0, NULL, 0, 0},
  {"budgets", RT_CT_MAP, NULL, &budget_elem, NULL, 0, NULL, 0, 0},
  {"export", RT_CT_TABLE, export_fields, NULL, NULL, 0, NULL, 0, 0},
  END};

const rt_cfield_t rt_config_schema = {"", RT_CT_TABLE, root_fields, NULL, NULL, 0, NULL, 0, 0};

/* ---- validation ----------------------------------------------------------------------------- */

typedef struct {
  const char *file;
  char path[512];
  char *err;
  size_t errlen;
} vctx_t;

static const char *type_word(rt_ctype_t t) {
  switch (t) {
  case RT_CT_STRING: return "a string";
  case RT_CT_NUMBER: return "a number";
  case RT_CT_INTEGER: return "an integer";
  case RT_CT_BOOLEAN: return "a boolean";
  case RT_CT_DURATION: return "a duration (\"30s\", \"5m\", \"1h\" or seconds)";
  case RT_CT_LIST: return "a list";
  default: return "a table";
  }
}

static int fail(vctx_t *v, const char *fmt, const char *a, const char *b) {
  char msg[384];
  snprintf(msg, sizeof msg, fmt, a, b);
  snprintf(v->err, v->errlen, "%s: %s: %s", v->file, v->path[0] ? v->path : "(top level)", msg);
  return -1;
}

/* Push a default given as text, converted to the field's type. */
static void push_default(lua_State *L, const rt_cfield_t *f) {
  switch (f->type) {
  case RT_CT_NUMBER: lua_pushnumber(L, strtod(f->dflt, NULL)); break;
  case RT_CT_INTEGER: lua_pushinteger(L, strtoll(f->dflt, NULL, 10)); break;
  case RT_CT_BOOLEAN: lua_pushboolean(L, strcmp(f->dflt, "true") == 0); break;
  default: lua_pushstring(L, f->dflt); break;
  }
}

static int check_value(lua_State *L, int idx, const rt_cfield_t *f, vctx_t *v);

static size_t path_push(vctx_t *v, const char *key, int index) {
  size_t n = strlen(v->path);
  if (key) snprintf(v->path + n, sizeof v->path - n, "%s%s", n ? "." : "", key);
  else snprintf(v->path + n, sizeof v->path - n, "[%d]", index);
  return n;
}

static int check_table(lua_State *L, int idx, const rt_cfield_t *f, vctx_t *v) {
  idx = lua_absindex(L, idx);
  lua_pushnil(L);
  while (lua_next(L, idx)) {                   /* [k v] */
    if (lua_type(L, -2) != LUA_TSTRING) return fail(v, "keys must be strings, found a %s key", luaL_typename(L, -2), NULL);
    const char *key = lua_tostring(L, -2);
    const rt_cfield_t *c = NULL;
    if (f->type == RT_CT_MAP) c = f->elem;
    else
      for (const rt_cfield_t *k = f->fields; k && k->key; k++)
        if (strcmp(k->key, key) == 0) c = k;
    size_t mark = path_push(v, key, 0);
    if (!c && !f->open) {
      char known[256] = "";
      for (const rt_cfield_t *k = f->fields; k && k->key; k++)
        snprintf(known + strlen(known), sizeof known - strlen(known), "%s%s", known[0] ? ", " : "", k->key);
      return fail(v, "unknown key (known keys: %s)", known, NULL);
    }
    if (c && check_value(L, -1, c, v) < 0) return -1;
    v->path[mark] = 0;
    lua_pop(L, 1);                             /* [k] */
  }
  if (f->type != RT_CT_TABLE) return 0;
  for (const rt_cfield_t *k = f->fields; k && k->key; k++) {  /* defaults */
    lua_getfield(L, idx, k->key);
    int absent = lua_isnil(L, -1);
    lua_pop(L, 1);
    if (!absent) continue;
    if (k->type == RT_CT_TABLE || k->type == RT_CT_MAP || k->type == RT_CT_LIST) {
      lua_newtable(L);
      size_t mark = path_push(v, k->key, 0);
      if (check_value(L, -1, k, v) < 0) return -1;
      v->path[mark] = 0;
      lua_setfield(L, idx, k->key);
    } else if (k->dflt) {
      push_default(L, k);
      lua_setfield(L, idx, k->key);
    }
  }
  return 0;
}

/* A number of a NUMBER / INTEGER / DURATION field: finite and within the field's bounds. */
static int check_range(double d, const rt_cfield_t *f, vctx_t *v) {
  char a[64], b[96];
  if (!isfinite(d)) {
    snprintf(a, sizeof a, "%g", d);
    return fail(v, "must be a finite number, got %s", a, NULL);
  }
  if (f->min < f->max && !(d >= f->min && d <= f->max)) {
    snprintf(a, sizeof a, "%g", d);
    snprintf(b, sizeof b, "%g and %g", f->min, f->max);
    return fail(v, "%s is out of range: must be between %s", a, b);
  }
  return 0;
}

static int check_value(lua_State *L, int idx, const rt_cfield_t *f, vctx_t *v) {
  int t = lua_type(L, idx);
  double d;
  size_t len;
  switch (f->type) {
  case RT_CT_ANY: return 0;
  case RT_CT_STRING:
    if (t != LUA_TSTRING) break;
    if (strlen(lua_tolstring(L, idx, &len)) != len) return fail(v, "contains a NUL byte", NULL, NULL);
    if (f->choices) {
      const char *s = lua_tostring(L, idx);
      char list[128] = "";
      for (const char *const *c = f->choices; *c; c++) {
        if (strcmp(*c, s) == 0) return 0;
        snprintf(list + strlen(list), sizeof list - strlen(list), "%s%s", list[0] ? ", " : "", *c);
      }
      return fail(v, "'%s' is not one of: %s", s, list);
    }
    return 0;
  case RT_CT_NUMBER:
    if (t == LUA_TNUMBER) return check_range(lua_tonumber(L, idx), f, v);
    break;
  case RT_CT_INTEGER:
    if (t != LUA_TNUMBER) break;
    d = lua_tonumber(L, idx);
    if (isfinite(d) && d != floor(d)) break;
    return check_range(d, f, v);
  case RT_CT_BOOLEAN:
    if (t == LUA_TBOOLEAN) return 0;
    break;
  case RT_CT_DURATION:
    switch (rt_duration_value(L, idx, &d)) {
    case 0:
      if (t == LUA_TNUMBER && !(d > 0) && isfinite(d))
        return fail(v, "'%s' is not a duration (\"30s\", \"5m\", \"1h\", \"1d\" or seconds > 0)", lua_tostring(L, idx), NULL);
      return check_range(d, f, v);
    case -1:
      return fail(v, "'%s' is not a duration (\"30s\", \"5m\", \"1h\", \"1d\" or seconds)", lua_tostring(L, idx), NULL);
    }
    break;
  case RT_CT_TABLE:
  case RT_CT_MAP:
    if (t != LUA_TTABLE) break;
    return check_table(L, idx, f, v);
  case RT_CT_LIST: {
    if (t != LUA_TTABLE) break;
    idx = lua_absindex(L, idx);
    lua_Integer n = (lua_Integer)lua_rawlen(L, idx), count = 0;
    lua_pushnil(L);
    while (lua_next(L, idx)) {
      count++;
      lua_pop(L, 1);
    }
    if (count != n) return fail(v, "expected a list (keys 1..n), got a table with other keys", NULL, NULL);
    for (lua_Integer i = 1; i <= n; i++) {
      size_t mark = path_push(v, NULL, (int)i);
      lua_rawgeti(L, idx, i);
      if (check_value(L, -1, f->elem, v) < 0) return -1;
      lua_pop(L, 1);
      v->path[mark] = 0;
    }
    return 0;
  }
  }
  return fail(v, "expected %s, got %s", type_word(f->type), lua_typename(L, t));
}

/* schedules.<name> of a validated config at idx: a cron expression that parses, `every` or `cron`
** (not both), every >= runtime.min_every. Errors name the key, not the script it schedules. */
static int check_schedules(lua_State *L, int idx, vctx_t *v) {
  idx = lua_absindex(L, idx);
  rt_config_get(L, idx, "runtime.min_every");
  double lo = lua_tonumber(L, -1);
  lua_pop(L, 1);
  rt_config_get(L, idx, "schedules");
  int sch = lua_gettop(L);
  lua_pushnil(L);
  while (lua_next(L, sch)) {                   /* [k entry] */
    snprintf(v->path, sizeof v->path, "schedules.%s", lua_tostring(L, -2));
    int has_every = lua_getfield(L, -1, "every") != LUA_TNIL;
    double every = 0;
    if (has_every) rt_duration_value(L, -1, &every);   /* a bad one was reported by the type check */
    int has_cron = lua_getfield(L, -2, "cron") != LUA_TNIL;
    if (has_every && has_cron) return fail(v, "give 'every' or 'cron', not both", NULL, NULL);
    if (has_cron) {
      rt_cron_t c;
      char why[256];
      strcat(v->path, ".cron");
      if (rt_cron_parse(lua_tostring(L, -1), &c, why, sizeof why) < 0) return fail(v, "%s", why, NULL);
    }
    if (has_every && every < lo) {
      char a[64], b[64];
      strcat(v->path, ".every");
      snprintf(a, sizeof a, "%g", every);
      snprintf(b, sizeof b, "%g", lo);
      return fail(v, "%ss is below runtime.min_every (%ss)", a, b);
    }
    lua_pop(L, 3);                             /* [k] */
  }
  lua_pop(L, 1);
  v->path[0] = 0;
  return 0;
}

int rt_config_validate(lua_State *L, int idx, const rt_cfield_t *schema, const char *file, char *err,
                       size_t errlen) {
  vctx_t v = {file, "", err, errlen};
  int top = lua_gettop(L);
  idx = lua_absindex(L, idx);
  int rc = check_value(L, idx, schema, &v);
  if (rc == 0 && schema == &rt_config_schema) rc = check_schedules(L, idx, &v);
  if (rc == 0 && schema == &rt_config_schema && rt_config_get(L, idx, "http.user_agent") == LUA_TSTRING &&
      strpbrk(lua_tostring(L, -1), "\r\n")) {
    snprintf(v.path, sizeof v.path, "http.user_agent");
    rc = fail(&v, "must not contain CR or LF (it is sent as a header line)", NULL, NULL);
  }
  lua_settop(L, top);
  return rc;
}

/* ---- environment overrides ------------------------------------------------------------------ */

/* Convert the text of an environment variable to the field's type. Pushes it, or returns -1. */
static int push_env_value(lua_State *L, const rt_cfield_t *f, const char *text) {
  char *end;
  switch (f ? f->type : RT_CT_STRING) {
  case RT_CT_NUMBER:
  case RT_CT_INTEGER: {
    double d = strtod(text, &end);
    if (end == text || *end || !isfinite(d)) return -1;
    if (f->type == RT_CT_INTEGER && d == floor(d) && fabs(d) < 9007199254740992.0) lua_pushinteger(L, (lua_Integer)d);
    else lua_pushnumber(L, d);
    return 0;
  }
  case RT_CT_BOOLEAN:
    if (!strcmp(text, "true") || !strcmp(text, "1") || !strcmp(text, "yes")) lua_pushboolean(L, 1);
    else if (!strcmp(text, "false") || !strcmp(text, "0") || !strcmp(text, "no")) lua_pushboolean(L, 0);
    else return -1;
    return 0;
  case RT_CT_DURATION: {
    double d = strtod(text, &end);
    if (end != text && !*end && !isfinite(d)) return -1;
    if (end != text && !*end) lua_pushnumber(L, d);
    else lua_pushstring(L, text);
    return 0;
  }
  case RT_CT_TABLE:
  case RT_CT_MAP:
  case RT_CT_LIST: return -1;
  default: lua_pushstring(L, text); return 0;
  }
}

static int apply_one(lua_State *L, int idx, const rt_cfield_t *schema, const char *var, char *err,
                     size_t errlen) {
  char name[256];
  const char *eq = strchr(var, '=');
  size_t n = (size_t)(eq - var);
  if (n >= sizeof name) n = sizeof name - 1;
  memcpy(name, var, n);
  name[n] = 0;
  const char *value = eq + 1;
  char segs[16][64];
  int nseg = 0;
  if ((size_t)(eq - var) >= sizeof name) {
    snprintf(err, errlen, "environment: %s...: the variable name is longer than %d characters", name,
             (int)sizeof name - 1);
    return -1;
  }
  for (const char *p = name + 8; *p;) {        /* after "CANDLED_" */
    const char *sep = strstr(p, "__");
    size_t len = sep ? (size_t)(sep - p) : strlen(p);
    if (nseg == 16) {
      snprintf(err, errlen, "environment: %s: more than 16 levels", name);
      return -1;
    }
    if (len == 0 || len >= sizeof segs[0]) {
      snprintf(err, errlen, "environment: %s: %s", name, len ? "a level is longer than 63 characters"
                                                              : "an empty level (\"___\" or a trailing \"__\")");
      return -1;
    }
    for (size_t i = 0; i < len; i++) segs[nseg][i] = (char)tolower((unsigned char)p[i]);
    segs[nseg][len] = 0;
    nseg++;
    p = sep ? sep + 2 : p + len;
    if (sep && !*p) {
      snprintf(err, errlen, "environment: %s: an empty level (\"___\" or a trailing \"__\")", name);
      return -1;
    }
  }
  if (nseg == 0) {
    snprintf(err, errlen, "environment: %s: not a config key", name);
    return -1;
  }
  const rt_cfield_t *f = schema;
  int open_path = 0;                           /* below an open table: any key, kept as text */
  lua_pushvalue(L, idx);                       /* [t] */
  for (int i = 0; i < nseg; i++) {
    const rt_cfield_t *c = NULL;
    if (!open_path) {
      if (f->type == RT_CT_MAP || f->type == RT_CT_LIST) c = f->elem;
      else if (f->type == RT_CT_TABLE) {
        for (const rt_cfield_t *k = f->fields; k && k->key; k++)
          if (strcmp(k->key, segs[i]) == 0) c = k;
        if (!c && f->open) open_path = 1;
      }
      if (!c && !open_path) {
        lua_pop(L, 1);
        snprintf(err, errlen, "environment: %s: no config key '%s' there", name, segs[i]);
        return -1;
      }
    }
    int list = (f->type == RT_CT_LIST && !open_path);
    char *iend = NULL;
    lua_Integer li = list ? strtoll(segs[i], &iend, 10) : 0;
    if (list && (li <= 0 || li > 1000000 || *iend || !isdigit((unsigned char)segs[i][0]))) {
      lua_pop(L, 1);
      snprintf(err, errlen, "environment: %s: '%s' is not a list index", name, segs[i]);
      return -1;
    }
    if (i == nseg - 1) {
      if (push_env_value(L, open_path ? NULL : c, value) < 0) {
        lua_pop(L, 1);
        snprintf(err, errlen, "environment: %s: expected %s, got '%s'", name, type_word(c->type), value);
        return -1;
      }
      if (!open_path) {                        /* blame the variable, not the config file */
        char where[300];
        snprintf(where, sizeof where, "environment: %s", name);
        vctx_t v = {where, "", err, errlen};
        for (int j = 0; j <= i; j++) path_push(&v, list && j == i ? NULL : segs[j], (int)li);
        if (check_value(L, -1, c, &v) < 0) {
          lua_pop(L, 2);
          return -1;
        }
      }
      if (list) lua_rawseti(L, -2, li);
      else lua_setfield(L, -2, segs[i]);
      lua_pop(L, 1);
      return 0;
    }
    if (list) lua_rawgeti(L, -1, li);
    else lua_getfield(L, -1, segs[i]);         /* [t sub] */
    if (!lua_istable(L, -1)) {
      lua_pop(L, 1);
      lua_newtable(L);
      lua_pushvalue(L, -1);
      if (list) lua_rawseti(L, -3, li);
      else lua_setfield(L, -3, segs[i]);
    }
    lua_remove(L, -2);                         /* [sub] */
    if (!open_path) f = c;
  }
  lua_pop(L, 1);
  return 0;
}

int rt_config_apply_env(lua_State *L, int idx, const rt_cfield_t *schema, char *const *envp, char *err,
                        size_t errlen) {
  idx = lua_absindex(L, idx);
  for (; envp && *envp; envp++) {
    if (strncmp(*envp, "CANDLED_", 8) != 0 || !strchr(*envp, '=')) continue;
    if (strncmp(*envp, "CANDLED_CONFIG=", 15) == 0) continue;   /* the config path itself (main.c) */
    if (apply_one(L, idx, schema, *envp, err, errlen) < 0) return -1;
  }
  return 0;
}

int rt_config_get(lua_State *L, int idx, const char *path) {
  char seg[128];
  idx = lua_absindex(L, idx);
  lua_pushvalue(L, idx);
  while (*path) {
    const char *dot = strchr(path, '.');
    size_t n = dot ? (size_t)(dot - path) : strlen(path);
    if (n >= sizeof seg || !lua_istable(L, -1)) {
      lua_pop(L, 1);
      lua_pushnil(L);
      return LUA_TNIL;
    }
    memcpy(seg, path, n);
    seg[n] = 0;
    lua_getfield(L, -1, seg);
    lua_remove(L, -2);
    path = dot ? dot + 1 : path + n;
  }
  return lua_type(L, -1);
}
