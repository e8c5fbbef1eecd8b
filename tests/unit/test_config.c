/*
** tests/unit/test_config.c - runtime/config.c: loading config.lua files from a mkdtemp directory,
** schema validation with defaults, CANDLED_* environment overrides (from a fake envp) and the
** config file's restricted globals. Each test gets a fresh lua_State.
*/
#include "runtime/config.h"

#include <lauxlib.h>
#include <lualib.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "check.h"

static char tmpdir[256];
static char files[64][512];
static int nfiles;

/* Write `src` to a new file in the temp directory; returns its path. */
static const char *write_config(const char *name, const char *src) {
  char *path = files[nfiles++];
  snprintf(path, sizeof files[0], "%s/%s", tmpdir, name);
  FILE *f = fopen(path, "w");
  if (!CHECK(f != NULL)) return path;
  fputs(src, f);
  fclose(f);
  return path;
}

static lua_State *L;
static char err[1024];

static lua_State *fresh(void) {
  if (L) lua_close(L);
  L = luaL_newstate();
  luaL_openlibs(L);
  err[0] = 0;
  return L;
}

/* Load `src` (written to `name`) with envp; returns rt_config_load's result. On success the table
** stays on the stack; on failure the stack is checked unchanged. */
static int load_src(const char *name, const char *src, char *const *envp) {
  fresh();
  const char *path = src ? write_config(name, src) : name;
  int top = lua_gettop(L);
  int rc = rt_config_load(L, path, 1, envp, err, sizeof err);
  if (rc == 0) CHECK_EQ_INT(lua_gettop(L), top + 1);
  else CHECK_EQ_INT(lua_gettop(L), top);
  return rc;
}

/* The string at a dotted path of the config table on top (NULL when not a string). */
static const char *get_str(const char *path) {
  static char buf[256];
  int t = rt_config_get(L, -1, path);
  const char *s = t == LUA_TSTRING ? lua_tostring(L, -1) : NULL;
  if (s) snprintf(buf, sizeof buf, "%s", s);
  lua_pop(L, 1);
  return s ? buf : NULL;
}

static int get_type(const char *path) {
  int t = rt_config_get(L, -1, path);
  lua_pop(L, 1);
  return t;
}

static double get_num(const char *path) {
  rt_config_get(L, -1, path);
  double d = lua_tonumber(L, -1);
  lua_pop(L, 1);
  return d;
}

static int get_bool(const char *path) {
  rt_config_get(L, -1, path);
  int b = lua_type(L, -1) == LUA_TBOOLEAN ? lua_toboolean(L, -1) : -1;
  lua_pop(L, 1);
  return b;
}

/* ---- loading and validation ----------------------------------------------------------------- */

/* A valid file keeps its values and gets every default filled in. */
static void test_valid_defaults(void) {
  int rc = load_src("valid.lua",
                    "local token = os.getenv('CANDLED_TEST_UNSET_VAR') or 'none'\n"
                    "return {\n"
                    "  log = { level = 'debug' },\n"
                    "  sources = { x = {}, y = { enabled = false, base_url = 'http://y', network = 'eth' } },\n"
                    "  schedules = { fast = { every = '5m' }, nightly = { cron = '0 0 * * *' }, n = { every = 90 } },\n"
                    "  scripts = { ['binance.klines'] = { symbols = { 'BTCUSDT' }, token = token } },\n"
                    "}\n",
                    NULL);
  if (!CHECK_EQ_INT(rc, 0)) {
    fprintf(stderr, "  %s\n", err);
    return;
  }
  CHECK_STR(get_str("database.path"), "data/candled.db");
  CHECK_EQ_INT(get_num("database.busy_timeout_ms"), 5000);
  CHECK_STR(get_str("log.level"), "debug");
  CHECK_EQ_INT(get_type("http.timeout"), LUA_TNUMBER);
  CHECK_NEAR(get_num("http.timeout"), 30, 0);
  CHECK_NEAR(get_num("http.connect_timeout"), 10, 0);
  CHECK_EQ_INT(get_num("http.max_host_connections"), 8);
  CHECK_EQ_INT(get_type("http.user_agent"), LUA_TNIL);          /* no default: stays absent */
  CHECK_STR(get_str("paths.scripts"), "scripts");
  CHECK_NEAR(get_num("runtime.shutdown_grace"), 10, 0);
  CHECK_EQ_INT(get_bool("sources.x.enabled"), 1);
  CHECK_EQ_INT(get_bool("sources.y.enabled"), 0);
  CHECK_STR(get_str("sources.y.network"), "eth");                /* source tables are open */
  CHECK_STR(get_str("schedules.fast.every"), "5m");
  CHECK_NEAR(get_num("schedules.n.every"), 90, 0);
  CHECK_STR(get_str("schedules.nightly.cron"), "0 0 * * *");
  CHECK_EQ_INT(get_bool("scripts.binance.enabled"), -1);         /* dotted names are not paths */
  lua_getfield(L, -1, "scripts");
  lua_getfield(L, -1, "binance.klines");
  lua_getfield(L, -1, "enabled");
  CHECK_EQ_INT(lua_toboolean(L, -1), 1);
  lua_getfield(L, -2, "token");
  CHECK_STR(lua_tostring(L, -1), "none");
  lua_pop(L, 4);
  CHECK_EQ_INT(get_type("nope.deeper"), LUA_TNIL);
}

