/*
** runtime/budget.c - request budgets (see budget.h): windows, the admission queue, pause, ban,
** circuit breaker, persistence of day/month counts and bans, metrics and alerts.
*/
#include "runtime/budget.h"

#include <ctype.h>
#include <lauxlib.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "runtime/alert.h"
#include "runtime/config.h"
#include "runtime/log.h"
#include "runtime/sched.h"
#include "runtime/store.h"

/* The least margin a sliding window holds an admission beyond its length. A strict server-side
** limiter measures the window from its own receive times, which trail our admissions by loopback,
** network and scheduling delay that varies from request to request. One slot (10 ms for a 1 s
** window) is less than that jitter on a loaded machine, so a burst admitted as the previous one
** expired could land inside the server's window and draw a 429. Slots longer than this (windows
** of 10 s and more) keep their one-slot margin; windows under 100 ms get a margin of one window. */
#define HOLD_MARGIN_MIN 0.1
#define EPS 1e-9

enum { ALERT_THROTTLED = 1, ALERT_BANNED = 2, ALERT_BREAKER = 4 };

struct rt_flow_s {
  rt_flow_t *ring_next, *ring_prev;  /* the active flows of one priority, served round robin */
  rt_admit_t *head, *tail;           /* FIFO of waiting admissions */
  char name[64];
};

typedef struct {
  uint64_t requests, waits, retries, throttled, bans, failures, rejected;
  double weight, wait_seconds;
} counters_t;

struct rt_budget_s {
  rt_budgets_t *set;
  rt_budget_t *next;
  char name[64];
  rt_window_t *win;
  int nwin;
  double reserve;
  char used_header[64];
  int header_win;                    /* window corrected by used_header, or -1 */
  double backoff_base, backoff_cap;
  int retries, breaker_failures, ban_after, queue_max;
  double breaker_cooldown, ban_default;
  /* state */
  rt_flow_t *ring[RT_PRIO_N];        /* next flow to serve, per priority */
  int queued, queue_peak, pumping;
  uv_timer_t timer;                  /* wakes the queue when the head can go */
  double paused_until, banned_until, open_until, wait_max;
  char ban_reason[128];
  int consecutive_429, failures, probe_out, state_dirty;
  rt_breaker_state_t breaker;
  unsigned alerts;                   /* ALERT_* bits of the alerts this budget has open */
  counters_t total, delta;           /* since start / since the last metrics flush */
};

struct rt_budgets_s {
  rt_t *rt;
  rt_budget_t *head;
  uv_timer_t flush;                  /* persists counts (1 s) and metrics (10 s) */
  uint64_t rng;
  int handles;                       /* open uv handles: the set is freed when the last closes */
  double metrics_flushed_at;
};

static void pump(rt_budget_t *b);
static void on_timer(uv_timer_t *t);
static void on_budget_closed(uv_handle_t *h);

/* ---- priorities ----------------------------------------------------------------------------- */

static const char *const prio_names[RT_PRIO_N] = {"realtime", "backfill", "discovery"};

int rt_prio_parse(const char *s) {
  for (int i = 0; i < RT_PRIO_N; i++)
    if (strcmp(s, prio_names[i]) == 0) return i;
  return -1;
}

const char *rt_prio_name(rt_prio_t p) { return p < RT_PRIO_N ? prio_names[p] : "?"; }

/* ---- windows -------------------------------------------------------------------------------- */

void rt_window_init(rt_window_t *w, double per, int month, double limit, double cap) {
  memset(w, 0, sizeof *w);
  w->per = month ? 0 : per;
  w->month = month;
  w->fixed = month || per > 3600;
  w->limit = limit;
  w->cap = cap;
  w->slot = w->fixed ? 0 : per / RT_WINDOW_SLOTS;
  if (!w->fixed) {                             /* counted until per + margin after its slot ends */
    double margin = ceil(HOLD_MARGIN_MIN / w->slot - EPS);   /* in slots */
    w->held = RT_WINDOW_SLOTS + 1 + (margin < 1 ? 1 : margin > RT_WINDOW_SLOTS ? RT_WINDOW_SLOTS : (int)margin);
  }
  long n = (long)per;
  if (month) snprintf(w->key, sizeof w->key, "month");
  else if (per == n && n % 86400 == 0) snprintf(w->key, sizeof w->key, "%ldd", n / 86400);
  else if (per == n && n % 3600 == 0) snprintf(w->key, sizeof w->key, "%ldh", n / 3600);
  else if (per == n && n % 60 == 0) snprintf(w->key, sizeof w->key, "%ldm", n / 60);
  else snprintf(w->key, sizeof w->key, "%gs", per);
}

double rt_window_fixed_start(const rt_window_t *w, double t) {
  if (!w->month) return floor(t / w->per) * w->per;
  time_t s = (time_t)t;
  struct tm tm;
  gmtime_r(&s, &tm);
  tm.tm_mday = 1;
  tm.tm_hour = tm.tm_min = tm.tm_sec = 0;
  return (double)timegm(&tm);
}

