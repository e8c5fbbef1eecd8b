/*
** tests/unit/test_budget.c - the window arithmetic of runtime/budget.c: sliding windows hold an
** admission for one window plus one slot, report when the next weight fits, and forget what has
** expired; fixed windows follow UTC days and calendar months.
*/
#include <math.h>

#include "runtime/budget.h"
#include "tests/unit/check.h"

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
  CHECK(w.used == 600);
  double at = rt_window_fits_at(&w, 1, t);
  /* everything was charged in the slot starting at t: it is released one window and one slot later */
  CHECK(at >= t + 10 && at <= t + 10 + 2 * 0.1 + 1e-6);
  rt_window_advance(&w, at - 0.001);
  CHECK(w.used == 600);
  rt_window_advance(&w, at);
  CHECK(w.used == 0);
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
  CHECK(a > t0 + 1 && a < t0 + 1.05);
  CHECK(b > t0 + 1.5 && b < t0 + 1.55);
  CHECK(isinf(rt_window_fits_at(&w, 11, t0 + 0.5)));
  rt_window_advance(&w, t0 + 100);             /* long idle: everything expired at once */
  CHECK(w.used == 0);
  CHECK(rt_window_fits_at(&w, 10, t0 + 100) == t0 + 100);
}

static void test_never_more_than_capacity_in_any_window(void) {
  /* Greedy admission at the earliest allowed moments: count what lands in every window. */
  rt_window_t w;
  rt_window_init(&w, 2, 0, 5, 5);
  double t = 10.0, times[200];
  int n = 0;
  while (n < 200) {
    rt_window_advance(&w, t);
    double at = rt_window_fits_at(&w, 1, t);
    if (at > t) {
      t = at;
      continue;
    }
    rt_window_charge(&w, 1);
    times[n++] = t;
    t += 0.013;
  }
  int worst = 0;
  for (int i = 0; i < n; i++) {
    int c = 0;
    for (int j = i; j < n && times[j] - times[i] < 2.0; j++) c++;
    if (c > worst) worst = c;
  }
  CHECK_EQ_INT(worst, 5);
  /* and the throughput stays close to the limit: 200 admissions at 5 per 2 s */
  double span = times[n - 1] - times[0];
  CHECK(span < 200.0 / 5 * 2 * 1.03);
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
  CHECK(d.used == 0);
}

static void test_priority_names(void) {
  CHECK_EQ_INT(rt_prio_parse("realtime"), RT_PRIO_REALTIME);
  CHECK_EQ_INT(rt_prio_parse("discovery"), RT_PRIO_DISCOVERY);
  CHECK_EQ_INT(rt_prio_parse("urgent"), -1);
  CHECK_STR(rt_prio_name(RT_PRIO_BACKFILL), "backfill");
}

int main(void) {
  RUN(test_sliding_admits_up_to_capacity);
  RUN(test_sliding_releases_oldest_first);
  RUN(test_never_more_than_capacity_in_any_window);
  RUN(test_fixed_day_and_month);
  RUN(test_priority_names);
  return CHECK_DONE();
}
