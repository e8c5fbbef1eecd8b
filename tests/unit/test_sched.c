/*
** tests/unit/test_sched.c - runtime/cron.c (durations, cron expressions) and runtime/sched.c on a
** real libuv loop with a bare Lua state (rt_vm_open with no modules). Also exercises task parking
** (rt_task_check_can_park / rt_task_on_cancel / rt_task_park) through a tiny C `park(seconds)`.
** The wall clock can be shifted (gettimeofday below) to test ticks near a minute boundary.
*/
#include "runtime/cron.h"
#include "runtime/duration.h"
#include "runtime/sched.h"

#include <lauxlib.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

#include "check.h"
#include "runtime/log.h"
#include "runtime/store.h"
#include "runtime/task.h"
#include "runtime/vm.h"

/* The wall clock the runtime sees (rt_now() reads gettimeofday) is the real one plus clock_offset:
** this definition takes the place of libc's in this executable, so a test can put "now" just before
** a minute boundary without waiting for one. libuv's loop time (CLOCK_MONOTONIC) is untouched. */
static double clock_offset;
int gettimeofday(struct timeval *restrict tv, void *restrict tz) {
  struct timespec ts;
  (void)tz;
  clock_gettime(CLOCK_REALTIME, &ts);
  double t = (double)ts.tv_sec + ts.tv_nsec / 1e9 + clock_offset;
  tv->tv_sec = (time_t)t;
  tv->tv_usec = (suseconds_t)((t - (double)tv->tv_sec) * 1e6);
  return 0;
}

/* Epoch seconds of a UTC date and time. */
static double utc(int y, int mo, int d, int h, int mi) {
  struct tm tm = {0};
  tm.tm_year = y - 1900;
  tm.tm_mon = mo - 1;
  tm.tm_mday = d;
  tm.tm_hour = h;
  tm.tm_min = mi;
  return (double)timegm(&tm);
}

/* ---- durations ------------------------------------------------------------------------------ */

/* Every unit, a bare number and leading blanks parse; zero, negatives, junk and NaN do not. */
static void test_parse_duration(void) {
  static const struct { const char *s; double want; } good[] = {
    {"250ms", 0.25}, {"30s", 30}, {"5m", 300}, {"1h", 3600}, {"1d", 86400}, {"2w", 14 * 86400},
    {"90", 90}, {" 5m", 300}, {"1.5s", 1.5}, {"0.5", 0.5},
  };
  for (size_t i = 0; i < sizeof good / sizeof *good; i++) {
    double d = -1;
    if (!CHECK_EQ_INT(rt_duration_parse(good[i].s, &d), 0)) fprintf(stderr, "  for \"%s\"\n", good[i].s);
    CHECK_NEAR(d, good[i].want, 1e-9);
  }
  static const char *const bad[] = {"", "0", "-1s", "5x", "m", "NaN", "nan", "inf", "0s", "-5",
                                    "5 mins", "ms", "1e30"};
  for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
    double d = 12345;
    if (!CHECK_EQ_INT(rt_duration_parse(bad[i], &d), -1)) fprintf(stderr, "  for \"%s\"\n", bad[i]);
    CHECK_NEAR(d, 12345, 0);                           /* untouched on failure */
  }
  double d;
  CHECK_EQ_INT(rt_duration_parse(NULL, &d), -1);
}

/* ---- cron ----------------------------------------------------------------------------------- */

/* next(expr, after) == want, with a readable failure. */
static void check_next(const char *expr, double after, double want, int line) {
  rt_cron_t c;
  char err[256] = "";
  if (!check_report_(rt_cron_parse(expr, &c, err, sizeof err) == 0, __FILE__, line, "cron parses")) {
    fprintf(stderr, "  '%s': %s\n", expr, err);
    return;
  }
  double got = rt_cron_next(&c, after);
  char msg[256];
  snprintf(msg, sizeof msg, "rt_cron_next('%s', %.0f) == %.0f (got %.0f)", expr, after, want, got);
  check_report_(got == want, __FILE__, line, msg);
}
#define CHECK_NEXT(expr, after, want) check_next(expr, after, want, __LINE__)

