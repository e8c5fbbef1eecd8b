/*
** runtime/budget_settle.c - what responses do to a budget (see budget.h): the used-weight header,
** the 429 pause and its incident, learned limits and their probing back up, bans and the
** circuit breaker.
**
** One incident: a 429 opens an incident (cs->incident_at) and pauses the budget. 429s to requests
** admitted before that moment were already on the wire: they are the same incident, never counted
** toward `ban.after_429s`. Only a 429 to a request admitted after it starts a new one.
**
** Learned limits: the first 429 of an incident teaches the exceeded window (the one the used-weight
** header corrects, else the fullest) what the server accepted: the header's count, else the weight
** admitted in the window less what the incident's 429s rejected. After `probe_wait` clean windows
** (no 429 since the limit last changed) the limit rises by a tenth of the declared one; a probe
** that draws a 429 doubles probe_wait (up to 16 windows), one that holds halves it, so a steady
** lower limit costs a probe ever more rarely while a restored one is found again quickly. The
** limit never exceeds the declared one and, at it, counts as declared again.
*/
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "runtime/alert.h"
#include "runtime/budget_impl.h"
#include "runtime/log.h"

#define PROBE_WAIT_MAX 16    /* windows */

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

/* ---- learned limits ------------------------------------------------------------------------- */

/* The window a 429 says was exceeded: the one the used-weight header counts, else the fullest. */
static int exceeded_window(rt_budget_t *b, const rt_settle_t *s, double now) {
  if (s->used_weight >= 0 && b->header_win >= 0) return b->header_win;
  int best = 0;
  double fill = -1;
  for (int i = 0; i < b->nwin; i++) {
    rt_window_advance(&b->win[i], now);
    double f = b->win[i].st->used / rt_window_capacity(&b->win[i]);
    if (f > fill + RT_BUDGET_EPS) {
      fill = f;
      best = i;
    }
  }
  return best;
}

static void report_learned(rt_budget_t *b, int i, double learned, const char *how) {
  rt_window_t *w = &b->win[i];
  char msg[320];
  snprintf(msg, sizeof msg, "budget %s: the server allows less than declared in the %s window: declared %g, learned %g (%s)",
           b->name, w->key, w->limit, learned, how);
  rt_log_printf(b->set->rt->log, RT_LOG_WARN, NULL, "%s", msg);
  rt_alert_raise(b->set->rt, "limit_learned", b->name, "warn", msg);
  b->alerts |= RT_ALERT_LEARNED;
}

/* A 429 that opened an incident: window i learns what the server accepted. Clean windows count
** from `clean_from`, the end of the pause. */
static void learn(rt_budget_t *b, int i, const rt_settle_t *s, double clean_from) {
  rt_window_t *w = &b->win[i];
  rt_window_state_t *st = w->st;
  int header = s->used_weight >= 0 && i == b->header_win;
  double accepted = header ? s->used_weight : st->used;   /* this request is uncharged already */
  b->learning = i;
  if (st->eff > 0 && clean_from > st->eff_at) st->eff_at = clean_from;   /* not a clean window */
  if (accepted < 1 || accepted >= rt_window_limit(w) - RT_BUDGET_EPS) return;
  if (st->eff > 0) {                            /* a probe above a learned limit failed */
    st->probe_wait = st->probe_wait < 1 ? 2 : st->probe_wait * 2;
    if (st->probe_wait > PROBE_WAIT_MAX) st->probe_wait = PROBE_WAIT_MAX;
  } else {
    st->probe_wait = 1;
  }
  st->eff = floor(accepted + RT_BUDGET_EPS);
  st->eff_at = clean_from;
  st->probed = 0;
  RT_BUDGET_COUNT(b, learned, 1);
  b->report_value = st->eff;
  b->report = i + 1;                           /* logged once the incident's in-flight 429s are in */
  b->report_how = header ? "the server's used-weight header" : "the weight it accepted in the window";
}

/* A 429 to a request of the same incident: it was counted as admitted, the server rejected it.
** Only a limit this incident taught is lowered further. */
static void learn_more(rt_budget_t *b, const rt_settle_t *s, double now) {
  if (b->learning < 0 || !b->report) return;
  rt_window_t *w = &b->win[b->learning];
  rt_window_state_t *st = w->st;
  if (st->eff <= 0) return;
  if (now > st->eff_at) st->eff_at = now;
  if (s->used_weight >= 0 && b->learning == b->header_win) return;   /* the header said it all */
  if (st->eff - s->weight >= 1) st->eff -= s->weight;
  if (b->report) b->report_value = st->eff;
}

/* ---- pause, ban, breaker -------------------------------------------------------------------- */

/* The shared state is changed under the file's lock; what writes to the store (the ban's row,
** alerts) happens after it is released, so no process waits for the lock while this one waits
** for SQLite's. */
typedef struct {
  int requeue;                       /* the request goes back to the queue */
  int banned;                        /* a ban began: store it, raise its alert */
  char paused[256];                  /* a pause began: the rate_limited alert's message */
} outcome_t;

static void ban(rt_budget_t *b, double now, double secs, const char *why, outcome_t *o) {
  rt_budget_common_t *cs = b->cs;
  if (now + secs > cs->banned_until) cs->banned_until = now + secs;
  snprintf(cs->ban_reason, sizeof cs->ban_reason, "%s", why);
  RT_BUDGET_COUNT(b, bans, 1);
  o->banned = 1;
}

