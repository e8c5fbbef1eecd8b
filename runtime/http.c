/*
** runtime/http.c - libcurl multi on libuv, after curl's docs/examples/multi-uv.c.
**
** libcurl tells us which sockets to watch (on_curl_socket) and when to wake it (on_curl_timer);
** libuv tells libcurl what happened (on_uv_poll, on_uv_timeout). After every socket action the
** finished transfers are drained from curl_multi_info_read and completed.
**
** Lifetime: a socket context (uv_poll_t) is created on the first interest in a socket and closed
** on CURL_POLL_REMOVE, which libcurl sends before it closes the socket; its memory is freed in the
** close callback only. The engine itself is freed from the last close callback after rt_http_close.
*/
#include "runtime/http.h"

#include <ctype.h>
#include <curl/curl.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

typedef struct sock_ctx_s {
  uv_poll_t poll;
  curl_socket_t fd;
  rt_http_t *h;
  struct sock_ctx_s *next;     /* h->socks */
} sock_ctx_t;

struct rt_http_req_s {
  rt_http_t *h;
  CURL *easy;
  struct curl_slist *hdrs;
  char *body;                  /* response body, grown by on_curl_write */
  size_t len, cap;
  rt_http_header_t *hv;        /* response headers; names and values malloc'd */
  size_t nh, hcap;
  long max_body;
  int too_big;
  rt_http_done_fn done;
  void *ud;
  char errbuf[CURL_ERROR_SIZE];
  rt_http_req_t *next, *prev;  /* h->reqs */
};

struct rt_http_s {
  uv_loop_t *loop;
  CURLM *multi;
  uv_timer_t timer;
  rt_http_req_t *reqs;         /* in flight */
  sock_ctx_t *socks;           /* polls not yet closing */
  int open_handles;            /* timer + polls whose close callback has not run */
  int closing;
  rt_http_config_t cfg;
  rt_http_stats_t stats;
};

static void check_done(rt_http_t *h);

/* ---- freeing -------------------------------------------------------------------------------- */

static void maybe_free_engine(rt_http_t *h) {
  if (!h->closing || h->open_handles > 0) return;
  free((char *)h->cfg.user_agent);
  free(h);
  curl_global_cleanup();
}

static void on_uv_handle_closed(uv_handle_t *hd) {
  rt_http_t *h;
  if (hd->type == UV_POLL) {
    sock_ctx_t *c = hd->data;
    h = c->h;
    free(c);
  } else {
    h = hd->data;
  }
  h->open_handles--;
  maybe_free_engine(h);
}

static void clear_headers(rt_http_req_t *r) {
  for (size_t i = 0; i < r->nh; i++) {
    free((char *)r->hv[i].name);
    free((char *)r->hv[i].value);
  }
  r->nh = 0;
}

/* Take r off the in-flight list (before its completion runs: the callback may close the engine). */
static void req_unlink(rt_http_req_t *r) {
  rt_http_t *h = r->h;
  if (r->prev) r->prev->next = r->next;
  else h->reqs = r->next;
  if (r->next) r->next->prev = r->prev;
  r->next = r->prev = NULL;
  h->stats.in_flight--;
}

static void req_free(rt_http_req_t *r) {
  curl_easy_cleanup(r->easy);
  curl_slist_free_all(r->hdrs);
  clear_headers(r);
  free(r->hv);
  free(r->body);
  free(r);
}

/* ---- libcurl callbacks ---------------------------------------------------------------------- */

static void on_uv_poll(uv_poll_t *p, int status, int events) {
  sock_ctx_t *c = p->data;
  int flags = 0, running = 0;
  if (status < 0) flags = CURL_CSELECT_ERR;   /* e.g. EBADF: let curl find out (curl#14254) */
  else {
    if (events & UV_READABLE) flags |= CURL_CSELECT_IN;
    if (events & UV_WRITABLE) flags |= CURL_CSELECT_OUT;
  }
  rt_http_t *h = c->h;
  curl_multi_socket_action(h->multi, c->fd, flags, &running);
  check_done(h);
}

