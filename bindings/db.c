/*
** bindings/db.c - Lua module "rt.db" over the runtime's one SQLite writer connection.
**
**   n, err, code        = db.exec(sql, ...)          -- changes; several statements without params
**   rows, err, code     = db.query(sql, ...)         -- {{col=value, ...}, ...}
**   row                 = db.first(sql, ...)         -- first row or nil
**   cols, n, err, code  = db.columns(sql, ...)       -- {col = {v1, v2, ...}, ...}, row count: one
**                                                    -- array per column (NULL leaves a hole), no
**                                                    -- table per row (exports read millions)
**   ins, upd, err, code = db.upsert(table, rows, {keys={...} [, columns={...}] [, update=false]
**                                                 [, keep={...}]})  -- keep: columns an update leaves
**   ...                 = db.tx(fn, ...)             -- fn's results; rolls back and re-raises on error
**   version, err, code  = db.migrate(name, {step1, step2, ...})   -- steps: SQL text or function()
**   path                = db.path()
**
** db.upsert into `candles` or `trades` (views over the series catalogue) goes through the store's
** series writer: the same options, checks and counts, the rows written by series id.
**
** Parameters are bound, never interpolated: nil -> NULL, boolean -> 0/1, integer, float, string.
** SQL that does not compile raises (a bug in the script); failures while running (constraint, busy,
** I/O) return nil, message, "SQLITE_<CODE>". The calls run synchronously on the loop thread.
*/
#include "bindings/bindings.h"

#include <ctype.h>
#include <stdlib.h>
#include <string.h>

#include "runtime/store.h"
#include "runtime/events.h"
#include "runtime/store_series.h"

static rt_store_t *check_store(lua_State *L, const char *fn) {
  rt_store_t *s = rt_store_of(rt_from_lua(L));
  if (!s) luaL_error(L, "%s: no database is open", fn);
  return s;
}

static int push_sql_fail(lua_State *L, rt_store_t *s, int rc, const char *what) {
  lua_pushnil(L);
  lua_pushfstring(L, "%s: %s", what, rt_store_errmsg(s));
  lua_pushstring(L, rt_store_code_name(rc));
  return 3;
}

/* Bind the Lua value at idx to parameter i. Raises for tables and functions. Strings are bound
** without a copy: the string outlives the step (it sits on the stack or in the caller's row table)
** and bindings are cleared before the statement is used again. */
static void bind_value(lua_State *L, rt_store_stmt_t *st, int i, int idx, const char *fn) {
  int t = lua_type(L, idx);
  if (t != LUA_TNIL && t != LUA_TNONE && t != LUA_TBOOLEAN && t != LUA_TNUMBER && t != LUA_TSTRING)
    luaL_error(L, "%s: parameter %d: cannot bind a %s", fn, i, luaL_typename(L, idx));
  rt_store_value_t v;
  rtl_to_store_value(L, idx, &v);
  rt_store_stmt_bind(st, i, &v);
}

/* Prepare sql (cached) and bind the arguments from `first` on. Raises when sql does not compile. */
static rt_store_stmt_t *prepare(lua_State *L, rt_store_t *s, int sql_idx, int first, const char *fn,
                                size_t *rest) {
  size_t len, used;
  const char *sql = luaL_checklstring(L, sql_idx, &len);
  rt_store_stmt_t *st;
  int rc = rt_store_query(s, sql, len, &st, &used);
  if (rc != RT_STORE_OK) luaL_error(L, "%s: %s", fn, rt_store_errmsg(s));
  int nargs = lua_gettop(L) - first + 1, nparams = rt_store_stmt_params(st);
  if (nargs > nparams) luaL_error(L, "%s: %d parameters given, the statement takes %d", fn, nargs, nparams);
  for (int i = 0; i < nargs; i++) bind_value(L, st, i + 1, first + i, fn);
  if (rest) {
    while (used < len && isspace((unsigned char)sql[used])) used++;
    *rest = used;
  }
  return st;
}

