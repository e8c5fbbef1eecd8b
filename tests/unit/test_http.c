/*
** tests/unit/test_http.c - runtime/http.c: the libcurl multi / libuv glue, against an in-process
** HTTP/1.1 server (libuv TCP on 127.0.0.1, ephemeral port) running on the same loop.
**
** Server routes: /ok 200 with a small body and "X-Test: 1"; /big 200 with 1 MiB; /slow never
** answers; /close closes without answering; /trunc promises 100 bytes, sends 10 and closes; anything
** else 404. Connections are keep-alive. Every test starts from a fresh loop, server and engine, and
** ends with every handle closed: uv_loop_close() must return 0. ASan checks that nothing leaks.
*/
#define _GNU_SOURCE                            /* memmem */
#include "runtime/http.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "check.h"

/* ---- the server ----------------------------------------------------------------------------- */

#define BIG_LEN (1024 * 1024)
static char big_body[BIG_LEN];

typedef struct conn_s {
  uv_tcp_t tcp;
  struct server_s *srv;
  char buf[8192];
  size_t len;
  int closing;
  struct conn_s *next;
} conn_t;

typedef struct server_s {
  uv_tcp_t listener;
  int port;
  int accepts;                 /* TCP connections accepted */
  int requests;                /* requests parsed */
  int open_conns;
  char last_head[2048];        /* the head of the last request, for header checks */
  conn_t *conns;
} server_t;

typedef struct {
  uv_write_t req;
  conn_t *c;
  int close_after;
  char head[256];
} wreq_t;

static void on_conn_closed(uv_handle_t *hd) {
  conn_t *c = hd->data;
  conn_t **pp = &c->srv->conns;
  while (*pp && *pp != c) pp = &(*pp)->next;
  if (*pp) *pp = c->next;
  c->srv->open_conns--;
  free(c);
}

static void conn_close(conn_t *c) {
  if (c->closing) return;
  c->closing = 1;
  uv_close((uv_handle_t *)&c->tcp, on_conn_closed);
}

static void on_written(uv_write_t *w, int status) {
  wreq_t *wr = (wreq_t *)w;
  if (status < 0 || wr->close_after) conn_close(wr->c);   /* the client went away, or /trunc */
  free(wr);
}

/* Write a response head and body (the body is static: not copied). */
static void reply(conn_t *c, const char *status, const char *extra, const char *body, size_t blen,
                  size_t content_length, int close_after) {
  wreq_t *wr = calloc(1, sizeof *wr);
  wr->c = c;
  wr->close_after = close_after;
  int n = snprintf(wr->head, sizeof wr->head,
                   "HTTP/1.1 %s\r\nContent-Type: text/plain\r\n%sContent-Length: %zu\r\n\r\n", status, extra,
                   content_length);
  uv_buf_t bufs[2] = {uv_buf_init(wr->head, (unsigned)n), uv_buf_init((char *)body, (unsigned)blen)};
  if (uv_write(&wr->req, (uv_stream_t *)&c->tcp, bufs, blen ? 2 : 1, on_written) < 0) {
    free(wr);
    conn_close(c);
  }
}

static void serve(conn_t *c, const char *path) {
  if (strcmp(path, "/ok") == 0) {
    static const char body[] = "hello world";
    reply(c, "200 OK", "X-Test: 1\r\n", body, sizeof body - 1, sizeof body - 1, 0);
  } else if (strcmp(path, "/big") == 0) {
    reply(c, "200 OK", "", big_body, BIG_LEN, BIG_LEN, 0);
  } else if (strcmp(path, "/slow") == 0) {
    /* never answer */
  } else if (strcmp(path, "/close") == 0) {
    conn_close(c);
  } else if (strcmp(path, "/trunc") == 0) {
    reply(c, "200 OK", "", "0123456789", 10, 100, 1);
  } else {
    reply(c, "404 Not Found", "", "nope", 4, 4, 0);
  }
}

static void on_alloc(uv_handle_t *hd, size_t suggested, uv_buf_t *buf) {
  conn_t *c = hd->data;
  (void)suggested;
  *buf = uv_buf_init(c->buf + c->len, (unsigned)(sizeof c->buf - c->len));
}

