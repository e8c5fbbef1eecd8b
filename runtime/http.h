/*
** runtime/http.h - HTTP client: libcurl multi driven by libuv (one poll handle per socket, one timer).
**
** No Lua here: a request is started with a C completion callback. Connections are reused across
** requests (keep-alive; HTTP/2 multiplexing where the server offers it), bodies are decoded (gzip, br,
** zstd) and proxies come from the environment (http_proxy, https_proxy, no_proxy), as libcurl does.
*/
#ifndef RT_HTTP_H
#define RT_HTTP_H

#include <stddef.h>
#include <uv.h>

typedef struct rt_http_s rt_http_t;
typedef struct rt_http_req_s rt_http_req_t;

typedef struct {
  const char *method;            /* "GET" when NULL */
  const char *url;
  const char *const *headers;    /* "Name: value" lines, or NULL */
  int nheaders;
  const char *body;              /* request body (copied), or NULL */
  size_t body_len;
  long timeout_ms;               /* whole transfer; 0 = the engine's default */
  long connect_timeout_ms;       /* 0 = the engine's default */
  long max_body;                 /* abort when the body grows past this many bytes; 0 = no limit */
} rt_http_opts_t;

typedef struct {
  const char *name;              /* lower-cased */
  const char *value;
} rt_http_header_t;

/* What a completion sees. Everything points into the request and is valid only during the
** callback. When `code` is non-NULL the transfer failed (no HTTP status) and errmsg says why. */
typedef struct {
  long status;
  const rt_http_header_t *headers;
  size_t nheaders;
  const char *body;
  size_t body_len;
  double total_time;             /* seconds */
  const char *code;              /* NULL, or "TIMEOUT", "ECONNREFUSED", "ECONNRESET", "TRUNCATED", ... */
  const char *errmsg;
  const char *url;               /* effective URL after redirects */
} rt_http_result_t;

typedef void (*rt_http_done_fn)(const rt_http_result_t *r, void *ud);

typedef struct {
  long timeout_ms;               /* default whole-transfer timeout */
  long connect_timeout_ms;
  long max_host_connections;     /* 0 = libcurl's default (unlimited) */
  const char *user_agent;        /* copied */
} rt_http_config_t;

/// Create an engine on `loop`. Returns NULL on failure (curl or memory).
rt_http_t *rt_http_new(uv_loop_t *loop, const rt_http_config_t *cfg);

/// Why a request header cannot be sent as given, or NULL when it can: the name must be an HTTP token
/// (no spaces, colons or control characters), the value (`len` bytes) must hold no CR, LF or NUL
/// (header injection). rt_http_start refuses such headers (and methods, checked as names) with EINVAL.
const char *rt_http_header_problem(const char *name, const char *value, size_t len);

/// Close the engine: aborts every transfer without calling completions, then closes its handles;
/// the memory is freed from the last close callback, so run the loop afterwards.
void rt_http_close(rt_http_t *h);

/// Start a request. On success returns 0 and the request in *out (valid until the completion has
/// returned or rt_http_abort); `done` is called exactly once from the loop, never from inside this
/// call. On failure returns -1 with a code ("EINVAL", "ENOMEM") and message in *code / errbuf.
int rt_http_start(rt_http_t *h, const rt_http_opts_t *o, rt_http_done_fn done, void *ud,
                  rt_http_req_t **out, const char **code, char *errbuf, size_t errlen);

/// Abort a request in flight: no completion is called and its memory is released.
void rt_http_abort(rt_http_req_t *req);

/// Counters for status pages and tests.
typedef struct { unsigned long started, completed, failed, in_flight, connections; } rt_http_stats_t;
void rt_http_stats(const rt_http_t *h, rt_http_stats_t *out);

#endif
