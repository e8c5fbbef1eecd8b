/*
** tests/unit/test_store_series.c - runtime/store_series.c and store_migrate_series.c: the series
** catalogue writer, the views' query plans, and the migration of a database of the layout before
** (candles/trades keyed by text) on real files.
*/
#include "runtime/store.h"
#include "runtime/store_series.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "check.h"

/* The core migration steps of the series layout (catalogue and bars; bookkeeping). */
#define SERIES_STEPS "5, 6"
#define SERIES_LAST 6

static char tmpdir[256];

static const char *tmp_path(const char *name) {
  static char buf[512];
  snprintf(buf, sizeof buf, "%s/%s", tmpdir, name);
  return buf;
}

static rt_store_t *open_ok(const char *path) {
  char err[512] = "";
  rt_store_t *s = rt_store_open(path, 1000, err, sizeof err);
  if (!CHECK(s != NULL)) fprintf(stderr, "  rt_store_open(%s): %s\n", path, err);
  return s;
}

static long long query_int(sqlite3 *db, const char *sql) {
  sqlite3_stmt *st;
  long long v = -999;
  if (sqlite3_prepare_v2(db, sql, -1, &st, NULL) != SQLITE_OK) {
    fprintf(stderr, "  %s: %s\n", sql, sqlite3_errmsg(db));
    return -998;
  }
  if (sqlite3_step(st) == SQLITE_ROW) v = sqlite3_column_int64(st, 0);
  sqlite3_finalize(st);
  return v;
}

/* Every row of `sql`, serialized exactly (type, then integer, REAL bits or bytes): two snapshots
** are equal when the rows and values are identical. malloc'd; *len its size. */
static char *snapshot(sqlite3 *db, const char *sql, size_t *len) {
  sqlite3_stmt *st;
  size_t cap = 4096, n = 0;
  char *out = malloc(cap);
  if (sqlite3_prepare_v2(db, sql, -1, &st, NULL) != SQLITE_OK) {
    fprintf(stderr, "  %s: %s\n", sql, sqlite3_errmsg(db));
    free(out);
    return NULL;
  }
  while (sqlite3_step(st) == SQLITE_ROW) {
    for (int c = 0; c < sqlite3_column_count(st); c++) {
      int t = sqlite3_column_type(st, c);
      int64_t i = 0;
      double d = 0;
      const void *p = NULL;
      size_t m = 8;
      if (t == SQLITE_INTEGER) i = sqlite3_column_int64(st, c), p = &i;
      else if (t == SQLITE_FLOAT) d = sqlite3_column_double(st, c), p = &d;
      else if (t == SQLITE_TEXT) p = sqlite3_column_text(st, c), m = (size_t)sqlite3_column_bytes(st, c);
      else m = 0;
      while (n + m + 16 > cap) out = realloc(out, cap *= 2);
      out[n++] = (char)t;
      memcpy(out + n, &m, sizeof m);
      n += sizeof m;
      if (m) memcpy(out + n, p, m);
      n += m;
    }
  }
  sqlite3_finalize(st);
  *len = n;
  return out;
}

static int same_snapshot(const char *a, size_t al, const char *b, size_t bl) {
  return a && b && al == bl && memcmp(a, b, al) == 0;
}

/* The rows of `sql` now are exactly the snapshot `want`. */
static int same_as(sqlite3 *db, const char *sql, const char *want, size_t wl) {
  size_t l;
  char *now = snapshot(db, sql, &l);
  int same = same_snapshot(now, l, want, wl);
  free(now);
  return same;
}

/* The EXPLAIN QUERY PLAN details of `sql`, joined with " | ". */
static void plan(sqlite3 *db, const char *sql, char *out, size_t n) {
  char q[1024];
  sqlite3_stmt *st;
  snprintf(q, sizeof q, "EXPLAIN QUERY PLAN %s", sql);
  out[0] = 0;
  if (sqlite3_prepare_v2(db, q, -1, &st, NULL) != SQLITE_OK) {
    snprintf(out, n, "error: %s", sqlite3_errmsg(db));
    return;
  }
  while (sqlite3_step(st) == SQLITE_ROW) {
    size_t at = strlen(out);
    snprintf(out + at, n - at, "%s%s", at ? " | " : "", (const char *)sqlite3_column_text(st, 3));
  }
  sqlite3_finalize(st);
}

