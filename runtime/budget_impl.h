/*
** runtime/budget_impl.h - what the budget files share (not for use outside runtime/budget*.c):
** the budget and set structures and the functions each file offers the others.
**
**   budget.c          lifecycle: create from a spec, attach to the shared file, close, accessors
**   budget_queue.c    flows, the queue, admission and the pump
**   budget_settle.c   responses: pause, incidents, learned limits, ban, breaker, backoff
**   budget_persist.c  day/month counts, bans and metrics in the store
**   budget_window.c   window arithmetic;  budget_shared.c  the file shared between processes
*/
#ifndef RT_BUDGET_IMPL_H
#define RT_BUDGET_IMPL_H

#include "runtime/budget.h"
#include "runtime/budget_shared.h"

#define RT_BUDGET_EPS 1e-9

enum { RT_ALERT_THROTTLED = 1, RT_ALERT_BANNED = 2, RT_ALERT_BREAKER = 4, RT_ALERT_LEARNED = 8 };

struct rt_flow_s {
  rt_flow_t *ring_next, *ring_prev;  /* the active flows of one priority, served round robin */
  rt_admit_t *head, *tail;           /* FIFO of waiting admissions */
  char name[64];
};

struct rt_budget_s {
  rt_budgets_t *set;
  rt_budget_t *next;
  char name[64];
  rt_window_t *win;
  int nwin;
  double reserve;
  char used_header[64];
  int header_win;                    /* window corrected by used_header, or -1 */
  double backoff_base, backoff_cap;
  int retries, breaker_failures, ban_after, queue_max;
  double breaker_cooldown, ban_default;
  /* state */
  rt_budget_common_t *cs;            /* pause, incident, ban: &own_common or the shared record */
  rt_budget_common_t own_common;
  rt_flow_t *ring[RT_PRIO_N];        /* next flow to serve, per priority */
  int queued, queue_peak, pumping;
  uv_timer_t timer;                  /* wakes the queue when the head can go */
  double open_until, wait_max;
  int consecutive_429, failures, probe_out, state_dirty;
  int learning;                      /* window the current incident teaches, or -1 */
  int report;                        /* 1 + the window whose learned limit is logged when the incident ends */
  const char *report_how;
  double report_value;               /* the limit learned, as it stood when the incident ended */
  rt_breaker_state_t breaker;
  unsigned alerts;                   /* RT_ALERT_* bits of the alerts this budget has open */
  rt_budget_counters_t total, delta; /* since start / since the last metrics flush */
};

struct rt_budgets_s {
  rt_t *rt;
  rt_budget_t *head;
  rt_budget_shm_t *shm;              /* the database's shared file, once the store is open */
  uv_timer_t flush;                  /* persists counts (1 s) and metrics (10 s) */
  uint64_t rng;
  int handles;                       /* open uv handles: the set is freed when the last closes */
  double metrics_flushed_at;
};

#define RT_BUDGET_COUNT(b, field, v) ((b)->total.field += (v), (b)->delta.field += (v))

/* budget.c: the shared file's lock, a no-op while the budgets are not shared */
void rt_budget_lock(rt_budgets_t *set);
void rt_budget_unlock(rt_budgets_t *set);
void rt_budget_iso(double t, char *buf, size_t n);

/* budget_queue.c */
void rt_budget_pump(rt_budget_t *b);
void rt_budget_wake(rt_budget_t *b);   /* pump from the loop, soon */
void rt_budget_reject_all(rt_budget_t *b, const char *code, const char *msg);
int rt_budget_waiting(rt_budget_t *b, rt_prio_t p);

/* budget_settle.c */
void rt_budget_probe_up(rt_budget_t *b, double now);   /* raise learned limits after clean windows (locked) */
void rt_budget_learned_resolve(rt_budget_t *b);        /* resolve limit_learned once all are declared again */

/* budget_persist.c */
void rt_budget_persist_load(rt_budget_t *b);
void rt_budget_persist_ban(rt_budget_t *b);
void rt_budget_persist_flush(rt_budgets_t *set, int closing);
void rt_budget_persist_on_flush(uv_timer_t *t);

#endif
