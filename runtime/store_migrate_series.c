/*
** runtime/store_migrate_series.c - moving a database of the layout before the series catalogue
** (candles and trades keyed by text) into it, in verified batches (see store_series.h).
**
** Core migration step 5 renamed the old tables to candles_v4 and trades_v4. Each batch takes the
** first series of an old table in key order and moves up to N of its rows: in one transaction it
** reads their count and rt_checksum, copies them, reads the copies back through the catalogue
** with the same checksum, compares, and deletes the old rows. A kill loses at most the batch in
** flight (rolled back); the next start continues with what is left. Once an old table is empty it
** is dropped and the views lose their second arm.
*/
#include "runtime/store_series_int.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---- rt_checksum(v1, v2, ...): an order-independent checksum of rows -------------------------- */

/* The sum (mod 2^64) of a 64-bit hash of each row's values, type included, REALs by their bits:
** two sets of rows have the same checksum when they hold the same values (with overwhelming
** probability), in any order. */
static void checksum_step(sqlite3_context *cx, int argc, sqlite3_value **argv) {
  uint64_t *sum = sqlite3_aggregate_context(cx, sizeof *sum);
  if (!sum) {
    sqlite3_result_error_nomem(cx);
    return;
  }
  uint64_t h = 14695981039346656037ull;
  for (int i = 0; i < argc; i++) {
    unsigned char type = (unsigned char)sqlite3_value_type(argv[i]);
    h = rt_series_fnv(h, &type, 1);
    if (type == SQLITE_INTEGER) {
      int64_t v = sqlite3_value_int64(argv[i]);
      h = rt_series_fnv(h, &v, sizeof v);
    } else if (type == SQLITE_FLOAT) {
      double v = sqlite3_value_double(argv[i]);
      h = rt_series_fnv(h, &v, sizeof v);
    } else if (type != SQLITE_NULL) {
      const void *p = type == SQLITE_TEXT ? (const void *)sqlite3_value_text(argv[i]) : sqlite3_value_blob(argv[i]);
      int64_t n = sqlite3_value_bytes(argv[i]);
      h = rt_series_fnv(h, &n, sizeof n);
      if (n > 0) h = rt_series_fnv(h, p, (size_t)n);
    }
  }
  h ^= h >> 31;                                /* finalise (splitmix64) so sums of near rows mix */
  h *= 0x7fb5d329728ea185ull;
  h ^= h >> 27;
  *sum += h;
}

static void checksum_final(sqlite3_context *cx) {
  uint64_t *sum = sqlite3_aggregate_context(cx, 0);
  sqlite3_result_int64(cx, sum ? (int64_t)*sum : 0);
}

/* rt_fail(message): fails the statement with `message` (the migration's verification uses it so
** that the connection's error names what did not match). */
static void fail_func(sqlite3_context *cx, int argc, sqlite3_value **argv) {
  (void)argc;
  sqlite3_result_error(cx, (const char *)sqlite3_value_text(argv[0]), -1);
}

int rt_series_functions(sqlite3 *db) {
  int rc = sqlite3_create_function_v2(db, "rt_checksum", -1, SQLITE_UTF8 | SQLITE_DETERMINISTIC, NULL, NULL,
                                      checksum_step, checksum_final, NULL);
  if (rc == SQLITE_OK)
    rc = sqlite3_create_function_v2(db, "rt_fail", 1, SQLITE_UTF8, NULL, fail_func, NULL, NULL, NULL);
  return rc;
}

/* WHERE terms for the old rows of a series (?1 source, ?2 instrument, ?3 timeframe) with keys in
** [?4, ?5], or <= ?5 without a lower bound. `p` prefixes the columns. */
static void add_range(rt_series_sql_t *b, const rt_series_spec_t *sp, const char *p, int bounded) {
  rt_series_sql_add(b, " WHERE %ssource = ?1 AND %sinstrument = ?2", p, p);
  if (!sp->timeframe) rt_series_sql_add(b, " AND %stimeframe = ?3", p);
  if (bounded) rt_series_sql_add(b, " AND %s%s BETWEEN ?4 AND ?5", p, sp->key);
  else rt_series_sql_add(b, " AND %s%s <= ?5", p, sp->key);
}

/* The checksum's arguments: the view's columns, from the old table or the catalogue + table. */
static void add_values(rt_series_sql_t *b, const rt_series_spec_t *sp, int fresh) {
  if (fresh) rt_series_sql_add(b, "s.source, s.instrument, %sb.%s", sp->timeframe ? "" : "s.timeframe, ", sp->key);
  else rt_series_sql_add(b, "source, instrument, %s%s", sp->timeframe ? "" : "timeframe, ", sp->key);
  for (int i = 0; i < sp->ncols; i++) rt_series_sql_add(b, ", %s%s", fresh ? "b." : "", sp->cols[i]);
}

