/*
** runtime/strlib.c - the string methods every Lua string of the state sees: Lua's string library
** without `dump`, with pattern matching that the CPU limits can stop and a `rep` that the memory
** limit stops before it allocates.
**
** Lua's own matcher (lstrlib) is a C recursion the count hook never sees, so a pattern such as
** ("a"):rep(3000):find(".-.-.-.-b") or a gsub over a large body could hold the loop for hours. The
** matcher below implements the same pattern language (Lua 5.4 manual, 6.4.1) and counts its steps;
** every STEP_CHECK steps it asks rt_vm_check_limits() whether the running task's slice (or the
** budget of a top-level load) is over, which raises like the count hook does. find with `plain`, or
** a pattern without special characters, goes to Lua's own find (a plain search is linear).
**
** The table is installed as the __index of the string metatable, and the metatable is hidden
** (__metatable = false): no script can reach or change the methods every string shares.
*/
#include "runtime/strlib.h"

#include <ctype.h>
#include <lauxlib.h>
#include <string.h>

#include "runtime/vm_call.h"

#define L_ESC '%'
#define SPECIALS "^$*+?.([%-"
#define MAX_DEPTH 200          /* nested match() calls, as lstrlib's MAXCCALLS */
#define STEP_CHECK 4096        /* steps between two looks at the clock */
#define MAX_CAPTURES 32        /* as lstrlib's LUA_MAXCAPTURES */
#define CAP_UNFINISHED (-1)
#define CAP_POSITION (-2)

typedef struct {
  const char *src_init, *src_end, *p_end;
  lua_State *L;
  int depth;                   /* match() calls left before "pattern too complex" */
  int level;                   /* captures open or closed so far */
  unsigned steps;
  struct { const char *init; ptrdiff_t len; } capture[MAX_CAPTURES];
} ms_t;

static const char *match(ms_t *ms, const char *s, const char *p);

static void step(ms_t *ms, size_t n) {
  ms->steps += (unsigned)(n > STEP_CHECK ? STEP_CHECK : n);
  if (ms->steps >= STEP_CHECK) {
    ms->steps = 0;
    rt_vm_check_limits(ms->L, "pattern matching");
  }
}

static int capture_index(ms_t *ms, int c) {
  int l = c - '1';
  if (l < 0 || l >= ms->level || ms->capture[l].len == CAP_UNFINISHED)
    return luaL_error(ms->L, "invalid capture index %%%d", l + 1);
  return l;
}

static int open_capture(ms_t *ms) {
  for (int l = ms->level - 1; l >= 0; l--)
    if (ms->capture[l].len == CAP_UNFINISHED) return l;
  return luaL_error(ms->L, "invalid pattern capture");
}

/* The end of the single-character class that starts at p. */
static const char *class_end(ms_t *ms, const char *p) {
  char c = *p++;
  if (c == L_ESC) {
    if (p == ms->p_end) luaL_error(ms->L, "malformed pattern (ends with '%%')");
    return p + 1;
  }
  if (c == '[') {
    if (*p == '^') p++;
    do {                                       /* the first ']' after '[' or '[^' is literal */
      if (p == ms->p_end) luaL_error(ms->L, "malformed pattern (missing ']')");
      if (*(p++) == L_ESC && p < ms->p_end) p++;
    } while (*p != ']');
    return p + 1;
  }
  return p;
}

static int class_matches(int c, int cl) {
  int r;
  switch (tolower(cl)) {
  case 'a': r = isalpha(c); break;
  case 'c': r = iscntrl(c); break;
  case 'd': r = isdigit(c); break;
  case 'g': r = isgraph(c); break;
  case 'l': r = islower(c); break;
  case 'p': r = ispunct(c); break;
  case 's': r = isspace(c); break;
  case 'u': r = isupper(c); break;
  case 'w': r = isalnum(c); break;
  case 'x': r = isxdigit(c); break;
  case 'z': r = c == 0; break;               /* deprecated in the manual, still accepted */
  default: return cl == c;
  }
  if (isupper(cl)) r = !r;
  return r != 0;
}