/* An unknown top-level key names the file, says "unknown key" and the key, and lists known keys. */
static void test_unknown_top_level_key(void) {
  CHECK_EQ_INT(load_src("unknown.lua", "return { database = {}, bogus = 1 }", NULL), -1);
  CHECK_HAS(err, "unknown.lua");
  CHECK_HAS(err, "unknown key");
  CHECK_HAS(err, "bogus");
  CHECK_HAS(err, "database, log");
}

/* A nested unknown key is reported with its full path. */
static void test_unknown_nested_key(void) {
  CHECK_EQ_INT(load_src("nested.lua", "return { database = { pathh = 'x.db' } }", NULL), -1);
  CHECK_HAS(err, "nested.lua");
  CHECK_HAS(err, "database.pathh");
  CHECK_HAS(err, "unknown key");
  CHECK_EQ_INT(load_src("nested2.lua", "return { schedules = { x = { every = 5, evry = 1 } } }", NULL), -1);
  CHECK_HAS(err, "schedules.x.evry");
}

/* Wrong types name the path and the expected type. */
static void test_wrong_types(void) {
  CHECK_EQ_INT(load_src("type.lua", "return { http = { timeout = 'fast' } }", NULL), -1);
  CHECK_HAS(err, "type.lua");
  CHECK_HAS(err, "http.timeout");
  CHECK_HAS(err, "expected a number");
  CHECK_EQ_INT(load_src("type2.lua", "return { database = { busy_timeout_ms = 1.5 } }", NULL), -1);
  CHECK_HAS(err, "database.busy_timeout_ms");
  CHECK_HAS(err, "expected an integer");
  CHECK_EQ_INT(load_src("type3.lua", "return { sources = { x = { enabled = 'yes' } } }", NULL), -1);
  CHECK_HAS(err, "sources.x.enabled");
  CHECK_HAS(err, "expected a boolean");
  CHECK_EQ_INT(load_src("type4.lua", "return { http = 5 }", NULL), -1);
  CHECK_HAS(err, "http");
  CHECK_HAS(err, "expected a table");
  CHECK_EQ_INT(load_src("type5.lua", "return { [1] = 'x' }", NULL), -1);
  CHECK_HAS(err, "keys must be strings");
  /* An integer-valued float is an integer. */
  CHECK_EQ_INT(load_src("type6.lua", "return { database = { busy_timeout_ms = 100.0 } }", NULL), 0);
}

/* A string with fixed choices lists the allowed values. */
static void test_choices(void) {
  CHECK_EQ_INT(load_src("level.lua", "return { log = { level = 'loud' } }", NULL), -1);
  CHECK_HAS(err, "log.level");
  CHECK_HAS(err, "'loud'");
  CHECK_HAS(err, "debug, info, warn, error");
}

