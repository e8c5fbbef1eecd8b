/*
** runtime/store_series_int.h - what store_series.c and store_migrate_series.c share (not for
** other files: the public interface is store_series.h).
*/
#ifndef RT_STORE_SERIES_INT_H
#define RT_STORE_SERIES_INT_H

#include "runtime/store_series.h"

#define RT_SERIES_SPECS 2
#define RT_SERIES_MAX_COLS 200

/* One view over the catalogue: candles over bars, trades over ticks. */
typedef struct {
  const char *view;            /* "candles": what readers and db.upsert name */
  const char *table;           /* "bars": rows keyed by (series, key) */
  const char *old;             /* "candles_v4": the table of the layout before, while it exists */
  const char *timeframe;       /* NULL: a column of the view; else the catalogue's timeframe */
  const char *key;             /* the key column after the series: "ts", "trade_id" */
  int key_is_text;
  const char *const *cols;     /* the value columns after the key, in the view's order */
  int ncols;
} rt_series_spec_t;

extern const rt_series_spec_t rt_series_specs[RT_SERIES_SPECS];

struct rt_store_series_s {
  rt_store_t *store;
  int migrating[RT_SERIES_SPECS];   /* the spec's old table still exists */
  /* the catalogue cache: open addressing, power-of-two capacity */
  struct rt_series_slot_s *slots;
  size_t cap, used;
  char *key;                   /* scratch: the key of the triple being resolved */
  size_t key_len, key_cap;
  char *last;                  /* the last key resolved, and its id: consecutive rows repeat it */
  size_t last_len, last_cap;
  int64_t last_id;
  int have_last;
  /* the writer of the current db.upsert (rt_store_series_begin) */
  const rt_series_spec_t *spec;
  int ncol, col_source, col_instrument, col_tf, col_key;
  short role[RT_SERIES_MAX_COLS];   /* -1 source, -2 instrument, -3 timeframe, else the parameter */
  sqlite3_stmt *ins, *upd;     /* owned by the store's statement cache */
  /* the triple of the last row put in this upsert: the caller's strings live until it ends, so
  ** the same pointers are the same series (reset by each begin and every rollback) */
  const char *row_s[3];
  size_t row_n[3];
  int64_t row_id;
  int row_valid;
};

/* A bounded SQL text builder: ok() is false when the text did not fit. */
typedef struct {
  char text[4096];
  size_t len;
} rt_series_sql_t;
void rt_series_sql_add(rt_series_sql_t *b, const char *fmt, ...);
int rt_series_sql_ok(const rt_series_sql_t *b);

/* The store's series state (store.c). */
rt_store_series_t *rt_store_series_of(rt_store_t *s);

/* Free the catalogue cache of ss (not ss itself). */
void rt_series_cache_free(rt_store_series_t *ss);
/* FNV-1a over n bytes, from h. */
uint64_t rt_series_fnv(uint64_t h, const void *p, size_t n);
/* Register rt_checksum(...) (an order-independent checksum of rows) and rt_fail(message). */
int rt_series_functions(sqlite3 *db);
/* Bind a store value (text SQLITE_STATIC: it must outlive the step). */
void rt_series_bind(sqlite3_stmt *st, int i, const rt_store_value_t *v);
/* 1/0 whether table `name` exists, -1 on error. */
int rt_series_table_exists(rt_store_t *s, const char *name);
/* The id of a (source, instrument, timeframe), created when new. */
int rt_series_resolve(rt_store_t *s, const rt_store_value_t *v[3], int64_t *id);
/* Make the view of `sp` and its triggers the ones of the layout (migrating: with the old table). */
int rt_series_install_views(rt_store_t *s, const rt_series_spec_t *sp, int migrating);
/* The SQL of the view (which 0) or its insert/update/delete trigger (1..3). */
void rt_series_object_sql(const rt_series_spec_t *sp, int migrating, int which, rt_series_sql_t *b);

/* Move the old rows of series `triple` with keys in [lo, hi] to the new table as series `id`,
** verified (count and rt_checksum of the rows read back). *moved: the rows. Inside a transaction
** of its own (a savepoint when the caller has one). */
int rt_series_move(rt_store_t *s, const rt_series_spec_t *sp, const rt_store_value_t *triple[3],
                   const rt_store_value_t *lo, const rt_store_value_t *hi, int64_t id, int64_t *moved);
/* When the old table of `sp` is empty: drop it and install the final views, in one transaction.
** SQLITE_OK when done, SQLITE_DONE when rows are left, else an error. */
int rt_series_finish(rt_store_t *s, const rt_series_spec_t *sp);

#endif
