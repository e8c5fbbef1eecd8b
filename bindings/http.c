/*
** bindings/http.c - Lua module "rt.http".
**
**   res, err, code = http.request{method=, url=, headers=, query=, body=, timeout=, connect_timeout=,
**                                 max_body=, budget=, weight=, priority=}
**   res, err, code = http.get(url [, opts])      -- opts: the same keys minus url/method
**
** Both park the calling task. res = {status=, headers={lower-case name = value}, body=, time=, url=}.
** HTTP error statuses are normal results; err/code only for transport failures ("TIMEOUT",
** "ECONNREFUSED", "ECONNRESET", "TRUNCATED", "DNS", "TLS", "TOO_LARGE", ...).
**
** With `budget` (a name from config budgets), the request waits for admission (weight units,
** priority "realtime" | "backfill" | "discovery"), a 429 pauses the budget and sends it again, and
** 5xx / transient failures are retried with backoff (runtime/request.c). More codes then:
** "BANNED", "BREAKER_OPEN", "QUEUE_FULL".
*/
#include "bindings/bindings.h"

#include <stdlib.h>
#include <string.h>

#include "runtime/budget.h"
#include "runtime/http.h"
#include "runtime/request.h"

static const char *const request_opts[] = {"method", "url", "headers", "query", "body", "timeout",
                                           "connect_timeout", "max_body", "budget", "weight",
                                           "priority", NULL};

/* The completion: runs on the loop; pushes the results on the parked task and resumes it. */
static void on_request_done(const rt_http_result_t *r, void *ud) {
  rt_task_t *t = ud;
  lua_State *co = rt_task_thread(t);
  if (r->code) {
    rt_task_resume(t, rtl_push_fail(co, r->errmsg, r->code));
    return;
  }
  lua_createtable(co, 0, 5);
  lua_pushinteger(co, r->status);
  lua_setfield(co, -2, "status");
  lua_pushlstring(co, r->body, r->body_len);
  lua_setfield(co, -2, "body");
  lua_pushnumber(co, r->total_time);
  lua_setfield(co, -2, "time");
  lua_pushstring(co, r->url);
  lua_setfield(co, -2, "url");
  lua_createtable(co, 0, (int)r->nheaders);
  for (size_t i = 0; i < r->nheaders; i++) {
    if (lua_getfield(co, -1, r->headers[i].name) == LUA_TSTRING) {   /* repeated: join with ", " */
      lua_pushliteral(co, ", ");
      lua_pushstring(co, r->headers[i].value);
      lua_concat(co, 3);
    } else {
      lua_pop(co, 1);
      lua_pushstring(co, r->headers[i].value);
    }
    lua_setfield(co, -2, r->headers[i].name);
  }
  lua_setfield(co, -2, "headers");
  rt_task_resume(t, 1);
}

static void cancel_request(void *req) { rt_http_abort(req); }
static void cancel_budgeted(void *req) { rt_request_abort(req); }

/* A growable C string: the URL with its query is built here, away from the Lua stack. */
typedef struct {
  char *p;
  size_t len, cap;
} sbuf_t;

static void sb_add(lua_State *L, sbuf_t *b, const char *s, size_t n) {
  if (b->len + n + 1 > b->cap) {
    size_t cap = b->cap ? b->cap * 2 : 256;
    while (cap < b->len + n + 1) cap *= 2;
    char *p = realloc(b->p, cap);
    if (!p) {
      free(b->p);
      b->p = NULL;
      luaL_error(L, "http: out of memory");
    }
    b->p = p;
    b->cap = cap;
  }
  memcpy(b->p + b->len, s, n);
  b->len += n;
  b->p[b->len] = 0;
}

