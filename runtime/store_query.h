/*
** runtime/store_query.h - statements of the store, stepped row by row: what bindings use instead of
** calling SQLite. A statement comes from the store's cache (rt_store_query) and is owned by it: the
** caller binds, steps, reads values and resets it, never frees it. Loop thread only.
*/
#ifndef RT_STORE_QUERY_H
#define RT_STORE_QUERY_H

#include <stddef.h>
#include <stdint.h>

#include "runtime/store.h"

/* Value types (the numbers are SQLite's fundamental types). */
#define RT_STORE_INTEGER 1
#define RT_STORE_FLOAT 2
#define RT_STORE_TEXT 3
#define RT_STORE_BLOB 4
#define RT_STORE_NULL 5

/* Results of rt_store_stmt_step (SQLite's codes; anything else is an error code for
** rt_store_code_name and rt_store_errmsg). */
#define RT_STORE_OK 0
#define RT_STORE_ROW 100
#define RT_STORE_DONE 101

/// One value bound to or read from a statement. Text and blobs are not copied: bound ones must live
/// until the statement is reset; read ones are valid until the next step or reset.
typedef struct {
  int type;            /* RT_STORE_NULL, _INTEGER, _FLOAT, _TEXT or _BLOB */
  int64_t i;
  double d;
  const char *s;
  size_t n;
} rt_store_value_t;

typedef struct rt_store_stmt_s rt_store_stmt_t;

/// The cached statement of the first statement of `sql` (reset, bindings cleared). RT_STORE_OK or
/// an error code (message from rt_store_errmsg). `*used` (may be NULL): the bytes of sql it took.
int rt_store_query(rt_store_t *s, const char *sql, size_t len, rt_store_stmt_t **out, size_t *used);
/// The number of parameters the statement takes.
int rt_store_stmt_params(rt_store_stmt_t *st);
/// Bind parameter i (1-based). RT_STORE_OK or an error code.
int rt_store_stmt_bind(rt_store_stmt_t *st, int i, const rt_store_value_t *v);
/// Step: RT_STORE_ROW, RT_STORE_DONE or an error code.
int rt_store_stmt_step(rt_store_stmt_t *st);
/// Columns of the result, the name of column c (0-based) and its value in the current row (text
/// and blobs both as bytes in s/n).
int rt_store_stmt_columns(rt_store_stmt_t *st);
const char *rt_store_stmt_name(rt_store_stmt_t *st, int c);
void rt_store_stmt_value(rt_store_stmt_t *st, int c, rt_store_value_t *v);
/// Rewind for another step with the same or new bindings (bindings kept).
void rt_store_stmt_rewind(rt_store_stmt_t *st);
/// Rewind and clear the bindings: the statement is back in the cache's hands.
void rt_store_stmt_reset(rt_store_stmt_t *st);
/// 1 when the statement does not write.
int rt_store_stmt_readonly(rt_store_stmt_t *st);

/// Rows changed by the last INSERT, UPDATE or DELETE of the connection, and in all since it opened.
int64_t rt_store_changes(rt_store_t *s);
int64_t rt_store_total_changes(rt_store_t *s);

#endif
