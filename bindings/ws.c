/*
** bindings/ws.c - Lua module "rt.ws": WebSocket client connections (runtime/ws.c).
**
**   conn, err, code = ws.connect(url [, {timeout=, headers=, ping_interval=, idle_timeout=,
**                                        queue=, max_message=}])
**   msg, err, code  = conn:receive([timeout])     -- parks; a message (text or binary) as a string
**   ok, err, code   = conn:send(text [, binary])  -- queued; written by the loop
**   conn:close()                                  -- a normal close; buffered messages stay readable
**   conn:state()  -> "connecting" | "open" | "closed"
**   conn:stats()  -> {received=, sent=, pongs=, paused=, queued=}
**
** connect parks until the handshake is done (default timeout 10 s). receive parks until a message
** is buffered, the connection closes (nil, msg, "CLOSED" - or the reason's code: "TOO_LARGE",
** "SHUTDOWN") or `timeout` seconds pass (nil, msg, "TIMEOUT"; the connection stays usable). One task
** at a time may receive on a connection. Server pings are answered by the runtime. `ping_interval`
** sends our own pings that many seconds after the last pong, `idle_timeout` (longer, and only with
** ping_interval) hangs up after that many seconds without a pong (CLOSED). At most `queue` messages (default 4096) wait; a full queue stops reading from the socket
** until half of it has been received (nothing is dropped). A connection is closed when it is
** garbage-collected or goes out of scope as a `<close>` variable.
*/
#include "bindings/bindings.h"

#include <stdlib.h>
#include <string.h>

#include "runtime/http.h"
#include "runtime/ws.h"

#define CONN_MT "rt.ws.conn"

typedef struct {
  rt_ws_conn_t *c;          /* NULL once released */
  rt_task_t *waiter;        /* the task parked in connect/receive, or NULL */
  int timed_out;
  double deadline;          /* loop time (ms) the current wait ends, < 0: none */
} lconn_t;

static const char *const connect_opts[] = {"timeout", "headers", "ping_interval", "idle_timeout", "queue",
                                           "max_message", NULL};

static void on_wait_done(void *ud, rt_ws_wake_t why) {
  lconn_t *lc = ud;
  rt_task_t *t = lc->waiter;
  lc->waiter = NULL;
  if (why == RT_WS_WAKE_TIMEOUT) lc->timed_out = 1;
  if (t) rt_task_resume_later(t, 0);
}

static void cancel_wait(void *ud) {
  lconn_t *lc = ud;
  lc->waiter = NULL;
  if (lc->c) rt_ws_wait_cancel(lc->c);
}

static void release(lconn_t *lc) {
  if (!lc->c) return;
  rt_ws_release(lc->c);
  lc->c = NULL;
  lc->waiter = NULL;
}

static int push_why(lua_State *L, lconn_t *lc) {
  const char *code, *msg;
  rt_ws_why(lc->c, &code, &msg);
  return rtl_push_fail(L, msg, code);
}

/* Park the running task until something happens on lc or its deadline. */
static int wait(lua_State *L, lconn_t *lc, const char *fn, lua_KContext ctx, lua_KFunction k) {
  rt_t *rt = rt_from_lua(L);
  rt_task_t *t = rt_task_check_can_park(L, fn);
  double left = -1;
  if (lc->deadline >= 0) {
    left = (lc->deadline - rt_loop_now_ms(rt)) / 1000.0;
    if (left < 0) left = 0;
  }
  lc->waiter = t;
  lc->timed_out = 0;
  rt_ws_wait(lc->c, left, on_wait_done, lc);
  rt_task_on_cancel(t, cancel_wait, lc);
  return rt_task_park_k(L, fn, ctx, k);
}

/* ---- connect ------------------------------------------------------------------------------- */

static int connect_k(lua_State *L, int status, lua_KContext ctx) {
  int idx = (int)ctx;
  lconn_t *lc = lua_touserdata(L, idx);
  rt_ws_state_t st = rt_ws_state(lc->c);
  if (st == RT_WS_OPEN) {
    lua_pushvalue(L, idx);
    return 1;
  }
  if (st == RT_WS_CLOSED) {
    int n = push_why(L, lc);
    release(lc);
    return n;
  }
  if (lc->timed_out) {
    lua_pushfstring(L, "ws.connect: no connection within the timeout");
    release(lc);
    return rtl_push_fail(L, lua_tostring(L, -1), "TIMEOUT");
  }
  return wait(L, lc, "ws.connect", ctx, connect_k);
}