double rt_window_fixed_end(const rt_window_t *w, double start) {
  if (!w->month) return start + w->per;
  time_t s = (time_t)start;
  struct tm tm;
  gmtime_r(&s, &tm);
  tm.tm_mon += 1;                              /* timegm normalises December + 1 */
  tm.tm_mday = 1;
  tm.tm_hour = tm.tm_min = tm.tm_sec = 0;
  return (double)timegm(&tm);
}

void rt_window_advance(rt_window_t *w, double now) {
  if (w->fixed) {
    if (w->start == 0 || now >= rt_window_fixed_end(w, w->start)) {
      double s = rt_window_fixed_start(w, now);
      if (s != w->start) {
        w->start = s;
        w->used = 0;
      }
    }
    return;
  }
  int64_t k = (int64_t)floor(now / w->slot);
  if (k <= w->cur) return;
  if (k - w->cur >= w->held) {
    memset(w->ring, 0, sizeof w->ring);
    w->used = 0;
    w->cur = k;
    return;
  }
  while (w->cur < k) {
    double *c = &w->ring[(uint64_t)++w->cur % (uint64_t)w->held];
    w->used -= *c;
    *c = 0;
  }
  if (w->used < EPS) w->used = 0;              /* no drift below zero from float sums */
}

double rt_window_fits_at(const rt_window_t *w, double weight, double now) {
  double need = w->used + weight - w->cap;
  if (need <= EPS) return now;
  if (weight > w->cap + EPS) return INFINITY;
  if (w->fixed) return rt_window_fixed_end(w, w->start);
  double freed = 0;
  for (int64_t j = w->cur - w->held + 1; j <= w->cur; j++) {
    freed += w->ring[(uint64_t)j % (uint64_t)w->held];
    if (freed >= need - EPS) return (double)(j + w->held) * w->slot;
  }
  return INFINITY;
}

void rt_window_charge(rt_window_t *w, double weight) {
  if (!w->fixed) w->ring[(uint64_t)w->cur % (uint64_t)w->held] += weight;
  w->used += weight;
}

/* ---- helpers -------------------------------------------------------------------------------- */

static double rng_uniform(rt_budgets_t *set) {       /* xorshift64*, in [0, 1) */
  uint64_t x = set->rng;
  x ^= x >> 12;
  x ^= x << 25;
  x ^= x >> 27;
  set->rng = x;
  return (double)((x * 0x2545F4914F6CDD1DULL) >> 11) / 9007199254740992.0;
}

double rt_budget_backoff(rt_budget_t *b, int n) {
  double ceiling = b->backoff_base * pow(2, n > 1 ? n - 1 : 0);
  if (ceiling > b->backoff_cap) ceiling = b->backoff_cap;
  return rng_uniform(b->set) * ceiling;
}

static void iso(double t, char *buf, size_t n) {
  time_t s = (time_t)t;
  struct tm tm;
  gmtime_r(&s, &tm);
  strftime(buf, n, "%Y-%m-%dT%H:%M:%SZ", &tm);
}

#define COUNT(b, field, v) ((b)->total.field += (v), (b)->delta.field += (v))

rt_budget_t *rt_budget_find(rt_budgets_t *set, const char *name) {
  for (rt_budget_t *b = set ? set->head : NULL; b; b = b->next)
    if (strcmp(b->name, name) == 0) return b;
  return NULL;
}

const char *rt_budget_name(const rt_budget_t *b) { return b->name; }
int rt_budget_retries(const rt_budget_t *b) { return b->retries; }
const char *rt_budget_used_header(const rt_budget_t *b) { return b->used_header[0] ? b->used_header : NULL; }
int rt_budget_is_banned(const rt_budget_t *b, double now) { return b->banned_until > now; }
rt_breaker_state_t rt_budget_breaker(const rt_budget_t *b) { return b->breaker; }
void rt_budget_count_retry(rt_budget_t *b) { COUNT(b, retries, 1); }

void rt_budget_release_probe(rt_budget_t *b) {
  b->probe_out = 0;
  if (!b->pumping) uv_timer_start(&b->timer, on_timer, 0, 0);
}

/* ---- persistence ---------------------------------------------------------------------------- */

static void save_state(rt_budget_t *b, const char *key, double start, double value, const char *note) {
  rt_t *rt = b->set->rt;
  sqlite3_stmt *st;
  static const char sql[] =
    "INSERT INTO budget_state (budget, key, start, value, note) VALUES (?, ?, ?, ?, ?)"
    " ON CONFLICT (budget, key) DO UPDATE SET start = excluded.start, value = excluded.value,"
    " note = excluded.note";
  if (!rt->store || rt_store_prepare(rt->store, sql, sizeof sql - 1, &st, NULL) != SQLITE_OK) return;
  sqlite3_bind_text(st, 1, b->name, -1, SQLITE_STATIC);
  sqlite3_bind_text(st, 2, key, -1, SQLITE_STATIC);
  sqlite3_bind_double(st, 3, start);
  sqlite3_bind_double(st, 4, value);
  if (note) sqlite3_bind_text(st, 5, note, -1, SQLITE_STATIC);
  if (sqlite3_step(st) != SQLITE_DONE)
    rt_log_printf(rt->log, RT_LOG_ERROR, NULL, "budget %s: cannot save state: %s", b->name,
                  rt_store_errmsg(rt->store));
  sqlite3_reset(st);
}