/* Durations accept "5m" and positive numbers; anything else is a bad duration. */
static void test_bad_duration(void) {
  CHECK_EQ_INT(load_src("dur.lua", "return { schedules = { x = { every = '5x' } } }", NULL), -1);
  CHECK_HAS(err, "schedules.x.every");
  CHECK_HAS(err, "'5x' is not a duration");
  CHECK_EQ_INT(load_src("dur2.lua", "return { schedules = { x = { every = -5 } } }", NULL), -1);
  CHECK_HAS(err, "schedules.x.every");
  CHECK_HAS(err, "not a duration");
  CHECK_EQ_INT(load_src("dur3.lua", "return { schedules = { x = { every = true } } }", NULL), -1);
  CHECK_HAS(err, "expected a duration");
}

static int load_env(char *const *envp);

/* Numbers are finite and in range; durations too; every >= runtime.min_every (issue 11, item 1). */
static void test_ranges(void) {
  const char *bad[] = {"return { schedules = { x = { every = math.huge } } }",
                       "return { schedules = { x = { every = 2^63 } } }",
                       "return { schedules = { x = { every = 1e300 } } }",
                       "return { schedules = { x = { every = 0/0 } } }",
                       "return { schedules = { x = { every = '9999999999s' } } }", NULL};
  for (int i = 0; bad[i]; i++) {
    CHECK_EQ_INT(load_src("huge.lua", bad[i], NULL), -1);
    CHECK_HAS(err, "huge.lua: schedules.x.every");
  }
  CHECK_EQ_INT(load_src("sub.lua", "return { schedules = { x = { every = 0.2 } } }", NULL), -1);
  CHECK_HAS(err, "sub.lua: schedules.x.every: 0.2s is below runtime.min_every (1s)");
  CHECK_EQ_INT(load_src("subok.lua", "return { runtime = { min_every = 0.1 }, schedules = { x = { every = 0.2 } } }", NULL), 0);
  CHECK_EQ_INT(load_src("both.lua", "return { schedules = { x = { every = 60, cron = '* * * * *' } } }", NULL), -1);
  CHECK_HAS(err, "schedules.x: give 'every' or 'cron', not both");
  CHECK_EQ_INT(load_src("nan.lua", "return { http = { timeout = 0/0 } }", NULL), -1);
  CHECK_HAS(err, "http.timeout: must be a finite number");
  CHECK_EQ_INT(load_src("inf.lua", "return { runtime = { task_slice = math.huge } }", NULL), -1);
  CHECK_HAS(err, "runtime.task_slice: must be a finite number");
  CHECK_EQ_INT(load_src("int.lua", "return { http = { max_host_connections = math.huge } }", NULL), -1);
  CHECK_HAS(err, "http.max_host_connections");
  CHECK_EQ_INT(load_src("neg.lua", "return { database = { busy_timeout_ms = -1 } }", NULL), -1);
  CHECK_HAS(err, "database.busy_timeout_ms: -1 is out of range: must be between 0 and 3.6e+06");
  CHECK_EQ_INT(load_src("res.lua", "return { budgets = { b = { retries = 2^40, windows = {} } } }", NULL), -1);
  CHECK_HAS(err, "budgets.b.retries");
  CHECK_EQ_INT(load_src("resn.lua", "return { budgets = { b = { reserve = 0/0, windows = {} } } }", NULL), -1);
  CHECK_HAS(err, "budgets.b.reserve: must be a finite number");
  CHECK_EQ_INT(load_src("cool.lua", "return { budgets = { b = { breaker = { cooldown = 1/0 } } } }", NULL), -1);
  CHECK_HAS(err, "budgets.b.breaker.cooldown");
}

