/*
** app/setup.c - what every command that opens the database needs (app.h: app_setup), and the
** config paths the commands that do not open it read (app_config_key_path).
*/
#include "app/app.h"

#include <errno.h>
#include <lauxlib.h>
#include <libgen.h>
#include <limits.h>
#include <lualib.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "bindings/bindings.h"
#include "runtime/alert.h"
#include "runtime/budget.h"
#include "runtime/config.h"
#include "runtime/dblock.h"
#include "runtime/http.h"
#include "runtime/log.h"
#include "runtime/migrate.h"
#include "runtime/store.h"
#include "runtime/store_backup.h"
#include "runtime/store_checkpoint.h"

extern char **environ;

static int recover_at_start(const char *db, const char *backup_dir, char *note, size_t n);
static int daemon_lock(rt_t *rt, const char *db);

/* Make `p` absolute against `dir` (p is rewritten in the config table by the caller). */
static void resolve(const char *dir, const char *p, char *out, size_t n) {
  if (p[0] == '/') snprintf(out, n, "%s", p);
  else snprintf(out, n, "%s/%s", dir, p);
}

int app_mkdirs_for(const char *file) {
  char buf[PATH_MAX];
  snprintf(buf, sizeof buf, "%s", file);
  char *slash = strrchr(buf, '/');
  if (!slash || slash == buf) return 0;
  *slash = 0;
  for (char *p = buf + 1; *p; p++)
    if (*p == '/') {
      *p = 0;
      if (mkdir(buf, 0755) < 0 && errno != EEXIST) return -1;
      *p = '/';
    }
  return (mkdir(buf, 0755) < 0 && errno != EEXIST) ? -1 : 0;
}

/* Resolve a path key of the config (at the top of L) against the config directory, in place. */
static void resolve_key(lua_State *L, const char *dir, const char *section, const char *key) {
  char out[PATH_MAX];
  lua_getfield(L, -1, section);
  lua_getfield(L, -1, key);
  resolve(dir, lua_tostring(L, -1), out, sizeof out);
  lua_pop(L, 1);
  lua_pushstring(L, out);
  lua_setfield(L, -2, key);
  lua_pop(L, 1);
}

/* The directory relative config paths resolve against: the config file's, else the working
** directory. `real` receives the config file's real path ("" when there is none). */
static void config_dir_of(const char *config_path, int have_file, char *dir, size_t n, char *real) {
  char tmp[PATH_MAX];
  real[0] = 0;
  if (have_file && realpath(config_path, real)) {
    snprintf(tmp, sizeof tmp, "%s", real);     /* dirname() may write into its argument */
    snprintf(dir, n, "%s", dirname(tmp));
  } else if (!getcwd(dir, n)) {
    snprintf(dir, n, ".");
  }
}

