/*
** runtime/watch.c - directory change events and SIGHUP for one waiter (watch.h).
**
** One malloc'd watcher_t holds a timer (the timeout of a wait, and the deferred delivery of queued
** events), an optional SIGHUP handle and one uv_fs_event_t per directory. Each handle counts in
** open_handles; the last close callback frees the struct (close_done).
*/
#include "runtime/watch.h"

#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct dir_s {
  uv_fs_event_t h;
  rt_watch_t *w;
  struct dir_s *next;
  char path[];              /* owned with the struct */
} dir_t;

struct rt_watch_s {
  rt_t *rt;
  dir_t *dirs;              /* watched directories; each freed in its close callback */
  uv_signal_t sig;
  int sig_on;               /* sig initialised (rt_watch_hup) */
  uv_timer_t timer;         /* the timeout of a wait */
  int closed;               /* rt_watch_close ran: handles are closing */
  int open_handles;         /* handles initialised and not yet closed back */
  char **events;            /* queued "dir/name" paths (owned), n of cap */
  int n, cap;
  int hup;                  /* SIGHUP seen since the last wait completed */
  rt_watch_fn fn;           /* the wait in progress, or NULL */
  void *ud;
};

/* ---- closing -------------------------------------------------------------------------------- */

static void close_done(rt_watch_t *w) {
  if (--w->open_handles > 0) return;
  for (int i = 0; i < w->n; i++) free(w->events[i]);
  free(w->events);
  free(w);
}

static void on_uv_dir_closed(uv_handle_t *h) {
  dir_t *d = h->data;
  rt_watch_t *w = d->w;
  free(d);
  close_done(w);
}

static void on_uv_closed(uv_handle_t *h) { close_done(h->data); }

static void dir_close(dir_t *d) {
  uv_fs_event_stop(&d->h);
  uv_close((uv_handle_t *)&d->h, on_uv_dir_closed);
}

/* ---- delivering ----------------------------------------------------------------------------- */

/* Complete the wait with the queued events (none: timeout or close). The queue is emptied before
** the completion runs: it may resume the task at once, which may wait again (or close w, which then
** lives on until its close callbacks), and must find nothing queued. */
static void deliver_as(rt_watch_t *w, int closing) {
  rt_watch_fn fn = w->fn;
  if (!fn) return;
  w->fn = NULL;
  uv_timer_stop(&w->timer);
  char **events = w->events;
  int n = w->n, hup = w->hup;
  w->events = NULL;
  w->n = w->cap = 0;
  w->hup = 0;
  fn(w->ud, (const char *const *)events, n, hup, closing);
  for (int i = 0; i < n; i++) free(events[i]);
  free(events);
}

static void deliver(rt_watch_t *w) { deliver_as(w, 0); }

static void queue(rt_watch_t *w, const char *dir, const char *name) {
  if (w->n == w->cap) {
    int cap = w->cap ? w->cap * 2 : 16;
    char **p = realloc(w->events, (size_t)cap * sizeof *p);
    if (!p) return;                            /* out of memory: the wake-up still happens */
    w->events = p;
    w->cap = cap;
  }
  size_t len = strlen(dir) + (name ? strlen(name) + 1 : 0) + 1;
  char *s = malloc(len);
  if (!s) return;
  snprintf(s, len, name ? "%s/%s" : "%s", dir, name);
  w->events[w->n++] = s;
}

static void on_uv_fs_event(uv_fs_event_t *h, const char *filename, int events, int status) {
  dir_t *d = h->data;
  rt_watch_t *w = d->w;
  if (w->closed) return;
  queue(w, d->path, status < 0 ? NULL : filename);
  if (w->fn) deliver(w);
}

static void on_uv_sighup(uv_signal_t *s, int signum) {
  rt_watch_t *w = s->data;
  if (w->closed) return;
  w->hup = 1;
  if (w->fn) deliver(w);
}

static void on_uv_timeout(uv_timer_t *tm) { deliver(tm->data); }

/* ---- the API -------------------------------------------------------------------------------- */

rt_watch_t *rt_watch_new(rt_t *rt) {
  rt_watch_t *w = calloc(1, sizeof *w);
  if (!w) return NULL;
  w->rt = rt;
  uv_timer_init(&rt->loop, &w->timer);
  uv_unref((uv_handle_t *)&w->timer);
  w->timer.data = w;
  w->open_handles = 1;
  return w;
}

static dir_t *find_dir(rt_watch_t *w, const char *path, dir_t ***link) {
  for (dir_t **pp = &w->dirs; *pp; pp = &(*pp)->next)
    if (strcmp((*pp)->path, path) == 0) {
      if (link) *link = pp;
      return *pp;
    }
  return NULL;
}

void rt_watch_remove(rt_watch_t *w, const char *path) {
  dir_t **pp, *d = find_dir(w, path, &pp);
  if (!d) return;
  *pp = d->next;
  dir_close(d);
}

int rt_watch_add(rt_watch_t *w, const char *path) {
  rt_watch_remove(w, path);
  size_t len = strlen(path);
  dir_t *d = malloc(sizeof *d + len + 1);
  if (!d) return UV_ENOMEM;
  memcpy(d->path, path, len + 1);
  d->w = w;
  uv_fs_event_init(&w->rt->loop, &d->h);
  d->h.data = d;
  w->open_handles++;
  int rc = uv_fs_event_start(&d->h, on_uv_fs_event, path, 0);
  if (rc < 0) {
    uv_close((uv_handle_t *)&d->h, on_uv_dir_closed);
    return rc;
  }
  uv_unref((uv_handle_t *)&d->h);
  d->next = w->dirs;
  w->dirs = d;
  return 0;
}

int rt_watch_hup(rt_watch_t *w) {
  if (w->sig_on) return 0;
  uv_signal_init(&w->rt->loop, &w->sig);
  w->sig.data = w;
  w->sig_on = 1;
  w->open_handles++;
  int rc = uv_signal_start(&w->sig, on_uv_sighup, SIGHUP);
  if (rc < 0) return rc;
  uv_unref((uv_handle_t *)&w->sig);
  return 0;
}

int rt_watch_wait(rt_watch_t *w, double timeout, rt_watch_fn fn, void *ud) {
  if (w->fn) return -1;
  w->fn = fn;
  w->ud = ud;
  if (w->n > 0 || w->hup) {                    /* queued: deliver from the loop, not from here */
    uv_timer_start(&w->timer, on_uv_timeout, 0, 0);
  } else if (timeout >= 0) {
    uv_timer_start(&w->timer, on_uv_timeout, rt_ms(timeout), 0);
  }
  return 0;
}

int rt_watch_waiting(const rt_watch_t *w) { return w->fn != NULL; }

void rt_watch_cancel_wait(rt_watch_t *w) {
  w->fn = NULL;
  uv_timer_stop(&w->timer);
}

void rt_watch_close(rt_watch_t *w) {
  w->closed = 1;
  if (w->fn) deliver_as(w, 1);                 /* the waiter gets nothing */
  while (w->dirs) {
    dir_t *d = w->dirs;
    w->dirs = d->next;
    dir_close(d);
  }
  if (w->sig_on) {
    uv_signal_stop(&w->sig);
    uv_close((uv_handle_t *)&w->sig, on_uv_closed);
  }
  uv_close((uv_handle_t *)&w->timer, on_uv_closed);
}

const char *rt_watch_strerror(int err) { return uv_strerror(err); }

const char *rt_watch_errname(int err) { return uv_err_name(err); }
