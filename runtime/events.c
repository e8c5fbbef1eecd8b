/*
** runtime/events.c - the event bus (see events.h): staging until commit, the subscribers' bounded
** queues, and the overflow policy.
*/
#include "runtime/events.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "runtime/alert.h"
#include "runtime/log.h"
#include "runtime/store.h"

typedef struct {
  rt_event_t *ev;
  int depth;                   /* the store's transaction depth when it was staged */
} staged_t;

struct rt_events_s {
  rt_t *rt;
  rt_store_t *hooked;          /* the store whose transactions we follow */
  staged_t *staged;
  size_t nstaged, capstaged;
  rt_events_sub_t *subs;
  uint64_t seq, next_id;
  uv_timer_t alarm;            /* raises/resolves events_overflow outside commits */
  int alarm_open;
};


static void strv_free(char **v) {
  if (!v) return;
  for (char **p = v; *p; p++) free(*p);
  free(v);
}

static char **strv_dup(const char *const *v) {
  size_t n = 0;
  while (v[n]) n++;
  char **out = calloc(n + 1, sizeof *out);
  if (!out) return NULL;
  for (size_t i = 0; i < n; i++)
    if (!(out[i] = strdup(v[i]))) {
      strv_free(out);
      return NULL;
    }
  return out;
}

/* ---- events --------------------------------------------------------------------------------- */

rt_event_t *rt_event_new(const char *kind, const rt_event_field_t *fields, int n) {
  size_t size = sizeof(rt_event_t) + (size_t)n * sizeof(rt_event_field_t) + strlen(kind) + 1;
  for (int i = 0; i < n; i++) {
    size += strlen(fields[i].key) + 1;
    if (fields[i].type == RT_EV_TEXT) size += fields[i].n + 1;
  }
  rt_event_t *ev = malloc(size);
  if (!ev) return NULL;
  ev->refs = 1;
  ev->seq = 0;
  ev->time = 0;
  ev->nfields = n;
  char *p = (char *)&ev->f[n];
  ev->kind = strcpy(p, kind);
  p += strlen(kind) + 1;
  for (int i = 0; i < n; i++) {
    ev->f[i] = fields[i];
    ev->f[i].key = strcpy(p, fields[i].key);
    p += strlen(fields[i].key) + 1;
    if (fields[i].type == RT_EV_TEXT) {
      memcpy(p, fields[i].s, fields[i].n);
      p[fields[i].n] = 0;
      ev->f[i].s = p;
      p += fields[i].n + 1;
    }
  }
  return ev;
}

void rt_event_ref(rt_event_t *ev) { ev->refs++; }

void rt_event_unref(rt_event_t *ev) {
  if (ev && --ev->refs == 0) free(ev);
}

static const rt_event_field_t *field_of(const rt_event_t *ev, const char *key) {
  for (int i = 0; i < ev->nfields; i++)
    if (strcmp(ev->f[i].key, key) == 0) return &ev->f[i];
  return NULL;
}

/* ---- subscribers ---------------------------------------------------------------------------- */

static int kind_matches(const rt_events_sub_t *sub, const char *kind) {
  if (!sub->kinds) return 1;
  for (char **k = sub->kinds; *k; k++)
    if (strcmp(*k, kind) == 0) return 1;
  return 0;
}

static int matches(const rt_events_sub_t *sub, const rt_event_t *ev) {
  if (sub->closed || !kind_matches(sub, ev->kind)) return 0;
  for (int i = 0; sub->fkeys && sub->fkeys[i]; i++) {
    const rt_event_field_t *f = field_of(ev, sub->fkeys[i]);
    if (!f || f->type != RT_EV_TEXT) return 0;
    int ok = 0;
    for (char **v = sub->fvals[i]; *v && !ok; v++) ok = strcmp(*v, f->s) == 0;
    if (!ok) return 0;
  }
  return 1;
}

static void on_alarm(uv_timer_t *t) {
  rt_events_t *bus = t->data;
  char msg[160];
  for (rt_events_sub_t *s = bus->subs; s; s = s->next) {
    if (s->overflowed && !s->closed) {        /* opened, or refreshed with the count so far */
      snprintf(msg, sizeof msg, "subscriber '%s' fell behind: %llu event(s) dropped (queue of %d)", s->name,
               (unsigned long long)s->dropped, s->cap);
      s->overflowed = 0;
      s->alerted = 1;
      rt_alert_raise(bus->rt, "events_overflow", s->name, "warn", msg);
    }
    if (s->alerted && s->len == 0 && s->dropped_pending == 0) {   /* caught up (maybe already) */
      s->alerted = 0;
      rt_alert_resolve(bus->rt, "events_overflow", s->name);
    }
  }
}

