/*
** runtime/main.c - the composition root: CLI, runtime setup, the rt.* module list.
**
**   candled run  [--config F]                 the daemon: schedules every script under paths.scripts
**   candled eval [--config F] FILE|- [ARG...] runs Lua as a task with every module, then exits
**   candled backfill  [--config F] ARG...      subcommands that scripts provide (a script's
**   candled watchlist [--config F] ARG...      `commands` table; runtime/lua/cli.lua)
**   candled export    [--config F] qlib ARG...
**   candled repl   [--config F] [--socket P]    a REPL into the running daemon (runtime/repl/client.c)
**   candled reload [--config F] [--socket P] [NAME]   reload scripts through that socket
**   candled help [COMMAND]
**   candled --version
**
** Exit codes: 0 ok, 1 failure, 2 usage. Errors are one line on stderr naming what was wrong.
*/
#include <curl/curl.h>
#include <errno.h>
#include <lauxlib.h>
#include <libgen.h>
#include <lualib.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include "bindings/bindings.h"
#include "runtime/alert.h"
#include "runtime/budget.h"
#include "runtime/store_checkpoint.h"
#include "runtime/config.h"
#include "runtime/dblock.h"
#include "runtime/http.h"
#include "runtime/http_server.h"
#include "runtime/log.h"
#include "runtime/migrate.h"
#include "runtime/repl/link.h"
#include "runtime/repl/server.h"
#include "runtime/repl/client.h"
#include "runtime/rt.h"
#include "runtime/sched.h"
#include "runtime/sd_notify.h"
#include "runtime/store.h"
#include "runtime/store_backup.h"
#include "runtime/task.h"
#include "runtime/vm.h"

extern char **environ;

static const rt_vm_module_t modules[] = {
  {"rt.http", luaopen_rt_http}, {"rt.db", luaopen_rt_db},     {"rt.json", luaopen_rt_json},
  {"rt.time", luaopen_rt_time}, {"rt.task", luaopen_rt_task}, {"rt.log", luaopen_rt_log},
  {"rt.fs", luaopen_rt_fs},     {"rt.csv", luaopen_rt_csv},   {"rt.config", luaopen_rt_config},
  {"rt.sched", luaopen_rt_sched}, {"rt.budget", luaopen_rt_budget}, {"rt.alert", luaopen_rt_alert},
  {"rt.vm", luaopen_rt_vm}, {"rt.watch", luaopen_rt_watch}, {"rt.column", luaopen_rt_column},
  {"rt.repl", rt_repl_luaopen}, {"rt.backup", luaopen_rt_backup}, {"rt.events", luaopen_rt_events},
  {"rt.replay", luaopen_rt_replay},
  {"rt.ws", luaopen_rt_ws}, {NULL, NULL}};