/* The smaller items of issue 11, item 13: a non-string error, a bad cron names the config key, a NUL
** byte in a path. */
static void test_error_objects_and_keys(void) {
  CHECK_EQ_INT(load_src("tab.lua", "error({})", NULL), -1);
  CHECK_HAS(err, "tab.lua: raised an error that is not a string (a table value)");
  CHECK_EQ_INT(load_src("bool.lua", "error(true)", NULL), -1);
  CHECK_HAS(err, "bool.lua: raised an error that is not a string (a boolean value)");
  CHECK_EQ_INT(load_src("cron.lua", "return { schedules = { x = { cron = '61 * * * *' } } }", NULL), -1);
  CHECK_HAS(err, "cron.lua: schedules.x.cron:");
  CHECK_EQ_INT(load_src("nul.lua", "return { database = { path = 'data/a\\0b.db' } }", NULL), -1);
  CHECK_HAS(err, "nul.lua: database.path: contains a NUL byte");
  CHECK_EQ_INT(load_src("ua.lua", "return { http = { user_agent = 'me\\r\\nX-Injected: 1' } }", NULL), -1);
  CHECK_HAS(err, "ua.lua: http.user_agent: must not contain CR or LF");
  char *ua[] = {"CANDLED_HTTP__USER_AGENT=a\nb", NULL};
  CHECK_EQ_INT(load_env(ua), -1);
  CHECK_HAS(err, "http.user_agent: must not contain CR or LF");
}

/* An endless loop in the config file is interrupted after the time limit (issue 11, item 2). */
static void test_time_limit(void) {
  fresh();
  const char *path = write_config("spin.lua", "while true do end");
  CHECK_EQ_INT(rt_config_load_limited(L, path, 1, NULL, 0.2, err, sizeof err), -1);
  CHECK_HAS(err, "spin.lua:1: interrupted: the config took longer than 0.2 s to evaluate");
  CHECK_EQ_INT(lua_gettop(L), 0);
  path = write_config("spin2.lua", "local n = 0 while true do n = n + #string.rep('x', 10) end");
  CHECK_EQ_INT(rt_config_load_limited(L, path, 1, NULL, 0.2, err, sizeof err), -1);
  CHECK_HAS(err, "interrupted");
  path = write_config("fine.lua", "return {}");                  /* the hook is gone afterwards */
  CHECK_EQ_INT(rt_config_load_limited(L, path, 1, NULL, 0.2, err, sizeof err), 0);
}

/* A syntax error gives file:line; a runtime error in the file too. */
static void test_syntax_and_runtime_errors(void) {
  CHECK_EQ_INT(load_src("syntax.lua", "return {\n  log = {\n    level = = 'x',\n}\n", NULL), -1);
  CHECK_HAS(err, "syntax.lua:3:");
  CHECK_EQ_INT(load_src("raise.lua", "\n\nerror('no config for you')\n", NULL), -1);
  CHECK_HAS(err, "raise.lua:3:");
  CHECK_HAS(err, "no config for you");
}

/* The file must return a table. */
static void test_must_return_table(void) {
  CHECK_EQ_INT(load_src("str.lua", "return 'hello'", NULL), -1);
  CHECK_HAS(err, "str.lua");
  CHECK_HAS(err, "must return a table");
  CHECK_HAS(err, "string");
  CHECK_EQ_INT(load_src("nothing.lua", "local x = 1", NULL), -1);
  CHECK_HAS(err, "must return a table");
}

/* A missing file is an error with must_exist=1, and plain defaults with must_exist=0 (or NULL). */
static void test_missing_file(void) {
  char path[600];
  snprintf(path, sizeof path, "%s/does-not-exist.lua", tmpdir);
  fresh();
  CHECK_EQ_INT(rt_config_load(L, path, 1, NULL, err, sizeof err), -1);
  CHECK_HAS(err, "does-not-exist.lua");
  CHECK_HAS(err, "cannot read");
  CHECK_EQ_INT(lua_gettop(L), 0);
  fresh();
  CHECK_EQ_INT(rt_config_load(L, path, 0, NULL, err, sizeof err), 0);
  CHECK_STR(get_str("database.path"), "data/candled.db");
  CHECK_STR(get_str("log.level"), "info");
  fresh();
  CHECK_EQ_INT(rt_config_load(L, NULL, 1, NULL, err, sizeof err), 0);
  CHECK_NEAR(get_num("http.timeout"), 30, 0);
  /* A path that exists but is not readable as a file (a directory) is an error even then. */
  fresh();
  CHECK_EQ_INT(rt_config_load(L, tmpdir, 0, NULL, err, sizeof err), -1);
}