/*
** Everything both commands need: loop, Lua, config, logger, HTTP engine, database.
** Returns 0, or 1 after printing one line to stderr.
*/
int app_setup(rt_t *rt, const rt_vm_module_t *modules, const char *config_path, int explicit_config, int recover) {
  char err[1024];
  if (rt_init(rt, err, sizeof err) < 0 || rt_vm_open(rt, modules) < 0) {
    fprintf(stderr, "candled: %s\n", err[0] ? err : "cannot create the Lua state");
    return 1;
  }
  lua_State *L = rt->L;
  struct stat st;
  int have_file = stat(config_path, &st) == 0;
  if (rt_config_load(L, have_file || explicit_config ? config_path : NULL, explicit_config, environ,
                     err, sizeof err) < 0) {
    fprintf(stderr, "candled: %s\n", err);
    return 1;
  }
  /* Relative paths in the config resolve against the config file's directory. */
  char real[PATH_MAX];
  config_dir_of(config_path, have_file, rt->config_dir, sizeof rt->config_dir, real);
  int have_real = real[0] != 0;
  resolve_key(L, rt->config_dir, "database", "path");
  resolve_key(L, rt->config_dir, "repl", "socket");
  resolve_key(L, rt->config_dir, "paths", "scripts");
  resolve_key(L, rt->config_dir, "paths", "strategies");
  resolve_key(L, rt->config_dir, "backup", "dir");
  lua_pushvalue(L, -1);
  lua_setfield(L, LUA_REGISTRYINDEX, RTL_CONFIG_KEY);
  if (have_real) {
    lua_pushstring(L, real);
    lua_setfield(L, LUA_REGISTRYINDEX, RTL_CONFIG_KEY ".file");
  }
  /* what a reload changes too (log level, grace, limits): the one path, also rt.vm.config_commit */
  rt_config_apply(rt, L, -1);
  /* HTTP */
  rt_http_config_t hc = {0};
  rt_config_get(L, -1, "http.timeout");
  hc.timeout_ms = (long)(lua_tonumber(L, -1) * 1000);
  rt_config_get(L, -2, "http.connect_timeout");
  hc.connect_timeout_ms = (long)(lua_tonumber(L, -1) * 1000);
  rt_config_get(L, -3, "http.max_host_connections");
  hc.max_host_connections = (long)lua_tointeger(L, -1);
  rt_config_get(L, -4, "http.user_agent");
  hc.user_agent = lua_tostring(L, -1);
  rt_config_get(L, -5, "http.max_body");
  rt->http_max_body = (long)lua_tointeger(L, -1);
  rt->http = rt_http_new(&rt->loop, &hc);
  lua_pop(L, 5);
  if (!rt->http) {
    fprintf(stderr, "candled: cannot start the HTTP engine (libcurl)\n");
    return 1;
  }
  /* budgets: checked before anything is created on disk */
  if (rtl_budgets_open(rt, L, -1, err, sizeof err) < 0) {   /* named like the validation errors */
    fprintf(stderr, "candled: %s: %s\n", have_file || explicit_config ? config_path : "(defaults)", err);
    return 1;
  }
  /* database */
  rt_config_get(L, -1, "database.path");
  const char *db = lua_tostring(L, -1);
  rt_config_get(L, -2, "database.busy_timeout_ms");
  int busy = (int)lua_tointeger(L, -1);
  rt_config_get(L, -3, "database.migrate_batch");
  lua_Integer migrate_batch = lua_tointeger(L, -1);
  lua_pop(L, 1);
  if (migrate_batch < 1 || migrate_batch > 1000000) {
    fprintf(stderr, "candled: %s: database.migrate_batch must be from 1 to 1000000, not %lld\n",
            have_file || explicit_config ? config_path : "(defaults)", (long long)migrate_batch);
    return 1;
  }
  if (app_mkdirs_for(db) < 0) {
    fprintf(stderr, "candled: database.path %s: cannot create its directory: %s\n", db, strerror(errno));
    return 1;
  }
  char recovered[8192] = "";
  if (recover) {                               /* `candled run`: the lock first, held until rt_close */
    if (daemon_lock(rt, db) < 0) return 1;
    rt_config_get(L, -3, "backup.dir");
    int bad = recover_at_start(db, lua_tostring(L, -1), recovered, sizeof recovered);
    lua_pop(L, 1);
    if (bad) return 1;
    if (recovered[0]) {                        /* a new file took the path: lock that one */
      close(rt->db_fd);                        /* no SQLite connection is open yet */
      rt->db_fd = -1;
      if (daemon_lock(rt, db) < 0) return 1;
    }
  }
  rt->store = rt_store_open(db, busy, err, sizeof err);
  lua_pop(L, 2);
  if (!rt->store) {
    fprintf(stderr, "candled: database.path: %s\n", err);
    return 1;
  }
  if (recovered[0]) rt_alert_raise(rt, "corruption", "database", "error", recovered);
  rt_config_get(L, -1, "database.allow_unsafe_sql");
  rt_store_guard(rt->store, lua_toboolean(L, -1));
  lua_pop(L, 1);
  rt->checkpoint = rt_checkpoint_start(&rt->loop, rt->store, rt->log, 1000);
  rt_migrate_start(rt, (int)migrate_batch);         /* an old database's rows, while the loop runs */
  rt_budgets_load(rt->budgets);                /* persisted quotas and bans */
  /* require: scripts/ (lib modules) and the config directory (strategies.<name>) */
  rt_config_get(L, -1, "paths.scripts");
  rt_vm_add_path(L, lua_tostring(L, -1));
  lua_pop(L, 1);
  rt_vm_add_path(L, rt->config_dir);
  lua_pop(L, 1);                               /* the config table */
  return 0;
}

