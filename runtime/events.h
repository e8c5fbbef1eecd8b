/*
** runtime/events.h - the event bus: what the runtime wrote, told to subscribers after it committed.
**
** An event is a kind ("candle", "trade", "alert", "series_gap", or any kind a script publishes)
** and a flat list of fields (text, integer, real, boolean); a field named "a.b" is field b of a
** table a (one level), e.g. "bar.close". Events are immutable and reference counted: one copy is
** shared by every queue that holds it.
**
** Emitting: inside a store transaction the event is staged; it reaches the subscribers when the
** outermost transaction commits, and is dropped when the savepoint or transaction it was staged in
** rolls back (the store tells the bus: rt_store_on_tx). Outside a transaction it is delivered at
** once. Every delivered event gets the next sequence number: subscribers see commit order.
**
** Subscribers: a kind filter (one kind, several, or any) and field filters (field = one of some
** strings), and a bounded queue. Delivery never waits: when a subscriber's queue is full the event
** is dropped for that subscriber only, counted, and the subscriber's next delivery is preceded by
** an "overflow" event {dropped = n, first_seq, last_seq}; alert `events_overflow` (subject: the
** subscriber's name) opens (or is refreshed with the count) soon after, from a 0 ms timer, never
** inside the commit, and resolves once the subscriber has emptied its queue (at that same tick
** when it already has). The task side (parking, handing events to Lua) is in
** bindings/events.c.
**
** Lifetime: the bus is created on first use (rt_events_of) and freed by rt_events_close (rt_close).
** A subscriber is owned by the bus; bindings/events.c frees it once its task has ended. Loop thread.
*/
#ifndef RT_EVENTS_H
#define RT_EVENTS_H

#include <stddef.h>
#include <stdint.h>

#include "runtime/rt.h"

#define RT_EV_TEXT 1
#define RT_EV_INT 2
#define RT_EV_REAL 3
#define RT_EV_BOOL 4

typedef struct {
  const char *key;             /* "source", "bar.close" */
  int type;                    /* RT_EV_* */
  int64_t i;                   /* RT_EV_INT, RT_EV_BOOL */
  double d;                    /* RT_EV_REAL */
  const char *s;               /* RT_EV_TEXT: not NUL-terminated in input; copied */
  size_t n;
} rt_event_field_t;

typedef struct rt_event_s {
  int refs;
  uint64_t seq;                /* 0 until delivered */
  double time;                 /* rt_now() at delivery */
  char *kind;                  /* inside the same allocation */
  int nfields;
  rt_event_field_t f[];        /* keys and text inside the same allocation */
} rt_event_t;

typedef struct rt_events_s rt_events_t;

typedef struct rt_events_sub_s {
  rt_events_t *bus;
  uint64_t id;
  char name[64];
  char **kinds;                /* NULL-ended; NULL = any kind */
  char **fkeys;                /* field filters: fkeys[i] must equal one of fvals[i] (NULL-ended) */
  char ***fvals;
  rt_event_t **q;              /* ring of capacity cap */
  int cap, head, len;
  uint64_t delivered, dropped, dropped_pending, first_drop, last_drop;
  int ahead;                   /* queued events older than the first pending drop */
  int closed;                  /* no more deliveries; the task ends when it sees this */
  int alerted;                 /* events_overflow is open for this subscriber */
  int overflowed;              /* dropped since the alarm last looked */
  void *waiter;                /* the parked task (rt_task_t *) waiting for an event, or NULL */
  void (*wake)(struct rt_events_sub_s *sub);   /* resumes the waiter (bindings/events.c) */
  struct rt_events_sub_s *next;
} rt_events_sub_t;

/// The process's bus, created on first use (NULL when out of memory or rt has no store yet... the
/// store is hooked once it exists). Never NULL for a live rt unless malloc failed.
rt_events_t *rt_events_of(rt_t *rt);
/// Unhook the store, free staged events and every subscriber. rt_close calls it.
void rt_events_close(rt_t *rt);
/// Close every subscription (their tasks end after the events already queued are dropped).
void rt_events_stop(rt_t *rt);

/// 1 when some open subscriber would take events of `kind` (cheap: emitters skip building events).
int rt_events_wants(rt_t *rt, const char *kind);
/// A new event with one reference: kind and fields are copied. NULL on memory error.
rt_event_t *rt_event_new(const char *kind, const rt_event_field_t *fields, int n);
void rt_event_ref(rt_event_t *ev);
void rt_event_unref(rt_event_t *ev);
/// Publish `ev` (takes the caller's reference): staged inside a transaction, else delivered now.
void rt_events_emit(rt_t *rt, rt_event_t *ev);

/// Subscribe: `kinds` and filters are copied (NULL kinds = any). Returns the subscriber (owned by
/// the bus) or NULL on memory error.
rt_events_sub_t *rt_events_subscribe(rt_t *rt, const char *name, const char *const *kinds,
                                     const char *const *fkeys, const char *const *const *fvals, int cap);
/// The next event of the subscriber's queue (the caller owns the reference), or NULL when empty.
/// Pending drops come first as an "overflow" event.
rt_event_t *rt_events_pop(rt_events_sub_t *sub);
/// Close a subscriber: queued events are released; its waiter is woken.
void rt_events_sub_close(rt_events_sub_t *sub);
/// Remove and free a closed subscriber (its task has ended).
void rt_events_sub_free(rt_events_sub_t *sub);
/// The subscribers, for stats (walk ->next).
rt_events_sub_t *rt_events_subs(rt_t *rt);
/// Find a subscriber by id (NULL when gone).
rt_events_sub_t *rt_events_sub_find(rt_t *rt, uint64_t id);

/// A row the series writer put (db.upsert into candles or trades): raises `candle` for a closed
/// bar inserted or changed (or a bar last written while forming that is now closed, even when
/// unchanged), `trade` for a trade inserted or changed. result: 1 inserted, 2 updated, 0 same.
void rt_events_series_row(rt_t *rt, const char *table, const char *const *cols, const void *vals, int ncol,
                          int result);
/// The same for a batch of rows with the same columns (db.upsert): what does not change from row to
/// row (whether anyone wants the kind, the field names, the series key while it stays the same) is
/// worked out once. begin fills `b` (on = 0: nobody wants these events, put does nothing); `cols`
/// need not outlive begin.
typedef struct {
  int on, candle, ncol;
  const char *kind;
  int isrc, iinst, itf, its;   /* column indices of the series and the bar time, or -1 */
  char keys[64][48];           /* field names: "bar.close", "source" */
  char key[512];               /* the last series: "source\x1finstrument\x1ftimeframe" */
  int kn, part[3];             /* its length (-1: none yet) and its parts' lengths */
  int64_t step;                /* its timeframe in seconds (0: not one) */
} rt_events_batch_t;
void rt_events_series_begin(rt_t *rt, rt_events_batch_t *b, const char *table, const char *const *cols, int ncol);
void rt_events_series_put(rt_t *rt, rt_events_batch_t *b, const void *vals, int result);
/// Free the forming bar of every series (events_emit.c); loop.c calls it at shutdown.
void rt_events_series_free(rt_t *rt);
/// Raise `alert` {event = "opened"|"resolved", alert, subject, level, message}: rt->on_alert, which
/// alert.c calls.
void rt_events_alert(rt_t *rt, const char *state, const char *kind, const char *subject, const char *level,
                     const char *msg);

#endif
