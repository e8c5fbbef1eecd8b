/*
** tests/unit/test_events.c - runtime/events.c and events_emit.c: staging until the outermost commit,
** rollback of a savepoint or transaction, commit order, filters, the bounded queue's overflow
** policy, and candle events from series rows (closed only; identical rows raise nothing). A real
** store on :memory: and a real loop (the overflow alert comes from a timer).
*/
#include "runtime/events.h"

#include <stdlib.h>
#include <string.h>

#include "runtime/log.h"
#include "runtime/store.h"
#include "runtime/store_query.h"

#include "check.h"

static rt_t rt;

static rt_event_t *event(const char *kind, const char *source, int64_t n) {
  rt_event_field_t f[2] = {{"source", RT_EV_TEXT, 0, 0, source, strlen(source)}, {"n", RT_EV_INT, n, 0, NULL, 0}};
  return rt_event_new(kind, f, 2);
}

static int64_t n_of(rt_event_t *ev) {
  for (int i = 0; i < ev->nfields; i++)
    if (strcmp(ev->f[i].key, "n") == 0) return ev->f[i].i;
  return -1;
}

/* Pop every queued event: their n (or -dropped for an overflow event) into out; returns how many. */
static int drain(rt_events_sub_t *sub, int64_t *out, int max) {
  int k = 0;
  rt_event_t *ev;
  while ((ev = rt_events_pop(sub)) && k < max) {
    out[k++] = strcmp(ev->kind, "overflow") == 0 ? -ev->f[0].i : n_of(ev);
    rt_event_unref(ev);
  }
  if (ev) rt_event_unref(ev);
  return k;
}

static void test_staging_and_order(void) {
  const char *kinds[] = {"k", NULL};
  rt_events_sub_t *sub = rt_events_subscribe(&rt, "t", kinds, NULL, NULL, 16);
  if (!CHECK(sub != NULL)) return;
  CHECK(rt_events_wants(&rt, "k"));
  CHECK(!rt_events_wants(&rt, "other"));
  int64_t got[16];
  rt_events_emit(&rt, event("k", "a", 1));             /* no transaction: at once */
  CHECK_EQ_INT(drain(sub, got, 16), 1);
  CHECK_EQ_INT(got[0], 1);
  CHECK_EQ_INT(rt_store_begin(rt.store), RT_STORE_OK);
  rt_events_emit(&rt, event("k", "a", 2));
  CHECK_EQ_INT(rt_store_begin(rt.store), RT_STORE_OK);  /* a savepoint that rolls back */
  rt_events_emit(&rt, event("k", "a", 3));
  CHECK_EQ_INT(rt_store_rollback(rt.store), RT_STORE_OK);
  rt_events_emit(&rt, event("other", "a", 4));          /* another kind: not for this subscriber */
  rt_events_emit(&rt, event("k", "a", 5));
  CHECK_EQ_INT(drain(sub, got, 16), 0);                 /* nothing before the commit */
  CHECK_EQ_INT(rt_store_commit(rt.store), RT_STORE_OK);
  CHECK_EQ_INT(drain(sub, got, 16), 2);
  CHECK_EQ_INT(got[0], 2);
  CHECK_EQ_INT(got[1], 5);
  CHECK_EQ_INT(rt_store_begin(rt.store), RT_STORE_OK);  /* a whole transaction rolled back */
  rt_events_emit(&rt, event("k", "a", 6));
  CHECK_EQ_INT(rt_store_rollback(rt.store), RT_STORE_OK);
  CHECK_EQ_INT(drain(sub, got, 16), 0);
  CHECK_EQ_INT((int)sub->delivered, 3);
  rt_events_sub_close(sub);
  rt_events_sub_free(sub);
}

static void on_keep(uv_timer_t *t) { (void)t; }