/* The file runs with safe globals only: no io, no os.execute, no require/dofile/load. */
static void test_sandbox(void) {
  CHECK_EQ_INT(load_src("io.lua", "local f = io.open('/etc/passwd')\nreturn {}", NULL), -1);
  CHECK_HAS(err, "io.lua:1:");
  CHECK_HAS(err, "global 'io'");
  CHECK_EQ_INT(load_src("exec.lua", "os.execute('true')\nreturn {}", NULL), -1);
  CHECK_HAS(err, "execute");
  CHECK_EQ_INT(load_src("req.lua", "local m = require('os')\nreturn {}", NULL), -1);
  CHECK_HAS(err, "global 'require'");
  CHECK_EQ_INT(load_src("dofile.lua", "dofile('/dev/null')\nreturn {}", NULL), -1);
  CHECK_HAS(err, "global 'dofile'");
  CHECK_EQ_INT(load_src("load.lua", "load('return 1')\nreturn {}", NULL), -1);
  CHECK_HAS(err, "global 'load'");
  /* What is allowed works: string/table/math helpers, os.getenv, os.time. */
  CHECK_EQ_INT(load_src("ok.lua",
                        "local parts = {}\n"
                        "for w in string.gmatch('a b', '%a') do table.insert(parts, w) end\n"
                        "assert(type(os.time()) == 'number' and math.max(1, 2) == 2)\n"
                        "return { database = { path = table.concat(parts, '-') .. '.db' } }",
                        NULL), 0);
  CHECK_STR(get_str("database.path"), "a-b.db");
  /* The file cannot reach the real globals through _G either. */
  CHECK_EQ_INT(load_src("g.lua", "return { database = { path = _G.io and 'leak' or 'ok' } }", NULL), -1);
  CHECK_HAS(err, "global '_G'");
}

/* ---- environment overrides ------------------------------------------------------------------ */

/* Load the empty config with env; `must` says whether it should load. */
static int load_env(char *const *envp) {
  fresh();
  return rt_config_load(L, NULL, 0, envp, err, sizeof err);
}

/* A string and a number override, converted to the field's type. */
static void test_env_basic(void) {
  char *env[] = {"HOME=/root", "CANDLED_DATABASE__PATH=/tmp/x.db", "CANDLED_HTTP__TIMEOUT=5",
                 "CANDLED_DATABASE__BUSY_TIMEOUT_MS=250", "CANDLED_LOG__LEVEL=warn", NULL};
  if (!CHECK_EQ_INT(load_env(env), 0)) {
    fprintf(stderr, "  %s\n", err);
    return;
  }
  CHECK_STR(get_str("database.path"), "/tmp/x.db");
  CHECK_EQ_INT(get_type("http.timeout"), LUA_TNUMBER);
  CHECK_NEAR(get_num("http.timeout"), 5, 0);
  rt_config_get(L, -1, "database.busy_timeout_ms");
  CHECK(lua_isinteger(L, -1));
  CHECK_EQ_INT(lua_tointeger(L, -1), 250);
  lua_pop(L, 1);
  CHECK_STR(get_str("log.level"), "warn");
}

/* The environment wins over the file, and the result is validated like the file. */
static void test_env_over_file(void) {
  char *env[] = {"CANDLED_HTTP__TIMEOUT=7", NULL};
  CHECK_EQ_INT(load_src("envfile.lua", "return { http = { timeout = 60 } }", env), 0);
  CHECK_NEAR(get_num("http.timeout"), 7, 0);
  char *bad_level[] = {"CANDLED_LOG__LEVEL=loud", NULL};
  CHECK_EQ_INT(load_env(bad_level), -1);
  CHECK_HAS(err, "log.level");
  CHECK_HAS(err, "debug, info, warn, error");
}