/* db.exec(sql, ...) -> changes */
static int rtl_db_exec(lua_State *L) {
  rt_store_t *s = check_store(L, "db.exec");
  size_t rest, len;
  const char *sql = luaL_checklstring(L, 1, &len);
  rt_store_stmt_t *st = prepare(L, s, 1, 2, "db.exec", &rest);
  if (rest < len && lua_gettop(L) > 1) luaL_error(L, "db.exec: parameters with several statements");
  /* rt_store_changes() keeps the count of the last INSERT/UPDATE/DELETE, so DDL or a SELECT would
  ** report a stale number: only trust it when the total moved during this call. */
  int64_t total = rt_store_total_changes(s);
  int rc;
  while ((rc = rt_store_stmt_step(st)) == RT_STORE_ROW) {}
  rt_store_stmt_reset(st);
  if (rc != RT_STORE_DONE) return push_sql_fail(L, s, rc, "db.exec");
  if (rest < len && (rc = rt_store_exec(s, sql + rest)) != RT_STORE_OK) return push_sql_fail(L, s, rc, "db.exec");
  int64_t n = rt_store_total_changes(s) != total ? rt_store_changes(s) : 0;
  if (!rt_store_stmt_readonly(st)) rtl_count_rows(L, n);
  lua_pushinteger(L, n);
  return 1;
}

/* db.query(sql, ...) -> rows */
static int rtl_db_query(lua_State *L) {
  rt_store_t *s = check_store(L, "db.query");
  rt_store_stmt_t *st = prepare(L, s, 1, 2, "db.query", NULL);
  int rc, n = 0;
  lua_newtable(L);
  while ((rc = rt_store_stmt_step(st)) == RT_STORE_ROW) {
    rtl_push_store_row(L, st);
    lua_rawseti(L, -2, ++n);
  }
  rt_store_stmt_reset(st);
  if (rc != RT_STORE_DONE) return push_sql_fail(L, s, rc, "db.query");
  return 1;
}

/* db.columns(sql, ...) -> {col = values}, n */
static int rtl_db_columns(lua_State *L) {
  rt_store_t *s = check_store(L, "db.columns");
  rt_store_stmt_t *st = prepare(L, s, 1, 2, "db.columns", NULL);
  int ncol = rt_store_stmt_columns(st), rc, top = lua_gettop(L);
  lua_Integer n = 0;
  luaL_checkstack(L, ncol + 2, "db.columns: too many columns");
  lua_createtable(L, 0, ncol);                 /* [... cols arr1 .. arrN] */
  for (int c = 0; c < ncol; c++) {
    lua_newtable(L);
    lua_pushvalue(L, -1);
    lua_setfield(L, top + 1, rt_store_stmt_name(st, c));
  }
  while ((rc = rt_store_stmt_step(st)) == RT_STORE_ROW) {
    n++;
    for (int c = 0; c < ncol; c++) {
      rtl_push_store_column(L, st, c);
      lua_rawseti(L, top + 2 + c, n);
    }
  }
  rt_store_stmt_reset(st);
  if (rc != RT_STORE_DONE) return push_sql_fail(L, s, rc, "db.columns");
  lua_settop(L, top + 1);
  lua_pushinteger(L, n);
  return 2;
}

/* db.first(sql, ...) -> row | nil */
static int rtl_db_first(lua_State *L) {
  rt_store_t *s = check_store(L, "db.first");
  rt_store_stmt_t *st = prepare(L, s, 1, 2, "db.first", NULL);
  int rc = rt_store_stmt_step(st);
  if (rc == RT_STORE_ROW) rtl_push_store_row(L, st);
  rt_store_stmt_reset(st);
  if (rc == RT_STORE_ROW) return 1;
  if (rc != RT_STORE_DONE) return push_sql_fail(L, s, rc, "db.first");
  lua_pushnil(L);
  return 1;
}

/* ---- upsert --------------------------------------------------------------------------------- */

static const char *check_ident(lua_State *L, int idx, const char *what) {
  const char *s = lua_tostring(L, idx);
  int ok = s && (isalpha((unsigned char)s[0]) || s[0] == '_');
  for (const char *p = s; ok && *p; p++) ok = isalnum((unsigned char)*p) || *p == '_';
  if (!ok) luaL_error(L, "db.upsert: %s '%s' is not a plain identifier", what, s ? s : luaL_typename(L, idx));
  return s;
}