static rt_store_value_t T(const char *s) { return (rt_store_value_t){SQLITE_TEXT, 0, 0, s, strlen(s)}; }
static rt_store_value_t I(int64_t i) { return (rt_store_value_t){SQLITE_INTEGER, i, 0, NULL, 0}; }
static rt_store_value_t F(double d) { return (rt_store_value_t){SQLITE_FLOAT, 0, d, NULL, 0}; }
static rt_store_value_t N(void) { return (rt_store_value_t){SQLITE_NULL, 0, 0, NULL, 0}; }

static const char *const candle_cols[] = {"source", "instrument", "timeframe", "ts", "open", "high", "low", "close",
                                          "volume", "quote_volume", "trades"};
static const char *const candle_keys[] = {"source", "instrument", "timeframe", "ts"};
static const char *const trade_cols[] = {"source", "instrument", "trade_id", "ts", "price", "amount",
                                         "volume_usd", "side"};
static const char *const trade_keys[] = {"source", "instrument", "trade_id"};

/* One candle row through the writer, in its own transaction. Returns the result (0/1/2) or -rc. */
static int put_candle(rt_store_t *s, const char *src, const char *inst, const char *tf, int64_t ts, double close) {
  char err[256];
  int rc = rt_store_series_begin(s, "candles", candle_cols, 11, candle_keys, 4, 1, err, sizeof err);
  if (rc != SQLITE_OK) return -rc;
  rt_store_value_t v[11] = {T(src), T(inst), T(tf), I(ts), F(1.5), F(2.25), F(0.5), F(close), F(10), N(), I(3)};
  int result = -1;
  rt_store_begin(s);
  rc = rt_store_series_put(s, v, &result);
  if (rc == SQLITE_OK) rt_store_commit(s);
  else rt_store_rollback(s);
  return rc == SQLITE_OK ? result : -rc;
}

/* ---- a new database ------------------------------------------------------------------------- */

