/*
** runtime/budget.h - request budgets: one per API, shared by every script that calls it, and by
** every candled process on the same database.
**
** A budget has windows (runtime/budget_window.h), each a capacity in weight units (its limit less
** the reserve share). A request is admitted when every window has room and the budget is neither
** paused (after a 429), banned (after a 418 or repeated 429s) nor cut off by its circuit breaker.
** Otherwise it waits in a bounded queue: priority realtime > backfill > discovery, round robin
** between the flows (scripts) of one priority, so a busy backfill never starves live collection or
** another backfill.
**
** Shared and durable: once the store is open, the windows' counts, the pause and the ban live in
** a file mapped by every process on the database (runtime/budget_shared.h), so a restart, a
** `candled backfill` or `candled eval` next to the daemon count into the same windows. Day/month
** counts and bans are also written to the store (budget_state), so they outlive the file.
**
** Responses settle back into the budget (budget_settle.c): a used-weight header corrects the
** local count; a 429 pauses the budget (Retry-After, or until the exceeded window has passed) and
** teaches the exceeded window the limit the server really applies (probed back up over clean
** windows, never above the declared one); 429s to requests sent before that 429 came back are
** the same incident; `ban.after_429s` 429s to requests sent after a pause, or a 418, ban it
** (persisted); failures feed the breaker (closed -> open for `cooldown` -> half-open with one
** probe). Each transition leaves an alert (runtime/alert.h) that resolves when the condition
** clears.
**
** Loop thread only. The budget set is owned by rt->budgets; budgets live until rt_budgets_close.
*/
#ifndef RT_BUDGET_H
#define RT_BUDGET_H

#include <stdint.h>
#include <uv.h>

#include "runtime/budget_window.h"
#include "runtime/rt.h"

typedef enum { RT_PRIO_REALTIME, RT_PRIO_BACKFILL, RT_PRIO_DISCOVERY, RT_PRIO_N } rt_prio_t;

typedef struct rt_budget_s rt_budget_t;
typedef struct rt_budgets_s rt_budgets_t;
typedef struct rt_flow_s rt_flow_t;
typedef struct rt_admit_s rt_admit_t;

/* Called once for a queued admission: rc 0 = admitted (the weight is charged), else rejected with
** a->code / a->errmsg. Never called from inside rt_budget_admit. */
typedef void (*rt_admit_fn)(rt_admit_t *a, int rc);

/* A waiting admission. Owned (and usually embedded) by the caller; linked into its flow's queue
** while waiting. Fill weight, prio, flow_name, fn and ud; the rest belongs to the budget. */
struct rt_admit_s {
  double weight;
  rt_prio_t prio;
  const char *flow_name;     /* fairness key: the script's name (copied into the flow) */
  rt_admit_fn fn;
  void *ud;
  /* set by the budget */
  rt_admit_t *next;
  rt_flow_t *flow;           /* non-NULL while queued */
  double queued_at;
  double admitted_at;        /* when the weight was charged: a 429 to it sent earlier is in flight */
  int probe;                 /* admitted as the half-open breaker's probe: settle it */
  const char *code;          /* on rejection: "QUEUE_FULL", "BANNED", "BREAKER_OPEN", "ECANCELED" */
  char errmsg[320];
};

typedef enum { RT_BREAKER_CLOSED, RT_BREAKER_OPEN, RT_BREAKER_HALF_OPEN } rt_breaker_state_t;

/* What one response tells the budget. status 0 = transport failure (no HTTP status). */
typedef struct {
  long status;
  double retry_after;        /* seconds from Retry-After, or < 0 when absent */
  double used_weight;        /* the used-weight header's value, or < 0 when absent */
  double weight;             /* the request's weight */
  double sent_at;            /* when it was admitted (rt_admit_t.admitted_at) */
  int probe;                 /* the admission was the breaker's probe */
} rt_settle_t;

/* A budget as declared (config.lua's budgets.<name>, or budget.define), already validated for
** types by the config schema; rt_budget_create checks the ranges. */
typedef struct {
  double per;                /* seconds; ignored for a month */
  int month;
  double limit;
} rt_budget_window_spec_t;

