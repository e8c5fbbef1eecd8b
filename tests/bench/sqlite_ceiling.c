/*
** tests/bench/sqlite_ceiling.c - the SQLite ceiling for the ingest benchmark: insert N candle rows
** into the runtime's own candles table (opened with rt_store_open, so the schema and pragmas are
** the daemon's) with one prepared statement in one transaction. Prints "rows seconds rows_per_s".
**
**   sqlite_ceiling DB_PATH N
*/
#include <stdio.h>
#include <stdlib.h>
#include <uv.h>

#include "runtime/store.h"

int main(int argc, char **argv) {
  if (argc != 3) {
    fprintf(stderr, "usage: sqlite_ceiling DB_PATH N\n");
    return 2;
  }
  char err[512];
  long n = atol(argv[2]);
  rt_store_t *s = rt_store_open(argv[1], 5000, err, sizeof err);
  if (!s) {
    fprintf(stderr, "sqlite_ceiling: %s\n", err);
    return 1;
  }
  sqlite3 *db = rt_store_db(s);
  sqlite3_stmt *st;
  const char *sql = "INSERT INTO candles (source, instrument, timeframe, ts, open, high, low, close, volume, "
                    "quote_volume, trades) VALUES (?,?,?,?,?,?,?,?,?,?,?)";
  if (sqlite3_prepare_v2(db, sql, -1, &st, NULL) != SQLITE_OK) {
    fprintf(stderr, "sqlite_ceiling: %s\n", sqlite3_errmsg(db));
    return 1;
  }
  uint64_t t0 = uv_hrtime();
  sqlite3_exec(db, "BEGIN", NULL, NULL, NULL);
  for (long i = 0; i < n; i++) {
    double p = 30000 + (double)(i % 1000);
    sqlite3_bind_text(st, 1, "binance_spot", -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 2, "BENCHUSDT", -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 3, "1m", -1, SQLITE_STATIC);
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
  sqlite3_finalize(st);
  rt_store_close(s);
  printf("%ld %.4f %.0f\n", n, secs, n / secs);
  return 0;
}