static int l_connect(lua_State *L) {
  rt_t *rt = rt_from_lua(L);
  const char *url = luaL_checkstring(L, 1);
  rtl_check_opts(L, 2, "ws.connect", connect_opts);
  lua_settop(L, 2);
  rt_task_check_can_park(L, "ws.connect");
  rt_ws_opts_t o = {0};
  o.url = url;
  double timeout = rtl_opt_range(L, 2, "timeout", 10, 0.001, 3600, "ws.connect");
  o.ping_interval = (unsigned)rtl_opt_range(L, 2, "ping_interval", 0, 0, 65535, "ws.connect");
  o.idle_timeout = (unsigned)rtl_opt_range(L, 2, "idle_timeout", 0, 0, 65535, "ws.connect");
  if (o.idle_timeout && (!o.ping_interval || o.idle_timeout <= o.ping_interval))
    luaL_error(L, "ws.connect: option 'idle_timeout' needs a shorter 'ping_interval' (pongs reset it)");
  o.queue_max = (size_t)rtl_opt_range(L, 2, "queue", 4096, 2, 1e7, "ws.connect");
  o.max_message = (size_t)rtl_opt_range(L, 2, "max_message", 16 << 20, 1, 1 << 30, "ws.connect");
  const char *lines[64];
  int nh = 0;
  if (!lua_isnoneornil(L, 2) && lua_getfield(L, 2, "headers") != LUA_TNIL) {
    if (!lua_istable(L, -1)) luaL_error(L, "ws.connect: option 'headers' must be a table");
    int h = lua_gettop(L);
    lua_pushnil(L);
    while (lua_next(L, h)) {
      if (lua_type(L, -2) != LUA_TSTRING || lua_type(L, -1) != LUA_TSTRING)
        luaL_error(L, "ws.connect: headers must map names to strings");
      if (nh == 64) luaL_error(L, "ws.connect: more than 64 headers");
      const char *why = rt_http_header_problem(lua_tostring(L, -2), lua_tostring(L, -1), lua_rawlen(L, -1));
      if (why) luaL_error(L, "ws.connect: header '%s': %s", lua_tostring(L, -2), why);
      lua_pushfstring(L, "%s: %s", lua_tostring(L, -2), lua_tostring(L, -1));
      lines[nh++] = lua_tostring(L, -1);
      lua_insert(L, h);                        /* keep the line alive below the table */
      h++;
      lua_pop(L, 1);
    }
    lua_pop(L, 1);
  }
  o.headers = lines;
  o.nheaders = nh;
  lconn_t *lc = lua_newuserdatauv(L, sizeof *lc, 0);
  memset(lc, 0, sizeof *lc);
  luaL_setmetatable(L, CONN_MT);
  int idx = lua_gettop(L);
  const char *code;
  char err[256];
  if (rt_ws_connect(rt, &o, &lc->c, &code, err, sizeof err) < 0) return rtl_push_fail(L, err, code);
  lc->deadline = rt_loop_now_ms(rt) + timeout * 1000.0;
  return connect_k(L, LUA_YIELD, (lua_KContext)idx);
}

/* ---- methods ------------------------------------------------------------------------------- */

static lconn_t *check_conn(lua_State *L) { return luaL_checkudata(L, 1, CONN_MT); }

static int receive_k(lua_State *L, int status, lua_KContext ctx) {
  lconn_t *lc = lua_touserdata(L, 1);
  if (!lc->c) return rtl_push_fail(L, "ws: the connection is closed", "CLOSED");
  size_t len;
  const char *m = rt_ws_peek(lc->c, &len, NULL);
  if (m) {
    lua_pushlstring(L, m, len);
    rt_ws_drop(lc->c);
    return 1;
  }
  if (rt_ws_state(lc->c) == RT_WS_CLOSED) return push_why(L, lc);
  if (lc->timed_out) return rtl_push_fail(L, "conn:receive: no message within the timeout", "TIMEOUT");
  return wait(L, lc, "conn:receive", 0, receive_k);
}

