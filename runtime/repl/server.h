/*
** runtime/repl/server.h - the daemon's REPL server: a Unix socket (mode 0600) that several clients use at
** once; each input runs as a task in the live VM. The bytes and handles are here; what an input
** means (evaluation, printing, helpers, completion) is the embedded Lua module candled.repl.
** Protocol: runtime/repl/proto.h. All functions: loop thread only.
*/
#ifndef RT_REPL_H
#define RT_REPL_H

#include "runtime/rt.h"

/// Listen on `path` (absolute; its directory exists) and store the server in rt->repl. A path
/// that exists must be a socket owned by this user with nobody listening (a stale one, replaced);
/// anything else is refused. Requires candled.repl (the Lua module) to load.
/// Returns 0, or -1 with a one-line message in err (nothing is left open then).
int rt_repl_start(rt_t *rt, const char *path, char *err, size_t errlen);

/// Stop listening, remove the socket file (if it is still the one we created), close every
/// client (cancelling its running input). rt->repl becomes NULL at once; the memory goes with the
/// last close callback. Safe to call when rt->repl is NULL.
void rt_repl_close(rt_t *rt);

/// Send a frame of `type` with `len` bytes to client `id` (as numbered for candled.repl).
/// Returns 0, or -1 when that client is gone or closing (the bytes are dropped).
int rt_repl_send(rt_t *rt, uint64_t id, int type, const char *data, size_t len);

#endif