static void on_read(uv_stream_t *s, ssize_t nread, const uv_buf_t *buf) {
  conn_t *c = s->data;
  (void)buf;
  if (nread < 0) {                             /* EOF or reset: the client closed */
    conn_close(c);
    return;
  }
  c->len += (size_t)nread;
  char *end;
  while (!c->closing && (end = memmem(c->buf, c->len, "\r\n\r\n", 4))) {
    size_t head_len = (size_t)(end - c->buf) + 4;
    char method[16] = "", path[256] = "";
    snprintf(c->srv->last_head, sizeof c->srv->last_head, "%.*s", (int)head_len, c->buf);
    sscanf(c->buf, "%15s %255s", method, path);
    memmove(c->buf, c->buf + head_len, c->len - head_len);
    c->len -= head_len;
    c->srv->requests++;
    serve(c, path);
  }
  if (c->len == sizeof c->buf) conn_close(c);  /* a head larger than the buffer */
}

static void on_connection(uv_stream_t *l, int status) {
  server_t *srv = l->data;
  if (status < 0) return;
  conn_t *c = calloc(1, sizeof *c);
  c->srv = srv;
  uv_tcp_init(l->loop, &c->tcp);
  c->tcp.data = c;
  c->next = srv->conns;
  srv->conns = c;
  srv->open_conns++;
  if (uv_accept(l, (uv_stream_t *)&c->tcp) < 0) {
    conn_close(c);
    return;
  }
  srv->accepts++;
  uv_read_start((uv_stream_t *)&c->tcp, on_alloc, on_read);
}

static int server_start(server_t *srv, uv_loop_t *loop) {
  struct sockaddr_in addr;
  struct sockaddr_storage name;
  int namelen = sizeof name;
  memset(srv, 0, sizeof *srv);
  uv_ip4_addr("127.0.0.1", 0, &addr);
  uv_tcp_init(loop, &srv->listener);
  srv->listener.data = srv;
  if (uv_tcp_bind(&srv->listener, (const struct sockaddr *)&addr, 0) < 0 ||
      uv_listen((uv_stream_t *)&srv->listener, 16, on_connection) < 0 ||
      uv_tcp_getsockname(&srv->listener, (struct sockaddr *)&name, &namelen) < 0)
    return -1;
  srv->port = ntohs(((struct sockaddr_in *)&name)->sin_port);
  return 0;
}

static void server_stop(server_t *srv) {
  if (!uv_is_closing((uv_handle_t *)&srv->listener)) uv_close((uv_handle_t *)&srv->listener, NULL);
  for (conn_t *c = srv->conns; c; c = c->next) conn_close(c);
}

/* A port nothing listens on: bound (so it was free), never listened, closed. */
static int closed_port(void) {
  int fd = socket(AF_INET, SOCK_STREAM, 0);
  struct sockaddr_in a = {0};
  socklen_t len = sizeof a;
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  bind(fd, (struct sockaddr *)&a, sizeof a);
  getsockname(fd, (struct sockaddr *)&a, &len);
  close(fd);
  return ntohs(a.sin_port);
}

/* ---- the fixture ---------------------------------------------------------------------------- */

static uv_loop_t loop;
static server_t srv;
static rt_http_t *h;
static uv_timer_t guard;       /* bounds every run_until */
static int guard_expired;

static void setup(void) {
  CHECK_EQ_INT(uv_loop_init(&loop), 0);
  CHECK_EQ_INT(server_start(&srv, &loop), 0);
  uv_timer_init(&loop, &guard);
  rt_http_config_t cfg = {5000, 2000, 0, "candled-test/1"};
  h = rt_http_new(&loop, &cfg);
  CHECK(h != NULL);
}

/* Close the engine (unless the test did), the server and the guard; drain; the loop must close. */
static void teardown(void) {
  if (h) rt_http_close(h);
  h = NULL;
  server_stop(&srv);
  uv_close((uv_handle_t *)&guard, NULL);
  uv_run(&loop, UV_RUN_DEFAULT);
  CHECK_EQ_INT(srv.open_conns, 0);
  CHECK_EQ_INT(uv_loop_close(&loop), 0);
}

static void on_guard(uv_timer_t *t) {
  (void)t;
  guard_expired = 1;
}

/* Run the loop until *counter reaches want, or ms pass. Returns 1 when it got there. */
static int run_until(const int *counter, int want, uint64_t ms) {
  guard_expired = 0;
  uv_timer_start(&guard, on_guard, ms, 0);
  while (*counter < want && !guard_expired) uv_run(&loop, UV_RUN_ONCE);
  uv_timer_stop(&guard);
  return *counter >= want;
}