/* The helper and the expectations below agree on the calendar. */
static void test_calendar_sanity(void) {
  CHECK_EQ_INT((long long)utc(2025, 1, 1, 0, 0), 1735689600LL);
  time_t t = (time_t)utc(2025, 1, 3, 0, 0);
  struct tm tm;
  gmtime_r(&t, &tm);
  CHECK_EQ_INT(tm.tm_wday, 5);                         /* 2025-01-03 is a Friday */
}

/* "*\/5" gives the next multiple of five minutes, strictly after `after`. */
static void test_cron_every_5_minutes(void) {
  double base = utc(2025, 1, 1, 0, 0);
  CHECK_NEXT("*/5 * * * *", base + 3 * 60 + 20, base + 5 * 60);
  CHECK_NEXT("*/5 * * * *", base + 5 * 60, base + 10 * 60);          /* on the dot: the next one */
  CHECK_NEXT("*/5 * * * *", base + 5 * 60 - 0.5, base + 5 * 60);
  CHECK_NEXT("*/5 * * * *", utc(2025, 1, 1, 23, 58), utc(2025, 1, 2, 0, 0));
  CHECK_NEXT("* * * * *", base + 59.9, base + 60);
}

/* "0 0 * * *" is the next UTC midnight, also across a month and a year end. */
static void test_cron_midnight(void) {
  CHECK_NEXT("0 0 * * *", utc(2025, 3, 10, 13, 45), utc(2025, 3, 11, 0, 0));
  CHECK_NEXT("0 0 * * *", utc(2025, 3, 11, 0, 0), utc(2025, 3, 12, 0, 0));
  CHECK_NEXT("0 0 * * *", utc(2025, 1, 31, 12, 0), utc(2025, 2, 1, 0, 0));
  CHECK_NEXT("0 0 * * *", utc(2025, 12, 31, 23, 59), utc(2026, 1, 1, 0, 0));
}

/* Weekday ranges skip the weekend. */
static void test_cron_weekdays(void) {
  const char *e = "30 9 * * mon-fri";
  CHECK_NEXT(e, utc(2025, 1, 3, 8, 0), utc(2025, 1, 3, 9, 30));      /* Friday, before 9:30 */
  CHECK_NEXT(e, utc(2025, 1, 3, 10, 0), utc(2025, 1, 6, 9, 30));     /* Friday after: Monday */
  CHECK_NEXT(e, utc(2025, 1, 4, 12, 0), utc(2025, 1, 6, 9, 30));     /* Saturday */
  CHECK_NEXT("30 9 * * 1-5", utc(2025, 1, 3, 10, 0), utc(2025, 1, 6, 9, 30));
}

/* Monthly, leap day (found three years ahead) and an impossible date (-1). */
static void test_cron_month_and_leap(void) {
  CHECK_NEXT("0 0 1 * *", utc(2025, 1, 15, 0, 0), utc(2025, 2, 1, 0, 0));
  CHECK_NEXT("0 0 1 * *", utc(2025, 12, 15, 0, 0), utc(2026, 1, 1, 0, 0));
  CHECK_NEXT("0 0 1 jan,jul *", utc(2025, 2, 1, 0, 0), utc(2025, 7, 1, 0, 0));
  CHECK_NEXT("0 0 31 * *", utc(2025, 4, 1, 0, 0), utc(2025, 5, 31, 0, 0));   /* April has 30 */
  CHECK_NEXT("0 0 29 2 *", utc(2025, 1, 1, 0, 0), utc(2028, 2, 29, 0, 0));
  CHECK_NEXT("0 0 29 2 *", utc(2028, 2, 29, 0, 0), utc(2032, 2, 29, 0, 0));
  CHECK_NEXT("0 0 30 2 *", utc(2025, 1, 1, 0, 0), -1);
  CHECK_NEXT("0 0 31 4,6,9,11 *", utc(2025, 1, 1, 0, 0), -1);
}