/* A value that does not convert names the variable. */
static void test_env_bad_number(void) {
  char *env[] = {"CANDLED_HTTP__TIMEOUT=abc", NULL};
  CHECK_EQ_INT(load_env(env), -1);
  CHECK_HAS(err, "CANDLED_HTTP__TIMEOUT");
  CHECK_HAS(err, "abc");
  CHECK_HAS(err, "expected a number");
  char *env2[] = {"CANDLED_SOURCES__X__ENABLED=maybe", NULL};
  CHECK_EQ_INT(load_env(env2), -1);
  CHECK_HAS(err, "CANDLED_SOURCES__X__ENABLED");
  char *env3[] = {"CANDLED_HTTP=1", NULL};              /* a whole table from one variable: no */
  CHECK_EQ_INT(load_env(env3), -1);
  CHECK_HAS(err, "CANDLED_HTTP");
}

/* Map entries are created on the way: sources.binance_spot.base_url from one variable, and the
** new source gets its defaults. Booleans convert. */
static void test_env_creates_map_entry(void) {
  char *env[] = {"CANDLED_SOURCES__BINANCE_SPOT__BASE_URL=http://h", "CANDLED_SOURCES__OFF__ENABLED=false", NULL};
  if (!CHECK_EQ_INT(load_env(env), 0)) {
    fprintf(stderr, "  %s\n", err);
    return;
  }
  CHECK_STR(get_str("sources.binance_spot.base_url"), "http://h");
  CHECK_EQ_INT(get_bool("sources.binance_spot.enabled"), 1);
  CHECK_EQ_INT(get_bool("sources.off.enabled"), 0);
}

/* An unknown key names the variable. */
static void test_env_unknown(void) {
  char *env[] = {"CANDLED_NOPE=1", NULL};
  CHECK_EQ_INT(load_env(env), -1);
  CHECK_HAS(err, "CANDLED_NOPE");
  char *env2[] = {"CANDLED_DATABASE__PATHH=x", NULL};
  CHECK_EQ_INT(load_env(env2), -1);
  CHECK_HAS(err, "CANDLED_DATABASE__PATHH");
  CHECK_HAS(err, "pathh");
  char *env3[] = {"CANDLED_=1", NULL};
  CHECK_EQ_INT(load_env(env3), -1);
  CHECK_HAS(err, "CANDLED_");
}

/* CANDLED_CONFIG (the config path itself) and non-CANDLED variables are ignored. */
static void test_env_ignored(void) {
  char *env[] = {"CANDLED_CONFIG=/etc/candled/config.lua", "PATH=/bin", "CANDLEDX=1", "candled_nope=1",
                 "CANDLED_NO_EQUALS", NULL};
  if (!CHECK_EQ_INT(load_env(env), 0)) fprintf(stderr, "  %s\n", err);
}

/* Below an open table (a source) any key is accepted and kept as a string. */
static void test_env_open_table(void) {
  char *env[] = {"CANDLED_SOURCES__X__NETWORK=solana", "CANDLED_SOURCES__X__PAGE_SIZE=1000", NULL};
  if (!CHECK_EQ_INT(load_env(env), 0)) {
    fprintf(stderr, "  %s\n", err);
    return;
  }
  CHECK_STR(get_str("sources.x.network"), "solana");
  CHECK_EQ_INT(get_type("sources.x.page_size"), LUA_TSTRING);
  CHECK_STR(get_str("sources.x.page_size"), "1000");
}

/* Durations from the environment: "5m" stays text, "90" becomes a number; bad ones fail. */
static void test_env_duration(void) {
  char *env[] = {"CANDLED_SCHEDULES__A__EVERY=5m", "CANDLED_SCHEDULES__B__EVERY=90", NULL};
  if (!CHECK_EQ_INT(load_env(env), 0)) fprintf(stderr, "  %s\n", err);
  CHECK_STR(get_str("schedules.a.every"), "5m");
  CHECK_EQ_INT(get_type("schedules.b.every"), LUA_TNUMBER);
  char *bad[] = {"CANDLED_SCHEDULES__A__EVERY=5x", NULL};
  CHECK_EQ_INT(load_env(bad), -1);
  CHECK_HAS(err, "schedules.a.every");
}