/* Run the loop for ms whatever happens. */
static void run_for(uint64_t ms) {
  int never = 0;
  run_until(&never, 1, ms);
}

/* What a completion saw, copied out of the callback. */
typedef struct {
  int done;
  long status;
  char code[32];
  char errmsg[256];
  char *body;
  size_t body_len;
  char xtest[32], ctype[64];
  double total_time;
  char url[256];
} result_t;

static int completions;        /* every on_done call, all tests */

static void on_done(const rt_http_result_t *r, void *ud) {
  result_t *res = ud;
  res->done++;
  completions++;
  res->status = r->status;
  snprintf(res->code, sizeof res->code, "%s", r->code ? r->code : "");
  snprintf(res->errmsg, sizeof res->errmsg, "%s", r->errmsg ? r->errmsg : "");
  snprintf(res->url, sizeof res->url, "%s", r->url ? r->url : "");
  res->total_time = r->total_time;
  free(res->body);
  res->body = NULL;
  res->body_len = r->body_len;
  if (r->body) {
    res->body = malloc(r->body_len + 1);
    memcpy(res->body, r->body, r->body_len);
    res->body[r->body_len] = 0;
  }
  for (size_t i = 0; i < r->nheaders; i++) {
    if (strcmp(r->headers[i].name, "x-test") == 0)
      snprintf(res->xtest, sizeof res->xtest, "%s", r->headers[i].value);
    if (strcmp(r->headers[i].name, "content-type") == 0)
      snprintf(res->ctype, sizeof res->ctype, "%s", r->headers[i].value);
  }
}

static void result_free(result_t *r) {
  free(r->body);
  r->body = NULL;
}

static char url_buf[8][128];
static const char *url(const char *path) {
  static int i;
  char *u = url_buf[i++ % 8];
  snprintf(u, sizeof url_buf[0], "http://127.0.0.1:%d%s", srv.port, path);
  return u;
}

/* Start a request with options; returns the request (NULL + a failed check when it did not start). */
static rt_http_req_t *start(const rt_http_opts_t *o, rt_http_done_fn fn, void *ud) {
  rt_http_req_t *req = NULL;
  const char *code = NULL;
  char errbuf[256] = "";
  if (!CHECK_EQ_INT(rt_http_start(h, o, fn, ud, &req, &code, errbuf, sizeof errbuf), 0))
    fprintf(stderr, "  rt_http_start(%s): %s %s\n", o->url, code ? code : "", errbuf);
  return req;
}

static rt_http_req_t *get(const char *path, result_t *res) {
  rt_http_opts_t o = {0};
  o.url = url(path);
  return start(&o, on_done, res);
}

/* ---- tests ---------------------------------------------------------------------------------- */

/* A GET returns the status, the body, lower-cased headers and a total time; request headers and
** the user agent reach the server; the counters add up. */
static void test_get_ok(void) {
  setup();
  result_t r = {0};
  static const char *const hdrs[] = {"X-Req: 42", "Accept: text/plain"};
  rt_http_opts_t o = {0};
  o.url = url("/ok");
  o.headers = hdrs;
  o.nheaders = 2;
  start(&o, on_done, &r);
  CHECK_EQ_INT(r.done, 0);                     /* never from inside rt_http_start */
  CHECK(run_until(&r.done, 1, 3000));
  CHECK_EQ_INT(r.done, 1);
  CHECK_EQ_INT(r.status, 200);
  CHECK_STR(r.code, "");
  CHECK_STR(r.body, "hello world");
  CHECK_EQ_INT(r.body_len, 11);
  CHECK_STR(r.xtest, "1");
  CHECK_STR(r.ctype, "text/plain");
  CHECK(r.total_time > 0);
  CHECK_STR(r.url, url("/ok"));
  CHECK_HAS(srv.last_head, "GET /ok HTTP/1.1\r\n");
  CHECK_HAS(srv.last_head, "X-Req: 42\r\n");
  CHECK_HAS(srv.last_head, "User-Agent: candled-test/1\r\n");
  rt_http_stats_t st;
  rt_http_stats(h, &st);
  CHECK_EQ_INT(st.started, 1);
  CHECK_EQ_INT(st.completed, 1);
  CHECK_EQ_INT(st.failed, 0);
  CHECK_EQ_INT(st.in_flight, 0);
  CHECK_EQ_INT(st.connections, 1);
  result_free(&r);
  teardown();
}