static void load_state(rt_budget_t *b) {
  rt_t *rt = b->set->rt;
  sqlite3_stmt *st;
  static const char sql[] = "SELECT key, start, value, note FROM budget_state WHERE budget = ?";
  if (!rt->store || rt_store_prepare(rt->store, sql, sizeof sql - 1, &st, NULL) != SQLITE_OK) return;
  sqlite3_bind_text(st, 1, b->name, -1, SQLITE_STATIC);
  double now = rt_now();
  while (sqlite3_step(st) == SQLITE_ROW) {
    const char *key = (const char *)sqlite3_column_text(st, 0);
    double start = sqlite3_column_double(st, 1), value = sqlite3_column_double(st, 2);
    if (strcmp(key, "ban") == 0) {
      if (start > now) {
        const char *note = (const char *)sqlite3_column_text(st, 3);
        b->banned_until = start;
        snprintf(b->ban_reason, sizeof b->ban_reason, "%s", note ? note : "ban");
        b->alerts |= ALERT_BANNED;
      }
      continue;
    }
    for (int i = 0; i < b->nwin; i++) {
      rt_window_t *w = &b->win[i];
      if (!w->fixed || strcmp(w->key, key) != 0) continue;
      rt_window_advance(w, now);
      if (start == w->start) w->used = value;
    }
  }
  sqlite3_reset(st);
}

static void flush_metrics(rt_budget_t *b, double now) {
  rt_t *rt = b->set->rt;
  counters_t *d = &b->delta;
  if (!d->requests && !d->waits && !d->retries && !d->throttled && !d->bans && !d->failures) return;
  sqlite3_stmt *st;
  static const char sql[] =
    "INSERT INTO budget_metrics (budget, minute, requests, weight, waits, wait_seconds, retries,"
    " throttled, banned, failures) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10)"
    " ON CONFLICT (budget, minute) DO UPDATE SET requests = requests + ?3, weight = weight + ?4,"
    " waits = waits + ?5, wait_seconds = wait_seconds + ?6, retries = retries + ?7,"
    " throttled = throttled + ?8, banned = banned + ?9, failures = failures + ?10";
  if (!rt->store || rt_store_prepare(rt->store, sql, sizeof sql - 1, &st, NULL) != SQLITE_OK) return;
  sqlite3_bind_text(st, 1, b->name, -1, SQLITE_STATIC);
  sqlite3_bind_int64(st, 2, (int64_t)(floor(now / 60) * 60));
  sqlite3_bind_int64(st, 3, (int64_t)d->requests);
  sqlite3_bind_double(st, 4, d->weight);
  sqlite3_bind_int64(st, 5, (int64_t)d->waits);
  sqlite3_bind_double(st, 6, d->wait_seconds);
  sqlite3_bind_int64(st, 7, (int64_t)d->retries);
  sqlite3_bind_int64(st, 8, (int64_t)d->throttled);
  sqlite3_bind_int64(st, 9, (int64_t)d->bans);
  sqlite3_bind_int64(st, 10, (int64_t)d->failures);
  if (sqlite3_step(st) == SQLITE_DONE) memset(d, 0, sizeof *d);
  sqlite3_reset(st);
}

/* Write dirty day/month counts (and, every 10 s or when closing, metrics) in one transaction. */
static void flush_all(rt_budgets_t *set, int closing) {
  rt_t *rt = set->rt;
  if (!rt->store || rt_store_tx_depth(rt->store) > 0) return;   /* a Lua tx is open: next tick */
  double now = rt_now();
  int metrics = closing || now - set->metrics_flushed_at >= 10;
  int dirty = 0;
  for (rt_budget_t *b = set->head; b; b = b->next) dirty |= b->state_dirty;
  if (!dirty && !metrics) return;
  if (rt_store_begin(rt->store) != SQLITE_OK) return;
  for (rt_budget_t *b = set->head; b; b = b->next) {
    if (b->state_dirty) {
      for (int i = 0; i < b->nwin; i++)
        if (b->win[i].fixed) save_state(b, b->win[i].key, b->win[i].start, b->win[i].used, NULL);
      b->state_dirty = 0;
    }
    if (metrics) flush_metrics(b, now);
  }
  if (metrics) set->metrics_flushed_at = now;
  if (rt_store_commit(rt->store) != SQLITE_OK) rt_store_rollback(rt->store);
}

static void on_flush(uv_timer_t *t) { flush_all(t->data, 0); }

/* ---- the queue ------------------------------------------------------------------------------ */

static rt_flow_t *flow_get(rt_budget_t *b, rt_prio_t p, const char *name, int front) {
  rt_flow_t *f = b->ring[p];
  if (f) {
    rt_flow_t *g = f;
    do {
      if (strcmp(g->name, name) == 0) return g;
      g = g->ring_next;
    } while (g != f);
  }
  rt_flow_t *n = calloc(1, sizeof *n);
  if (!n) return NULL;
  snprintf(n->name, sizeof n->name, "%s", name);
  if (!f) {
    n->ring_next = n->ring_prev = n;
    b->ring[p] = n;
  } else {                                     /* insert just before the next-served flow: last turn */
    n->ring_next = f;
    n->ring_prev = f->ring_prev;
    f->ring_prev->ring_next = n;
    f->ring_prev = n;
    if (front) b->ring[p] = n;
  }
  return n;
}