static const char *const help_text[][2] = {
  {"run", "usage: candled run [--config FILE]\n"
          "Start the daemon: open the database, load every script under paths.scripts and run each\n"
          "on its schedule until SIGINT/SIGTERM. FILE defaults to $CANDLED_CONFIG, else ./config.lua.\n"},
  {"eval", "usage: candled eval [--config FILE] FILE|- [ARG...]\n"
           "Run a Lua file (or stdin with -) as a task with every rt.* module and the configured\n"
           "database, then exit: 0 when it ends without error, 1 otherwise. ARGs are the chunk's `...`.\n"
           "print() writes to stdout. Without --config, ./config.lua is used when it exists.\n"},
  {"backfill", "usage: candled backfill [--config FILE] --source SOURCE --pool ID [--timeframe TF[,TF...]|all]\n"
               "                        [--days N]\n"
               "Fetch the history of one instrument now, to N days back (default: the source's\n"
               "history_days), then re-fetch its gaps; a progress bar on a terminal, a summary at the\n"
               "end. Resumes where an interrupted backfill stopped. While a daemon runs on the same\n"
               "database, the daemon does the work (on its budget) and this follows its progress.\n"
               "The source's script does the work\n"
               "(GeckoTerminal: --pool solana_<address>, timeframes 1m 5m 15m 1h 4h 12h 1d;\n"
               "Binance: --source binance_spot|binance_usdm|binance_coinm --symbol SYMBOL\n"
               "[--timeframe 1m[,1h...]], timeframes 1m 3m 5m 15m 30m 1h 2h 4h 6h 8h 12h 1d 3d, 1s on spot).\n"},
  {"watchlist", "usage: candled watchlist [--config FILE] list\n"
                "       candled watchlist [--config FILE] add ADDRESS [--symbol S] [--name N] [--dex D]\n"
                "                                         [--network-address MINT] [--chain C]\n"
                "       candled watchlist [--config FILE] remove ADDRESS\n"
                "Show or edit the watchlist file (sources.geckoterminal.watchlist). Edits are atomic;\n"
                "a running daemon applies them within seconds. Columns add is not given are taken\n"
                "from the database or one API call.\n"},
  {"export", "usage: candled export [--config FILE] qlib --out DIR --freq day|60min|15min|5min|1min\n"
             "                      [--source S] [--instruments A,B,...] [--start DATE] [--end DATE]\n"
             "Write the stored candles as a QLib data root in DIR (calendars/, instruments/, features/),\n"
             "aggregating finer timeframes into complete buckets. Incremental (unchanged files are kept,\n"
             "the result equals a full export) and atomic (DIR holds the previous export until the new\n"
             "one is complete). A progress bar on a terminal, then one summary line.\n"},
  {"repl", "usage: candled repl [--config FILE] [--socket PATH]\n"
           "Attach to the running daemon's REPL (repl.socket, default data/candled.sock beside the\n"
           "config file). Each input runs as a task in the daemon: expressions print their values,\n"
           "statements run, http.get/db.query/time.sleep work; incomplete input asks for more.\n"
           "Variables last for the session. help() lists the helpers: status(), tasks(), budgets(),\n"
           "runs(script [, n]), alerts(), sql(query, ...), reload([name]), run(name), cancel(id),\n"
           "last_error(name). On a terminal: line editing, history (~/.candled_history), Tab\n"
           "completes names and fields, Ctrl-C cancels the running input, Ctrl-D exits.\n"
           "Otherwise stdin is read line by line as if typed, results go to stdout and errors to\n"
           "stderr; exit 1 if any input failed or the daemon cannot be reached.\n"},
  {"reload", "usage: candled reload [--config FILE] [--socket PATH] [NAME]\n"
             "Ask the running daemon to reload one script (or every script, strategy and the config)\n"
             "and print the report. Exit 1 if anything was rejected or no daemon is reachable.\n"},
  {"backup", "usage: candled backup [--config FILE] [--to FILE]\n"
             "Take a verified backup now (SQLite's online backup API: a running daemon keeps writing),\n"
             "into backup.dir (default data/backups beside the config) or FILE. The copy is checked with\n"
             "integrity_check before it gets its name, and recorded (time, size, rows per table).\n"},
  {"status", "usage: candled status [--config FILE]\n"
             "One screen for a shell: whether a daemon holds the database, scripts (last run, status,\n"
             "failures), budgets against their limits, open alerts and series freshness.\n"},
  {"backups", "usage: candled backups [--config FILE]\nList the backups recorded in the database, newest first.\n"},
  {"check", "usage: candled check [--config FILE] [DBFILE]\n"
            "Run SQLite's full integrity_check on the database (or DBFILE, e.g. a backup) and report\n"
            "per table: rows and ok, or the problems found. Exit 0 when all is well, 1 otherwise.\n"},
  {"restore", "usage: candled restore [--config FILE] BACKUP\n"
              "Replace the database with BACKUP after checking it (integrity_check). Refuses while a\n"
              "daemon holds the database. The replaced file is kept as <database>.replaced-<time>.\n"},
  {"replay", "usage: candled replay [--config FILE] --strategy NAME --from DATE --to DATE [--instruments A,B]\n"
             "                      [--timeframes 1m,..] [--source S] [--fees BPS] [--slippage BPS]\n"
             "                      [--capital N] [--out DIR]\n"
             "Feed the stored bars of the range (DATE: YYYY-MM-DD, YYYY-MM-DDTHH:MM[:SS] or epoch seconds;\n"
             "a --to day is included whole) through strategies/NAME.lua in time order, after its warm-up\n"
             "bars, with a simulated clock. Signals trade at the next bar's open with fees and slippage.\n"
             "Prints the report and writes report.json, report.csv, signals.csv, trades.csv, equity.csv\n"
             "and equity.svg (equity curve and drawdown) into DIR (default replay-NAME).\n"},
  {"help", "usage: candled help [COMMAND]\nShow help for a command.\n"},
  {NULL, NULL}};

