/*
** runtime/budget_base.c - what every file of the budgets shares (budget.c their life, budget_queue.c
** admission, budget_settle.c responses, budget_persist.c what the store keeps): priorities, the lock
** of the shared file, accessors, and the upkeep of learned limits (probing back up towards the
** declared limit, resolving the limit_learned alert). It calls none of those files, so they depend
** on it and not on each other in a circle.
*/
#include <ctype.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "runtime/alert.h"
#include "runtime/budget_impl.h"
#include "runtime/log.h"

#define PROBE_STEP 0.1       /* of the declared limit */

/* ---- small shared helpers ------------------------------------------------------------------- */

static const char *const prio_names[RT_PRIO_N] = {"realtime", "backfill", "discovery"};

int rt_prio_parse(const char *s) {
  for (int i = 0; i < RT_PRIO_N; i++)
    if (strcmp(s, prio_names[i]) == 0) return i;
  return -1;
}

const char *rt_prio_name(rt_prio_t p) { return p < RT_PRIO_N ? prio_names[p] : "?"; }

void rt_budget_iso(double t, char *buf, size_t n) {
  time_t s = (time_t)t;
  struct tm tm;
  gmtime_r(&s, &tm);
  strftime(buf, n, "%Y-%m-%dT%H:%M:%SZ", &tm);
}

void rt_budget_lock(rt_budgets_t *set) {
  if (set->shm) rt_budget_shm_lock(set->shm);
}

void rt_budget_unlock(rt_budgets_t *set) {
  if (set->shm) rt_budget_shm_unlock(set->shm);
}

/* ---- accessors ------------------------------------------------------------------------------ */

rt_budget_t *rt_budget_find(rt_budgets_t *set, const char *name) {
  for (rt_budget_t *b = set ? set->head : NULL; b; b = b->next)
    if (strcmp(b->name, name) == 0) return b;
  return NULL;
}

rt_budget_t *rt_budget_first(rt_budgets_t *set) { return set ? set->head : NULL; }
rt_budget_t *rt_budget_next(rt_budget_t *b) { return b->next; }
const char *rt_budget_name(const rt_budget_t *b) { return b->name; }
int rt_budget_retries(const rt_budget_t *b) { return b->retries; }
const char *rt_budget_used_header(const rt_budget_t *b) { return b->used_header[0] ? b->used_header : NULL; }
int rt_budget_is_banned(const rt_budget_t *b, double now) { return b->cs->banned_until > now; }
rt_breaker_state_t rt_budget_breaker(const rt_budget_t *b) { return b->breaker; }
void rt_budget_count_retry(rt_budget_t *b) { RT_BUDGET_COUNT(b, retries, 1); }

/* Seconds a learned limit must stay free of 429s before the window probes higher. */
static double clean_span(const rt_window_t *w, double now) {
  double wait = w->st->probe_wait < 1 ? 1 : w->st->probe_wait;
  return (w->fixed ? rt_window_hold(w, now) : w->per) * wait;
}

void rt_budget_probe_up(rt_budget_t *b, double now) {
  for (int i = 0; i < b->nwin; i++) {
    rt_window_t *w = &b->win[i];
    rt_window_state_t *s = w->st;
    if (s->eff <= 0 || now - s->eff_at < clean_span(w, now)) continue;
    double step = w->limit * PROBE_STEP;
    if (s->probed && s->probe_wait > 1) s->probe_wait /= 2;   /* the last probe held */
    s->probed = 1;
    s->eff += step < 1 ? 1 : step;
    s->eff_at = now;
    if (s->eff >= w->limit - RT_BUDGET_EPS) {
      s->eff = 0;
      s->probe_wait = s->probed = 0;
      rt_log_printf(b->set->rt->log, RT_LOG_INFO, NULL, "budget %s: the %s window is back at its declared limit %g",
                    b->name, w->key, w->limit);
    }
  }
}

void rt_budget_learned_resolve(rt_budget_t *b) {
  if (!(b->alerts & RT_ALERT_LEARNED)) return;
  for (int i = 0; i < b->nwin; i++)
    if (b->win[i].st->eff > 0) return;
  b->alerts &= ~RT_ALERT_LEARNED;
  rt_alert_resolve(b->set->rt, "limit_learned", b->name);
}
