/*
** bindings/replay.c - Lua module "rt.replay" (private to the runtime's embedded Lua: candled.replay
** and the benchmark): stored bars stepped in C into reused Lua tables.
**
**   n, err, code = replay.bars(ids, froms, to, bars, fn)
**       ids: series ids; froms: each series' first ts; to: the last ts (inclusive); bars: one table
**       per series, reused for every one of its rows (fields ts, open, high, low, close, volume are
**       set; whatever else the caller put there stays); fn(bar) is called for each row in time
**       order (ties: the order of ids). Returns the rows stepped, or nil, message, SQLITE_<CODE>.
**       An error fn raises propagates; the cursor is released. The runtime's count hook is off on
**       this thread while the loop runs (see below): fn cannot be interrupted by runtime.task_slice.
**
** The loop does no allocation per row: the key strings sit on the stack and rawset reuses them.
*/
#include "bindings/bindings.h"

#include <stdlib.h>

#include "runtime/store.h"
#include "runtime/store_replay.h"

#define CURSOR_MT "rt.replay.cursor"
#define MAX_SERIES 4096

typedef struct {
  rt_store_replay_t *r;
} cursor_ud_t;

static int cursor_gc(lua_State *L) {
  cursor_ud_t *c = luaL_checkudata(L, 1, CURSOR_MT);
  rt_store_replay_close(c->r);
  c->r = NULL;
  return 0;
}

/* The loop, called once in protected mode: [fn cursor ts open high low close volume bar1..barN] ->
** [rows, rc]. No allocation per row: the keys are on the stack and rawset reuses them. */
static int step_all(lua_State *L) {
  cursor_ud_t *c = lua_touserdata(L, 2);
  lua_Integer count = 0;
  rt_replay_row_t row;
  int rc;
  while ((rc = rt_store_replay_next(c->r, &row)) == 1) {
    int t = 9 + row.k;
    lua_pushvalue(L, 3);
    lua_pushinteger(L, row.ts);
    lua_rawset(L, t);
    for (int j = 0; j < 5; j++) {
      lua_pushvalue(L, 4 + j);
      if (row.has[j]) lua_pushnumber(L, row.v[j]);
      else lua_pushnil(L);
      lua_rawset(L, t);
    }
    lua_pushvalue(L, 1);
    lua_pushvalue(L, t);
    lua_call(L, 1, 0);
    count++;
  }
  lua_pushinteger(L, count);
  lua_pushinteger(L, rc);
  return 2;
}

static int rtl_replay_bars(lua_State *L) {
  static const char *const keys[6] = {"ts", "open", "high", "low", "close", "volume"};
  rt_store_t *s = rt_store_of(rt_from_lua(L));
  if (!s) return luaL_error(L, "replay.bars: no database is open");
  luaL_checktype(L, 1, LUA_TTABLE);
  luaL_checktype(L, 2, LUA_TTABLE);
  int64_t to = (int64_t)luaL_checkinteger(L, 3);
  luaL_checktype(L, 4, LUA_TTABLE);
  luaL_checktype(L, 5, LUA_TFUNCTION);
  int n = (int)lua_rawlen(L, 1);
  if (n < 1 || n > MAX_SERIES || (int)lua_rawlen(L, 2) != n || (int)lua_rawlen(L, 4) != n)
    return luaL_error(L, "replay.bars: ids, froms and bars must be lists of the same length (1 to %d)", MAX_SERIES);
  lua_settop(L, 5);
  int64_t *ids = malloc(2 * (size_t)n * sizeof *ids);
  if (!ids) return luaL_error(L, "replay.bars: out of memory");
  for (int i = 0; i < n; i++) {
    lua_rawgeti(L, 1, i + 1);
    lua_rawgeti(L, 2, i + 1);
    int ok = lua_isinteger(L, -2) && lua_isinteger(L, -1);
    ids[i] = lua_tointeger(L, -2);
    ids[n + i] = lua_tointeger(L, -1);
    lua_pop(L, 2);
    if (!ok) {
      free(ids);
      return luaL_error(L, "replay.bars: ids[%d] and froms[%d] must be integers", i + 1, i + 1);
    }
  }
  char err[256];
  cursor_ud_t *c = lua_newuserdatauv(L, sizeof *c, 0);     /* 6 */
  c->r = NULL;
  luaL_setmetatable(L, CURSOR_MT);
  c->r = rt_store_replay_open(s, ids, ids + n, n, to, err, sizeof err);
  free(ids);
  if (!c->r) return rtl_push_fail(L, err, "SQLITE_ERROR");
  luaL_checkstack(L, n + 16, "replay.bars: too many series");
  for (int j = 0; j < 6; j++) lua_pushstring(L, keys[j]);    /* 7..12 */
  /* 13..: the bar tables */
  for (int i = 0; i < n; i++) {
    if (lua_rawgeti(L, 4, i + 1) != LUA_TTABLE) return luaL_error(L, "replay.bars: bars[%d] is not a table", i + 1);
  }
  /* The runtime's count hook (the CPU slice of tasks, vm.c) makes Lua run every instruction through
  ** the debug interface: about twice the time per bar. The replay turns it off on this thread for
  ** the loop and puts it back before returning or raising (candled replay sets no slice anyway). */
  lua_Hook hook = lua_gethook(L);
  int hmask = lua_gethookmask(L), hcount = lua_gethookcount(L);
  int top = lua_gettop(L);
  lua_pushcfunction(L, step_all);
  lua_pushvalue(L, 5);                                       /* fn */
  lua_pushvalue(L, 6);                                       /* the cursor */
  for (int i = 7; i <= top; i++) lua_pushvalue(L, i);        /* the keys, the bar tables */
  lua_sethook(L, NULL, 0, 0);
  int status = lua_pcall(L, top - 4, 2, 0);
  lua_sethook(L, hook, hmask, hcount);
  rt_store_replay_close(c->r);
  c->r = NULL;
  if (status != LUA_OK) return lua_error(L);
  int rc = (int)lua_tointeger(L, -1);
  if (rc < 0) {
    lua_pushnil(L);
    lua_pushfstring(L, "replay: %s", rt_store_errmsg(s));
    lua_pushstring(L, rt_store_code_name(-rc));
    return 3;
  }
  lua_pop(L, 1);
  return 1;
}

static const luaL_Reg funcs[] = {{"bars", rtl_replay_bars}, {NULL, NULL}};

int luaopen_rt_replay(lua_State *L) {
  if (luaL_newmetatable(L, CURSOR_MT)) {
    lua_pushcfunction(L, cursor_gc);
    lua_setfield(L, -2, "__gc");
  }
  lua_pop(L, 1);
  luaL_newlib(L, funcs);
  return 1;
}