static void test_filters_and_overflow(void) {
  const char *fkeys[] = {"source", NULL};
  const char *vals[] = {"x", "y", NULL};
  const char *const *fvals[] = {vals, NULL};
  rt_events_sub_t *sub = rt_events_subscribe(&rt, "small", NULL, fkeys, fvals, 2);
  if (!CHECK(sub != NULL)) return;
  int64_t got[16];
  for (int i = 1; i <= 6; i++) rt_events_emit(&rt, event("any", i == 3 ? "z" : "x", i));   /* 3: filtered out */
  CHECK_EQ_INT(sub->len, 2);
  CHECK_EQ_INT((int)sub->dropped, 3);                   /* 4, 5, 6 */
  rt_events_emit(&rt, event("any", "y", 7));            /* still full: dropped too */
  CHECK_EQ_INT(drain(sub, got, 16), 3);
  CHECK_EQ_INT(got[0], 1);
  CHECK_EQ_INT(got[1], 2);
  CHECK_EQ_INT(got[2], -4);                             /* then the overflow event: 4 dropped */
  rt_events_emit(&rt, event("any", "y", 8));            /* room again: delivered */
  CHECK_EQ_INT(drain(sub, got, 16), 1);
  CHECK_EQ_INT(got[0], 8);
  uv_timer_t keep;                                      /* the alarm is unref'd: keep the loop alive */
  uv_timer_init(&rt.loop, &keep);
  CHECK_EQ_INT(uv_timer_start(&keep, on_keep, 20, 0), 0);
  uv_run(&rt.loop, UV_RUN_ONCE);                        /* the alarm opens events_overflow */
  uv_close((uv_handle_t *)&keep, NULL);
  uv_run(&rt.loop, UV_RUN_DEFAULT);                     /* the close completes */
  rt_store_stmt_t *st;
  const char sql[] = "SELECT count(*) FROM alerts WHERE kind = 'events_overflow' AND subject = 'small'";
  if (CHECK_EQ_INT(rt_store_query(rt.store, sql, sizeof sql - 1, &st, NULL), RT_STORE_OK)) {
    rt_store_value_t v;
    CHECK_EQ_INT(rt_store_stmt_step(st), RT_STORE_ROW);
    rt_store_stmt_value(st, 0, &v);
    CHECK_EQ_INT(v.i, 1);
    rt_store_stmt_reset(st);
  }
  rt_events_sub_close(sub);
  rt_events_sub_free(sub);
}

static void test_candle_rows(void) {
  const char *kinds[] = {"candle", NULL};
  rt_events_sub_t *sub = rt_events_subscribe(&rt, "c", kinds, NULL, NULL, 16);
  if (!CHECK(sub != NULL)) return;
  const char *cols[] = {"source", "instrument", "timeframe", "ts", "close"};
  int64_t now = (int64_t)rt_now(), closed = now - now % 60 - 120, forming = now - now % 60;
  rt_store_value_t v[5] = {{RT_STORE_TEXT, 0, 0, "s", 1}, {RT_STORE_TEXT, 0, 0, "I", 1},
                           {RT_STORE_TEXT, 0, 0, "1m", 2}, {RT_STORE_INTEGER, closed, 0, NULL, 0},
                           {RT_STORE_FLOAT, 0, 2.5, NULL, 0}};
  rt_events_series_row(&rt, "candles", cols, v, 5, 1);  /* a closed bar stored */
  rt_events_series_row(&rt, "candles", cols, v, 5, 0);  /* the same row again: nothing */
  v[3].i = forming;
  rt_events_series_row(&rt, "candles", cols, v, 5, 1);  /* forming: nothing yet */
  rt_event_t *ev = rt_events_pop(sub);
  if (CHECK(ev != NULL)) {
    CHECK_STR(ev->kind, "candle");
    int seen = 0;
    for (int i = 0; i < ev->nfields; i++) {
      if (strcmp(ev->f[i].key, "instrument") == 0) seen += strcmp(ev->f[i].s, "I") == 0;
      if (strcmp(ev->f[i].key, "bar.ts") == 0) seen += ev->f[i].i == closed;
      if (strcmp(ev->f[i].key, "bar.close") == 0) seen += ev->f[i].d == 2.5;
    }
    CHECK_EQ_INT(seen, 3);
    rt_event_unref(ev);
  }
  CHECK(rt_events_pop(sub) == NULL);
  rt_events_sub_close(sub);
  rt_events_sub_free(sub);
}

