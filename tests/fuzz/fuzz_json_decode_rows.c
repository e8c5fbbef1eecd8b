/* tests/fuzz/fuzz_json_decode_rows.c - json.decode_rows (bindings/json_rows.c) on any bytes, with
** and without the numbers option (the first byte picks the columns turned into numbers). */
#include "fuzz_lua.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  lua_State *L = fuzz_lua();
  fuzz_push_fn(L, "rt.json", "decode_rows");
  lua_pushlstring(L, (const char *)data, size);
  fuzz_pcall(L, 1);
  if (size < 1) return 0;
  fuzz_push_fn(L, "rt.json", "decode_rows");
  lua_pushlstring(L, (const char *)data + 1, size - 1);
  lua_newtable(L);
  lua_newtable(L);
  for (int i = 0; i < 8; i++)
    if (data[0] & (1u << i)) {
      lua_pushinteger(L, i + 1);
      lua_rawseti(L, -2, (lua_Integer)lua_rawlen(L, -2) + 1);
    }
  lua_setfield(L, -2, "numbers");
  fuzz_pcall(L, 2);
  return 0;
}
