/*
** bindings/json.c - Lua module "rt.json": lua-cjson, configured for market data.
**
**   v        = json.decode(text)        -- raises on malformed JSON
**   text     = json.encode(v)
**   v, err   = json.safe.decode(text)   -- nil, message on malformed JSON
**   text,err = json.safe.encode(v)
**   json.null                           -- the JSON null sentinel in decoded data
**   rows     = json.decode_rows(text)   -- fast path for arrays of arrays (bindings/json_rows.c)
**
** NaN and infinities encode as null (sources send them; a dataset must not break on them).
** Numbers with an integral value below 2^53 in magnitude decode as Lua integers (timestamps, ids,
** counts: "startTime=" .. t stays "...000", never "...000.0"); other numbers decode as floats.
*/
#include <math.h>

#include "bindings/bindings.h"

int luaopen_cjson(lua_State *L);
int luaopen_cjson_safe(lua_State *L);

/* Call cjson.<fn>(arg) on the module table at idx. */
static void configure(lua_State *L, int idx, const char *fn, const char *arg) {
  lua_getfield(L, idx, fn);
  lua_pushstring(L, arg);
  lua_call(L, 1, 0);
}

static void configure_all(lua_State *L, int idx) {
  configure(L, idx, "encode_invalid_numbers", "null");
  configure(L, idx, "decode_invalid_numbers", "on");
  lua_getfield(L, idx, "encode_number_precision");
  lua_pushinteger(L, 14);
  lua_call(L, 1, 0);
}

/* Turn integral floats (|n| < 2^53, exact in a double) of the decoded value at idx, and of every
** table below it, into integers. Decoded JSON has no cycles; nesting is bounded by cjson's limit. */
static void integers(lua_State *L, int idx) {
  luaL_checkstack(L, 3, "json.decode: nested too deeply");
  lua_pushnil(L);
  while (lua_next(L, idx)) {
    if (lua_type(L, -1) == LUA_TTABLE) {
      integers(L, lua_gettop(L));
    } else if (lua_type(L, -1) == LUA_TNUMBER && !lua_isinteger(L, -1)) {
      double v = lua_tonumber(L, -1);
      if (v == floor(v) && fabs(v) < 9007199254740992.0) {
        lua_pushvalue(L, -2);
        lua_pushinteger(L, (lua_Integer)v);
        lua_rawset(L, idx);                    /* an existing key: allowed during lua_next */
      }
    }
    lua_pop(L, 1);
  }
}

static void integer_result(lua_State *L) {
  int t = lua_type(L, -1);
  if (t == LUA_TTABLE) {
    integers(L, lua_gettop(L));
  } else if (t == LUA_TNUMBER && !lua_isinteger(L, -1)) {
    double v = lua_tonumber(L, -1);
    if (v == floor(v) && fabs(v) < 9007199254740992.0) {
      lua_pop(L, 1);
      lua_pushinteger(L, (lua_Integer)v);
    }
  }
}

/* json.decode: cjson's decode (upvalue 1), then integers. Raises what cjson raises. */
static int rtl_json_decode(lua_State *L) {
  lua_settop(L, 1);
  lua_pushvalue(L, lua_upvalueindex(1));
  lua_insert(L, 1);
  lua_call(L, 1, 1);
  integer_result(L);
  return 1;
}

/* json.safe.decode: nil, message on malformed JSON (cjson.safe's decode is upvalue 1). */
static int rtl_json_safe_decode(lua_State *L) {
  lua_settop(L, 1);
  lua_pushvalue(L, lua_upvalueindex(1));
  lua_insert(L, 1);
  lua_call(L, 1, 2);
  if (lua_isnil(L, 1)) return 2;
  lua_settop(L, 1);
  integer_result(L);
  return 1;
}

int luaopen_rt_json(lua_State *L) {
  luaopen_cjson(L);                            /* [cjson] */
  int raising = lua_gettop(L);
  configure_all(L, raising);
  luaopen_cjson_safe(L);                       /* [cjson safe] */
  configure_all(L, raising + 1);
  lua_newtable(L);                             /* [cjson safe M] */
  lua_getfield(L, raising, "decode");
  lua_pushcclosure(L, rtl_json_decode, 1);
  lua_setfield(L, -2, "decode");
  lua_getfield(L, raising, "encode");
  lua_setfield(L, -2, "encode");
  lua_getfield(L, raising, "null");
  lua_setfield(L, -2, "null");
  rtl_json_add_rows(L);
  lua_newtable(L);                             /* [cjson safe M S] */
  lua_getfield(L, raising + 1, "decode");
  lua_pushcclosure(L, rtl_json_safe_decode, 1);
  lua_setfield(L, -2, "decode");
  lua_getfield(L, raising + 1, "encode");
  lua_setfield(L, -2, "encode");
  lua_setfield(L, -2, "safe");
  return 1;
}
