/*
** tests/bench/replay_baseline.c - the baseline of tests/bench/run_replay.py, and its data.
**
**   replay_baseline fill DB SERIES N T0     N 1m bars of series SERIES from T0 (a seeded random walk),
**                                           written straight into `bars` in one transaction
**   replay_baseline scan DB SERIES          step every bar of the series in time order, reading the
**                                           six columns `candled replay` reads; prints "<rows> <s>"
**   replay_baseline sma DB SERIES FAST SLOW the same scan plus the SMA cross of strategies/sma_cross.lua
**                                           with the same arithmetic as scripts/lib/indicators.lua
**                                           (so the signal count must equal the replay's);
**                                           prints "<rows> <signals> <s>"
**
** Plain C over SQLite: no Lua, no runtime, nothing written but in `fill`.
*/
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sqlite3.h>
#include <time.h>

static double now(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return ts.tv_sec + ts.tv_nsec / 1e9;
}

static void die(sqlite3 *db, const char *what) {
  fprintf(stderr, "replay_baseline: %s: %s\n", what, db ? sqlite3_errmsg(db) : "?");
  exit(1);
}

/* scripts/lib/indicators.lua sma_push, operation for operation. */
typedef struct {
  int n, i, count, since;
  double sum, *buf;
} sma_t;

static int sma_push(sma_t *s, double x, double *out) {
  int i = s->i + 1;
  if (i > s->n) i = 1;
  s->i = i;
  if (s->count < s->n) {
    s->buf[i - 1] = x;
    s->count++;
    s->sum = s->sum + x;
    if (s->count < s->n) return 0;
    *out = s->sum / s->n;
    return 1;
  }
  double sum = s->sum + x - s->buf[i - 1];
  s->buf[i - 1] = x;
  int since = s->since + 1;
  if (since >= s->n) {
    sum = 0.0;
    for (int j = 0; j < s->n; j++) sum = sum + s->buf[j];
    since = 0;
  }
  s->since = since;
  s->sum = sum;
  *out = sum / s->n;
  return 1;
}

int main(int argc, char **argv) {
  if (argc < 4) {
    fprintf(stderr, "usage: replay_baseline fill DB SERIES N T0 | scan DB SERIES | sma DB SERIES FAST SLOW\n");
    return 2;
  }
  sqlite3 *db;
  if (sqlite3_open(argv[2], &db) != SQLITE_OK) die(db, "open");
  sqlite3_exec(db, "PRAGMA journal_mode=WAL", NULL, NULL, NULL);
  int64_t series = atoll(argv[3]);
  sqlite3_stmt *st;
  if (strcmp(argv[1], "fill") == 0 && argc == 6) {
    long n = atol(argv[4]);
    int64_t t0 = atoll(argv[5]);
    if (sqlite3_exec(db, "PRAGMA synchronous=OFF; BEGIN", NULL, NULL, NULL) != SQLITE_OK) die(db, "begin");
    if (sqlite3_prepare_v2(db, "INSERT INTO bars (series, ts, open, high, low, close, volume) VALUES (?,?,?,?,?,?,?)",
                           -1, &st, NULL) != SQLITE_OK)
      die(db, "prepare");
    uint64_t rng = 0x9E3779B97F4A7C15ull;
    double p = 30000;
    for (long i = 0; i < n; i++) {
      rng = rng * 6364136223846793005ull + 1442695040888963407ull;
      double r = ((double)(rng >> 11) / 9007199254740992.0 - 0.5) * 0.002;
      double open = p, close = p * (1 + r);
      double hi = (open > close ? open : close) * 1.0005, lo = (open < close ? open : close) * 0.9995;
      sqlite3_bind_int64(st, 1, series);
      sqlite3_bind_int64(st, 2, t0 + 60 * i);
      sqlite3_bind_double(st, 3, open);
      sqlite3_bind_double(st, 4, hi);
      sqlite3_bind_double(st, 5, lo);
      sqlite3_bind_double(st, 6, close);
      sqlite3_bind_double(st, 7, 1 + (double)(rng >> 40) / 1e6);
      if (sqlite3_step(st) != SQLITE_DONE) die(db, "insert");
      sqlite3_reset(st);
      p = close;
    }
    sqlite3_finalize(st);
    if (sqlite3_exec(db, "COMMIT", NULL, NULL, NULL) != SQLITE_OK) die(db, "commit");
    sqlite3_close(db);
    return 0;
  }
  int sma = strcmp(argv[1], "sma") == 0 && argc == 6;
  if (!sma && !(strcmp(argv[1], "scan") == 0 && argc == 4)) {
    fprintf(stderr, "replay_baseline: bad arguments\n");
    return 2;
  }
  if (sqlite3_prepare_v2(db, "SELECT ts, open, high, low, close, volume FROM bars WHERE series = ? "
                             "AND open IS NOT NULL AND close IS NOT NULL ORDER BY ts",
                         -1, &st, NULL) != SQLITE_OK)
    die(db, "prepare");
  sqlite3_bind_int64(st, 1, series);
  sma_t f = {0}, s = {0};
  if (sma) {
    f.n = atoi(argv[4]);
    s.n = atoi(argv[5]);
    f.buf = calloc((size_t)f.n, sizeof(double));
    s.buf = calloc((size_t)s.n, sizeof(double));
  }
  double t = now(), check = 0, pf = 0, pl = 0;
  int have_prev = 0;
  long rows = 0, signals = 0;
  int rc;
  while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
    int64_t ts = sqlite3_column_int64(st, 0);
    double v[5];
    for (int j = 0; j < 5; j++) v[j] = sqlite3_column_double(st, j + 1);
    check += (double)ts + v[0] + v[1] + v[2] + v[3] + v[4];
    rows++;
    if (sma) {
      double a, b;
      int ha = sma_push(&f, v[3], &a), hb = sma_push(&s, v[3], &b);
      if (ha && hb) {
        if (have_prev && ((pf <= pl && a > b) || (pf >= pl && a < b))) signals++;
        pf = a, pl = b, have_prev = 1;
      } else {
        have_prev = 0;
      }
    }
  }
  if (rc != SQLITE_DONE) die(db, "step");
  t = now() - t;
  sqlite3_finalize(st);
  sqlite3_close(db);
  free(f.buf);
  free(s.buf);
  if (sma) printf("%ld %ld %.6f\n", rows, signals, t);
  else printf("%ld %.6f %.0f\n", rows, t, check > 0 ? 1.0 : 0.0);
  return 0;
}
