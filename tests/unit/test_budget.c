/*
** tests/unit/test_budget.c - the window arithmetic of runtime/budget_window.c: sliding windows hold
** an admission for one window plus a margin (one slot, at least 100 ms), report when the next
** weight fits, and forget what has expired; fixed windows follow UTC days and calendar months; a
** learned limit lowers the capacity; a rejected request's weight can be taken back.
*/
#include <math.h>

#include "runtime/budget.h"
#include "check.h"

static void test_sliding_admits_up_to_capacity(void) {
  rt_window_t w;
  rt_window_init(&w, 10, 0, 600, 600);
  CHECK(!w.fixed);
  CHECK_STR(w.key, "10s");
  double t = 1000000.0;
  rt_window_advance(&w, t);
  for (int i = 0; i < 600; i++) {
    CHECK(rt_window_fits_at(&w, 1, t) == t);
    rt_window_charge(&w, 1);
  }
  CHECK(w.st->used == 600);
  double at = rt_window_fits_at(&w, 1, t);
  /* everything was charged in the slot starting at t: it is released one window and one slot later */
  CHECK(at >= t + 10 && at <= t + 10 + 2 * 0.1 + 1e-6);
  rt_window_advance(&w, at - 0.001);
  CHECK(w.st->used == 600);
  rt_window_advance(&w, at);
  CHECK(w.st->used == 0);
}

static void test_sliding_releases_oldest_first(void) {
  rt_window_t w;
  rt_window_init(&w, 1, 0, 10, 10);
  double t0 = 500.0;
  rt_window_advance(&w, t0);
  rt_window_charge(&w, 4);                     /* at t0 */
  rt_window_advance(&w, t0 + 0.5);
  rt_window_charge(&w, 6);                     /* at t0 + 0.5 */
  double a = rt_window_fits_at(&w, 3, t0 + 0.5);   /* needs the first 4 to go */
  double b = rt_window_fits_at(&w, 7, t0 + 0.5);   /* needs both */
  CHECK(a >= t0 + 1.1 - 1e-9 && a < t0 + 1.15);   /* 1 s window: 100 ms margin, not one 10 ms slot */
  CHECK(b >= t0 + 1.6 - 1e-9 && b < t0 + 1.65);
  CHECK(isinf(rt_window_fits_at(&w, 11, t0 + 0.5)));
  rt_window_advance(&w, t0 + 100);             /* long idle: everything expired at once */
  CHECK(w.st->used == 0);
  CHECK(rt_window_fits_at(&w, 10, t0 + 100) == t0 + 100);
}

/* A burst of `cap` at t, then: when does the next one fit, measured from the end of t's slot (the
** margin is counted from there, so it holds from any moment inside the slot). */
static double next_burst_after_slot(double per, double cap, double t) {
  rt_window_t w;
  rt_window_init(&w, per, 0, cap, cap);
  rt_window_advance(&w, t);
  rt_window_charge(&w, cap);
  double at = rt_window_fits_at(&w, 1, t);
  CHECK(at - t >= per + 0.1 - 1e-9);           /* never less than the 100 ms floor */
  rt_window_advance(&w, at - 1e-4);
  CHECK(w.st->used == cap);                        /* still held just before */
  rt_window_advance(&w, at);
  CHECK(w.st->used == 0);                          /* the whole burst leaves at once */
  CHECK(rt_window_fits_at(&w, cap, at) == at);
  return at - (floor(t / w.slot) + 1) * w.slot;
}

static void test_short_window_margin_is_at_least_100ms(void) {
  /* 1 s window, 10 ms slots: the second burst goes no earlier than 1.1 s after the first, from
  ** anywhere in the first's slot */
  for (double off = 0; off < 0.01; off += 0.0025)
    CHECK_NEAR(next_burst_after_slot(1, 10, 1000.0 + off), 1.1, 1e-6);
  CHECK_NEAR(next_burst_after_slot(2, 10, 1000.013), 2.1, 1e-6);   /* 20 ms slots: 5 of them */
  CHECK_NEAR(next_burst_after_slot(3, 10, 1000.013), 3.12, 1e-6);  /* 30 ms slots: 4 of them */
}

static void test_long_window_margin_stays_one_slot(void) {
  CHECK_NEAR(next_burst_after_slot(60, 600, 600000.25), 60.6, 1e-6);      /* 1 m: 0.6 s slots */
  CHECK_NEAR(next_burst_after_slot(10, 600, 1000000.05), 10.1, 1e-6);     /* 10 s: one 100 ms slot */
  CHECK_NEAR(next_burst_after_slot(3600, 1200, 1764547200.5), 3636, 1e-6);   /* 1 h: 36 s */
}

