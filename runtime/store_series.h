/*
** runtime/store_series.h - the market-data layout: a series catalogue and rows keyed by series id.
**
**   series (id, source, instrument, timeframe)           one row per candle series; a trade stream
**                                                         is the series with timeframe 'trades'
**   bars   (series, ts, open, ..., trades)                candles, WITHOUT ROWID, key (series, ts)
**   ticks  (series, trade_id, ts, price, ...)             trades, WITHOUT ROWID, key (series, trade_id)
**
** The views `candles` and `trades` keep the columns readers always had (INSTEAD OF triggers take
** INSERT, UPDATE and DELETE through them). db.upsert into either goes through the writer below:
** the series id is resolved through a cache and the row written to bars/ticks directly.
**
** Databases created before this layout keep their rows in candles_v4/trades_v4 until
** rt_store_series_migrate has moved all of them; meanwhile the views show both, and a writer
** moves the old row of any key it writes first, so counts and values stay exact.
**
** Loop thread only. The writer and the cache are owned by the store (store.c calls _open/_close).
*/
#ifndef RT_STORE_SERIES_H
#define RT_STORE_SERIES_H

#include <stddef.h>
#include <stdint.h>

#include "runtime/store.h"
#include "runtime/store_query.h"   /* rt_store_value_t: one value of a row handed to the writer */

typedef struct rt_store_series_s rt_store_series_t;


/// Set up the layout on an open, migrated store: register rt_checksum(), finish an old table that
/// is already empty, install the views. NULL + err on failure. Freed by _close.
rt_store_series_t *rt_store_series_open(rt_store_t *s, char *err, size_t errlen);
void rt_store_series_close(rt_store_series_t *ss);
/// Forget cached series ids (a rollback may have removed catalogue rows created in it).
void rt_store_series_forget(rt_store_series_t *ss);

/// 1 when db.upsert into `table` goes through the series writer (candles, trades).
int rt_store_series_table(const char *table);
/// Prepare the store's writer for an upsert of `ncol` columns into `table`. `keys` must be the
/// view's key. SQLITE_OK; SQLITE_MISUSE with a message in err for a column or key the view does
/// not have; another code when SQLite fails (message from rt_store_errmsg).
int rt_store_series_begin(rt_store_t *s, const char *table, const char *const *cols, int ncol,
                          const char *const *keys, int nkeys, int update, char *err, size_t errlen);
/// 1 when column i (0-based) of the prepared upsert names the series (stored as text).
int rt_store_series_is_text(rt_store_t *s, int i);
/// Upsert one row (values in column order) inside the caller's transaction. *result: 1 inserted,
/// 2 updated, 0 neither (an identical row). SQLITE_OK or an error code (rt_store_errmsg).
int rt_store_series_put(rt_store_t *s, const rt_store_value_t *vals, int *result);

/// Move up to `max_rows` rows of the old layout into the catalogue tables, one verified batch
/// (row count and checksum of the values read back equal to the old rows', in the same
/// transaction), and drop an old table once it is empty. Returns 1 while rows remain, 0 when the
/// migration is complete, or minus the SQLite code with err on failure (the batch is rolled back;
/// -SQLITE_BUSY: another process writes, try later). `*moved` receives the rows moved. Safe to call
/// again after a kill: every batch commits with its deletes.
int rt_store_series_migrate(rt_store_t *s, int max_rows, int64_t *moved, char *err, size_t errlen);
/// 1 while an old table is left to migrate (as far as this connection knows), else 0.
int rt_store_series_migrating(rt_store_t *s);
/// Rows still in the old layout (0 when migrated), or -1 on error. Walks the old tables.
int64_t rt_store_series_pending(rt_store_t *s);

#endif