/* [set] from p ('[') to ec (its ']'). */
static int set_matches(int c, const char *p, const char *ec) {
  int yes = 1;
  if (*(p + 1) == '^') {
    yes = 0;
    p++;
  }
  while (++p < ec) {
    if (*p == L_ESC) {
      p++;
      if (class_matches(c, (unsigned char)*p)) return yes;
    } else if (*(p + 1) == '-' && p + 2 < ec) {
      p += 2;
      if ((unsigned char)*(p - 2) <= c && c <= (unsigned char)*p) return yes;
    } else if ((unsigned char)*p == c) {
      return yes;
    }
  }
  return !yes;
}

static int single(ms_t *ms, const char *s, const char *p, const char *ep) {
  if (s >= ms->src_end) return 0;
  int c = (unsigned char)*s;
  switch (*p) {
  case '.': return 1;
  case L_ESC: return class_matches(c, (unsigned char)*(p + 1));
  case '[': return set_matches(c, p, ep - 1);
  default: return (unsigned char)*p == c;
  }
}

static const char *balance(ms_t *ms, const char *s, const char *p) {
  if (p >= ms->p_end - 1) luaL_error(ms->L, "malformed pattern (missing arguments to '%%b')");
  if (s >= ms->src_end || *s != *p) return NULL;
  int b = *p, e = *(p + 1), open = 1;
  const char *start = s;
  while (++s < ms->src_end) {
    if (*s == e) {
      if (--open == 0) {
        step(ms, (size_t)(s - start));
        return s + 1;
      }
    } else if (*s == b) {
      open++;
    }
  }
  step(ms, (size_t)(s - start));
  return NULL;
}

static const char *expand_max(ms_t *ms, const char *s, const char *p, const char *ep) {
  ptrdiff_t i = 0;
  while (single(ms, s + i, p, ep)) i++;
  step(ms, (size_t)i);
  for (; i >= 0; i--) {                        /* the longest first, then shorter */
    const char *r = match(ms, s + i, ep + 1);
    if (r) return r;
  }
  return NULL;
}

static const char *expand_min(ms_t *ms, const char *s, const char *p, const char *ep) {
  for (;;) {
    const char *r = match(ms, s, ep + 1);
    if (r) return r;
    if (!single(ms, s, p, ep)) return NULL;
    s++;
  }
}

static const char *capture_start(ms_t *ms, const char *s, const char *p, ptrdiff_t what) {
  if (ms->level >= MAX_CAPTURES) luaL_error(ms->L, "too many captures");
  ms->capture[ms->level].init = s;
  ms->capture[ms->level].len = what;
  ms->level++;
  const char *r = match(ms, s, p);
  if (!r) ms->level--;
  return r;
}

static const char *capture_end(ms_t *ms, const char *s, const char *p) {
  int l = open_capture(ms);
  ms->capture[l].len = s - ms->capture[l].init;
  const char *r = match(ms, s, p);
  if (!r) ms->capture[l].len = CAP_UNFINISHED;
  return r;
}

static const char *back_reference(ms_t *ms, const char *s, int c) {
  int l = capture_index(ms, c);
  size_t len = (size_t)ms->capture[l].len;
  if ((size_t)(ms->src_end - s) >= len && memcmp(ms->capture[l].init, s, len) == 0) return s + len;
  return NULL;
}

