/*
** runtime/budget_queue.c - the admission queue of a budget (see budget.h): flows served round
** robin within a priority, admission against every window, the pause, the ban and the breaker's
** probe, and the pump that admits waiting requests when they fit.
**
** Windows may be shared with other processes: every check-and-charge happens under the shared
** file's lock, and a waiting queue re-checks when its timer fires (another process may have used
** the room it waited for; it then waits again).
*/
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "runtime/alert.h"
#include "runtime/budget_impl.h"

static void on_timer(uv_timer_t *t) { rt_budget_pump(t->data); }

void rt_budget_wake(rt_budget_t *b) {
  if (!b->pumping) uv_timer_start(&b->timer, on_timer, 0, 0);
}

/* ---- flows ---------------------------------------------------------------------------------- */

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

int rt_budget_waiting(rt_budget_t *b, rt_prio_t p) {
  int n = 0;
  rt_flow_t *f = b->ring[p];
  if (f) {
    rt_flow_t *g = f;
    do {
      for (rt_admit_t *a = g->head; a; a = a->next) n++;
      g = g->ring_next;
    } while (g != f);
  }
  return n;
}

/* ---- admission ------------------------------------------------------------------------------ */

/* The earliest time every window and the pause allow `weight` (call with the lock held). */
static double fits_at(rt_budget_t *b, double weight, double now) {
  rt_budget_probe_up(b, now);
  double t = b->cs->paused_until > now ? b->cs->paused_until : now;
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
  RT_BUDGET_COUNT(b, requests, 1);
  RT_BUDGET_COUNT(b, weight, a->weight);
  a->admitted_at = now;
  a->probe = 0;
  if (b->breaker == RT_BREAKER_HALF_OPEN) {
    a->probe = 1;
    b->probe_out = 1;
  }
}

/* Why nothing may go now (ban, open breaker), as code/msg; 0 when traffic may flow. */
static int blocked(rt_budget_t *b, const char **code, char *msg, size_t n, double now) {
  char when[32];
  if (b->cs->banned_until > now) {
    rt_budget_iso(b->cs->banned_until, when, sizeof when);
    *code = "BANNED";
    snprintf(msg, n, "budget %s: banned until %s (%s)", b->name, when, b->cs->ban_reason);
    return 1;
  }
  if (b->breaker == RT_BREAKER_OPEN) {
    if (now < b->open_until) {
      *code = "BREAKER_OPEN";
      snprintf(msg, n, "budget %s: circuit breaker open for %.0fs more after %d failures", b->name,
               ceil(b->open_until - now), b->failures);
      return 1;
    }
    b->breaker = RT_BREAKER_HALF_OPEN;         /* cooldown over: the next request is the probe */
    b->probe_out = 0;
  }
  return 0;
}

const char *rt_budget_blocked(rt_budget_t *b, char *msg, size_t n) {
  const char *code = NULL;
  return blocked(b, &code, msg, n, rt_now()) ? code : NULL;
}

static void arm(rt_budget_t *b, double at, double now) {
  uint64_t ms = rt_ms(ceil((at - now) * 1000) / 1000);   /* guarded cast: NaN, huge `at` */
  uv_timer_start(&b->timer, on_timer, ms < 1 ? 1 : ms, 0);
}

void rt_budget_reject_all(rt_budget_t *b, const char *code, const char *msg) {
  rt_admit_t *a;
  while ((a = peek(b))) {
    dequeue(b, a, 0);
    a->code = code;
    snprintf(a->errmsg, sizeof a->errmsg, "%s", msg);
    RT_BUDGET_COUNT(b, rejected, 1);
    a->fn(a, -1);
  }
}

void rt_budget_pump(rt_budget_t *b) {
  if (b->pumping) return;
  b->pumping = 1;
  double now = rt_now();
  uv_timer_stop(&b->timer);
  if ((b->alerts & RT_ALERT_BANNED) && now >= b->cs->banned_until) {
    b->alerts &= ~RT_ALERT_BANNED;
    rt_alert_resolve(b->set->rt, "banned", b->name);
  }
  const char *code;
  char msg[320];
  if (peek(b) && blocked(b, &code, msg, sizeof msg, now)) rt_budget_reject_all(b, code, msg);
  rt_admit_t *a;
  while ((a = peek(b))) {
    if (b->breaker == RT_BREAKER_HALF_OPEN && b->probe_out) break;   /* wait for the probe */
    rt_budget_lock(b->set);
    double t = fits_at(b, a->weight, now);
    if (t <= now) take(b, a, now);
    rt_budget_unlock(b->set);
    if (t > now) {
      arm(b, t, now);
      break;
    }
    dequeue(b, a, 1);
    double waited = now - a->queued_at;
    RT_BUDGET_COUNT(b, wait_seconds, waited);
    if (waited > b->wait_max) b->wait_max = waited;
    a->fn(a, 0);
  }
  if (!peek(b)) {                              /* nothing waits: wake for a ban to end */
    if (b->alerts & RT_ALERT_BANNED && b->cs->banned_until > now) arm(b, b->cs->banned_until, now);
  }
  rt_budget_learned_resolve(b);
  b->pumping = 0;
}

static int admit(rt_budget_t *b, rt_admit_t *a, int front) {
  double now = rt_now();
  a->code = NULL;
  a->errmsg[0] = 0;
  a->probe = 0;
  a->flow = NULL;
  for (int i = 0; i < b->nwin; i++) {
    if (a->weight > b->win[i].cap + RT_BUDGET_EPS) {
      a->code = "EINVAL";
      snprintf(a->errmsg, sizeof a->errmsg, "budget %s: weight %g exceeds the %s window's capacity %g",
               b->name, a->weight, b->win[i].key, b->win[i].cap);
      return -1;
    }
  }
  if (blocked(b, &a->code, a->errmsg, sizeof a->errmsg, now)) {
    RT_BUDGET_COUNT(b, rejected, 1);
    return -1;
  }
  if (!front && !waiting_at_or_above(b, a->prio) && !(b->breaker == RT_BREAKER_HALF_OPEN && b->probe_out)) {
    rt_budget_lock(b->set);
    int now_ok = fits_at(b, a->weight, now) <= now;
    if (now_ok) take(b, a, now);
    rt_budget_unlock(b->set);
    if (now_ok) {
      rt_budget_learned_resolve(b);
      return 0;
    }
  }
  if (!front && b->queued >= b->queue_max) {
    a->code = "QUEUE_FULL";
    snprintf(a->errmsg, sizeof a->errmsg, "budget %s: queue full (%d waiting)", b->name, b->queued);
    RT_BUDGET_COUNT(b, rejected, 1);
    return -1;
  }
  if (enqueue(b, a, front) < 0) {
    a->code = "ENOMEM";
    snprintf(a->errmsg, sizeof a->errmsg, "budget %s: out of memory", b->name);
    return -1;
  }
  a->queued_at = now;
  if (!front) RT_BUDGET_COUNT(b, waits, 1);
  rt_budget_wake(b);                           /* pump from the loop */
  return 1;
}

int rt_budget_admit(rt_budget_t *b, rt_admit_t *a) { return admit(b, a, 0); }
int rt_budget_readmit(rt_budget_t *b, rt_admit_t *a) { return admit(b, a, 1); }

void rt_budget_cancel(rt_budget_t *b, rt_admit_t *a) {
  if (a->flow) dequeue(b, a, 0);
}

void rt_budget_release_probe(rt_budget_t *b) {
  b->probe_out = 0;
  rt_budget_wake(b);
}