/* Column names: opts.columns, else the sorted keys of the first row. Leaves a list on the stack. */
static int upsert_columns(lua_State *L, int rows, int opts) {
  if (lua_getfield(L, opts, "columns") != LUA_TNIL) {
    luaL_argexpected(L, lua_istable(L, -1), opts, "columns must be a list of names");
    return (int)lua_rawlen(L, -1);
  }
  lua_pop(L, 1);
  if (lua_rawgeti(L, rows, 1) != LUA_TTABLE) luaL_error(L, "db.upsert: row 1 is not a table");
  int n = rtl_push_sorted_keys(L, -1, "db.upsert", "row 1 has a non-string key");
  lua_remove(L, -2);                           /* the row; the sorted names stay */
  return n;
}

/* Name i of the list at `list`, leaving the stack as it was (a string buffer may be in use: its
** operations need the stack balanced between them). The list keeps the string alive. */
static const char *list_name(lua_State *L, int list, int i) {
  lua_rawgeti(L, list, i);
  const char *name = lua_tostring(L, -1);
  lua_pop(L, 1);
  return name;
}

/* Build the two statements of an upsert: insert-or-ignore and update-if-different. iskey[i]: 1 for a
** key column, 2 for a `keep` column (written on insert, never updated), 0 for the others. */
static void upsert_sql(lua_State *L, const char *table, int cols, int ncol, int keys, int nkeys,
                       char *iskey, int do_update) {
  luaL_Buffer b;
  luaL_buffinit(L, &b);
  luaL_addstring(&b, "INSERT INTO ");
  luaL_addstring(&b, table);
  luaL_addstring(&b, " (");
  for (int i = 1; i <= ncol; i++) {
    if (i > 1) luaL_addchar(&b, ',');
    luaL_addstring(&b, list_name(L, cols, i));
  }
  luaL_addstring(&b, ") VALUES (");
  for (int i = 1; i <= ncol; i++) luaL_addstring(&b, i > 1 ? ",?" : "?");
  luaL_addstring(&b, ") ON CONFLICT (");
  for (int i = 1; i <= nkeys; i++) {
    if (i > 1) luaL_addchar(&b, ',');
    luaL_addstring(&b, list_name(L, keys, i));
  }
  luaL_addstring(&b, ") DO NOTHING");
  luaL_pushresult(&b);                         /* [insert] */
  luaL_buffinit(L, &b);
  int nset = 0;
  for (int i = 1; i <= ncol; i++) nset += iskey[i] == 0;
  if (do_update && nset > 0) {                 /* UPDATE t SET a=?1,b=?2 WHERE k=?3 AND (a IS NOT ?1 OR ...) */
    luaL_addstring(&b, "UPDATE ");
    luaL_addstring(&b, table);
    luaL_addstring(&b, " SET ");
    int first = 1;
    for (int i = 1; i <= ncol; i++) {
      if (iskey[i]) continue;
      lua_pushfstring(L, "%s%s = ?%d", first ? "" : ", ", list_name(L, cols, i), i);
      luaL_addvalue(&b);
      first = 0;
    }
    luaL_addstring(&b, " WHERE ");
    first = 1;
    for (int i = 1; i <= ncol; i++) {
      if (iskey[i] != 1) continue;
      lua_pushfstring(L, "%s%s = ?%d", first ? "" : " AND ", list_name(L, cols, i), i);
      luaL_addvalue(&b);
      first = 0;
    }
    luaL_addstring(&b, " AND (");
    first = 1;
    for (int i = 1; i <= ncol; i++) {
      if (iskey[i]) continue;
      lua_pushfstring(L, "%s%s IS NOT ?%d", first ? "" : " OR ", list_name(L, cols, i), i);
      luaL_addvalue(&b);
      first = 0;
    }
    luaL_addstring(&b, ")");
  }
  luaL_pushresult(&b);                         /* [insert update] ("" when there is nothing to update) */
}

