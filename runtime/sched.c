/*
** runtime/sched.c - named schedules that start a task per run, one run at a time per entry.
**
** Lifetime: an entry owns its uv_timer_t and a registry ref to its run function. Removing an entry
** closes the timer; the memory goes when both the close callback has run and no run is in progress
** (a run holds the entry as the ud of its done callback). The scheduler struct goes with its last
** entry once rt_sched_close was called.
*/
#include "runtime/sched.h"

#include "runtime/cron.h"

#include <lauxlib.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "runtime/alert.h"
#include "runtime/log.h"
#include "runtime/store.h"
#include "runtime/task.h"
#include "runtime/vm.h"

typedef struct entry_s {
  rt_sched_t *s;
  char *name;
  double every;
  char *cron;
  rt_cron_t cronc;
  int fn_ref;
  int done_ref;                /* optional Lua function(status) called after each run, or LUA_NOREF */
  uv_timer_t timer;
  int timer_closed;            /* the timer's close callback ran */
  int removed;
  double next_due;
  int running, pending;
  rt_task_t *task;             /* referenced while running */
  int64_t run_id;
  double run_started;
  unsigned long runs, failures;
  const char *last_status;
  struct entry_s *next;
} entry_t;

struct rt_sched_s {
  rt_t *rt;
  entry_t *head;
  int closing;
};

static void run_start(entry_t *e);

static void sched_maybe_free(rt_sched_t *s) {
  if (s->closing && !s->head) {
    if (s->rt->sched == s) s->rt->sched = NULL;
    free(s);
  }
}

static void entry_maybe_free(entry_t *e) {
  if (!e->timer_closed || e->running) return;
  rt_sched_t *s = e->s;
  entry_t **pp = &s->head;
  while (*pp && *pp != e) pp = &(*pp)->next;
  if (*pp) *pp = e->next;
  if (s->rt->L) {
    rt_unref(s->rt, s->rt->L, e->fn_ref);
    rt_unref(s->rt, s->rt->L, e->done_ref);
  }
  free(e->name);
  free(e->cron);
  free(e);
  sched_maybe_free(s);
}

static void on_uv_timer_closed(uv_handle_t *h) {
  entry_t *e = h->data;
  e->timer_closed = 1;
  entry_maybe_free(e);
}

static void entry_close(entry_t *e) {
  e->removed = 1;
  if (!uv_is_closing((uv_handle_t *)&e->timer)) uv_close((uv_handle_t *)&e->timer, on_uv_timer_closed);
}

static entry_t *find(rt_sched_t *s, const char *name) {
  for (entry_t *e = s->head; e; e = e->next)
    if (!e->removed && strcmp(e->name, name) == 0) return e;
  return NULL;
}

/* A removed entry of the same name whose last run is still going (a script deleted and created
** again, or renamed back, during a run): the new entry waits for it, so one name never runs twice. */
static entry_t *find_removed_running(rt_sched_t *s, const char *name) {
  for (entry_t *e = s->head; e; e = e->next)
    if (e->removed && e->running && strcmp(e->name, name) == 0) return e;
  return NULL;
}

/* ---- timing --------------------------------------------------------------------------------- */

static void on_uv_tick(uv_timer_t *tm);

/* Arm the timer for the next due time after now. Missed interval ticks collapse into one. */
static void arm(entry_t *e, double now) {
  if (e->removed || e->s->closing) return;
  if (e->cron) {
    e->next_due = rt_cron_next(&e->cronc, now);
    if (e->next_due < 0) return;               /* never again (e.g. Feb 30th) */
  } else if (e->next_due <= now) {
    e->next_due += ceil((now - e->next_due) / e->every + 1e-9) * e->every;
  }
  uint64_t delay = rt_ms(e->next_due - now);
  uv_timer_start(&e->timer, on_uv_tick, delay < 1 ? 1 : delay, 0);
}

static void on_uv_tick(uv_timer_t *tm) {
  entry_t *e = tm->data;
  /* libuv's loop time is cached (stale after slow work, e.g. loading scripts before uv_run) and the
  ** delay is rounded down to whole ms, so a tick can come before next_due by the wall clock. Not due
  ** yet: sleep the rest. Running now would run early, and for cron run twice (rt_cron_next(now)
  ** would give this same minute again). */
  double now = rt_now();
  if (now < e->next_due) {
    arm(e, now);
    return;
  }
  if (e->running) {
    if (!e->pending)
      rt_log_printf(e->s->rt->log, RT_LOG_DEBUG, e->name, "previous run still going: next run coalesced");
    e->pending = 1;
  } else {
    run_start(e);
  }
  if (!e->cron) e->next_due += e->every;       /* the timer may fire a little early by the wall clock */
  arm(e, rt_now());
}