typedef struct {
  const rt_budget_window_spec_t *windows;
  int nwin;
  double reserve;            /* 0 <= r < 1 */
  const char *used_header;   /* NULL or a header name; its "-<duration>" suffix picks the window */
  int retries, queue_max;
  double backoff_base, backoff_cap;
  int breaker_failures;
  double breaker_cooldown;
  int ban_after;
  double ban_default;
} rt_budget_spec_t;

typedef struct {
  uint64_t requests, waits, retries, throttled, bans, failures, rejected, learned;
  double weight, wait_seconds;
} rt_budget_counters_t;

/* A snapshot for status tables (pointers valid until the budget changes). */
typedef struct {
  const char *name;
  const rt_window_t *win;    /* advanced to `now` */
  int nwin;
  int queued, queue_peak, queue_max;
  int waiting[RT_PRIO_N];
  double paused_until, banned_until, open_until, wait_max;
  const char *ban_reason;
  int consecutive_429, failures;
  rt_breaker_state_t breaker;  /* OPEN past its cooldown reads as HALF_OPEN */
  int shared;                /* counts are shared with other processes on the database */
  rt_budget_counters_t total;
} rt_budget_info_t;

/// The (empty) budget set in rt->budgets, with its persistence timer. Returns 0 or -1 (ENOMEM).
int rt_budgets_new(rt_t *rt);
/// Once rt->store is open: attach every budget to the database's shared file and load the
/// persisted day/month counts and bans.
void rt_budgets_load(rt_budgets_t *set);
/// Add budget `name` as declared by spec, unless it exists already (then that one is returned).
/// Returns the budget, or NULL with a message naming the key ("windows[1].limit: ...") in err.
rt_budget_t *rt_budget_create(rt_budgets_t *set, const char *name, const rt_budget_spec_t *spec, char *err,
                              size_t errlen);
/// Fail every queued admission (ECANCELED), persist counts and metrics, close the timers and the
/// shared file. The memory is freed from the last close callback.
void rt_budgets_close(rt_budgets_t *set);

/// The budget called `name`, or NULL; iteration in creation order (newest first).
rt_budget_t *rt_budget_find(rt_budgets_t *set, const char *name);
rt_budget_t *rt_budget_first(rt_budgets_t *set);
rt_budget_t *rt_budget_next(rt_budget_t *b);
const char *rt_budget_name(const rt_budget_t *b);
/// Fill `out` for a status table.
void rt_budget_info(rt_budget_t *b, rt_budget_info_t *out);

/// Ask for admission. Returns 0 when admitted at once (charged; no callback), 1 when queued (the
/// callback follows from the loop), -1 when rejected at once (a->code, a->errmsg). Raises nothing;
/// a weight above a window's capacity is rejected with "EINVAL".
int rt_budget_admit(rt_budget_t *b, rt_admit_t *a);
/// The same for a request coming back after a 429: it goes to the front of its flow's queue.
int rt_budget_readmit(rt_budget_t *b, rt_admit_t *a);
/// Withdraw a queued admission (no callback). Harmless when it is not queued.
void rt_budget_cancel(rt_budget_t *b, rt_admit_t *a);

/// Account for a response. Returns 1 when the request should be queued again (a 429 while the
/// budget is not banned), else 0.
int rt_budget_settle(rt_budget_t *b, const rt_settle_t *s);
/// Why nothing may be sent now: "BANNED" or "BREAKER_OPEN" with a message, or NULL.
const char *rt_budget_blocked(rt_budget_t *b, char *msg, size_t n);
/// A probe admission ended without a response (its request was aborted): let another go.
void rt_budget_release_probe(rt_budget_t *b);
/// Count a retry of a failed request (metrics).
void rt_budget_count_retry(rt_budget_t *b);
/// Per-budget settings the request layer needs.
int rt_budget_retries(const rt_budget_t *b);
const char *rt_budget_used_header(const rt_budget_t *b);
/// Full-jitter backoff delay for the n-th consecutive failure (n >= 1):
/// uniform in [0, min(cap, base * 2^(n-1))].
double rt_budget_backoff(rt_budget_t *b, int n);
/// The state of the breaker and ban, for error messages.
int rt_budget_is_banned(const rt_budget_t *b, double now);
rt_breaker_state_t rt_budget_breaker(const rt_budget_t *b);

/// Names for priorities ("realtime", ...); -1 when unknown.
int rt_prio_parse(const char *s);
const char *rt_prio_name(rt_prio_t p);

#endif