static void sock_close(rt_http_t *h, sock_ctx_t *c) {
  sock_ctx_t **pp = &h->socks;
  while (*pp && *pp != c) pp = &(*pp)->next;
  if (*pp) *pp = c->next;
  uv_poll_stop(&c->poll);
  uv_close((uv_handle_t *)&c->poll, on_uv_handle_closed);
}

/* libcurl: watch `s` for `what`, or stop watching it (it is about to be closed). */
static int on_curl_socket(CURL *e, curl_socket_t s, int what, void *userp, void *socketp) {
  rt_http_t *h = userp;
  sock_ctx_t *c = socketp;
  (void)e;
  if (what == CURL_POLL_REMOVE) {
    if (c) {
      curl_multi_assign(h->multi, s, NULL);
      sock_close(h, c);
    }
    return 0;
  }
  if (!c) {
    c = calloc(1, sizeof *c);
    if (!c) return -1;
    if (uv_poll_init_socket(h->loop, &c->poll, s) < 0) {
      free(c);
      return -1;
    }
    c->fd = s;
    c->h = h;
    c->poll.data = c;
    c->next = h->socks;
    h->socks = c;
    h->open_handles++;
    curl_multi_assign(h->multi, s, c);
  }
  int ev = 0;
  if (what & CURL_POLL_IN) ev |= UV_READABLE;
  if (what & CURL_POLL_OUT) ev |= UV_WRITABLE;
  uv_poll_start(&c->poll, ev, on_uv_poll);
  return 0;
}

static void on_uv_timeout(uv_timer_t *t) {
  rt_http_t *h = t->data;
  int running = 0;
  curl_multi_socket_action(h->multi, CURL_SOCKET_TIMEOUT, 0, &running);
  check_done(h);
}

/* libcurl: call me back in timeout_ms (-1: don't). 0 becomes 1 ms so libcurl is never re-entered
** from inside its own callback. */
static int on_curl_timer(CURLM *m, long timeout_ms, void *userp) {
  rt_http_t *h = userp;
  (void)m;
  if (h->closing) return 0;
  if (timeout_ms < 0) uv_timer_stop(&h->timer);
  else uv_timer_start(&h->timer, on_uv_timeout, timeout_ms == 0 ? 1 : (uint64_t)timeout_ms, 0);
  return 0;
}

static size_t on_curl_write(char *data, size_t size, size_t n, void *ud) {
  rt_http_req_t *r = ud;
  size_t len = size * n;
  if (r->max_body > 0 && r->len + len > (size_t)r->max_body) {
    r->too_big = 1;
    return 0;                                  /* CURLE_WRITE_ERROR */
  }
  if (r->len + len + 1 > r->cap) {
    size_t cap = r->cap ? r->cap : 16384;
    while (cap < r->len + len + 1) cap *= 2;
    char *b = realloc(r->body, cap);
    if (!b) return 0;
    r->body = b;
    r->cap = cap;
  }
  memcpy(r->body + r->len, data, len);
  r->len += len;
  return len;
}

static char *dup_range(const char *s, size_t n) {
  char *d = malloc(n + 1);
  if (d) {
    memcpy(d, s, n);
    d[n] = 0;
  }
  return d;
}

/* One header line per call. A status line starts a new response (a redirect or 100 Continue came
** first), so earlier headers are dropped. Names are lower-cased. */
static size_t on_curl_header(char *line, size_t size, size_t n, void *ud) {
  rt_http_req_t *r = ud;
  size_t len = size * n, k;
  if (len >= 5 && memcmp(line, "HTTP/", 5) == 0) {
    clear_headers(r);
    return len;
  }
  char *colon = memchr(line, ':', len);
  if (!colon) return len;
  size_t nlen = (size_t)(colon - line);
  const char *v = colon + 1, *end = line + len;
  while (v < end && (*v == ' ' || *v == '\t')) v++;
  while (end > v && (end[-1] == '\r' || end[-1] == '\n' || end[-1] == ' ' || end[-1] == '\t')) end--;
  if (r->nh == r->hcap) {
    size_t cap = r->hcap ? r->hcap * 2 : 16;
    rt_http_header_t *hv = realloc(r->hv, cap * sizeof *hv);
    if (!hv) return 0;
    r->hv = hv;
    r->hcap = cap;
  }
  char *name = dup_range(line, nlen), *value = dup_range(v, (size_t)(end - v));
  if (!name || !value) {
    free(name);
    free(value);
    return 0;
  }
  for (k = 0; k < nlen; k++) name[k] = (char)tolower((unsigned char)name[k]);
  r->hv[r->nh].name = name;
  r->hv[r->nh].value = value;
  r->nh++;
  return len;
}

