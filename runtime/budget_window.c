/*
** runtime/budget_window.c - window arithmetic (see budget_window.h).
*/
#include "runtime/budget_window.h"

#include <math.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

/* The least margin a sliding window holds an admission beyond its length. A strict server-side
** limiter measures the window from its own receive times, which trail our admissions by loopback,
** network and scheduling delay that varies from request to request. One slot (10 ms for a 1 s
** window) is less than that jitter on a loaded machine, so a burst admitted as the previous one
** expired could land inside the server's window and draw a 429. Slots longer than this (windows
** of 10 s and more) keep their one-slot margin; windows under 100 ms get a margin of one window. */
#define HOLD_MARGIN_MIN 0.1
#define EPS 1e-9

void rt_window_init(rt_window_t *w, double per, int month, double limit, double cap) {
  memset(w, 0, sizeof *w);
  w->st = &w->own;
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
  rt_window_state_t *s = w->st;
  if (w->fixed) {
    if (s->start == 0 || now >= rt_window_fixed_end(w, s->start)) {
      double start = rt_window_fixed_start(w, now);
      if (start != s->start) {
        s->start = start;
        s->used = 0;
      }
    }
    return;
  }
  int64_t k = (int64_t)floor(now / w->slot);
  if (k <= s->cur) return;
  if (k - s->cur >= w->held) {
    memset(s->ring, 0, sizeof s->ring);
    s->used = 0;
    s->cur = k;
    return;
  }
  while (s->cur < k) {
    double *c = &s->ring[(uint64_t)++s->cur % (uint64_t)w->held];
    s->used -= *c;
    *c = 0;
  }
  if (s->used < EPS) s->used = 0;              /* no drift below zero from float sums */
}

double rt_window_limit(const rt_window_t *w) {
  return w->st->eff > 0 && w->st->eff < w->limit ? w->st->eff : w->limit;
}

double rt_window_capacity(const rt_window_t *w) {
  return w->cap * (rt_window_limit(w) / w->limit);
}

double rt_window_fits_at(const rt_window_t *w, double weight, double now) {
  const rt_window_state_t *s = w->st;
  double cap = rt_window_capacity(w);
  double need = s->used + weight - cap;
  if (need <= EPS) return now;
  if (weight > cap + EPS) {                    /* more than a learned capacity: alone in a window */
    if (weight > w->cap + EPS) return INFINITY;
    need = s->used;
    if (need <= EPS) return now;
  }
  if (w->fixed) return rt_window_fixed_end(w, s->start);
  double freed = 0;
  for (int64_t j = s->cur - w->held + 1; j <= s->cur; j++) {
    freed += s->ring[(uint64_t)j % (uint64_t)w->held];
    if (freed >= need - EPS) return (double)(j + w->held) * w->slot;
  }
  return INFINITY;
}

void rt_window_charge(rt_window_t *w, double weight) {
  rt_window_state_t *s = w->st;
  if (!w->fixed) s->ring[(uint64_t)s->cur % (uint64_t)w->held] += weight;
  s->used += weight;
}

double rt_window_hold(const rt_window_t *w, double now) {
  if (w->fixed) return rt_window_fixed_end(w, rt_window_fixed_start(w, now)) - now;
  return (double)w->held * w->slot;
}

void rt_window_uncharge(rt_window_t *w, double weight, double at) {
  rt_window_state_t *s = w->st;
  double *from = NULL;
  if (w->fixed) {
    if (rt_window_fixed_start(w, at) != s->start) return;
  } else {
    int64_t k = (int64_t)floor(at / w->slot);
    if (k > s->cur || s->cur - k >= w->held) return;
    from = &s->ring[(uint64_t)k % (uint64_t)w->held];
    if (weight > *from) weight = *from;
    *from -= weight;
  }
  s->used -= weight;
  if (s->used < EPS) s->used = 0;
}
