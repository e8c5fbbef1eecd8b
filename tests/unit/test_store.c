/*
** tests/unit/test_store.c - runtime/store.c: the SQLite writer connection, on a real file in a
** mkdtemp directory and on :memory:.
*/
#include "runtime/store.h"

#include <sys/stat.h>
#include <uv.h>

#include "runtime/store_checkpoint.h"

#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "check.h"

static char tmpdir[256];

/* A path inside the test's temp directory. */
static const char *tmp_path(const char *name) {
  static char buf[512];
  snprintf(buf, sizeof buf, "%s/%s", tmpdir, name);
  return buf;
}

static rt_store_t *open_ok(const char *path) {
  char err[512] = "";
  rt_store_t *s = rt_store_open(path, 100, err, sizeof err);
  if (!CHECK(s != NULL)) fprintf(stderr, "  rt_store_open(%s): %s\n", path, err);
  return s;
}

/* The first column of the first row of `sql` as text (malloc'd), or NULL. */
static char *query_text(rt_store_t *s, const char *sql) {
  sqlite3_stmt *st;
  char *out = NULL;
  if (sqlite3_prepare_v2(rt_store_db(s), sql, -1, &st, NULL) != SQLITE_OK) return NULL;
  if (sqlite3_step(st) == SQLITE_ROW && sqlite3_column_text(st, 0))
    out = strdup((const char *)sqlite3_column_text(st, 0));
  sqlite3_finalize(st);
  return out;
}

/* The first column of the first row of `sql` as an integer, or -999 when there is no row. */
static long long query_int(rt_store_t *s, const char *sql) {
  sqlite3_stmt *st;
  long long v = -999;
  if (sqlite3_prepare_v2(rt_store_db(s), sql, -1, &st, NULL) != SQLITE_OK) return -998;
  if (sqlite3_step(st) == SQLITE_ROW) v = sqlite3_column_int64(st, 0);
  sqlite3_finalize(st);
  return v;
}

static int table_exists(rt_store_t *s, const char *name) {
  char sql[256];
  snprintf(sql, sizeof sql, "SELECT count(*) FROM sqlite_master WHERE type = 'table' AND name = '%s'", name);
  return query_int(s, sql) == 1;
}

/* Prepared statements the connection holds (the cache owns all of them). */
static int count_stmts(rt_store_t *s) {
  int n = 0;
  sqlite3 *db = rt_store_db(s);
  for (sqlite3_stmt *st = sqlite3_next_stmt(db, NULL); st; st = sqlite3_next_stmt(db, st)) n++;
  return n;
}

static int stmt_cached(rt_store_t *s, const char *sql) {
  sqlite3 *db = rt_store_db(s);
  for (sqlite3_stmt *st = sqlite3_next_stmt(db, NULL); st; st = sqlite3_next_stmt(db, st))
    if (strcmp(sqlite3_sql(st), sql) == 0) return 1;
  return 0;
}

/* ---- tests ---------------------------------------------------------------------------------- */

/* A file database is in WAL mode and has every core table plus the migrations table. */
static void test_open_file_wal_and_tables(void) {
  rt_store_t *s = open_ok(tmp_path("open.db"));
  if (!s) return;
  char *mode = query_text(s, "PRAGMA journal_mode");
  CHECK_STR(mode, "wal");
  free(mode);
  CHECK_EQ_INT(query_int(s, "PRAGMA foreign_keys"), 1);
  static const char *const tables[] = {"series", "bars", "ticks", "instruments", "runs", "script_state",
                                       "migrations"};
  for (size_t i = 0; i < sizeof tables / sizeof *tables; i++)
    if (!CHECK(table_exists(s, tables[i]))) fprintf(stderr, "  missing table %s\n", tables[i]);
  CHECK_EQ_INT(query_int(s, "SELECT count(*) FROM sqlite_master WHERE type = 'view' AND name IN ('candles', 'trades')"), 2);
  CHECK(!table_exists(s, "candles_v4"));     /* a new database has nothing to migrate */
  /* the series bookkeeping is scripts/lib/series.lua's (db.migrate "series"), not the store's */
  CHECK_EQ_INT(query_int(s, "SELECT count(*) FROM sqlite_master WHERE name IN ('backfill', 'empty_intervals', "
                            "'series_backfill', 'series_empty')"), 0);
  CHECK_STR(rt_store_path(s), tmp_path("open.db"));
  CHECK_EQ_INT(rt_store_tx_depth(s), 0);
  rt_store_close(s);
}

