/*
** runtime/store_query.c - the row-stepping API over the store's cached statements (store_query.h).
** The opaque rt_store_stmt_t is the sqlite3_stmt itself: the cache in store.c owns it.
*/
#include "runtime/store_query.h"

#include <sqlite3.h>

_Static_assert(RT_STORE_INTEGER == SQLITE_INTEGER && RT_STORE_FLOAT == SQLITE_FLOAT &&
                   RT_STORE_TEXT == SQLITE_TEXT && RT_STORE_BLOB == SQLITE_BLOB && RT_STORE_NULL == SQLITE_NULL,
               "value types are SQLite's");
_Static_assert(RT_STORE_OK == SQLITE_OK && RT_STORE_ROW == SQLITE_ROW && RT_STORE_DONE == SQLITE_DONE,
               "result codes are SQLite's");

#define STMT(st) ((sqlite3_stmt *)(st))

int rt_store_query(rt_store_t *s, const char *sql, size_t len, rt_store_stmt_t **out, size_t *used) {
  sqlite3_stmt *st = NULL;
  int rc = rt_store_prepare(s, sql, len, &st, used);
  *out = (rt_store_stmt_t *)st;
  return rc;
}

int rt_store_stmt_params(rt_store_stmt_t *st) { return sqlite3_bind_parameter_count(STMT(st)); }

int rt_store_stmt_bind(rt_store_stmt_t *st, int i, const rt_store_value_t *v) {
  switch (v->type) {
  case RT_STORE_INTEGER: return sqlite3_bind_int64(STMT(st), i, v->i);
  case RT_STORE_FLOAT: return sqlite3_bind_double(STMT(st), i, v->d);
  case RT_STORE_TEXT: return sqlite3_bind_text(STMT(st), i, v->s, (int)v->n, SQLITE_STATIC);
  case RT_STORE_BLOB: return sqlite3_bind_blob(STMT(st), i, v->s, (int)v->n, SQLITE_STATIC);
  default: return sqlite3_bind_null(STMT(st), i);
  }
}

int rt_store_stmt_step(rt_store_stmt_t *st) { return sqlite3_step(STMT(st)); }

int rt_store_stmt_columns(rt_store_stmt_t *st) { return sqlite3_column_count(STMT(st)); }

const char *rt_store_stmt_name(rt_store_stmt_t *st, int c) { return sqlite3_column_name(STMT(st), c); }

void rt_store_stmt_value(rt_store_stmt_t *st, int c, rt_store_value_t *v) {
  *v = (rt_store_value_t){sqlite3_column_type(STMT(st), c), 0, 0, NULL, 0};
  switch (v->type) {
  case SQLITE_INTEGER: v->i = sqlite3_column_int64(STMT(st), c); break;
  case SQLITE_FLOAT: v->d = sqlite3_column_double(STMT(st), c); break;
  case SQLITE_NULL: break;
  default:                                     /* text and blobs: the bytes as stored */
    v->s = (const char *)sqlite3_column_blob(STMT(st), c);
    v->n = (size_t)sqlite3_column_bytes(STMT(st), c);
  }
}

void rt_store_stmt_rewind(rt_store_stmt_t *st) { sqlite3_reset(STMT(st)); }

void rt_store_stmt_reset(rt_store_stmt_t *st) {
  sqlite3_reset(STMT(st));
  sqlite3_clear_bindings(STMT(st));
}

int rt_store_stmt_readonly(rt_store_stmt_t *st) { return sqlite3_stmt_readonly(STMT(st)); }

int64_t rt_store_changes(rt_store_t *s) { return sqlite3_changes64(rt_store_db(s)); }

int64_t rt_store_total_changes(rt_store_t *s) { return sqlite3_total_changes64(rt_store_db(s)); }