/* ---- completion ----------------------------------------------------------------------------- */

static const char *code_of(CURLcode rc, const rt_http_req_t *r) {
  switch (rc) {
  case CURLE_OK: return NULL;
  case CURLE_OPERATION_TIMEDOUT: return "TIMEOUT";
  case CURLE_COULDNT_CONNECT: return "ECONNREFUSED";
  case CURLE_COULDNT_RESOLVE_HOST:
  case CURLE_COULDNT_RESOLVE_PROXY: return "DNS";
  case CURLE_RECV_ERROR:
  case CURLE_SEND_ERROR:
  case CURLE_GOT_NOTHING: return "ECONNRESET";
  case CURLE_PARTIAL_FILE: return "TRUNCATED";
  case CURLE_BAD_CONTENT_ENCODING: return "DECODE";
  case CURLE_TOO_MANY_REDIRECTS: return "REDIRECTS";
  case CURLE_URL_MALFORMAT:
  case CURLE_UNSUPPORTED_PROTOCOL: return "EINVAL";
  case CURLE_OUT_OF_MEMORY: return "ENOMEM";
  case CURLE_SSL_CONNECT_ERROR:
  case CURLE_PEER_FAILED_VERIFICATION:
  case CURLE_SSL_CERTPROBLEM:
  case CURLE_SSL_CIPHER:
  case CURLE_SSL_CACERT_BADFILE: return "TLS";
  case CURLE_WRITE_ERROR: return r->too_big ? "TOO_LARGE" : "EHTTP";
  default: return "EHTTP";
  }
}

static void complete(rt_http_req_t *r, CURLcode rc) {
  rt_http_t *h = r->h;
  rt_http_result_t res = {0};
  long conns = 0;
  char *url = NULL;
  curl_easy_getinfo(r->easy, CURLINFO_RESPONSE_CODE, &res.status);
  curl_easy_getinfo(r->easy, CURLINFO_TOTAL_TIME, &res.total_time);
  curl_easy_getinfo(r->easy, CURLINFO_EFFECTIVE_URL, &url);
  curl_easy_getinfo(r->easy, CURLINFO_NUM_CONNECTS, &conns);
  h->stats.connections += (unsigned long)conns;
  res.url = url;
  res.code = code_of(rc, r);
  if (res.code) {
    h->stats.failed++;
    if (r->too_big) snprintf(r->errbuf, sizeof r->errbuf, "body larger than %ld bytes", r->max_body);
    res.errmsg = r->errbuf[0] ? r->errbuf : curl_easy_strerror(rc);
    res.status = 0;
  } else {
    h->stats.completed++;
    res.headers = r->hv;
    res.nheaders = r->nh;
    res.body = r->body ? r->body : "";
    res.body_len = r->len;
  }
  req_unlink(r);
  r->done(&res, r->ud);                        /* may start requests or close the engine */
  req_free(r);
}

static void check_done(rt_http_t *h) {
  CURLMsg *m;
  int left;
  while (h->multi && (m = curl_multi_info_read(h->multi, &left))) {
    if (m->msg != CURLMSG_DONE) continue;
    CURL *e = m->easy_handle;
    CURLcode rc = m->data.result;
    rt_http_req_t *r = NULL;
    curl_easy_getinfo(e, CURLINFO_PRIVATE, (char **)&r);
    curl_multi_remove_handle(h->multi, e);
    complete(r, rc);
  }
}

/* ---- the API -------------------------------------------------------------------------------- */

