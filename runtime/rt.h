/*
** runtime/rt.h - the runtime context: one per process, owned by main.c.
**
** Everything mutable lives here or hangs off it; there is no other global state. All fields are
** touched only on the loop thread. Bindings reach it from any Lua thread with rt_from_lua(): the
** context is the Lua allocator's user data (see vm.c).
*/
#ifndef RT_RT_H
#define RT_RT_H

#include <stddef.h>
#include <stdint.h>
#include <uv.h>
#include <lua.h>

typedef struct rt_s rt_t;
typedef struct rt_log_s rt_log_t;
typedef struct rt_task_s rt_task_t;
typedef struct rt_http_s rt_http_t;
typedef struct rt_store_s rt_store_t;
typedef struct rt_checkpoint_s rt_checkpoint_t;
typedef struct rt_migrate_s rt_migrate_t;
typedef struct rt_sched_s rt_sched_t;
typedef struct rt_budgets_s rt_budgets_t;
typedef struct rt_repl_s rt_repl_t;

/* The list of live tasks and the ready queue (task.c). */
typedef struct rt_tasks_s {
  rt_task_t *head;          /* every task not yet freed, newest first */
  rt_task_t *ready_head;    /* FIFO of tasks waiting for their first (or next) resume */
  rt_task_t *ready_tail;
  uv_idle_t idle;           /* runs the ready queue; active only while it is non-empty */
  uv_prepare_t prepare;     /* counts loop passes (unref'd): see rt_task_resume */
  uint64_t pass;            /* loop passes so far */
  uint64_t next_id;
  int live;                 /* tasks not yet ended */
  rt_task_t *current;       /* the task whose coroutine is running now, or NULL */
} rt_tasks_t;

struct rt_s {
  uv_loop_t loop;
  lua_State *L;             /* the one Lua state; main thread never yields */
  rt_log_t *log;
  rt_http_t *http;
  rt_store_t *store;        /* NULL until the database is opened */
  rt_checkpoint_t *checkpoint; /* the store's WAL checkpoints off the loop thread (store_checkpoint.c) */
  rt_migrate_t *migrate;    /* the series-layout migration while one runs (migrate.c); else NULL */
  rt_sched_t *sched;        /* NULL outside `candled run` */
  rt_budgets_t *budgets;    /* request budgets from config (budget.c); NULL before setup */
  rt_repl_t *repl;          /* the REPL server (repl/server.c) while `candled run` listens; else NULL */
  struct rt_http_server_s *http_server; /* /metrics and the status page (http_server.c) in `candled run` */
  struct rt_events_s *events;  /* the event bus (events.c), created on first use; NULL before */
  void *events_forming;        /* the forming bar of each series (events_emit.c); NULL before */
  struct rt_ws_s *ws;          /* the WebSocket client (ws.c), created on first connect; NULL before */
  rt_tasks_t tasks;
  size_t lua_mem;           /* bytes held by Lua (the allocator counts) */
  size_t lua_mem_limit;     /* runtime.memory_limit in bytes, 0 = none; enforced inside tasks (vm.c) */
  int refs;                 /* registry refs taken through rt_ref(): tests check it returns to baseline */
  int stopping;             /* set once shutdown began: no new runs are scheduled */
  int exit_code;
  /* alert.c calls it when an alert opens or resolves (state "opened" | "resolved"); loop.c points
  ** it at the event bus (events_emit.c), so alert.c never calls up into the bus. NULL: nobody. */
  void (*on_alert)(rt_t *rt, const char *state, const char *kind, const char *subject, const char *level,
                   const char *msg);
  void (*on_idle_stop)(rt_t *rt);  /* task.c calls it when the last task ends while stopping; loop.c sets it */
  uv_signal_t sig_int, sig_term;
  uv_signal_t sig_hup;      /* SIGHUP never ends the process: reloads watch it themselves (rt.watch) */
  uv_timer_t grace;         /* shutdown grace period */
  long http_max_body;       /* default body limit for rt.http (config http.max_body) */
  double shutdown_grace;    /* seconds running tasks get to finish after SIGINT/SIGTERM */
  int alert_after_failures; /* consecutive failed runs of a script that raise a run_failing alert */
  char config_dir[4096];    /* directory relative paths in the config resolve against */
  int db_fd;                /* a descriptor of the database file (the daemon lock, dblock.h, or a
                               command's look at it), -1 = none; closed in rt_close after the store:
                               closing it earlier would drop SQLite's POSIX locks of this process */
};