/* An HTTP error status is a response, not a failure: status 404, no code. */
static void test_404_is_not_a_failure(void) {
  setup();
  result_t r = {0};
  get("/missing", &r);
  CHECK(run_until(&r.done, 1, 3000));
  CHECK_EQ_INT(r.status, 404);
  CHECK_STR(r.code, "");
  CHECK_STR(r.body, "nope");
  result_free(&r);
  teardown();
}

/* Ten GETs one after the other (each started from the previous completion) share one keep-alive
** connection: one accept on the server, stats.connections == 1. */
static int seq_done, seq_ok;
static void on_seq_done(const rt_http_result_t *r, void *ud) {
  (void)ud;
  seq_done++;
  if (r->status == 200 && r->body_len == 11 && !r->code) seq_ok++;
  if (seq_done < 10) {
    rt_http_opts_t o = {0};
    o.url = url("/ok");
    start(&o, on_seq_done, NULL);
  }
}
static void test_keepalive_sequential(void) {
  setup();
  seq_done = seq_ok = 0;
  rt_http_opts_t o = {0};
  o.url = url("/ok");
  start(&o, on_seq_done, NULL);
  CHECK(run_until(&seq_done, 10, 4000));
  CHECK_EQ_INT(seq_ok, 10);
  CHECK_EQ_INT(srv.requests, 10);
  CHECK_EQ_INT(srv.accepts, 1);
  rt_http_stats_t st;
  rt_http_stats(h, &st);
  CHECK_EQ_INT(st.connections, 1);
  CHECK_EQ_INT(st.completed, 10);
  teardown();
}

/* Five requests at once all complete. */
static void test_concurrent(void) {
  setup();
  result_t r[5] = {{0}};
  int total = 0;
  for (int i = 0; i < 5; i++) get("/ok", &r[i]);
  rt_http_stats_t st;
  rt_http_stats(h, &st);
  CHECK_EQ_INT(st.in_flight, 5);
  int before = completions;
  CHECK(run_until(&completions, before + 5, 3000));
  for (int i = 0; i < 5; i++) {
    CHECK_EQ_INT(r[i].done, 1);
    CHECK_EQ_INT(r[i].status, 200);
    CHECK_STR(r[i].body, "hello world");
    total += r[i].done;
    result_free(&r[i]);
  }
  CHECK_EQ_INT(total, 5);
  CHECK(srv.accepts >= 1 && srv.accepts <= 5);
  rt_http_stats(h, &st);
  CHECK_EQ_INT(st.in_flight, 0);
  CHECK_EQ_INT(st.completed, 5);
  CHECK_EQ_INT(st.connections, srv.accepts);
  teardown();
}

/* A request that hangs does not hold up the next one to the same server: plain http:// is
** HTTP/1.1 only, so the second request opens a connection of its own at once. */
static void test_slow_does_not_block_others(void) {
  setup();
  result_t slow = {0}, fast = {0};
  get("/slow", &slow);
  run_until(&srv.requests, 1, 3000);
  uint64_t t0 = uv_hrtime();
  get("/ok", &fast);
  CHECK(run_until(&fast.done, 1, 1000));
  double secs = (double)(uv_hrtime() - t0) / 1e9;
  CHECK_EQ_INT(fast.status, 200);
  if (!CHECK(secs < 0.5)) fprintf(stderr, "  /ok took %.3f s behind /slow\n", secs);
  CHECK_EQ_INT(slow.done, 0);
  CHECK_EQ_INT(srv.accepts, 2);
  result_free(&fast);
  teardown();                                  /* closes the engine with /slow in flight */
  CHECK_EQ_INT(slow.done, 0);
}