/* Issue 11, item 7: the guard refuses ATTACH, DETACH, VACUUM INTO and durability pragmas; reading
** a pragma and ordinary SQL go on; allow_unsafe lifts it. */
static void test_guard(void) {
  rt_store_t *s = open_ok(tmp_path("guard.db"));
  if (!s) return;
  rt_store_guard(s, 0);
  char sql[600];
  snprintf(sql, sizeof sql, "ATTACH DATABASE '%s' AS evil", tmp_path("evil.db"));
  CHECK_EQ_INT(rt_store_exec(s, sql), SQLITE_AUTH);
  CHECK_EQ_INT(access(tmp_path("evil.db"), F_OK), -1);
  CHECK_EQ_INT(rt_store_exec(s, "DETACH DATABASE main"), SQLITE_AUTH);
  snprintf(sql, sizeof sql, "VACUUM INTO '%s'", tmp_path("copy.db"));
  CHECK(rt_store_exec(s, sql) != SQLITE_OK);
  CHECK_EQ_INT(access(tmp_path("copy.db"), F_OK), -1);
  static const char *const refused[] = {"PRAGMA journal_mode=DELETE", "PRAGMA synchronous=OFF",
                                        "PRAGMA locking_mode=EXCLUSIVE", "PRAGMA writable_schema=ON",
                                        "PRAGMA main.journal_mode = delete", "PRAGMA foreign_keys=OFF"};
  for (size_t i = 0; i < sizeof refused / sizeof *refused; i++)
    if (!CHECK_EQ_INT(rt_store_exec(s, refused[i]), SQLITE_AUTH)) fprintf(stderr, "  %s\n", refused[i]);
  char *mode = query_text(s, "PRAGMA journal_mode");
  CHECK_STR(mode, "wal");
  free(mode);
  CHECK_EQ_INT(rt_store_exec(s, "CREATE TABLE g (x); INSERT INTO g VALUES (1); PRAGMA table_info(g)"), SQLITE_OK);
  rt_store_guard(s, 1);
  CHECK_EQ_INT(rt_store_exec(s, "PRAGMA synchronous=FULL"), SQLITE_OK);
  rt_store_close(s);
}

/* :memory: opens too (no WAL there) with the same tables. */
static void test_open_memory(void) {
  rt_store_t *s = open_ok(":memory:");
  if (!s) return;
  char *mode = query_text(s, "PRAGMA journal_mode");
  CHECK_STR(mode, "memory");
  free(mode);
  CHECK(table_exists(s, "bars"));
  CHECK(table_exists(s, "runs"));
  CHECK_EQ_INT(rt_store_migration_version(s, "core"), 6);
  rt_store_close(s);
}

/* A path in a directory that does not exist fails with a message naming the path. */
static void test_open_fails(void) {
  char err[512] = "";
  rt_store_t *s = rt_store_open(tmp_path("no/such/dir/x.db"), 100, err, sizeof err);
  CHECK(s == NULL);
  CHECK_HAS(err, "no/such/dir/x.db");
}

/* Opening the same file again applies nothing: one row per core version, version unchanged. */
static void test_reopen_idempotent(void) {
  const char *path = tmp_path("reopen.db");
  rt_store_t *s = open_ok(path);
  if (!s) return;
  int v = rt_store_migration_version(s, "core");
  CHECK(v >= 2);
  rt_store_close(s);
  s = open_ok(path);
  if (!s) return;
  CHECK_EQ_INT(rt_store_migration_version(s, "core"), v);
  CHECK_EQ_INT(query_int(s, "SELECT count(*) FROM migrations WHERE name = 'core'"), v);
  CHECK_EQ_INT(rt_store_migration_version(s, "never-migrated"), 0);
  rt_store_close(s);
}

