/*
** runtime/ws.c - WebSocket client connections over libwebsockets on the runtime's libuv loop.
**
** libwebsockets joins rt->loop as a "foreign" loop (LWS_SERVER_OPTION_LIBUV + foreign_loops): its
** sockets and timers are libuv handles of our loop, so there is no second thread and no polling.
** lws answers server pings itself (the pong echoes the payload); client pings and the idle hang-up
** use lws's validity policy (lws_retry_bo_t) per connection.
**
** The lws callback only buffers and records state; the waiter it calls is the binding's, which
** resumes its task on a later loop pass (no Lua runs inside lws).
*/
#define _GNU_SOURCE                 /* strcasestr */
#include "runtime/ws.h"
#include "runtime/ws_url.h"

#include <libwebsockets.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define PROTOCOL_NAME "candled-ws"
#define SEND_QUEUE_MAX (64u << 20)

typedef struct msg_s {
  struct msg_s *next;
  size_t len;
  int binary;
  char data[];                  /* len bytes and a NUL */
} msg_t;

typedef struct out_s {
  struct out_s *next;
  size_t len;
  int binary;
  unsigned char buf[];          /* LWS_PRE bytes of room, then the payload */
} out_t;

struct rt_ws_s {
  rt_t *rt;
  struct lws_context *ctx;      /* set to NULL by lws once its destruction has completed */
  void *loops[1];
  struct lws_protocols protocols[2];
  rt_ws_conn_t *conns;          /* every connection not yet freed */
  int shut;
};

enum { TIMER_NONE, TIMER_OPEN, TIMER_CLOSING, TIMER_CLOSED };

struct rt_ws_conn_s {
  rt_ws_t *eng;                 /* NULL once the engine is freed */
  rt_ws_conn_t *next, **pprev;
  struct lws *wsi;              /* NULL once lws destroyed the socket (or never had one) */
  rt_ws_state_t state;
  lws_retry_bo_t idle;          /* ping / hang-up policy; lws keeps a pointer to it */
  char *url;                    /* copy: host and path point into `parts` */
  char *parts;
  char **headers;               /* "name:" and value, alternating */
  int nheaders;
  msg_t *qhead, *qtail;
  size_t qn, queue_max, max_message;
  char *frag;                   /* the message being assembled from fragments */
  size_t frag_len, frag_cap;
  int frag_binary, frag_skip;
  out_t *ohead, *otail;
  size_t obytes;
  int closing;                  /* the user closed: send the close frame at the next writeable */
  int paused;                   /* reading stopped because the queue is full */
  int released;
  uv_timer_t timer;
  int timer_state;
  rt_ws_wake_fn wake;
  void *wake_ud;
  const char *code;             /* why it is closed; NULL while not */
  char msg[256];
  rt_ws_stats_t stats;
};

/* ---- connection state --------------------------------------------------------------------- */

