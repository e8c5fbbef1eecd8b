/*
** bindings/json_rows.c - json.decode_rows: the fast path for the commonest market-data shape,
** a JSON array of arrays of scalars (Binance, Bybit, OKX, Kraken klines and trades):
**
**   rows = json.decode_rows(text [, {numbers = {2, 3, ...}}])   -- {{v1, v2, ...}, ...}
**
** Integers (no fraction or exponent, within 64 bits) decode as Lua integers, other numbers as
** floats, strings as strings, true/false as booleans and null as json.null. Strings in the
** positions listed in `numbers` (decimal strings, as exchanges send prices) become floats, parsed
** from the body without a Lua string in between, correctly rounded: a plain decimal of at most 15
** or so significant digits (what exchanges send) is one exact integer divided by an exact power
** of ten, which IEEE arithmetic rounds correctly (Clinger's fast path); anything else goes to
** strtod. Integers of up to 18 digits are read without strtoll. Each row table is created at the size of
** the previous row, so a page of uniform rows never rehashes. Text that is not an array of arrays
** of scalars raises "json.decode_rows: <what> at byte N"; callers wanting another shape use
** json.decode.
*/
#include <errno.h>
#include <float.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "bindings/bindings.h"

typedef struct {
  lua_State *L;
  const char *s, *p, *end;
  uint64_t numbers;          /* bit i-1: strings in field i become numbers */
  lua_Integer row;           /* the row being parsed, for errors */
} rows_parser_t;

#if defined(__GNUC__)
__attribute__((noreturn))
#endif
static void fail(rows_parser_t *rp, const char *what) {
  luaL_error(rp->L, "json.decode_rows: %s at byte %d", what, (int)(rp->p - rp->s) + 1);
  abort();  /* not reached: luaL_error does not return */
}

static void skip_ws(rows_parser_t *rp) {
  while (rp->p < rp->end && (*rp->p == ' ' || *rp->p == '\t' || *rp->p == '\n' || *rp->p == '\r')) rp->p++;
}

static int peek(rows_parser_t *rp) {
  skip_ws(rp);
  return rp->p < rp->end ? (unsigned char)*rp->p : -1;
}

static void expect(rows_parser_t *rp, char c, const char *what) {
  if (peek(rp) != c) fail(rp, what);
  rp->p++;
}

static int hex4(rows_parser_t *rp, const char *q) {
  int v = 0;
  if (rp->end - q < 4) fail(rp, "truncated \\u escape");
  for (int i = 0; i < 4; i++) {
    char c = q[i];
    v <<= 4;
    if (c >= '0' && c <= '9') v |= c - '0';
    else if (c >= 'a' && c <= 'f') v |= c - 'a' + 10;
    else if (c >= 'A' && c <= 'F') v |= c - 'A' + 10;
    else fail(rp, "bad \\u escape");
  }
  return v;
}

static void add_utf8(luaL_Buffer *b, unsigned long cp) {
  char u[4];
  int n;
  if (cp < 0x80) { u[0] = (char)cp; n = 1; }
  else if (cp < 0x800) { u[0] = (char)(0xC0 | (cp >> 6)); u[1] = (char)(0x80 | (cp & 0x3F)); n = 2; }
  else if (cp < 0x10000) {
    u[0] = (char)(0xE0 | (cp >> 12)); u[1] = (char)(0x80 | ((cp >> 6) & 0x3F));
    u[2] = (char)(0x80 | (cp & 0x3F)); n = 3;
  } else {
    u[0] = (char)(0xF0 | (cp >> 18)); u[1] = (char)(0x80 | ((cp >> 12) & 0x3F));
    u[2] = (char)(0x80 | ((cp >> 6) & 0x3F)); u[3] = (char)(0x80 | (cp & 0x3F)); n = 4;
  }
  luaL_addlstring(b, u, (size_t)n);
}

/* A string whose opening quote is at rp->p. Without escapes it is pushed straight from the text. */
static void push_string(rows_parser_t *rp) {
  const char *q = ++rp->p;
  while (q < rp->end && *q != '"' && *q != '\\' && (unsigned char)*q >= 0x20) q++;
  if (q < rp->end && *q == '"') {
    lua_pushlstring(rp->L, rp->p, (size_t)(q - rp->p));
    rp->p = q + 1;
    return;
  }
  luaL_Buffer b;
  luaL_buffinit(rp->L, &b);
  luaL_addlstring(&b, rp->p, (size_t)(q - rp->p));
  while (q < rp->end && *q != '"') {
    if ((unsigned char)*q < 0x20) { rp->p = q; fail(rp, "control character in string"); }
    if (*q != '\\') { luaL_addchar(&b, *q++); continue; }
    if (++q >= rp->end) break;
    switch (*q++) {
      case '"': luaL_addchar(&b, '"'); break;
      case '\\': luaL_addchar(&b, '\\'); break;
      case '/': luaL_addchar(&b, '/'); break;
      case 'b': luaL_addchar(&b, '\b'); break;
      case 'f': luaL_addchar(&b, '\f'); break;
      case 'n': luaL_addchar(&b, '\n'); break;
      case 'r': luaL_addchar(&b, '\r'); break;
      case 't': luaL_addchar(&b, '\t'); break;
      case 'u': {
        unsigned long cp = (unsigned long)hex4(rp, q);
        q += 4;
        if (cp >= 0xD800 && cp < 0xDC00 && rp->end - q >= 6 && q[0] == '\\' && q[1] == 'u') {
          unsigned long lo = (unsigned long)hex4(rp, q + 2);
          if (lo >= 0xDC00 && lo < 0xE000) { cp = 0x10000 + ((cp - 0xD800) << 10) + (lo - 0xDC00); q += 6; }
        }
        add_utf8(&b, cp);
        break;
      }
      default: rp->p = q - 1; fail(rp, "bad escape");
    }
  }
  if (q >= rp->end) { rp->p = q; fail(rp, "unterminated string"); }
  rp->p = q + 1;
  luaL_pushresult(&b);
}

