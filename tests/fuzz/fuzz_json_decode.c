/* tests/fuzz/fuzz_json_decode.c - json.decode and json.safe.decode (bindings/json.c) on any bytes. */
#include "fuzz_lua.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  lua_State *L = fuzz_lua();
  fuzz_push_fn(L, "rt.json", "decode");
  lua_pushlstring(L, (const char *)data, size);
  fuzz_pcall(L, 1);
  luaL_getsubtable(L, LUA_REGISTRYINDEX, LUA_LOADED_TABLE);
  lua_getfield(L, -1, "rt.json");
  lua_getfield(L, -1, "safe");
  lua_getfield(L, -1, "decode");
  lua_replace(L, 1);
  lua_settop(L, 1);
  lua_pushlstring(L, (const char *)data, size);
  fuzz_pcall(L, 1);
  return 0;
}
