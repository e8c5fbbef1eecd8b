/*
** runtime/store_int.h - the store's connection struct, shared by store.c (open, close) and
** store_conn.c (statements, transactions, migrations); not for other files (store.h is public).
*/
#ifndef RT_STORE_INT_H
#define RT_STORE_INT_H

#include <stdint.h>

#include "runtime/store.h"

typedef struct rt_store_series_s rt_store_series_t;

#define STMT_CACHE 128

typedef struct {
  char *sql;                   /* owned; NULL = free slot */
  size_t len;
  size_t used_len;             /* bytes of sql the first statement took */
  uint32_t hash;
  sqlite3_stmt *stmt;          /* owned */
  uint64_t used;               /* LRU clock */
} cache_entry_t;

struct rt_store_s {
  sqlite3 *db;
  char *path;
  int depth;                   /* transaction nesting: 0 none, 1 BEGIN, >1 savepoints */
  uint64_t clock;
  cache_entry_t cache[STMT_CACHE];
  rt_store_series_t *series;   /* the series catalogue's cache and writer (store_series.c); owned */
  rt_store_tx_fn on_tx;        /* told when a transaction commits or rolls back (events.c), or NULL */
  void *on_tx_ud;
  void (*on_rollback)(void *ud);  /* told of every rollback, savepoints too (the series cache: store.c) */
  void *on_rollback_ud;
};

#endif
