/*
** bindings/csv.c - Lua module "rt.csv": RFC 4180 text.
**
**   rows, lines, err = csv.parse(text [, {sep=","}])  -- rows: {{field, ...}, ...};
**                                                    -- lines[i]: the line row i starts on
**   nil, err, "CSV"  on an unterminated quoted field (the message names the line)
**   rows, lines, next, next_line = csv.parse(text, {max_rows=n [, from=pos, line=l]})
**                    -- at most n rows from byte `from` (1-based; `line`: the line it is on); next
**                    -- and next_line say where to go on, both nil once the text is done. Long
**                    -- texts are parsed a piece at a time so the task can yield in between.
**   line             = csv.format_row({field, ...})  -- quoted where needed, no line end
**   text             = csv.encode(rows)              -- one line per row, each ended by LF
**
** Quoted fields may hold separators, quotes ("") and line breaks. CRLF and LF both end records;
** blank lines are skipped; a UTF-8 byte-order mark at the start is ignored. encode writes LF.
*/
#include "bindings/bindings.h"

#include <limits.h>
#include <stdlib.h>
#include <string.h>

/* csv.parse(text [, opts]) */
static int rtl_csv_parse(lua_State *L) {
  static const char *const allowed[] = {"sep", "from", "line", "max_rows", NULL};
  size_t n;
  const char *s = luaL_checklstring(L, 1, &n);
  rtl_check_opts(L, 2, "csv.parse", allowed);
  const char *sep_s = rtl_opt_string(L, 2, "sep", ",", "csv.parse");
  if (strlen(sep_s) != 1) return luaL_error(L, "csv.parse: option 'sep' must be one character");
  char sep = sep_s[0];
  if (sep == '"' || sep == '\n' || sep == '\r') return luaL_error(L, "csv.parse: option 'sep' cannot be a quote or a line end");
  double from = rtl_opt_range(L, 2, "from", 1, 1, (double)n + 1, "csv.parse");
  double first_line = rtl_opt_range(L, 2, "line", 1, 1, 2147483647.0, "csv.parse");
  double max_rows = rtl_opt_range(L, 2, "max_rows", 2147483647.0, 1, 2147483647.0, "csv.parse");
  lua_settop(L, 2);
  size_t i = (size_t)from - 1;
  if (i == 0 && n >= 3 && memcmp(s, "\xEF\xBB\xBF", 3) == 0) i = 3;
  lua_newtable(L);                             /* 3: rows */
  lua_newtable(L);                             /* 4: lines */
  int nrows = 0, line = (int)first_line;
  luaL_Buffer b;
  while (i < n) {
    if (nrows >= (int)max_rows) {              /* stopped early: where to go on */
      lua_pushinteger(L, (lua_Integer)i + 1);
      lua_pushinteger(L, line);
      return 4;
    }
    if (s[i] == '\n' || (s[i] == '\r' && i + 1 < n && s[i + 1] == '\n')) {   /* blank line */
      i += s[i] == '\r' ? 2 : 1;
      if (line < INT_MAX) line++;
      continue;
    }
    int start_line = line, nf = 0;
    lua_newtable(L);                           /* 5: the row */
    for (;;) {                                 /* one field per pass */
      luaL_buffinit(L, &b);
      if (i < n && s[i] == '"') {
        i++;
        for (;;) {
          if (i >= n) {
            lua_pushnil(L);
            lua_pushfstring(L, "csv: line %d: unterminated quoted field", start_line);
            lua_pushliteral(L, "CSV");
            return 3;
          }
          if (s[i] == '"') {
            if (i + 1 < n && s[i + 1] == '"') {
              luaL_addchar(&b, '"');
              i += 2;
              continue;
            }
            i++;
            break;
          }
          if (s[i] == '\n' && line < INT_MAX) line++;
          luaL_addchar(&b, s[i++]);
        }
        /* text after the closing quote up to the separator is kept as is (lenient) */
        while (i < n && s[i] != sep && s[i] != '\n' && !(s[i] == '\r' && i + 1 < n && s[i + 1] == '\n'))
          luaL_addchar(&b, s[i++]);
      } else {
        size_t j = i;
        while (j < n && s[j] != sep && s[j] != '\n' && !(s[j] == '\r' && j + 1 < n && s[j + 1] == '\n')) j++;
        luaL_addlstring(&b, s + i, j - i);
        i = j;
      }
      luaL_pushresult(&b);
      lua_rawseti(L, 5, ++nf);
      if (i < n && s[i] == sep) {
        i++;
        continue;
      }
      if (i < n) {                             /* end of record */
        i += s[i] == '\r' ? 2 : 1;
        if (line < INT_MAX) line++;
      }
      break;
    }
    lua_rawseti(L, 3, ++nrows);
    lua_pushinteger(L, start_line);
    lua_rawseti(L, 4, nrows);
  }
  return 2;
}

