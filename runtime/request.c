/*
** runtime/request.c - a request through a budget (see request.h).
**
** States: QUEUED (waiting for admission) -> SENDING (transfer in flight) -> settled: delivered, or
** back to QUEUED (429), or SLEEPING (backoff before a retry). Failures found outside a transfer
** (a rejected admission) are delivered from a zero timer so the completion never runs inside the
** budget's queue pump. The request is freed from its timer's close callback.
*/
#include "runtime/request.h"

#include <curl/curl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "runtime/log.h"

typedef enum { R_QUEUED, R_SENDING, R_SLEEPING, R_DELIVERING, R_DONE } rstate_t;

struct rt_request_s {
  rt_t *rt;
  rt_budget_t *b;
  rt_admit_t admit;
  rt_http_req_t *http;       /* while SENDING */
  uv_timer_t timer;          /* backoff sleep and deferred delivery */
  rstate_t state;
  int failures;              /* transient failures so far (backoff exponent) */
  rt_http_done_fn done;
  void *ud;
  /* owned copies of the request */
  rt_http_opts_t opts;
  char *method, *url, *body;
  char **headers;
  char flow[64];
  /* a failure to deliver */
  const char *fail_code;
  char fail_msg[320];
};

static void send_now(rt_request_t *r);

static void on_closed(uv_handle_t *h) {
  rt_request_t *r = h->data;
  for (int i = 0; i < r->opts.nheaders; i++) free(r->headers[i]);
  free(r->headers);
  free(r->method);
  free(r->url);
  free(r->body);
  free(r);
}

static void finish(rt_request_t *r) {
  r->state = R_DONE;
  uv_close((uv_handle_t *)&r->timer, on_closed);
}

static void on_deliver(uv_timer_t *t) {
  rt_request_t *r = t->data;
  rt_http_result_t res = {0};
  res.code = r->fail_code;
  res.errmsg = r->fail_msg;
  res.url = r->url;
  finish(r);                                   /* freed only after the close callback: r stays valid */
  r->done(&res, r->ud);
}

static void deliver_failure_later(rt_request_t *r, const char *code, const char *msg) {
  r->fail_code = code;
  snprintf(r->fail_msg, sizeof r->fail_msg, "%s", msg);
  r->state = R_DELIVERING;
  uv_timer_start(&r->timer, on_deliver, 0, 0);
}

/* Ask the budget (at the front of the queue after a 429): send at once, wait, or fail. */
static void admit(rt_request_t *r, int front) {
  r->state = R_QUEUED;
  int rc = front ? rt_budget_readmit(r->b, &r->admit) : rt_budget_admit(r->b, &r->admit);
  if (rc == 0) send_now(r);
  else if (rc < 0) deliver_failure_later(r, r->admit.code, r->admit.errmsg);
}

static void on_admitted(rt_admit_t *a, int rc) {
  rt_request_t *r = a->ud;
  if (rc != 0) deliver_failure_later(r, a->code, a->errmsg);
  else send_now(r);
}

/* Ask the budget again (after a backoff sleep). */
static void on_wake(uv_timer_t *t) {
  rt_request_t *r = t->data;
  rt_budget_count_retry(r->b);
  admit(r, 0);
}

static const char *find_header(const rt_http_result_t *res, const char *name) {
  for (size_t i = 0; name && i < res->nheaders; i++)
    if (strcmp(res->headers[i].name, name) == 0) return res->headers[i].value;
  return NULL;
}

/* Retry-After: delta-seconds or an HTTP date; -1 when absent or unreadable. */
static double retry_after(const rt_http_result_t *res) {
  const char *v = find_header(res, "retry-after");
  if (!v) return -1;
  char *end;
  double d = strtod(v, &end);
  if (end != v && (*end == 0 || *end == ' ')) return d < 0 ? 0 : d;
  time_t when = curl_getdate(v, NULL);
  if (when < 0) return -1;
  d = (double)when - rt_now();
  return d < 0 ? 0 : d;
}

static int transient(const rt_http_result_t *res) {
  static const char *const codes[] = {"TIMEOUT", "ECONNRESET", "ECONNREFUSED", "TRUNCATED", "DNS", NULL};
  if (!res->code) return res->status >= 500;
  for (const char *const *c = codes; *c; c++)
    if (strcmp(res->code, *c) == 0) return 1;
  return 0;
}