/* rt_store_migrate applies only the steps past the stored version; a failing step rolls back
** (its table is absent, the version unchanged) and the message names the set and the step. */
static void test_migrate(void) {
  rt_store_t *s = open_ok(":memory:");
  if (!s) return;
  char err[512] = "";
  const char *const v1[] = {"CREATE TABLE m1 (x INTEGER)"};
  CHECK_EQ_INT(rt_store_migrate(s, "app", v1, 1, err, sizeof err), SQLITE_OK);
  CHECK_EQ_INT(rt_store_migration_version(s, "app"), 1);
  CHECK(table_exists(s, "m1"));

  /* v2 adds a step: only it runs (step 1 again would fail: m1 exists). */
  const char *const v2[] = {"CREATE TABLE m1 (x INTEGER)", "CREATE TABLE m2 (y INTEGER)"};
  CHECK_EQ_INT(rt_store_migrate(s, "app", v2, 2, err, sizeof err), SQLITE_OK);
  CHECK_EQ_INT(rt_store_migration_version(s, "app"), 2);
  CHECK(table_exists(s, "m2"));
  CHECK_EQ_INT(rt_store_migrate(s, "app", v2, 2, err, sizeof err), SQLITE_OK);   /* nothing to do */

  /* Step 3 creates a table and then fails: all of step 3 is rolled back. */
  const char *const v3[] = {"CREATE TABLE m1 (x INTEGER)", "CREATE TABLE m2 (y INTEGER)",
                            "CREATE TABLE m3 (z INTEGER); INSERT INTO no_such_table VALUES (1)"};
  err[0] = 0;
  CHECK(rt_store_migrate(s, "app", v3, 3, err, sizeof err) != SQLITE_OK);
  CHECK_HAS(err, "migration app step 3");
  CHECK_HAS(err, "no_such_table");
  CHECK(!table_exists(s, "m3"));
  CHECK_EQ_INT(rt_store_migration_version(s, "app"), 2);
  CHECK_EQ_INT(rt_store_tx_depth(s), 0);

  /* A database newer than the build is refused. */
  err[0] = 0;
  CHECK(rt_store_migrate(s, "app", v1, 1, err, sizeof err) != SQLITE_OK);
  CHECK_HAS(err, "version 2");
  /* Other sets are independent. */
  CHECK_EQ_INT(rt_store_migration_version(s, "core"), 6);
  rt_store_close(s);
}

/* The same SQL text gives back the same cached statement, reset and with bindings cleared. */
static void test_cache_same_stmt(void) {
  rt_store_t *s = open_ok(":memory:");
  if (!s) return;
  static const char sql[] = "SELECT ?1 + 1";
  sqlite3_stmt *a = NULL, *b = NULL;
  size_t used = 0;
  CHECK_EQ_INT(rt_store_prepare(s, sql, sizeof sql - 1, &a, &used), SQLITE_OK);
  CHECK_EQ_INT(used, sizeof sql - 1);
  sqlite3_bind_int(a, 1, 41);
  CHECK_EQ_INT(sqlite3_step(a), SQLITE_ROW);
  CHECK_EQ_INT(sqlite3_column_int(a, 0), 42);          /* left mid-result on purpose */
  CHECK_EQ_INT(rt_store_prepare(s, sql, sizeof sql - 1, &b, NULL), SQLITE_OK);
  CHECK(a == b);
  CHECK_EQ_INT(sqlite3_step(b), SQLITE_ROW);           /* reset, bindings cleared: NULL + 1 */
  CHECK_EQ_INT(sqlite3_column_type(b, 0), SQLITE_NULL);
  sqlite3_reset(b);

  /* Same text, different length: a different statement (the length is part of the key). */
  sqlite3_stmt *c = NULL;
  CHECK_EQ_INT(rt_store_prepare(s, "SELECT 1; junk", 8, &c, NULL), SQLITE_OK);
  CHECK(c != a);

  /* A syntax error returns the code and leaves a message; nothing is cached. */
  int before = count_stmts(s);
  sqlite3_stmt *d = NULL;
  CHECK_EQ_INT(rt_store_prepare(s, "SELEC 1", 7, &d, NULL), SQLITE_ERROR);
  CHECK_HAS(rt_store_errmsg(s), "syntax error");
  CHECK_EQ_INT(count_stmts(s), before);
  /* Only whitespace or a comment: no statement (MISUSE), no crash. */
  CHECK_EQ_INT(rt_store_prepare(s, "  -- nothing", 12, &d, NULL), SQLITE_MISUSE);
  rt_store_close(s);
}