/* A 1 MiB body arrives whole; max_body below its size fails with TOO_LARGE, at its size succeeds. */
static void test_big_and_max_body(void) {
  setup();
  result_t r = {0};
  get("/big", &r);
  CHECK(run_until(&r.done, 1, 3000));
  CHECK_EQ_INT(r.status, 200);
  CHECK_EQ_INT(r.body_len, BIG_LEN);
  CHECK(r.body && memcmp(r.body, big_body, BIG_LEN) == 0);
  result_free(&r);

  result_t small = {0};
  rt_http_opts_t o = {0};
  o.url = url("/big");
  o.max_body = 1000;
  start(&o, on_done, &small);
  CHECK(run_until(&small.done, 1, 3000));
  CHECK_STR(small.code, "TOO_LARGE");
  CHECK_EQ_INT(small.status, 0);
  CHECK_HAS(small.errmsg, "1000");
  CHECK(small.body == NULL);
  result_free(&small);

  result_t exact = {0};
  o.max_body = BIG_LEN;
  start(&o, on_done, &exact);
  CHECK(run_until(&exact.done, 1, 3000));
  CHECK_STR(exact.code, "");
  CHECK_EQ_INT(exact.body_len, BIG_LEN);
  result_free(&exact);
  rt_http_stats_t st;
  rt_http_stats(h, &st);
  CHECK_EQ_INT(st.failed, 1);
  CHECK_EQ_INT(st.completed, 2);
  teardown();
}

/* timeout_ms on a server that never answers gives TIMEOUT after about that long. */
static void test_timeout(void) {
  setup();
  result_t r = {0};
  rt_http_opts_t o = {0};
  o.url = url("/slow");
  o.timeout_ms = 200;
  uint64_t t0 = uv_hrtime();
  start(&o, on_done, &r);
  CHECK(run_until(&r.done, 1, 3000));
  double secs = (double)(uv_hrtime() - t0) / 1e9;
  CHECK_STR(r.code, "TIMEOUT");
  CHECK_EQ_INT(r.status, 0);
  CHECK(r.errmsg[0] != 0);
  if (!CHECK(secs >= 0.18 && secs < 2)) fprintf(stderr, "  took %.3f s\n", secs);
  result_free(&r);
  teardown();
}

/* Nothing listening: ECONNREFUSED. */
static void test_refused(void) {
  setup();
  result_t r = {0};
  char u[64];
  snprintf(u, sizeof u, "http://127.0.0.1:%d/ok", closed_port());
  rt_http_opts_t o = {0};
  o.url = u;
  start(&o, on_done, &r);
  CHECK(run_until(&r.done, 1, 3000));
  CHECK_STR(r.code, "ECONNREFUSED");
  CHECK_EQ_INT(r.status, 0);
  result_free(&r);
  teardown();
}

/* The server closes without answering: ECONNRESET. */
static void test_closed_without_reply(void) {
  setup();
  result_t r = {0};
  get("/close", &r);
  CHECK(run_until(&r.done, 1, 3000));
  CHECK_STR(r.code, "ECONNRESET");
  result_free(&r);
  teardown();
}

/* Fewer bytes than Content-Length, then close: TRUNCATED, no body handed out. */
static void test_truncated(void) {
  setup();
  result_t r = {0};
  get("/trunc", &r);
  CHECK(run_until(&r.done, 1, 3000));
  CHECK_STR(r.code, "TRUNCATED");
  CHECK_EQ_INT(r.status, 0);
  CHECK(r.body == NULL);
  result_free(&r);
  teardown();
}

/* A URL curl will not fetch fails through the completion (not synchronously) with EINVAL. */
static void test_bad_scheme(void) {
  setup();
  result_t r = {0};
  rt_http_opts_t o = {0};
  o.url = "ftp://127.0.0.1/x";
  start(&o, on_done, &r);
  CHECK_EQ_INT(r.done, 0);
  CHECK(run_until(&r.done, 1, 3000));
  CHECK_STR(r.code, "EINVAL");
  result_free(&r);
  teardown();
}

/* Aborting in-flight requests (one on the wire, one not yet past the loop) never calls their
** completion and frees them; the engine keeps working afterwards. */
static void test_abort(void) {
  setup();
  result_t slow = {0}, fresh = {0}, after = {0};
  rt_http_req_t *a = get("/slow", &slow);
  run_until(&srv.requests, 1, 3000);           /* the request reached the server */
  CHECK_EQ_INT(srv.requests, 1);
  rt_http_req_t *b = get("/ok", &fresh);
  if (a) rt_http_abort(a);
  if (b) rt_http_abort(b);                     /* before the loop ever ran it */
  rt_http_stats_t st;
  rt_http_stats(h, &st);
  CHECK_EQ_INT(st.in_flight, 0);
  run_for(100);
  CHECK_EQ_INT(slow.done, 0);
  CHECK_EQ_INT(fresh.done, 0);
  CHECK_EQ_INT(srv.open_conns, 0);             /* the aborted transfer's connection was closed */
  get("/ok", &after);
  CHECK(run_until(&after.done, 1, 3000));
  CHECK_EQ_INT(after.status, 200);
  result_free(&after);
  teardown();
  CHECK_EQ_INT(slow.done, 0);
}

