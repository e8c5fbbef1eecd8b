/*
** app/app.h - what the files of the composition root share (app/ only; nothing else includes it).
**
**   main.c       the CLI: the rt.* module list and the dispatch to a command
**   help.c       `candled help`, the usage lines and usage errors
**   setup.c      what every command that opens the database needs: loop, Lua, config, HTTP,
**                budgets, the daemon lock, the start-up check, the store
**   cmd_task.c   `candled eval` and the subcommands scripts provide (backfill, export, ...)
**   cmd_run.c    `candled run`: the daemon (REPL socket, status server, scripts)
**   cmd_client.c `candled repl` / `reload`: clients of a running daemon
**   cmd_file.c   `candled check` / `restore`: the database file, never opened as a store
*/
#ifndef APP_APP_H
#define APP_APP_H

#include <stddef.h>
#include <stdio.h>

#include "runtime/rt.h"
#include "runtime/vm.h"

/* help.c */
void app_usage_overview(FILE *out);
/// `candled help COMMAND`: print its help and return 0, or a usage error (2).
int app_help_command(const char *name);
/// One line on stderr ("candled: msg: arg (see 'candled help')"); returns 2.
int app_usage_error(const char *msg, const char *arg);

/* setup.c */
/// Create the directories above `file`. 0, or -1 with errno.
int app_mkdirs_for(const char *file);
/// The value of path key `key` (e.g. "repl.socket") of the config, resolved against the config
/// file's directory; only loads and validates the config. 0, or 1 after printing why.
int app_config_key_path(const char *config_path, int explicit_config, const char *key, char *out, size_t n);
/// Everything the commands that open the database need, with the rt.* modules `modules`
/// (`recover`: `candled run`, which takes the daemon lock and checks the file first). 0, or 1
/// after printing one line to stderr.
int app_setup(rt_t *rt, const rt_vm_module_t *modules, const char *config_path, int explicit_config, int recover);

/* commands: each returns the process's exit code */
int cmd_eval(rt_t *rt, const char *file, int argc, char **argv);
int cmd_script(rt_t *rt, const char *command, int argc, char **argv);
int cmd_run(rt_t *rt);
int cmd_client(const char *cmd, const char *config_path, int explicit_config, const char *socket, int argc,
               char **argv);
int cmd_check(const char *config_path, int explicit_config, int argc, char **argv);
int cmd_restore(const char *config_path, int explicit_config, int argc, char **argv);

#endif
