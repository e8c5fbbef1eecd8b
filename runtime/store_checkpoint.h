/*
** runtime/store_checkpoint.h - WAL checkpoints on libuv's thread pool instead of inside a COMMIT on the
** loop thread.
**
** SQLite's automatic checkpoint runs in the commit that takes the WAL past 1000 pages, fsyncs
** included: the loop would stop for as long as the disk takes. Once started, the store's writer
** connection no longer checkpoints itself; when a commit leaves `pages` or more pages in the WAL,
** a PASSIVE checkpoint is queued on the thread pool, on a second connection that only that job
** uses. At most one job is in flight. The WAL file is still reset by the writer once a checkpoint
** has copied all of it, and the last connection to close checkpoints the rest as usual.
*/
#ifndef RT_CHECKPOINT_H
#define RT_CHECKPOINT_H

#include <stdint.h>
#include <uv.h>

#include "runtime/log.h"
#include "runtime/store.h"

typedef struct rt_checkpoint_s rt_checkpoint_t;

/// Take over the checkpoints of `s` (loop thread). `log` receives checkpoint errors. NULL when out
/// of memory: SQLite's automatic checkpoint then stays in place.
rt_checkpoint_t *rt_checkpoint_start(uv_loop_t *loop, rt_store_t *s, rt_log_t *log, int pages);
/// Give the checkpoints back to the writer connection. A job in flight finishes and frees the
/// struct in its after-work callback (the caller runs the loop until it is done); otherwise it
/// is freed now. Call before the store is closed.
void rt_checkpoint_stop(rt_checkpoint_t *c);
/// Checkpoints completed so far, and the WAL frames they copied in all.
void rt_checkpoint_stats(const rt_checkpoint_t *c, uint64_t *runs, uint64_t *frames);

#endif