/* Greedy admission at the earliest allowed moments: the most that lands in any window of `per`;
** the span of the n admissions in *span. */
static int greedy_worst(double per, double cap, double step, int n, double *span) {
  rt_window_t w;
  rt_window_init(&w, per, 0, cap, cap);
  double t = 10.0, times[200];
  int k = 0;
  while (k < n) {
    rt_window_advance(&w, t);
    double at = rt_window_fits_at(&w, 1, t);
    if (at > t) {
      t = at;
      continue;
    }
    rt_window_charge(&w, 1);
    times[k++] = t;
    t += step;
  }
  int worst = 0;
  for (int i = 0; i < k; i++) {
    int c = 0;
    for (int j = i; j < k && times[j] - times[i] < per; j++) c++;
    if (c > worst) worst = c;
  }
  *span = times[k - 1] - times[0];
  return worst;
}

static void test_never_more_than_capacity_in_any_window(void) {
  double span;
  CHECK_EQ_INT(greedy_worst(2, 5, 0.013, 200, &span), 5);
  /* and the throughput stays close to the limit: 200 admissions at 5 per 2 s, each held 2.1 s */
  CHECK(span < 200.0 / 5 * 2.1 * 1.03);
  CHECK_EQ_INT(greedy_worst(1, 10, 0.0007, 200, &span), 10);
  CHECK(span < 200.0 / 10 * 1.1 * 1.03);
  CHECK_EQ_INT(greedy_worst(60, 3, 0.25, 200, &span), 3);
  CHECK(span < 200.0 / 3 * 60.6 * 1.03);
}

static void test_fixed_day_and_month(void) {
  rt_window_t d, m;
  rt_window_init(&d, 86400, 0, 100, 100);
  rt_window_init(&m, 0, 1, 100, 100);
  CHECK(d.fixed && m.fixed);
  CHECK_STR(d.key, "1d");
  CHECK_STR(m.key, "month");
  double t = 1764547200.0 + 3600 * 5;          /* 2025-12-01T05:00:00Z */
  CHECK(rt_window_fixed_start(&d, t) == 1764547200.0);
  CHECK(rt_window_fixed_start(&m, t) == 1764547200.0);
  CHECK(rt_window_fixed_end(&m, 1764547200.0) == 1767225600.0);   /* 2026-01-01: year rolls over */
  rt_window_advance(&d, t);
  rt_window_charge(&d, 100);
  CHECK(rt_window_fits_at(&d, 1, t) == 1764547200.0 + 86400);
  rt_window_advance(&d, 1764547200.0 + 86400);
  CHECK(d.st->used == 0);
}

static void test_priority_names(void) {
  CHECK_EQ_INT(rt_prio_parse("realtime"), RT_PRIO_REALTIME);
  CHECK_EQ_INT(rt_prio_parse("discovery"), RT_PRIO_DISCOVERY);
  CHECK_EQ_INT(rt_prio_parse("urgent"), -1);
  CHECK_STR(rt_prio_name(RT_PRIO_BACKFILL), "backfill");
}

static void test_learned_limit_and_uncharge(void) {
  rt_window_t w;
  rt_window_init(&w, 10, 0, 100, 90);          /* 10% reserve */
  double t = 1000.0;
  rt_window_advance(&w, t);
  CHECK(rt_window_limit(&w) == 100 && rt_window_capacity(&w) == 90);
  w.st->eff = 60;                              /* learned: the reserve share still applies */
  CHECK(rt_window_limit(&w) == 60);
  CHECK(fabs(rt_window_capacity(&w) - 54) < 1e-9);
  for (int i = 0; i < 54; i++) rt_window_charge(&w, 1);
  CHECK(rt_window_fits_at(&w, 1, t) > t);      /* full at the learned capacity */
  w.st->eff = 150;                             /* never above the declared limit */
  CHECK(rt_window_limit(&w) == 100);
  w.st->eff = 60;
  rt_window_advance(&w, t + 0.25);
  rt_window_charge(&w, 1);
  rt_window_uncharge(&w, 1, t + 0.25);         /* the server rejected it */
  CHECK(w.st->used == 54);
  CHECK(rt_window_fits_at(&w, 1, t + 0.25) > t + 0.25);
  rt_window_uncharge(&w, 5, t);                /* earlier admissions still held */
  CHECK(w.st->used == 49);
  CHECK(rt_window_fits_at(&w, 1, t + 0.25) == t + 0.25);
  rt_window_advance(&w, t + 50);
  rt_window_uncharge(&w, 1, t);                /* expired long ago: nothing to take back */
  CHECK(w.st->used == 0);
  CHECK(rt_window_fits_at(&w, 54, t + 50) == t + 50);
  CHECK(rt_window_fits_at(&w, 80, t + 50) == t + 50);   /* above the learned, within the declared */
}

int main(void) {
  RUN(test_sliding_admits_up_to_capacity);
  RUN(test_sliding_releases_oldest_first);
  RUN(test_short_window_margin_is_at_least_100ms);
  RUN(test_long_window_margin_stays_one_slot);
  RUN(test_never_more_than_capacity_in_any_window);
  RUN(test_fixed_day_and_month);
  RUN(test_priority_names);
  RUN(test_learned_limit_and_uncharge);
  return CHECK_DONE();
}