/* Clinger's fast path: `-?digits[.digits]` whose significant digits fit in 2^53 and whose scale is
** at most 10^22 is w / 10^k with both operands exact, so the one division rounds correctly (as
** strtod would). Returns 0 for any other text (the caller uses strtod). Needs double arithmetic
** without extended precision (FLT_EVAL_METHOD 0: SSE2 on x86-64, every 64-bit ARM). */
static int exact_decimal(const char *p, size_t n, double *out) {
#if defined(FLT_EVAL_METHOD) && FLT_EVAL_METHOD == 0
  static const double pow10[23] = {1e0,  1e1,  1e2,  1e3,  1e4,  1e5,  1e6,  1e7,  1e8,  1e9,  1e10, 1e11,
                                   1e12, 1e13, 1e14, 1e15, 1e16, 1e17, 1e18, 1e19, 1e20, 1e21, 1e22};
  const char *e = p + n;
  int neg = p < e && *p == '-', any = 0, dot = 0, digits = 0, scale = 0;
  uint64_t w = 0;
  for (p += neg; p < e; p++) {
    unsigned c = (unsigned char)*p;
    if (c - '0' <= 9) {
      any = 1;
      scale += dot;
      if (w == 0 && c == '0') continue;         /* a leading zero */
      if (++digits > 19) return 0;
      w = w * 10 + (c - '0');
    } else if (c == '.' && !dot) {
      dot = 1;
    } else {
      return 0;
    }
  }
  if (!any || w > (UINT64_C(1) << 53) || scale > 22) return 0;
  double d = (double)w / pow10[scale];
  *out = neg ? -d : d;
  return 1;
#else
  (void)p, (void)n, (void)out;
  return 0;
#endif
}

/* `-?digits` of at most 18 digits (always within 64 bits) -> 1 and *out; else 0. */
static int short_integer(const char *p, size_t n, long long *out) {
  const char *e = p + n;
  int neg = p < e && *p == '-';
  p += neg;
  if (p == e || e - p > 18) return 0;
  long long v = 0;
  for (; p < e; p++) {
    unsigned c = (unsigned char)*p;
    if (c - '0' > 9) return 0;
    v = v * 10 + (long long)(c - '0');
  }
  *out = neg ? -v : v;
  return 1;
}

/* A JSON number: an integer when it has neither fraction nor exponent and fits, else a float. */
static void push_number(rows_parser_t *rp) {
  const char *q = rp->p;
  int is_int = 1;
  if (q < rp->end && *q == '-') q++;
  if (q >= rp->end || *q < '0' || *q > '9') fail(rp, "unexpected character");
  while (q < rp->end && ((*q >= '0' && *q <= '9') || *q == '.' || *q == 'e' || *q == 'E' ||
                         *q == '+' || *q == '-')) {
    if (*q == '.' || *q == 'e' || *q == 'E') is_int = 0;
    q++;
  }
  char buf[64];
  size_t n = (size_t)(q - rp->p);
  if (n >= sizeof buf) fail(rp, "number too long");
  long long iv;
  double dv;
  if (is_int ? short_integer(rp->p, n, &iv) : exact_decimal(rp->p, n, &dv)) {
    if (is_int) lua_pushinteger(rp->L, (lua_Integer)iv);
    else lua_pushnumber(rp->L, (lua_Number)dv);
    rp->p = q;
    return;
  }
  memcpy(buf, rp->p, n);
  buf[n] = '\0';
  char *stop;
  errno = 0;
  if (is_int) {
    long long v = strtoll(buf, &stop, 10);
    if (*stop == '\0' && errno == 0) {
      lua_pushinteger(rp->L, (lua_Integer)v);
      rp->p = q;
      return;
    }
  }
  double d = strtod(buf, &stop);
  if (*stop != '\0') fail(rp, "malformed number");
  lua_pushnumber(rp->L, (lua_Number)d);
  rp->p = q;
}