rt_http_t *rt_http_new(uv_loop_t *loop, const rt_http_config_t *cfg) {
  if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK) return NULL;
  rt_http_t *h = calloc(1, sizeof *h);
  if (!h) goto fail;
  h->loop = loop;
  h->cfg = *cfg;
  h->cfg.user_agent = strdup(cfg->user_agent ? cfg->user_agent : "candled/" CANDLED_VERSION);
  h->multi = curl_multi_init();
  if (!h->multi || !h->cfg.user_agent) goto fail;
  uv_timer_init(loop, &h->timer);
  h->timer.data = h;
  h->open_handles = 1;
  curl_multi_setopt(h->multi, CURLMOPT_SOCKETFUNCTION, on_curl_socket);
  curl_multi_setopt(h->multi, CURLMOPT_SOCKETDATA, h);
  curl_multi_setopt(h->multi, CURLMOPT_TIMERFUNCTION, on_curl_timer);
  curl_multi_setopt(h->multi, CURLMOPT_TIMERDATA, h);
  curl_multi_setopt(h->multi, CURLMOPT_PIPELINING, CURLPIPE_MULTIPLEX);
  if (cfg->max_host_connections > 0)
    curl_multi_setopt(h->multi, CURLMOPT_MAX_HOST_CONNECTIONS, cfg->max_host_connections);
  return h;
fail:
  if (h) {
    if (h->multi) curl_multi_cleanup(h->multi);
    free((char *)h->cfg.user_agent);
    free(h);
  }
  curl_global_cleanup();
  return NULL;
}

void rt_http_close(rt_http_t *h) {
  if (h->closing) return;
  while (h->reqs) rt_http_abort(h->reqs);
  curl_multi_cleanup(h->multi);                /* closes cached connections: REMOVE callbacks */
  h->multi = NULL;
  h->closing = 1;
  while (h->socks) sock_close(h, h->socks);    /* anything libcurl did not tell us about */
  uv_timer_stop(&h->timer);
  uv_close((uv_handle_t *)&h->timer, on_uv_handle_closed);
}

const char *rt_http_header_problem(const char *name, const char *value, size_t len) {
  static const char separators[] = "()<>@,;:\\\"/[]?={} \t";
  for (const unsigned char *p = (const unsigned char *)name; *p; p++)
    if (*p <= 32 || *p >= 127 || strchr(separators, *p)) return "the name must be a token (no spaces, colons or control characters)";
  for (size_t i = 0; i < len; i++)
    if (value[i] == '\r' || value[i] == '\n' || value[i] == 0) return "the value must not contain CR, LF or NUL";
  return NULL;
}

