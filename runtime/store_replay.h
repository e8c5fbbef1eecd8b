/*
** runtime/store_replay.h - stored bars of several series in time order, for a replay.
**
** One statement per series walks its bars by primary key (series, ts) between the series' own
** start and a common end; the rows are merged by (ts, series position in the list). Nothing is
** sorted and no row is kept: memory does not grow with the range. Bars without an open or a close
** (a source's all-null minute) are skipped. The statements are the
** replay's own (not the store's cache) and are finalized by _close. Loop thread; the replay must
** end before the store closes.
*/
#ifndef RT_STORE_REPLAY_H
#define RT_STORE_REPLAY_H

#include <stdint.h>

#include "runtime/store.h"

typedef struct rt_store_replay_s rt_store_replay_t;

/// One bar; a NULL column reads as NaN (has[] tells).
typedef struct {
  int k;                       /* position of the series in the list given to _open (0-based) */
  int64_t ts;
  double v[5];                 /* open, high, low, close, volume */
  unsigned char has[5];
} rt_replay_row_t;

/// Start a replay of series ids[0..n) from from[k] (each series its own start) to `to` (inclusive).
/// NULL with a message in err.
rt_store_replay_t *rt_store_replay_open(rt_store_t *s, const int64_t *ids, const int64_t *from, int n,
                                         int64_t to, char *err, size_t errlen);
/// The next bar in time order: 1 and *row filled, 0 at the end, or an SQLite error code (< 0 as
/// minus the code) with the message from rt_store_errmsg.
int rt_store_replay_next(rt_store_replay_t *r, rt_replay_row_t *row);
void rt_store_replay_close(rt_store_replay_t *r);

#endif
