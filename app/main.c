/*
** app/main.c - the composition root: the CLI and the rt.* module list; each command is a file
** of app/ (app.h lists them).
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
#include <lua.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <uv.h>

#include "app/app.h"
#include "bindings/bindings.h"
#include "runtime/repl/link.h"

static const rt_vm_module_t modules[] = {
  {"rt.http", luaopen_rt_http}, {"rt.db", luaopen_rt_db},     {"rt.json", luaopen_rt_json},
  {"rt.time", luaopen_rt_time}, {"rt.task", luaopen_rt_task}, {"rt.log", luaopen_rt_log},
  {"rt.fs", luaopen_rt_fs},     {"rt.csv", luaopen_rt_csv},   {"rt.config", luaopen_rt_config},
  {"rt.sched", luaopen_rt_sched}, {"rt.budget", luaopen_rt_budget}, {"rt.alert", luaopen_rt_alert},
  {"rt.vm", luaopen_rt_vm}, {"rt.watch", luaopen_rt_watch}, {"rt.column", luaopen_rt_column},
  {"rt.repl", rt_repl_luaopen}, {"rt.backup", luaopen_rt_backup}, {"rt.events", luaopen_rt_events},
  {"rt.replay", luaopen_rt_replay},
  {"rt.ws", luaopen_rt_ws}, {NULL, NULL}};

int main(int argc, char **argv) {
  if (argc < 2) {
    app_usage_overview(stderr);
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
      app_usage_overview(stdout);
      return 0;
    }
    return app_help_command(argv[2]);
  }
  int scripted = strcmp(cmd, "backfill") == 0 || strcmp(cmd, "watchlist") == 0 || strcmp(cmd, "export") == 0 ||
                 strcmp(cmd, "backup") == 0 || strcmp(cmd, "backups") == 0 || strcmp(cmd, "status") == 0 ||
                 strcmp(cmd, "replay") == 0;
  int offline = strcmp(cmd, "check") == 0 || strcmp(cmd, "restore") == 0;
  int client = strcmp(cmd, "repl") == 0 || strcmp(cmd, "reload") == 0;
  if (strcmp(cmd, "run") != 0 && strcmp(cmd, "eval") != 0 && !scripted && !client && !offline)
    return app_usage_error("unknown command", cmd);
  const char *config_path = getenv("CANDLED_CONFIG"), *socket = NULL;
  int explicit_config = config_path != NULL;
  int i = 2;
  while (i < argc && argv[i][0] == '-' && argv[i][1]) {
    if (strcmp(argv[i], "--config") == 0) {
      if (i + 1 >= argc) return app_usage_error("--config needs a file", NULL);
      config_path = argv[i + 1];
      explicit_config = 1;
      i += 2;
    } else if (client && strcmp(argv[i], "--socket") == 0) {
      if (i + 1 >= argc) return app_usage_error("--socket needs a path", NULL);
      socket = argv[i + 1];
      i += 2;
    } else if (strcmp(argv[i], "--") == 0) {
      i++;
      break;
    } else if (scripted) {
      break;                                   /* the script's own options */
    } else {
      return app_usage_error("unknown option", argv[i]);
    }
  }
  if (!config_path) config_path = "config.lua";
  if (strcmp(cmd, "run") == 0 && i < argc) return app_usage_error("unexpected argument", argv[i]);
  if (strcmp(cmd, "eval") == 0 && i >= argc) return app_usage_error("eval needs a FILE (or - for stdin)", NULL);
  if (client) return cmd_client(cmd, config_path, explicit_config, socket, argc - i, argv + i);
  if (strcmp(cmd, "check") == 0) return cmd_check(config_path, explicit_config, argc - i, argv + i);
  if (strcmp(cmd, "restore") == 0) return cmd_restore(config_path, explicit_config, argc - i, argv + i);

  rt_t rt = {0};
  int code = app_setup(&rt, modules, config_path, explicit_config, strcmp(cmd, "run") == 0);
  if (code == 0 && scripted)
    code = cmd_script(&rt, cmd, argc - i, argv + i);
  else if (code == 0)
    code = strcmp(cmd, "run") == 0 ? cmd_run(&rt) : cmd_eval(&rt, argv[i], argc - i - 1, argv + i + 1);
  rt_close(&rt);
  return code;
}