static void test_writer_counts(void) {
  rt_store_t *s = open_ok(tmp_path("writer.db"));
  if (!s) return;
  sqlite3 *db = rt_store_db(s);
  CHECK_EQ_INT(put_candle(s, "binance_spot", "BTCUSDT", "1m", 60, 1.0), 1);
  CHECK_EQ_INT(put_candle(s, "binance_spot", "BTCUSDT", "1m", 60, 1.0), 0);   /* identical: neither */
  CHECK_EQ_INT(put_candle(s, "binance_spot", "BTCUSDT", "1m", 60, 1.25), 2);
  CHECK_EQ_INT(put_candle(s, "binance_spot", "BTCUSDT", "1m", 120, 1.0), 1);
  CHECK_EQ_INT(put_candle(s, "binance_spot", "BTCUSDT", "5m", 0, 1.0), 1);
  CHECK_EQ_INT(query_int(db, "SELECT count(*) FROM series"), 2);
  CHECK_EQ_INT(query_int(db, "SELECT count(*) FROM candles WHERE timeframe = '1m'"), 2);
  CHECK_EQ_INT(query_int(db, "SELECT count(*) FROM candles WHERE close = 1.25 AND quote_volume IS NULL"), 1);

  /* update=0 only inserts; a subset of columns leaves the others alone on update */
  char err[256];
  static const char *const few[] = {"ts", "instrument", "close", "source", "timeframe"};
  CHECK_EQ_INT(rt_store_series_begin(s, "candles", few, 5, candle_keys, 4, 1, err, sizeof err), SQLITE_OK);
  CHECK(rt_store_series_is_text(s, 1) && !rt_store_series_is_text(s, 0) && !rt_store_series_is_text(s, 2));
  rt_store_value_t v[5] = {I(60), T("BTCUSDT"), F(9.0), T("binance_spot"), T("1m")};
  int result = -1;
  rt_store_begin(s);
  CHECK_EQ_INT(rt_store_series_put(s, v, &result), SQLITE_OK);
  rt_store_commit(s);
  CHECK_EQ_INT(result, 2);
  CHECK_EQ_INT(query_int(db, "SELECT count(*) FROM candles WHERE ts = 60 AND close = 9.0 AND open = 1.5 AND trades = 3"), 1);

  /* misuse: keys other than the view's key, a column the view does not have */
  static const char *const bad_keys[] = {"source", "instrument", "ts"};
  CHECK_EQ_INT(rt_store_series_begin(s, "candles", candle_cols, 11, bad_keys, 3, 1, err, sizeof err), SQLITE_MISUSE);
  CHECK(strstr(err, "keys of candles must be source, instrument, timeframe, ts") != NULL);
  static const char *const twice[] = {"source", "source", "timeframe", "ts"};
  CHECK_EQ_INT(rt_store_series_begin(s, "candles", candle_cols, 11, twice, 4, 1, err, sizeof err), SQLITE_MISUSE);
  static const char *const no_tf[] = {"source", "instrument", "ts", "close"};
  CHECK_EQ_INT(rt_store_series_begin(s, "candles", no_tf, 4, candle_keys, 4, 1, err, sizeof err), SQLITE_MISUSE);
  CHECK(strstr(err, "the columns of candles must include its key") != NULL);
  CHECK_EQ_INT(rt_store_series_put(s, v, &result), SQLITE_MISUSE);   /* no writer after a failed begin */
  static const char *const bad_cols[] = {"source", "instrument", "timeframe", "ts", "colour"};
  CHECK_EQ_INT(rt_store_series_begin(s, "candles", bad_cols, 5, candle_keys, 4, 1, err, sizeof err), SQLITE_MISUSE);
  CHECK(strstr(err, "has no column named colour") != NULL);

  /* a NULL part of the series fails like the NOT NULL column it is, and stores nothing */
  CHECK_EQ_INT(rt_store_series_begin(s, "candles", candle_cols, 11, candle_keys, 4, 1, err, sizeof err), SQLITE_OK);
  rt_store_value_t nul[11] = {T("x"), N(), T("1m"), I(0), N(), N(), N(), N(), N(), N(), N()};
  rt_store_begin(s);
  CHECK_EQ_INT(rt_store_series_put(s, nul, &result) & 0xff, SQLITE_CONSTRAINT);
  CHECK(strstr(rt_store_errmsg(s), "NOT NULL constraint failed: series.instrument") != NULL);
  rt_store_rollback(s);

  /* trades: keyed by trade id; the stream is the series with timeframe 'trades' */
  CHECK_EQ_INT(rt_store_series_begin(s, "trades", trade_cols, 8, trade_keys, 3, 0, err, sizeof err), SQLITE_OK);
  rt_store_value_t t[8] = {T("geckoterminal"), T("solana_pool"), T("0xabc_1"), I(100), F(1.5), F(2), F(3), T("buy")};
  rt_store_begin(s);
  CHECK_EQ_INT(rt_store_series_put(s, t, &result), SQLITE_OK);
  CHECK_EQ_INT(result, 1);
  t[4] = F(7.0);
  CHECK_EQ_INT(rt_store_series_put(s, t, &result), SQLITE_OK);
  CHECK_EQ_INT(result, 0);                     /* update=0: the stored trade stays */
  rt_store_commit(s);
  CHECK_EQ_INT(query_int(db, "SELECT count(*) FROM trades WHERE price = 1.5 AND side = 'buy'"), 1);
  CHECK_EQ_INT(query_int(db, "SELECT count(*) FROM series WHERE timeframe = 'trades'"), 1);
  CHECK_EQ_INT(query_int(db, "SELECT count(*) FROM candles"), 3);   /* the trade stream is no candle series */
  rt_store_close(s);
}

/* A rollback takes back the catalogue rows made in it: the cache must not keep their ids. */
static void test_rollback_forgets_ids(void) {
  rt_store_t *s = open_ok(tmp_path("rollback.db"));
  if (!s) return;
  char err[256];
  int result;
  rt_store_value_t v[11] = {T("s"), T("new"), T("1m"), I(60), F(1), F(1), F(1), F(1), F(1), N(), N()};
  CHECK_EQ_INT(rt_store_series_begin(s, "candles", candle_cols, 11, candle_keys, 4, 1, err, sizeof err), SQLITE_OK);
  rt_store_begin(s);
  rt_store_begin(s);                           /* a savepoint, as db.tx inside db.tx */
  CHECK_EQ_INT(rt_store_series_put(s, v, &result), SQLITE_OK);
  rt_store_rollback(s);
  CHECK_EQ_INT(rt_store_series_put(s, v, &result), SQLITE_OK);
  CHECK_EQ_INT(result, 1);
  rt_store_rollback(s);                        /* the whole transaction */
  CHECK_EQ_INT(put_candle(s, "s", "new", "1m", 60, 1), 1);
  CHECK_EQ_INT(query_int(rt_store_db(s), "SELECT count(*) FROM bars b JOIN series s ON s.id = b.series"), 1);
  CHECK_EQ_INT(query_int(rt_store_db(s), "SELECT count(*) FROM bars"), 1);
  rt_store_close(s);
}