/* Stable upper-case error codes shown to Lua as the third `nil, msg, CODE` value. */
#define RT_OK 0

/// Initialise `rt` (zeroed by the caller) with a loop, logger and task queue (main.c adds the
/// Lua state, HTTP engine and store).
/// Returns 0 or a negative libuv / -1 error with a message in `err`.
int rt_init(rt_t *rt, char *err, size_t errlen);

/// Install SIGINT/SIGTERM handlers: first signal stops scheduling, lets running tasks finish for
/// `shutdown_grace` seconds, then cancels the rest and stops the loop; a second signal stops at once.
/// SIGHUP gets a handler that does nothing, so it never kills the process (the reload task, when it
/// runs, watches SIGHUP through rt.watch and reloads).
int rt_signals_start(rt_t *rt);

/// Begin an orderly stop (same path as a signal). Safe to call more than once.
void rt_stop(rt_t *rt, int exit_code);

/// Run the loop until it has nothing left to do. Returns rt->exit_code.
int rt_run(rt_t *rt);

/// Cancel every task, close the store, HTTP engine, signals and Lua state, close the loop.
/// After it returns `rt` holds no resources. Safe after a failed rt_init.
void rt_close(rt_t *rt);

/* ---- leaf helpers (rt.c): they call nothing else of the runtime ---- */

/// The runtime context of any Lua thread of rt->L.
rt_t *rt_from_lua(lua_State *L);

/// luaL_ref into the registry / its release, counted in rt->refs.
int rt_ref(rt_t *rt, lua_State *L);
void rt_unref(rt_t *rt, lua_State *L, int ref);

/// Wall-clock time in UTC epoch seconds with a fraction.
double rt_now(void);
/// Seconds from an arbitrary start that never go back (the loop's high-resolution clock).
double rt_monotonic(void);
/// The stable upper-case name of an errno value ("ENOENT", "EACCES"...), for `nil, msg, CODE`.
const char *rt_errno_name(int err);

/// What bindings read of the context, instead of its fields (NULL where not set up: no database
/// outside a configured run, no scheduler outside `candled run`...).
rt_store_t *rt_store_of(rt_t *rt);
rt_budgets_t *rt_budgets_of(rt_t *rt);
rt_log_t *rt_log_of(rt_t *rt);
rt_http_t *rt_http_of(rt_t *rt);
rt_sched_t *rt_sched_of(rt_t *rt);
uv_loop_t *rt_loop_of(rt_t *rt);
/// The Lua state (NULL once it is closed at shutdown).
lua_State *rt_lua_of(rt_t *rt);
/// The loop's cached clock in milliseconds (uv_now), for deadlines measured on the loop.
double rt_loop_now_ms(rt_t *rt);
/// The default body limit of rt.http (config http.max_body), and 1 once shutdown began.
long rt_http_max_body(rt_t *rt);
int rt_stopping(rt_t *rt);
/// The task whose coroutine runs now (also from inside a script's own coroutine), or NULL.
rt_task_t *rt_task_running(rt_t *rt);

/// Milliseconds of a delay in seconds for uv_timer_start and friends, with the cast guarded: NaN and
/// negatives give 0, anything above RT_MS_MAX (about 31 years) gives RT_MS_MAX.
#define RT_MS_MAX 1000000000000.0
uint64_t rt_ms(double seconds);

#endif
