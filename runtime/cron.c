/*
** runtime/cron.c - 5-field cron expressions, evaluated in UTC.
*/
#include "runtime/cron.h"

#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

static const char *const month_names[] = {"jan", "feb", "mar", "apr", "may", "jun",
                                          "jul", "aug", "sep", "oct", "nov", "dec"};
static const char *const dow_names[] = {"sun", "mon", "tue", "wed", "thu", "fri", "sat"};

/* One number or name at *p. Returns -1 when there is none. */
static int parse_atom(const char **p, const char *const *names, int nnames, int name_base) {
  const char *s = *p;
  if (isdigit((unsigned char)*s)) {
    long v = strtol(s, (char **)p, 10);
    return v > 1000 ? -1 : (int)v;
  }
  for (int i = 0; names && i < nnames; i++)
    if (strncasecmp(s, names[i], 3) == 0) {
      *p = s + 3;
      return i + name_base;
    }
  return -1;
}

/* A field: "*", "*\/n", "a", "a-b", "a-b/n", lists of those. Sets bits lo..hi in *bits. */
static int parse_field(const char *f, int lo, int hi, const char *const *names, int nnames,
                       int name_base, uint64_t *bits, int *star) {
  const char *p = f;
  *bits = 0;
  *star = (strcmp(f, "*") == 0);
  for (;;) {
    int a, b, step = 1, any = (*p == '*');
    if (any) {
      a = lo;
      b = hi;
      p++;
    } else {
      if ((a = parse_atom(&p, names, nnames, name_base)) < 0) return -1;
      b = a;
      if (*p == '-') {
        p++;
        if ((b = parse_atom(&p, names, nnames, name_base)) < 0) return -1;
      }
    }
    if (*p == '/') {
      p++;
      if (!isdigit((unsigned char)*p)) return -1;
      step = (int)strtol(p, (char **)&p, 10);
      if (step <= 0) return -1;
      if (a == b && !any) b = hi;              /* "5/15" means 5-hi/15 */
    }
    if (a < lo || b > hi || a > b) return -1;
    for (int v = a; v <= b; v += step) *bits |= 1ull << v;
    if (*p == ',') {
      p++;
      continue;
    }
    return *p == 0 ? 0 : -1;
  }
}

int rt_cron_parse(const char *expr, rt_cron_t *c, char *err, size_t errlen) {
  static const struct { const char *name, *expr; } macros[] = {
    {"@hourly", "0 * * * *"}, {"@daily", "0 0 * * *"}, {"@midnight", "0 0 * * *"},
    {"@weekly", "0 0 * * 0"}, {"@monthly", "0 0 1 * *"}, {"@yearly", "0 0 1 1 *"},
  };
  char buf[256], *fields[6], *save = NULL;
  int n = 0;
  for (size_t i = 0; i < sizeof macros / sizeof *macros; i++)
    if (strcmp(expr, macros[i].name) == 0) expr = macros[i].expr;
  if (strlen(expr) >= sizeof buf) {
    snprintf(err, errlen, "cron expression too long");
    return -1;
  }
  strcpy(buf, expr);
  for (char *tok = strtok_r(buf, " \t", &save); tok; tok = strtok_r(NULL, " \t", &save)) {
    if (n == 5) {
      n++;
      break;
    }
    fields[n++] = tok;
  }
  if (n != 5) {
    snprintf(err, errlen, "cron expression '%s' needs 5 fields (minute hour day month weekday)", expr);
    return -1;
  }
  static const char *const what[] = {"minute", "hour", "day of month", "month", "day of week"};
  static const int lo[] = {0, 0, 1, 1, 0}, hi[] = {59, 23, 31, 12, 7};
  uint64_t bits[5];
  int star[5];
  for (int i = 0; i < 5; i++) {
    const char *const *names = i == 3 ? month_names : i == 4 ? dow_names : NULL;
    int nn = i == 3 ? 12 : i == 4 ? 7 : 0, base = i == 3 ? 1 : 0;
    if (parse_field(fields[i], lo[i], hi[i], names, nn, base, &bits[i], &star[i]) < 0) {
      snprintf(err, errlen, "cron expression '%s': bad %s field '%s'", expr, what[i], fields[i]);
      return -1;
    }
  }
  if (bits[4] & (1ull << 7)) bits[4] = (bits[4] | 1) & 0x7f;
  c->minute = bits[0];
  c->hour = (uint32_t)bits[1];
  c->dom = (uint32_t)bits[2];
  c->month = (uint32_t)bits[3];
  c->dow = (uint32_t)bits[4];
  c->dom_star = star[2];
  c->dow_star = star[4];
  return 0;
}

/* Day matches: with both day fields restricted, either may match (Vixie cron). */
static int day_matches(const rt_cron_t *c, const struct tm *tm) {
  int dom = (c->dom >> tm->tm_mday) & 1, dow = (c->dow >> tm->tm_wday) & 1;
  if (c->dom_star || c->dow_star) return dom && dow;
  return dom || dow;
}

double rt_cron_next(const rt_cron_t *c, double after) {
  time_t t = (time_t)after;
  t = t - (t % 60) + 60;                       /* next whole minute strictly after `after` */
  time_t limit = t + (time_t)5 * 366 * 86400;
  struct tm tm;
  while (t < limit) {
    gmtime_r(&t, &tm);
    if (!((c->month >> (tm.tm_mon + 1)) & 1)) {      /* skip to the 1st of next month */
      tm.tm_mon++;
      tm.tm_mday = 1;
      tm.tm_hour = tm.tm_min = tm.tm_sec = 0;
      t = timegm(&tm);
      continue;
    }
    if (!day_matches(c, &tm)) {
      t += 86400 - (tm.tm_hour * 3600 + tm.tm_min * 60);
      continue;
    }
    if (!((c->hour >> tm.tm_hour) & 1)) {
      t += 3600 - tm.tm_min * 60;
      continue;
    }
    if (!((c->minute >> tm.tm_min) & 1)) {
      t += 60;
      continue;
    }
    return (double)t;
  }
  return -1;
}
