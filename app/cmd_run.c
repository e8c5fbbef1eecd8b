/*
** app/cmd_run.c - `candled run`: the daemon. The REPL socket, the status server (whose pages
** candled.web serves), the scheduler and candled.daemon, until SIGINT/SIGTERM.
*/
#include "app/app.h"

#include <errno.h>
#include <limits.h>
#include <lauxlib.h>
#include <stdlib.h>
#include <string.h>

#include "bindings/bindings.h"
#include "runtime/config.h"
#include "runtime/http_server.h"
#include "runtime/log.h"
#include "runtime/repl/server.h"
#include "runtime/sched.h"
#include "runtime/sd_notify.h"

/* ---- run ------------------------------------------------------------------------------------ */

/* Listen on repl.socket unless repl.enabled is false. Returns 0, or 1 after printing why. */
static int start_repl(rt_t *rt) {
  lua_State *L = rt->L;
  char err[1024], path[PATH_MAX];
  lua_getfield(L, LUA_REGISTRYINDEX, RTL_CONFIG_KEY);
  rt_config_get(L, -1, "repl.enabled");
  rt_config_get(L, -2, "repl.socket");        /* absolute: resolved by setup() */
  int enabled = lua_toboolean(L, -2);
  snprintf(path, sizeof path, "%s", lua_tostring(L, -1));
  lua_pop(L, 3);
  if (!enabled) return 0;
  if (app_mkdirs_for(path) < 0) {
    fprintf(stderr, "candled: repl.socket %s: cannot create its directory: %s\n", path, strerror(errno));
    return 1;
  }
  if (rt_repl_start(rt, path, err, sizeof err) < 0) {
    fprintf(stderr, "candled: %s\n", err);
    return 1;
  }
  rt_log_printf(rt->log, RT_LOG_INFO, NULL, "repl listening on %s", path);
  return 0;
}

/* One GET the server does not serve itself: candled.web.handle(path, query) on the main thread. */
static void on_http_route(void *ud, const char *path, size_t plen, const char *query, size_t qlen,
                          rt_http_reply_t *out) {
  rt_t *rt = ud;
  lua_State *L = rt->L;
  int top = lua_gettop(L);
  lua_getglobal(L, "require");
  lua_pushliteral(L, "candled.web");
  if (rt_vm_pcall(L, 1, 1) == LUA_OK) {
    lua_getfield(L, -1, "handle");
    lua_pushlstring(L, path, plen);
    lua_pushlstring(L, query, qlen);
    if (rt_vm_pcall(L, 2, 3) == LUA_OK) {
      if (lua_isinteger(L, -3)) {
        size_t len;
        const char *body = lua_tolstring(L, -1, &len);
        out->status = (int)lua_tointeger(L, -3);
        snprintf(out->type, sizeof out->type, "%s", lua_isstring(L, -2) ? lua_tostring(L, -2) : "text/plain");
        if (body && (out->body = malloc(len ? len : 1))) {
          memcpy(out->body, body, len);
          out->len = len;
        }
      }
      lua_settop(L, top);
      return;
    }
  }
  rt_log_printf(rt->log, RT_LOG_ERROR, NULL, "http_server: %.*s: %s", (int)plen, path, lua_tostring(L, -1));
  out->status = 500;
  snprintf(out->type, sizeof out->type, "text/plain; charset=utf-8");
  if ((out->body = strdup("internal error (see the daemon's log)\n"))) out->len = strlen(out->body);
  lua_settop(L, top);
}

/* Listen on http_server.listen unless it is false. Returns 0, or 1 after printing why. */
static int start_http_server(rt_t *rt) {
  lua_State *L = rt->L;
  char err[1024];
  lua_getfield(L, LUA_REGISTRYINDEX, RTL_CONFIG_KEY);
  rt_config_get(L, -1, "http_server.listen");
  int off = lua_type(L, -1) == LUA_TBOOLEAN && !lua_toboolean(L, -1);
  if (!off && lua_type(L, -1) != LUA_TSTRING) {
    fprintf(stderr, "candled: http_server.listen must be \"HOST:PORT\" or false\n");
    lua_pop(L, 2);
    return 1;
  }
  char listen[300];
  snprintf(listen, sizeof listen, "%s", off ? "" : lua_tostring(L, -1));
  lua_pop(L, 2);
  if (off) return 0;
  rt->http_server = rt_http_server_start(&rt->loop, listen, on_http_route, rt, err, sizeof err);
  if (!rt->http_server) {
    fprintf(stderr, "candled: %s\n", err);
    return 1;
  }
  rt_log_printf(rt->log, RT_LOG_INFO, NULL, "http server listening on http://%.*s:%d/",
                (int)(strrchr(listen, ':') - listen), listen, rt_http_server_port(rt->http_server));
  return 0;
}

static int run_daemon(rt_t *rt) {
  lua_State *L = rt->L;
  if (rt_sched_init(rt) < 0 || rt_signals_start(rt) < 0) {
    fprintf(stderr, "candled: cannot start the scheduler\n");
    return 1;
  }
  if (start_repl(rt) != 0 || start_http_server(rt) != 0) return 1;
  lua_getglobal(L, "require");
  lua_pushliteral(L, "candled.daemon");
  if (rt_vm_pcall(L, 1, 1) != LUA_OK) {
    fprintf(stderr, "candled: %s\n", lua_tostring(L, -1));
    return 1;
  }
  lua_getfield(L, -1, "start");                /* -> count, or nil and a one-line error */
  if (rt_vm_pcall(L, 0, 2) != LUA_OK || lua_isnil(L, -2)) {
    fprintf(stderr, "candled: %s\n", lua_tostring(L, -1));
    return 1;
  }
  lua_pop(L, 3);
  rt_sd_notify("READY=1\nSTATUS=collecting");   /* systemd Type=notify: the daemon is up */
  int code = rt_run(rt);
  rt_sd_notify("STOPPING=1");
  rt_log_printf(rt->log, RT_LOG_INFO, NULL, "stopped");
  return code;
}

int cmd_run(rt_t *rt) {
  return run_daemon(rt);                       /* under the lock setup() took; rt_close releases it */
}