/* Prepare b's text (cached) and bind the range parameters. */
static int prepare_range(rt_store_t *s, const rt_series_sql_t *b, const rt_store_value_t *triple[3],
                         const rt_store_value_t *lo, const rt_store_value_t *hi, int64_t id, sqlite3_stmt **st) {
  if (!rt_series_sql_ok(b)) return SQLITE_TOOBIG;
  int rc = rt_store_prepare(s, b->text, b->len, st, NULL);
  if (rc != SQLITE_OK) return rc;
  int n = sqlite3_bind_parameter_count(*st);
  for (int i = 0; i < 3 && i < n; i++) rt_series_bind(*st, i + 1, triple[i]);
  if (lo && n >= 4) rt_series_bind(*st, 4, lo);
  if (n >= 5) rt_series_bind(*st, 5, hi);
  if (n >= 6) sqlite3_bind_int64(*st, 6, id);
  return SQLITE_OK;
}

/* Run a statement that returns one row of (count, checksum). */
static int sums(sqlite3_stmt *st, int64_t *n, int64_t *sum) {
  int rc = sqlite3_step(st);
  if (rc == SQLITE_ROW) {
    *n = sqlite3_column_int64(st, 0);
    *sum = sqlite3_column_int64(st, 1);
  }
  sqlite3_reset(st);
  return rc == SQLITE_ROW ? SQLITE_OK : rc;
}

/* Fail the connection with `msg`, so that rt_store_errmsg names what went wrong. */
static int fail_with(rt_store_t *s, const char *msg) {
  sqlite3_stmt *st;
  static const char q[] = "SELECT rt_fail(?1)";
  if (rt_store_prepare(s, q, sizeof q - 1, &st, NULL) != SQLITE_OK) return SQLITE_CORRUPT;
  sqlite3_bind_text(st, 1, msg, -1, SQLITE_TRANSIENT);
  sqlite3_step(st);
  sqlite3_reset(st);
  return SQLITE_CORRUPT;
}

static int move_rows(rt_store_t *s, const rt_series_spec_t *sp, const rt_store_value_t *triple[3],
                     const rt_store_value_t *lo, const rt_store_value_t *hi, int64_t id, int64_t *moved) {
  rt_series_sql_t b;
  sqlite3_stmt *st;
  int64_t n_old = 0, sum_old = 0, n_new = 0, sum_new = 0;
  /* 1. the old rows: count and checksum */
  b.len = 0;
  rt_series_sql_add(&b, "SELECT count(*), rt_checksum(");
  add_values(&b, sp, 0);
  rt_series_sql_add(&b, ") FROM %s", sp->old);
  add_range(&b, sp, "", lo != NULL);
  int rc = prepare_range(s, &b, triple, lo, hi, id, &st);
  if (rc == SQLITE_OK) rc = sums(st, &n_old, &sum_old);
  if (rc != SQLITE_OK || n_old == 0) return rc;
  /* 2. copy them */
  b.len = 0;
  rt_series_sql_add(&b, "INSERT INTO %s (series, %s", sp->table, sp->key);
  for (int i = 0; i < sp->ncols; i++) rt_series_sql_add(&b, ", %s", sp->cols[i]);
  rt_series_sql_add(&b, ") SELECT ?6, %s", sp->key);
  for (int i = 0; i < sp->ncols; i++) rt_series_sql_add(&b, ", %s", sp->cols[i]);
  rt_series_sql_add(&b, " FROM %s", sp->old);
  add_range(&b, sp, "", lo != NULL);
  if ((rc = prepare_range(s, &b, triple, lo, hi, id, &st)) != SQLITE_OK) return rc;
  rc = sqlite3_step(st);
  sqlite3_reset(st);
  if (rc != SQLITE_DONE) return rc;
  /* 3. read the copies back through the catalogue, for the same keys */
  b.len = 0;
  rt_series_sql_add(&b, "SELECT count(*), rt_checksum(");
  add_values(&b, sp, 1);
  rt_series_sql_add(&b, ") FROM %s o JOIN %s b ON b.series = ?6 AND b.%s = o.%s JOIN series s ON s.id = b.series",
                    sp->old, sp->table, sp->key, sp->key);
  add_range(&b, sp, "o.", lo != NULL);
  if ((rc = prepare_range(s, &b, triple, lo, hi, id, &st)) != SQLITE_OK) return rc;
  if ((rc = sums(st, &n_new, &sum_new)) != SQLITE_OK) return rc;
  if (n_new != n_old || sum_new != sum_old) {
    char msg[256];
    snprintf(msg, sizeof msg, "%s migration: %lld rows copied to %s but %lld read back, or their checksums "
             "differ (%llx, %llx); nothing was moved", sp->view, (long long)n_old, sp->table, (long long)n_new,
             (unsigned long long)sum_old, (unsigned long long)sum_new);
    return fail_with(s, msg);
  }
  /* 4. the old rows go */
  b.len = 0;
  rt_series_sql_add(&b, "DELETE FROM %s", sp->old);
  add_range(&b, sp, "", lo != NULL);
  if ((rc = prepare_range(s, &b, triple, lo, hi, id, &st)) != SQLITE_OK) return rc;
  rc = sqlite3_step(st);
  sqlite3_reset(st);
  if (rc != SQLITE_DONE) return rc;
  if (sqlite3_changes64(rt_store_db(s)) != n_old) return fail_with(s, "migration: the old rows changed while moving");
  *moved = n_old;
  return SQLITE_OK;
}