/* Append row (a table at `row`) as one CSV line to a Lua buffer. Each field is turned into text
** and copied before it is added: the buffer needs the top of the stack to itself. */
static void add_row(lua_State *L, luaL_Buffer *b, int row) {
  int nf = (int)lua_rawlen(L, row);
  char small[256];
  for (int f = 1; f <= nf; f++) {
    if (f > 1) luaL_addchar(b, ',');
    lua_rawgeti(L, row, f);
    if (lua_isnil(L, -1)) {
      lua_pop(L, 1);
      if (nf == 1) luaL_addstring(b, "\"\"");   /* a lone empty field: not a blank line */
      continue;
    }
    size_t n;
    const char *s = luaL_tolstring(L, -1, &n);  /* [.. v s] */
    char *copy = n < sizeof small ? small : malloc(n + 1);
    if (!copy) luaL_error(L, "csv: out of memory");
    memcpy(copy, s, n);
    lua_pop(L, 2);
    int quote = n > 0 ? (memchr(copy, ',', n) || memchr(copy, '"', n) || memchr(copy, '\r', n) ||
                         memchr(copy, '\n', n) || copy[0] == ' ' || copy[n - 1] == ' ')
                      : nf == 1;               /* a lone empty field: not a blank line */
    if (quote) luaL_addchar(b, '"');
    for (size_t i = 0; i < n; i++) {
      if (quote && copy[i] == '"') luaL_addchar(b, '"');
      luaL_addchar(b, copy[i]);
    }
    if (quote) luaL_addchar(b, '"');
    if (copy != small) free(copy);
  }
}

/* csv.format_row(fields) */
static int rtl_csv_format_row(lua_State *L) {
  luaL_checktype(L, 1, LUA_TTABLE);
  luaL_Buffer b;
  lua_settop(L, 1);
  luaL_buffinit(L, &b);
  add_row(L, &b, 1);
  luaL_pushresult(&b);
  return 1;
}

/* csv.encode(rows) */
static int rtl_csv_encode(lua_State *L) {
  luaL_checktype(L, 1, LUA_TTABLE);
  lua_settop(L, 1);
  lua_newtable(L);                             /* 2: lines */
  int n = (int)lua_rawlen(L, 1);
  for (int r = 1; r <= n; r++) {
    lua_pushcfunction(L, rtl_csv_format_row);
    if (lua_rawgeti(L, 1, r) != LUA_TTABLE) return luaL_error(L, "csv.encode: row %d is not a table", r);
    lua_call(L, 1, 1);
    lua_rawseti(L, 2, r);
  }
  lua_getglobal(L, "table");
  lua_getfield(L, -1, "concat");
  lua_pushvalue(L, 2);
  lua_pushliteral(L, "\n");
  lua_call(L, 2, 1);
  if (n > 0) {
    lua_pushliteral(L, "\n");
    lua_concat(L, 2);
  }
  return 1;
}

static const luaL_Reg csv_funcs[] = {
  {"parse", rtl_csv_parse}, {"format_row", rtl_csv_format_row}, {"encode", rtl_csv_encode}, {NULL, NULL}};

int luaopen_rt_csv(lua_State *L) {
  luaL_newlib(L, csv_funcs);
  return 1;
}
