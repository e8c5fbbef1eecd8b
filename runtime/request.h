/*
** runtime/request.h - an HTTP request sent through a budget (runtime/budget.h).
**
** The request waits for admission, is sent, and its response is settled into the budget. A 429
** sends it back to the front of its queue (the whole budget pauses first); 5xx responses and
** transient transport failures (TIMEOUT, ECONNRESET, ECONNREFUSED, TRUNCATED, DNS) are retried
** after a full-jitter backoff, re-admitted each time, up to the budget's `retries`. A ban or an
** open breaker ends it with "BANNED" / "BREAKER_OPEN". The caller sees one completion, with the
** last response (an HTTP error status is a result) or a failure code. Loop thread only.
*/
#ifndef RT_REQUEST_H
#define RT_REQUEST_H

#include "runtime/budget.h"
#include "runtime/http.h"

typedef struct rt_request_s rt_request_t;

typedef struct {
  rt_http_opts_t http;       /* copied: the request may be sent several times */
  double weight;             /* weight units this request costs (>= 0) */
  rt_prio_t prio;
  const char *flow;          /* fairness key: the calling script's name (copied) */
} rt_request_opts_t;

/// Start a budgeted request. Returns 0 with the request in *out (valid until its completion has
/// returned or rt_request_abort); `done` runs exactly once, from the loop, never inside this call.
/// Returns -1 with *code and errbuf when rejected at once (BANNED, BREAKER_OPEN, QUEUE_FULL,
/// EINVAL, ENOMEM).
int rt_request_start(rt_t *rt, rt_budget_t *b, const rt_request_opts_t *o, rt_http_done_fn done,
                     void *ud, rt_request_t **out, const char **code, char *errbuf, size_t errlen);
/// Abort: no completion is called; a queued admission is withdrawn, a transfer aborted. The memory
/// is released from a close callback.
void rt_request_abort(rt_request_t *r);

#endif