/* The @ macros. */
static void test_cron_macros(void) {
  CHECK_NEXT("@hourly", utc(2025, 3, 10, 10, 15), utc(2025, 3, 10, 11, 0));
  CHECK_NEXT("@daily", utc(2025, 3, 10, 10, 15), utc(2025, 3, 11, 0, 0));
  CHECK_NEXT("@midnight", utc(2025, 3, 10, 10, 15), utc(2025, 3, 11, 0, 0));
  CHECK_NEXT("@weekly", utc(2025, 1, 1, 0, 0), utc(2025, 1, 5, 0, 0));      /* Sunday */
  CHECK_NEXT("@monthly", utc(2025, 3, 10, 10, 15), utc(2025, 4, 1, 0, 0));
  CHECK_NEXT("@yearly", utc(2025, 3, 10, 10, 15), utc(2026, 1, 1, 0, 0));
}

/* Day of week 7 is Sunday, like 0 and "sun"; ranges may end at 7. */
static void test_cron_dow_7(void) {
  double wed = utc(2025, 1, 1, 0, 0), sun = utc(2025, 1, 5, 0, 0);
  CHECK_NEXT("0 0 * * 7", wed, sun);
  CHECK_NEXT("0 0 * * 0", wed, sun);
  CHECK_NEXT("0 0 * * sun", wed, sun);
  CHECK_NEXT("0 0 * * SUN", wed, sun);
  CHECK_NEXT("0 0 * * 6-7", wed, utc(2025, 1, 4, 0, 0));
  CHECK_NEXT("0 0 * * 6-7", utc(2025, 1, 4, 0, 0), sun);
  rt_cron_t a, b;
  char err[128];
  rt_cron_parse("0 0 * * 7", &a, err, sizeof err);
  rt_cron_parse("0 0 * * 0", &b, err, sizeof err);
  CHECK_EQ_INT(a.dow, b.dow);
}

/* Both day fields restricted: either may match (classic cron); one of them "*": both must. */
static void test_cron_dom_dow_or(void) {
  const char *e = "0 0 13 * fri";
  CHECK_NEXT(e, utc(2025, 1, 1, 0, 0), utc(2025, 1, 3, 0, 0));       /* Friday the 3rd */
  CHECK_NEXT(e, utc(2025, 1, 3, 0, 0), utc(2025, 1, 10, 0, 0));      /* Friday the 10th */
  CHECK_NEXT(e, utc(2025, 1, 10, 0, 0), utc(2025, 1, 13, 0, 0));     /* Monday the 13th */
  CHECK_NEXT(e, utc(2025, 1, 13, 0, 0), utc(2025, 1, 17, 0, 0));
  CHECK_NEXT("0 0 13 * *", utc(2025, 1, 1, 0, 0), utc(2025, 1, 13, 0, 0));
  CHECK_NEXT("0 0 * * fri", utc(2025, 1, 10, 0, 0), utc(2025, 1, 17, 0, 0));
}

/* Lists, ranges with steps, "a/n" meaning a-max/n. */
static void test_cron_lists_and_steps(void) {
  const char *e = "0,30 8-10/2 * * *";
  CHECK_NEXT(e, utc(2025, 1, 1, 7, 0), utc(2025, 1, 1, 8, 0));
  CHECK_NEXT(e, utc(2025, 1, 1, 8, 0), utc(2025, 1, 1, 8, 30));
  CHECK_NEXT(e, utc(2025, 1, 1, 8, 30), utc(2025, 1, 1, 10, 0));
  CHECK_NEXT(e, utc(2025, 1, 1, 10, 30), utc(2025, 1, 2, 8, 0));
  CHECK_NEXT("50/5 * * * *", utc(2025, 1, 1, 0, 51), utc(2025, 1, 1, 0, 55));
  CHECK_NEXT("50/5 * * * *", utc(2025, 1, 1, 0, 55), utc(2025, 1, 1, 1, 50));
}