/* The match of pattern p at s: the end of the match, or NULL. */
static const char *match(ms_t *ms, const char *s, const char *p) {
  if (ms->depth-- == 0) luaL_error(ms->L, "pattern too complex");
  step(ms, 1);
again:
  if (p != ms->p_end) {
    const char *ep;
    switch (*p) {
    case '(':
      s = *(p + 1) == ')' ? capture_start(ms, s, p + 2, CAP_POSITION) : capture_start(ms, s, p + 1, CAP_UNFINISHED);
      break;
    case ')':
      s = capture_end(ms, s, p + 1);
      break;
    case '$':
      if (p + 1 != ms->p_end) goto plain;
      s = s == ms->src_end ? s : NULL;
      break;
    case L_ESC:
      switch (*(p + 1)) {
      case 'b':
        s = balance(ms, s, p + 2);
        if (s) {
          p += 4;
          goto again;
        }
        break;
      case 'f': {
        p += 2;
        if (*p != '[') luaL_error(ms->L, "missing '[' after '%%f' in pattern");
        ep = class_end(ms, p);
        int prev = s == ms->src_init ? 0 : (unsigned char)*(s - 1);
        int cur = s < ms->src_end ? (unsigned char)*s : 0;
        if (!set_matches(prev, p, ep - 1) && set_matches(cur, p, ep - 1)) {
          p = ep;
          goto again;
        }
        s = NULL;
        break;
      }
      case '0': case '1': case '2': case '3': case '4':
      case '5': case '6': case '7': case '8': case '9':
        s = back_reference(ms, s, (unsigned char)*(p + 1));
        if (s) {
          p += 2;
          goto again;
        }
        break;
      default: goto plain;
      }
      break;
    default:
    plain:
      ep = class_end(ms, p);
      if (!single(ms, s, p, ep)) {
        if (*ep == '*' || *ep == '?' || *ep == '-') {   /* zero repetitions are fine */
          p = ep + 1;
          goto again;
        }
        s = NULL;
      } else {
        switch (*ep) {
        case '?': {
          const char *r = match(ms, s + 1, ep + 1);
          if (r) s = r;
          else {
            p = ep + 1;
            goto again;
          }
          break;
        }
        case '+': s = expand_max(ms, s + 1, p, ep); break;
        case '*': s = expand_max(ms, s, p, ep); break;
        case '-': s = expand_min(ms, s, p, ep); break;
        default:
          s++;
          p = ep;
          goto again;
        }
      }
      break;
    }
  }
  ms->depth++;
  return s;
}

/* ---- captures ------------------------------------------------------------------------------- */

/* Push capture i (the whole match s..e when there are none and i is 0). */
static void push_capture(ms_t *ms, int i, const char *s, const char *e) {
  if (i >= ms->level) {
    if (i != 0) luaL_error(ms->L, "invalid capture index %%%d", i + 1);
    lua_pushlstring(ms->L, s, (size_t)(e - s));
    return;
  }
  ptrdiff_t l = ms->capture[i].len;
  if (l == CAP_UNFINISHED) luaL_error(ms->L, "unfinished capture");
  if (l == CAP_POSITION) lua_pushinteger(ms->L, (ms->capture[i].init - ms->src_init) + 1);
  else lua_pushlstring(ms->L, ms->capture[i].init, (size_t)l);
}

static int push_captures(ms_t *ms, const char *s, const char *e) {
  int n = (ms->level == 0 && s) ? 1 : ms->level;
  luaL_checkstack(ms->L, n, "too many captures");
  for (int i = 0; i < n; i++) push_capture(ms, i, s, e);
  return n;
}

static void ms_init(ms_t *ms, lua_State *L, const char *s, size_t ls, const char *p, size_t lp) {
  ms->L = L;
  ms->src_init = s;
  ms->src_end = s + ls;
  ms->p_end = p + lp;
  ms->steps = 0;
}

static void ms_reset(ms_t *ms) {
  ms->level = 0;
  ms->depth = MAX_DEPTH;
}

/* A 1-based start position (negative from the end) as a 0-based offset, clamped like Lua does. */
static size_t start_offset(lua_Integer pos, size_t len) {
  if (pos > 0) return (size_t)pos - 1;
  if (pos == 0 || pos < -(lua_Integer)len) return 0;
  return len + (size_t)pos;
}

/* ---- the functions -------------------------------------------------------------------------- */

/* No special character in the whole pattern (embedded zeros included). */
static int no_specials(const char *p, size_t lp) {
  size_t upto = 0;
  do {
    if (strpbrk(p + upto, SPECIALS)) return 0;
    upto += strlen(p + upto) + 1;
  } while (upto <= lp);
  return 1;
}