int rt_http_start(rt_http_t *h, const rt_http_opts_t *o, rt_http_done_fn done, void *ud,
                  rt_http_req_t **out, const char **code, char *errbuf, size_t errlen) {
  const char *method = o->method ? o->method : "GET";
  rt_http_req_t *r;
  if (h->closing) {
    *code = "ECANCELED";
    snprintf(errbuf, errlen, "the HTTP engine is shutting down");
    return -1;
  }
  if (!(r = calloc(1, sizeof *r)) || !(r->easy = curl_easy_init())) {
    free(r);
    *code = "ENOMEM";
    snprintf(errbuf, errlen, "out of memory");
    return -1;
  }
  if (rt_http_header_problem(method, "", 0) || !*method) {
    curl_easy_cleanup(r->easy);
    free(r);
    *code = "EINVAL";
    snprintf(errbuf, errlen, "method '%s' is not an HTTP token", method);
    return -1;
  }
  for (int i = 0; i < o->nheaders; i++) {      /* "Name: value" lines: one line each */
    if (strpbrk(o->headers[i], "\r\n")) {
      curl_easy_cleanup(r->easy);
      free(r);
      *code = "EINVAL";
      snprintf(errbuf, errlen, "header %d contains CR or LF", i + 1);
      return -1;
    }
  }
  r->h = h;
  r->done = done;
  r->ud = ud;
  r->max_body = o->max_body;
  for (int i = 0; i < o->nheaders; i++) {
    struct curl_slist *l = curl_slist_append(r->hdrs, o->headers[i]);
    if (!l) goto nomem;
    r->hdrs = l;
  }
  CURL *e = r->easy;
  curl_easy_setopt(e, CURLOPT_URL, o->url);
  curl_easy_setopt(e, CURLOPT_PRIVATE, r);
  curl_easy_setopt(e, CURLOPT_WRITEFUNCTION, on_curl_write);
  curl_easy_setopt(e, CURLOPT_WRITEDATA, r);
  curl_easy_setopt(e, CURLOPT_HEADERFUNCTION, on_curl_header);
  curl_easy_setopt(e, CURLOPT_HEADERDATA, r);
  curl_easy_setopt(e, CURLOPT_ERRORBUFFER, r->errbuf);
  curl_easy_setopt(e, CURLOPT_NOSIGNAL, 1L);
  curl_easy_setopt(e, CURLOPT_ACCEPT_ENCODING, "");          /* every encoding libcurl decodes */
  curl_easy_setopt(e, CURLOPT_HTTP_VERSION, (long)CURL_HTTP_VERSION_2TLS);
  /* Prefer multiplexing over new connections, but only where HTTP/2 is possible (https, by ALPN):
  ** with PIPEWAIT a plain http:// request would wait for the first response on a new connection
  ** to learn it is HTTP/1.1, so a request that hangs would hold up every other to that host. */
  if (o->url && strncasecmp(o->url, "https:", 6) == 0)
    curl_easy_setopt(e, CURLOPT_PIPEWAIT, 1L);
  curl_easy_setopt(e, CURLOPT_TCP_KEEPALIVE, 1L);
  curl_easy_setopt(e, CURLOPT_FOLLOWLOCATION, 1L);
  curl_easy_setopt(e, CURLOPT_MAXREDIRS, 5L);
  curl_easy_setopt(e, CURLOPT_PROTOCOLS_STR, "http,https");
  curl_easy_setopt(e, CURLOPT_REDIR_PROTOCOLS_STR, "http,https");
  curl_easy_setopt(e, CURLOPT_USERAGENT, h->cfg.user_agent);
  curl_easy_setopt(e, CURLOPT_TIMEOUT_MS, o->timeout_ms > 0 ? o->timeout_ms : h->cfg.timeout_ms);
  curl_easy_setopt(e, CURLOPT_CONNECTTIMEOUT_MS,
                   o->connect_timeout_ms > 0 ? o->connect_timeout_ms : h->cfg.connect_timeout_ms);
  if (r->hdrs) curl_easy_setopt(e, CURLOPT_HTTPHEADER, r->hdrs);
  if (strcmp(method, "GET") == 0) {
    curl_easy_setopt(e, CURLOPT_HTTPGET, 1L);
  } else if (strcmp(method, "HEAD") == 0) {
    curl_easy_setopt(e, CURLOPT_NOBODY, 1L);
  } else {
    if (strcmp(method, "POST") == 0) curl_easy_setopt(e, CURLOPT_POST, 1L);
    else curl_easy_setopt(e, CURLOPT_CUSTOMREQUEST, method);
    if (o->body || strcmp(method, "POST") == 0) {
      curl_easy_setopt(e, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)(o->body ? o->body_len : 0));
      curl_easy_setopt(e, CURLOPT_COPYPOSTFIELDS, o->body ? o->body : "");
    }
  }
  r->next = h->reqs;
  if (h->reqs) h->reqs->prev = r;
  h->reqs = r;
  h->stats.in_flight++;
  h->stats.started++;
  CURLMcode mc = curl_multi_add_handle(h->multi, e);
  if (mc != CURLM_OK) {
    *code = "EHTTP";
    snprintf(errbuf, errlen, "%s", curl_multi_strerror(mc));
    req_unlink(r);
    req_free(r);
    return -1;
  }
  *out = r;
  return 0;
nomem:
  curl_slist_free_all(r->hdrs);
  curl_easy_cleanup(r->easy);
  free(r);
  *code = "ENOMEM";
  snprintf(errbuf, errlen, "out of memory");
  return -1;
}

void rt_http_abort(rt_http_req_t *r) {
  curl_multi_remove_handle(r->h->multi, r->easy);
  req_unlink(r);
  req_free(r);
}

void rt_http_stats(const rt_http_t *h, rt_http_stats_t *out) { *out = h->stats; }