/* Past 128 distinct statements the least recently used one is finalized; recently used ones stay
** cached (same pointer), an evicted one is prepared again and still works. */
static void test_cache_lru_eviction(void) {
  rt_store_t *s = open_ok(":memory:");
  if (!s) return;
  char sql[64];
  sqlite3_stmt *first = NULL, *st = NULL;
  for (int i = 0; i < 128; i++) {                      /* fills the cache (evicting open's own) */
    snprintf(sql, sizeof sql, "SELECT %d", i);
    CHECK_EQ_INT(rt_store_prepare(s, sql, strlen(sql), &st, NULL), SQLITE_OK);
    if (i == 0) first = st;
  }
  CHECK_EQ_INT(count_stmts(s), 128);
  CHECK_EQ_INT(rt_store_prepare(s, "SELECT 0", 8, &st, NULL), SQLITE_OK);   /* touch: now newest */
  CHECK(st == first);
  CHECK_EQ_INT(rt_store_prepare(s, "SELECT 128", 10, &st, NULL), SQLITE_OK);
  CHECK_EQ_INT(count_stmts(s), 128);                   /* bounded */
  CHECK(stmt_cached(s, "SELECT 0"));                   /* recently used: kept */
  CHECK(!stmt_cached(s, "SELECT 1"));                  /* least recently used: evicted */
  CHECK(stmt_cached(s, "SELECT 2"));
  CHECK_EQ_INT(rt_store_prepare(s, "SELECT 0", 8, &st, NULL), SQLITE_OK);
  CHECK(st == first);

  /* Many more distinct statements: every one still prepares and runs. */
  for (int i = 0; i < 300; i++) {
    snprintf(sql, sizeof sql, "SELECT %d * 2", i);
    CHECK_EQ_INT(rt_store_prepare(s, sql, strlen(sql), &st, NULL), SQLITE_OK);
    CHECK_EQ_INT(sqlite3_step(st), SQLITE_ROW);
    CHECK_EQ_INT(sqlite3_column_int(st, 0), i * 2);
    sqlite3_reset(st);
  }
  CHECK_EQ_INT(count_stmts(s), 128);
  CHECK_EQ_INT(rt_store_prepare(s, "SELECT 1", 8, &st, NULL), SQLITE_OK);   /* evicted: again */
  CHECK_EQ_INT(sqlite3_step(st), SQLITE_ROW);
  CHECK_EQ_INT(sqlite3_column_int(st, 0), 1);
  sqlite3_reset(st);
  /* The store's own statements still work after their eviction. */
  CHECK_EQ_INT(rt_store_migration_version(s, "core"), 6);
  CHECK(rt_store_run_begin(s, "x", 1.0) > 0);
  rt_store_close(s);
}