/* Bad expressions fail with a message that names the field (or the field count). */
static void test_cron_errors(void) {
  static const struct { const char *expr, *want; } bad[] = {
    {"* * * *", "5 fields"},           {"* * * * * *", "5 fields"},   {"", "5 fields"},
    {"61 * * * *", "minute"},          {"*/0 * * * *", "minute"},     {"a b c d e", "minute"},
    {"5- * * * *", "minute"},          {"10-5 * * * *", "minute"},    {"1,,2 * * * *", "minute"},
    {"* 24 * * *", "hour"},            {"* * 0 * *", "day of month"}, {"* * 32 * *", "day of month"},
    {"* * * 13 *", "month"},           {"* * * foo *", "month"},      {"* * * * 8", "day of week"},
    {"* * * * mon-", "day of week"},   {"@often", "5 fields"},
  };
  for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
    rt_cron_t c;
    char err[256] = "";
    if (!CHECK_EQ_INT(rt_cron_parse(bad[i].expr, &c, err, sizeof err), -1))
      fprintf(stderr, "  accepted '%s'\n", bad[i].expr);
    CHECK_HAS(err, bad[i].want);
  }
  rt_cron_t c;
  char err[256] = "";
  rt_cron_parse("61 * * * *", &c, err, sizeof err);
  CHECK_HAS(err, "'61'");                              /* and quotes the offending text */
}

/* ---- the scheduler on a real loop ----------------------------------------------------------- */

static rt_t rt;
static int ref_baseline;

static int rt_setup(void) {
  char err[256] = "";
  memset(&rt, 0, sizeof rt);
  if (!CHECK_EQ_INT(rt_init(&rt, err, sizeof err), 0) || !CHECK_EQ_INT(rt_vm_open(&rt, NULL), 0) ||
      !CHECK_EQ_INT(rt_sched_init(&rt), 0)) {
    fprintf(stderr, "  %s\n", err);
    return -1;
  }
  rt_log_set_level(rt.log, RT_LOG_WARN);               /* keep "run finished" lines out */
  ref_baseline = rt.refs;
  return 0;
}

/* After the loop drained: every ref released, no task left, the scheduler freed. */
static void rt_teardown(void) {
  CHECK_EQ_INT(rt.refs, ref_baseline);
  CHECK_EQ_INT(rt.tasks.live, 0);
  CHECK(rt.tasks.head == NULL);
  CHECK(rt.sched == NULL);
  rt_close(&rt);
  CHECK_EQ_INT(rt.refs, ref_baseline);
  CHECK(rt.L == NULL);
  CHECK(rt.loop.data == NULL);
  CHECK_EQ_INT(rt.tasks.live, 0);
}

/* Push a Lua function compiled from src on rt.L. */
static void push_fn(const char *src) {
  if (luaL_loadstring(rt.L, src) != LUA_OK) {
    CHECK(!"lua chunk compiles");
    fprintf(stderr, "  %s\n", lua_tostring(rt.L, -1));
  }
}

static lua_Integer global_int(const char *name) {
  lua_getglobal(rt.L, name);
  lua_Integer v = lua_tointeger(rt.L, -1);
  lua_pop(rt.L, 1);
  return v;
}

static int put(const char *name, double every, const char *cron, double first_delay, const char *src) {
  char err[256] = "";
  rt_sched_spec_t spec = {name, every, cron, first_delay, 0};
  push_fn(src);
  int rc = rt_sched_put(&rt, rt.L, &spec, err, sizeof err);
  if (!CHECK_EQ_INT(rc, 0)) fprintf(stderr, "  rt_sched_put(%s): %s\n", name, err);
  return rc;
}

/* A one-shot timer that calls rt_stop after `ms` (and closes itself). */
static uv_timer_t stop_timer;
static void (*before_stop)(void);
static void on_stop_timer(uv_timer_t *t) {
  if (before_stop) before_stop();
  rt_stop(&rt, 0);
  uv_close((uv_handle_t *)t, NULL);
}
static void run_for(uint64_t ms, void (*hook)(void)) {
  before_stop = hook;
  uv_timer_init(&rt.loop, &stop_timer);
  uv_timer_start(&stop_timer, on_stop_timer, ms, 0);
  CHECK_EQ_INT(rt_run(&rt), 0);
}

/* rt_sched_each into a copy (names are copied: entries go away at stop). */
static rt_sched_info_t seen;
static char seen_name[64], seen_status[32];
static int find_cb(const rt_sched_info_t *info, void *ud) {
  if (strcmp(info->name, (const char *)ud) != 0) return 0;
  seen = *info;
  snprintf(seen_name, sizeof seen_name, "%s", info->name);
  snprintf(seen_status, sizeof seen_status, "%s", info->last_status);
  seen.name = seen_name;
  seen.last_status = seen_status;
  return 1;
}
static int lookup(const char *name) {
  memset(&seen, 0, sizeof seen);
  rt_sched_each(&rt, find_cb, (void *)name);
  return seen.name != NULL;
}

