/*
** runtime/file_watch.h - a watcher of one file (rt.fs.watch): a change is a difference in
** existence, inode, size or mtime from the file as it was when the watcher was created or its last
** wait reported a change. Polls stat() on the thread pool only while a wait is in progress. The
** runtime owns the libuv handles; loop thread only.
*/
#ifndef RT_FILE_WATCH_H
#define RT_FILE_WATCH_H

#include "runtime/rt.h"

typedef struct rt_file_watch_s rt_file_watch_t;

/// Completion of a wait: 1 the file changed, 0 the timeout passed, -1 the watcher was closed during
/// the wait (called from rt_file_watch_close, i.e. inside another task: resume later).
typedef void (*rt_file_watch_fn)(void *ud, int result);

/// Watch path, polling every `interval` seconds while waiting; the baseline is the file now. NULL
/// when out of memory. Freed by rt_file_watch_close (after its handles closed), never by the caller.
rt_file_watch_t *rt_file_watch_new(rt_t *rt, const char *path, double interval);
const char *rt_file_watch_path(const rt_file_watch_t *w);
/// 1 while a wait is in progress.
int rt_file_watch_waiting(const rt_file_watch_t *w);
/// Wait for a change (timeout < 0: no limit). Returns 1 at once when the file changed since the
/// baseline (the baseline moves; fn is not called), else 0: fn(ud, result) runs once later.
int rt_file_watch_wait(rt_file_watch_t *w, double timeout, rt_file_watch_fn fn, void *ud);
/// Stop the wait in progress without calling its completion (the waiting task was cancelled).
void rt_file_watch_cancel_wait(rt_file_watch_t *w);
/// Close: a wait in progress completes with -1; the memory goes once libuv is done with it.
void rt_file_watch_close(rt_file_watch_t *w);

#endif
