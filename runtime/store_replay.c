/*
** runtime/store_replay.c - stored bars in time order (see store_replay.h).
*/
#include "runtime/store_replay.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>

typedef struct {
  sqlite3_stmt *st;            /* owned; NULL once the series is exhausted */
  int has_row;                 /* st is positioned on a row not yet handed out */
  int64_t ts;
} cursor_t;

struct rt_store_replay_s {
  rt_store_t *store;
  int n;
  cursor_t c[];
};

/* A bar without an open or a close (a source's all-null minute) is no price: skipped, as live. */
static const char SQL[] = "SELECT ts, open, high, low, close, volume FROM bars WHERE series = ?1 AND ts >= ?2 "
                          "AND ts <= ?3 AND open IS NOT NULL AND close IS NOT NULL ORDER BY ts";

/* Step cursor i: has_row and ts, or finalize at the end. Returns SQLITE_OK or an error code. */
static int advance(cursor_t *c) {
  int rc = sqlite3_step(c->st);
  if (rc == SQLITE_ROW) {
    c->has_row = 1;
    c->ts = sqlite3_column_int64(c->st, 0);
    return SQLITE_OK;
  }
  c->has_row = 0;
  sqlite3_finalize(c->st);
  c->st = NULL;
  return rc == SQLITE_DONE ? SQLITE_OK : rc;
}

rt_store_replay_t *rt_store_replay_open(rt_store_t *s, const int64_t *ids, const int64_t *from, int n,
                                         int64_t to, char *err, size_t errlen) {
  rt_store_replay_t *r = calloc(1, sizeof *r + (size_t)n * sizeof(cursor_t));
  if (!r) {
    snprintf(err, errlen, "out of memory");
    return NULL;
  }
  r->store = s;
  r->n = n;
  for (int i = 0; i < n; i++) {
    int rc = sqlite3_prepare_v3(rt_store_db(s), SQL, -1, 0, &r->c[i].st, NULL);
    if (rc == SQLITE_OK) {
      sqlite3_bind_int64(r->c[i].st, 1, ids[i]);
      sqlite3_bind_int64(r->c[i].st, 2, from[i]);
      sqlite3_bind_int64(r->c[i].st, 3, to);
      rc = advance(&r->c[i]);
    }
    if (rc != SQLITE_OK) {
      snprintf(err, errlen, "%s", rt_store_errmsg(s));
      rt_store_replay_close(r);
      return NULL;
    }
  }
  return r;
}

int rt_store_replay_next(rt_store_replay_t *r, rt_replay_row_t *row) {
  int best = -1;
  for (int i = 0; i < r->n; i++)
    if (r->c[i].has_row && (best < 0 || r->c[i].ts < r->c[best].ts)) best = i;
  if (best < 0) return 0;
  cursor_t *c = &r->c[best];
  row->k = best;
  row->ts = c->ts;
  for (int j = 0; j < 5; j++) {
    int null = sqlite3_column_type(c->st, j + 1) == SQLITE_NULL;
    row->has[j] = !null;
    row->v[j] = null ? NAN : sqlite3_column_double(c->st, j + 1);
  }
  int rc = advance(c);
  return rc == SQLITE_OK ? 1 : -rc;
}

void rt_store_replay_close(rt_store_replay_t *r) {
  if (!r) return;
  for (int i = 0; i < r->n; i++) sqlite3_finalize(r->c[i].st);
  free(r);
}
