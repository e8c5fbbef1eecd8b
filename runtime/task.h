/*
** runtime/task.h - tasks: Lua coroutines owned by the runtime.
**
** A task runs until it parks in a waiting primitive (http, sleep, join...). The primitive arms some
** I/O with a completion callback and returns rt_task_park(L) in tail position; the completion pushes
** its results on the task's thread and calls rt_task_resume(). All on the loop thread.
**
** Lifetime: a task is malloc'd by rt_task_spawn and reference counted. The runtime holds one
** reference while the task has not ended; handles (rt.task userdata), children (through `root`) and
** waiters take more. The coroutine is pinned by a registry ref until the task ends.
*/
#ifndef RT_TASK_H
#define RT_TASK_H

#include "runtime/rt.h"

typedef enum { RT_TASK_READY, RT_TASK_RUNNING, RT_TASK_PARKED, RT_TASK_DONE } rt_task_state_t;
typedef enum { RT_TASK_OK, RT_TASK_ERROR, RT_TASK_CANCELLED } rt_task_status_t;

/* Called when a parked task is cancelled: abort the pending I/O without resuming the task. */
typedef void (*rt_task_cancel_fn)(void *ud);
/* Called once when a task ends. Its results (status OK) or error value are on top of
** rt_task_thread(t) until the callback returns. */
typedef void (*rt_task_done_fn)(rt_task_t *t, void *ud);

struct rt_task_s {
  rt_t *rt;
  lua_State *co;              /* the coroutine; valid until the task is freed */
  int co_ref;                 /* registry ref pinning co; LUA_NOREF once ended */
  uint64_t id;
  char name[64];
  rt_task_state_t state;
  rt_task_status_t status;    /* meaningful once state == RT_TASK_DONE */
  int nres;                   /* results left on co when it ended OK */
  int handles;                /* rt.task handles alive (bindings/task.c) */
  int results_ref;            /* registry ref: {results} kept for a late h:join(), or LUA_NOREF */
  char *error;                /* message + traceback when status == RT_TASK_ERROR; owned */
  double started;             /* rt_now() at spawn */
  rt_task_t *root;            /* the task whose run this one belongs to (itself for top-level tasks) */
  int64_t rows;               /* rows written by this run (counted on the root) */
  int refcount;
  int yields;                 /* parks so far */
  rt_task_cancel_fn cancel_fn;   /* set while parked on cancellable I/O */
  void *cancel_ud;
  struct rt_task_waiter_s *waiters;
  rt_task_t *next;            /* rt->tasks.head list */
  rt_task_t *ready_next;      /* ready queue */
  int resume_nargs;           /* values pushed for the next resume from the ready queue */
  uint64_t resumed_ns;        /* uv_hrtime() when the coroutine was last resumed (CPU slice, vm.c) */
  uint64_t parked_pass;       /* rt->tasks.pass when the task last parked */
  int interrupted;            /* the CPU slice fired: every later line raises again (vm.c) */
};

/* ---- accessors: bindings read a task through these, never its fields ---- */
rt_t *rt_task_rt(const rt_task_t *t);
uint64_t rt_task_id(const rt_task_t *t);
const char *rt_task_name(const rt_task_t *t);
rt_task_state_t rt_task_state(const rt_task_t *t);
/// Meaningful once rt_task_state() is RT_TASK_DONE.
rt_task_status_t rt_task_status(const rt_task_t *t);
/// The message and traceback of a task that ended with an error (owned by the task), else NULL.
const char *rt_task_error(const rt_task_t *t);
double rt_task_started(const rt_task_t *t);
int rt_task_yields(const rt_task_t *t);
/// Results left on the task's thread when it ended OK, and the registry ref of the table that keeps
/// them for a late join (LUA_NOREF when none).
int rt_task_nres(const rt_task_t *t);
int rt_task_results_ref(const rt_task_t *t);
/// The name of the run the task belongs to (its root task: itself for a top-level task).
const char *rt_task_run_name(const rt_task_t *t);
/// Count n rows written by the task's run (on its root).
void rt_task_count_rows(rt_task_t *t, int64_t n);
/// rt.task handles alive for t: +1 when one is made, -1 when one is collected.
void rt_task_handles_add(rt_task_t *t, int delta);
/// Walk every task not yet freed, newest first: rt_task_first(rt), then rt_task_next(t) until NULL.
rt_task_t *rt_task_first(rt_t *rt);
rt_task_t *rt_task_next(const rt_task_t *t);

