/*
** runtime/http_server.c - h2o (its libuv flavour) on the runtime's loop; see http_server.h.
**
** Lifetime: start allocates the server; every accepted connection is a conn_t counted in `open`,
** freed by the close callback h2o calls when it is done with the socket. stop closes the
** listener; the server (h2o context and config) is disposed of when the listener is closed and
** the last connection is gone (each ends with its response, or after req_timeout when idle).
*/
#include "runtime/http_server.h"

#include <h2o.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct {
  h2o_handler_t super;
  rt_http_server_t *s;
} handler_t;

struct rt_http_server_s {
  uv_loop_t *loop;
  uv_tcp_t listener;
  h2o_globalconf_t config;
  h2o_context_t ctx;
  h2o_accept_ctx_t accept;
  rt_http_route_fn route;
  void *ud;
  int port;
  int open;                 /* connections h2o has not closed yet */
  int listening;            /* the listener handle is not closed yet */
  int stopped;
  unsigned long requests;
};

typedef struct {
  uv_tcp_t tcp;             /* first: h2o's close callback gets the handle */
  rt_http_server_t *s;
} conn_t;

static void server_free_if_done(rt_http_server_t *s) {
  if (!s->stopped || s->open > 0 || s->listening) return;
  h2o_context_dispose(&s->ctx);
  h2o_config_dispose(&s->config);
  free(s);
}

static void on_uv_conn_closed(uv_handle_t *h) {
  conn_t *c = (conn_t *)h;
  rt_http_server_t *s = c->s;
  free(c);
  s->open--;
  server_free_if_done(s);
}

static void on_uv_listener_closed(uv_handle_t *h) {
  rt_http_server_t *s = h->data;
  s->listening = 0;
  server_free_if_done(s);
}

static const rt_web_asset_t *find_asset(h2o_iovec_t path) {
  if (path.len == 1 && path.base[0] == '/') path = h2o_iovec_init(H2O_STRLIT("/index.html"));
  for (const rt_web_asset_t *a = rt_web_assets; a->path; a++)
    if (strlen(a->path) == path.len && memcmp(a->path, path.base, path.len) == 0) return a;
  return NULL;
}

static void send_body(h2o_req_t *req, int status, const char *type, const char *body, size_t len) {
  req->res.status = status;
  req->res.reason = status == 200 ? "OK" : status == 404 ? "Not Found" : status == 400 ? "Bad Request" : "Error";
  h2o_add_header(&req->pool, &req->res.headers, H2O_TOKEN_CONTENT_TYPE, NULL, type, strlen(type));
  h2o_add_header(&req->pool, &req->res.headers, H2O_TOKEN_CACHE_CONTROL, NULL, H2O_STRLIT("no-store"));
  h2o_send_inline(req, body, len);    /* copies body into the request's pool */
}

static int on_req(h2o_handler_t *self, h2o_req_t *req) {
  rt_http_server_t *s = ((handler_t *)self)->s;
  s->requests++;
  req->http1_is_persistent = 0;      /* one request per connection: nothing idles at stop */
  if (!h2o_memis(req->method.base, req->method.len, H2O_STRLIT("GET")) &&
      !h2o_memis(req->method.base, req->method.len, H2O_STRLIT("HEAD"))) {
    h2o_send_error_405(req, "Method Not Allowed", "read-only: GET and HEAD only\n", 0);
    return 0;
  }
  h2o_iovec_t path = req->path_normalized;
  const rt_web_asset_t *a = find_asset(path);
  if (a) {
    send_body(req, 200, a->type, a->data, a->len);
    return 0;
  }
  const char *query = "";
  size_t qlen = 0;
  if (req->query_at != SIZE_MAX) {
    query = req->path.base + req->query_at + 1;
    qlen = req->path.len - req->query_at - 1;
  }
  rt_http_reply_t out = {0};
  s->route(s->ud, path.base, path.len, query, qlen, &out);
  if (out.status == 0) {
    free(out.body);
    h2o_send_error_404(req, "Not Found", "not found\n", 0);
    return 0;
  }
  send_body(req, out.status, out.type[0] ? out.type : "text/plain; charset=utf-8", out.body ? out.body : "", out.len);
  free(out.body);
  return 0;
}