/* Readers' range query on one series: the catalogue's unique index, then the bars' key. */
static void test_query_plans(void) {
  rt_store_t *s = open_ok(tmp_path("plan.db"));
  if (!s) return;
  char p[1024];
  plan(rt_store_db(s), "SELECT * FROM candles WHERE source = ? AND instrument = ? AND timeframe = ? "
                       "AND ts BETWEEN ? AND ?", p, sizeof p);
  CHECK(strstr(p, "SEARCH s USING COVERING INDEX sqlite_autoindex_series_1 (source=? AND instrument=? AND timeframe=?)"));
  CHECK(strstr(p, "SEARCH b USING PRIMARY KEY (series=? AND ts>? AND ts<?)"));
  if (!CHECK(!strstr(p, "SCAN"))) fprintf(stderr, "  plan: %s\n", p);
  plan(rt_store_db(s), "SELECT max(ts) FROM candles WHERE source = ? AND instrument = ? AND timeframe = ?", p, sizeof p);
  CHECK(strstr(p, "SEARCH b USING PRIMARY KEY (series=?)"));
  if (!CHECK(!strstr(p, "SCAN"))) fprintf(stderr, "  plan: %s\n", p);
  plan(rt_store_db(s), "SELECT * FROM trades WHERE source = ? AND instrument = ? AND ts BETWEEN ? AND ?", p, sizeof p);
  CHECK(strstr(p, "SEARCH b USING INDEX ticks_by_time (series=? AND ts>? AND ts<?)"));
  if (!CHECK(!strstr(p, "SCAN"))) fprintf(stderr, "  plan: %s\n", p);
  rt_store_close(s);
}

/* ---- a database of the layout before -------------------------------------------------------- */

