/*
** runtime/task.c - tasks: spawn, park, resume, cancel, join, and the ready queue.
**
** The task pointer of a coroutine lives in its LUA_EXTRASPACE, so finding the current task is one
** load. Coroutines a script creates itself copy the main thread's extra space (NULL): they are not
** tasks, and a waiting call inside one raises instead of yielding to the wrong resumer.
*/
#include "runtime/task.h"

#include <lauxlib.h>
#include <stdlib.h>
#include <string.h>

#include "runtime/log.h"
#include "runtime/store.h"
#include "runtime/vm.h"

typedef struct rt_task_waiter_s {
  rt_task_done_fn fn;
  void *ud;
  struct rt_task_waiter_s *next;
} rt_task_waiter_t;

static rt_task_t **extra(lua_State *co) { return (rt_task_t **)lua_getextraspace(co); }

static void task_step(rt_task_t *t, int nargs);

/* ---- the ready queue ------------------------------------------------------------------------ */

static void on_uv_idle(uv_idle_t *h);

static void ready_push(rt_t *rt, rt_task_t *t, int nargs) {
  rt_tasks_t *q = &rt->tasks;
  t->state = RT_TASK_READY;
  t->resume_nargs = nargs;
  t->ready_next = NULL;
  if (q->ready_tail) q->ready_tail->ready_next = t;
  else q->ready_head = t;
  q->ready_tail = t;
  if (!uv_is_active((uv_handle_t *)&q->idle) && !uv_is_closing((uv_handle_t *)&q->idle))
    uv_idle_start(&q->idle, on_uv_idle);
}

static void ready_unlink(rt_t *rt, rt_task_t *t) {
  rt_tasks_t *q = &rt->tasks;
  rt_task_t **pp = &q->ready_head, *prev = NULL;
  while (*pp && *pp != t) { prev = *pp; pp = &(*pp)->ready_next; }
  if (!*pp) return;
  *pp = t->ready_next;
  if (q->ready_tail == t) q->ready_tail = prev;
}

/* Resume the tasks that were ready when this iteration began; ones queued meanwhile wait for the
** next iteration so I/O callbacks are not starved by tasks that keep yielding. */
static void on_uv_idle(uv_idle_t *h) {
  rt_t *rt = h->data;
  rt_tasks_t *q = &rt->tasks;
  rt_task_t *last = q->ready_tail;
  while (q->ready_head) {
    rt_task_t *t = q->ready_head;
    q->ready_head = t->ready_next;
    if (!q->ready_head) q->ready_tail = NULL;
    t->ready_next = NULL;
    task_step(t, t->resume_nargs);
    if (t == last) break;
  }
  if (!q->ready_head) uv_idle_stop(h);
}

static void on_uv_prepare(uv_prepare_t *h) { ((rt_t *)h->data)->tasks.pass++; }

int rt_tasks_init(rt_t *rt) {
  rt->tasks.next_id = 1;
  rt->tasks.idle.data = rt;
  rt->tasks.prepare.data = rt;
  int rc = uv_idle_init(&rt->loop, &rt->tasks.idle);
  if (rc == 0) rc = uv_prepare_init(&rt->loop, &rt->tasks.prepare);
  if (rc == 0) rc = uv_prepare_start(&rt->tasks.prepare, on_uv_prepare);
  if (rc == 0) uv_unref((uv_handle_t *)&rt->tasks.prepare);
  return rc;
}

void rt_tasks_close(rt_t *rt) {
  uv_handle_t *h = (uv_handle_t *)&rt->tasks.idle;
  if (h->loop && !uv_is_closing(h)) uv_close(h, NULL);
  h = (uv_handle_t *)&rt->tasks.prepare;
  if (h->loop && !uv_is_closing(h)) uv_close(h, NULL);
}

/* ---- lifetime ------------------------------------------------------------------------------- */

void rt_task_ref(rt_task_t *t) { t->refcount++; }