static void set_why(rt_ws_conn_t *c, const char *code, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static void set_why(rt_ws_conn_t *c, const char *code, const char *fmt, ...) {
  if (c->code) return;          /* the first reason wins */
  c->code = code;
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(c->msg, sizeof c->msg, fmt, ap);
  va_end(ap);
}

static void notify(rt_ws_conn_t *c) {
  rt_ws_wake_fn fn = c->wake;
  if (!fn) return;
  c->wake = NULL;
  if (c->timer_state == TIMER_OPEN) uv_timer_stop(&c->timer);
  fn(c->wake_ud, RT_WS_WAKE_EVENT);
}

static void mark_closed(rt_ws_conn_t *c) {
  if (c->state == RT_WS_CLOSED) return;
  c->state = RT_WS_CLOSED;
  notify(c);
}

static void free_queue(rt_ws_conn_t *c) {
  for (msg_t *m = c->qhead, *n; m; m = n) {
    n = m->next;
    free(m);
  }
  for (out_t *o = c->ohead, *n; o; o = n) {
    n = o->next;
    free(o);
  }
  c->qhead = c->qtail = NULL;
  c->ohead = c->otail = NULL;
  c->qn = c->obytes = 0;
}

static void maybe_free(rt_ws_conn_t *c) {
  if (!c->released || c->wsi || c->timer_state == TIMER_OPEN || c->timer_state == TIMER_CLOSING) return;
  if (c->pprev) {
    *c->pprev = c->next;
    if (c->next) c->next->pprev = c->pprev;
  }
  free_queue(c);
  for (int i = 0; i < 2 * c->nheaders; i++) free(c->headers[i]);
  free(c->headers);
  free(c->frag);
  free(c->url);
  free(c->parts);
  free(c);
}

static void on_uv_timer_closed(uv_handle_t *h) {
  rt_ws_conn_t *c = h->data;
  c->timer_state = TIMER_CLOSED;
  maybe_free(c);
}

static void close_timer(rt_ws_conn_t *c) {
  if (c->timer_state != TIMER_OPEN) return;
  c->timer_state = TIMER_CLOSING;
  uv_close((uv_handle_t *)&c->timer, on_uv_timer_closed);
}

static void on_uv_timer(uv_timer_t *t) {
  rt_ws_conn_t *c = t->data;
  rt_ws_wake_fn fn = c->wake;
  c->wake = NULL;
  if (fn) fn(c->wake_ud, RT_WS_WAKE_TIMEOUT);
}

/* ---- lws callbacks ------------------------------------------------------------------------- */

/* A code for lws's connection-error text. */
static const char *classify(const char *why) {
  if (!why) return "CONNECT";
  if (strstr(why, "refused") || strstr(why, "errno 111")) return "ECONNREFUSED";
  if (strstr(why, "HS:") || strstr(why, "upgrade") || strstr(why, "101") || strstr(why, "accept"))
    return "HANDSHAKE";
  if (strcasestr(why, "ssl") || strcasestr(why, "tls") || strcasestr(why, "cert")) return "TLS";
  if (strcasestr(why, "timed out") || strcasestr(why, "timeout")) return "TIMEOUT";
  if (strcasestr(why, "dns") || strcasestr(why, "resolve") || strcasestr(why, "getaddrinfo")) return "DNS";
  return "CONNECT";
}

static int conn_receive(rt_ws_conn_t *c, struct lws *wsi, const char *in, size_t len) {
  if (lws_is_first_fragment(wsi)) {
    c->frag_len = 0;
    c->frag_skip = 0;
    c->frag_binary = lws_frame_is_binary(wsi);
  }
  if (c->state == RT_WS_CLOSED || c->frag_skip) return 0;     /* closed by the user: not kept */
  if (c->frag_len + len > c->max_message) {
    set_why(c, "TOO_LARGE", "%s: a message longer than %zu bytes", c->url, c->max_message);
    lws_close_reason(wsi, LWS_CLOSE_STATUS_MESSAGE_TOO_LARGE, NULL, 0);
    mark_closed(c);
    return -1;
  }
  if (c->frag_len + len > c->frag_cap) {
    size_t cap = c->frag_cap ? c->frag_cap : 4096;
    while (cap < c->frag_len + len) cap *= 2;
    char *p = realloc(c->frag, cap);
    if (!p) {
      set_why(c, "ENOMEM", "%s: out of memory for a message", c->url);
      mark_closed(c);
      return -1;
    }
    c->frag = p;
    c->frag_cap = cap;
  }
  memcpy(c->frag + c->frag_len, in, len);
  c->frag_len += len;
  if (!lws_is_final_fragment(wsi) || lws_remaining_packet_payload(wsi)) return 0;
  msg_t *m = malloc(sizeof *m + c->frag_len + 1);
  if (!m) {
    set_why(c, "ENOMEM", "%s: out of memory for a message", c->url);
    mark_closed(c);
    return -1;
  }
  m->next = NULL;
  m->len = c->frag_len;
  m->binary = c->frag_binary;
  memcpy(m->data, c->frag, c->frag_len);
  m->data[c->frag_len] = 0;
  c->frag_len = 0;
  if (c->qtail) c->qtail->next = m;
  else c->qhead = m;
  c->qtail = m;
  c->qn++;
  c->stats.received++;
  if (c->qn >= c->queue_max && !c->paused) {
    lws_rx_flow_control(wsi, 0);
    c->paused = 1;
    c->stats.paused++;
  }
  notify(c);
  return 0;
}

/* Our close: lws sends the close frame (1000), waits for the server's, then hangs up. Not by
** returning -1 from a callback: with libuv, lws 4.1 then drops the socket before the frame left.
** Outside lws's callbacks (`now`) the close starts at once; inside one it starts from lws's timeout
** a second later (0 would cancel the timeout instead). */
static void start_close(rt_ws_conn_t *c, int now) {
  c->closing = 0;
  lws_close_reason(c->wsi, LWS_CLOSE_STATUS_NORMAL, NULL, 0);
  lws_set_timeout(c->wsi, PENDING_TIMEOUT_USER_OK, now ? LWS_TO_KILL_SYNC : 1);
}

static int conn_writeable(rt_ws_conn_t *c, struct lws *wsi) {
  out_t *o = c->ohead;
  if (o) {
    int n = lws_write(wsi, o->buf + LWS_PRE, o->len, o->binary ? LWS_WRITE_BINARY : LWS_WRITE_TEXT);
    if (n < 0 || (size_t)n < o->len) {
      set_why(c, "CLOSED", "%s: the connection failed while sending", c->url);
      mark_closed(c);
      return -1;
    }
    c->ohead = o->next;
    if (!c->ohead) c->otail = NULL;
    c->obytes -= o->len;
    free(o);
    c->stats.sent++;
    if (c->ohead) lws_callback_on_writable(wsi);
    else if (c->closing) start_close(c, 0);
    return 0;
  }
  if (c->closing) start_close(c, 0);
  return 0;
}

static int on_lws_callback(struct lws *wsi, enum lws_callback_reasons reason, void *user, void *in, size_t len) {
  rt_ws_conn_t *c = wsi ? lws_get_opaque_user_data(wsi) : NULL;
  if (!c) return 0;
  switch (reason) {
  case LWS_CALLBACK_CLIENT_APPEND_HANDSHAKE_HEADER: {
    unsigned char **p = in, *end = *p + len;
    for (int i = 0; i < c->nheaders; i++) {
      const char *v = c->headers[2 * i + 1];
      if (lws_add_http_header_by_name(wsi, (const unsigned char *)c->headers[2 * i], (const unsigned char *)v,
                                      (int)strlen(v), p, end))
        return -1;
    }
    return 0;
  }
  case LWS_CALLBACK_CLIENT_ESTABLISHED:
    if (c->state == RT_WS_CONNECTING) c->state = RT_WS_OPEN;
    if (c->ohead || c->closing) lws_callback_on_writable(wsi);
    notify(c);
    return 0;
  case LWS_CALLBACK_CLIENT_RECEIVE:
    return conn_receive(c, wsi, in, len);
  case LWS_CALLBACK_CLIENT_WRITEABLE:
    return conn_writeable(c, wsi);
  case LWS_CALLBACK_CLIENT_RECEIVE_PONG:
    c->stats.pongs++;
    return 0;
  case LWS_CALLBACK_WS_PEER_INITIATED_CLOSE: {
    const unsigned char *b = in;
    if (len >= 2)
      set_why(c, "CLOSED", "%s: closed by the server (status %d%s%.*s)", c->url, (b[0] << 8) | b[1],
              len > 2 ? ": " : "", (int)(len > 2 ? (len - 2 > 120 ? 120 : len - 2) : 0), (const char *)b + 2);
    else
      set_why(c, "CLOSED", "%s: closed by the server", c->url);
    return 0;
  }
  case LWS_CALLBACK_CLIENT_CONNECTION_ERROR:
    set_why(c, classify(in), "%s: %s", c->url, in ? (const char *)in : "connection failed");
    mark_closed(c);
    return 0;
  case LWS_CALLBACK_CLIENT_CLOSED:
    set_why(c, "CLOSED", "%s: the connection was lost", c->url);
    mark_closed(c);
    return 0;
  case LWS_CALLBACK_WSI_DESTROY:
    lws_set_opaque_user_data(wsi, NULL);
    c->wsi = NULL;
    set_why(c, "CLOSED", "%s: the connection was lost", c->url);
    mark_closed(c);
    maybe_free(c);
    return 0;
  default:
    return 0;
  }
}

/* ---- engine -------------------------------------------------------------------------------- */

static rt_ws_t *engine(rt_t *rt, char *err, size_t errlen) {
  if (rt->ws) return rt->ws;
  rt_ws_t *e = calloc(1, sizeof *e);
  if (!e) {
    snprintf(err, errlen, "ws: out of memory");
    return NULL;
  }
  e->rt = rt;
  e->loops[0] = &rt->loop;
  e->protocols[0].name = PROTOCOL_NAME;
  e->protocols[0].callback = on_lws_callback;
  e->protocols[0].rx_buffer_size = 65536;
  struct lws_context_creation_info info;
  memset(&info, 0, sizeof info);
  info.port = CONTEXT_PORT_NO_LISTEN;
  info.protocols = e->protocols;
  info.options = LWS_SERVER_OPTION_LIBUV | LWS_SERVER_OPTION_DO_SSL_GLOBAL_INIT |
                 LWS_SERVER_OPTION_UV_NO_SIGSEGV_SIGFPE_SPIN;
  info.foreign_loops = e->loops;
  info.user = e;
  info.pcontext = &e->ctx;
  lws_set_log_level(LLL_ERR, NULL);     /* lws's own notices stay quiet; errors go to stderr */
  e->ctx = lws_create_context(&info);
  if (!e->ctx) {
    snprintf(err, errlen, "ws: libwebsockets could not start (is libwebsockets-evlib-uv installed?)");
    free(e);
    return NULL;
  }
  rt->ws = e;
  return e;
}

void rt_ws_shutdown(rt_t *rt) {
  rt_ws_t *e = rt->ws;
  if (!e || e->shut) return;
  e->shut = 1;
  for (rt_ws_conn_t *c = e->conns, *n; c; c = n) {
    n = c->next;
    set_why(c, "SHUTDOWN", "%s: the runtime is shutting down", c->url);
    mark_closed(c);
    close_timer(c);
  }
  if (e->ctx) lws_context_destroy(e->ctx);   /* sockets close; their handles in the next loop run */
}

void rt_ws_free(rt_t *rt) {
  rt_ws_t *e = rt->ws;
  if (!e) return;
  rt_ws_shutdown(rt);
  /* With a foreign loop, lws 4.1 finishes destroying the context in a second call, once the loop
  ** has run the close callbacks of its handles (it then sets e->ctx to NULL through pcontext). */
  if (e->ctx) lws_context_destroy(e->ctx);
  for (rt_ws_conn_t *c = e->conns, *n; c; c = n) {   /* the user still holds these */
    n = c->next;
    c->wsi = NULL;
    c->eng = NULL;
    c->pprev = NULL;
    c->next = NULL;
    maybe_free(c);
  }
  free(e);
  rt->ws = NULL;
}

/* ---- the API ------------------------------------------------------------------------------- */

int rt_ws_connect(rt_t *rt, const rt_ws_opts_t *o, rt_ws_conn_t **out, const char **code, char *err,
                  size_t errlen) {
  *out = NULL;
  if (rt->stopping || (rt->ws && rt->ws->shut)) {
    *code = "ECANCELED";
    snprintf(err, errlen, "ws.connect: the runtime is shutting down");
    return -1;
  }
  rt_ws_conn_t *c = calloc(1, sizeof *c);
  if (!c || !(c->url = strdup(o->url)) || !(c->parts = malloc(strlen(o->url) + 2))) goto nomem;
  int tls, port;
  const char *host;
  char *path;
  strcpy(c->parts, o->url);
  if (rt_ws_parse_url(c->parts, &tls, &host, &port, &path, err, errlen) < 0) {
    *code = "EINVAL";
    goto fail;
  }
  if (path[0] == '?') {                  /* ws://h?x: lws wants a path that starts with '/' */
    memmove(path + 1, path, strlen(path) + 1);
    path[0] = '/';
  }
  if (o->nheaders > 0) {
    if (!(c->headers = calloc((size_t)o->nheaders * 2, sizeof *c->headers))) goto nomem;
    c->nheaders = o->nheaders;
    for (int i = 0; i < o->nheaders; i++) {
      const char *line = o->headers[i], *colon = strchr(line, ':');
      if (!colon) {
        *code = "EINVAL";
        snprintf(err, errlen, "ws.connect: header '%.100s' has no ':'", line);
        goto fail;
      }
      const char *v = colon + 1;
      while (*v == ' ') v++;
      if (!(c->headers[2 * i] = strndup(line, (size_t)(colon - line) + 1)) || !(c->headers[2 * i + 1] = strdup(v)))
        goto nomem;
      for (char *q = c->headers[2 * i]; *q; q++)
        if (*q >= 'A' && *q <= 'Z') *q = (char)(*q - 'A' + 'a');
    }
  }
  rt_ws_t *e = engine(rt, err, errlen);
  if (!e) {
    *code = "ENOMEM";
    goto fail;
  }
  c->eng = e;
  c->queue_max = o->queue_max < 2 ? 2 : o->queue_max;
  c->max_message = o->max_message ? o->max_message : (16u << 20);
  c->idle.secs_since_valid_ping = (uint16_t)(o->ping_interval > 65535 ? 65535 : o->ping_interval);
  c->idle.secs_since_valid_hangup = (uint16_t)(o->idle_timeout > 65535 ? 65535 : o->idle_timeout);
  if (c->idle.secs_since_valid_ping && c->idle.secs_since_valid_hangup <= c->idle.secs_since_valid_ping)
    c->idle.secs_since_valid_hangup = 65535;  /* lws needs a hang-up after the ping: "never" */
  c->state = RT_WS_CONNECTING;
  uv_timer_init(&rt->loop, &c->timer);
  c->timer.data = c;
  c->timer_state = TIMER_OPEN;
  c->next = e->conns;
  if (c->next) c->next->pprev = &c->next;
  c->pprev = &e->conns;
  e->conns = c;

  struct lws_client_connect_info ci;
  memset(&ci, 0, sizeof ci);
  ci.context = e->ctx;
  ci.address = host;
  ci.port = port;
  ci.ssl_connection = tls ? LCCSCF_USE_SSL : 0;
  ci.path = path;
  ci.host = host;
  ci.origin = host;
  ci.ietf_version_or_minus_one = -1;
  ci.local_protocol_name = PROTOCOL_NAME;
  ci.pwsi = &c->wsi;
  ci.opaque_user_data = c;
  ci.retry_and_idle_policy = &c->idle;
  if (!lws_client_connect_via_info(&ci)) {
    c->wsi = NULL;
    set_why(c, "CONNECT", "%s: the connection could not be started", c->url);
    c->state = RT_WS_CLOSED;
  }
  *out = c;
  return 0;
nomem:
  *code = "ENOMEM";
  snprintf(err, errlen, "ws.connect: out of memory");
fail:
  if (c) {
    for (int i = 0; i < 2 * c->nheaders; i++) free(c->headers[i]);
    free(c->headers);
    free(c->url);
    free(c->parts);
    free(c);
  }
  return -1;
}

void rt_ws_wait(rt_ws_conn_t *c, double timeout, rt_ws_wake_fn fn, void *ud) {
  c->wake = fn;
  c->wake_ud = ud;
  if (c->timer_state != TIMER_OPEN) return;
  uv_timer_stop(&c->timer);
  if (timeout >= 0) uv_timer_start(&c->timer, on_uv_timer, rt_ms(timeout), 0);
}

void rt_ws_wait_cancel(rt_ws_conn_t *c) {
  c->wake = NULL;
  if (c->timer_state == TIMER_OPEN) uv_timer_stop(&c->timer);
}

rt_ws_state_t rt_ws_state(const rt_ws_conn_t *c) { return c->state; }

void rt_ws_why(const rt_ws_conn_t *c, const char **code, const char **msg) {
  *code = c->state == RT_WS_CLOSED ? (c->code ? c->code : "CLOSED") : NULL;
  *msg = c->state == RT_WS_CLOSED ? c->msg : NULL;
}

const char *rt_ws_peek(const rt_ws_conn_t *c, size_t *len, int *binary) {
  const msg_t *m = c->qhead;
  if (!m) return NULL;
  *len = m->len;
  if (binary) *binary = m->binary;
  return m->data;
}

void rt_ws_drop(rt_ws_conn_t *c) {
  msg_t *m = c->qhead;
  if (!m) return;
  c->qhead = m->next;
  if (!c->qhead) c->qtail = NULL;
  c->qn--;
  free(m);
  if (c->paused && c->qn <= c->queue_max / 2) {
    c->paused = 0;
    if (c->wsi) lws_rx_flow_control(c->wsi, 1);
  }
}

int rt_ws_send(rt_ws_conn_t *c, const char *data, size_t len, int binary, const char **code) {
  if (c->state == RT_WS_CLOSED || !c->wsi) {
    *code = "CLOSED";
    return -1;
  }
  if (c->obytes + len > SEND_QUEUE_MAX) {
    *code = "QUEUE_FULL";
    return -1;
  }
  out_t *o = malloc(sizeof *o + LWS_PRE + len);
  if (!o) {
    *code = "ENOMEM";
    return -1;
  }
  o->next = NULL;
  o->len = len;
  o->binary = binary;
  memcpy(o->buf + LWS_PRE, data, len);
  if (c->otail) c->otail->next = o;
  else c->ohead = o;
  c->otail = o;
  c->obytes += len;
  if (c->state == RT_WS_OPEN) lws_callback_on_writable(c->wsi);
  return 0;
}

void rt_ws_close(rt_ws_conn_t *c) {
  if (c->state == RT_WS_CLOSED) return;
  set_why(c, "CLOSED", "%s: closed", c->url);
  if (c->wsi) {
    if (c->state == RT_WS_OPEN) {
      c->closing = 1;
      if (c->ohead) lws_callback_on_writable(c->wsi);   /* what was queued goes first */
      else start_close(c, 1);
    } else {
      lws_set_timeout(c->wsi, PENDING_TIMEOUT_USER_OK, LWS_TO_KILL_SYNC);   /* still connecting */
    }
  }
  mark_closed(c);
}

void rt_ws_release(rt_ws_conn_t *c) {
  c->wake = NULL;
  rt_ws_close(c);
  c->released = 1;
  close_timer(c);
  maybe_free(c);
}

void rt_ws_stats(const rt_ws_conn_t *c, rt_ws_stats_t *out) {
  *out = c->stats;
  out->queued = c->qn;
}
