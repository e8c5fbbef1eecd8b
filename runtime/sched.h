/*
** runtime/sched.h - the scheduler: named entries that run a Lua function as a task every interval or
** on a cron expression. One run at a time per entry: a tick that finds the previous run still going
** marks the entry pending, and the pending run starts when the current one ends (late runs coalesce
** into one, never pile up). Every run is recorded in the run history (store.c).
*/
#ifndef RT_SCHED_H
#define RT_SCHED_H

#include "runtime/rt.h"

/* The bounds of an interval that rt_sched_put accepts (the timer arithmetic stays exact within them).
** Scripts and the config are held to runtime.min_every (default 1 s) by rt.sched and the config. */
#define RT_SCHED_EVERY_MIN 0.001
#define RT_SCHED_EVERY_MAX 1e9

typedef struct {
  const char *name;
  double every;             /* seconds in [RT_SCHED_EVERY_MIN, RT_SCHED_EVERY_MAX]; 0 when cron is used */
  const char *cron;         /* cron expression, or NULL */
  double first_delay;       /* seconds before the first interval run (0 = at once) */
  int done;                 /* an after-run function is on the stack above the run function */
} rt_sched_spec_t;

typedef struct {
  const char *name;
  double every;
  const char *cron;
  double next_due;          /* epoch seconds */
  int running;              /* a run is in progress */
  int pending;              /* a tick arrived during the run */
  uint64_t task_id;
  unsigned long runs, failures;
  const char *last_status;
} rt_sched_info_t;

/// Create the scheduler of rt (stored in rt->sched).
int rt_sched_init(rt_t *rt);
/// Stop every timer (no new runs); running tasks are left alone. Handles close asynchronously.
void rt_sched_close(rt_t *rt);

/// Add or replace entry `spec->name` running the function on L ([f] or, with spec->done, [f done]
/// -> []): `done(status)` is called (protected, not as a task) after each run. On each run the
/// function is called as a task with no arguments; a first result of nil/false with a message as the
/// second marks the run "failed". Replacing keeps a running run and its pending flag; the new timing
/// and function apply from the next run. Returns 0 or -1 (message in err).
int rt_sched_put(rt_t *rt, lua_State *L, const rt_sched_spec_t *spec, char *err, size_t errlen);
/// Remove an entry (a run in progress finishes). Returns 0, or -1 when unknown.
int rt_sched_remove(rt_t *rt, const char *name);
/// Start a run now unless one is running (then mark pending). Returns 0, or -1 when unknown.
int rt_sched_trigger(rt_t *rt, const char *name);

/// Visit every entry (in name order of insertion). Stop when fn returns non-zero.
void rt_sched_each(rt_t *rt, int (*fn)(const rt_sched_info_t *info, void *ud), void *ud);
/// Number of runs in progress.
int rt_sched_running(rt_t *rt);

#endif