static void task_free(rt_task_t *t) {
  if (t->rt->L) rt_unref(t->rt, t->rt->L, t->results_ref);
  rt_task_t **pp = &t->rt->tasks.head;
  while (*pp && *pp != t) pp = &(*pp)->next;
  if (*pp) *pp = t->next;
  while (t->waiters) {
    rt_task_waiter_t *w = t->waiters;
    t->waiters = w->next;
    free(w);
  }
  free(t->error);
  free(t);
}

void rt_task_unref(rt_task_t *t) {
  if (--t->refcount == 0) task_free(t);
}

rt_task_t *rt_task_spawn(rt_t *rt, lua_State *L, int nargs, const char *name, rt_task_t *parent) {
  rt_task_t *t = calloc(1, sizeof *t);
  if (!t) {
    lua_pop(L, nargs + 1);
    return NULL;
  }
  lua_State *co = lua_newthread(L);            /* [f a1..an co] */
  *extra(co) = t;
  lua_insert(L, -(nargs + 2));                 /* [co f a1..an] */
  lua_xmove(L, co, nargs + 1);                 /* [co]; co: [f a1..an] */
  t->co_ref = rt_ref(rt, L);                   /* [] */
  t->rt = rt;
  t->co = co;
  t->id = rt->tasks.next_id++;
  snprintf(t->name, sizeof t->name, "%s", name ? name : "task");
  t->started = rt_now();
  t->refcount = 1;                             /* the runtime's, dropped when the task ends */
  t->results_ref = LUA_NOREF;
  t->root = t;
  if (parent) {
    t->root = parent->root;
    rt_task_ref(t->root);                      /* released when t ends */
  }
  t->next = rt->tasks.head;
  rt->tasks.head = t;
  rt->tasks.live++;
  ready_push(rt, t, nargs);
  return t;
}

rt_task_t *rt_task_current(lua_State *L) {
  rt_task_t *t = *extra(L);
  return (t && t->co == L) ? t : NULL;
}

rt_task_t *rt_task_find(rt_t *rt, uint64_t id) {
  for (rt_task_t *t = rt->tasks.head; t; t = t->next)
    if (t->id == id) return t;
  return NULL;
}

/* ---- ending --------------------------------------------------------------------------------- */

/* Copy the error value and the coroutine's traceback into t->error. stack(co): [err] -> [err] */
static void take_error(rt_task_t *t) {
  lua_State *co = t->co;
  const char *msg = lua_tostring(co, -1);
  if (!msg) {
    if (luaL_callmeta(co, -1, "__tostring") && lua_type(co, -1) == LUA_TSTRING) {
      msg = lua_tostring(co, -1);
      lua_replace(co, -2);
    } else {
      msg = lua_pushfstring(co, "(error object is a %s value)", luaL_typename(co, -1));
      lua_replace(co, -2);
    }
  }
  luaL_traceback(co, co, msg, 0);              /* [err tb] */
  t->error = strdup(lua_tostring(co, -1));
  lua_pop(co, 1);
}

static void task_finish(rt_task_t *t, rt_task_status_t status) {
  rt_t *rt = t->rt;
  t->state = RT_TASK_DONE;
  t->status = status;
  t->cancel_fn = NULL;
  rt->tasks.live--;
  if (status == RT_TASK_ERROR)
    rt_log_write(rt->log, RT_LOG_ERROR, t->name, t->error ? t->error : "task failed", NULL);
  rt_task_ref(t);                              /* waiters may drop the last other reference */
  rt_task_waiter_t *w = t->waiters;
  t->waiters = NULL;
  while (w) {                                  /* results / error value are on t->co meanwhile */
    rt_task_waiter_t *next = w->next;
    w->fn(t, w->ud);
    free(w);
    w = next;
  }
  if (status == RT_TASK_OK && t->nres > 0 && t->handles > 0) {   /* a handle may join later */
    lua_State *co = t->co;
    lua_createtable(co, t->nres, 0);
    lua_insert(co, -(t->nres + 1));            /* [tbl r1..rn] */
    for (int i = t->nres; i >= 1; i--) lua_rawseti(co, -(i + 1), i);
    t->results_ref = rt_ref(rt, co);
  }
  lua_settop(t->co, 0);
  rt_unref(rt, rt->L, t->co_ref);              /* the coroutine may be collected now */
  t->co_ref = LUA_NOREF;
  t->co = NULL;
  if (t->root != t) {
    rt_task_unref(t->root);
    t->root = t;
  }
  t->refcount--;                               /* the runtime's reference (ours still holds t) */
  rt_task_unref(t);                            /* ours, taken above */
  if (rt->tasks.live == 0 && rt->stopping && rt->on_idle_stop) rt->on_idle_stop(rt);
}