static void flow_drop(rt_budget_t *b, rt_prio_t p, rt_flow_t *f) {
  if (f->ring_next == f) b->ring[p] = NULL;
  else {
    f->ring_prev->ring_next = f->ring_next;
    f->ring_next->ring_prev = f->ring_prev;
    if (b->ring[p] == f) b->ring[p] = f->ring_next;
  }
  free(f);
}

static int enqueue(rt_budget_t *b, rt_admit_t *a, int front) {
  rt_flow_t *f = flow_get(b, a->prio, a->flow_name ? a->flow_name : "", front);
  if (!f) return -1;
  a->flow = f;
  a->next = NULL;
  if (front) {
    a->next = f->head;
    f->head = a;
    if (!f->tail) f->tail = a;
    b->ring[a->prio] = f;
  } else {
    if (f->tail) f->tail->next = a;
    else f->head = a;
    f->tail = a;
  }
  if (++b->queued > b->queue_peak) b->queue_peak = b->queued;
  return 0;
}

/* Take `a` out of its flow; the flow's turn passes to the next flow of its priority. */
static void dequeue(rt_budget_t *b, rt_admit_t *a, int rotate) {
  rt_flow_t *f = a->flow;
  rt_admit_t **pp = &f->head, *prev = NULL;
  while (*pp && *pp != a) {
    prev = *pp;
    pp = &(*pp)->next;
  }
  if (*pp) {
    *pp = a->next;
    if (f->tail == a) f->tail = prev;
    b->queued--;
  }
  a->flow = NULL;
  a->next = NULL;
  if (!f->head) flow_drop(b, a->prio, f);
  else if (rotate && b->ring[a->prio] == f) b->ring[a->prio] = f->ring_next;
}

static rt_admit_t *peek(rt_budget_t *b) {
  for (int p = 0; p < RT_PRIO_N; p++)
    if (b->ring[p]) return b->ring[p]->head;
  return NULL;
}

static int waiting_at_or_above(rt_budget_t *b, rt_prio_t prio) {
  for (int p = 0; p <= (int)prio; p++)
    if (b->ring[p]) return 1;
  return 0;
}

/* ---- admission ------------------------------------------------------------------------------ */

/* The earliest time every window and the pause allow `weight`. */
static double fits_at(rt_budget_t *b, double weight, double now) {
  double t = b->paused_until > now ? b->paused_until : now;
  for (int i = 0; i < b->nwin; i++) {
    rt_window_advance(&b->win[i], now);
    double f = rt_window_fits_at(&b->win[i], weight, now);
    if (f > t) t = f;
  }
  return t;
}

static void take(rt_budget_t *b, rt_admit_t *a, double now) {
  for (int i = 0; i < b->nwin; i++) {
    rt_window_charge(&b->win[i], a->weight);
    if (b->win[i].fixed) b->state_dirty = 1;
  }
  COUNT(b, requests, 1);
  COUNT(b, weight, a->weight);
  a->probe = 0;
  if (b->breaker == RT_BREAKER_HALF_OPEN) {
    a->probe = 1;
    b->probe_out = 1;
  }
  (void)now;
}

/* Why nothing may go now (ban, open breaker), as a->code/errmsg; 0 when traffic may flow. */
static int blocked(rt_budget_t *b, rt_admit_t *a, double now) {
  char when[32];
  if (b->banned_until > now) {
    iso(b->banned_until, when, sizeof when);
    a->code = "BANNED";
    snprintf(a->errmsg, sizeof a->errmsg, "budget %s: banned until %s (%s)", b->name, when, b->ban_reason);
    return 1;
  }
  if (b->breaker == RT_BREAKER_OPEN) {
    if (now < b->open_until) {
      a->code = "BREAKER_OPEN";
      snprintf(a->errmsg, sizeof a->errmsg, "budget %s: circuit breaker open for %.0fs more after %d failures",
               b->name, ceil(b->open_until - now), b->failures);
      return 1;
    }
    b->breaker = RT_BREAKER_HALF_OPEN;         /* cooldown over: the next request is the probe */
    b->probe_out = 0;
  }
  return 0;
}

const char *rt_budget_blocked(rt_budget_t *b, char *msg, size_t n) {
  rt_admit_t a;
  if (!blocked(b, &a, rt_now())) return NULL;
  snprintf(msg, n, "%s", a.errmsg);
  return a.code;
}

static void arm(rt_budget_t *b, double at, double now) {
  double ms = ceil((at - now) * 1000);
  uv_timer_start(&b->timer, on_timer, ms < 1 ? 1 : (uint64_t)ms, 0);
}

static void reject_all(rt_budget_t *b, rt_admit_t *model) {
  rt_admit_t *a;
  while ((a = peek(b))) {
    dequeue(b, a, 0);
    a->code = model->code;
    memcpy(a->errmsg, model->errmsg, sizeof a->errmsg);
    COUNT(b, rejected, 1);
    a->fn(a, -1);
  }
}

