/*
** runtime/file_watch.c - a watcher of one file by polling stat() (file_watch.h), behind rt.fs.watch.
**
** Why not uv_fs_poll_t: it reports differences between two of its own consecutive stats, and its
** first stat runs later on the thread pool, so a change between fs.watch() and that first stat
** would never be reported. We keep the baseline ourselves (a stat when the watcher is created and
** whenever a wait returns true) and compare every later stat with it. w:wait() stats once on the
** loop thread, so a change made while nobody waited is seen at once; then, while the task is
** parked, a uv_timer_t starts a uv_fs_stat on the thread pool every interval (counted from the
** watcher's creation, so waits shorter than the interval still get their polls). Nothing runs while
** no task waits.
*/
#include "runtime/file_watch.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

/* What counts as a change. A stat that fails (missing file, no permission) is "absent". */
typedef struct {
  int exists;
  uint64_t dev, ino, size;
  int64_t mtime_sec, mtime_nsec;
} watch_stat_t;

/*
** A watcher. Ownership: malloc'd by rt_file_watch_new; its user (rt.fs's userdata) may drop it
** only through rt_file_watch_close, which marks it closed and uv_closes both timers;
** watch_maybe_free frees it once both close callbacks have run and no stat is in flight (libuv
** writes into `req` until its callback).
*/
struct rt_file_watch_s {
  uv_timer_t tick;          /* while a task waits: starts a stat every interval */
  uv_timer_t timeout;       /* while a task waits with a timeout */
  uv_fs_t req;              /* the stat in flight while `busy` */
  char *path;               /* owned */
  uint64_t interval_ms;
  uint64_t created_ms;      /* uv_now() at creation: stats are due at whole intervals from it */
  watch_stat_t base;        /* the file at creation or when the last wait returned true */
  unsigned base_gen;        /* bumped when base changes: a stat begun before is ignored */
  unsigned req_gen;         /* base_gen when the stat in flight was started */
  int waiter;               /* a wait is in progress */
  int busy;                 /* req is in flight */
  int open_handles;         /* timers whose close callback has not run yet */
  int closed;
  rt_file_watch_fn fn;      /* the completion of the wait in progress (waiter != NULL) */
  void *ud;
};

static void stat_sync(const char *path, watch_stat_t *s) {
  struct stat st;
  memset(s, 0, sizeof *s);
  if (stat(path, &st) < 0) return;
  s->exists = 1;
  s->dev = (uint64_t)st.st_dev;
  s->ino = (uint64_t)st.st_ino;
  s->size = (uint64_t)st.st_size;
  s->mtime_sec = (int64_t)st.st_mtim.tv_sec;
  s->mtime_nsec = (int64_t)st.st_mtim.tv_nsec;
}

static void stat_from_req(const uv_fs_t *req, watch_stat_t *s) {
  memset(s, 0, sizeof *s);
  if (req->result < 0) return;
  s->exists = 1;
  s->dev = req->statbuf.st_dev;
  s->ino = req->statbuf.st_ino;
  s->size = req->statbuf.st_size;
  s->mtime_sec = req->statbuf.st_mtim.tv_sec;
  s->mtime_nsec = req->statbuf.st_mtim.tv_nsec;
}

static int stat_eq(const watch_stat_t *a, const watch_stat_t *b) {
  if (a->exists != b->exists) return 0;
  return !a->exists || (a->dev == b->dev && a->ino == b->ino && a->size == b->size &&
                        a->mtime_sec == b->mtime_sec && a->mtime_nsec == b->mtime_nsec);
}

static void watch_maybe_free(rt_file_watch_t *w) {
  if (w->open_handles > 0 || w->busy) return;
  free(w->path);
  free(w);
}

static void on_uv_watch_closed(uv_handle_t *h) {
  rt_file_watch_t *w = h->data;
  w->open_handles--;
  watch_maybe_free(w);
}

/* End the wait with `changed`. Called from libuv callbacks only; the completion may wait again or
** close w, so w is not touched after. */
static void watch_resume(rt_file_watch_t *w, int changed) {
  w->waiter = 0;
  uv_timer_stop(&w->tick);
  uv_timer_stop(&w->timeout);
  w->fn(w->ud, changed);
}

static void on_watch_stat(uv_fs_t *req) {
  rt_file_watch_t *w = req->data;
  watch_stat_t now;
  stat_from_req(req, &now);
  uv_fs_req_cleanup(req);
  w->busy = 0;
  if (w->closed) {
    watch_maybe_free(w);
    return;
  }
  if (!w->waiter || w->req_gen != w->base_gen || stat_eq(&now, &w->base)) return;
  w->base = now;
  w->base_gen++;
  watch_resume(w, 1);
}

static void on_uv_watch_tick(uv_timer_t *tm) {
  rt_file_watch_t *w = tm->data;
  if (w->busy) return;                         /* the last stat is still running (slow disk) */
  w->req.data = w;
  if (uv_fs_stat(tm->loop, &w->req, w->path, on_watch_stat) == 0) {   /* else: next tick */
    w->busy = 1;
    w->req_gen = w->base_gen;
  }
}

static void on_uv_watch_timeout(uv_timer_t *tm) { watch_resume(tm->data, 0); }

void rt_file_watch_cancel_wait(rt_file_watch_t *w) {
  w->waiter = 0;
  uv_timer_stop(&w->tick);
  uv_timer_stop(&w->timeout);
}

void rt_file_watch_close(rt_file_watch_t *w) {
  w->closed = 1;
  if (w->waiter) {
    w->waiter = 0;
    w->fn(w->ud, -1);
  }
  uv_close((uv_handle_t *)&w->tick, on_uv_watch_closed);
  uv_close((uv_handle_t *)&w->timeout, on_uv_watch_closed);
}

rt_file_watch_t *rt_file_watch_new(rt_t *rt, const char *path, double interval) {
  rt_file_watch_t *w = calloc(1, sizeof *w);
  char *copy = strdup(path);
  if (!w || !copy) {
    free(w);
    free(copy);
    return NULL;
  }
  uv_loop_t *loop = &rt->loop;
  w->path = copy;
  w->interval_ms = interval * 1000 < 1 ? 1 : (uint64_t)llround(interval * 1000);
  uv_timer_init(loop, &w->tick);
  uv_timer_init(loop, &w->timeout);
  w->tick.data = w->timeout.data = w;
  w->open_handles = 2;
  w->created_ms = uv_now(loop);
  stat_sync(path, &w->base);
  return w;
}

const char *rt_file_watch_path(const rt_file_watch_t *w) { return w->path; }

int rt_file_watch_waiting(const rt_file_watch_t *w) { return w->waiter; }

int rt_file_watch_wait(rt_file_watch_t *w, double timeout, rt_file_watch_fn fn, void *ud) {
  watch_stat_t now;
  stat_sync(w->path, &now);
  if (!stat_eq(&now, &w->base)) {              /* changed while nobody waited */
    w->base = now;
    w->base_gen++;
    return 1;
  }
  w->waiter = 1;
  w->fn = fn;
  w->ud = ud;
  /* Keep the polling phase across waits, so waits shorter than the interval still see polls. */
  uint64_t since = uv_now(w->tick.loop) - w->created_ms;
  uv_timer_start(&w->tick, on_uv_watch_tick, w->interval_ms - since % w->interval_ms, w->interval_ms);
  if (timeout >= 0) uv_timer_start(&w->timeout, on_uv_watch_timeout, (uint64_t)llround(timeout * 1000), 0);
  return 0;
}