/* now() for Lua: the runtime's wall clock (rt_now). */
static int l_now(lua_State *L) {
  lua_pushnumber(L, rt_now());
  return 1;
}

/* An interval entry runs its function as a task every 50 ms: about six runs in 0.3 s, each recorded
** in the run history; at stop every ref, task and handle is released. */
static void snapshot_tick(void) { lookup("tick"); }
static void test_sched_interval_runs(void) {
  if (rt_setup() < 0) return;
  char err[256];
  rt.store = rt_store_open(":memory:", 100, err, sizeof err);
  CHECK(rt.store != NULL);
  rt.shutdown_grace = 1;
  put("tick", 0.05, NULL, 0, "count = (count or 0) + 1");
  CHECK_EQ_INT(rt.refs, ref_baseline + 1);             /* the entry's function */
  run_for(300, snapshot_tick);
  lua_Integer n = global_int("count");
  if (!CHECK(n >= 3 && n <= 8)) fprintf(stderr, "  count = %lld\n", (long long)n);
  CHECK_STR(seen.name, "tick");
  CHECK_NEAR(seen.every, 0.05, 1e-12);
  CHECK(seen.runs >= 3);
  CHECK_EQ_INT(seen.failures, 0);
  CHECK_STR(seen.last_status, "ok");
  sqlite3_stmt *st;
  sqlite3_prepare_v2(rt_store_db(rt.store), "SELECT count(*), sum(status = 'ok') FROM runs WHERE script = 'tick'",
                     -1, &st, NULL);
  CHECK_EQ_INT(sqlite3_step(st), SQLITE_ROW);
  CHECK_EQ_INT(sqlite3_column_int(st, 0), n);          /* one history row per run, all ok */
  CHECK_EQ_INT(sqlite3_column_int(st, 1), n);
  sqlite3_finalize(st);
  rt_teardown();
}

/* A tick that finds the loop's cached time stale (here: 100 ms of work before the entry was put,
** as when the daemon loads its scripts before uv_run) wakes before the entry is due; it must
** neither run early nor run twice. Due at put+0.2 s: exactly one run, not before, by put+0.3 s. */
static void test_sched_interval_early_wake(void) {
  if (rt_setup() < 0) return;
  lua_register(rt.L, "now", l_now);
  rt.shutdown_grace = 1;
  usleep(100 * 1000);                                  /* uv_now() is now 100 ms behind */
  double put_at = rt_now();
  put("late", 10, NULL, 0.2, "n = (n or 0) + 1; at = at or now()");
  run_for(400, NULL);                                  /* 400 ms of loop time = put+0.3 s real */
  lua_Integer n = global_int("n");
  lua_getglobal(rt.L, "at");
  double at = lua_tonumber(rt.L, -1);
  lua_pop(rt.L, 1);
  if (!CHECK_EQ_INT(n, 1)) fprintf(stderr, "  ran %lld times\n", (long long)n);
  if (!CHECK(at >= put_at + 0.2 - 0.003)) fprintf(stderr, "  first run %.3f s after put\n", at - put_at);
  rt_teardown();
}

/* The same for a cron entry: with the wall clock 0.2 s before a minute boundary and the loop time
** 100 ms stale, the "* * * * *" timer fires 0.1 s before the minute. It must run once, at the minute
** (not early, then again at the minute). */
static void test_sched_cron_early_wake(void) {
  if (rt_setup() < 0) return;
  lua_register(rt.L, "now", l_now);
  rt.shutdown_grace = 1;
  usleep(100 * 1000);                                  /* uv_now() is now 100 ms behind */
  clock_offset = 0;
  double real = rt_now(), boundary = floor(real / 60) * 60 + 60;
  clock_offset = boundary - 0.2 - real;                /* rt_now() == boundary - 0.2 */
  put("minutely", 0, "* * * * *", 0, "n = (n or 0) + 1; at = at or now()");
  CHECK(lookup("minutely"));
  CHECK_NEAR(seen.next_due, boundary, 1e-6);
  run_for(400, NULL);                                  /* until boundary + 0.1 */
  lua_Integer n = global_int("n");
  lua_getglobal(rt.L, "at");
  double at = lua_tonumber(rt.L, -1);
  lua_pop(rt.L, 1);
  clock_offset = 0;
  if (!CHECK_EQ_INT(n, 1)) fprintf(stderr, "  ran %lld times\n", (long long)n);
  if (!CHECK(at >= boundary)) fprintf(stderr, "  first run %.3f s before the minute\n", boundary - at);
  rt_teardown();
}

