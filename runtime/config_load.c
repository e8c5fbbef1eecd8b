/*
** runtime/config_load.c - loading config.lua: the chunk runs with only safe globals under a wall-time
** limit, then CANDLED_* overrides are applied and the table is validated (config.c).
*/
#include "runtime/config.h"

#include <errno.h>
#include <lauxlib.h>
#include <lualib.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

/* ---- loading -------------------------------------------------------------------------------- */

/* The globals a config file may use: plain data building, os.getenv for secrets, no I/O. */
static void push_config_env(lua_State *L) {
  static const char *const names[] = {"assert", "error", "ipairs", "next", "pairs", "select",
                                      "tonumber", "tostring", "type", "math", "string", "table", NULL};
  lua_newtable(L);                             /* [env] */
  for (const char *const *n = names; *n; n++) {
    lua_getglobal(L, *n);
    lua_setfield(L, -2, *n);
  }
  lua_newtable(L);                             /* [env os] */
  lua_getglobal(L, "os");
  const char *os_fields[] = {"getenv", "time", "date", "clock", NULL};
  for (const char **n = os_fields; *n; n++) {
    lua_getfield(L, -1, *n);
    lua_setfield(L, -3, *n);
  }
  lua_pop(L, 1);
  lua_setfield(L, -2, "os");
}

/* The time limit of the config chunk: a light userdata in the registry under &limit_key while a
** chunk runs (rt_config_load is not re-entered: the chunk cannot load a config). */
typedef struct { double deadline, seconds; } limit_t;
static const char limit_key = 0;

static double mono_now(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + ts.tv_nsec / 1e9;
}

/* Count hook of the thread the chunk runs on: past the deadline, raise on every line (a loop that
** catches errors cannot swallow it). */
static void on_limit_hook(lua_State *L, lua_Debug *ar) {
  lua_rawgetp(L, LUA_REGISTRYINDEX, &limit_key);
  limit_t *lim = lua_touserdata(L, -1);
  lua_pop(L, 1);
  if (!lim || mono_now() < lim->deadline) return;
  lua_sethook(L, on_limit_hook, LUA_MASKCOUNT | LUA_MASKLINE, 1000);
  char msg[128];
  snprintf(msg, sizeof msg, "interrupted: the config took longer than %g s to evaluate (an endless loop?)", lim->seconds);
  if (lua_getinfo(L, "Sl", ar) && ar->currentline > 0) lua_pushfstring(L, "%s:%d: %s", ar->short_src, ar->currentline, msg);
  else lua_pushstring(L, msg);
  lua_error(L);
}

/* "<message>" of an error object: a string, a __tostring, or words for anything else. */
static const char *error_text(lua_State *L, int idx, const char *path) {
  if (lua_type(L, idx) == LUA_TSTRING || lua_type(L, idx) == LUA_TNUMBER) return lua_tostring(L, idx);
  if (luaL_callmeta(L, idx, "__tostring") && lua_type(L, -1) == LUA_TSTRING) return lua_tostring(L, -1);
  return lua_pushfstring(L, "%s: raised an error that is not a string (a %s value)", path, luaL_typename(L, idx));
}

static int load_limited(lua_State *L, const char *path, int must_exist, char *const *envp, double seconds,
                        char *err, size_t errlen);

/* Make a message one line: control characters (a line break in an error() message or in a key's
** name) are written as \n, \r, \t or \xHH, truncated to the buffer. */
static void one_line(char *err, size_t errlen) {
  char out[2048];
  size_t o = 0;
  for (const unsigned char *p = (const unsigned char *)err; *p && o + 5 < sizeof out; p++) {
    if (*p >= 0x20 && *p != 0x7f) out[o++] = (char)*p;
    else if (*p == '\n') o += (size_t)snprintf(out + o, sizeof out - o, "\\n");
    else if (*p == '\r') o += (size_t)snprintf(out + o, sizeof out - o, "\\r");
    else if (*p == '\t') o += (size_t)snprintf(out + o, sizeof out - o, "\\t");
    else o += (size_t)snprintf(out + o, sizeof out - o, "\\x%02X", *p);
  }
  out[o] = 0;
  snprintf(err, errlen, "%s", out);
}

int rt_config_load_limited(lua_State *L, const char *path, int must_exist, char *const *envp, double seconds,
                           char *err, size_t errlen) {
  int rc = load_limited(L, path, must_exist, envp, seconds, err, errlen);
  if (rc < 0) one_line(err, errlen);
  return rc;
}

static int load_limited(lua_State *L, const char *path, int must_exist, char *const *envp, double seconds,
                        char *err, size_t errlen) {
  const char *file = path ? path : "(defaults)";
  int top = lua_gettop(L);
  FILE *fp = path ? fopen(path, "r") : NULL;
  if (path && !fp && (must_exist || errno != ENOENT)) {
    snprintf(err, errlen, "%s: cannot read: %s", path, strerror(errno));
    return -1;
  }
  if (fp) {
    fclose(fp);
    if (luaL_loadfilex(L, path, "t") != LUA_OK) {
      snprintf(err, errlen, "%s", error_text(L, -1, path));
      lua_settop(L, top);
      return -1;
    }
    push_config_env(L);
    lua_setupvalue(L, -2, 1);                  /* _ENV of the chunk */
    /* Run on a thread of its own with its own hook: an interruption stays there (the caller, e.g.
    ** the reload task, keeps running). */
    lua_State *co = lua_newthread(L);          /* [chunk co] */
    lua_rotate(L, -2, 1);                      /* [co chunk] */
    lua_xmove(L, co, 1);                       /* [co] */
    limit_t lim = {mono_now() + seconds, seconds};
    lua_pushlightuserdata(L, &lim);
    lua_rawsetp(L, LUA_REGISTRYINDEX, &limit_key);
    lua_sethook(co, on_limit_hook, LUA_MASKCOUNT, 1000);
    int rc = lua_pcall(co, 0, 1, 0);
    lua_pushnil(L);
    lua_rawsetp(L, LUA_REGISTRYINDEX, &limit_key);
    lua_sethook(co, NULL, 0, 0);
    if (rc != LUA_OK) {
      const char *msg = error_text(co, -1, path);
      snprintf(err, errlen, "%s", msg);
      lua_settop(L, top);
      return -1;
    }
    lua_xmove(co, L, 1);                       /* [co result] */
    lua_remove(L, -2);
    if (!lua_istable(L, -1)) {
      snprintf(err, errlen, "%s: must return a table, returned %s", path, luaL_typename(L, -1));
      lua_settop(L, top);
      return -1;
    }
  } else {
    lua_newtable(L);
  }
  if (rt_config_apply_env(L, -1, &rt_config_schema, envp, err, errlen) < 0 ||
      rt_config_validate(L, -1, &rt_config_schema, file, err, errlen) < 0) {
    lua_settop(L, top);
    return -1;
  }
  return 0;
}

int rt_config_load(lua_State *L, const char *path, int must_exist, char *const *envp, char *err,
                   size_t errlen) {
  return rt_config_load_limited(L, path, must_exist, envp, RT_CONFIG_TIME_LIMIT, err, errlen);
}