static int l_receive(lua_State *L) {
  lconn_t *lc = check_conn(L);
  double timeout = luaL_optnumber(L, 2, -1);
  if (!lua_isnoneornil(L, 2) && !(timeout >= 0 && timeout <= 1e9))
    luaL_error(L, "conn:receive: timeout must be a number of seconds (0..1e9), got %s", lua_tostring(L, 2));
  lua_settop(L, 1);
  if (lc->waiter) luaL_error(L, "conn:receive: another task is already receiving on this connection");
  rt_t *rt = rt_from_lua(L);
  lc->timed_out = 0;
  lc->deadline = timeout < 0 ? -1 : rt_loop_now_ms(rt) + timeout * 1000.0;
  if (lc->c && !rt_ws_peek(lc->c, &(size_t){0}, NULL) && rt_ws_state(lc->c) != RT_WS_CLOSED) {
    if (timeout == 0) return rtl_push_fail(L, "conn:receive: no message waiting", "TIMEOUT");
    return wait(L, lc, "conn:receive", 0, receive_k);
  }
  return receive_k(L, LUA_OK, 0);
}

static int l_send(lua_State *L) {
  lconn_t *lc = check_conn(L);
  size_t len;
  luaL_checktype(L, 2, LUA_TSTRING);
  const char *s = lua_tolstring(L, 2, &len);
  int binary = lua_toboolean(L, 3);
  if (!lc->c) return rtl_push_fail(L, "conn:send: the connection is closed", "CLOSED");
  const char *code;
  if (rt_ws_send(lc->c, s, len, binary, &code) < 0) {
    if (!strcmp(code, "CLOSED")) {
      const char *c2, *msg;
      rt_ws_why(lc->c, &c2, &msg);
      if (msg) return rtl_push_fail(L, msg, "CLOSED");
    }
    lua_pushfstring(L, "conn:send: %s", !strcmp(code, "QUEUE_FULL") ? "more than 64 MiB wait to be sent"
                                       : !strcmp(code, "CLOSED") ? "the connection is closed"
                                                                 : "out of memory");
    return rtl_push_fail(L, lua_tostring(L, -1), code);
  }
  lua_pushboolean(L, 1);
  return 1;
}

static int l_close(lua_State *L) {
  lconn_t *lc = check_conn(L);
  if (lc->c) rt_ws_close(lc->c);
  lua_pushboolean(L, 1);
  return 1;
}

static int l_state(lua_State *L) {
  lconn_t *lc = check_conn(L);
  rt_ws_state_t st = lc->c ? rt_ws_state(lc->c) : RT_WS_CLOSED;
  lua_pushstring(L, st == RT_WS_OPEN ? "open" : st == RT_WS_CONNECTING ? "connecting" : "closed");
  return 1;
}

static int l_stats(lua_State *L) {
  lconn_t *lc = check_conn(L);
  rt_ws_stats_t s = {0};
  if (lc->c) rt_ws_stats(lc->c, &s);
  lua_createtable(L, 0, 5);
  lua_pushinteger(L, (lua_Integer)s.received);
  lua_setfield(L, -2, "received");
  lua_pushinteger(L, (lua_Integer)s.sent);
  lua_setfield(L, -2, "sent");
  lua_pushinteger(L, (lua_Integer)s.pongs);
  lua_setfield(L, -2, "pongs");
  lua_pushinteger(L, (lua_Integer)s.paused);
  lua_setfield(L, -2, "paused");
  lua_pushinteger(L, (lua_Integer)s.queued);
  lua_setfield(L, -2, "queued");
  return 1;
}

static int l_gc(lua_State *L) {
  lconn_t *lc = luaL_checkudata(L, 1, CONN_MT);
  release(lc);
  return 0;
}

static int l_tostring(lua_State *L) {
  lconn_t *lc = check_conn(L);
  lua_pushfstring(L, "ws.conn (%s)", lc->c ? (rt_ws_state(lc->c) == RT_WS_OPEN ? "open" : "closed") : "released");
  return 1;
}

static const luaL_Reg conn_methods[] = {
  {"receive", l_receive}, {"send", l_send}, {"close", l_close}, {"state", l_state}, {"stats", l_stats},
  {NULL, NULL}};

static const luaL_Reg ws_funcs[] = {{"connect", l_connect}, {NULL, NULL}};

int luaopen_rt_ws(lua_State *L) {
  if (luaL_newmetatable(L, CONN_MT)) {
    luaL_newlib(L, conn_methods);
    lua_setfield(L, -2, "__index");
    lua_pushcfunction(L, l_gc);
    lua_setfield(L, -2, "__gc");
    lua_pushcfunction(L, l_gc);
    lua_setfield(L, -2, "__close");
    lua_pushcfunction(L, l_tostring);
    lua_setfield(L, -2, "__tostring");
  }
  lua_pop(L, 1);
  luaL_newlib(L, ws_funcs);
  return 1;
}
