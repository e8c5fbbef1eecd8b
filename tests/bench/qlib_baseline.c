/*
** tests/bench/qlib_baseline.c - the baseline of tests/bench/run_qlib.py: a plain C program that reads
** the same rows as `candled export qlib` and writes the same bytes (calendar, instruments/all.txt,
** the feature files), with no Lua, no staging folder and no fsync.
**
**   qlib_baseline DB SOURCE FREQ OUT       FREQ: day, 60min, 15min, 5min or 1min
**
** Only what the benchmark's data needs: 1m series, symbols already [A-Z0-9] (no escaping), no
** known-empty intervals, quote volume on every row. Complete buckets as in scripts/lib/qlib.lua.
** Prints "<instruments> <calendar entries> <bytes> <seconds>".
*/
#include <errno.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sqlite3.h>
#include <sys/stat.h>
#include <time.h>

/* The rows the export reads: a bar with every price and the volume (a source may store an all-null
** minute, as Yahoo does); the same condition as scripts/lib/qlib.lua's queries. */
#define COMPLETE_ROW \
  "AND open IS NOT NULL AND high IS NOT NULL AND low IS NOT NULL AND close IS NOT NULL AND volume IS NOT NULL"

typedef struct { int64_t *v; size_t n, cap; } ivec_t;

static void ipush(ivec_t *a, int64_t x) {
  if (a->n == a->cap) {
    a->cap = a->cap ? a->cap * 2 : 1024;
    a->v = realloc(a->v, a->cap * sizeof *a->v);
    if (!a->v) abort();
  }
  a->v[a->n++] = x;
}

static int cmp64(const void *a, const void *b) {
  int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
  return x < y ? -1 : x > y;
}

static double now_s(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return ts.tv_sec + ts.tv_nsec / 1e9;
}

static void fmt_time(int64_t t, int day, char *buf, size_t n) {
  time_t tt = (time_t)t;
  struct tm tm;
  gmtime_r(&tt, &tm);
  strftime(buf, n, day ? "%Y-%m-%d" : "%Y-%m-%d %H:%M:%S", &tm);
}

/* Index of t in the sorted calendar (t is in it). */
static size_t find(const ivec_t *cal, int64_t t) {
  size_t lo = 0, hi = cal->n;
  while (lo < hi) {
    size_t mid = (lo + hi) / 2;
    if (cal->v[mid] < t) lo = mid + 1;
    else hi = mid;
  }
  return lo;
}

static size_t write_file(const char *path, const void *p, size_t n) {
  FILE *f = fopen(path, "wb");
  if (!f || fwrite(p, 1, n, f) != n || fclose(f) != 0) {
    fprintf(stderr, "qlib_baseline: %s: %s\n", path, strerror(errno));
    exit(1);
  }
  return n;
}

static void put_f32(unsigned char *p, double d) {
  uint32_t u;
  if (isnan(d)) u = 0x7FC00000u;
  else {
    float f = (float)d;
    memcpy(&u, &f, 4);
  }
  p[0] = (unsigned char)u; p[1] = (unsigned char)(u >> 8); p[2] = (unsigned char)(u >> 16); p[3] = (unsigned char)(u >> 24);
}

typedef struct { int64_t id; char name[128]; } series_t;

