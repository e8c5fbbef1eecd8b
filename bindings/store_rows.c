/*
** bindings/store_rows.c - the one place where stored values become Lua values and back: rt.db and
** rt.alert read rows through these, and db.upsert writes its cells through them.
*/
#include "bindings/bindings.h"

void rtl_push_store_value(lua_State *L, const rt_store_value_t *v) {
  switch (v->type) {
  case RT_STORE_INTEGER: lua_pushinteger(L, v->i); break;
  case RT_STORE_FLOAT: lua_pushnumber(L, v->d); break;
  case RT_STORE_NULL: lua_pushnil(L); break;
  default: lua_pushlstring(L, v->s, v->n);    /* text and blobs: the bytes as stored */
  }
}

void rtl_push_store_column(lua_State *L, rt_store_stmt_t *st, int c) {
  rt_store_value_t v;
  rt_store_stmt_value(st, c, &v);
  rtl_push_store_value(L, &v);
}

void rtl_push_store_row(lua_State *L, rt_store_stmt_t *st) {
  int ncol = rt_store_stmt_columns(st);
  lua_createtable(L, 0, ncol);
  for (int c = 0; c < ncol; c++) {
    rtl_push_store_column(L, st, c);          /* NULL: nil, so the field stays absent */
    lua_setfield(L, -2, rt_store_stmt_name(st, c));
  }
}

void rtl_to_store_value(lua_State *L, int idx, rt_store_value_t *v) {
  switch (lua_type(L, idx)) {
  case LUA_TBOOLEAN: *v = (rt_store_value_t){RT_STORE_INTEGER, lua_toboolean(L, idx), 0, NULL, 0}; break;
  case LUA_TNUMBER:
    if (lua_isinteger(L, idx)) *v = (rt_store_value_t){RT_STORE_INTEGER, lua_tointeger(L, idx), 0, NULL, 0};
    else *v = (rt_store_value_t){RT_STORE_FLOAT, 0, lua_tonumber(L, idx), NULL, 0};
    break;
  case LUA_TSTRING: v->type = RT_STORE_TEXT; v->s = lua_tolstring(L, idx, &v->n); break;
  default: *v = (rt_store_value_t){RT_STORE_NULL, 0, 0, NULL, 0};
  }
}