int rt_series_move(rt_store_t *s, const rt_series_spec_t *sp, const rt_store_value_t *triple[3],
                   const rt_store_value_t *lo, const rt_store_value_t *hi, int64_t id, int64_t *moved) {
  *moved = 0;
  int rc = rt_store_begin(s);
  if (rc != SQLITE_OK) return rc;
  if ((rc = move_rows(s, sp, triple, lo, hi, id, moved)) != SQLITE_OK) {
    char msg[512];
    snprintf(msg, sizeof msg, "%s", sqlite3_errmsg(rt_store_db(s)));
    rt_store_rollback(s);
    fail_with(s, msg);                         /* the rollback cleared the connection's message */
    *moved = 0;
    return rc;
  }
  return rt_store_commit(s);
}

int rt_series_finish(rt_store_t *s, const rt_series_spec_t *sp) {
  char sql[128];
  sqlite3_stmt *st;
  int rc = rt_store_begin(s);
  if (rc != SQLITE_OK) return rc;
  int exists = rt_series_table_exists(s, sp->old);   /* another process may have finished it */
  if (exists <= 0) {
    if (exists == 0) return rt_store_commit(s);
    rt_store_rollback(s);
    return SQLITE_ERROR;
  }
  snprintf(sql, sizeof sql, "SELECT EXISTS (SELECT 1 FROM %s)", sp->old);
  if ((rc = rt_store_prepare(s, sql, strlen(sql), &st, NULL)) == SQLITE_OK) {
    rc = sqlite3_step(st);
    int left = rc == SQLITE_ROW && sqlite3_column_int(st, 0);
    sqlite3_reset(st);
    rc = rc != SQLITE_ROW ? rc : left ? SQLITE_DONE : SQLITE_OK;
  }
  if (rc == SQLITE_OK) rc = rt_series_install_views(s, sp, 0);   /* drops the old triggers too */
  if (rc == SQLITE_OK) {
    snprintf(sql, sizeof sql, "DROP TABLE %s", sp->old);
    rc = rt_store_exec(s, sql);
  }
  if (rc != SQLITE_OK) {
    rt_store_rollback(s);
    return rc;
  }
  return rt_store_commit(s);
}

/* The first series left in the old table of `sp` and the key of its `max_rows`-th row: the
** batch. Strings are copied into `buf` (two values + the key). 0 when the table is empty. */
typedef struct {
  rt_store_value_t v[4];       /* source, instrument, timeframe, hi */
  char *text[4];               /* owned copies */
} batch_t;

static void batch_free(batch_t *b) {
  for (int i = 0; i < 4; i++) free(b->text[i]);
}

static int copy_value(batch_t *b, int i, sqlite3_stmt *st, int c) {
  rt_store_value_t *v = &b->v[i];
  v->type = sqlite3_column_type(st, c);
  if (v->type == SQLITE_INTEGER) v->i = sqlite3_column_int64(st, c);
  else if (v->type == SQLITE_FLOAT) v->d = sqlite3_column_double(st, c);
  else if (v->type != SQLITE_NULL) {
    const unsigned char *t = sqlite3_column_text(st, c);
    v->n = (size_t)sqlite3_column_bytes(st, c);
    if (!(b->text[i] = malloc(v->n + 1))) return SQLITE_NOMEM;
    memcpy(b->text[i], t, v->n + 1);
    v->s = b->text[i];
    v->type = SQLITE_TEXT;
  }
  return SQLITE_OK;
}

