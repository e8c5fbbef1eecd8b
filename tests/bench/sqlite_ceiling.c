/*
** tests/bench/sqlite_ceiling.c - the SQLite ceiling for the ingest benchmark: insert N candle rows
** into the runtime's own bars table (opened with rt_store_open, so the schema and pragmas are the
** daemon's; the series id is looked up once) with one prepared statement in one transaction.
** Prints "rows seconds rows_per_s".
**
**   sqlite_ceiling DB_PATH N [view]
**
** With `view`, the rows go through the `candles` view instead (its INSTEAD OF trigger catalogues
** the series and writes bars): what plain SQL writers get.
**
** Checkpoints follow candled's policy (runtime/store_checkpoint.c, the same 1000 pages): the writer never
** checkpoints inside its COMMIT, a commit that leaves the WAL past the threshold queues a PASSIVE
** checkpoint on libuv's thread pool. The clock stops when COMMIT returns, as candled's does when
** its last page is stored; the checkpoint then finishes off the clock before the store closes.
*/
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <uv.h>

#include "runtime/store_checkpoint.h"
#include "runtime/store.h"

int main(int argc, char **argv) {
  if (argc != 3 && !(argc == 4 && strcmp(argv[3], "view") == 0)) {
    fprintf(stderr, "usage: sqlite_ceiling DB_PATH N [view]\n");
    return 2;
  }
  char err[512];
  long n = atol(argv[2]);
  rt_store_t *s = rt_store_open(argv[1], 5000, err, sizeof err);
  if (!s) {
    fprintf(stderr, "sqlite_ceiling: %s\n", err);
    return 1;
  }
  uv_loop_t loop;
  uv_loop_init(&loop);
  rt_checkpoint_t *cp = rt_checkpoint_start(&loop, s, NULL, 1000);   /* as the daemon's main does */
  sqlite3 *db = rt_store_db(s);
  sqlite3_stmt *st;
  int view = argc == 4;
  const char *sql = view ? "INSERT INTO candles (source, instrument, timeframe, ts, open, high, low, close, volume, "
                           "quote_volume, trades) VALUES (?,?,?,?,?,?,?,?,?,?,?)"
                         : "INSERT INTO bars (series, ts, open, high, low, close, volume, quote_volume, trades) "
                           "VALUES (?1, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11)";
  if (!view && sqlite3_exec(db, "INSERT INTO series (source, instrument, timeframe) "
                                "VALUES ('binance_spot', 'BENCHUSDT', '1m')", NULL, NULL, NULL) != SQLITE_OK) {
    fprintf(stderr, "sqlite_ceiling: %s\n", sqlite3_errmsg(db));
    return 1;
  }
  sqlite3_int64 series = sqlite3_last_insert_rowid(db);
  if (sqlite3_prepare_v2(db, sql, -1, &st, NULL) != SQLITE_OK) {
    fprintf(stderr, "sqlite_ceiling: %s\n", sqlite3_errmsg(db));
    return 1;
  }
  uint64_t t0 = uv_hrtime();
  sqlite3_exec(db, "BEGIN", NULL, NULL, NULL);
  for (long i = 0; i < n; i++) {
    double p = 30000 + (double)(i % 1000);
    if (view) {
      sqlite3_bind_text(st, 1, "binance_spot", -1, SQLITE_STATIC);
      sqlite3_bind_text(st, 2, "BENCHUSDT", -1, SQLITE_STATIC);
      sqlite3_bind_text(st, 3, "1m", -1, SQLITE_STATIC);
    } else {
      sqlite3_bind_int64(st, 1, series);
    }
    sqlite3_bind_int64(st, 4, 1600000000 + i * 60);
    sqlite3_bind_double(st, 5, p);
    sqlite3_bind_double(st, 6, p + 5);
    sqlite3_bind_double(st, 7, p - 5);
    sqlite3_bind_double(st, 8, p + 1);
    sqlite3_bind_double(st, 9, 12.345678);
    sqlite3_bind_double(st, 10, 370000.5);
    sqlite3_bind_int(st, 11, 600);
    if (sqlite3_step(st) != SQLITE_DONE) {
      fprintf(stderr, "sqlite_ceiling: %s\n", sqlite3_errmsg(db));
      return 1;
    }
    sqlite3_reset(st);
  }
  sqlite3_exec(db, "COMMIT", NULL, NULL, NULL);
  double secs = (double)(uv_hrtime() - t0) / 1e9;
  uv_run(&loop, UV_RUN_DEFAULT);               /* the queued checkpoint, off the clock */
  rt_checkpoint_stop(cp);
  uv_run(&loop, UV_RUN_DEFAULT);
  uv_loop_close(&loop);
  sqlite3_finalize(st);
  rt_store_close(s);
  printf("%ld %.4f %.0f\n", n, secs, n / secs);
  return 0;
}
