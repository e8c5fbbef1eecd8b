/*
** bindings/column.c - Lua module "rt.column": columns of numbers as little-endian float32 bytes, the
** layout of QLib's feature files (scripts/lib/qlib.lua writes them).
**
**   bytes = column.pack(values [, i [, j]])   -- values[i..j] (default 1..#values) as float32 LE;
**                                             -- nil, NaN and non-numbers' absence: NaN 0x7FC00000
**   values, n = column.unpack(bytes [, {nan = v}])  -- float32 LE bytes -> a Lua array of floats;
**                                             -- NaN becomes `v` when given (default: NaN itself)
**   values = column.fill(n, v)                -- an array of n copies of v (a column to fill in)
**
** Conversion is a plain (float) cast of the double: round to nearest, as numpy's astype("<f4").
** Every NaN is written as the one quiet NaN 0x7FC00000 whatever its sign or payload (x86's 0.0/0.0
** is 0xFFC00000), so equal data gives equal bytes. A value that is neither a number nor nil raises
** naming its index. pack and unpack run in one C loop (tens of millions of values a second).
*/
#include "bindings/bindings.h"

#include <math.h>
#include <stdint.h>
#include <string.h>

#define QNAN_BITS 0x7FC00000u

static void put_le32(unsigned char *p, uint32_t v) {
  p[0] = (unsigned char)v;
  p[1] = (unsigned char)(v >> 8);
  p[2] = (unsigned char)(v >> 16);
  p[3] = (unsigned char)(v >> 24);
}

static uint32_t get_le32(const unsigned char *p) {
  return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

/* The float32 bit pattern of a double: NaN canonical, everything else by a (float) cast. */
static uint32_t float_bits(double d) {
  if (isnan(d)) return QNAN_BITS;
  float f = (float)d;
  uint32_t u;
  memcpy(&u, &f, sizeof u);
  return u;
}

/* column.pack(values [, i [, j]]) -> bytes */
static int rtl_column_pack(lua_State *L) {
  luaL_checktype(L, 1, LUA_TTABLE);
  lua_Integer i = luaL_optinteger(L, 2, 1);
  lua_Integer j = luaL_optinteger(L, 3, (lua_Integer)lua_rawlen(L, 1));
  if (i < 1) return luaL_argerror(L, 2, "column.pack: the first index must be at least 1");
  if (j < i) {
    lua_pushliteral(L, "");
    return 1;
  }
  if ((lua_Unsigned)(j - i) >= (lua_Unsigned)(SIZE_MAX / 4 - 1))
    return luaL_argerror(L, 3, "column.pack: too many values");
  size_t n = (size_t)(j - i + 1);
  luaL_Buffer b;
  unsigned char *out = (unsigned char *)luaL_buffinitsize(L, &b, n * 4);
  for (size_t k = 0; k < n; k++) {
    lua_Integer idx = i + (lua_Integer)k;
    int t = lua_rawgeti(L, 1, idx);
    uint32_t bits;
    if (t == LUA_TNUMBER) bits = float_bits(lua_tonumber(L, -1));
    else if (t == LUA_TNIL) bits = QNAN_BITS;
    else return luaL_error(L, "column.pack: values[%I] is a %s, not a number", idx, luaL_typename(L, -1));
    lua_pop(L, 1);
    put_le32(out + 4 * k, bits);
  }
  luaL_pushresultsize(&b, n * 4);
  return 1;
}

/* column.unpack(bytes [, {nan = v}]) -> values, n */
static int rtl_column_unpack(lua_State *L) {
  static const char *const allowed[] = {"nan", NULL};
  size_t len;
  const unsigned char *p = (const unsigned char *)luaL_checklstring(L, 1, &len);
  rtl_check_opts(L, 2, "column.unpack", allowed);
  if (len % 4) return luaL_error(L, "column.unpack: %I bytes is not a whole number of float32 values",
                                 (lua_Integer)len);
  int has_nan = 0;
  if (lua_istable(L, 2)) {
    lua_getfield(L, 2, "nan");                 /* [bytes opts nan] */
    has_nan = !lua_isnil(L, -1);
  } else {
    lua_settop(L, 1);
    lua_pushnil(L);
  }
  int nan_idx = lua_gettop(L);
  size_t n = len / 4;
  if (n > (size_t)INT32_MAX) return luaL_error(L, "column.unpack: too many values");
  lua_createtable(L, (int)n, 0);
  for (size_t k = 0; k < n; k++) {
    uint32_t u = get_le32(p + 4 * k);
    float f;
    memcpy(&f, &u, sizeof f);
    if (isnan(f) && has_nan) lua_pushvalue(L, nan_idx);
    else lua_pushnumber(L, (double)f);
    lua_rawseti(L, -2, (lua_Integer)k + 1);
  }
  lua_pushinteger(L, (lua_Integer)n);
  return 2;
}

/* column.fill(n, v) -> {v, v, ...} */
static int rtl_column_fill(lua_State *L) {
  lua_Integer n = luaL_checkinteger(L, 1);
  luaL_checkany(L, 2);
  if (n < 0 || n > INT32_MAX) return luaL_argerror(L, 1, "column.fill: n must be from 0 to 2^31-1");
  lua_createtable(L, (int)n, 0);
  for (lua_Integer k = 1; k <= n; k++) {
    lua_pushvalue(L, 2);
    lua_rawseti(L, -2, k);
  }
  return 1;
}

static const luaL_Reg column_funcs[] = {
  {"pack", rtl_column_pack}, {"unpack", rtl_column_unpack}, {"fill", rtl_column_fill}, {NULL, NULL}};

int luaopen_rt_column(lua_State *L) {
  luaL_newlib(L, column_funcs);
  return 1;
}