static int next_batch(rt_store_t *s, const rt_series_spec_t *sp, int max_rows, batch_t *b) {
  rt_series_sql_t q;
  sqlite3_stmt *st;
  q.len = 0;
  rt_series_sql_add(&q, "SELECT source, instrument%s FROM %s ORDER BY source, instrument%s LIMIT 1",
                    sp->timeframe ? "" : ", timeframe", sp->old, sp->timeframe ? "" : ", timeframe");
  int rc = rt_store_prepare(s, q.text, q.len, &st, NULL);
  if (rc != SQLITE_OK) return rc;
  rc = sqlite3_step(st);
  if (rc == SQLITE_ROW) {
    rc = copy_value(b, 0, st, 0);
    if (rc == SQLITE_OK) rc = copy_value(b, 1, st, 1);
    if (rc == SQLITE_OK && sp->timeframe) {
      b->v[2] = (rt_store_value_t){SQLITE_TEXT, 0, 0, sp->timeframe, strlen(sp->timeframe)};
    } else if (rc == SQLITE_OK) {
      rc = copy_value(b, 2, st, 2);
    }
    rc = rc == SQLITE_OK ? SQLITE_ROW : rc;
  }
  sqlite3_reset(st);
  if (rc == SQLITE_DONE) return 0;
  if (rc != SQLITE_ROW) return -rc;
  q.len = 0;
  rt_series_sql_add(&q, "SELECT max(k) FROM (SELECT %s AS k FROM %s WHERE source = ?1 AND instrument = ?2%s"
                        " ORDER BY %s LIMIT ?4)", sp->key, sp->old, sp->timeframe ? "" : " AND timeframe = ?3",
                    sp->key);
  if ((rc = rt_store_prepare(s, q.text, q.len, &st, NULL)) != SQLITE_OK) return -rc;
  for (int i = 0; i < 3; i++) rt_series_bind(st, i + 1, &b->v[i]);
  sqlite3_bind_int(st, 4, max_rows);
  rc = sqlite3_step(st);
  if (rc == SQLITE_ROW) rc = copy_value(b, 3, st, 0) == SQLITE_OK ? SQLITE_ROW : SQLITE_NOMEM;
  sqlite3_reset(st);
  return rc == SQLITE_ROW ? 1 : -rc;
}

int rt_store_series_migrate(rt_store_t *s, int max_rows, int64_t *moved, char *err, size_t errlen) {
  rt_store_series_t *ss = rt_store_series_of(s);
  *moved = 0;
  for (int i = 0; i < RT_SERIES_SPECS; i++) {
    const rt_series_spec_t *sp = &rt_series_specs[i];
    if (!ss->migrating[i]) continue;
    /* the batch is chosen and moved under the write lock: another process may be migrating too */
    int rc = rt_store_begin(s);
    if (rc != SQLITE_OK) {
      snprintf(err, errlen, "%s migration: %s", sp->view, sqlite3_errmsg(rt_store_db(s)));
      return -rc;
    }
    batch_t b = {0};
    int exists = rt_series_table_exists(s, sp->old);
    int got = exists < 0 ? -SQLITE_ERROR : exists == 0 ? 0 : next_batch(s, sp, max_rows > 0 ? max_rows : 1, &b);
    if (got == 0) {                            /* empty, or finished by another process */
      rc = exists ? rt_series_finish(s, sp) : SQLITE_OK;
      if (rc == SQLITE_OK) rc = rt_store_commit(s);
      if (rc == SQLITE_OK) {
        ss->migrating[i] = 0;
        continue;
      }
    } else if (got > 0) {
      const rt_store_value_t *triple[3] = {&b.v[0], &b.v[1], &b.v[2]};
      int64_t id;
      rc = rt_series_resolve(s, triple, &id);
      if (rc == SQLITE_OK) rc = rt_series_move(s, sp, triple, NULL, &b.v[3], id, moved);
      if (rc == SQLITE_OK) rc = rt_store_commit(s);
      batch_free(&b);
      if (rc == SQLITE_OK) return 1;
    } else {
      rc = -got;
      batch_free(&b);
    }
    snprintf(err, errlen, "%s migration: %s", sp->view, sqlite3_errmsg(rt_store_db(s)));
    rt_store_rollback(s);
    *moved = 0;
    return rc > 0 ? -rc : -SQLITE_ERROR;
  }
  return 0;
}

int rt_store_series_migrating(rt_store_t *s) {
  rt_store_series_t *ss = rt_store_series_of(s);
  for (int i = 0; i < RT_SERIES_SPECS; i++)
    if (ss->migrating[i]) return 1;
  return 0;
}

int64_t rt_store_series_pending(rt_store_t *s) {
  int64_t total = 0;
  for (int i = 0; i < RT_SERIES_SPECS; i++) {
    const rt_series_spec_t *sp = &rt_series_specs[i];
    int exists = rt_series_table_exists(s, sp->old);
    if (exists < 0) return -1;
    if (!exists) continue;
    char sql[96];
    sqlite3_stmt *st;
    snprintf(sql, sizeof sql, "SELECT count(*) FROM %s", sp->old);
    if (rt_store_prepare(s, sql, strlen(sql), &st, NULL) != SQLITE_OK) return -1;
    int rc = sqlite3_step(st);
    if (rc == SQLITE_ROW) total += sqlite3_column_int64(st, 0);
    sqlite3_reset(st);
    if (rc != SQLITE_ROW) return -1;
  }
  return total;
}