/* Turn a new database back into the layout before the catalogue (core version 4) and fill it:
** a Binance series (every column), GeckoTerminal series (no quote volume or trade count, some
** NULL volumes) and GeckoTerminal trades. */
static void make_v4(const char *path, int bars_per_series) {
  rt_store_t *s = open_ok(path);
  if (!s) return;
  rt_store_close(s);
  sqlite3 *db;
  sqlite3_open(path, &db);
  int rc = sqlite3_exec(db,
    "DROP VIEW candles; DROP VIEW trades;"
    "DROP TABLE bars; DROP TABLE ticks; DROP TABLE series;"
    "DELETE FROM migrations WHERE name = 'core' AND version IN (" SERIES_STEPS ");"
    "CREATE TABLE backfill ("
    "  source TEXT NOT NULL, instrument TEXT NOT NULL, timeframe TEXT NOT NULL,"
    "  target INTEGER NOT NULL, before INTEGER, complete INTEGER NOT NULL DEFAULT 0,"
    "  first_ts INTEGER, pages INTEGER NOT NULL DEFAULT 0, rows INTEGER NOT NULL DEFAULT 0,"
    "  gaps_checked INTEGER, updated REAL,"
    "  PRIMARY KEY (source, instrument, timeframe));"
    "CREATE TABLE empty_intervals ("
    "  source TEXT NOT NULL, instrument TEXT NOT NULL, timeframe TEXT NOT NULL,"
    "  start INTEGER NOT NULL, stop INTEGER NOT NULL,"
    "  PRIMARY KEY (source, instrument, timeframe, start)) WITHOUT ROWID;"
    "INSERT INTO backfill VALUES ('geckoterminal', 'solana_7qbRF6YsyGuLUVs6Y1q64bdVrfe4ZcUUz1JRdoVNUJnm', '1m',"
    "  1699990000, 1700000000, 0, NULL, 3, 2500, 1700001000, 1700002000.5),"
    "  ('geckoterminal', 'solana_nocandles', '5m', 1, NULL, 1, 5, 0, 0, NULL, NULL);"
    "INSERT INTO empty_intervals VALUES ('geckoterminal', 'solana_7qbRF6YsyGuLUVs6Y1q64bdVrfe4ZcUUz1JRdoVNUJnm', '1m', 60, 120),"
    "  ('geckoterminal', 'solana_7qbRF6YsyGuLUVs6Y1q64bdVrfe4ZcUUz1JRdoVNUJnm', '1m', 600, 600),"
    "  ('x', 'y', '1h', 3600, 7200);"
    "CREATE VIEW my_btc AS SELECT ts, close FROM candles WHERE instrument = 'BTCUSDT';"   /* a user's own */
    "CREATE TABLE candles ("
    "  source TEXT NOT NULL, instrument TEXT NOT NULL, timeframe TEXT NOT NULL, ts INTEGER NOT NULL,"
    "  open REAL, high REAL, low REAL, close REAL, volume REAL,"
    "  quote_volume REAL, trades INTEGER,"
    "  PRIMARY KEY (source, instrument, timeframe, ts)) WITHOUT ROWID;"
    "CREATE TABLE trades ("
    "  source TEXT NOT NULL, instrument TEXT NOT NULL, trade_id TEXT NOT NULL, ts INTEGER NOT NULL,"
    "  price REAL, amount REAL, volume_usd REAL, side TEXT,"
    "  PRIMARY KEY (source, instrument, trade_id));"
    "CREATE INDEX trades_by_time ON trades (source, instrument, ts);", NULL, NULL, NULL);
  CHECK_EQ_INT(rc, SQLITE_OK);
  sqlite3_stmt *c, *t;
  sqlite3_prepare_v2(db, "INSERT INTO candles VALUES (?,?,?,?,?,?,?,?,?,?,?)", -1, &c, NULL);
  sqlite3_prepare_v2(db, "INSERT INTO trades VALUES (?,?,?,?,?,?,?,?)", -1, &t, NULL);
  sqlite3_exec(db, "BEGIN", NULL, NULL, NULL);
  static const char *const series[][3] = {
    {"binance_spot", "BTCUSDT", "1m"}, {"binance_spot", "ETHUSDT", "1h"},
    {"geckoterminal", "solana_7qbRF6YsyGuLUVs6Y1q64bdVrfe4ZcUUz1JRdoVNUJnm", "1m"},
    {"geckoterminal", "solana_7qbRF6YsyGuLUVs6Y1q64bdVrfe4ZcUUz1JRdoVNUJnm", "1d"},
    {"geckoterminal", "solana_GpMZbSM2GgvTKHJirzeGfMFoaZ8UR2X7F4v8vHTvxFbL", "5m"}};
  uint64_t x = 88172645463325252ull;
  for (int k = 0; k < 5; k++) {
    int gecko = series[k][0][0] == 'g';
    for (int i = 0; i < bars_per_series; i++) {
      x ^= x << 13, x ^= x >> 7, x ^= x << 17;
      double p = (double)(x % 1000000) / 997.0 + 0.000123456789;
      sqlite3_reset(c);
      for (int j = 0; j < 3; j++) sqlite3_bind_text(c, j + 1, series[k][j], -1, SQLITE_STATIC);
      sqlite3_bind_int64(c, 4, 1700000000 + (int64_t)i * 60);
      sqlite3_bind_double(c, 5, p);
      sqlite3_bind_double(c, 6, p * 1.01);
      sqlite3_bind_double(c, 7, p * 0.99);
      sqlite3_bind_double(c, 8, (double)(int64_t)p);             /* an integral REAL */
      if (gecko && i % 7 == 3) sqlite3_bind_null(c, 9);
      else sqlite3_bind_double(c, 9, p * 123.456);
      if (gecko) sqlite3_bind_null(c, 10), sqlite3_bind_null(c, 11);
      else sqlite3_bind_double(c, 10, p * 1e6 / 3), sqlite3_bind_int(c, 11, (int)(x % 5000));
      CHECK_EQ_INT(sqlite3_step(c), SQLITE_DONE);
    }
  }
  for (int k = 2; k < 5; k += 2)
    for (int i = 0; i < bars_per_series; i++) {
      char id[96];
      snprintf(id, sizeof id, "solana_%016llx_%d", (unsigned long long)(x ^= x << 13, x ^= x >> 7, x ^= x << 17), i % 3);
      sqlite3_reset(t);
      sqlite3_bind_text(t, 1, series[k][0], -1, SQLITE_STATIC);
      sqlite3_bind_text(t, 2, series[k][1], -1, SQLITE_STATIC);
      sqlite3_bind_text(t, 3, id, -1, SQLITE_TRANSIENT);
      sqlite3_bind_int64(t, 4, 1700000000 + i * 13);
      sqlite3_bind_double(t, 5, (double)(x % 100000) / 7.0);
      sqlite3_bind_double(t, 6, (double)(x % 777) / 3.0);
      sqlite3_bind_double(t, 7, 100.0 + (double)(x % 100000) / 11.0);
      if (i % 5 == 0) sqlite3_bind_null(t, 8);
      else sqlite3_bind_text(t, 8, i % 2 ? "buy" : "sell", -1, SQLITE_STATIC);
      CHECK_EQ_INT(sqlite3_step(t), SQLITE_DONE);
    }
  sqlite3_exec(db, "COMMIT", NULL, NULL, NULL);
  sqlite3_finalize(c);
  sqlite3_finalize(t);
  sqlite3_close(db);
}