/* A completion may start the next request: it is not called back synchronously and completes. */
static int in_start;
static result_t chained;
static int nested_sync_calls;
static void on_chained_done(const rt_http_result_t *r, void *ud) {
  (void)ud;
  if (in_start) nested_sync_calls++;
  on_done(r, &chained);
}
static void on_first_done(const rt_http_result_t *r, void *ud) {
  on_done(r, ud);
  rt_http_opts_t o = {0};
  o.url = url("/big");
  in_start = 1;
  start(&o, on_chained_done, NULL);
  in_start = 0;
}
static void test_start_from_completion(void) {
  setup();
  result_t first = {0};
  memset(&chained, 0, sizeof chained);
  rt_http_opts_t o = {0};
  o.url = url("/ok");
  start(&o, on_first_done, &first);
  CHECK(run_until(&chained.done, 1, 3000));
  CHECK_EQ_INT(first.status, 200);
  CHECK_EQ_INT(chained.status, 200);
  CHECK_EQ_INT(chained.body_len, BIG_LEN);
  CHECK_EQ_INT(nested_sync_calls, 0);
  CHECK_EQ_INT(srv.accepts, 1);                /* the chained request reused the connection */
  result_free(&first);
  result_free(&chained);
  teardown();
}

/* rt_http_close with requests in flight calls no completion, refuses new requests with ECANCELED,
** and frees everything once the loop has run (ASan/LSan). */
static void test_close_in_flight(void) {
  setup();
  result_t r[3] = {{0}};
  get("/slow", &r[0]);
  get("/slow", &r[1]);
  get("/ok", &r[2]);
  run_until(&srv.requests, 2, 3000);
  int before = completions;
  rt_http_close(h);
  rt_http_req_t *req = NULL;
  const char *code = NULL;
  char errbuf[128] = "";
  rt_http_opts_t o = {0};
  o.url = url("/ok");
  CHECK_EQ_INT(rt_http_start(h, &o, on_done, &r[0], &req, &code, errbuf, sizeof errbuf), -1);
  CHECK_STR(code, "ECANCELED");
  CHECK(errbuf[0] != 0);
  h = NULL;                                    /* freed by the loop from here on */
  teardown();
  CHECK_EQ_INT(completions - before, 0);
  CHECK_EQ_INT(r[0].done + r[1].done, 0);
  for (int i = 0; i < 3; i++) result_free(&r[i]);
}

/* Closing the engine from inside a completion is allowed: the other request is dropped quietly. */
static int close_calls_after;
static void on_done_then_close(const rt_http_result_t *r, void *ud) {
  on_done(r, ud);
  rt_http_close(h);
  h = NULL;
}
static void on_never(const rt_http_result_t *r, void *ud) {
  (void)r;
  (void)ud;
  close_calls_after++;
}
static void test_close_from_completion(void) {
  setup();
  result_t r = {0};
  rt_http_opts_t o = {0};
  o.url = url("/slow");
  start(&o, on_never, NULL);
  o.url = url("/ok");
  start(&o, on_done_then_close, &r);
  CHECK(run_until(&r.done, 1, 3000));
  CHECK(h == NULL);
  CHECK_EQ_INT(r.status, 200);
  teardown();
  CHECK_EQ_INT(close_calls_after, 0);
  result_free(&r);
}

int main(void) {
  signal(SIGPIPE, SIG_IGN);                    /* the server writes to clients that went away */
  setenv("no_proxy", "*", 1);                  /* never send 127.0.0.1 through a proxy */
  setenv("NO_PROXY", "*", 1);
  for (size_t i = 0; i < BIG_LEN; i++) big_body[i] = (char)('a' + i % 26);
  RUN(test_get_ok);
  RUN(test_404_is_not_a_failure);
  RUN(test_keepalive_sequential);
  RUN(test_concurrent);
  RUN(test_slow_does_not_block_others);
  RUN(test_big_and_max_body);
  RUN(test_timeout);
  RUN(test_refused);
  RUN(test_closed_without_reply);
  RUN(test_truncated);
  RUN(test_bad_scheme);
  RUN(test_abort);
  RUN(test_start_from_completion);
  RUN(test_close_in_flight);
  RUN(test_close_from_completion);
  return CHECK_DONE();
}