int main(int argc, char **argv) {
  if (argc != 5) {
    fprintf(stderr, "usage: qlib_baseline DB SOURCE FREQ OUT\n");
    return 2;
  }
  const char *freq = argv[3], *out = argv[4];
  int64_t S = !strcmp(freq, "day") ? 86400 : !strcmp(freq, "60min") ? 3600 : !strcmp(freq, "15min") ? 900
            : !strcmp(freq, "5min") ? 300 : !strcmp(freq, "1min") ? 60 : 0;
  if (!S) return 2;
  int day = S == 86400;
  int64_t need = S / 60, now = (int64_t)time(NULL);
  double t0 = now_s();
  sqlite3 *db;
  if (sqlite3_open_v2(argv[1], &db, SQLITE_OPEN_READONLY, NULL) != SQLITE_OK) return 1;
  sqlite3_stmt *st;
  sqlite3_prepare_v2(db, "SELECT id, instrument FROM series WHERE source = ? AND timeframe = '1m' ORDER BY instrument",
                     -1, &st, NULL);
  sqlite3_bind_text(st, 1, argv[2], -1, SQLITE_STATIC);
  series_t *ser = NULL;
  size_t ns = 0;
  while (sqlite3_step(st) == SQLITE_ROW) {
    ser = realloc(ser, (ns + 1) * sizeof *ser);
    ser[ns].id = sqlite3_column_int64(st, 0);
    snprintf(ser[ns].name, sizeof ser[ns].name, "%s", (const char *)sqlite3_column_text(st, 1));
    ns++;
  }
  sqlite3_finalize(st);
  /* pass 1: the calendar */
  ivec_t cal = {0};
  sqlite3_prepare_v2(db, "SELECT ts FROM bars WHERE series = ? AND ts >= 0 " COMPLETE_ROW " ORDER BY ts", -1, &st,
                     NULL);
  for (size_t k = 0; k < ns; k++) {
    sqlite3_bind_int64(st, 1, ser[k].id);
    int64_t b = -1, cnt = 0;
    while (sqlite3_step(st) == SQLITE_ROW) {
      int64_t ts = sqlite3_column_int64(st, 0), bb = ts - ts % S;
      if (bb != b) {
        if (b >= 0 && cnt == need && b + S <= now) ipush(&cal, b);
        b = bb;
        cnt = 0;
      }
      cnt++;
    }
    if (b >= 0 && cnt == need && b + S <= now) ipush(&cal, b);
    sqlite3_reset(st);
  }
  sqlite3_finalize(st);
  qsort(cal.v, cal.n, sizeof *cal.v, cmp64);
  size_t u = 0;
  for (size_t i = 0; i < cal.n; i++)
    if (u == 0 || cal.v[i] != cal.v[u - 1]) cal.v[u++] = cal.v[i];
  cal.n = u;
  char path[8400], line[64];
  size_t bytes = 0;
  snprintf(path, sizeof path, "%s/calendars", out);
  mkdir(out, 0755);
  mkdir(path, 0755);
  snprintf(path, sizeof path, "%s/instruments", out);
  mkdir(path, 0755);
  snprintf(path, sizeof path, "%s/features", out);
  mkdir(path, 0755);
  char *text = malloc(cal.n * 20 + 1);
  size_t tn = 0;
  for (size_t i = 0; i < cal.n; i++) {
    fmt_time(cal.v[i], day, line, sizeof line);
    tn += (size_t)sprintf(text + tn, "%s\n", line);
  }
  snprintf(path, sizeof path, "%s/calendars/%s.txt", out, freq);
  bytes += write_file(path, text, tn);
  free(text);
  /* pass 2: the columns */
  static const char *const fields[] = {"open", "high", "low", "close", "volume", "factor", "change", "amount", "vwap"};
  enum { NF = 9 };
  char *all = malloc(ns * 200 + 1);
  size_t an = 0;
  sqlite3_prepare_v2(db, "SELECT ts, open, high, low, close, volume, quote_volume FROM bars WHERE series = ? "
                     "AND ts >= 0 " COMPLETE_ROW " ORDER BY ts", -1, &st, NULL);
  /* buckets of one series, then the columns over its calendar span */
  int64_t *bts = malloc(sizeof *bts * (cal.n + 1));
  double *bv[7];
  for (int f = 0; f < 7; f++) bv[f] = malloc(sizeof(double) * (cal.n + 1));
  unsigned char *buf = malloc(4 * (cal.n + 1));
  size_t exported = 0;
  for (size_t k = 0; k < ns; k++) {
    sqlite3_bind_int64(st, 1, ser[k].id);
    size_t nb = 0;
    int64_t b = -1, cnt = 0;
    double o = 0, h = 0, l = 0, c = 0, v = 0, q = 0;
    for (int rc = sqlite3_step(st);; rc = sqlite3_step(st)) {
      int64_t ts = 0, bb = -2;
      if (rc == SQLITE_ROW) {
        ts = sqlite3_column_int64(st, 0);
        bb = ts - ts % S;
      }
      if (bb != b) {
        if (b >= 0 && cnt == need && b + S <= now) {
          bts[nb] = b;
          bv[0][nb] = o; bv[1][nb] = h; bv[2][nb] = l; bv[3][nb] = c; bv[4][nb] = v; bv[5][nb] = q;
          nb++;
        }
        if (rc != SQLITE_ROW) break;
        b = bb;
        cnt = 0;
        o = sqlite3_column_double(st, 1);
        h = sqlite3_column_double(st, 2);
        l = sqlite3_column_double(st, 3);
        v = 0;
        q = 0;
      }
      double hh = sqlite3_column_double(st, 2), ll = sqlite3_column_double(st, 3);
      if (hh > h) h = hh;
      if (ll < l) l = ll;
      c = sqlite3_column_double(st, 4);
      v += sqlite3_column_double(st, 5);
      q += sqlite3_column_double(st, 6);
      cnt++;
    }
    sqlite3_reset(st);
    if (!nb) continue;
    exported++;
    size_t start = find(&cal, bts[0]), n = find(&cal, bts[nb - 1]) - start + 1;
    char dir[4096];
    int dn = snprintf(dir, sizeof dir, "%s/features/", out);
    for (const char *p = ser[k].name; *p; p++) dir[dn++] = (char)(*p >= 'A' && *p <= 'Z' ? *p + 32 : *p);
    dir[dn] = 0;
    mkdir(dir, 0755);
    for (int f = 0; f < NF; f++) {
      put_f32(buf, (double)start);
      for (size_t i = 0; i < n; i++) put_f32(buf + 4 + 4 * i, NAN);
      double prev = NAN;
      for (size_t m = 0; m < nb; m++) {
        size_t p = find(&cal, bts[m]) - start;
        double x;
        switch (f) {
        case 5: x = 1.0; break;
        case 6: x = (!isnan(prev) && prev != 0) ? bv[3][m] / prev - 1 : NAN; prev = bv[3][m]; break;
        case 7: x = bv[5][m]; break;
        case 8: x = bv[4][m] > 0 ? bv[5][m] / bv[4][m] : NAN; break;
        default: x = bv[f][m];
        }
        put_f32(buf + 4 + 4 * p, x);
      }
      snprintf(path, sizeof path, "%s/%s.%s.bin", dir, fields[f], freq);
      bytes += write_file(path, buf, 4 * (n + 1));
    }
    char first[64], last[64];
    fmt_time(bts[0], day, first, sizeof first);
    fmt_time(bts[nb - 1], day, last, sizeof last);
    an += (size_t)sprintf(all + an, "%s\t%s\t%s\n", ser[k].name, first, last);
  }
  sqlite3_finalize(st);
  snprintf(path, sizeof path, "%s/instruments/all.txt", out);
  bytes += write_file(path, all, an);
  printf("%zu %zu %zu %.3f\n", exported, cal.n, bytes, now_s() - t0);
  free(all); free(bts); free(buf); free(ser); free(cal.v);
  for (int f = 0; f < 7; f++) free(bv[f]);
  sqlite3_close(db);
  return 0;
}