/* ---- task parking: park(seconds) ------------------------------------------------------------ */

typedef struct {
  uv_timer_t timer;
  rt_task_t *task;
} park_t;

static int parks_live, parks_resumed, parks_cancelled;

static void on_park_closed(uv_handle_t *h) {
  free(h->data);
  parks_live--;
}

static void on_park_timer(uv_timer_t *tm) {
  park_t *p = tm->data;
  rt_task_t *t = p->task;
  uv_close((uv_handle_t *)tm, on_park_closed);
  parks_resumed++;
  lua_pushboolean(rt_task_thread(t), 1);               /* park() returns true */
  rt_task_resume(t, 1);
}

/* The task was cancelled while parked: stop the timer, never resume. */
static void on_park_cancel(void *ud) {
  park_t *p = ud;
  uv_timer_stop(&p->timer);
  uv_close((uv_handle_t *)&p->timer, on_park_closed);
  parks_cancelled++;
}

static int l_park(lua_State *L) {
  double secs = luaL_checknumber(L, 1);
  rt_task_t *t = rt_task_check_can_park(L, "park");  /* raises outside a task */
  park_t *p = malloc(sizeof *p);
  if (!p) return luaL_error(L, "out of memory");
  uv_timer_init(&rt_from_lua(L)->loop, &p->timer);
  p->timer.data = p;
  p->task = t;
  parks_live++;
  uv_timer_start(&p->timer, on_park_timer, (uint64_t)(secs * 1000), 0);
  rt_task_on_cancel(t, on_park_cancel, p);
  return rt_task_park(L, "park");
}

/* park() outside a task raises with a message naming the call: on the main thread (load time) and
** in a coroutine the script made itself inside a task. In a task it parks and resumes with true. */
static void on_task_done_stop(rt_task_t *t, void *ud) {
  (void)ud;
  CHECK_EQ_INT(t->status, RT_TASK_OK);
  CHECK_EQ_INT(t->yields, 1);
  rt_stop(&rt, 0);
}
static void test_park_outside_task(void) {
  if (rt_setup() < 0) return;
  lua_register(rt.L, "park", l_park);
  push_fn("return park(0.01)");
  CHECK(lua_pcall(rt.L, 0, 0, 0) != LUA_OK);
  CHECK_HAS(lua_tostring(rt.L, -1), "park: must be called from a task");
  lua_pop(rt.L, 1);
  CHECK_EQ_INT(parks_live, 0);

  push_fn("local ok, err = pcall(coroutine.wrap(function() return park(0.01) end))\n"
          "own_coroutine = not ok and err or 'parked?'\n"
          "parked = park(0.01)\n");
  rt_task_t *t = rt_task_spawn(&rt, rt.L, 0, "parker", NULL);
  CHECK(t != NULL);
  CHECK(rt_task_current(rt.L) == NULL);
  if (t) rt_task_on_done(t, on_task_done_stop, NULL);
  CHECK_EQ_INT(rt_run(&rt), 0);
  lua_getglobal(rt.L, "own_coroutine");
  CHECK_HAS(lua_tostring(rt.L, -1), "park: must be called from a task");
  lua_getglobal(rt.L, "parked");
  CHECK(lua_toboolean(rt.L, -1));
  lua_pop(rt.L, 2);
  CHECK_EQ_INT(parks_live, 0);
  rt_teardown();
}