/// Set up the task list of `rt` (its idle handle on rt->loop).
int rt_tasks_init(rt_t *rt);
/// Close the idle handle. Tasks must all have ended (rt_task_cancel_all first).
void rt_tasks_close(rt_t *rt);

/// Create a task from the function and `nargs` arguments on top of L (any thread of rt->L):
/// [f, a1..an] -> []. It starts on the next loop iteration. `parent` (may be NULL) makes the new
/// task part of the parent's run (rows are counted on the parent's root). Returns the task with one
/// reference owned by the runtime, or NULL on memory error (stack popped either way).
rt_task_t *rt_task_spawn(rt_t *rt, lua_State *L, int nargs, const char *name, rt_task_t *parent);

/// The task whose coroutine is L, or NULL (main thread, user coroutine, another state).
rt_task_t *rt_task_current(lua_State *L);
static inline lua_State *rt_task_thread(rt_task_t *t) { return t->co; }

/// Park the running task: call as `return rt_task_park(L);` from a lua_CFunction. Raises a Lua error
/// when L cannot yield (not a task, inside a C call boundary, or inside db.tx). The values pushed by
/// the completion become the C function's results. `what` names the call for error messages.
int rt_task_park(lua_State *L, const char *what);
/// Same with a continuation (lua_yieldk) that runs on resume.
int rt_task_park_k(lua_State *L, const char *what, lua_KContext ctx, lua_KFunction k);
/// Raise unless L is a task that may park now. Call before starting I/O.
rt_task_t *rt_task_check_can_park(lua_State *L, const char *what);

/// Register what to do if the parked task is cancelled. Cleared automatically on resume.
void rt_task_on_cancel(rt_task_t *t, rt_task_cancel_fn fn, void *ud);

/// Resume a parked task with `nargs` values already pushed on its thread. Loop thread only, never
/// from inside that task's own coroutine. The primitive is done: its cancel hook is dropped. A task
/// that parked in this same loop pass goes through the ready queue instead (see task.c).
void rt_task_resume(rt_task_t *t, int nargs);
/// Start the running task's CPU slice afresh (after a call that ran Lua under a limit of its own,
/// such as a config load), unless the slice already fired. t may be NULL (no task: no-op).
void rt_task_restart_slice(rt_task_t *t);
/// Queue a resume for the next loop iteration (safe from anywhere, including inside Lua). The
/// cancel hook stays armed until the task runs, so it must cope with a completed operation.
void rt_task_resume_later(rt_task_t *t, int nargs);

/// Call `fn(t, ud)` when t ends (immediately if it already has). Takes no reference.
int rt_task_on_done(rt_task_t *t, rt_task_done_fn fn, void *ud);

/// Remove a done callback registered with rt_task_on_done (e.g. the waiter itself was cancelled).
void rt_task_off_done(rt_task_t *t, rt_task_done_fn fn, void *ud);

/// Cancel a task: pending I/O is aborted, `<close>` variables run, waiters see RT_TASK_CANCELLED.
/// Returns 0, or -1 when t is the running task (it cannot cancel itself this way) or already ended.
int rt_task_cancel(rt_task_t *t);
/// Cancel every task not yet ended.
void rt_task_cancel_all(rt_t *rt);

void rt_task_ref(rt_task_t *t);
void rt_task_unref(rt_task_t *t);

/// Look up a live task by id (NULL when unknown or already freed).
rt_task_t *rt_task_find(rt_t *rt, uint64_t id);

const char *rt_task_state_name(rt_task_state_t s);
const char *rt_task_status_name(rt_task_status_t s);

#endif
