/*
** runtime/cron.h - 5-field cron expressions (minute hour day-of-month month day-of-week), in UTC.
*/
#ifndef RT_CRON_H
#define RT_CRON_H

#include <stddef.h>
#include <stdint.h>

/* A parsed 5-field cron expression (minute hour day-of-month month day-of-week), UTC. */
typedef struct {
  uint64_t minute;          /* bit n set = minute n allowed */
  uint32_t hour, dom, month, dow;
  int dom_star, dow_star;   /* a field that was "*" (for the classic dom/dow OR rule) */
} rt_cron_t;

/// Parse a cron expression ("*/5 * * * *", ranges a-b, steps, lists; names jan..dec, sun..sat;
/// @hourly, @daily, @weekly, @monthly). Returns 0, or -1 with a message in err.
int rt_cron_parse(const char *expr, rt_cron_t *c, char *err, size_t errlen);
/// The first time strictly after `after` (epoch seconds) that matches c, in whole minutes; -1 when
/// none exists within five years (e.g. "0 0 30 2 *").
double rt_cron_next(const rt_cron_t *c, double after);

#endif