static void pump(rt_budget_t *b) {
  if (b->pumping) return;
  b->pumping = 1;
  double now = rt_now();
  uv_timer_stop(&b->timer);
  if ((b->alerts & ALERT_BANNED) && now >= b->banned_until) {
    b->alerts &= ~ALERT_BANNED;
    rt_alert_resolve(b->set->rt, "banned", b->name);
  }
  rt_admit_t probe;
  if (peek(b) && blocked(b, &probe, now)) reject_all(b, &probe);
  rt_admit_t *a;
  while ((a = peek(b))) {
    if (b->breaker == RT_BREAKER_HALF_OPEN && b->probe_out) break;   /* wait for the probe */
    double t = fits_at(b, a->weight, now);
    if (t > now) {
      arm(b, t, now);
      break;
    }
    dequeue(b, a, 1);
    double waited = now - a->queued_at;
    COUNT(b, wait_seconds, waited);
    if (waited > b->wait_max) b->wait_max = waited;
    take(b, a, now);
    a->fn(a, 0);
  }
  if (!peek(b)) {                              /* nothing waits: wake for a ban or breaker to end */
    if (b->alerts & ALERT_BANNED && b->banned_until > now) arm(b, b->banned_until, now);
  }
  b->pumping = 0;
}

static void on_timer(uv_timer_t *t) { pump(t->data); }

static int admit(rt_budget_t *b, rt_admit_t *a, int front) {
  double now = rt_now();
  a->code = NULL;
  a->errmsg[0] = 0;
  a->probe = 0;
  a->flow = NULL;
  for (int i = 0; i < b->nwin; i++) {
    if (a->weight > b->win[i].cap + EPS) {
      a->code = "EINVAL";
      snprintf(a->errmsg, sizeof a->errmsg, "budget %s: weight %g exceeds the %s window's capacity %g",
               b->name, a->weight, b->win[i].key, b->win[i].cap);
      return -1;
    }
  }
  if (blocked(b, a, now)) {
    COUNT(b, rejected, 1);
    return -1;
  }
  if (!front && !waiting_at_or_above(b, a->prio) && !(b->breaker == RT_BREAKER_HALF_OPEN && b->probe_out) &&
      fits_at(b, a->weight, now) <= now) {
    take(b, a, now);
    return 0;
  }
  if (!front && b->queued >= b->queue_max) {
    a->code = "QUEUE_FULL";
    snprintf(a->errmsg, sizeof a->errmsg, "budget %s: queue full (%d waiting)", b->name, b->queued);
    COUNT(b, rejected, 1);
    return -1;
  }
  if (enqueue(b, a, front) < 0) {
    a->code = "ENOMEM";
    snprintf(a->errmsg, sizeof a->errmsg, "budget %s: out of memory", b->name);
    return -1;
  }
  a->queued_at = now;
  if (!front) COUNT(b, waits, 1);
  if (!b->pumping) uv_timer_start(&b->timer, on_timer, 0, 0);   /* pump from the loop */
  return 1;
}

int rt_budget_admit(rt_budget_t *b, rt_admit_t *a) { return admit(b, a, 0); }
int rt_budget_readmit(rt_budget_t *b, rt_admit_t *a) { return admit(b, a, 1); }

void rt_budget_cancel(rt_budget_t *b, rt_admit_t *a) {
  if (a->flow) dequeue(b, a, 0);
}

/* ---- settling responses --------------------------------------------------------------------- */

static void ban(rt_budget_t *b, double now, double secs, const char *why) {
  if (now + secs > b->banned_until) b->banned_until = now + secs;
  snprintf(b->ban_reason, sizeof b->ban_reason, "%s", why);
  COUNT(b, bans, 1);
  save_state(b, "ban", b->banned_until, 0, b->ban_reason);
  char when[32], msg[320];
  iso(b->banned_until, when, sizeof when);
  snprintf(msg, sizeof msg, "budget %s banned until %s: %s", b->name, when, why);
  rt_alert_raise(b->set->rt, "banned", b->name, "error", msg);
  b->alerts |= ALERT_BANNED;
}

static void open_breaker(rt_budget_t *b, double now, const char *why) {
  b->breaker = RT_BREAKER_OPEN;
  b->open_until = now + b->breaker_cooldown;
  b->probe_out = 0;
  char msg[400];
  snprintf(msg, sizeof msg, "budget %s: circuit breaker open for %gs: %s", b->name, b->breaker_cooldown, why);
  rt_alert_raise(b->set->rt, "breaker_open", b->name, "error", msg);
  b->alerts |= ALERT_BREAKER;
}

