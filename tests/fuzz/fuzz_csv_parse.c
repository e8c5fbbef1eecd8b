/* tests/fuzz/fuzz_csv_parse.c - csv.parse (bindings/csv.c) on any bytes: whole, and a piece at a
** time (max_rows/from/line), which must give the same rows and lines as the whole. The first byte
** picks the separator and the piece size. */
#include "fuzz_lua.h"

static const char SEPS[] = {',', ';', '\t', '|'};

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  if (size < 1) return 0;
  lua_State *L = fuzz_lua();
  char sep[2] = {SEPS[data[0] & 3], 0};
  int piece = (data[0] >> 2) % 7 + 1;
  const char *text = (const char *)data + 1;
  size_t n = size - 1;
  /* whole: rows and lines as one string each, to compare with the pieces */
  fuzz_push_fn(L, "rt.csv", "parse");
  lua_pushlstring(L, text, n);
  lua_createtable(L, 0, 1);
  lua_pushstring(L, sep);
  lua_setfield(L, -2, "sep");
  if (lua_pcall(L, 2, 2, 0) != LUA_OK || lua_isnil(L, 1)) {
    lua_settop(L, 0);
    return 0;
  }
  lua_Integer whole_rows = (lua_Integer)lua_rawlen(L, 1);
  lua_Integer got = 0, from = 1, line = 1;
  while (from) {                               /* [whole_rows whole_lines] */
    fuzz_push_fn(L, "rt.csv", "parse");
    lua_pushlstring(L, text, n);
    lua_createtable(L, 0, 4);
    lua_pushstring(L, sep);
    lua_setfield(L, -2, "sep");
    lua_pushinteger(L, piece);
    lua_setfield(L, -2, "max_rows");
    lua_pushinteger(L, from);
    lua_setfield(L, -2, "from");
    lua_pushinteger(L, line);
    lua_setfield(L, -2, "line");
    if (lua_pcall(L, 2, 4, 0) != LUA_OK || lua_isnil(L, 3)) abort();   /* the whole parsed */
    lua_Integer k = (lua_Integer)lua_rawlen(L, 3);
    if (k > piece) abort();
    for (lua_Integer i = 1; i <= k; i++) {
      lua_rawgeti(L, 4, i);
      lua_rawgeti(L, 2, got + i);
      if (!lua_rawequal(L, -1, -2)) abort();   /* the same start line */
      lua_pop(L, 2);
      lua_rawgeti(L, 3, i);
      lua_rawgeti(L, 1, got + i);
      if (lua_rawlen(L, -1) != lua_rawlen(L, -2)) abort();   /* the same number of fields */
      for (lua_Unsigned f = 1; f <= lua_rawlen(L, -1); f++) {
        lua_rawgeti(L, -1, (lua_Integer)f);
        lua_rawgeti(L, -3, (lua_Integer)f);
        if (!lua_rawequal(L, -1, -2)) abort();
        lua_pop(L, 2);
      }
      lua_pop(L, 2);
    }
    got += k;
    from = lua_isnil(L, 5) ? 0 : lua_tointeger(L, 5);
    line = lua_isnil(L, 6) ? 0 : lua_tointeger(L, 6);
    lua_settop(L, 2);
  }
  if (got != whole_rows) abort();
  fuzz_done(L);
  return 0;
}
