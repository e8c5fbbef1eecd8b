/*
** runtime/events_emit.c - the runtime's own events: `candle` and `trade` from the series writer's
** rows, `alert` from alert.c (see events.h). Built only when a subscriber wants the kind.
**
** A bar is closed once ts + its timeframe <= now (timeframes "<n>s|m|h|d|w"; an unknown one counts
** as closed). A bar written while forming raises nothing; the series' forming bar is remembered
** (one per series, in a small hash owned by the bus) so that the first write of it after it closed
** raises `candle` even when the values did not change.
*/
#include "runtime/events.h"

#include <stdlib.h>
#include <string.h>

#include "runtime/store_series.h"

/* ---- the forming bar of each series --------------------------------------------------------- */

typedef struct {
  char *key;                   /* "source\x1finstrument\x1ftimeframe", owned; NULL = empty slot */
  int64_t ts;                  /* the forming bar's open time; 0 when none is pending */
} forming_t;

typedef struct {
  forming_t *slots;
  size_t cap, used;
} forming_set_t;

/* The set hangs off rt through a pointer the bus does not look inside. */
static forming_set_t *sets_of(rt_t *rt, int create) {
  if (!rt->events_forming && create) rt->events_forming = calloc(1, sizeof(forming_set_t));
  return rt->events_forming;
}

void rt_events_series_free(rt_t *rt) {
  forming_set_t *fs = sets_of(rt, 0);
  if (!fs) return;
  for (size_t i = 0; i < fs->cap; i++) free(fs->slots[i].key);
  free(fs->slots);
  free(fs);
  rt->events_forming = NULL;
}

static uint64_t hash(const char *s, size_t n) {
  uint64_t h = 1469598103934665603ull;
  for (size_t i = 0; i < n; i++) h = (h ^ (unsigned char)s[i]) * 1099511628211ull;
  return h;
}

/* The slot of key (created when `create`), or NULL. */
static forming_t *slot_of(forming_set_t *fs, const char *key, size_t n, int create) {
  if (create && (fs->used + 1) * 2 > fs->cap) {
    size_t cap = fs->cap ? fs->cap * 2 : 64;
    forming_t *grown = calloc(cap, sizeof *grown);
    if (!grown) return NULL;
    for (size_t i = 0; i < fs->cap; i++) {
      if (!fs->slots[i].key) continue;
      size_t j = hash(fs->slots[i].key, strlen(fs->slots[i].key)) & (cap - 1);
      while (grown[j].key) j = (j + 1) & (cap - 1);
      grown[j] = fs->slots[i];
    }
    free(fs->slots);
    fs->slots = grown;
    fs->cap = cap;
  }
  if (fs->cap == 0) return NULL;
  size_t j = hash(key, n) & (fs->cap - 1);
  while (fs->slots[j].key) {
    if (strlen(fs->slots[j].key) == n && memcmp(fs->slots[j].key, key, n) == 0) return &fs->slots[j];
    j = (j + 1) & (fs->cap - 1);
  }
  if (!create) return NULL;
  char *k = malloc(n + 1);
  if (!k) return NULL;
  memcpy(k, key, n);
  k[n] = 0;
  fs->slots[j].key = k;
  fs->slots[j].ts = 0;
  fs->used++;
  return &fs->slots[j];
}

/* Seconds of a timeframe such as "1m", "4h", "1d"; 0 when it is not one. */
static int64_t tf_seconds(const char *s, size_t n) {
  if (n < 2) return 0;
  int64_t v = 0;
  size_t i = 0;
  while (i < n - 1 && s[i] >= '0' && s[i] <= '9') v = v * 10 + (s[i++] - '0');
  if (i != n - 1 || v <= 0) return 0;
  switch (s[n - 1]) {
  case 's': return v;
  case 'm': return v * 60;
  case 'h': return v * 3600;
  case 'd': return v * 86400;
  case 'w': return v * 604800;
  default: return 0;
  }
}

/* ---- rows of the series writer -------------------------------------------------------------- */

void rt_events_series_begin(rt_t *rt, rt_events_batch_t *b, const char *table, const char *const *cols, int ncol) {
  b->candle = strcmp(table, "candles") == 0;
  b->kind = b->candle ? "candle" : "trade";
  b->on = ncol <= 64 && rt_events_wants(rt, b->kind);
  if (!b->on) return;
  b->ncol = ncol;
  b->isrc = b->iinst = b->itf = b->its = -1;
  b->kn = -1;
  for (int i = 0; i < ncol; i++) {
    const char *c = cols[i];
    int top = 1;
    if (strcmp(c, "source") == 0) b->isrc = i;
    else if (strcmp(c, "instrument") == 0) b->iinst = i;
    else if (strcmp(c, "timeframe") == 0) b->itf = i;
    else top = 0;
    if (!top && strcmp(c, "ts") == 0) b->its = i;
    if (b->candle && !top) snprintf(b->keys[i], sizeof b->keys[i], "bar.%s", c);
    else snprintf(b->keys[i], sizeof b->keys[i], "%s", c);
  }
}