int rt_budget_settle(rt_budget_t *b, const rt_settle_t *s) {
  double now = rt_now();
  int requeue = 0;
  if (s->probe) b->probe_out = 0;
  if (s->used_weight >= 0 && b->header_win >= 0) {   /* the server's count wins when it is higher */
    rt_window_t *w = &b->win[b->header_win];
    rt_window_advance(w, now);
    if (s->used_weight > w->used + EPS) rt_window_charge(w, s->used_weight - w->used);
  }
  char msg[256];
  if (s->status == 429) {
    COUNT(b, throttled, 1);
    b->consecutive_429++;
    if (b->consecutive_429 >= b->ban_after) {
      snprintf(msg, sizeof msg, "%d consecutive 429 responses", b->consecutive_429);
      ban(b, now, s->retry_after >= 0 && s->retry_after > b->ban_default ? s->retry_after : b->ban_default, msg);
    } else {
      double pause = s->retry_after >= 0 ? s->retry_after : rt_budget_backoff(b, b->consecutive_429);
      if (s->retry_after < 0 && pause < b->backoff_base) pause = b->backoff_base;
      if (now + pause > b->paused_until) b->paused_until = now + pause;
      snprintf(msg, sizeof msg, "budget %s: HTTP 429, every request paused for %.1fs%s", b->name, pause,
               s->retry_after >= 0 ? " (Retry-After)" : " (backoff)");
      rt_alert_raise(b->set->rt, "rate_limited", b->name, "warn", msg);
      b->alerts |= ALERT_THROTTLED;
      requeue = 1;
    }
  } else if (s->status == 418) {
    COUNT(b, throttled, 1);
    ban(b, now, s->retry_after >= 0 ? s->retry_after : b->ban_default, "HTTP 418 (IP banned by the server)");
  } else if (s->status == 0 || s->status >= 500) {
    COUNT(b, failures, 1);
    b->failures++;
    if (b->breaker == RT_BREAKER_HALF_OPEN && s->probe) {
      open_breaker(b, now, "the probe failed");
    } else if (b->breaker == RT_BREAKER_CLOSED && b->failures >= b->breaker_failures) {
      snprintf(msg, sizeof msg, "%d failures in a row", b->failures);
      open_breaker(b, now, msg);
    }
  } else {                                     /* the host answered: healthy */
    b->consecutive_429 = 0;
    b->failures = 0;
    if (b->breaker == RT_BREAKER_HALF_OPEN && s->probe) {
      b->breaker = RT_BREAKER_CLOSED;
      b->alerts &= ~ALERT_BREAKER;
      rt_alert_resolve(b->set->rt, "breaker_open", b->name);
    }
    if ((b->alerts & ALERT_THROTTLED) && now >= b->paused_until) {
      b->alerts &= ~ALERT_THROTTLED;
      rt_alert_resolve(b->set->rt, "rate_limited", b->name);
    }
  }
  pump(b);
  return requeue;
}

/* ---- status --------------------------------------------------------------------------------- */

static void set_num(lua_State *L, const char *k, double v) {   /* whole numbers as integers */
  if (v == floor(v) && fabs(v) < 9007199254740992.0) lua_pushinteger(L, (lua_Integer)v);
  else lua_pushnumber(L, v);
  lua_setfield(L, -2, k);
}

static void set_int(lua_State *L, const char *k, lua_Integer v) {
  lua_pushinteger(L, v);
  lua_setfield(L, -2, k);
}

static void push_one(lua_State *L, rt_budget_t *b) {
  double now = rt_now();
  lua_createtable(L, 0, 16);
  lua_pushstring(L, b->name);
  lua_setfield(L, -2, "name");
  lua_createtable(L, b->nwin, 0);
  for (int i = 0; i < b->nwin; i++) {
    rt_window_t *w = &b->win[i];
    rt_window_advance(w, now);
    lua_createtable(L, 0, 7);
    lua_pushstring(L, w->key);
    lua_setfield(L, -2, "per");
    set_num(L, "limit", w->limit);
    set_num(L, "capacity", w->cap);
    set_num(L, "used", w->used);
    set_num(L, "remaining", w->cap - w->used > 0 ? w->cap - w->used : 0);
    lua_pushstring(L, w->fixed ? "fixed" : "sliding");
    lua_setfield(L, -2, "kind");
    if (w->fixed) set_num(L, "resets_at", rt_window_fixed_end(w, w->start));
    lua_rawseti(L, -2, i + 1);
  }
  lua_setfield(L, -2, "windows");
  set_int(L, "queued", b->queued);
  set_int(L, "queue_peak", b->queue_peak);
  set_int(L, "queue_max", b->queue_max);
  lua_createtable(L, 0, RT_PRIO_N);
  for (int p = 0; p < RT_PRIO_N; p++) {
    int n = 0;
    rt_flow_t *f = b->ring[p];
    if (f) {
      rt_flow_t *g = f;
      do {
        for (rt_admit_t *a = g->head; a; a = a->next) n++;
        g = g->ring_next;
      } while (g != f);
    }
    set_int(L, prio_names[p], n);
  }
  lua_setfield(L, -2, "waiting");
  if (b->paused_until > now) {
    set_num(L, "paused_until", b->paused_until);
    set_num(L, "paused_for", b->paused_until - now);
  }
  if (b->banned_until > now) {
    set_num(L, "banned_until", b->banned_until);
    lua_pushstring(L, b->ban_reason);
    lua_setfield(L, -2, "ban_reason");
  }
  set_int(L, "consecutive_429", b->consecutive_429);
  lua_createtable(L, 0, 4);
  rt_breaker_state_t st = b->breaker;
  if (st == RT_BREAKER_OPEN && now >= b->open_until) st = RT_BREAKER_HALF_OPEN;
  lua_pushstring(L, st == RT_BREAKER_CLOSED ? "closed" : st == RT_BREAKER_OPEN ? "open" : "half_open");
  lua_setfield(L, -2, "state");
  set_int(L, "failures", b->failures);
  if (st == RT_BREAKER_OPEN) set_num(L, "open_until", b->open_until);
  lua_setfield(L, -2, "breaker");
  lua_createtable(L, 0, 10);
  set_int(L, "requests", (lua_Integer)b->total.requests);
  set_num(L, "weight", b->total.weight);
  set_int(L, "waits", (lua_Integer)b->total.waits);
  set_num(L, "wait_seconds", b->total.wait_seconds);
  set_num(L, "wait_max", b->wait_max);
  set_int(L, "retries", (lua_Integer)b->total.retries);
  set_int(L, "throttled", (lua_Integer)b->total.throttled);
  set_int(L, "bans", (lua_Integer)b->total.bans);
  set_int(L, "failures", (lua_Integer)b->total.failures);
  set_int(L, "rejected", (lua_Integer)b->total.rejected);
  lua_setfield(L, -2, "metrics");
}

