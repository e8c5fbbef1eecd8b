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
** Numbers decode as Lua floats, exact up to 2^53 (use math.tointeger where an integer is needed).
*/
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

int luaopen_rt_json(lua_State *L) {
  luaopen_cjson(L);                            /* [cjson] */
  int raising = lua_gettop(L);
  configure_all(L, raising);
  luaopen_cjson_safe(L);                       /* [cjson safe] */
  configure_all(L, raising + 1);
  lua_newtable(L);                             /* [cjson safe M] */
  lua_getfield(L, raising, "decode");
  lua_setfield(L, -2, "decode");
  lua_getfield(L, raising, "encode");
  lua_setfield(L, -2, "encode");
  lua_getfield(L, raising, "null");
  lua_setfield(L, -2, "null");
  rtl_json_add_rows(L);
  lua_newtable(L);                             /* [cjson safe M S] */
  lua_getfield(L, raising + 1, "decode");
  lua_setfield(L, -2, "decode");
  lua_getfield(L, raising + 1, "encode");
  lua_setfield(L, -2, "encode");
  lua_setfield(L, -2, "safe");
  return 1;
}