static const char CANDLES[] = "SELECT * FROM candles ORDER BY source, instrument, timeframe, ts";
static const char TRADES[] = "SELECT * FROM trades ORDER BY source, instrument, trade_id";
static const char BOOKKEEPING[] = "SELECT b.*, e.* FROM backfill b FULL JOIN empty_intervals e USING (source, instrument, timeframe) "
                                  "ORDER BY source, instrument, timeframe, e.start";

/* Run batches until done (or `max` batches). Returns the last result. */
static int migrate(rt_store_t *s, int batch, int max, int64_t *total) {
  char err[512] = "";
  int r = 1;
  for (int i = 0; r == 1 && i < max; i++) {
    int64_t moved = 0;
    r = rt_store_series_migrate(s, batch, &moved, err, sizeof err);
    *total += moved;
  }
  if (r < 0) fprintf(stderr, "  migrate: %s\n", err);
  return r;
}

static void test_migrate_old_database(void) {
  const char *path = tmp_path("v4.db");
  make_v4(path, 40);
  sqlite3 *raw;
  sqlite3_open(path, &raw);
  size_t cl, tl;
  size_t kl;
  char *cand = snapshot(raw, CANDLES, &cl), *trad = snapshot(raw, TRADES, &tl);
  char *keep = snapshot(raw, BOOKKEEPING, &kl);
  long long ncand = query_int(raw, "SELECT count(*) FROM candles"), ntrad = query_int(raw, "SELECT count(*) FROM trades");
  sqlite3_close(raw);
  CHECK_EQ_INT(ncand, 200);
  CHECK_EQ_INT(ntrad, 80);

  rt_store_t *s = open_ok(path);
  if (!s) return;
  sqlite3 *db = rt_store_db(s);
  CHECK_EQ_INT(rt_store_migration_version(s, "core"), SERIES_LAST);
  CHECK(rt_store_series_migrating(s));
  /* cursors and empty ranges belong to scripts/lib/series.lua (db.migrate "series", which moves
  ** these tables: tests/e2e/migration_test.py): the store leaves them as they are */
  CHECK(same_as(db, BOOKKEEPING, keep, kl));
  free(keep);
  CHECK_EQ_INT(query_int(db, "SELECT count(*) FROM sqlite_master WHERE type = 'table' AND name IN ('backfill', 'empty_intervals')"), 2);
  CHECK_EQ_INT(query_int(db, "SELECT count(*) FROM sqlite_master WHERE name IN ('series_backfill', 'series_empty')"), 0);
  CHECK_EQ_INT(query_int(db, "SELECT count(*) FROM my_btc"), 40);
  CHECK_EQ_INT(rt_store_series_pending(s), 280);
  /* before any batch, the views show every old row */
  CHECK(same_as(db, CANDLES, cand, cl));
  CHECK(same_as(db, TRADES, trad, tl));
  char p[1024];
  plan(db, "SELECT * FROM candles WHERE source = ? AND instrument = ? AND timeframe = ? AND ts BETWEEN ? AND ?", p, sizeof p);
  CHECK(strstr(p, "SEARCH b USING PRIMARY KEY (series=? AND ts>? AND ts<?)"));
  CHECK(strstr(p, "SEARCH candles_v4 USING PRIMARY KEY (source=? AND instrument=? AND timeframe=? AND ts>? AND ts<?)"));
  if (!CHECK(!strstr(p, "SCAN"))) fprintf(stderr, "  plan: %s\n", p);

  /* a writer meanwhile: an identical old row counts as neither (and moves), a changed one as updated */
  CHECK_EQ_INT(put_candle(s, "zz", "new", "1m", 0, 1), 1);
  static const char one[] = "SELECT * FROM candles WHERE source = 'binance_spot' AND instrument = 'ETHUSDT' AND ts = 1700000600";
  size_t ol;
  char *orig = snapshot(db, one, &ol);
  char err[256];
  CHECK_EQ_INT(rt_store_series_begin(s, "candles", candle_cols, 11, candle_keys, 4, 1, err, sizeof err), SQLITE_OK);
  sqlite3_stmt *st;
  sqlite3_prepare_v2(db, one, -1, &st, NULL);
  CHECK_EQ_INT(sqlite3_step(st), SQLITE_ROW);
  rt_store_value_t v[11];
  for (int i = 0; i < 11; i++) {
    int ty = sqlite3_column_type(st, i);
    if (ty == SQLITE_TEXT) v[i] = T(strdup((const char *)sqlite3_column_text(st, i)));
    else if (ty == SQLITE_INTEGER) v[i] = I(sqlite3_column_int64(st, i));
    else if (ty == SQLITE_FLOAT) v[i] = F(sqlite3_column_double(st, i));
    else v[i] = N();
  }
  sqlite3_finalize(st);
  int result = -1;
  rt_store_begin(s);
  CHECK_EQ_INT(rt_store_series_put(s, v, &result), SQLITE_OK);
  CHECK_EQ_INT(result, 0);
  double close = v[7].d;
  v[7] = F(close + 1);
  CHECK_EQ_INT(rt_store_series_put(s, v, &result), SQLITE_OK);
  CHECK_EQ_INT(result, 2);
  v[7] = F(close);
  CHECK_EQ_INT(rt_store_series_put(s, v, &result), SQLITE_OK);
  CHECK_EQ_INT(result, 2);
  rt_store_commit(s);
  for (int i = 0; i < 3; i++) free((char *)v[i].s);
  CHECK(same_as(db, one, orig, ol));
  free(orig);
  CHECK_EQ_INT(query_int(db, "SELECT count(*) FROM candles_v4"), 199);    /* the written key moved */
  CHECK_EQ_INT(query_int(db, "DELETE FROM candles WHERE source = 'zz'"), -999);
  CHECK_EQ_INT(query_int(db, "SELECT count(*) FROM candles WHERE source = 'zz'"), 0);

  /* a few batches, then the process "dies" between batches */
  int64_t total = 0;
  CHECK_EQ_INT(migrate(s, 7, 5, &total), 1);
  CHECK_EQ_INT(total, 35);
  rt_store_close(s);

  s = open_ok(path);                           /* the next start resumes */
  if (!s) return;
  db = rt_store_db(s);
  CHECK(rt_store_series_migrating(s));
  CHECK_EQ_INT(rt_store_series_pending(s), 280 - 35 - 1);
  CHECK(same_as(db, CANDLES, cand, cl));
  CHECK_EQ_INT(migrate(s, 7, 1000, &total), 0);
  CHECK_EQ_INT(total, 280 - 1);
  CHECK(!rt_store_series_migrating(s));
  CHECK_EQ_INT(query_int(db, "SELECT count(*) FROM sqlite_master WHERE name IN ('candles_v4', 'trades_v4', 'trades_by_time')"), 0);
  CHECK_EQ_INT(query_int(db, "SELECT count(*) FROM sqlite_master WHERE sql LIKE '%UNION%' OR sql LIKE '%_v4%'"), 0);
  CHECK(same_as(db, CANDLES, cand, cl));
  CHECK(same_as(db, TRADES, trad, tl));
  /* the candle series, the trade streams and zz (stays catalogued); the bookkeeping's series are
  ** catalogued by scripts/lib/series.lua when it moves the bookkeeping */
  CHECK_EQ_INT(query_int(db, "SELECT count(*) FROM series"), 5 + 2 + 1);
  CHECK_EQ_INT(rt_store_series_pending(s), 0);
  CHECK_EQ_INT(query_int(db, "SELECT count(*) FROM my_btc"), 40);
  rt_store_close(s);
  s = open_ok(path);                           /* a later start has nothing to do */
  if (s) CHECK(!rt_store_series_migrating(s));
  rt_store_close(s);
  free(cand);
  free(trad);
}

