/*
** bindings/time.c - Lua module "rt.time". Times are UTC epoch seconds.
**
**   t          = time.now()               -- wall clock with a fraction
**   t          = time.monotonic()         -- seconds from an arbitrary start, never goes back
**   time.sleep(s)                         -- parks the task for s seconds
**   t, err, c  = time.parse_iso(s)        -- "2025-10-05T12:00:00Z", ".123", "+02:00", date only
**   s          = time.format_iso(t [, {ms=true}])   -- "2025-10-05T12:00:00Z"
**   s          = time.duration(x)         -- "5m" -> 300 (raises on a bad duration)
**   t          = time.floor(t, d)         -- start of the d-long interval holding t (UTC-aligned)
*/
#include "bindings/bindings.h"

#include <ctype.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "runtime/duration.h"
#include "runtime/timer.h"

static int rtl_time_now(lua_State *L) {
  lua_pushnumber(L, rt_now());
  return 1;
}

static int rtl_time_monotonic(lua_State *L) {
  lua_pushnumber(L, rt_monotonic());
  return 1;
}

/* time.sleep(0) in a loop still gives the loop back at each step: see rt_task_resume. */
static void on_sleep_done(void *ud) { rt_task_resume(ud, 0); }

static void cancel_sleep(void *ud) { rt_timer_cancel(ud); }

/* time.sleep(seconds) */
static int rtl_time_sleep(lua_State *L) {
  double secs = luaL_checknumber(L, 1);
  luaL_argcheck(L, secs >= 0 && secs < 1e9, 1, "seconds must be >= 0");
  rt_task_t *t = rt_task_check_can_park(L, "time.sleep");
  rt_timer_t *tm = rt_timer_once(rt_from_lua(L), secs, on_sleep_done, t);
  if (!tm) return luaL_error(L, "time.sleep: out of memory");
  rt_task_on_cancel(t, cancel_sleep, tm);
  return rt_task_park(L, "time.sleep");
}

static int digits(const char **p, int n, int *out) {
  int v = 0;
  for (int i = 0; i < n; i++, (*p)++) {
    if (!isdigit((unsigned char)**p)) return -1;
    v = v * 10 + (**p - '0');
  }
  *out = v;
  return 0;
}

/* ISO-8601 / RFC 3339: YYYY-MM-DD[(T| )hh:mm[:ss[.fff]]][Z|±hh[:]mm]. Returns -1 on bad input. */
static int parse_iso(const char *s, double *out) {
  struct tm tm = {0};
  int y, mo, d, h = 0, mi = 0, sec = 0;
  double frac = 0;
  const char *p = s;
  if (digits(&p, 4, &y) || *p++ != '-' || digits(&p, 2, &mo) || *p++ != '-' || digits(&p, 2, &d)) return -1;
  if (*p == 'T' || *p == 't' || *p == ' ') {
    p++;
    if (digits(&p, 2, &h) || *p++ != ':' || digits(&p, 2, &mi)) return -1;
    if (*p == ':') {
      p++;
      if (digits(&p, 2, &sec)) return -1;
      if (*p == '.' || *p == ',') {
        double scale = 0.1;
        p++;
        if (!isdigit((unsigned char)*p)) return -1;
        while (isdigit((unsigned char)*p)) {
          frac += (*p++ - '0') * scale;
          scale /= 10;
        }
      }
    }
  }
  int offset = 0;
  if (*p == 'Z' || *p == 'z') p++;
  else if (*p == '+' || *p == '-') {
    int sign = *p++ == '-' ? -1 : 1, oh, om = 0;
    if (digits(&p, 2, &oh)) return -1;
    if (*p == ':') p++;
    if (*p && digits(&p, 2, &om)) return -1;
    offset = sign * (oh * 3600 + om * 60);
  }
  if (*p) return -1;
  if (mo < 1 || mo > 12 || d < 1 || d > 31 || h > 23 || mi > 59 || sec > 60) return -1;
  tm.tm_year = y - 1900;
  tm.tm_mon = mo - 1;
  tm.tm_mday = d;
  tm.tm_hour = h;
  tm.tm_min = mi;
  tm.tm_sec = sec;
  time_t t = timegm(&tm);
  struct tm back;
  gmtime_r(&t, &back);
  if (back.tm_mday != d) return -1;            /* Feb 30th and the like */
  *out = (double)t - offset + frac;
  return 0;
}