/* ---- the daemon lock ------------------------------------------------------------------------ */

/*
** One daemon per database: `candled run` holds the lock on the database file itself
** (runtime/dblock.c: the resolved file, so no symlink, hard link or deleted lock file lets a second
** daemon in) from before the start-up check until rt_close, after the store is closed. Sets
** rt->db_fd; returns 0, or -1 after printing why.
*/
static int daemon_lock(rt_t *rt, const char *db) {
  char real[PATH_MAX];
  int fd = rt_dblock_take(db, 1, real, sizeof real);
  if (fd == -1) {
    fprintf(stderr, "candled: another daemon is running on %s%s%s%s: one daemon per database (stop it,"
            " or give this one another database.path)\n", real, strcmp(real, db) ? " (database.path " : "",
            strcmp(real, db) ? db : "", strcmp(real, db) ? ")" : "");
    return -1;
  }
  if (fd < 0) {
    fprintf(stderr, "candled: database.path %s: cannot open it to take the daemon lock: %s\n", db, strerror(errno));
    return -1;
  }
  rt->db_fd = fd;
  return 0;
}

/* ---- the start-up check (issue 14) ---------------------------------------------------------- */

/*
** Before the daemon opens the database: quick_check it. A database that fails (or is not one) is
** never opened and written over: under the daemon lock (taken by the caller) it is moved aside and the newest backup
** under backup.dir that passes integrity_check takes its place; the collectors' cursors then
** fetch again whatever the backup lacks. `note` receives what happened, for the alert raised once
** the store is open ("" when the database was fine). Returns 0, or -1 after printing why.
*/
static int recover_at_start(const char *db, const char *backup_dir, char *note, size_t n) {
  char problem[512], aside[PATH_MAX], err[1024];
  struct stat st;
  note[0] = 0;
  if (stat(db, &st) < 0) return 0;               /* a new database */
  if (st.st_size == 0) return 0;                 /* new: created empty by the daemon lock */
  if (rt_store_quick_check(db, problem, sizeof problem) == 1) return 0;
  char **list = rt_backup_list(backup_dir);
  int done = -1;
  for (char **p = list; p && *p && done < 0; p++) {
    done = rt_store_replace(db, *p, "corrupt", aside, sizeof aside, err, sizeof err);
    if (done == 0)
      snprintf(note, n, "database %s failed its check (%s): moved aside to %s and restored from %s", db, problem,
               aside, *p);
    else
      fprintf(stderr, "candled: backup %s not used: %s\n", *p, err);
  }
  rt_backup_list_free(list);
  if (done < 0) {
    fprintf(stderr, "candled: database %s failed its check (%s) and no verified backup is in %s: it is left"
            " as it is ('candled check' reports the damage)\n", db, problem, backup_dir);
    return -1;
  }
  fprintf(stderr, "candled: %s\n", note);
  return 0;
}

/*
** The socket a client connects to: repl.socket of the config (defaults, CANDLED_REPL__SOCKET),
** resolved against the config file's directory. Only loads and validates the config: nothing is
** opened or created. Returns 0, or 1 after printing why.
*/
int app_config_key_path(const char *config_path, int explicit_config, const char *key, char *out, size_t n) {
  char err[1024], dir[PATH_MAX], real[PATH_MAX];
  lua_State *L = luaL_newstate();
  if (!L) {
    fprintf(stderr, "candled: cannot create the Lua state\n");
    return 1;
  }
  luaL_openlibs(L);
  struct stat st;
  int have_file = stat(config_path, &st) == 0;
  if (rt_config_load(L, have_file || explicit_config ? config_path : NULL, explicit_config, environ, err,
                     sizeof err) < 0) {
    fprintf(stderr, "candled: %s\n", err);
    lua_close(L);
    return 1;
  }
  config_dir_of(config_path, have_file, dir, sizeof dir, real);
  rt_config_get(L, -1, key);
  resolve(dir, lua_tostring(L, -1), out, n);
  lua_close(L);
  return 0;
}