/* Percent-encode everything but RFC 3986 unreserved characters. */
static void sb_add_escaped(lua_State *L, sbuf_t *b, const char *s, size_t n) {
  for (size_t i = 0; i < n; i++) {
    unsigned char c = (unsigned char)s[i];
    if ((c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-' ||
        c == '.' || c == '_' || c == '~') {
      sb_add(L, b, (const char *)&c, 1);
    } else {
      char hex[4];
      snprintf(hex, sizeof hex, "%%%02X", c);
      sb_add(L, b, hex, 3);
    }
  }
}

/* Push url + "?k=v&..." from the query table at q, keys sorted so URLs are stable. [] -> [url] */
static void push_url(lua_State *L, const char *url, int q, const char *fn) {
  if (q == 0) {
    lua_pushstring(L, url);
    return;
  }
  int n = rtl_push_sorted_keys(L, q, fn, "query keys must be strings");   /* [keys] */
  int keys = lua_gettop(L);
  sbuf_t b = {0};
  sb_add(L, &b, url, strlen(url));
  for (int i = 1; i <= n; i++) {
    lua_rawgeti(L, keys, i);                   /* [keys k] */
    lua_pushvalue(L, -1);
    lua_gettable(L, q);                        /* [keys k v] */
    int vt = lua_type(L, -1);
    if (vt == LUA_TBOOLEAN) {
      lua_pushstring(L, lua_toboolean(L, -1) ? "true" : "false");
      lua_replace(L, -2);
    } else if (vt != LUA_TSTRING && vt != LUA_TNUMBER) {
      free(b.p);
      luaL_error(L, "%s: query value for '%s' must be a string, number or boolean", fn, lua_tostring(L, -2));
    }
    size_t klen, vlen;
    const char *k = lua_tolstring(L, -2, &klen), *v = lua_tolstring(L, -1, &vlen);
    sb_add(L, &b, (i == 1 && !strchr(url, '?')) ? "?" : "&", 1);
    sb_add_escaped(L, &b, k, klen);
    sb_add(L, &b, "=", 1);
    sb_add_escaped(L, &b, v, vlen);
    lua_pop(L, 2);                             /* [keys] */
  }
  lua_pop(L, 1);
  lua_pushlstring(L, b.p ? b.p : url, b.p ? b.len : strlen(url));
  free(b.p);
}

/* The request described by the options table at `o`. url_idx names the URL when it is not in o. */
static int start(lua_State *L, int o, int url_idx, const char *fn) {
  rt_t *rt = rt_from_lua(L);
  rt_task_t *t = rt_task_check_can_park(L, fn);
  rt_http_opts_t opts = {0};
  int has_o = !lua_isnoneornil(L, o);
  const char *url = url_idx ? luaL_checkstring(L, url_idx) : rtl_opt_string(L, o, "url", NULL, fn);
  if (!url) luaL_error(L, "%s: option 'url' is required", fn);
  opts.method = rtl_opt_string(L, o, "method", "GET", fn);
  if (rt_http_header_problem(opts.method, "", 0) || !*opts.method)
    luaL_error(L, "%s: option 'method' must be an HTTP method token, got '%s'", fn, opts.method);
  opts.timeout_ms = (long)rt_ms(rtl_opt_range(L, o, "timeout", 0, 0, 86400, fn));
  opts.connect_timeout_ms = (long)rt_ms(rtl_opt_range(L, o, "connect_timeout", 0, 0, 3600, fn));
  opts.max_body = (long)rtl_opt_range(L, o, "max_body", (double)rt_http_max_body(rt), 0, 1073741824.0, fn);
  if (has_o && lua_getfield(L, o, "body") != LUA_TNIL) {       /* stays on the stack: alive */
    if (lua_type(L, -1) != LUA_TSTRING) luaL_error(L, "%s: option 'body' must be a string", fn);
    opts.body = lua_tolstring(L, -1, &opts.body_len);
  }
  int q = 0;
  if (has_o && lua_getfield(L, o, "query") != LUA_TNIL) {
    if (!lua_istable(L, -1)) luaL_error(L, "%s: option 'query' must be a table", fn);
    q = lua_gettop(L);
  }
  push_url(L, url, q, fn);                     /* [.. (q) url] */
  opts.url = lua_tostring(L, -1);
  const char *lines[64];
  int nh = 0;
  if (has_o && lua_getfield(L, o, "headers") != LUA_TNIL) {
    if (!lua_istable(L, -1)) luaL_error(L, "%s: option 'headers' must be a table", fn);
    int h = lua_gettop(L);
    lua_pushnil(L);
    while (lua_next(L, h)) {                   /* [.. h k v] */
      if (lua_type(L, -2) != LUA_TSTRING || !lua_isstring(L, -1))
        luaL_error(L, "%s: headers must map names to strings", fn);
      if (nh == 64) luaL_error(L, "%s: more than 64 headers", fn);
      const char *why = rt_http_header_problem(lua_tostring(L, -2), lua_tostring(L, -1), lua_rawlen(L, -1));
      if (why) {
        lua_pushfstring(L, "%s: header '%s': %s", fn, lua_tostring(L, -2), why);
        return rtl_push_fail(L, lua_tostring(L, -1), "EINVAL");
      }
      lua_pushfstring(L, "%s: %s", lua_tostring(L, -2), lua_tostring(L, -1));
      lines[nh++] = lua_tostring(L, -1);
      lua_insert(L, h);                        /* keep each line on the stack, below the table */
      h++;
      lua_pop(L, 1);                           /* [.. lines h k] */
    }
  }
  opts.headers = lines;
  opts.nheaders = nh;
  const char *code;
  char errbuf[256];
  const char *budget = rtl_opt_string(L, o, "budget", NULL, fn);
  if (!rt_http_of(rt)) return rtl_push_fail(L, "http: the engine is shut down", "ECANCELED");
  if (budget) {
    rt_request_opts_t ro = {opts, 1, RT_PRIO_REALTIME, rt_task_run_name(t)};
    rt_budget_t *b = rt_budget_find(rt_budgets_of(rt), budget);
    if (!b) luaL_error(L, "%s: unknown budget '%s' (declare it under budgets in config.lua)", fn, budget);
    int prio;
    rtl_budget_opts(L, o, fn, &ro.weight, &prio);
    ro.prio = (rt_prio_t)prio;
    rt_request_t *breq;
    if (rt_request_start(rt, b, &ro, on_request_done, t, &breq, &code, errbuf, sizeof errbuf) < 0)
      return rtl_push_fail(L, errbuf, code);
    rt_task_on_cancel(t, cancel_budgeted, breq);
    return rt_task_park(L, fn);
  }
  if (has_o && (lua_getfield(L, o, "weight") != LUA_TNIL || lua_getfield(L, o, "priority") != LUA_TNIL))
    luaL_error(L, "%s: options 'weight' and 'priority' need a 'budget'", fn);
  rt_http_req_t *req;
  if (rt_http_start(rt_http_of(rt), &opts, on_request_done, t, &req, &code, errbuf, sizeof errbuf) < 0)
    return rtl_push_fail(L, errbuf, code);
  rt_task_on_cancel(t, cancel_request, req);   /* libcurl copied url, headers and body */
  return rt_task_park(L, fn);
}

/* http.request{...} */
static int rtl_http_request(lua_State *L) {
  luaL_checktype(L, 1, LUA_TTABLE);
  rtl_check_opts(L, 1, "http.request", request_opts);
  return start(L, 1, 0, "http.request");
}

/* http.get(url [, opts]) */
static int rtl_http_get(lua_State *L) {
  static const char *const get_opts[] = {"headers", "query", "timeout", "connect_timeout", "max_body",
                                         "budget", "weight", "priority", NULL};
  luaL_checktype(L, 1, LUA_TSTRING);           /* not checkstring: http.get(42) is a bug, not a URL */
  rtl_check_opts(L, 2, "http.get", get_opts);
  lua_settop(L, 2);
  return start(L, 2, 1, "http.get");
}

static const luaL_Reg http_funcs[] = {
  {"request", rtl_http_request},
  {"get", rtl_http_get},
  {NULL, NULL}};

int luaopen_rt_http(lua_State *L) {
  luaL_newlib(L, http_funcs);
  return 1;
}