static void arm_alarm(rt_events_t *bus) {
  if (bus->alarm_open && !bus->rt->stopping) uv_timer_start(&bus->alarm, on_alarm, 0, 0);
}

static void enqueue(rt_events_sub_t *sub, rt_event_t *ev) {
  if (sub->len == sub->cap) {
    if (sub->dropped_pending++ == 0) sub->first_drop = ev->seq, sub->ahead = sub->len;
    sub->last_drop = ev->seq;
    sub->dropped++;
    sub->overflowed = 1;
    arm_alarm(sub->bus);
    return;
  }
  rt_event_ref(ev);
  sub->q[(sub->head + sub->len) % sub->cap] = ev;
  sub->len++;
  if (sub->waiter && sub->wake) sub->wake(sub);
}

static void deliver(rt_events_t *bus, rt_event_t *ev) {
  ev->seq = ++bus->seq;
  ev->time = rt_now();
  for (rt_events_sub_t *s = bus->subs; s; s = s->next)
    if (matches(s, ev)) enqueue(s, ev);
  rt_event_unref(ev);
}

/* The store's transaction listener: deliver what committed, drop what rolled back. */
static void on_tx(void *ud, int committed, int depth) {
  rt_events_t *bus = ud;
  if (committed) {
    /* Delivery may start new writes (an alert): take the list first. */
    staged_t *list = bus->staged;
    size_t n = bus->nstaged;
    bus->staged = NULL;
    bus->nstaged = bus->capstaged = 0;
    for (size_t i = 0; i < n; i++) deliver(bus, list[i].ev);
    free(list);
    return;
  }
  while (bus->nstaged > 0 && bus->staged[bus->nstaged - 1].depth > depth)
    rt_event_unref(bus->staged[--bus->nstaged].ev);
}

rt_events_t *rt_events_of(rt_t *rt) {
  if (!rt->events) {
    rt_events_t *bus = calloc(1, sizeof *bus);
    if (!bus) return NULL;
    bus->rt = rt;
    if (uv_timer_init(&rt->loop, &bus->alarm) == 0) {
      bus->alarm.data = bus;
      uv_unref((uv_handle_t *)&bus->alarm);
      bus->alarm_open = 1;
    }
    rt->events = bus;
  }
  rt_events_t *bus = rt->events;
  if (rt->store && bus->hooked != rt->store) {
    rt_store_on_tx(rt->store, on_tx, bus);
    bus->hooked = rt->store;
  }
  return bus;
}

void rt_events_emit(rt_t *rt, rt_event_t *ev) {
  rt_events_t *bus = rt_events_of(rt);
  if (!bus) {
    rt_event_unref(ev);
    return;
  }
  int depth = rt->store ? rt_store_tx_depth(rt->store) : 0;
  if (depth == 0) {
    deliver(bus, ev);
    return;
  }
  if (bus->nstaged == bus->capstaged) {
    size_t cap = bus->capstaged ? bus->capstaged * 2 : 64;
    staged_t *grown = realloc(bus->staged, cap * sizeof *grown);
    if (!grown) {
      rt_log_printf(rt->log, RT_LOG_ERROR, NULL, "events: out of memory: a %s event is lost", ev->kind);
      rt_event_unref(ev);
      return;
    }
    bus->staged = grown;
    bus->capstaged = cap;
  }
  bus->staged[bus->nstaged++] = (staged_t){ev, depth};
}

int rt_events_wants(rt_t *rt, const char *kind) {
  if (!rt->events) return 0;
  for (rt_events_sub_t *s = rt->events->subs; s; s = s->next)
    if (!s->closed && kind_matches(s, kind)) return 1;
  return 0;
}