/* ---- runs ----------------------------------------------------------------------------------- */

/* The run's task ended: classify it, write the history row, start a pending run. */
static void on_run_done(rt_task_t *t, void *ud) {
  entry_t *e = ud;
  rt_t *rt = e->s->rt;
  const char *status = "ok";
  char *error = NULL;
  if (t->status == RT_TASK_ERROR) {
    status = "error";
    error = t->error ? strdup(t->error) : NULL;
  } else if (t->status == RT_TASK_CANCELLED) {
    status = "cancelled";
  } else if (t->nres >= 1 && !lua_toboolean(t->co, -t->nres)) {   /* return nil, "why" */
    status = "failed";
    const char *why = t->nres >= 2 ? lua_tostring(t->co, -t->nres + 1) : NULL;
    error = strdup(why ? why : "run returned nil");
  }
  double ended = rt_now();
  if (rt->store && e->run_id > 0) {
    rt_store_run_end(rt->store, e->run_id, ended, status, t->rows, error);
    int streak = rt_store_collector_update(rt->store, e->name, e->run_started, ended, status, t->rows, error);
    if (streak == 0) {
      rt_alert_resolve(rt, "run_failing", e->name);
    } else if (rt->alert_after_failures > 0 && streak >= rt->alert_after_failures) {
      char msg[512];
      snprintf(msg, sizeof msg, "%s: %d runs in a row did not succeed; last: %s", e->name, streak,
               error ? error : status);
      rt_alert_raise(rt, "run_failing", e->name, "error", msg);
    }
  }
  if (e->done_ref != LUA_NOREF && rt->L) {    /* after-run hook: outside the task, so not counted */
    lua_rawgeti(rt->L, LUA_REGISTRYINDEX, e->done_ref);
    lua_pushstring(rt->L, status);
    if (rt_vm_pcall(rt->L, 1, 0) != LUA_OK) {
      rt_log_write(rt->log, RT_LOG_WARN, e->name, lua_tostring(rt->L, -1), NULL);
      lua_pop(rt->L, 1);
    }
  }
  e->runs++;
  if (strcmp(status, "ok") != 0) e->failures++;
  e->last_status = status;
  char fields[160];
  snprintf(fields, sizeof fields, " status=%s rows=%lld duration=%.3f", status, (long long)t->rows,
           ended - e->run_started);
  rt_log_write(rt->log, strcmp(status, "ok") == 0 ? RT_LOG_INFO : RT_LOG_WARN, e->name,
               strcmp(status, "failed") == 0 && error ? error : "run finished", fields);
  free(error);
  e->running = 0;
  e->task = NULL;
  rt_task_unref(t);
  entry_t *next = e->removed ? find(e->s, e->name) : e;   /* a removed entry hands over to its successor */
  if (next && next->pending && !next->running && !e->s->closing && !rt->stopping) {
    next->pending = 0;
    run_start(next);
  }
  entry_maybe_free(e);
}

static void run_start(entry_t *e) {
  rt_t *rt = e->s->rt;
  lua_State *L = rt->L;
  if (find_removed_running(e->s, e->name)) {   /* after the old entry's run (on_run_done) */
    e->pending = 1;
    return;
  }
  lua_rawgeti(L, LUA_REGISTRYINDEX, e->fn_ref);            /* [f] */
  rt_task_t *t = rt_task_spawn(rt, L, 0, e->name, NULL);  /* [] */
  if (!t) {
    rt_log_printf(rt->log, RT_LOG_ERROR, e->name, "cannot start run: out of memory");
    return;
  }
  rt_task_ref(t);
  e->task = t;
  e->running = 1;
  e->run_started = t->started;
  e->run_id = rt->store ? rt_store_run_begin(rt->store, e->name, t->started) : -1;
  rt_task_on_done(t, on_run_done, e);
}

/* ---- the API -------------------------------------------------------------------------------- */

int rt_sched_init(rt_t *rt) {
  rt_sched_t *s = calloc(1, sizeof *s);
  if (!s) return -1;
  s->rt = rt;
  rt->sched = s;
  return 0;
}