/* Push row r of the batch at `rows`; raises, after rolling back, when it is not a table. Returns its
** stack index; *positional tells an array row from one keyed by column name. */
static int push_row_of(lua_State *L, rt_store_t *s, int rows, lua_Integer r, int *positional) {
  if (lua_rawgeti(L, rows, r) != LUA_TTABLE) {
    rt_store_rollback(s);
    luaL_error(L, "db.upsert: row %d is a %s, not a table", (int)r, luaL_typename(L, -1));
  }
  int row = lua_gettop(L);
  *positional = lua_rawgeti(L, row, 1) != LUA_TNIL;
  lua_pop(L, 1);
  return row;
}

/* Push cell i (1-based) of a row, by position or by name; raises, after rolling back the batch, for
** a value SQLite cannot store. Returns 1 when the cell is not nil. */
static int push_cell(lua_State *L, rt_store_t *s, int row, int positional, int i, const char *name,
                     const char *table, lua_Integer r) {
  int t = positional ? lua_rawgeti(L, row, i) : lua_getfield(L, row, name);
  if (t == LUA_TTABLE || t == LUA_TFUNCTION || t == LUA_TUSERDATA || t == LUA_TTHREAD) {
    rt_store_rollback(s);
    luaL_error(L, "db.upsert %s: row %d column '%s': cannot store a %s", table, (int)r, name, lua_typename(L, t));
  }
  return t != LUA_TNIL;
}

/* A row keyed by name with a field outside the column list would lose it: raise, after rolling back. */
static void check_fields(lua_State *L, rt_store_t *s, int row, int present, const char *table, lua_Integer r,
                         int ncol) {
  int n = 0;
  lua_pushnil(L);
  while (lua_next(L, row)) {
    n++;
    lua_pop(L, 1);
  }
  if (n != present) {
    rt_store_rollback(s);
    luaL_error(L, "db.upsert %s: row %d has a field that is not among the columns (%d columns)", table, (int)r,
               ncol);
  }
}

/* db.upsert into candles or trades: the store's series writer (the views' rows are keyed by a
** series id). Same options, checks and counts as the generic path below. */
static int upsert_series(lua_State *L, rt_store_t *s, const char *table, int rows, int cols, int ncol,
                         int keys, int nkeys, int do_update) {
  const char *names[200], *knames[200];
  char err[256];
  for (int i = 0; i < ncol; i++) {
    lua_rawgeti(L, cols, i + 1);
    names[i] = lua_tostring(L, -1);            /* kept alive by the cols table */
    lua_pop(L, 1);
  }
  if (nkeys > 200) luaL_error(L, "db.upsert %s: too many keys (%d)", table, nkeys);
  for (int k = 0; k < nkeys; k++) {
    lua_rawgeti(L, keys, k + 1);
    knames[k] = lua_tostring(L, -1);
    lua_pop(L, 1);
  }
  int rc = rt_store_series_begin(s, table, names, ncol, knames, nkeys, do_update, err, sizeof err);
  if (rc != RT_STORE_OK) luaL_error(L, "db.upsert %s: %s", table, err);
  luaL_checkstack(L, ncol + 8, "db.upsert: too many columns");
  if ((rc = rt_store_begin(s)) != RT_STORE_OK) return push_sql_fail(L, s, rc, "db.upsert");
  rt_store_value_t vals[200];
  rt_events_batch_t events;                    /* candle/trade events of the batch, if wanted */
  rt_events_series_begin(rt_from_lua(L), &events, table, names, ncol);
  lua_Integer nrows = (lua_Integer)lua_rawlen(L, rows), inserted = 0, updated = 0;
  char is_text[200];                           /* columns stored as text: a number there is bound as text */
  for (int i = 0; i < ncol; i++) is_text[i] = (char)rt_store_series_is_text(s, i);
  for (lua_Integer r = 1; r <= nrows; r++) {
    int positional, row = push_row_of(L, s, rows, r, &positional), present = 0;
    for (int i = 0; i < ncol; i++) {
      present += push_cell(L, s, row, positional, i + 1, names[i], table, r);
      rt_store_value_t *v = &vals[i];          /* the value stays on the stack until the put */
      switch (lua_type(L, -1)) {               /* rtl_to_store_value, with the number-as-text case */
      case LUA_TNUMBER:
        if (is_text[i]) v->type = RT_STORE_TEXT, v->s = lua_tolstring(L, -1, &v->n);
        else if (lua_isinteger(L, -1)) v->type = RT_STORE_INTEGER, v->i = lua_tointeger(L, -1);
        else v->type = RT_STORE_FLOAT, v->d = lua_tonumber(L, -1);
        break;
      case LUA_TSTRING: v->type = RT_STORE_TEXT, v->s = lua_tolstring(L, -1, &v->n); break;
      default: rtl_to_store_value(L, -1, v);   /* nil, boolean */
      }
    }
    if (!positional) check_fields(L, s, row, present, table, r, ncol);
    int result;
    rc = rt_store_series_put(s, vals, &result);
    if (rc == RT_STORE_OK && events.on) rt_events_series_put(rt_from_lua(L), &events, vals, result);
    lua_settop(L, row - 1);                    /* the values and the row */
    if (rc != RT_STORE_OK) {
      char where[96];
      snprintf(where, sizeof where, "db.upsert %s", table);
      push_sql_fail(L, s, rc, where);
      rt_store_rollback(s);
      return 3;
    }
    inserted += result == 1;
    updated += result == 2;
  }
  if ((rc = rt_store_commit(s)) != RT_STORE_OK) {
    push_sql_fail(L, s, rc, "db.upsert commit");
    rt_store_rollback(s);
    return 3;
  }
  rtl_count_rows(L, inserted + updated);
  lua_pushinteger(L, inserted);
  lua_pushinteger(L, updated);
  return 2;
}