/* Each run parks for 0.2 s while ticks come every 0.05 s: late ticks coalesce into one pending run,
** so about three runs start in 0.5 s (never ten). The run parked at stop is cancelled through its
** cancel hook (grace 0), and the parked I/O is released. */
static void snapshot_slow(void) { lookup("slow"); }
static void test_sched_coalesce_with_parking(void) {
  if (rt_setup() < 0) return;
  lua_register(rt.L, "park", l_park);
  rt_log_set_level(rt.log, RT_LOG_ERROR);              /* the cancelled run logs a warning */
  rt.shutdown_grace = 0;
  parks_resumed = parks_cancelled = 0;
  put("slow", 0.05, NULL, 0,
      "started = (started or 0) + 1\n"
      "assert(park(0.2) == true)\n"
      "finished = (finished or 0) + 1\n");
  run_for(500, snapshot_slow);
  lua_Integer started = global_int("started"), finished = global_int("finished");
  if (!CHECK(started >= 2 && started <= 4)) fprintf(stderr, "  started = %lld\n", (long long)started);
  if (!CHECK(finished >= 1 && finished <= 3)) fprintf(stderr, "  finished = %lld\n", (long long)finished);
  CHECK(finished <= started);
  CHECK_EQ_INT(seen.runs, finished);                   /* completed runs at stop time */
  CHECK(seen.running);                                 /* one run was parked when we stopped */
  CHECK(seen.pending);                                 /* and ticks had piled up behind it: one flag */
  CHECK_EQ_INT(parks_resumed, finished);
  CHECK_EQ_INT(parks_resumed + parks_cancelled, started);
  CHECK_EQ_INT(parks_live, 0);                         /* every park timer closed */
  rt_teardown();
}

/* Outcomes: a function returning nil, msg is "failed"; one raising is "error" (with the message in
** the history row); a plain return is "ok". rt_sched_trigger starts a run now. */
static void test_sched_run_outcomes(void) {
  if (rt_setup() < 0) return;
  char err[256];
  rt.store = rt_store_open(":memory:", 100, err, sizeof err);
  CHECK(rt.store != NULL);
  rt.shutdown_grace = 1;
  rt_log_set_level(rt.log, RT_LOG_ERROR + 1);          /* the "error" run would log: silence */
  put("good", 3600, NULL, 0, "return true");
  put("soft", 3600, NULL, 0, "return nil, 'no data today'");
  put("hard", 3600, NULL, 0, "error('kaboom')");
  put("manual", 3600, NULL, 3600, "manual = (manual or 0) + 1");
  CHECK_EQ_INT(rt_sched_trigger(&rt, "manual"), 0);
  CHECK_EQ_INT(rt_sched_trigger(&rt, "nope"), -1);
  run_for(100, NULL);
  CHECK_EQ_INT(global_int("manual"), 1);
  sqlite3_stmt *st;
  sqlite3_prepare_v2(rt_store_db(rt.store),
                     "SELECT script, status, coalesce(error, ''), ended >= started FROM runs ORDER BY script",
                     -1, &st, NULL);
  static const char *const want[][2] = {{"good", "ok"}, {"hard", "error"}, {"manual", "ok"}, {"soft", "failed"}};
  for (int i = 0; i < 4; i++) {
    CHECK_EQ_INT(sqlite3_step(st), SQLITE_ROW);
    CHECK_STR((const char *)sqlite3_column_text(st, 0), want[i][0]);
    CHECK_STR((const char *)sqlite3_column_text(st, 1), want[i][1]);
    CHECK_EQ_INT(sqlite3_column_int(st, 3), 1);
    const char *e = (const char *)sqlite3_column_text(st, 2);
    if (i == 1) CHECK_HAS(e, "kaboom");
    if (i == 3) CHECK_STR(e, "no data today");
  }
  CHECK_EQ_INT(sqlite3_step(st), SQLITE_DONE);
  sqlite3_finalize(st);
  rt_teardown();
}

