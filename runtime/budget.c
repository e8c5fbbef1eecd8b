/*
** runtime/budget.c - the life of budgets (see budget.h): creation from a declared spec,
** attachment to the database's shared file, status, and closing (helpers every budget file uses:
** budget_base.c).
*/
#include <ctype.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "runtime/budget_impl.h"
#include "runtime/log.h"
#include "runtime/duration.h"
#include "runtime/store.h"

static void on_budget_closed(uv_handle_t *h);

void rt_budget_info(rt_budget_t *b, rt_budget_info_t *out) {
  double now = rt_now();
  memset(out, 0, sizeof *out);
  rt_budget_lock(b->set);
  rt_budget_probe_up(b, now);
  for (int i = 0; i < b->nwin; i++) rt_window_advance(&b->win[i], now);
  rt_budget_unlock(b->set);
  rt_budget_learned_resolve(b);
  out->name = b->name;
  out->win = b->win;
  out->nwin = b->nwin;
  out->queued = b->queued;
  out->queue_peak = b->queue_peak;
  out->queue_max = b->queue_max;
  for (int p = 0; p < RT_PRIO_N; p++) out->waiting[p] = rt_budget_waiting(b, (rt_prio_t)p);
  out->paused_until = b->cs->paused_until;
  out->banned_until = b->cs->banned_until;
  out->ban_reason = b->cs->ban_reason;
  out->open_until = b->open_until;
  out->wait_max = b->wait_max;
  out->consecutive_429 = b->consecutive_429;
  out->failures = b->failures;
  out->breaker = b->breaker == RT_BREAKER_OPEN && now >= b->open_until ? RT_BREAKER_HALF_OPEN : b->breaker;
  out->shared = b->set->shm != NULL;
  out->total = b->total;
}

/* ---- creation ------------------------------------------------------------------------------- */

/* Point the budget's windows and common state at their records in the shared file. */
static void attach(rt_budget_t *b) {
  rt_budgets_t *set = b->set;
  if (!set->shm) return;
  char key[RT_BUDGET_SHM_KEY];
  int created;
  rt_budget_shm_lock(set->shm);
  for (int i = 0; i < b->nwin; i++) {
    rt_window_t *w = &b->win[i];
    snprintf(key, sizeof key, "%s/%s", b->name, w->key);
    rt_window_state_t *st = rt_budget_shm_record(set->shm, key, sizeof *st, &created);
    if (!st) {
      rt_log_printf(set->rt->log, RT_LOG_WARN, NULL, "budget %s: %s has no room left: its %s window is not shared",
                    b->name, rt_budget_shm_path(set->shm), w->key);
      continue;
    }
    if (created) *st = w->own;
    w->st = st;
  }
  for (int i = 0; i < b->nwin; i++)            /* learned in an earlier process: resolve it here */
    if (b->win[i].st->eff > 0) b->alerts |= RT_ALERT_LEARNED;
  rt_budget_common_t *cs = rt_budget_shm_record(set->shm, b->name, sizeof *cs, &created);
  if (cs) {
    if (created) *cs = b->own_common;
    b->cs = cs;
  }
  rt_budget_shm_unlock(set->shm);
}

static void hdr_window(rt_budget_t *b) {
  const char *dash = strrchr(b->used_header, '-');
  double per = -1;
  if (dash) rt_duration_parse(dash + 1, &per);
  for (int i = 0; i < b->nwin && b->header_win < 0; i++)
    if (!b->win[i].fixed && (per < 0 || b->win[i].per == per)) b->header_win = i;
}

