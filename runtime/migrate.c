/*
** runtime/migrate.c - time slices of the series-layout migration on the loop (see migrate.h).
**
** Each tick runs batches for up to SLICE_MS (each batch sized to take at most half of that, up to
** database.migrate_batch rows) and re-arms the timer 1 ms ahead, so the loop polls
** I/O and runs ready tasks between slices (libuv runs a timer re-armed at 0 ms from its own
** callback again in the same pass, which would never yield). SQLITE_BUSY (another process writing) waits a second and tries
** again; any other failure is logged and the migration stops until the next start (the old rows
** stay readable through the views meanwhile).
*/
#include "runtime/migrate.h"

#include <stdlib.h>

#include "runtime/log.h"
#include "runtime/store.h"
#include "runtime/store_series.h"

#define SLICE_MS 10
#define LOG_EVERY_NS 10000000000ull

struct rt_migrate_s {
  rt_t *rt;
  uv_timer_t timer;            /* timer.data = this; freed in its close callback */
  int max_batch;               /* database.migrate_batch */
  int batch;                   /* rows per batch now: sized so that one batch takes a few ms */
  int64_t moved;
  uint64_t started, logged;    /* uv_hrtime() at the start and at the last progress line */
};

static void on_uv_close(uv_handle_t *h) { free(h->data); }

static void stop(rt_migrate_t *m) {
  if (m->rt->migrate == m) m->rt->migrate = NULL;
  uv_close((uv_handle_t *)&m->timer, on_uv_close);
}

static void on_uv_tick(uv_timer_t *t) {
  rt_migrate_t *m = t->data;
  rt_store_t *s = m->rt->store;
  char err[512];
  uint64_t t0 = uv_hrtime(), now = t0;
  int r = 1;
  while (r == 1 && now - t0 < SLICE_MS * 1000000ull) {
    int64_t moved = 0;
    uint64_t b0 = now;
    r = rt_store_series_migrate(s, m->batch, &moved, err, sizeof err);
    m->moved += moved;
    now = uv_hrtime();
    /* a batch longer than half a slice would make the slice late: halve it; grow it back slowly */
    if (now - b0 > SLICE_MS * 500000ull && m->batch > 16) m->batch /= 2;
    else if (now - b0 < SLICE_MS * 250000ull && moved == m->batch) m->batch += m->batch / 4 + 1;
    if (m->batch > m->max_batch) m->batch = m->max_batch;
  }
  double secs = (double)(now - m->started) / 1e9;
  if (r == 0) {
    rt_log_printf(m->rt->log, RT_LOG_INFO, NULL, "series layout: migration done, %lld rows moved and verified "
                  "in %.1f s", (long long)m->moved, secs);
    stop(m);
    return;
  }
  if (r < 0 && (-r & 0xff) != SQLITE_BUSY && (-r & 0xff) != SQLITE_LOCKED) {
    rt_log_printf(m->rt->log, RT_LOG_ERROR, NULL, "series layout: %s; the migration stops here (%lld rows "
                  "moved) and continues at the next start", err, (long long)m->moved);
    stop(m);
    return;
  }
  if (now - m->logged >= LOG_EVERY_NS) {
    m->logged = now;
    rt_log_printf(m->rt->log, RT_LOG_INFO, NULL, "series layout: %lld rows moved in %.0f s",
                  (long long)m->moved, secs);
  }
  uv_timer_start(&m->timer, on_uv_tick, r < 0 ? 1000 : 1, 0);   /* 0 would run again in this pass */
}

rt_migrate_t *rt_migrate_start(rt_t *rt, int batch) {
  if (!rt->store || !rt_store_series_migrating(rt->store)) return NULL;
  rt_migrate_t *m = calloc(1, sizeof *m);
  if (!m) return NULL;
  m->rt = rt;
  m->batch = m->max_batch = batch > 0 ? batch : 1000;
  m->started = m->logged = uv_hrtime();
  uv_timer_init(&rt->loop, &m->timer);
  m->timer.data = m;
  uv_unref((uv_handle_t *)&m->timer);
  uv_timer_start(&m->timer, on_uv_tick, 0, 0);
  rt_log_printf(rt->log, RT_LOG_INFO, NULL, "series layout: moving the rows of candles_v4/trades_v4 in "
                "batches of up to %d (the views show every row meanwhile)", m->batch);
  rt->migrate = m;
  return m;
}

void rt_migrate_stop(rt_migrate_t *m) {
  if (m) stop(m);
}