/* For multi-statement SQL only the first statement is prepared and `used` is its length, also
** when the statement comes from the cache; the caller can walk the rest with it. */
static void test_prepare_used(void) {
  rt_store_t *s = open_ok(":memory:");
  if (!s) return;
  static const char sql[] = "SELECT 1; SELECT 2;";
  sqlite3_stmt *st = NULL;
  size_t used = 0;
  CHECK_EQ_INT(rt_store_prepare(s, sql, sizeof sql - 1, &st, &used), SQLITE_OK);
  CHECK_EQ_INT(used, strlen("SELECT 1;"));
  CHECK_STR(sqlite3_sql(st), "SELECT 1;");
  used = 0;
  CHECK_EQ_INT(rt_store_prepare(s, sql, sizeof sql - 1, &st, &used), SQLITE_OK);   /* cached */
  CHECK_EQ_INT(used, strlen("SELECT 1;"));
  const char *rest = sql + used;
  size_t used2 = 0;
  CHECK_EQ_INT(rt_store_prepare(s, rest, strlen(rest), &st, &used2), SQLITE_OK);
  CHECK_EQ_INT(used2, strlen(" SELECT 2;"));
  CHECK_EQ_INT(sqlite3_step(st), SQLITE_ROW);
  CHECK_EQ_INT(sqlite3_column_int(st, 0), 2);
  sqlite3_reset(st);
  rt_store_close(s);
}

/* rt_store_exec runs several statements; errors come back as codes with a message. */
static void test_exec(void) {
  rt_store_t *s = open_ok(":memory:");
  if (!s) return;
  CHECK_EQ_INT(rt_store_exec(s, "CREATE TABLE t (x INTEGER PRIMARY KEY); INSERT INTO t VALUES (1); "
                                "INSERT INTO t VALUES (2);"), SQLITE_OK);
  CHECK_EQ_INT(query_int(s, "SELECT count(*) FROM t"), 2);
  CHECK_EQ_INT(rt_store_exec(s, "INSERT INTO t VALUES (1)") & 0xff, SQLITE_CONSTRAINT);
  CHECK_HAS(rt_store_errmsg(s), "UNIQUE");
  rt_store_close(s);
}

/* Nested transactions are savepoints: an inner rollback undoes only the inner writes, the outer
** commit keeps the rest; an outer rollback undoes everything; unbalanced calls are MISUSE. */
static void test_nested_transactions(void) {
  rt_store_t *s = open_ok(tmp_path("tx.db"));
  if (!s) return;
  CHECK_EQ_INT(rt_store_exec(s, "CREATE TABLE t (x INTEGER)"), SQLITE_OK);
  CHECK_EQ_INT(rt_store_commit(s), SQLITE_MISUSE);
  CHECK_EQ_INT(rt_store_rollback(s), SQLITE_MISUSE);

  CHECK_EQ_INT(rt_store_begin(s), SQLITE_OK);
  CHECK_EQ_INT(rt_store_tx_depth(s), 1);
  CHECK(!sqlite3_get_autocommit(rt_store_db(s)));
  CHECK_EQ_INT(rt_store_exec(s, "INSERT INTO t VALUES (1)"), SQLITE_OK);
  CHECK_EQ_INT(rt_store_begin(s), SQLITE_OK);                  /* savepoint */
  CHECK_EQ_INT(rt_store_tx_depth(s), 2);
  CHECK_EQ_INT(rt_store_exec(s, "INSERT INTO t VALUES (2)"), SQLITE_OK);
  CHECK_EQ_INT(rt_store_begin(s), SQLITE_OK);                  /* savepoint in a savepoint */
  CHECK_EQ_INT(rt_store_exec(s, "INSERT INTO t VALUES (3)"), SQLITE_OK);
  CHECK_EQ_INT(rt_store_commit(s), SQLITE_OK);                 /* 3 joins level 2 */
  CHECK_EQ_INT(rt_store_tx_depth(s), 2);
  CHECK_EQ_INT(rt_store_rollback(s), SQLITE_OK);               /* drops 2 and 3 */
  CHECK_EQ_INT(rt_store_tx_depth(s), 1);
  CHECK(!sqlite3_get_autocommit(rt_store_db(s)));              /* outer still open */
  CHECK_EQ_INT(rt_store_begin(s), SQLITE_OK);                  /* a savepoint again at level 2 */
  CHECK_EQ_INT(rt_store_exec(s, "INSERT INTO t VALUES (4)"), SQLITE_OK);
  CHECK_EQ_INT(rt_store_commit(s), SQLITE_OK);
  CHECK_EQ_INT(rt_store_commit(s), SQLITE_OK);
  CHECK_EQ_INT(rt_store_tx_depth(s), 0);
  CHECK(sqlite3_get_autocommit(rt_store_db(s)));
  char *all = query_text(s, "SELECT group_concat(x) FROM (SELECT x FROM t ORDER BY x)");
  CHECK_STR(all, "1,4");
  free(all);

  /* Outer rollback with a savepoint inside: nothing stays. */
  CHECK_EQ_INT(rt_store_begin(s), SQLITE_OK);
  CHECK_EQ_INT(rt_store_exec(s, "INSERT INTO t VALUES (5)"), SQLITE_OK);
  CHECK_EQ_INT(rt_store_begin(s), SQLITE_OK);
  CHECK_EQ_INT(rt_store_exec(s, "INSERT INTO t VALUES (6)"), SQLITE_OK);
  CHECK_EQ_INT(rt_store_commit(s), SQLITE_OK);
  CHECK_EQ_INT(rt_store_rollback(s), SQLITE_OK);
  CHECK_EQ_INT(rt_store_tx_depth(s), 0);
  CHECK_EQ_INT(query_int(s, "SELECT count(*) FROM t"), 2);

  /* Closing with a transaction open rolls it back. */
  CHECK_EQ_INT(rt_store_begin(s), SQLITE_OK);
  CHECK_EQ_INT(rt_store_exec(s, "INSERT INTO t VALUES (7)"), SQLITE_OK);
  rt_store_close(s);
  s = open_ok(tmp_path("tx.db"));
  if (!s) return;
  CHECK_EQ_INT(query_int(s, "SELECT count(*) FROM t"), 2);
  rt_store_close(s);
}