static void announce_ban(rt_budget_t *b) {
  rt_budget_persist_ban(b);
  char when[32], msg[320];
  rt_budget_iso(b->cs->banned_until, when, sizeof when);
  snprintf(msg, sizeof msg, "budget %s banned until %s: %s", b->name, when, b->cs->ban_reason);
  rt_alert_raise(b->set->rt, "banned", b->name, "error", msg);
  b->alerts |= RT_ALERT_BANNED;
}

static void open_breaker(rt_budget_t *b, double now, const char *why) {
  b->breaker = RT_BREAKER_OPEN;
  b->open_until = now + b->breaker_cooldown;
  b->probe_out = 0;
  char msg[400];
  snprintf(msg, sizeof msg, "budget %s: circuit breaker open for %gs: %s", b->name, b->breaker_cooldown, why);
  rt_alert_raise(b->set->rt, "breaker_open", b->name, "error", msg);
  b->alerts |= RT_ALERT_BREAKER;
}

/* A 429 (under the lock). */
static void throttled(rt_budget_t *b, const rt_settle_t *s, double now, outcome_t *o) {
  rt_budget_common_t *cs = b->cs;
  RT_BUDGET_COUNT(b, throttled, 1);
  for (int i = 0; i < b->nwin; i++) {          /* the server did not count it: neither do we */
    rt_window_advance(&b->win[i], now);
    if (s->sent_at > 0) rt_window_uncharge(&b->win[i], s->weight, s->sent_at);
  }
  o->requeue = 1;
  if (s->sent_at > 0 && s->sent_at < cs->incident_at) {   /* on the wire before the incident began */
    learn_more(b, s, now);
    if (s->retry_after >= 0 && now + s->retry_after > cs->paused_until) cs->paused_until = now + s->retry_after;
    return;
  }
  if (++b->consecutive_429 >= b->ban_after) {
    char why[128];
    snprintf(why, sizeof why, "%d consecutive 429 responses to requests sent after a pause", b->consecutive_429);
    ban(b, now, s->retry_after >= 0 && s->retry_after > b->ban_default ? s->retry_after : b->ban_default, why, o);
    o->requeue = 0;
    return;
  }
  cs->incident_at = now;
  int i = exceeded_window(b, s, now);
  /* Without Retry-After, wait until the exceeded window has passed: whatever the server counted
  ** in it (a fixed or a sliding window of the same length) has then expired. */
  double pause = s->retry_after >= 0 ? s->retry_after : rt_window_hold(&b->win[i], now);
  if (s->retry_after < 0 && pause < b->backoff_base) pause = b->backoff_base;
  if (now + pause > cs->paused_until) cs->paused_until = now + pause;
  learn(b, i, s, cs->paused_until);
  snprintf(o->paused, sizeof o->paused, "budget %s: HTTP 429, every request paused for %.1fs%s", b->name, pause,
           s->retry_after >= 0 ? " (Retry-After)" : " (until the exceeded window has passed)");
}

int rt_budget_settle(rt_budget_t *b, const rt_settle_t *s) {
  double now = rt_now();
  outcome_t o = {0};
  if (s->probe) b->probe_out = 0;
  rt_budget_lock(b->set);
  if (s->used_weight >= 0 && b->header_win >= 0) {   /* the server's count wins when it is higher */
    rt_window_t *w = &b->win[b->header_win];
    rt_window_advance(w, now);
    if (s->used_weight > w->st->used + RT_BUDGET_EPS) rt_window_charge(w, s->used_weight - w->st->used);
  }
  if (s->status == 429) {
    throttled(b, s, now, &o);
  } else if (s->status == 418) {
    RT_BUDGET_COUNT(b, throttled, 1);
    ban(b, now, s->retry_after >= 0 ? s->retry_after : b->ban_default, "HTTP 418 (IP banned by the server)", &o);
  }
  rt_budget_unlock(b->set);
  if (o.banned) announce_ban(b);
  if (o.paused[0]) {
    rt_alert_raise(b->set->rt, "rate_limited", b->name, "warn", o.paused);
    b->alerts |= RT_ALERT_THROTTLED;
  }
  char msg[256];
  if (s->status == 429 || s->status == 418) {
    /* settled above */
  } else if (s->status == 0 || s->status >= 500) {
    RT_BUDGET_COUNT(b, failures, 1);
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
    if (s->sent_at >= b->cs->incident_at) {   /* the incident is over */
      b->learning = -1;
      if (b->report) report_learned(b, b->report - 1, b->report_value, b->report_how);
      b->report = 0;
    }
    if (b->breaker == RT_BREAKER_HALF_OPEN && s->probe) {
      b->breaker = RT_BREAKER_CLOSED;
      b->alerts &= ~RT_ALERT_BREAKER;
      rt_alert_resolve(b->set->rt, "breaker_open", b->name);
    }
    if ((b->alerts & RT_ALERT_THROTTLED) && now >= b->cs->paused_until) {
      b->alerts &= ~RT_ALERT_THROTTLED;
      rt_alert_resolve(b->set->rt, "rate_limited", b->name);
    }
  }
  rt_budget_pump(b);
  return o.requeue;
}
