/*
** runtime/budget.h - request budgets: one per API, shared by every script that calls it.
**
** A budget has windows, each a capacity in weight units (its limit less the reserve share):
** windows of up to an hour slide (counted in 1/100-window slots, each admission held for at least
** one window plus a margin of one slot, or 100 ms when a slot is shorter, so a sliding or a fixed
** limiter on the server side is never exceeded);
** day and month windows are fixed UTC calendar windows whose counts are persisted. A request is
** admitted when every window has room and the budget is neither paused (after a 429), banned
** (after a 418 or repeated 429s) nor cut off by its circuit breaker. Otherwise it waits in a
** bounded queue: priority realtime > backfill > discovery, round robin between the flows (scripts)
** of one priority, so a busy backfill never starves live collection or another backfill.
**
** Responses settle back into the budget: a used-weight header corrects the local count, a 429
** pauses the budget, a 418 or `ban.after_429s` consecutive 429s ban it (persisted: a restart does
** not forget it), failures feed the breaker (closed -> open for `cooldown` -> half-open with one
** probe). Each transition leaves an alert (runtime/alert.h) that resolves when the condition clears.
**
** Loop thread only. The budget set is owned by rt->budgets; budgets live until rt_budgets_close.
*/
#ifndef RT_BUDGET_H
#define RT_BUDGET_H

#include <lua.h>
#include <stdint.h>
#include <uv.h>

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
** while waiting. Fill weight, prio, flow_name, fn and ud; the rest belongs to budget.c. */
struct rt_admit_s {
  double weight;
  rt_prio_t prio;
  const char *flow_name;     /* fairness key: the script's name (copied into the flow) */
  rt_admit_fn fn;
  void *ud;
  /* set by budget.c */
  rt_admit_t *next;
  rt_flow_t *flow;           /* non-NULL while queued */
  double queued_at;
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
  int probe;                 /* the admission was the breaker's probe */
} rt_settle_t;

/// Create the budgets declared in the validated config table at `idx` (budgets.<name>); called
/// before the store opens, so a bad budget stops candled before anything is created. Returns 0,
/// or -1 with a message naming the key path in err (the file name is prefixed by the caller).
int rt_budgets_open(rt_t *rt, lua_State *L, int idx, char *err, size_t errlen);
/// Load persisted day/month counts and bans from rt->store (once it is open).
void rt_budgets_load(rt_budgets_t *set);
/// Add budget `name` from the (validated) budget table at idx, unless config already declared it.
/// Returns the budget, or NULL with a message in err.
rt_budget_t *rt_budget_define(rt_budgets_t *set, lua_State *L, const char *name, int idx, char *err,
                              size_t errlen);
/// Fail every queued admission (ECANCELED), persist counts and metrics, close the timers. The
/// memory is freed from the last close callback.
void rt_budgets_close(rt_budgets_t *set);

/// The budget called `name`, or NULL.
rt_budget_t *rt_budget_find(rt_budgets_t *set, const char *name);
const char *rt_budget_name(const rt_budget_t *b);

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

/// Push rt.budget.status() for one budget (b) or every budget (b == NULL, a table by name).
void rt_budget_push_status(lua_State *L, rt_budgets_t *set, rt_budget_t *b);

/// Names for priorities ("realtime", ...); -1 when unknown.
int rt_prio_parse(const char *s);
const char *rt_prio_name(rt_prio_t p);

/* ---- window arithmetic, exposed for unit tests ---------------------------------------------- */

#define RT_WINDOW_SLOTS 100
#define RT_WINDOW_RING (2 * RT_WINDOW_SLOTS + 1)   /* a window, a margin of up to another, one slot */

typedef struct {
  double per;                /* seconds (for a month: 0, see `month`) */
  int month;                 /* calendar month (UTC) */
  int fixed;                 /* fixed calendar window (per >= 1 day, or month), persisted */
  double limit, cap;         /* cap = limit * (1 - reserve) */
  char key[24];              /* how the window is named in status and budget_state ("1m", "month") */
  /* sliding */
  double slot;               /* seconds per slot */
  int held;                  /* slots an admission is counted in: the window, the margin, its own */
  int64_t cur;               /* index of the newest slot */
  double ring[RT_WINDOW_RING];
  /* both */
  double used;
  double start;              /* fixed: start of the current window */
} rt_window_t;

/// Set up a window of `per` seconds (or a calendar month) with capacity `cap`.
void rt_window_init(rt_window_t *w, double per, int month, double limit, double cap);
/// Bring the window to time `now` (drop expired slots / start a new fixed window).
void rt_window_advance(rt_window_t *w, double now);
/// The earliest time >= now at which `weight` more fits (after rt_window_advance(now)).
double rt_window_fits_at(const rt_window_t *w, double weight, double now);
/// Charge `weight` at time now (after rt_window_advance(now)).
void rt_window_charge(rt_window_t *w, double weight);
/// Start of the fixed window containing t (UTC day multiple or calendar month).
double rt_window_fixed_start(const rt_window_t *w, double t);
/// Its end.
double rt_window_fixed_end(const rt_window_t *w, double start);

#endif