/* put validates (and pops the function either way); replacing keeps one ref; cron entries get a
** next_due on the cron grid; remove/trigger of unknown names fail; put after close is refused. */
static void test_sched_put_api(void) {
  if (rt_setup() < 0) return;
  char err[256] = "";
  int top = lua_gettop(rt.L);
  rt_sched_spec_t none = {"x", 0, NULL, 0, 0};
  push_fn("return 1");
  CHECK_EQ_INT(rt_sched_put(&rt, rt.L, &none, err, sizeof err), -1);
  CHECK_HAS(err, "needs cron or every between");
  CHECK_EQ_INT(lua_gettop(rt.L), top);
  /* an infinite, NaN or huge interval once armed a 0 ms timer that spun the loop */
  const double bad[] = {HUGE_VAL, NAN, 9.3e18, 1e300, -1, 0.0001};
  for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
    rt_sched_spec_t huge = {"x", bad[i], NULL, 0, 0};
    push_fn("return 1");
    CHECK_EQ_INT(rt_sched_put(&rt, rt.L, &huge, err, sizeof err), -1);
    CHECK_HAS(err, "needs cron or every between 0.001s and 1e+09s");
    CHECK_EQ_INT(lua_gettop(rt.L), top);
  }
  rt_sched_spec_t never = {"x", 60, NULL, HUGE_VAL, 0};
  push_fn("return 1");
  CHECK_EQ_INT(rt_sched_put(&rt, rt.L, &never, err, sizeof err), -1);
  CHECK_HAS(err, "first_delay");
  CHECK_EQ_INT(lua_gettop(rt.L), top);
  rt_sched_spec_t badcron = {"x", 0, "61 * * * *", 0, 0};
  push_fn("return 1");
  CHECK_EQ_INT(rt_sched_put(&rt, rt.L, &badcron, err, sizeof err), -1);
  CHECK_HAS(err, "minute");
  CHECK_EQ_INT(lua_gettop(rt.L), top);
  CHECK_EQ_INT(rt.refs, ref_baseline);

  put("c", 0, "*/5 * * * *", 0, "return 1");
  put("i", 60, NULL, 30, "return 1");
  put("i", 60, NULL, 30, "return 2");                  /* replace: same entry, one ref */
  CHECK_EQ_INT(rt.refs, ref_baseline + 2);
  CHECK_EQ_INT(lua_gettop(rt.L), top);
  double now = rt_now();
  CHECK(lookup("c"));
  CHECK(seen.next_due > now - 1 && seen.next_due <= now + 300);
  CHECK_EQ_INT((long long)seen.next_due % 300, 0);
  CHECK_STR(seen.cron, "*/5 * * * *");
  CHECK_STR(seen.last_status, "never");
  CHECK(lookup("i"));
  CHECK(seen.next_due > now + 25 && seen.next_due <= now + 31);
  CHECK_EQ_INT(rt_sched_running(&rt), 0);
  CHECK_EQ_INT(rt_sched_remove(&rt, "nope"), -1);
  CHECK_EQ_INT(rt_sched_remove(&rt, "i"), 0);
  CHECK(!lookup("i"));
  CHECK_EQ_INT(rt_sched_remove(&rt, "i"), -1);
  CHECK_EQ_INT(rt_sched_trigger(&rt, "i"), -1);

  rt_sched_close(&rt);
  rt_sched_spec_t late = {"z", 1, NULL, 0, 0};
  push_fn("return 1");
  if (rt.sched) {                                      /* still waiting for close callbacks */
    CHECK_EQ_INT(rt_sched_put(&rt, rt.L, &late, err, sizeof err), -1);
    CHECK_HAS(err, "stopped");
  } else {
    lua_pop(rt.L, 1);
  }
  CHECK_EQ_INT(lua_gettop(rt.L), top);
  rt_stop(&rt, 0);
  CHECK_EQ_INT(rt_run(&rt), 0);
  rt_teardown();
}

int main(void) {
  RUN(test_parse_duration);
  RUN(test_calendar_sanity);
  RUN(test_cron_every_5_minutes);
  RUN(test_cron_midnight);
  RUN(test_cron_weekdays);
  RUN(test_cron_month_and_leap);
  RUN(test_cron_macros);
  RUN(test_cron_dow_7);
  RUN(test_cron_dom_dow_or);
  RUN(test_cron_lists_and_steps);
  RUN(test_cron_errors);
  RUN(test_sched_interval_runs);
  RUN(test_sched_interval_early_wake);
  RUN(test_sched_cron_early_wake);
  RUN(test_park_outside_task);
  RUN(test_sched_coalesce_with_parking);
  RUN(test_sched_run_outcomes);
  RUN(test_sched_put_api);
  return CHECK_DONE();
}