/* Run history: begin writes a 'running' row, end completes it with status, rows and error. */
static void test_run_history(void) {
  rt_store_t *s = open_ok(":memory:");
  if (!s) return;
  int64_t a = rt_store_run_begin(s, "binance.klines", 1000.5);
  int64_t b = rt_store_run_begin(s, "coingecko.list", 1001.0);
  CHECK(a > 0);
  CHECK(b > a);
  char sql[256];
  snprintf(sql, sizeof sql, "SELECT script || '|' || started || '|' || status || '|' || rows || '|' || "
                            "coalesce(ended, 'null') || '|' || coalesce(error, 'null') FROM runs WHERE id = %lld",
           (long long)a);
  char *row = query_text(s, sql);
  CHECK_STR(row, "binance.klines|1000.5|running|0|null|null");
  free(row);

  CHECK_EQ_INT(rt_store_run_end(s, a, 1002.25, "ok", 1000, NULL), SQLITE_OK);
  row = query_text(s, sql);
  CHECK_STR(row, "binance.klines|1000.5|ok|1000|1002.25|null");
  free(row);

  CHECK_EQ_INT(rt_store_run_end(s, b, 1003.0, "error", 0, "boom: it broke"), SQLITE_OK);
  snprintf(sql, sizeof sql, "SELECT status || '|' || error || '|' || ended FROM runs WHERE id = %lld", (long long)b);
  row = query_text(s, sql);
  CHECK_STR(row, "error|boom: it broke|1003.0");
  free(row);
  /* A NULL error after a non-NULL one on the cached statement stays NULL (bindings cleared). */
  int64_t c = rt_store_run_begin(s, "third", 1004.0);
  CHECK_EQ_INT(rt_store_run_end(s, c, 1005.0, "ok", 3, NULL), SQLITE_OK);
  snprintf(sql, sizeof sql, "SELECT count(*) FROM runs WHERE id = %lld AND error IS NULL", (long long)c);
  CHECK_EQ_INT(query_int(s, sql), 1);
  rt_store_close(s);
}