void rt_budget_push_status(lua_State *L, rt_budgets_t *set, rt_budget_t *b) {
  if (b) {
    push_one(L, b);
    return;
  }
  lua_newtable(L);
  for (rt_budget_t *x = set ? set->head : NULL; x; x = x->next) {
    push_one(L, x);
    lua_setfield(L, -2, x->name);
  }
}

/* ---- creation from config ------------------------------------------------------------------- */

static double field_num(lua_State *L, int t, const char *k, double dflt) {
  lua_getfield(L, t, k);
  double v = lua_isnumber(L, -1) ? lua_tonumber(L, -1) : dflt;
  lua_pop(L, 1);
  return v;
}

/* A duration field (number of seconds or "30s"/"5m"/...), 0 when absent; -1 when malformed. */
static double field_duration(lua_State *L, int t, const char *k, double dflt) {
  double d = dflt;
  lua_getfield(L, t, k);
  if (lua_type(L, -1) == LUA_TNUMBER) d = lua_tonumber(L, -1);
  else if (lua_type(L, -1) == LUA_TSTRING && rt_sched_parse_duration(lua_tostring(L, -1), &d) < 0) d = -1;
  lua_pop(L, 1);
  return d;
}

static int budget_from_config(rt_budgets_t *set, lua_State *L, const char *name, int t, char *err, size_t errlen) {
  rt_budget_t *b = calloc(1, sizeof *b);
  if (!b) return snprintf(err, errlen, "budgets.%s: out of memory", name), -1;
  b->set = set;
  snprintf(b->name, sizeof b->name, "%s", name);
  b->header_win = -1;
  b->next = set->head;
  set->head = b;
  uv_timer_init(&set->rt->loop, &b->timer);
  b->timer.data = b;
  set->handles++;
  b->reserve = field_num(L, t, "reserve", 0);
  if (b->reserve < 0 || b->reserve >= 1)
    return snprintf(err, errlen, "budgets.%s.reserve: must be at least 0 and below 1", name), -1;
  b->retries = (int)field_num(L, t, "retries", 3);
  b->queue_max = (int)field_num(L, t, "queue", 10000);
  if (b->retries < 0 || b->queue_max < 1)
    return snprintf(err, errlen, "budgets.%s: retries must be >= 0 and queue >= 1", name), -1;
  lua_getfield(L, t, "backoff");
  b->backoff_base = field_num(L, -1, "base", 1);
  b->backoff_cap = field_num(L, -1, "cap", 300);
  lua_pop(L, 1);
  if (b->backoff_base <= 0 || b->backoff_cap < b->backoff_base)
    return snprintf(err, errlen, "budgets.%s.backoff: base must be > 0 and cap >= base", name), -1;
  lua_getfield(L, t, "breaker");
  b->breaker_failures = (int)field_num(L, -1, "failures", 5);
  b->breaker_cooldown = field_duration(L, lua_gettop(L), "cooldown", 60);
  lua_pop(L, 1);
  if (b->breaker_failures < 1 || b->breaker_cooldown <= 0)
    return snprintf(err, errlen, "budgets.%s.breaker: failures must be >= 1 and cooldown a duration > 0", name), -1;
  lua_getfield(L, t, "ban");
  b->ban_after = (int)field_num(L, -1, "after_429s", 3);
  b->ban_default = field_duration(L, lua_gettop(L), "duration", 600);
  lua_pop(L, 1);
  if (b->ban_after < 1 || b->ban_default <= 0)
    return snprintf(err, errlen, "budgets.%s.ban: after_429s must be >= 1 and duration a duration > 0", name), -1;
  lua_getfield(L, t, "windows");
  int wt = lua_gettop(L);
  b->nwin = lua_istable(L, wt) ? (int)lua_rawlen(L, wt) : 0;
  if (b->nwin == 0) return snprintf(err, errlen, "budgets.%s.windows: at least one window is required", name), -1;
  b->win = calloc((size_t)b->nwin, sizeof *b->win);
  if (!b->win) return snprintf(err, errlen, "budgets.%s: out of memory", name), -1;
  for (int i = 0; i < b->nwin; i++) {
    lua_rawgeti(L, wt, i + 1);
    int month = 0;
    double per = 0, limit = field_num(L, -1, "limit", 0);
    lua_getfield(L, -1, "per");
    if (lua_type(L, -1) == LUA_TSTRING && strcmp(lua_tostring(L, -1), "month") == 0) month = 1;
    lua_pop(L, 1);
    if (!month) per = field_duration(L, lua_gettop(L), "per", 0);
    lua_pop(L, 1);
    if (!month && per <= 0)
      return snprintf(err, errlen, "budgets.%s.windows[%d].per: expected a duration (\"1s\", \"1m\", \"1d\") or \"month\"",
                      name, i + 1), -1;
    if (limit <= 0) return snprintf(err, errlen, "budgets.%s.windows[%d].limit: must be > 0", name, i + 1), -1;
    rt_window_init(&b->win[i], per, month, limit, limit * (1 - b->reserve));
  }
  lua_pop(L, 1);
  lua_getfield(L, t, "used_weight_header");
  if (lua_type(L, -1) == LUA_TSTRING) {
    const char *h = lua_tostring(L, -1);
    size_t n = 0;
    for (; h[n] && n + 1 < sizeof b->used_header; n++) b->used_header[n] = (char)tolower((unsigned char)h[n]);
    b->used_header[n] = 0;
    const char *dash = strrchr(b->used_header, '-');
    double per = -1;
    if (dash) rt_sched_parse_duration(dash + 1, &per);
    for (int i = 0; i < b->nwin && b->header_win < 0; i++)
      if (!b->win[i].fixed && (per < 0 || b->win[i].per == per)) b->header_win = i;
    if (b->header_win < 0)
      return snprintf(err, errlen, "budgets.%s.used_weight_header: no sliding window of %s to correct", name,
                      dash ? dash + 1 : "its length"), -1;
  }
  lua_pop(L, 1);
  if (set->rt->store) load_state(b);           /* budgets from config load once the store is open */
  return 0;
}