rt_events_sub_t *rt_events_subscribe(rt_t *rt, const char *name, const char *const *kinds,
                                     const char *const *fkeys, const char *const *const *fvals, int cap) {
  rt_events_t *bus = rt_events_of(rt);
  if (!bus || cap < 1) return NULL;
  rt_events_sub_t *sub = calloc(1, sizeof *sub);
  if (!sub) return NULL;
  sub->bus = bus;
  sub->id = ++bus->next_id;
  snprintf(sub->name, sizeof sub->name, "%s", name);
  sub->cap = cap;
  int nf = 0;
  while (fkeys && fkeys[nf]) nf++;
  int bad = !(sub->q = calloc((size_t)cap, sizeof *sub->q));
  if (!bad && kinds) bad = !(sub->kinds = strv_dup(kinds));
  if (!bad && nf) {
    bad = !(sub->fkeys = strv_dup(fkeys)) || !(sub->fvals = calloc((size_t)nf, sizeof *sub->fvals));
    for (int i = 0; !bad && i < nf; i++) bad = !(sub->fvals[i] = strv_dup(fvals[i]));
  }
  if (bad) {
    sub->closed = 1;
    rt_events_sub_free(sub);                   /* not in the list yet: only freed */
    return NULL;
  }
  rt_events_sub_t **tail = &bus->subs;         /* appended: stats list in subscription order */
  while (*tail) tail = &(*tail)->next;
  *tail = sub;
  return sub;
}

rt_event_t *rt_events_pop(rt_events_sub_t *sub) {
  if (sub->dropped_pending > 0 && sub->ahead == 0) {
    rt_event_field_t f[3] = {{"dropped", RT_EV_INT, (int64_t)sub->dropped_pending, 0, NULL, 0},
                             {"first_seq", RT_EV_INT, (int64_t)sub->first_drop, 0, NULL, 0},
                             {"last_seq", RT_EV_INT, (int64_t)sub->last_drop, 0, NULL, 0}};
    rt_event_t *ev = rt_event_new("overflow", f, 3);
    if (ev) {
      ev->time = rt_now();
      sub->dropped_pending = 0;
      return ev;
    }
  }
  if (sub->len == 0) {
    if (sub->alerted) arm_alarm(sub->bus);     /* caught up: resolve the alert */
    return NULL;
  }
  rt_event_t *ev = sub->q[sub->head];
  if (sub->dropped_pending > 0) sub->ahead--;
  sub->head = (sub->head + 1) % sub->cap;
  sub->len--;
  sub->delivered++;
  return ev;
}

static void drain(rt_events_sub_t *sub) {
  while (sub->len > 0) {
    rt_event_unref(sub->q[sub->head]);
    sub->head = (sub->head + 1) % sub->cap;
    sub->len--;
  }
}

void rt_events_sub_close(rt_events_sub_t *sub) {
  if (sub->closed) return;
  sub->closed = 1;
  drain(sub);
  if (sub->waiter && sub->wake) sub->wake(sub);
}

void rt_events_sub_free(rt_events_sub_t *sub) {
  rt_events_t *bus = sub->bus;
  for (rt_events_sub_t **p = &bus->subs; *p; p = &(*p)->next)
    if (*p == sub) {
      *p = sub->next;
      break;
    }
  if (sub->alerted && bus->rt->store && !bus->rt->stopping) rt_alert_resolve(bus->rt, "events_overflow", sub->name);
  drain(sub);
  free(sub->q);
  strv_free(sub->kinds);
  if (sub->fvals)
    for (int i = 0; sub->fkeys && sub->fkeys[i]; i++) strv_free(sub->fvals[i]);
  free(sub->fvals);
  strv_free(sub->fkeys);
  free(sub);
}

rt_events_sub_t *rt_events_subs(rt_t *rt) { return rt->events ? rt->events->subs : NULL; }

rt_events_sub_t *rt_events_sub_find(rt_t *rt, uint64_t id) {
  for (rt_events_sub_t *s = rt_events_subs(rt); s; s = s->next)
    if (s->id == id) return s;
  return NULL;
}

void rt_events_stop(rt_t *rt) {
  for (rt_events_sub_t *s = rt_events_subs(rt); s; s = s->next) rt_events_sub_close(s);
}

static void on_alarm_closed(uv_handle_t *h) { free(h->data); }

void rt_events_close(rt_t *rt) {
  rt_events_t *bus = rt->events;
  if (!bus) return;
  rt->events = NULL;
  if (bus->hooked && bus->hooked == rt->store) rt_store_on_tx(rt->store, NULL, NULL);
  for (size_t i = 0; i < bus->nstaged; i++) rt_event_unref(bus->staged[i].ev);
  free(bus->staged);
  while (bus->subs) {
    bus->subs->closed = 1;
    rt_events_sub_free(bus->subs);
  }
  if (bus->alarm_open) {
    uv_close((uv_handle_t *)&bus->alarm, on_alarm_closed);   /* bus freed by the close callback */
  } else {
    free(bus);
  }
}