/* Two processes (two connections) migrating the same file at once, writing meanwhile: each batch is
** whole, the second finds the work done by the first, and the end is the same rows. */
static void test_migrate_two_processes(void) {
  const char *path = tmp_path("v4two.db");
  make_v4(path, 30);
  sqlite3 *raw;
  sqlite3_open(path, &raw);
  size_t tl;
  char *trad = snapshot(raw, TRADES, &tl);
  sqlite3_close(raw);
  rt_store_t *a = open_ok(path), *b = open_ok(path);
  if (!a || !b) return;
  int ra = 1, rb = 1, turns = 0;
  int64_t total = 0;
  while ((ra == 1 || rb == 1) && turns++ < 1000) {
    if (ra == 1) ra = migrate(a, 4, 1, &total);
    if (rb == 1) rb = migrate(b, 5, 1, &total);
    if (turns == 3) CHECK_EQ_INT(put_candle(b, "binance_spot", "BTCUSDT", "1m", 1700000000 + 29 * 60, 2.0), 2);
    if (turns == 3) CHECK_EQ_INT(put_candle(b, "binance_spot", "BTCUSDT", "1m", 1700000000 + 29 * 60, 2.0), 0);
  }
  CHECK_EQ_INT(ra, 0);
  CHECK_EQ_INT(rb, 0);
  CHECK_EQ_INT(total, 150 + 60 - 1);          /* every row once; the written one moved by its writer */
  CHECK(!rt_store_series_migrating(a) && !rt_store_series_migrating(b));
  CHECK(same_as(rt_store_db(a), TRADES, trad, tl));
  CHECK_EQ_INT(query_int(rt_store_db(a), "SELECT count(*) FROM candles"), 150);
  CHECK_EQ_INT(query_int(rt_store_db(b), "SELECT close FROM candles WHERE instrument = 'BTCUSDT' AND ts = 1700001740"), 2);
  CHECK_EQ_INT(put_candle(a, "binance_spot", "BTCUSDT", "1m", 1700000000 + 29 * 60, 2.0), 0);   /* a sees b's row */
  rt_store_close(a);
  rt_store_close(b);
  free(trad);
}