static void on_http_done(const rt_http_result_t *res, void *ud) {
  rt_request_t *r = ud;
  r->http = NULL;
  const char *used = find_header(res, rt_budget_used_header(r->b));
  rt_settle_t s = {res->code ? 0 : res->status, retry_after(res), used ? strtod(used, NULL) : -1,
                   r->admit.weight, r->admit.admitted_at, r->admit.probe};
  r->admit.probe = 0;
  if (rt_budget_settle(r->b, &s)) {            /* 429: queue again, at the front */
    admit(r, 1);
    return;
  }
  if (s.status == 429 || s.status == 418) {    /* ended in a ban */
    char msg[320];
    const char *code = rt_budget_blocked(r->b, msg, sizeof msg);
    if (!code) snprintf(msg, sizeof msg, "budget %s: HTTP %ld", rt_budget_name(r->b), s.status);
    deliver_failure_later(r, "BANNED", msg);
    return;
  }
  if (transient(res) && r->failures < rt_budget_retries(r->b) && rt_budget_breaker(r->b) != RT_BREAKER_OPEN) {
    r->failures++;
    double delay = rt_budget_backoff(r->b, r->failures);
    rt_log_printf(r->rt->log, RT_LOG_DEBUG, r->flow, "%s: %s; retry %d in %.2fs", r->url,
                  res->code ? res->errmsg : "server error", r->failures, delay);
    r->state = R_SLEEPING;
    uv_timer_start(&r->timer, on_wake, rt_ms(delay), 0);
    return;
  }
  finish(r);
  r->done(res, r->ud);
}

static void send_now(rt_request_t *r) {
  const char *code;
  char err[200];
  r->state = R_SENDING;
  if (!r->rt->http) {
    deliver_failure_later(r, "ECANCELED", "http: the engine is shut down");
    return;
  }
  if (rt_http_start(r->rt->http, &r->opts, on_http_done, r, &r->http, &code, err, sizeof err) < 0) {
    if (r->admit.probe) rt_budget_release_probe(r->b);
    deliver_failure_later(r, code, err);
  }
}

static char *dup_or_null(const char *s, size_t n) {
  if (!s) return NULL;
  char *p = malloc(n + 1);
  if (p) {
    memcpy(p, s, n);
    p[n] = 0;
  }
  return p;
}

int rt_request_start(rt_t *rt, rt_budget_t *b, const rt_request_opts_t *o, rt_http_done_fn done,
                     void *ud, rt_request_t **out, const char **code, char *errbuf, size_t errlen) {
  rt_request_t *r = calloc(1, sizeof *r);
  int ok = r != NULL;
  if (ok) {
    r->rt = rt;
    r->b = b;
    r->done = done;
    r->ud = ud;
    r->opts = o->http;
    r->method = dup_or_null(o->http.method ? o->http.method : "GET", strlen(o->http.method ? o->http.method : "GET"));
    r->url = dup_or_null(o->http.url, strlen(o->http.url));
    r->body = dup_or_null(o->http.body, o->http.body_len);
    r->headers = o->http.nheaders ? calloc((size_t)o->http.nheaders, sizeof *r->headers) : NULL;
    ok = r->method && r->url && (!o->http.body || r->body) && (!o->http.nheaders || r->headers);
    for (int i = 0; ok && i < o->http.nheaders; i++)
      ok = (r->headers[i] = dup_or_null(o->http.headers[i], strlen(o->http.headers[i]))) != NULL;
    r->opts.method = r->method;
    r->opts.url = r->url;
    r->opts.body = r->body;
    r->opts.headers = (const char *const *)r->headers;
    snprintf(r->flow, sizeof r->flow, "%s", o->flow ? o->flow : "");
    r->admit.weight = o->weight;
    r->admit.prio = o->prio;
    r->admit.flow_name = r->flow;
    r->admit.fn = on_admitted;
    r->admit.ud = r;
  }
  if (!ok) {
    if (r) {
      uv_timer_init(&rt->loop, &r->timer);     /* so on_closed frees everything uniformly */
      r->timer.data = r;
      uv_close((uv_handle_t *)&r->timer, on_closed);
    }
    *code = "ENOMEM";
    snprintf(errbuf, errlen, "http: out of memory");
    return -1;
  }
  int rc = rt_budget_admit(b, &r->admit);
  if (rc < 0) {
    *code = r->admit.code;
    snprintf(errbuf, errlen, "%s", r->admit.errmsg);
    uv_timer_init(&rt->loop, &r->timer);
    r->timer.data = r;
    uv_close((uv_handle_t *)&r->timer, on_closed);
    return -1;
  }
  uv_timer_init(&rt->loop, &r->timer);
  r->timer.data = r;
  *out = r;
  if (rc == 0) send_now(r);                    /* rt_http_start never completes inside the call */
  else r->state = R_QUEUED;
  return 0;
}

void rt_request_abort(rt_request_t *r) {
  switch (r->state) {
  case R_QUEUED: rt_budget_cancel(r->b, &r->admit); break;
  case R_SENDING:
    if (r->http) rt_http_abort(r->http);
    r->http = NULL;
    if (r->admit.probe) rt_budget_release_probe(r->b);
    break;
  case R_SLEEPING:
  case R_DELIVERING: uv_timer_stop(&r->timer); break;
  case R_DONE: return;
  }
  finish(r);
}
