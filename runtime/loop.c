/*
** runtime/loop.c - the runtime context: init, the loop, signals and orderly shutdown.
**
** Shutdown order (rt_stop): stop scheduling; give running tasks `shutdown_grace` seconds; cancel what
** is left; close the signal, timer and HTTP handles so uv_run returns. rt_close then closes the Lua
** state (its __gc handlers release task references) and the database, and closes the loop. Writes are
** synchronous SQLite calls on this thread, so every write a task started has committed by then.
*/
#include "runtime/rt.h"

#include <lauxlib.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "runtime/budget.h"
#include "runtime/store_checkpoint.h"
#include "runtime/events.h"
#include "runtime/http_server.h"
#include "runtime/migrate.h"
#include "runtime/http.h"
#include "runtime/log.h"
#include "runtime/repl/server.h"
#include "runtime/sched.h"
#include "runtime/store.h"
#include "runtime/task.h"
#include "runtime/vm.h"
#include "runtime/ws.h"

static void stop_handles(rt_t *rt);

int rt_init(rt_t *rt, char *err, size_t errlen) {
  rt->db_fd = -1;
  int rc = uv_loop_init(&rt->loop);
  if (rc < 0) {
    snprintf(err, errlen, "event loop: %s", uv_strerror(rc));
    return rc;
  }
  rt->loop.data = rt;
  rt->shutdown_grace = 10;
  rt->log = rt_log_new(stderr);
  if (!rt->log) {
    snprintf(err, errlen, "out of memory");
    return -1;
  }
  if ((rc = rt_tasks_init(rt)) < 0) {
    snprintf(err, errlen, "task queue: %s", uv_strerror(rc));
    return rc;
  }
  uv_timer_init(&rt->loop, &rt->grace);
  rt->grace.data = rt;
  rt->on_idle_stop = stop_handles;
  rt->on_alert = rt_events_alert;        /* alerts reach the event bus (events_emit.c) */       /* task.c calls it when the last task ends while stopping */
  return 0;
}

/* ---- shutdown ------------------------------------------------------------------------------- */

/* Close what keeps the loop alive once no task is left. Idempotent. */
static void stop_handles(rt_t *rt) {
  if (!uv_is_closing((uv_handle_t *)&rt->grace)) uv_close((uv_handle_t *)&rt->grace, NULL);
  if (rt->sig_int.loop && !uv_is_closing((uv_handle_t *)&rt->sig_int)) {
    uv_close((uv_handle_t *)&rt->sig_int, NULL);
    uv_close((uv_handle_t *)&rt->sig_term, NULL);
    uv_close((uv_handle_t *)&rt->sig_hup, NULL);
  }
  if (rt->sched) rt_sched_close(rt);
  rt_repl_close(rt);                                /* REPL socket + clients (repl/server.c); no-op without */
  rt_http_server_stop(rt->http_server);             /* freed once its connections are closed */
  rt->http_server = NULL;
  if (rt->budgets) rt_budgets_close(rt->budgets);   /* persists counts; no task is left to wait */
  if (rt->http) {
    rt_http_close(rt->http);   /* frees itself from its last close callback */
    rt->http = NULL;
  }
  rt_ws_shutdown(rt);            /* every connection closed; lws's handles close in the next run */
  rt_tasks_close(rt);
}

static void on_uv_grace(uv_timer_t *t) {
  rt_t *rt = t->data;
  rt_log_printf(rt->log, RT_LOG_WARN, NULL, "shutdown grace of %.0fs over: cancelling %d task(s)",
                rt->shutdown_grace, rt->tasks.live);
  rt_task_cancel_all(rt);
}