/* A string in a `numbers` field: its text must be a whole decimal number (or NaN/Infinity). */
static void push_numeric_string(rows_parser_t *rp, int field) {
  const char *q = rp->p + 1, *start = q;
  while (q < rp->end && *q != '"' && *q != '\\') q++;
  char buf[64], *stop;
  size_t n = (size_t)(q - start);
  if (q < rp->end && *q == '"' && n > 0 && n < sizeof buf) {
    double fast;
    if (exact_decimal(start, n, &fast)) {
      lua_pushnumber(rp->L, (lua_Number)fast);
      rp->p = q + 1;
      return;
    }
    memcpy(buf, start, n);
    buf[n] = '\0';
    double d = strtod(buf, &stop);
    if (*stop == '\0') {
      lua_pushnumber(rp->L, (lua_Number)d);
      rp->p = q + 1;
      return;
    }
  }
  luaL_error(rp->L, "json.decode_rows: row %d field %d: \"%s\" is not a number", (int)rp->row, field,
             n < sizeof buf ? (memcpy(buf, start, n), buf[n] = '\0', buf) : "(too long)");
}

static void push_literal(rows_parser_t *rp, const char *word, size_t n) {
  if ((size_t)(rp->end - rp->p) < n || memcmp(rp->p, word, n) != 0) fail(rp, "unexpected character");
  rp->p += n;
}

static void push_scalar(rows_parser_t *rp, int field, int null_idx) {
  switch (peek(rp)) {
    case '"':
      if (field <= 64 && (rp->numbers >> (field - 1) & 1)) push_numeric_string(rp, field);
      else push_string(rp);
      return;
    case 't': push_literal(rp, "true", 4); lua_pushboolean(rp->L, 1); return;
    case 'f': push_literal(rp, "false", 5); lua_pushboolean(rp->L, 0); return;
    case 'n': push_literal(rp, "null", 4); lua_pushvalue(rp->L, null_idx); return;
    case '[': case '{': fail(rp, "nested value (only arrays of scalars)");
    case -1: fail(rp, "unexpected end");
    default: push_number(rp); return;
  }
}

/* Parse one row at rp->p into a new table pre-sized to `hint`; returns its length. */
static int push_row(rows_parser_t *rp, int hint, int null_idx) {
  expect(rp, '[', "expected '[' (a row)");
  lua_createtable(rp->L, hint, 0);
  int n = 0;
  if (peek(rp) == ']') { rp->p++; return 0; }
  for (;;) {
    push_scalar(rp, n + 1, null_idx);
    lua_rawseti(rp->L, -2, ++n);
    int c = peek(rp);
    rp->p++;
    if (c == ']') return n;
    if (c != ',') { rp->p--; fail(rp, "expected ',' or ']'"); }
  }
}

/* The `numbers` option as a bit set of 1-based field positions (1..64). */
static uint64_t numbers_option(lua_State *L, int opts) {
  static const char *const allowed[] = {"numbers", NULL};
  uint64_t bits = 0;
  if (lua_isnoneornil(L, opts)) return 0;
  luaL_checktype(L, opts, LUA_TTABLE);
  rtl_check_opts(L, opts, "json.decode_rows", allowed);
  if (lua_getfield(L, opts, "numbers") != LUA_TNIL) {
    luaL_argexpected(L, lua_istable(L, -1), opts, "numbers must be a list of field positions");
    lua_Integer n = (lua_Integer)lua_rawlen(L, -1);
    for (lua_Integer i = 1; i <= n; i++) {
      lua_rawgeti(L, -1, i);
      int isint;
      lua_Integer f = lua_tointegerx(L, -1, &isint);
      if (!isint || f < 1 || f > 64)
        luaL_error(L, "json.decode_rows: numbers[%d] must be a field position from 1 to 64", (int)i);
      bits |= (uint64_t)1 << (f - 1);
      lua_pop(L, 1);
    }
  }
  lua_pop(L, 1);
  return bits;
}

/* json.decode_rows(text [, opts]) -> {{...}, ...} */
static int rtl_json_decode_rows(lua_State *L) {
  size_t len;
  const char *s = luaL_checklstring(L, 1, &len);
  rows_parser_t rp = {L, s, s, s + len, numbers_option(L, 2), 0};
  lua_settop(L, 1);
  luaL_checkstack(L, 4, "json.decode_rows");
  expect(&rp, '[', "expected '[' (an array of rows)");
  lua_newtable(L);                                /* 2: rows */
  int hint = 0;
  lua_Integer nrows = 0;
  if (peek(&rp) == ']') rp.p++;
  else for (;;) {
    rp.row = nrows + 1;
    hint = push_row(&rp, hint, lua_upvalueindex(1));
    lua_rawseti(L, 2, ++nrows);
    int c = peek(&rp);
    rp.p++;
    if (c == ']') break;
    if (c != ',') { rp.p--; fail(&rp, "expected ',' or ']'"); }
  }
  if (peek(&rp) != -1) fail(&rp, "trailing characters");
  return 1;
}

/* Adds decode_rows to the rt.json module table at the top of the stack; its upvalue is json.null. */
void rtl_json_add_rows(lua_State *L) {
  lua_getfield(L, -1, "null");
  lua_pushcclosure(L, rtl_json_decode_rows, 1);
  lua_setfield(L, -2, "decode_rows");
}