static void usage_overview(FILE *out) {
  fputs("usage: candled <command> [options]\n\n"
        "commands:\n"
        "  run      start the daemon (collect on schedule)\n"
        "  eval     run a Lua file as a task with every rt.* module, then exit\n"
        "  backfill fetch one instrument's history now (with progress)\n"
        "  watchlist list, add or remove watchlist pools\n"
        "  export   write the candles as a QLib dataset (export qlib --out DIR --freq F)\n"
        "  repl     attach to the running daemon (Lua REPL)\n"
        "  reload   reload scripts in the running daemon\n"
        "  status   daemon, scripts, budgets, alerts and freshness on one screen\n"
        "  backup   take a verified backup now;  backups  list them\n"
        "  check    full integrity check per table;  restore  replace the database with a backup\n"
        "  replay   a strategy over stored bars: signals, simulated PnL, report and chart\n"
        "  help     show help for a command\n"
        "  --version\n\n"
        "Run 'candled help <command>' for details.\n", out);
}

static int usage_error(const char *msg, const char *arg) {
  fprintf(stderr, "candled: %s%s%s (see 'candled help')\n", msg, arg ? ": " : "", arg ? arg : "");
  return 2;
}

/* Make `p` absolute against `dir` (p is rewritten in the config table by the caller). */
static void resolve(const char *dir, const char *p, char *out, size_t n) {
  if (p[0] == '/') snprintf(out, n, "%s", p);
  else snprintf(out, n, "%s/%s", dir, p);
}