void rt_task_restart_slice(rt_task_t *t) {
  if (t && !t->interrupted) t->resumed_ns = uv_hrtime();
}

/* ---- running -------------------------------------------------------------------------------- */

static void task_step(rt_task_t *t, int nargs) {
  rt_tasks_t *q = &t->rt->tasks;
  rt_task_t *prev = q->current;
  int nres = 0, st;
  t->state = RT_TASK_RUNNING;
  t->cancel_fn = NULL;
  q->current = t;
  t->resumed_ns = uv_hrtime();                 /* a fresh CPU slice (vm.c's count hook) */
  st = lua_resume(t->co, NULL, nargs, &nres);
  q->current = prev;
  if (st == LUA_YIELD) {
    if (t->state == RT_TASK_RUNNING) {         /* a bare coroutine.yield(): let others run, go on */
      lua_pop(t->co, nres);
      ready_push(t->rt, t, 0);
    }
    return;
  }
  if (st == LUA_OK) {
    t->nres = nres;
    task_finish(t, RT_TASK_OK);
  } else {
    if (st == LUA_ERRMEM) rt_vm_name_memory_error(t->co);
    take_error(t);
    task_finish(t, RT_TASK_ERROR);
  }
}

rt_task_t *rt_task_check_can_park(lua_State *L, const char *what) {
  rt_task_t *t = rt_task_current(L);
  if (!t)
    luaL_error(L, "%s: must be called from a task (a scheduled run, rt.task.spawn or candled eval), "
                  "not at load time or inside a coroutine of the script's own", what);
  /* Before the yieldable test: inside db.tx the task is never yieldable (fn runs under lua_pcall
  ** from C), and the C-call message would hide the real reason. */
  if (t->rt->store && rt_store_tx_depth(t->rt->store) > 0)
    luaL_error(L, "%s: cannot wait inside db.tx (it would hold the write lock while waiting)", what);
  if (!lua_isyieldable(L))
    luaL_error(L, "%s: cannot wait inside a C call (a metamethod, table.sort comparator or "
                  "string.gsub callback)", what);
  return t;
}

int rt_task_park_k(lua_State *L, const char *what, lua_KContext ctx, lua_KFunction k) {
  rt_task_t *t = rt_task_check_can_park(L, what);
  t->state = RT_TASK_PARKED;
  t->parked_pass = t->rt->tasks.pass;
  t->yields++;
  return lua_yieldk(L, 0, ctx, k);
}

int rt_task_park(lua_State *L, const char *what) { return rt_task_park_k(L, what, 0, NULL); }

void rt_task_on_cancel(rt_task_t *t, rt_task_cancel_fn fn, void *ud) {
  t->cancel_fn = fn;
  t->cancel_ud = ud;
}

/*
** A task that parked in this same loop pass is resumed from the ready queue, not from here. libuv
** runs a 0 ms timer started inside a timer callback in the same pass (1.44), and a primitive may
** finish at once through one (time.sleep(0), a budget's fast failure, queued watch events): resumed
** directly, a task looping on such a call would never give the loop back. The ready queue takes
** only the tasks queued before it started, so I/O and timers run between two such steps.
*/
void rt_task_resume(rt_task_t *t, int nargs) {
  if (t->state != RT_TASK_PARKED) {            /* not ours to resume: drop the values */
    if (t->co) lua_pop(t->co, nargs);
    return;
  }
  if (t->parked_pass == t->rt->tasks.pass) {
    t->cancel_fn = NULL;                       /* the primitive is done: nothing left to cancel */
    ready_push(t->rt, t, nargs);
    return;
  }
  task_step(t, nargs);
}