/* The environment is blamed for its own values: NaN, a too-long level, `1x` as a list index. */
static void test_env_strict(void) {
  char *nan[] = {"CANDLED_HTTP__TIMEOUT=nan", NULL};
  CHECK_EQ_INT(load_env(nan), -1);
  CHECK_HAS(err, "environment: CANDLED_HTTP__TIMEOUT");
  char *range[] = {"CANDLED_HTTP__TIMEOUT=-4", NULL};
  CHECK_EQ_INT(load_env(range), -1);
  CHECK_HAS(err, "environment: CANDLED_HTTP__TIMEOUT: http.timeout: -4 is out of range");
  char *inf[] = {"CANDLED_SCHEDULES__X__EVERY=inf", NULL};
  CHECK_EQ_INT(load_env(inf), -1);
  CHECK_HAS(err, "environment: CANDLED_SCHEDULES__X__EVERY");
  char name[200];
  snprintf(name, sizeof name, "CANDLED_SOURCES__%070d__BASE_URL=x", 7);
  char *longseg[] = {name, NULL};
  CHECK_EQ_INT(load_env(longseg), -1);
  CHECK_HAS(err, "longer than 63 characters");
  char *idx[] = {"CANDLED_BUDGETS__B__WINDOWS__1X__LIMIT=5", NULL};
  CHECK_EQ_INT(load_env(idx), -1);
  CHECK_HAS(err, "'1x' is not a list index");
  char *empty[] = {"CANDLED_HTTP__=5", NULL};
  CHECK_EQ_INT(load_env(empty), -1);
  CHECK_HAS(err, "empty level");
}

/* rt_config_apply_env and rt_config_validate can be used on their own. */
static void test_apply_and_validate_directly(void) {
  fresh();
  lua_newtable(L);
  char *env[] = {"CANDLED_PATHS__SCRIPTS=/srv/scripts", NULL};
  CHECK_EQ_INT(rt_config_apply_env(L, -1, &rt_config_schema, env, err, sizeof err), 0);
  CHECK_EQ_INT(rt_config_validate(L, -1, &rt_config_schema, "(test)", err, sizeof err), 0);
  CHECK_EQ_INT(lua_gettop(L), 1);
  CHECK_STR(get_str("paths.scripts"), "/srv/scripts");
  CHECK_STR(get_str("paths.strategies"), "strategies");
  lua_pushinteger(L, 3);
  CHECK_EQ_INT(rt_config_validate(L, -1, &rt_config_schema, "(test)", err, sizeof err), -1);
  CHECK_HAS(err, "(test): (top level): expected a table");
  CHECK_EQ_INT(lua_gettop(L), 2);
}

static void cleanup(void) {
  for (int i = 0; i < nfiles; i++) unlink(files[i]);
  rmdir(tmpdir);
  if (L) lua_close(L);
}

int main(void) {
  const char *base = getenv("TMPDIR");
  snprintf(tmpdir, sizeof tmpdir, "%s/candled-test-config-XXXXXX", base && *base ? base : "/tmp");
  if (!mkdtemp(tmpdir)) {
    perror("mkdtemp");
    return 1;
  }
  RUN(test_valid_defaults);
  RUN(test_unknown_top_level_key);
  RUN(test_unknown_nested_key);
  RUN(test_wrong_types);
  RUN(test_choices);
  RUN(test_bad_duration);
  RUN(test_ranges);
  RUN(test_error_objects_and_keys);
  RUN(test_time_limit);
  RUN(test_syntax_and_runtime_errors);
  RUN(test_must_return_table);
  RUN(test_missing_file);
  RUN(test_sandbox);
  RUN(test_env_basic);
  RUN(test_env_over_file);
  RUN(test_env_bad_number);
  RUN(test_env_creates_map_entry);
  RUN(test_env_unknown);
  RUN(test_env_ignored);
  RUN(test_env_open_table);
  RUN(test_env_duration);
  RUN(test_env_strict);
  RUN(test_apply_and_validate_directly);
  cleanup();
  return CHECK_DONE();
}