rt_budget_t *rt_budget_define(rt_budgets_t *set, lua_State *L, const char *name, int idx, char *err,
                              size_t errlen) {
  rt_budget_t *b = rt_budget_find(set, name);
  if (b) return b;
  rt_budget_t *before = set->head;
  if (budget_from_config(set, L, name, lua_absindex(L, idx), err, errlen) < 0) {
    if (set->head != before) {                 /* unlink the half-made budget; its timer is open */
      b = set->head;
      set->head = b->next;
      uv_close((uv_handle_t *)&b->timer, on_budget_closed);
    }
    return NULL;
  }
  return set->head;
}

void rt_budgets_load(rt_budgets_t *set) {
  for (rt_budget_t *b = set ? set->head : NULL; b; b = b->next) load_state(b);
}

int rt_budgets_open(rt_t *rt, lua_State *L, int idx, char *err, size_t errlen) {
  rt_budgets_t *set = calloc(1, sizeof *set);
  if (!set) return snprintf(err, errlen, "budgets: out of memory"), -1;
  set->rt = rt;
  set->rng = (uv_hrtime() ^ ((uint64_t)getpid() << 32)) | 1;
  set->metrics_flushed_at = rt_now();
  rt->budgets = set;
  uv_timer_init(&rt->loop, &set->flush);
  set->flush.data = set;
  set->handles++;
  uv_timer_start(&set->flush, on_flush, 1000, 1000);
  uv_unref((uv_handle_t *)&set->flush);        /* persistence never keeps the loop alive */
  idx = lua_absindex(L, idx);
  if (rt_config_get(L, idx, "budgets") != LUA_TTABLE) {
    lua_pop(L, 1);
    return 0;
  }
  int t = lua_gettop(L);
  lua_pushnil(L);
  while (lua_next(L, t)) {
    if (budget_from_config(set, L, lua_tostring(L, -2), lua_gettop(L), err, errlen) < 0) {
      lua_settop(L, t - 1);
      return -1;
    }
    lua_pop(L, 1);
  }
  lua_pop(L, 1);
  return 0;
}

/* Close callbacks: a budget is freed when its timer has closed, the set after its last handle. */
static void set_release(rt_budgets_t *set) {
  if (--set->handles == 0) free(set);
}

static void on_budget_closed(uv_handle_t *h) {
  rt_budget_t *b = h->data;
  rt_budgets_t *set = b->set;
  free(b->win);
  free(b);
  set_release(set);
}

static void on_flush_closed(uv_handle_t *h) { set_release(h->data); }

void rt_budgets_close(rt_budgets_t *set) {
  if (!set) return;
  rt_admit_t why = {0};
  why.code = "ECANCELED";
  for (rt_budget_t *b = set->head; b; b = b->next) {
    snprintf(why.errmsg, sizeof why.errmsg, "budget %s: the runtime is shutting down", b->name);
    b->pumping = 1;                            /* callbacks may not start anything new here */
    reject_all(b, &why);
  }
  flush_all(set, 1);
  set->rt->budgets = NULL;
  rt_budget_t *b = set->head;
  set->head = NULL;
  while (b) {
    rt_budget_t *next = b->next;
    uv_close((uv_handle_t *)&b->timer, on_budget_closed);
    b = next;
  }
  uv_close((uv_handle_t *)&set->flush, on_flush_closed);
}