void rt_sched_close(rt_t *rt) {
  rt_sched_t *s = rt->sched;
  if (!s || s->closing) return;
  s->closing = 1;
  for (entry_t *e = s->head; e; e = e->next) entry_close(e);
  sched_maybe_free(s);
}

int rt_sched_put(rt_t *rt, lua_State *L, const rt_sched_spec_t *spec, char *err, size_t errlen) {
  rt_sched_t *s = rt->sched;
  rt_cron_t cronc = {0};
  if (!s || s->closing) {
    lua_pop(L, spec->done ? 2 : 1);
    snprintf(err, errlen, "the scheduler is stopped");
    return -1;
  }
  if (spec->cron ? rt_cron_parse(spec->cron, &cronc, err, errlen) < 0
                 : !(spec->every >= RT_SCHED_EVERY_MIN && spec->every <= RT_SCHED_EVERY_MAX)) {
    if (!spec->cron) snprintf(err, errlen, "%s: needs cron or every between %gs and %gs, got %g", spec->name,
                              RT_SCHED_EVERY_MIN, RT_SCHED_EVERY_MAX, spec->every);
    lua_pop(L, spec->done ? 2 : 1);
    return -1;
  }
  if (!(spec->first_delay >= 0 && spec->first_delay <= RT_SCHED_EVERY_MAX)) {
    snprintf(err, errlen, "%s: first_delay must be between 0 and %gs, got %g", spec->name, RT_SCHED_EVERY_MAX,
             spec->first_delay);
    lua_pop(L, spec->done ? 2 : 1);
    return -1;
  }
  entry_t *e = find(s, spec->name);
  int fresh = !e;
  if (fresh) {
    if (!(e = calloc(1, sizeof *e)) || !(e->name = strdup(spec->name))) {
      free(e);
      lua_pop(L, spec->done ? 2 : 1);
      snprintf(err, errlen, "out of memory");
      return -1;
    }
    e->s = s;
    e->fn_ref = LUA_NOREF;
    e->done_ref = LUA_NOREF;
    e->last_status = "never";
    uv_timer_init(&rt->loop, &e->timer);
    e->timer.data = e;
    e->next = s->head;
    s->head = e;
  }
  int timing_changed = fresh || e->every != spec->every ||
                       (e->cron == NULL) != (spec->cron == NULL) ||
                       (e->cron && strcmp(e->cron, spec->cron) != 0);
  rt_unref(rt, L, e->done_ref);
  e->done_ref = spec->done ? rt_ref(rt, L) : LUA_NOREF;   /* pops done */
  rt_unref(rt, L, e->fn_ref);
  e->fn_ref = rt_ref(rt, L);                   /* pops f */
  if (timing_changed) {
    free(e->cron);
    e->cron = spec->cron ? strdup(spec->cron) : NULL;
    e->cronc = cronc;
    e->every = spec->cron ? 0 : spec->every;
    double now = rt_now();
    e->next_due = now + (spec->cron ? 0 : (fresh ? spec->first_delay : e->every));
    uv_timer_stop(&e->timer);
    if (spec->cron || e->next_due > now) arm(e, now);
    else uv_timer_start(&e->timer, on_uv_tick, 0, 0);
  }
  return 0;
}

int rt_sched_remove(rt_t *rt, const char *name) {
  entry_t *e = rt->sched ? find(rt->sched, name) : NULL;
  if (!e) return -1;
  entry_close(e);
  return 0;
}

int rt_sched_trigger(rt_t *rt, const char *name) {
  entry_t *e = rt->sched ? find(rt->sched, name) : NULL;
  if (!e) return -1;
  if (e->running) e->pending = 1;
  else run_start(e);
  return 0;
}

void rt_sched_each(rt_t *rt, int (*fn)(const rt_sched_info_t *info, void *ud), void *ud) {
  if (!rt->sched) return;
  for (entry_t *e = rt->sched->head; e; e = e->next) {
    if (e->removed) continue;
    rt_sched_info_t info = {e->name, e->every, e->cron, e->next_due, e->running, e->pending,
                            e->task ? e->task->id : 0, e->runs, e->failures, e->last_status};
    if (fn(&info, ud)) return;
  }
}

int rt_sched_running(rt_t *rt) {
  int n = 0;
  if (rt->sched)
    for (entry_t *e = rt->sched->head; e; e = e->next) n += e->running;
  return n;
}