/* One batch (db.upsert's path): rows of two series interleaved, a forming bar, a NULL field. The
** series key worked out once per run of rows of one series must follow every change of series. */
static void test_candle_batch(void) {
  const char *kinds[] = {"candle", NULL};
  rt_events_sub_t *sub = rt_events_subscribe(&rt, "b", kinds, NULL, NULL, 16);
  if (!CHECK(sub != NULL)) return;
  const char *cols[] = {"source", "instrument", "timeframe", "ts", "close"};
  int64_t now = (int64_t)rt_now(), closed = now - now % 60 - 120, forming = now - now % 60;
  rt_events_batch_t b;
  rt_events_series_begin(&rt, &b, "candles", cols, 5);
  CHECK_EQ_INT(b.on, 1);
  rt_store_value_t v[5] = {{RT_STORE_TEXT, 0, 0, "s", 1}, {RT_STORE_TEXT, 0, 0, "AB", 2},
                           {RT_STORE_TEXT, 0, 0, "1m", 2}, {RT_STORE_INTEGER, closed, 0, NULL, 0},
                           {RT_STORE_FLOAT, 0, 1.5, NULL, 0}};
  rt_events_series_put(&rt, &b, v, 1);           /* AB closed: an event */
  v[1].s = "A", v[1].n = 1;
  v[3].i = forming;
  rt_events_series_put(&rt, &b, v, 1);           /* A forming: nothing yet */
  v[1].s = "AB", v[1].n = 2;
  v[4].type = RT_STORE_NULL;
  rt_events_series_put(&rt, &b, v, 1);           /* AB forming: nothing */
  v[2].s = "1h", v[2].n = 2;
  rt_events_series_put(&rt, &b, v, 1);           /* AB 1h: this bar is still forming at 1h too */
  CHECK_STR(b.key, "s\x1f" "AB\x1f" "1h");       /* the series key followed the change */
  CHECK(b.step == 3600);
  v[2].s = "1m";
  v[1].s = "A", v[1].n = 1;
  v[3].i = closed;
  rt_events_series_put(&rt, &b, v, 0);           /* A, an unchanged closed bar: nothing */
  CHECK_STR(b.key, "s\x1f" "A\x1f" "1m");
  CHECK(b.step == 60);
  v[3].i = forming;
  rt_events_series_row(&rt, "candles", cols, v, 5, 0);   /* A's forming bar, unchanged: nothing */
  const char *want[] = {"AB", NULL};
  for (int k = 0; want[k]; k++) {
    rt_event_t *ev = rt_events_pop(sub);
    if (!CHECK(ev != NULL)) break;
    int seen = 0, fields = ev->nfields;
    for (int i = 0; i < ev->nfields; i++) {
      if (strcmp(ev->f[i].key, "instrument") == 0) seen += strcmp(ev->f[i].s, want[k]) == 0;
      if (strcmp(ev->f[i].key, "timeframe") == 0) seen += strcmp(ev->f[i].s, "1m") == 0;
      if (strcmp(ev->f[i].key, "bar.close") == 0) seen += ev->f[i].d == 1.5;
    }
    CHECK_EQ_INT(seen, 3);
    CHECK_EQ_INT(fields, 5);
    rt_event_unref(ev);
  }
  CHECK(rt_events_pop(sub) == NULL);
  rt_events_sub_close(sub);
  rt_events_sub_free(sub);
  rt_events_series_begin(&rt, &b, "candles", cols, 5);
  CHECK_EQ_INT(b.on, 0);                       /* nobody subscribes any more */
}

int main(void) {
  char err[256] = "";
  memset(&rt, 0, sizeof rt);
  if (!CHECK_EQ_INT(rt_init(&rt, err, sizeof err), 0)) return 1;
  rt_log_set_level(rt.log, RT_LOG_ERROR);
  rt.store = rt_store_open(":memory:", 100, err, sizeof err);
  if (!CHECK(rt.store != NULL)) return 1;
  test_staging_and_order();
  test_filters_and_overflow();
  test_candle_rows();
  test_candle_batch();
  rt_close(&rt);
  CHECK(rt.events == NULL);
  return CHECK_DONE();
}