static int fill(rt_budget_t *b, const rt_budget_spec_t *sp, char *err, size_t errlen) {
  if (sp->reserve < 0 || sp->reserve >= 1)
    return snprintf(err, errlen, "reserve: must be at least 0 and below 1"), -1;
  if (sp->retries < 0) return snprintf(err, errlen, "retries: must be >= 0"), -1;
  if (sp->queue_max < 1) return snprintf(err, errlen, "queue: must be >= 1"), -1;
  if (sp->backoff_base <= 0 || sp->backoff_cap < sp->backoff_base)
    return snprintf(err, errlen, "backoff: base must be > 0 and cap >= base"), -1;
  if (sp->breaker_failures < 1 || sp->breaker_cooldown <= 0)
    return snprintf(err, errlen, "breaker: failures must be >= 1 and cooldown a duration > 0"), -1;
  if (sp->ban_after < 1 || sp->ban_default <= 0)
    return snprintf(err, errlen, "ban: after_429s must be >= 1 and duration a duration > 0"), -1;
  if (sp->nwin < 1) return snprintf(err, errlen, "windows: at least one window is required"), -1;
  b->reserve = sp->reserve;
  b->retries = sp->retries;
  b->queue_max = sp->queue_max;
  b->backoff_base = sp->backoff_base;
  b->backoff_cap = sp->backoff_cap;
  b->breaker_failures = sp->breaker_failures;
  b->breaker_cooldown = sp->breaker_cooldown;
  b->ban_after = sp->ban_after;
  b->ban_default = sp->ban_default;
  b->win = calloc((size_t)sp->nwin, sizeof *b->win);
  if (!b->win) return snprintf(err, errlen, "out of memory"), -1;
  b->nwin = sp->nwin;
  for (int i = 0; i < sp->nwin; i++) {
    const rt_budget_window_spec_t *ws = &sp->windows[i];
    if (!ws->month && ws->per <= 0)
      return snprintf(err, errlen, "windows[%d].per: expected a duration (\"1s\", \"1m\", \"1d\") or \"month\"", i + 1), -1;
    if (ws->limit <= 0) return snprintf(err, errlen, "windows[%d].limit: must be > 0", i + 1), -1;
    rt_window_init(&b->win[i], ws->per, ws->month, ws->limit, ws->limit * (1 - sp->reserve));
  }
  if (sp->used_header) {
    size_t n = 0;
    for (; sp->used_header[n] && n + 1 < sizeof b->used_header; n++)
      b->used_header[n] = (char)tolower((unsigned char)sp->used_header[n]);
    b->used_header[n] = 0;
    hdr_window(b);
    if (b->header_win < 0) {
      const char *dash = strrchr(b->used_header, '-');
      return snprintf(err, errlen, "used_weight_header: no sliding window of %s to correct", dash ? dash + 1 : "its length"), -1;
    }
  }
  return 0;
}

rt_budget_t *rt_budget_create(rt_budgets_t *set, const char *name, const rt_budget_spec_t *spec, char *err,
                              size_t errlen) {
  rt_budget_t *b = rt_budget_find(set, name);
  if (b) return b;
  b = calloc(1, sizeof *b);
  if (!b) return snprintf(err, errlen, "out of memory"), NULL;
  b->set = set;
  snprintf(b->name, sizeof b->name, "%s", name);
  b->header_win = -1;
  b->learning = -1;
  b->cs = &b->own_common;
  if (fill(b, spec, err, errlen) < 0) {
    free(b->win);
    free(b);
    return NULL;
  }
  uv_timer_init(&set->rt->loop, &b->timer);
  b->timer.data = b;
  set->handles++;
  b->next = set->head;
  set->head = b;
  if (set->rt->store) {                        /* budgets from config attach once the store is open */
    attach(b);
    rt_budget_persist_load(b);
  }
  return b;
}

void rt_budgets_load(rt_budgets_t *set) {
  if (!set || !set->rt->store) return;
  const char *db = rt_store_path(set->rt->store);
  if (!set->shm && db[0] && strcmp(db, ":memory:") != 0) {
    char err[512];
    set->shm = rt_budget_shm_open(db, err, sizeof err);
    if (!set->shm)
      rt_log_printf(set->rt->log, RT_LOG_ERROR, NULL, "budgets are not shared with other processes: %s", err);
  }
  for (rt_budget_t *b = set->head; b; b = b->next) {
    attach(b);
    rt_budget_persist_load(b);
  }
}

int rt_budgets_new(rt_t *rt) {
  rt_budgets_t *set = calloc(1, sizeof *set);
  if (!set) return -1;
  set->rt = rt;
  set->rng = (uv_hrtime() ^ ((uint64_t)getpid() << 32)) | 1;
  set->metrics_flushed_at = rt_now();
  rt->budgets = set;
  uv_timer_init(&rt->loop, &set->flush);
  set->flush.data = set;
  set->handles++;
  uv_timer_start(&set->flush, rt_budget_persist_on_flush, 1000, 1000);
  uv_unref((uv_handle_t *)&set->flush);        /* persistence never keeps the loop alive */
  return 0;
}

/* ---- closing -------------------------------------------------------------------------------- */

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
  char msg[320];
  for (rt_budget_t *b = set->head; b; b = b->next) {
    snprintf(msg, sizeof msg, "budget %s: the runtime is shutting down", b->name);
    b->pumping = 1;                            /* callbacks may not start anything new here */
    rt_budget_reject_all(b, "ECANCELED", msg);
  }
  rt_budget_persist_flush(set, 1);
  set->rt->budgets = NULL;
  rt_budget_t *b = set->head;
  set->head = NULL;
  while (b) {
    rt_budget_t *next = b->next;
    for (int i = 0; i < b->nwin; i++) b->win[i].st = &b->win[i].own;   /* the mapping goes next */
    b->cs = &b->own_common;
    uv_close((uv_handle_t *)&b->timer, on_budget_closed);
    b = next;
  }
  rt_budget_shm_close(set->shm);
  set->shm = NULL;
  uv_close((uv_handle_t *)&set->flush, on_flush_closed);
}
