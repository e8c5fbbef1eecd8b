/*
** runtime/watch.h - directory change events and SIGHUP, delivered to one waiter at a time (the
** daemon's reload task uses it through rt.watch). Events that arrive while nobody waits are queued;
** the next wait completes with them at once. A watcher never keeps the loop alive.
**
** Lifetime: rt_watch_new allocates; rt_watch_close closes every handle and the last close callback
** frees the watcher, so the caller must not use it after rt_watch_close. Close callbacks never touch
** Lua: they may run after the Lua state is gone. Loop thread only.
*/
#ifndef RT_WATCH_H
#define RT_WATCH_H

#include "runtime/rt.h"

typedef struct rt_watch_s rt_watch_t;

/// Completion of a wait: the queued "dir/name" paths (n of them; owned by the watcher and valid
/// during the call only), hup = SIGHUP was seen; n == 0 && !hup: the timeout passed or the watcher
/// closed. `closing`: called from rt_watch_close, i.e. from inside another task (resume later).
typedef void (*rt_watch_fn)(void *ud, const char *const *paths, int n, int hup, int closing);

/// A new watcher, or NULL when out of memory.
rt_watch_t *rt_watch_new(rt_t *rt);
/// Watch dir (not recursively); watching it again restarts its watch. 0, or a negative libuv error
/// (rt_watch_strerror / rt_watch_errname name it).
int rt_watch_add(rt_watch_t *w, const char *dir);
/// Stop watching dir (no-op when not watched).
void rt_watch_remove(rt_watch_t *w, const char *dir);
/// Count SIGHUP as an event from now on. 0, or a negative libuv error.
int rt_watch_hup(rt_watch_t *w);
/// Wait: fn(ud, ...) runs once, from the loop, when something was queued or `timeout` seconds passed
/// (timeout < 0: no limit). -1 when another wait is in progress.
int rt_watch_wait(rt_watch_t *w, double timeout, rt_watch_fn fn, void *ud);
/// 1 while a wait is in progress.
int rt_watch_waiting(const rt_watch_t *w);
/// Forget the wait in progress without calling its completion (the waiting task was cancelled).
void rt_watch_cancel_wait(rt_watch_t *w);
/// Close: a wait in progress completes with nothing (closing = 1), every handle closes.
void rt_watch_close(rt_watch_t *w);
/// The message and the upper-case name of an error from rt_watch_add / rt_watch_hup.
const char *rt_watch_strerror(int err);
const char *rt_watch_errname(int err);

#endif
