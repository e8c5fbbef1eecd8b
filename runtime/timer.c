/*
** runtime/timer.c - one-shot timers with a C completion (timer.h). Each timer is one malloc'd
** struct around its uv_timer_t, freed in the handle's close callback.
*/
#include "runtime/timer.h"

#include <math.h>
#include <stdlib.h>

struct rt_timer_s {
  uv_timer_t h;
  rt_timer_fn fn;
  void *ud;
};

static void on_uv_timer_closed(uv_handle_t *h) { free(h->data); }

static void on_uv_timer(uv_timer_t *h) {
  rt_timer_t *tm = h->data;
  uv_close((uv_handle_t *)h, on_uv_timer_closed);
  tm->fn(tm->ud);                              /* tm stays allocated until the close callback */
}

rt_timer_t *rt_timer_once(rt_t *rt, double seconds, rt_timer_fn fn, void *ud) {
  rt_timer_t *tm = malloc(sizeof *tm);
  if (!tm) return NULL;
  tm->fn = fn;
  tm->ud = ud;
  uv_timer_init(&rt->loop, &tm->h);
  tm->h.data = tm;
  uv_timer_start(&tm->h, on_uv_timer, (uint64_t)llround(seconds * 1000), 0);
  return tm;
}

void rt_timer_cancel(rt_timer_t *tm) {
  uv_timer_stop(&tm->h);
  uv_close((uv_handle_t *)&tm->h, on_uv_timer_closed);
}
