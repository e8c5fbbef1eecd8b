/*
** app/cmd_client.c - `candled repl` and `candled reload`: clients of a running daemon over its
** REPL socket (runtime/repl/client.c).
*/
#include "app/app.h"

#include <limits.h>
#include <string.h>

#include "runtime/repl/client.h"

int cmd_client(const char *cmd, const char *config_path, int explicit_config, const char *socket,
               int argc, char **argv) {
  char path[PATH_MAX];
  if (strcmp(cmd, "repl") == 0 && argc > 0) return app_usage_error("unexpected argument", argv[0]);
  if (strcmp(cmd, "reload") == 0 && argc > 1) return app_usage_error("unexpected argument", argv[1]);
  if (socket) snprintf(path, sizeof path, "%s", socket);
  else if (app_config_key_path(config_path, explicit_config, "repl.socket", path, sizeof path) != 0) return 1;
  if (strcmp(cmd, "repl") == 0) return rt_repl_client_run(path);
  return rt_repl_client_reload(path, argc > 0 ? argv[0] : NULL);
}