/* db.upsert(table, rows, {keys=..., columns=..., update=true}) -> inserted, updated */
static int rtl_db_upsert(lua_State *L) {
  static const char *const allowed[] = {"keys", "columns", "update", "keep", NULL};
  rt_store_t *s = check_store(L, "db.upsert");
  const char *table = check_ident(L, 1, "table");
  luaL_checktype(L, 2, LUA_TTABLE);
  luaL_checktype(L, 3, LUA_TTABLE);
  rtl_check_opts(L, 3, "db.upsert", allowed);
  int do_update = rtl_opt_boolean(L, 3, "update", 1, "db.upsert");
  lua_settop(L, 3);
  lua_Integer nrows = (lua_Integer)lua_rawlen(L, 2);
  if (nrows == 0) {
    lua_pushinteger(L, 0);
    lua_pushinteger(L, 0);
    return 2;
  }
  if (lua_getfield(L, 3, "keys") != LUA_TTABLE || lua_rawlen(L, -1) == 0)
    luaL_error(L, "db.upsert: option 'keys' must be a non-empty list of column names");
  int keys = lua_gettop(L), nkeys = (int)lua_rawlen(L, keys);     /* 4 */
  int ncol = upsert_columns(L, 2, 3), cols = lua_gettop(L);       /* 5 */
  if (ncol > 200) luaL_error(L, "db.upsert: too many columns (%d)", ncol);
  char iskey[202] = {0};
  for (int i = 1; i <= ncol; i++) {
    lua_rawgeti(L, cols, i);
    check_ident(L, -1, "column");
    for (int k = 1; k <= nkeys; k++) {
      lua_rawgeti(L, keys, k);
      if (lua_rawequal(L, -1, -2)) iskey[i] = 1;
      lua_pop(L, 1);
    }
    lua_pop(L, 1);
  }
  for (int k = 1; k <= nkeys; k++) {
    lua_rawgeti(L, keys, k);
    check_ident(L, -1, "key");
    int found = 0;
    for (int i = 1; i <= ncol && !found; i++) {
      lua_rawgeti(L, cols, i);
      found = lua_rawequal(L, -1, -2);
      lua_pop(L, 1);
    }
    if (!found) luaL_error(L, "db.upsert: key '%s' is not among the columns", lua_tostring(L, -1));
    lua_pop(L, 1);
  }
  if (lua_getfield(L, 3, "keep") != LUA_TNIL) {   /* columns an update leaves as stored */
    if (!lua_istable(L, -1)) luaL_error(L, "db.upsert: option 'keep' must be a list of column names");
    if (rt_store_series_table(table)) luaL_error(L, "db.upsert %s: option 'keep' is not supported here", table);
    for (int k = 1; k <= (int)lua_rawlen(L, -1); k++) {
      lua_rawgeti(L, -1, k);
      check_ident(L, -1, "keep column");
      for (int i = 1; i <= ncol; i++) {
        lua_rawgeti(L, cols, i);
        if (lua_rawequal(L, -1, -2) && !iskey[i]) iskey[i] = 2;
        lua_pop(L, 1);
      }
      lua_pop(L, 1);
    }
  }
  lua_pop(L, 1);
  if (rt_store_series_table(table)) return upsert_series(L, s, table, 2, cols, ncol, keys, nkeys, do_update);
  upsert_sql(L, table, cols, ncol, keys, nkeys, iskey, do_update);  /* 6 insert, 7 update */
  size_t ulen;
  lua_tolstring(L, 7, &ulen);
  rt_store_stmt_t *ins, *upd = NULL;
  size_t ilen;
  const char *isql = lua_tolstring(L, 6, &ilen);
  if (rt_store_query(s, isql, ilen, &ins, NULL) != RT_STORE_OK)
    luaL_error(L, "db.upsert %s: %s", table, rt_store_errmsg(s));
  if (ulen && rt_store_query(s, lua_tostring(L, 7), ulen, &upd, NULL) != RT_STORE_OK)
    luaL_error(L, "db.upsert %s: %s", table, rt_store_errmsg(s));
  /* Column names as C strings for the hot loop (kept alive by the cols table). */
  const char *names[201];
  for (int i = 1; i <= ncol; i++) {
    lua_rawgeti(L, cols, i);
    names[i] = lua_tostring(L, -1);
    lua_pop(L, 1);
  }
  int rc = rt_store_begin(s);
  if (rc != RT_STORE_OK) return push_sql_fail(L, s, rc, "db.upsert");
  lua_Integer inserted = 0, updated = 0;
  for (lua_Integer r = 1; r <= nrows; r++) {
    int positional, row = push_row_of(L, s, 2, r, &positional), present = 0;
    for (int i = 1; i <= ncol; i++) {
      present += push_cell(L, s, row, positional, i, names[i], table, r);
      bind_value(L, ins, i, -1, "db.upsert");
      lua_pop(L, 1);
    }
    if (!positional) check_fields(L, s, row, present, table, r, ncol);
    rc = rt_store_stmt_step(ins);
    rt_store_stmt_rewind(ins);
    if (rc != RT_STORE_DONE) goto failed;
    if (rt_store_changes(s) > 0) {
      inserted++;
    } else if (upd) {                          /* the key exists: bind the update only now */
      for (int i = 1; i <= ncol; i++) {
        if (positional) lua_rawgeti(L, row, i);
        else lua_getfield(L, row, names[i]);
        bind_value(L, upd, i, -1, "db.upsert");
        lua_pop(L, 1);
      }
      rc = rt_store_stmt_step(upd);
      rt_store_stmt_rewind(upd);
      if (rc != RT_STORE_DONE) goto failed;
      updated += rt_store_changes(s) > 0;
    }
    lua_pop(L, 1);                             /* the row */
  }
  if ((rc = rt_store_commit(s)) != RT_STORE_OK) goto failed_at_commit;
  rt_store_stmt_reset(ins);
  if (upd) rt_store_stmt_reset(upd);
  rtl_count_rows(L, inserted + updated);
  lua_pushinteger(L, inserted);
  lua_pushinteger(L, updated);
  return 2;
failed:;
  char where[96];
  snprintf(where, sizeof where, "db.upsert %s", table);
  push_sql_fail(L, s, rc, where);
  rt_store_rollback(s);
  return 3;
failed_at_commit:
  push_sql_fail(L, s, rc, "db.upsert commit");
  rt_store_rollback(s);
  return 3;
}

