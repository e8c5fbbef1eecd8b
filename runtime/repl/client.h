/*
** runtime/repl/client.h - `candled repl` and `candled reload`: plain blocking clients of the
** daemon's REPL socket (protocol: proto.h). Built into the executable only (libedit).
*/
#ifndef RT_REPL_CLIENT_H
#define RT_REPL_CLIENT_H

/// The REPL session on `socket_path`. Interactive (libedit: prompts, history, Tab completion) when
/// stdin is a terminal; otherwise stdin is read to the end and fed line by line as if typed.
/// Returns the exit code: 0, or 1 when the daemon cannot be reached or any input failed.
int rt_repl_client_run(const char *socket_path);

/// Ask the daemon to reload `name` (NULL: everything) and print its report.
/// Returns 0, or 1 when anything was rejected or the daemon cannot be reached.
int rt_repl_client_reload(const char *socket_path, const char *name);

#endif