/* A run left 'running' (the process died mid-run) is marked 'interrupted' by the next open, with
** ended = started; finished runs are untouched. */
static void test_interrupted_runs(void) {
  const char *path = tmp_path("crash.db");
  rt_store_t *s = open_ok(path);
  if (!s) return;
  int64_t done = rt_store_run_begin(s, "a", 10.0);
  rt_store_run_end(s, done, 11.0, "ok", 5, NULL);
  int64_t cut = rt_store_run_begin(s, "b", 20.0);
  CHECK(cut > 0);
  rt_store_close(s);                                   /* no run_end: as after kill -9 */
  s = open_ok(path);
  if (!s) return;
  char sql[160];
  snprintf(sql, sizeof sql, "SELECT status || '|' || ended FROM runs WHERE id = %lld", (long long)cut);
  char *row = query_text(s, sql);
  CHECK_STR(row, "interrupted|20.0");
  free(row);
  snprintf(sql, sizeof sql, "SELECT status || '|' || ended FROM runs WHERE id = %lld", (long long)done);
  row = query_text(s, sql);
  CHECK_STR(row, "ok|11.0");
  free(row);
  rt_store_close(s);
}

/* Code names: extended codes map to their primary; a real constraint violation and a real lock
** held by another connection give SQLITE_CONSTRAINT and SQLITE_BUSY, and a failed begin leaves
** the depth at 0. */
static void test_code_names(void) {
  CHECK_STR(rt_store_code_name(SQLITE_OK), "SQLITE_OK");
  CHECK_STR(rt_store_code_name(SQLITE_BUSY), "SQLITE_BUSY");
  CHECK_STR(rt_store_code_name(SQLITE_BUSY_SNAPSHOT), "SQLITE_BUSY");
  CHECK_STR(rt_store_code_name(SQLITE_CONSTRAINT), "SQLITE_CONSTRAINT");
  CHECK_STR(rt_store_code_name(SQLITE_CONSTRAINT_PRIMARYKEY), "SQLITE_CONSTRAINT");
  CHECK_STR(rt_store_code_name(SQLITE_READONLY), "SQLITE_READONLY");
  CHECK_STR(rt_store_code_name(12345678), "SQLITE_ERROR");

  const char *path = tmp_path("busy.db");
  rt_store_t *s = open_ok(path);
  if (!s) return;
  static const char ins[] = "INSERT INTO candles (source, instrument, timeframe, ts) VALUES ('s', 'i', '1m', 0)";
  sqlite3_stmt *st;
  CHECK_EQ_INT(rt_store_prepare(s, ins, sizeof ins - 1, &st, NULL), SQLITE_OK);
  CHECK_EQ_INT(sqlite3_step(st), SQLITE_DONE);
  CHECK_EQ_INT(rt_store_prepare(s, ins, sizeof ins - 1, &st, NULL), SQLITE_OK);
  int rc = sqlite3_step(st);
  CHECK_STR(rt_store_code_name(rc), "SQLITE_CONSTRAINT");
  CHECK_STR(rt_store_code_name(sqlite3_extended_errcode(rt_store_db(s))), "SQLITE_CONSTRAINT");
  sqlite3_reset(st);

  sqlite3 *other = NULL;
  CHECK_EQ_INT(sqlite3_open(path, &other), SQLITE_OK);
  CHECK_EQ_INT(sqlite3_exec(other, "BEGIN IMMEDIATE", NULL, NULL, NULL), SQLITE_OK);
  rc = rt_store_begin(s);                              /* waits busy_timeout (100 ms), then gives up */
  CHECK_STR(rt_store_code_name(rc), "SQLITE_BUSY");
  CHECK_EQ_INT(rt_store_tx_depth(s), 0);
  sqlite3_exec(other, "ROLLBACK", NULL, NULL, NULL);
  sqlite3_close(other);
  CHECK_EQ_INT(rt_store_begin(s), SQLITE_OK);          /* free again */
  CHECK_EQ_INT(rt_store_commit(s), SQLITE_OK);
  rt_store_close(s);
}