static int find_or_match(lua_State *L, int find) {
  size_t ls, lp;
  const char *s = luaL_checklstring(L, 1, &ls);
  const char *p = luaL_checklstring(L, 2, &lp);
  size_t init = start_offset(luaL_optinteger(L, 3, 1), ls);
  if (find && (lua_toboolean(L, 4) || no_specials(p, lp))) {
    lua_pushvalue(L, lua_upvalueindex(1));     /* Lua's own find: a plain search */
    lua_insert(L, 1);
    lua_call(L, lua_gettop(L) - 1, LUA_MULTRET);
    return lua_gettop(L);
  }
  if (init > ls) {
    luaL_pushfail(L);
    return 1;
  }
  ms_t ms;
  int anchor = *p == '^';
  if (anchor) {
    p++;
    lp--;
  }
  ms_init(&ms, L, s, ls, p, lp);
  const char *s1 = s + init;
  do {
    ms_reset(&ms);
    const char *e = match(&ms, s1, p);
    if (e) {
      if (!find) return push_captures(&ms, s1, e);
      lua_pushinteger(L, (s1 - s) + 1);
      lua_pushinteger(L, e - s);
      return push_captures(&ms, NULL, NULL) + 2;
    }
  } while (s1++ < ms.src_end && !anchor);
  luaL_pushfail(L);
  return 1;
}

static int rt_str_find(lua_State *L) { return find_or_match(L, 1); }
static int rt_str_match(lua_State *L) { return find_or_match(L, 0); }

/* The iterator of gmatch: upvalues subject, pattern, and a userdata with the position and the end
** of the last match (a match may not end where the previous one did). */
typedef struct { size_t pos; ptrdiff_t last; } gm_t;

static int gmatch_next(lua_State *L) {
  size_t ls, lp;
  const char *s = lua_tolstring(L, lua_upvalueindex(1), &ls);
  const char *p = lua_tolstring(L, lua_upvalueindex(2), &lp);
  gm_t *g = lua_touserdata(L, lua_upvalueindex(3));
  ms_t ms;
  ms_init(&ms, L, s, ls, p, lp);
  for (const char *src = s + g->pos; src <= ms.src_end; src++) {
    ms_reset(&ms);
    const char *e = match(&ms, src, p);
    if (e && e - s != g->last) {
      g->pos = (size_t)(e - s);
      g->last = e - s;
      return push_captures(&ms, src, e);
    }
  }
  return 0;
}

static int rt_str_gmatch(lua_State *L) {
  size_t ls;
  luaL_checklstring(L, 1, &ls);
  luaL_checkstring(L, 2);
  size_t init = start_offset(luaL_optinteger(L, 3, 1), ls);
  lua_settop(L, 2);
  gm_t *g = lua_newuserdatauv(L, sizeof *g, 0);
  g->pos = init > ls ? ls + 1 : init;
  g->last = -1;
  lua_pushcclosure(L, gmatch_next, 3);
  return 1;
}

/* Append the replacement string at index 3 with %0-%9 and %% expanded. */
static void add_string(ms_t *ms, luaL_Buffer *b, const char *s, const char *e) {
  size_t l;
  const char *r = lua_tolstring(ms->L, 3, &l), *end = r + l;
  const char *esc;
  while ((esc = memchr(r, L_ESC, (size_t)(end - r))) != NULL) {
    luaL_addlstring(b, r, (size_t)(esc - r));
    esc++;
    if (esc < end && *esc == L_ESC) {
      luaL_addchar(b, L_ESC);
    } else if (esc < end && isdigit((unsigned char)*esc)) {
      if (*esc == '0') luaL_addlstring(b, s, (size_t)(e - s));
      else {
        push_capture(ms, *esc - '1', s, e);
        luaL_tolstring(ms->L, -1, NULL);
        lua_remove(ms->L, -2);
        luaL_addvalue(b);
      }
    } else {
      luaL_error(ms->L, "invalid use of '%c' in replacement string", L_ESC);
    }
    r = esc + 1;
  }
  luaL_addlstring(b, r, (size_t)(end - r));
}

static void add_value(ms_t *ms, luaL_Buffer *b, const char *s, const char *e, int tr) {
  lua_State *L = ms->L;
  if (tr == LUA_TFUNCTION) {
    lua_pushvalue(L, 3);
    int n = push_captures(ms, s, e);
    lua_call(L, n, 1);
  } else if (tr == LUA_TTABLE) {
    push_capture(ms, 0, s, e);
    lua_gettable(L, 3);
  } else {
    add_string(ms, b, s, e);
    return;
  }
  if (!lua_toboolean(L, -1)) {                 /* nil or false: keep the original text */
    lua_pop(L, 1);
    luaL_addlstring(b, s, (size_t)(e - s));
  } else if (!lua_isstring(L, -1)) {
    luaL_error(L, "invalid replacement value (a %s)", luaL_typename(L, -1));
  } else {
    luaL_addvalue(b);
  }
}