/* ---- transactions and migrations ------------------------------------------------------------ */

/* db.tx(fn, ...) -> fn's results. Nested calls become savepoints. Waiting inside fn raises. */
static int rtl_db_tx(lua_State *L) {
  rt_store_t *s = check_store(L, "db.tx");
  luaL_checktype(L, 1, LUA_TFUNCTION);
  int rc = rt_store_begin(s);
  if (rc != RT_STORE_OK) return push_sql_fail(L, s, rc, "db.tx begin");
  if (lua_pcall(L, lua_gettop(L) - 1, LUA_MULTRET, 0) != LUA_OK) {   /* [fn args] -> [results] */
    rt_store_rollback(s);
    return lua_error(L);
  }
  if ((rc = rt_store_commit(s)) != RT_STORE_OK) {
    push_sql_fail(L, s, rc, "db.tx commit");
    rt_store_rollback(s);
    return 3;
  }
  return lua_gettop(L);
}

/* db.migrate(name, steps) -> version. Each new step and its version row commit together; the
** version is read inside the step's transaction, so processes migrating at once never apply a
** step twice. */
static int rtl_db_migrate(lua_State *L) {
  rt_store_t *s = check_store(L, "db.migrate");
  const char *name = luaL_checkstring(L, 1);
  luaL_checktype(L, 2, LUA_TTABLE);
  int n = (int)lua_rawlen(L, 2);
  if (rt_store_migration_version(s, name) == n) {   /* the common case: no write lock taken */
    lua_pushinteger(L, n);
    return 1;
  }
  for (;;) {
    int have, rc = rt_store_migration_begin(s, name, &have);
    if (rc != RT_STORE_OK) return push_sql_fail(L, s, rc, "db.migrate");
    if (have >= n) {
      rt_store_commit(s);
      if (have > n)
        return luaL_error(L, "db.migrate %s: the database is at version %d but only %d steps are given", name,
                          have, n);
      lua_pushinteger(L, have);
      return 1;
    }
    int t = lua_rawgeti(L, 2, have + 1);
    if (t != LUA_TSTRING && t != LUA_TFUNCTION) {
      rt_store_rollback(s);
      return luaL_error(L, "db.migrate %s: step %d must be SQL text or a function", name, have + 1);
    }
    if (t == LUA_TSTRING) {
      rc = rt_store_exec(s, lua_tostring(L, -1));
      lua_pop(L, 1);
    } else if (lua_pcall(L, 0, 0, 0) != LUA_OK) {
      rt_store_rollback(s);
      return luaL_error(L, "db.migrate %s step %d: %s", name, have + 1, lua_tostring(L, -1));
    }
    if (rc == RT_STORE_OK) rc = rt_store_migration_record(s, name, have + 1);
    if (rc != RT_STORE_OK) {
      lua_pushfstring(L, "db.migrate %s step %d", name, have + 1);
      push_sql_fail(L, s, rc, lua_tostring(L, -1));
      rt_store_rollback(s);
      return 3;
    }
    if ((rc = rt_store_commit(s)) != RT_STORE_OK) {
      push_sql_fail(L, s, rc, "db.migrate commit");
      rt_store_rollback(s);
      return 3;
    }
  }
}

static int rtl_db_path(lua_State *L) {
  lua_pushstring(L, rt_store_path(check_store(L, "db.path")));
  return 1;
}

static const luaL_Reg db_funcs[] = {
  {"exec", rtl_db_exec}, {"query", rtl_db_query}, {"columns", rtl_db_columns}, {"first", rtl_db_first}, {"upsert", rtl_db_upsert},
  {"tx", rtl_db_tx}, {"migrate", rtl_db_migrate}, {"path", rtl_db_path}, {NULL, NULL}};

int luaopen_rt_db(lua_State *L) {
  luaL_newlib(L, db_funcs);
  return 1;
}