static void rm_tmpdir(void) {
  static const char *const files[] = {"open.db", "reopen.db", "tx.db", "crash.db", "busy.db"};
  char p[600];
  for (size_t i = 0; i < sizeof files / sizeof *files; i++) {
    static const char *const suffix[] = {"", "-wal", "-shm", "-journal"};
    for (size_t j = 0; j < 4; j++) {
      snprintf(p, sizeof p, "%s/%s%s", tmpdir, files[i], suffix[j]);
      unlink(p);
    }
  }
  rmdir(tmpdir);
}

/* Commit `n` transactions of 100 rows x 1 KB each (about 25 WAL pages a commit). */
static void write_blobs(rt_store_t *s, int n) {
  CHECK_EQ_INT(rt_store_exec(s, "CREATE TABLE IF NOT EXISTS blobs (b BLOB)"), SQLITE_OK);
  for (int i = 0; i < n; i++)
    CHECK_EQ_INT(rt_store_exec(s, "BEGIN; WITH RECURSIVE k(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM k "
                              "WHERE x < 100) INSERT INTO blobs SELECT randomblob(1000) FROM k; COMMIT"),
             SQLITE_OK);
}

static long long file_size(const char *path) {
  struct stat st;
  return stat(path, &st) == 0 ? (long long)st.st_size : -1;
}

static void test_checkpoint_on_the_thread_pool(void) {
  const char *path = tmp_path("ckpt.db");
  rt_store_t *s = open_ok(path);
  rt_log_t *log = rt_log_new(stderr);
  uv_loop_t loop;
  uv_loop_init(&loop);
  long long before = file_size(path);
  rt_checkpoint_t *c = rt_checkpoint_start(&loop, s, log, 20);
  CHECK(c != NULL);
  write_blobs(s, 4);                           /* the first commit queues a job */
  uint64_t runs, frames;
  rt_checkpoint_stats(c, &runs, &frames);
  CHECK_EQ_INT((int)runs, 0);                           /* reported in the loop's after-work callback */
  uv_run(&loop, UV_RUN_DEFAULT);               /* returns once the job is done */
  rt_checkpoint_stats(c, &runs, &frames);
  CHECK_EQ_INT((int)runs, 1);
  CHECK(frames >= 20);
  CHECK(file_size(path) > before + 20 * 1024);  /* the pages reached the database file */
  write_blobs(s, 2);
  uv_run(&loop, UV_RUN_DEFAULT);
  rt_checkpoint_stats(c, &runs, &frames);
  CHECK_EQ_INT((int)runs, 2);
  /* stopping with a job in flight: the after-work callback frees it (ASan watches) */
  write_blobs(s, 1);
  rt_checkpoint_stop(c);
  uv_run(&loop, UV_RUN_DEFAULT);
  CHECK_EQ_INT(query_int(s, "SELECT count(*) FROM blobs"), 700);
  CHECK_EQ_INT(uv_loop_close(&loop), 0);
  rt_store_close(s);
  rt_log_free(log);
}

int main(void) {
  const char *base = getenv("TMPDIR");
  snprintf(tmpdir, sizeof tmpdir, "%s/candled-test-store-XXXXXX", base && *base ? base : "/tmp");
  if (!mkdtemp(tmpdir)) {
    perror("mkdtemp");
    return 1;
  }
  RUN(test_open_file_wal_and_tables);
  RUN(test_open_memory);
  RUN(test_guard);
  RUN(test_open_fails);
  RUN(test_reopen_idempotent);
  RUN(test_migrate);
  RUN(test_cache_same_stmt);
  RUN(test_cache_lru_eviction);
  RUN(test_prepare_used);
  RUN(test_exec);
  RUN(test_nested_transactions);
  RUN(test_run_history);
  RUN(test_interrupted_runs);
  RUN(test_code_names);
  RUN(test_checkpoint_on_the_thread_pool);
  rm_tmpdir();
  return CHECK_DONE();
}