static int rt_str_gsub(lua_State *L) {
  size_t ls, lp;
  const char *src = luaL_checklstring(L, 1, &ls);
  const char *p = luaL_checklstring(L, 2, &lp);
  const char *last = NULL;
  int tr = lua_type(L, 3);
  lua_Integer max = luaL_optinteger(L, 4, (lua_Integer)ls + 1), n = 0;
  luaL_argexpected(L, tr == LUA_TNUMBER || tr == LUA_TSTRING || tr == LUA_TFUNCTION || tr == LUA_TTABLE, 3,
                   "string/function/table");
  int anchor = *p == '^';
  if (anchor) {
    p++;
    lp--;
  }
  luaL_Buffer b;
  luaL_buffinit(L, &b);
  ms_t ms;
  ms_init(&ms, L, src, ls, p, lp);
  while (n < max) {
    ms_reset(&ms);
    const char *e = match(&ms, src, p);
    if (e && e != last) {
      n++;
      add_value(&ms, &b, src, e, tr);
      src = last = e;
    } else if (src < ms.src_end) {
      luaL_addchar(&b, *src++);
    } else {
      break;
    }
    step(&ms, 1);
    if (anchor) break;
  }
  luaL_addlstring(&b, src, (size_t)(ms.src_end - src));
  luaL_pushresult(&b);
  lua_pushinteger(L, n);
  return 2;
}

/* string.rep under the memory limit: a result larger than the room left fails at once, before the
** allocation (and the copying) starts. */
static int rt_str_rep(lua_State *L) {
  size_t l, lsep;
  luaL_checklstring(L, 1, &l);
  lua_Integer n = luaL_checkinteger(L, 2);
  luaL_optlstring(L, 3, "", &lsep);
  if (n > 0) {
    double total = (double)l * (double)n + (double)lsep * (double)(n - 1);
    size_t room = rt_vm_memory_room(L);
    if (total > (double)room) {
      char msg[200];
      snprintf(msg, sizeof msg, "string.rep: a result of %.0f bytes is over the memory limit "
               "(runtime.memory_limit = %zu MiB)", total, rt_vm_memory_limit(L) >> 20);
      return luaL_error(L, "%s", msg);
    }
  }
  lua_pushvalue(L, lua_upvalueindex(1));
  lua_insert(L, 1);
  lua_call(L, lua_gettop(L) - 1, 1);
  return 1;
}

void rt_strlib_install(lua_State *L) {
  lua_getglobal(L, "string");                  /* [string] */
  lua_newtable(L);                             /* [string methods] */
  lua_pushnil(L);
  while (lua_next(L, -3)) {                    /* a copy without dump */
    if (strcmp(lua_tostring(L, -2), "dump") == 0) lua_pop(L, 1);
    else {
      lua_pushvalue(L, -2);
      lua_insert(L, -2);
      lua_rawset(L, -4);
    }
  }
  lua_getfield(L, -2, "find");
  lua_pushcclosure(L, rt_str_find, 1);
  lua_setfield(L, -2, "find");
  static const luaL_Reg bounded[] = {
    {"match", rt_str_match}, {"gmatch", rt_str_gmatch}, {"gsub", rt_str_gsub}, {NULL, NULL}};
  luaL_setfuncs(L, bounded, 0);
  lua_getfield(L, -2, "rep");
  lua_pushcclosure(L, rt_str_rep, 1);
  lua_setfield(L, -2, "rep");
  lua_pushliteral(L, "");
  lua_getmetatable(L, -1);                     /* [string methods "" mt] */
  lua_pushvalue(L, -3);
  lua_setfield(L, -2, "__index");
  lua_pushboolean(L, 0);
  lua_setfield(L, -2, "__metatable");
  lua_pop(L, 4);
}