/* time.parse_iso(s) -> epoch seconds (an integer when there is no fraction) */
static int rtl_time_parse_iso(lua_State *L) {
  const char *s = luaL_checkstring(L, 1);
  double t;
  if (parse_iso(s, &t) < 0) {
    lua_pushnil(L);
    lua_pushfstring(L, "time.parse_iso: not an ISO-8601 time: '%s'", s);
    lua_pushliteral(L, "EINVAL");
    return 3;
  }
  if (t == floor(t)) lua_pushinteger(L, (lua_Integer)t);
  else lua_pushnumber(L, t);
  return 1;
}

/* time.format_iso(t [, {ms=bool}]) -> "YYYY-MM-DDThh:mm:ss[.fff]Z" */
static int rtl_time_format_iso(lua_State *L) {
  static const char *const allowed[] = {"ms", NULL};
  double t = luaL_checknumber(L, 1);
  rtl_check_opts(L, 2, "time.format_iso", allowed);
  int ms = rtl_opt_boolean(L, 2, "ms", 0, "time.format_iso");
  if (!(t > -1e12 && t < 1e12)) return luaL_argerror(L, 1, "time out of range");   /* NaN too */
  /* Milliseconds are rounded, not truncated: 12:00:00.007 is stored as .006999969... */
  long long total_ms = llround(t * 1000.0);
  time_t secs = ms ? (time_t)floor((double)total_ms / 1000.0) : (time_t)floor(t);
  struct tm tm;
  char buf[40];
  if (!gmtime_r(&secs, &tm)) return luaL_argerror(L, 1, "time out of range");
  size_t n = strftime(buf, sizeof buf, "%Y-%m-%dT%H:%M:%S", &tm);
  if (ms) snprintf(buf + n, sizeof buf - n, ".%03dZ", (int)(total_ms - (long long)secs * 1000));
  else snprintf(buf + n, sizeof buf - n, "Z");
  lua_pushstring(L, buf);
  return 1;
}

/* An integer when v is integral and fits lua_Integer (a cast of inf or 1e300 is undefined). */
static void push_integral(lua_State *L, double v) {
  if (v == floor(v) && v >= -9.2e18 && v <= 9.2e18) lua_pushinteger(L, (lua_Integer)v);
  else lua_pushnumber(L, v);
}

static double check_duration(lua_State *L, int idx) {
  double d = 0;
  int rc = rt_duration_value(L, idx, &d);
  if (rc == -2) luaL_checkstring(L, idx);      /* raises: string expected */
  if (lua_type(L, idx) == LUA_TNUMBER) {
    luaL_argcheck(L, d > 0, idx, "duration must be > 0");
    return d;
  }
  if (rc < 0) luaL_argerror(L, idx, lua_pushfstring(L, "bad duration '%s'", lua_tostring(L, idx)));
  return d;
}

/* time.duration("5m") -> 300 */
static int rtl_time_duration(lua_State *L) {
  push_integral(L, check_duration(L, 1));
  return 1;
}

/* time.floor(t, "1h") -> start of the interval */
static int rtl_time_floor(lua_State *L) {
  double t = luaL_checknumber(L, 1), d = check_duration(L, 2);
  push_integral(L, floor(t / d) * d);
  return 1;
}

static const luaL_Reg time_funcs[] = {
  {"now", rtl_time_now}, {"monotonic", rtl_time_monotonic}, {"sleep", rtl_time_sleep},
  {"parse_iso", rtl_time_parse_iso}, {"format_iso", rtl_time_format_iso},
  {"duration", rtl_time_duration}, {"floor", rtl_time_floor}, {NULL, NULL}};

int luaopen_rt_time(lua_State *L) {
  luaL_newlib(L, time_funcs);
  return 1;
}