/* Is the text value v the same as part `at` (length n) of the cached series key? */
static int same_part(const rt_store_value_t *v, const char *at, int n) {
  return (int)v->n == n && memcmp(v->s, at, (size_t)n) == 0;
}

void rt_events_series_put(rt_t *rt, rt_events_batch_t *b, const void *vals_, int result) {
  const rt_store_value_t *vals = vals_;
  if (!b->on || (!b->candle && result == 0)) return;
  rt_event_field_t f[64];
  int n = 0;
  for (int i = 0; i < b->ncol; i++) {
    const rt_store_value_t *v = &vals[i];
    f[n].key = b->keys[i];
    switch (v->type) {
    case RT_STORE_INTEGER: f[n].type = RT_EV_INT, f[n].i = v->i; break;
    case RT_STORE_FLOAT: f[n].type = RT_EV_REAL, f[n].d = v->d; break;
    case RT_STORE_TEXT: f[n].type = RT_EV_TEXT, f[n].s = v->s, f[n].n = v->n; break;
    default: continue;                         /* NULL: the field is absent */
    }
    n++;
  }
  if (b->candle) {
    if (b->isrc < 0 || b->iinst < 0 || b->itf < 0 || b->its < 0) return;
    const rt_store_value_t *src = &vals[b->isrc], *inst = &vals[b->iinst], *tf = &vals[b->itf], *ts = &vals[b->its];
    if (src->type != RT_STORE_TEXT || inst->type != RT_STORE_TEXT || tf->type != RT_STORE_TEXT ||
        ts->type != RT_STORE_INTEGER)
      return;
    /* the series key and the timeframe's length, built again only when the series changes */
    if (b->kn < 0 || !same_part(src, b->key, b->part[0]) || !same_part(inst, b->key + b->part[0] + 1, b->part[1]) ||
        !same_part(tf, b->key + b->part[0] + b->part[1] + 2, b->part[2])) {
      b->kn = snprintf(b->key, sizeof b->key, "%.*s\x1f%.*s\x1f%.*s", (int)src->n, src->s, (int)inst->n, inst->s,
                       (int)tf->n, tf->s);
      if (b->kn < 0 || b->kn >= (int)sizeof b->key) {
        b->kn = -1;
        return;
      }
      b->part[0] = (int)src->n, b->part[1] = (int)inst->n, b->part[2] = (int)tf->n;
      b->step = tf_seconds(tf->s, tf->n);
    }
    int64_t step = b->step;
    int closed = step == 0 || ts->i + step <= (int64_t)rt_now();
    forming_set_t *fs = sets_of(rt, 1);
    if (!fs) return;
    forming_t *sl = slot_of(fs, b->key, (size_t)b->kn, !closed);
    if (!closed) {                             /* remember it; say nothing yet */
      if (sl && ts->i >= sl->ts) sl->ts = ts->i;
      return;
    }
    int was_forming = sl && sl->ts == ts->i;
    if (was_forming) sl->ts = 0;
    if (result == 0 && !was_forming) return;   /* identical rows raise nothing */
  }
  rt_event_t *ev = rt_event_new(b->kind, f, n);
  if (ev) rt_events_emit(rt, ev);
}

void rt_events_series_row(rt_t *rt, const char *table, const char *const *cols, const void *vals, int ncol,
                          int result) {
  rt_events_batch_t b;
  rt_events_series_begin(rt, &b, table, cols, ncol);
  rt_events_series_put(rt, &b, vals, result);
}

void rt_events_alert(rt_t *rt, const char *state, const char *kind, const char *subject, const char *level,
                     const char *msg) {
  if (!rt_events_wants(rt, "alert")) return;
  rt_event_field_t f[5] = {{"event", RT_EV_TEXT, 0, 0, state, strlen(state)},
                           {"alert", RT_EV_TEXT, 0, 0, kind, strlen(kind)},
                           {"subject", RT_EV_TEXT, 0, 0, subject, strlen(subject)},
                           {"level", RT_EV_TEXT, 0, 0, level ? level : "", level ? strlen(level) : 0},
                           {"message", RT_EV_TEXT, 0, 0, msg ? msg : "", msg ? strlen(msg) : 0}};
  rt_event_t *ev = rt_event_new("alert", f, 5);
  if (ev) rt_events_emit(rt, ev);
}