static void on_uv_accept(uv_stream_t *listener, int status) {
  rt_http_server_t *s = listener->data;
  if (status != 0 || s->stopped) return;
  conn_t *c = calloc(1, sizeof *c);
  if (!c) return;
  c->s = s;
  uv_tcp_init(s->loop, &c->tcp);
  s->open++;
  if (uv_accept(listener, (uv_stream_t *)&c->tcp) != 0) {
    uv_close((uv_handle_t *)&c->tcp, on_uv_conn_closed);
    return;
  }
  h2o_socket_t *sock = h2o_uv_socket_create((uv_stream_t *)&c->tcp, on_uv_conn_closed);
  h2o_accept(&s->accept, sock);
}

/* "HOST:PORT" or "[V6]:PORT" into addr. */
static int parse_listen(const char *listen, struct sockaddr_storage *addr) {
  char host[256];
  const char *colon = strrchr(listen, ':');
  if (!colon || colon == listen || strlen(colon + 1) == 0 || strlen(colon + 1) > 5) return -1;
  char *end;
  long port = strtol(colon + 1, &end, 10);
  if (*end || port < 0 || port > 65535) return -1;
  size_t hl = (size_t)(colon - listen);
  if (listen[0] == '[') {
    if (hl < 3 || listen[hl - 1] != ']' || hl - 2 >= sizeof host) return -1;
    memcpy(host, listen + 1, hl - 2);
    host[hl - 2] = 0;
    return uv_ip6_addr(host, (int)port, (struct sockaddr_in6 *)addr) == 0 ? 0 : -1;
  }
  if (hl >= sizeof host) return -1;
  memcpy(host, listen, hl);
  host[hl] = 0;
  return uv_ip4_addr(host, (int)port, (struct sockaddr_in *)addr) == 0 ? 0 : -1;
}

rt_http_server_t *rt_http_server_start(uv_loop_t *loop, const char *listen, rt_http_route_fn route, void *ud,
                                       char *err, size_t errlen) {
  struct sockaddr_storage addr;
  memset(&addr, 0, sizeof addr);
  if (parse_listen(listen, &addr) < 0) {
    snprintf(err, errlen, "http_server.listen: '%s' is not HOST:PORT (e.g. 127.0.0.1:8642, [::1]:8642)", listen);
    return NULL;
  }
  rt_http_server_t *s = calloc(1, sizeof *s);
  if (!s) {
    snprintf(err, errlen, "http_server: out of memory");
    return NULL;
  }
  s->loop = loop;
  s->route = route;
  s->ud = ud;
  h2o_config_init(&s->config);
  s->config.http1.req_timeout = 5000;   /* a client that sends nothing is dropped after 5 s */
  h2o_hostconf_t *host = h2o_config_register_host(&s->config, h2o_iovec_init(H2O_STRLIT("default")), 65535);
  h2o_pathconf_t *pc = h2o_config_register_path(host, "/", 0);
  handler_t *h = (handler_t *)h2o_create_handler(pc, sizeof *h);
  h->super.on_req = on_req;
  h->s = s;
  h2o_context_init(&s->ctx, loop, &s->config);
  s->accept.ctx = &s->ctx;
  s->accept.hosts = s->config.hosts;
  uv_tcp_init(loop, &s->listener);
  s->listener.data = s;
  s->listening = 1;
  int rc = uv_tcp_bind(&s->listener, (struct sockaddr *)&addr, 0);
  if (rc == 0) rc = uv_listen((uv_stream_t *)&s->listener, 128, on_uv_accept);
  if (rc != 0) {
    snprintf(err, errlen, "http_server.listen %s: %s", listen, uv_strerror(rc));
    rt_http_server_stop(s);
    return NULL;
  }
  struct sockaddr_storage bound;
  int len = sizeof bound;
  uv_tcp_getsockname(&s->listener, (struct sockaddr *)&bound, &len);
  s->port = ntohs(bound.ss_family == AF_INET6 ? ((struct sockaddr_in6 *)&bound)->sin6_port
                                                : ((struct sockaddr_in *)&bound)->sin_port);
  return s;
}

int rt_http_server_port(const rt_http_server_t *s) { return s->port; }

unsigned long rt_http_server_requests(const rt_http_server_t *s) { return s->requests; }

void rt_http_server_stop(rt_http_server_t *s) {
  if (!s || s->stopped) return;
  s->stopped = 1;   /* no keep-alive: open connections end with their response or req_timeout */
  uv_close((uv_handle_t *)&s->listener, on_uv_listener_closed);
}