/* Copies that do not read back equal stop the migration before anything is deleted. */
static void test_migrate_verifies(void) {
  const char *path = tmp_path("v4bad.db");
  make_v4(path, 10);
  rt_store_t *s = open_ok(path);
  if (!s) return;
  sqlite3 *db = rt_store_db(s);
  CHECK_EQ_INT(sqlite3_exec(db, "CREATE TEMP TRIGGER skew AFTER INSERT ON bars BEGIN "
                                "UPDATE bars SET close = close + 1e-9 WHERE series = NEW.series AND ts = NEW.ts; END",
                            NULL, NULL, NULL), SQLITE_OK);
  char err[512] = "";
  int64_t moved = -1;
  int r = rt_store_series_migrate(s, 100, &moved, err, sizeof err);
  CHECK(r < 0);
  CHECK_EQ_INT(moved, 0);
  if (!CHECK(strstr(err, "candles migration: 10 rows copied to bars but 10 read back, or their checksums differ"))) fprintf(stderr, "  err: %s\n", err);
  CHECK_EQ_INT(query_int(db, "SELECT count(*) FROM candles_v4"), 50);
  CHECK_EQ_INT(query_int(db, "SELECT count(*) FROM bars"), 0);
  CHECK_EQ_INT(rt_store_tx_depth(s), 0);
  sqlite3_exec(db, "DROP TRIGGER skew", NULL, NULL, NULL);
  int64_t total = 0;
  CHECK_EQ_INT(migrate(s, 100, 100, &total), 0);
  CHECK_EQ_INT(total, 70);
  rt_store_close(s);
}

static void rm_tmpdir(void) {
  char cmd[300];
  snprintf(cmd, sizeof cmd, "rm -rf '%s'", tmpdir);
  if (system(cmd) != 0) fprintf(stderr, "could not remove %s\n", tmpdir);
}

int main(void) {
  const char *base = getenv("TMPDIR");
  snprintf(tmpdir, sizeof tmpdir, "%s/candled-test-series-XXXXXX", base && *base ? base : "/tmp");
  if (!mkdtemp(tmpdir)) {
    perror("mkdtemp");
    return 1;
  }
  RUN(test_writer_counts);
  RUN(test_rollback_forgets_ids);
  RUN(test_query_plans);
  RUN(test_migrate_old_database);
  RUN(test_migrate_two_processes);
  RUN(test_migrate_verifies);
  rm_tmpdir();
  return CHECK_DONE();
}
