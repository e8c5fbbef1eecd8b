/*
** runtime/budget_persist.c - what of a budget outlives the shared file: day/month counts and
** bans in the store's budget_state, and metrics per minute in budget_metrics (see budget.h).
**
** The shared file already carries every window across processes and restarts; the store keeps
** the long windows through a reboot or a deleted file. Loading takes the larger of the two counts.
*/
#include <math.h>
#include <string.h>

#include "runtime/budget_impl.h"
#include "runtime/log.h"
#include "runtime/store_budget.h"

static void log_error(rt_budget_t *b, const char *what) {
  rt_t *rt = b->set->rt;
  rt_log_printf(rt->log, RT_LOG_ERROR, NULL, "budget %s: cannot %s: %s", b->name, what, rt_store_errmsg(rt->store));
}

static void on_row(void *ud, const char *key, double start, double value, const char *note) {
  rt_budget_t *b = ud;
  double now = rt_now();
  if (strcmp(key, "ban") == 0) {
    if (start > now && start > b->cs->banned_until) {
      b->cs->banned_until = start;
      snprintf(b->cs->ban_reason, sizeof b->cs->ban_reason, "%s", note ? note : "ban");
    }
    return;
  }
  for (int i = 0; i < b->nwin; i++) {
    rt_window_t *w = &b->win[i];
    if (!w->fixed || strcmp(w->key, key) != 0) continue;
    rt_window_advance(w, now);
    if (start == w->st->start && value > w->st->used) w->st->used = value;
  }
}

void rt_budget_persist_load(rt_budget_t *b) {
  rt_t *rt = b->set->rt;
  if (!rt->store) return;
  rt_budget_lock(b->set);
  if (rt_store_budget_load(rt->store, b->name, on_row, b) != SQLITE_OK) log_error(b, "load its state");
  rt_budget_unlock(b->set);
  if (b->cs->banned_until > rt_now()) b->alerts |= RT_ALERT_BANNED;
}

void rt_budget_persist_ban(rt_budget_t *b) {
  rt_t *rt = b->set->rt;
  if (rt->store && rt_store_budget_save(rt->store, b->name, "ban", b->cs->banned_until, 0, b->cs->ban_reason) != SQLITE_OK)
    log_error(b, "save its ban");
}

static void flush_metrics(rt_budget_t *b, double now) {
  rt_budget_counters_t *d = &b->delta;
  if (!d->requests && !d->waits && !d->retries && !d->throttled && !d->bans && !d->failures) return;
  rt_store_budget_minute_t m = {(int64_t)d->requests, (int64_t)d->waits, (int64_t)d->retries, (int64_t)d->throttled,
                                (int64_t)d->bans, (int64_t)d->failures, d->weight, d->wait_seconds};
  if (rt_store_budget_metrics(b->set->rt->store, b->name, (int64_t)(floor(now / 60) * 60), &m) == SQLITE_OK)
    memset(d, 0, sizeof *d);
  else log_error(b, "save its metrics");
}

/* Write dirty day/month counts (and, every 10 s or when closing, metrics) in one transaction. */
void rt_budget_persist_flush(rt_budgets_t *set, int closing) {
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
      for (int i = 0; i < b->nwin; i++) {
        rt_window_t *w = &b->win[i];
        if (w->fixed && rt_store_budget_save(rt->store, b->name, w->key, w->st->start, w->st->used, NULL) != SQLITE_OK)
          log_error(b, "save its counts");
      }
      b->state_dirty = 0;
    }
    if (metrics) flush_metrics(b, now);
  }
  if (metrics) set->metrics_flushed_at = now;
  if (rt_store_commit(rt->store) != SQLITE_OK) rt_store_rollback(rt->store);
}

void rt_budget_persist_on_flush(uv_timer_t *t) { rt_budget_persist_flush(t->data, 0); }
