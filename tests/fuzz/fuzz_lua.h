/*
** tests/fuzz/fuzz_lua.h - what the libFuzzer harnesses of the rt.* parsers share: one Lua state
** per process with a capped allocator (a fuzz input must not exhaust the machine: past the cap an
** allocation fails like any out-of-memory in Lua), the modules under test preloaded, and a
** protected call of module.fn(input, ...) whose errors are expected results, never crashes.
*/
#ifndef FUZZ_LUA_H
#define FUZZ_LUA_H

#include <lauxlib.h>
#include <lua.h>
#include <lualib.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

int luaopen_rt_json(lua_State *L);
int luaopen_rt_csv(lua_State *L);
int luaopen_rt_time(lua_State *L);

#define FUZZ_LUA_CAP ((size_t)256 << 20)

static size_t fuzz_lua_used;

static inline void *fuzz_lua_alloc(void *ud, void *p, size_t osize, size_t nsize) {
  (void)ud;
  size_t old = p ? osize : 0;
  if (nsize == 0) {
    free(p);
    fuzz_lua_used -= old;
    return NULL;
  }
  if (nsize > old && fuzz_lua_used + (nsize - old) > FUZZ_LUA_CAP) return NULL;
  void *q = realloc(p, nsize);
  if (q) fuzz_lua_used = fuzz_lua_used - old + nsize;
  return q;
}

/* The process's state: created on first use, kept (libFuzzer calls the target in a loop). */
static inline lua_State *fuzz_lua(void) {
  static lua_State *L;
  if (!L) {
    L = lua_newstate(fuzz_lua_alloc, NULL);
    if (!L) abort();
    luaL_openlibs(L);
    luaL_requiref(L, "rt.json", luaopen_rt_json, 0);
    luaL_requiref(L, "rt.csv", luaopen_rt_csv, 0);
    luaL_requiref(L, "rt.time", luaopen_rt_time, 0);
    lua_settop(L, 0);
  }
  return L;
}

/* Push module.fn (a function of a preloaded module) for a call. */
static inline void fuzz_push_fn(lua_State *L, const char *module, const char *fn) {
  luaL_getsubtable(L, LUA_REGISTRYINDEX, LUA_LOADED_TABLE);
  lua_getfield(L, -1, module);
  lua_getfield(L, -1, fn);
  lua_replace(L, -3);
  lua_pop(L, 1);
}

/* Call the function and the nargs arguments on the stack; an error is a result like any other.
** Every few thousand calls a full collection keeps the state small. */
static inline void fuzz_done(lua_State *L) {
  static unsigned calls;
  lua_settop(L, 0);
  if (++calls % 4096 == 0) lua_gc(L, LUA_GCCOLLECT);
}

static inline void fuzz_pcall(lua_State *L, int nargs) {
  lua_pcall(L, nargs, LUA_MULTRET, 0);
  fuzz_done(L);
}

#endif