static int mkdirs_for(const char *file) {
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

static int recover_at_start(const char *db, const char *backup_dir, char *note, size_t n);
static int daemon_lock(rt_t *rt, const char *db);

/*
** Everything both commands need: loop, Lua, config, logger, HTTP engine, database.
** Returns 0, or 1 after printing one line to stderr.
*/
static int setup(rt_t *rt, const char *config_path, int explicit_config, int recover) {
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
  if (mkdirs_for(db) < 0) {
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

/* ---- eval ----------------------------------------------------------------------------------- */

static void on_eval_done(rt_task_t *t, void *ud) {
  rt_t *rt = ud;
  rt->shutdown_grace = 0;                      /* leftover tasks are cancelled at once */
  rt_stop(rt, t->status == RT_TASK_OK ? 0 : 1);
}

static int cmd_eval(rt_t *rt, const char *file, int argc, char **argv) {
  lua_State *L = rt->L;
  int rc = strcmp(file, "-") == 0 ? luaL_loadfilex(L, NULL, "t") : luaL_loadfilex(L, file, "t");
  if (rc != LUA_OK) {
    fprintf(stderr, "candled: %s\n", lua_tostring(L, -1));
    lua_pop(L, 1);
    return 1;
  }
  for (int i = 0; i < argc; i++) lua_pushstring(L, argv[i]);
  rt_task_t *t = rt_task_spawn(rt, L, argc, "eval", NULL);
  if (!t || rt_signals_start(rt) < 0) {
    fprintf(stderr, "candled: cannot start the task\n");
    return 1;
  }
  rt_task_on_done(t, on_eval_done, rt);
  return rt_run(rt);
}

/* ---- subcommands provided by scripts (backfill, watchlist) --------------------------------- */

/* The task ran candled.cli's run(): its one result is the exit code. */
static void on_command_done(rt_task_t *t, void *ud) {
  rt_t *rt = ud;
  int code = 1;
  if (t->status == RT_TASK_OK && t->nres > 0 && lua_isinteger(rt_task_thread(t), -1))
    code = (int)lua_tointeger(rt_task_thread(t), -1);
  else if (t->status == RT_TASK_ERROR)
    fprintf(stderr, "candled: %s\n", t->error ? t->error : "error");
  rt->shutdown_grace = 0;
  rt_stop(rt, code);
}

static int cmd_script(rt_t *rt, const char *command, int argc, char **argv) {
  lua_State *L = rt->L;
  /* only asking whether a daemon runs; the descriptor stays open until rt_close (see rt.h) */
  int daemon = rt_dblock_held(rt_store_path(rt->store), &rt->db_fd) == 1;
  if (rt_sched_init(rt) < 0) {                 /* scripts may trigger schedules: none exist here */
    fprintf(stderr, "candled: cannot start the scheduler\n");
    return 1;
  }
  lua_getglobal(L, "require");
  lua_pushliteral(L, "candled.cli");
  if (rt_vm_pcall(L, 1, 1) != LUA_OK) {
    fprintf(stderr, "candled: %s\n", lua_tostring(L, -1));
    return 1;
  }
  lua_getfield(L, -1, "run");
  lua_remove(L, -2);
  lua_pushstring(L, command);
  lua_pushboolean(L, isatty(STDERR_FILENO));
  lua_pushboolean(L, daemon);
  luaL_checkstack(L, argc, "too many arguments");
  for (int i = 0; i < argc; i++) lua_pushstring(L, argv[i]);
  rt_task_t *t = rt_task_spawn(rt, L, argc + 3, command, NULL);
  if (!t || rt_signals_start(rt) < 0) {
    fprintf(stderr, "candled: cannot start the task\n");
    return 1;
  }
  rt_task_on_done(t, on_command_done, rt);
  return rt_run(rt);
}

/* ---- run ------------------------------------------------------------------------------------ */

/* Listen on repl.socket unless repl.enabled is false. Returns 0, or 1 after printing why. */
static int start_repl(rt_t *rt) {
  lua_State *L = rt->L;
  char err[1024], path[PATH_MAX];
  lua_getfield(L, LUA_REGISTRYINDEX, RTL_CONFIG_KEY);
  rt_config_get(L, -1, "repl.enabled");
  rt_config_get(L, -2, "repl.socket");        /* absolute: resolved by setup() */
  int enabled = lua_toboolean(L, -2);
  snprintf(path, sizeof path, "%s", lua_tostring(L, -1));
  lua_pop(L, 3);
  if (!enabled) return 0;
  if (mkdirs_for(path) < 0) {
    fprintf(stderr, "candled: repl.socket %s: cannot create its directory: %s\n", path, strerror(errno));
    return 1;
  }
  if (rt_repl_start(rt, path, err, sizeof err) < 0) {
    fprintf(stderr, "candled: %s\n", err);
    return 1;
  }
  rt_log_printf(rt->log, RT_LOG_INFO, NULL, "repl listening on %s", path);
  return 0;
}

/* One GET the server does not serve itself: candled.web.handle(path, query) on the main thread. */
static void on_http_route(void *ud, const char *path, size_t plen, const char *query, size_t qlen,
                          rt_http_reply_t *out) {
  rt_t *rt = ud;
  lua_State *L = rt->L;
  int top = lua_gettop(L);
  lua_getglobal(L, "require");
  lua_pushliteral(L, "candled.web");
  if (rt_vm_pcall(L, 1, 1) == LUA_OK) {
    lua_getfield(L, -1, "handle");
    lua_pushlstring(L, path, plen);
    lua_pushlstring(L, query, qlen);
    if (rt_vm_pcall(L, 2, 3) == LUA_OK) {
      if (lua_isinteger(L, -3)) {
        size_t len;
        const char *body = lua_tolstring(L, -1, &len);
        out->status = (int)lua_tointeger(L, -3);
        snprintf(out->type, sizeof out->type, "%s", lua_isstring(L, -2) ? lua_tostring(L, -2) : "text/plain");
        if (body && (out->body = malloc(len ? len : 1))) {
          memcpy(out->body, body, len);
          out->len = len;
        }
      }
      lua_settop(L, top);
      return;
    }
  }
  rt_log_printf(rt->log, RT_LOG_ERROR, NULL, "http_server: %.*s: %s", (int)plen, path, lua_tostring(L, -1));
  out->status = 500;
  snprintf(out->type, sizeof out->type, "text/plain; charset=utf-8");
  if ((out->body = strdup("internal error (see the daemon's log)\n"))) out->len = strlen(out->body);
  lua_settop(L, top);
}

/* Listen on http_server.listen unless it is false. Returns 0, or 1 after printing why. */
static int start_http_server(rt_t *rt) {
  lua_State *L = rt->L;
  char err[1024];
  lua_getfield(L, LUA_REGISTRYINDEX, RTL_CONFIG_KEY);
  rt_config_get(L, -1, "http_server.listen");
  int off = lua_type(L, -1) == LUA_TBOOLEAN && !lua_toboolean(L, -1);
  if (!off && lua_type(L, -1) != LUA_TSTRING) {
    fprintf(stderr, "candled: http_server.listen must be \"HOST:PORT\" or false\n");
    lua_pop(L, 2);
    return 1;
  }
  char listen[300];
  snprintf(listen, sizeof listen, "%s", off ? "" : lua_tostring(L, -1));
  lua_pop(L, 2);
  if (off) return 0;
  rt->http_server = rt_http_server_start(&rt->loop, listen, on_http_route, rt, err, sizeof err);
  if (!rt->http_server) {
    fprintf(stderr, "candled: %s\n", err);
    return 1;
  }
  rt_log_printf(rt->log, RT_LOG_INFO, NULL, "http server listening on http://%.*s:%d/",
                (int)(strrchr(listen, ':') - listen), listen, rt_http_server_port(rt->http_server));
  return 0;
}

static int run_daemon(rt_t *rt) {
  lua_State *L = rt->L;
  if (rt_sched_init(rt) < 0 || rt_signals_start(rt) < 0) {
    fprintf(stderr, "candled: cannot start the scheduler\n");
    return 1;
  }
  if (start_repl(rt) != 0 || start_http_server(rt) != 0) return 1;
  lua_getglobal(L, "require");
  lua_pushliteral(L, "candled.daemon");
  if (rt_vm_pcall(L, 1, 1) != LUA_OK) {
    fprintf(stderr, "candled: %s\n", lua_tostring(L, -1));
    return 1;
  }
  lua_getfield(L, -1, "start");                /* -> count, or nil and a one-line error */
  if (rt_vm_pcall(L, 0, 2) != LUA_OK || lua_isnil(L, -2)) {
    fprintf(stderr, "candled: %s\n", lua_tostring(L, -1));
    return 1;
  }
  lua_pop(L, 3);
  rt_sd_notify("READY=1\nSTATUS=collecting");   /* systemd Type=notify: the daemon is up */
  int code = rt_run(rt);
  rt_sd_notify("STOPPING=1");
  rt_log_printf(rt->log, RT_LOG_INFO, NULL, "stopped");
  return code;
}

static int cmd_run(rt_t *rt) {
  return run_daemon(rt);                       /* under the lock setup() took; rt_close releases it */
}

/* ---- repl / reload: clients of a running daemon ------------------------------------------- */

/*
** The socket a client connects to: repl.socket of the config (defaults, CANDLED_REPL__SOCKET),
** resolved against the config file's directory. Only loads and validates the config: nothing is
** opened or created. Returns 0, or 1 after printing why.
*/
static int config_key_path(const char *config_path, int explicit_config, const char *key, char *out, size_t n) {
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

static int cmd_client(const char *cmd, const char *config_path, int explicit_config, const char *socket,
                      int argc, char **argv) {
  char path[PATH_MAX];
  if (strcmp(cmd, "repl") == 0 && argc > 0) return usage_error("unexpected argument", argv[0]);
  if (strcmp(cmd, "reload") == 0 && argc > 1) return usage_error("unexpected argument", argv[1]);
  if (socket) snprintf(path, sizeof path, "%s", socket);
  else if (config_key_path(config_path, explicit_config, "repl.socket", path, sizeof path) != 0) return 1;
  if (strcmp(cmd, "repl") == 0) return rt_repl_client_run(path);
  return rt_repl_client_reload(path, argc > 0 ? argv[0] : NULL);
}

/* ---- check / restore: work on the file, never open the store (it may be damaged) ----------- */

static void print_check_row(void *ud, const char *table, int64_t rows, const char *problem) {
  (void)ud;
  if (!table) printf("  %-28s %12s  %s\n", "(file)", "", problem);
  else if (rows < 0) printf("  %-28s %12s  %s\n", table, "?", problem ? problem : "ok");
  else printf("  %-28s %12lld  %s\n", table, (long long)rows, problem ? problem : "ok");
}

static int cmd_check(const char *config_path, int explicit_config, int argc, char **argv) {
  char db[PATH_MAX], err[1024];
  if (argc > 1) return usage_error("unexpected argument", argv[1]);
  if (argc == 1) snprintf(db, sizeof db, "%s", argv[0]);
  else if (config_key_path(config_path, explicit_config, "database.path", db, sizeof db) != 0) return 1;
  printf("integrity_check of %s\n  %-28s %12s  %s\n", db, "table", "rows", "result");
  int rc = rt_store_check_file(db, 1, print_check_row, NULL, err, sizeof err);
  if (rc < 0) {
    fprintf(stderr, "candled: check: %s\n", err);
    return 1;
  }
  printf("%s\n", rc == 1 ? "ok" : "DAMAGED: 'candled restore' replaces it with a verified backup ('candled backups')");
  return rc == 1 ? 0 : 1;
}

static int cmd_restore(const char *config_path, int explicit_config, int argc, char **argv) {
  char db[PATH_MAX], real[PATH_MAX], aside[PATH_MAX], err[1024];
  if (argc < 1) return usage_error("restore needs a BACKUP file", NULL);
  if (argc > 1) return usage_error("unexpected argument", argv[1]);
  if (config_key_path(config_path, explicit_config, "database.path", db, sizeof db) != 0) return 1;
  if (mkdirs_for(db) < 0) {
    fprintf(stderr, "candled: database.path %s: cannot create its directory: %s\n", db, strerror(errno));
    return 1;
  }
  /* the daemon lock, held while the files move: no daemon starts meanwhile (no database yet: none runs) */
  int fd = rt_dblock_take(db, 0, real, sizeof real);
  if (fd == -1) {
    fprintf(stderr, "candled: restore: a daemon is running on %s: stop it first\n", real);
    return 1;
  }
  if (fd < 0 && errno != ENOENT) {
    fprintf(stderr, "candled: restore: %s: %s\n", db, strerror(errno));
    return 1;
  }
  /* the resolved file is replaced (a symlinked database.path stays a symlink) */
  int rc = rt_store_replace(real, argv[0], "replaced", aside, sizeof aside, err, sizeof err);
  if (fd >= 0) close(fd);                        /* no SQLite connection of ours has the file open */
  if (rc < 0) {
    fprintf(stderr, "candled: restore: %s\n", err);
    return 1;
  }
  printf("restored %s from %s", db, argv[0]);
  if (aside[0]) printf("; the replaced database is kept as %s", aside);
  printf("\n");
  return 0;
}

int main(int argc, char **argv) {
  if (argc < 2) {
    usage_overview(stderr);
    return 2;
  }
  const char *cmd = argv[1];
  if (strcmp(cmd, "--version") == 0 || strcmp(cmd, "version") == 0) {
    printf("candled %s (%s, libuv %s, %s, SQLite %s)\n", CANDLED_VERSION, LUA_RELEASE, uv_version_string(),
           curl_version(), sqlite3_libversion());
    return 0;
  }
  if (strcmp(cmd, "help") == 0 || strcmp(cmd, "--help") == 0 || strcmp(cmd, "-h") == 0) {
    if (argc < 3) {
      usage_overview(stdout);
      return 0;
    }
    for (int i = 0; help_text[i][0]; i++)
      if (strcmp(help_text[i][0], argv[2]) == 0) {
        fputs(help_text[i][1], stdout);
        return 0;
      }
    return usage_error("no such command", argv[2]);
  }
  int scripted = strcmp(cmd, "backfill") == 0 || strcmp(cmd, "watchlist") == 0 || strcmp(cmd, "export") == 0 ||
                 strcmp(cmd, "backup") == 0 || strcmp(cmd, "backups") == 0 || strcmp(cmd, "status") == 0 ||
                 strcmp(cmd, "replay") == 0;
  int offline = strcmp(cmd, "check") == 0 || strcmp(cmd, "restore") == 0;
  int client = strcmp(cmd, "repl") == 0 || strcmp(cmd, "reload") == 0;
  if (strcmp(cmd, "run") != 0 && strcmp(cmd, "eval") != 0 && !scripted && !client && !offline)
    return usage_error("unknown command", cmd);
  const char *config_path = getenv("CANDLED_CONFIG"), *socket = NULL;
  int explicit_config = config_path != NULL;
  int i = 2;
  while (i < argc && argv[i][0] == '-' && argv[i][1]) {
    if (strcmp(argv[i], "--config") == 0) {
      if (i + 1 >= argc) return usage_error("--config needs a file", NULL);
      config_path = argv[i + 1];
      explicit_config = 1;
      i += 2;
    } else if (client && strcmp(argv[i], "--socket") == 0) {
      if (i + 1 >= argc) return usage_error("--socket needs a path", NULL);
      socket = argv[i + 1];
      i += 2;
    } else if (strcmp(argv[i], "--") == 0) {
      i++;
      break;
    } else if (scripted) {
      break;                                   /* the script's own options */
    } else {
      return usage_error("unknown option", argv[i]);
    }
  }
  if (!config_path) config_path = "config.lua";
  if (strcmp(cmd, "run") == 0 && i < argc) return usage_error("unexpected argument", argv[i]);
  if (strcmp(cmd, "eval") == 0 && i >= argc) return usage_error("eval needs a FILE (or - for stdin)", NULL);
  if (client) return cmd_client(cmd, config_path, explicit_config, socket, argc - i, argv + i);
  if (strcmp(cmd, "check") == 0) return cmd_check(config_path, explicit_config, argc - i, argv + i);
  if (strcmp(cmd, "restore") == 0) return cmd_restore(config_path, explicit_config, argc - i, argv + i);

  rt_t rt = {0};
  int code = setup(&rt, config_path, explicit_config, strcmp(cmd, "run") == 0);
  if (code == 0 && scripted)
    code = cmd_script(&rt, cmd, argc - i, argv + i);
  else if (code == 0)
    code = strcmp(cmd, "run") == 0 ? cmd_run(&rt) : cmd_eval(&rt, argv[i], argc - i - 1, argv + i + 1);
  rt_close(&rt);
  return code;
}