void rt_stop(rt_t *rt, int exit_code) {
  if (rt->stopping) {                    /* second request: no more grace */
    rt_task_cancel_all(rt);
    return;
  }
  rt->stopping = 1;
  rt->exit_code = exit_code;
  rt_events_stop(rt);                    /* subscribers' tasks end: nothing more is delivered */
  if (rt->sched) rt_sched_close(rt);     /* no new runs */
  if (rt->tasks.live == 0) {
    stop_handles(rt);
    return;
  }
  if (rt->shutdown_grace > 0 && !uv_is_closing((uv_handle_t *)&rt->grace)) {
    rt_log_printf(rt->log, RT_LOG_INFO, NULL, "stopping: waiting up to %.0fs for %d task(s)",
                  rt->shutdown_grace, rt->tasks.live);
    uv_timer_start(&rt->grace, on_uv_grace, rt_ms(rt->shutdown_grace), 0);
  } else {
    rt_task_cancel_all(rt);
  }
}

static void on_uv_signal(uv_signal_t *s, int signum) {
  rt_t *rt = s->data;
  rt_log_printf(rt->log, RT_LOG_INFO, NULL, "received %s%s", signum == SIGINT ? "SIGINT" : "SIGTERM",
                rt->stopping ? " again: cancelling tasks" : "");
  rt_stop(rt, 0);
}

static void on_uv_sighup(uv_signal_t *s, int signum) {
  (void)signum;
  rt_t *rt = s->data;
  rt_log_printf(rt->log, RT_LOG_DEBUG, NULL, "received SIGHUP");
}

int rt_signals_start(rt_t *rt) {
  int rc;
  if ((rc = uv_signal_init(&rt->loop, &rt->sig_int)) < 0) return rc;
  uv_signal_init(&rt->loop, &rt->sig_term);
  rt->sig_int.data = rt->sig_term.data = rt;
  uv_signal_init(&rt->loop, &rt->sig_hup);
  rt->sig_int.data = rt->sig_term.data = rt->sig_hup.data = rt;
  if ((rc = uv_signal_start(&rt->sig_hup, on_uv_sighup, SIGHUP)) < 0) return rc;
  uv_unref((uv_handle_t *)&rt->sig_hup);
  if ((rc = uv_signal_start(&rt->sig_int, on_uv_signal, SIGINT)) < 0) return rc;
  return uv_signal_start(&rt->sig_term, on_uv_signal, SIGTERM);
}

int rt_run(rt_t *rt) {
  uv_run(&rt->loop, UV_RUN_DEFAULT);
  return rt->exit_code;
}

static void on_uv_walk_close(uv_handle_t *h, void *arg) {
  (void)arg;
  if (!uv_is_closing(h)) uv_close(h, NULL);
}

void rt_close(rt_t *rt) {
  if (!rt->loop.data) return;            /* rt_init never ran */
  rt->stopping = 1;
  rt_task_cancel_all(rt);
  stop_handles(rt);
  rt_migrate_stop(rt->migrate);          /* between batches; freed in the run below */
  rt_checkpoint_stop(rt->checkpoint);    /* a checkpoint in flight ends in the run below */
  rt_events_close(rt);                   /* its timer closes in the run below */
  rt_events_series_free(rt);             /* the forming bars of each series (events_emit.c) */
  rt->checkpoint = NULL;
  uv_run(&rt->loop, UV_RUN_DEFAULT);     /* let close callbacks (curl polls, timers) run */
  rt_ws_free(rt);                        /* lws's context is gone now; connections Lua holds stay */
  rt_vm_close(rt);                       /* __gc releases task handles; tasks are freed */
  if (rt->store) {
    rt_store_close(rt->store);
    rt->store = NULL;
  }
  if (rt->db_fd >= 0) {                  /* the database lock: only now that SQLite closed the file */
    close(rt->db_fd);
    rt->db_fd = -1;
  }
  if (uv_loop_close(&rt->loop) == UV_EBUSY) {  /* a handle we did not expect: close it, don't leak */
    uv_walk(&rt->loop, on_uv_walk_close, NULL);
    uv_run(&rt->loop, UV_RUN_DEFAULT);
    uv_loop_close(&rt->loop);
  }
  rt_log_free(rt->log);
  rt->log = NULL;
  rt->loop.data = NULL;
}