void rt_task_resume_later(rt_task_t *t, int nargs) {
  if (t->state != RT_TASK_PARKED) {
    if (t->co) lua_pop(t->co, nargs);
    return;
  }
  ready_push(t->rt, t, nargs);                 /* cancel_fn stays: cancelling a queued resume */
}

int rt_task_on_done(rt_task_t *t, rt_task_done_fn fn, void *ud) {
  if (t->state == RT_TASK_DONE) {
    fn(t, ud);
    return 0;
  }
  rt_task_waiter_t *w = malloc(sizeof *w), **pp = &t->waiters;
  if (!w) return -1;
  w->fn = fn;
  w->ud = ud;
  w->next = NULL;
  while (*pp) pp = &(*pp)->next;               /* keep registration order */
  *pp = w;
  return 0;
}

void rt_task_off_done(rt_task_t *t, rt_task_done_fn fn, void *ud) {
  for (rt_task_waiter_t **pp = &t->waiters; *pp; pp = &(*pp)->next)
    if ((*pp)->fn == fn && (*pp)->ud == ud) {
      rt_task_waiter_t *w = *pp;
      *pp = w->next;
      free(w);
      return;
    }
}

int rt_task_cancel(rt_task_t *t) {
  if (t->state == RT_TASK_DONE || t->state == RT_TASK_RUNNING) return -1;
  if (t->state == RT_TASK_READY) ready_unlink(t->rt, t);
  /* Parked, or READY with a queued resume (rt_task_resume_later keeps cancel_fn for this): the
  ** primitive's cancel function releases what the resume would have released. */
  if (t->cancel_fn) {
    rt_task_cancel_fn fn = t->cancel_fn;
    t->cancel_fn = NULL;
    fn(t->cancel_ud);                          /* aborts the I/O; must not resume t */
  }
  t->state = RT_TASK_RUNNING;                  /* __close handlers run now: t cannot be re-entered */
  if (lua_resetthread(t->co) != LUA_OK)        /* runs pending <close>; an error there is logged */
    rt_log_printf(t->rt->log, RT_LOG_WARN, t->name, "error while closing cancelled task: %s",
                  lua_tostring(t->co, -1));
  lua_settop(t->co, 0);
  task_finish(t, RT_TASK_CANCELLED);
  return 0;
}

void rt_task_cancel_all(rt_t *rt) {
  for (;;) {
    rt_task_t *t = rt->tasks.head;
    while (t && (t->state == RT_TASK_DONE || t->state == RT_TASK_RUNNING)) t = t->next;
    if (!t) return;
    rt_task_cancel(t);
  }
}

const char *rt_task_state_name(rt_task_state_t s) {
  static const char *const names[] = {"ready", "running", "parked", "done"};
  return names[s];
}

const char *rt_task_status_name(rt_task_status_t s) {
  static const char *const names[] = {"ok", "error", "cancelled"};
  return names[s];
}

/* ---- accessors ------------------------------------------------------------------------------ */

rt_t *rt_task_rt(const rt_task_t *t) { return t->rt; }
uint64_t rt_task_id(const rt_task_t *t) { return t->id; }
const char *rt_task_name(const rt_task_t *t) { return t->name; }
rt_task_state_t rt_task_state(const rt_task_t *t) { return t->state; }
rt_task_status_t rt_task_status(const rt_task_t *t) { return t->status; }
const char *rt_task_error(const rt_task_t *t) { return t->status == RT_TASK_ERROR ? t->error : NULL; }
double rt_task_started(const rt_task_t *t) { return t->started; }
int rt_task_yields(const rt_task_t *t) { return t->yields; }
int rt_task_nres(const rt_task_t *t) { return t->nres; }
int rt_task_results_ref(const rt_task_t *t) { return t->results_ref; }
const char *rt_task_run_name(const rt_task_t *t) { return t->root->name; }
void rt_task_count_rows(rt_task_t *t, int64_t n) { t->root->rows += n; }
void rt_task_handles_add(rt_task_t *t, int delta) { t->handles += delta; }
rt_task_t *rt_task_first(rt_t *rt) { return rt->tasks.head; }
rt_task_t *rt_task_next(const rt_task_t *t) { return t->next; }
