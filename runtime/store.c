/*
** runtime/store.c - the one SQLite writer connection.
**
** WAL mode with synchronous=NORMAL: a crash loses at most the last transactions, never corrupts the
** file, and readers in other processes never block this writer. Statements are cached by SQL text
** (a small table with LRU eviction) so hot upserts are prepared once. This file opens and closes the
** connection, holds the core migrations and the run history; statements, transactions and the
** migration machinery are store_conn.c.
*/
#include "runtime/store.h"

#include "runtime/store_int.h"
#include "runtime/store_series_int.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* The runtime's own tables and the core market-data tables (docs/architecture.md, Store). Append, never edit:
** each string is one migration version. */
static const char *const core_steps[] = {
  /* 1: market data */
  "CREATE TABLE candles ("
  "  source TEXT NOT NULL, instrument TEXT NOT NULL, timeframe TEXT NOT NULL, ts INTEGER NOT NULL,"
  "  open REAL, high REAL, low REAL, close REAL, volume REAL,"
  "  quote_volume REAL, trades INTEGER,"
  "  PRIMARY KEY (source, instrument, timeframe, ts)) WITHOUT ROWID;"
  "CREATE TABLE trades ("
  "  source TEXT NOT NULL, instrument TEXT NOT NULL, trade_id TEXT NOT NULL, ts INTEGER NOT NULL,"
  "  price REAL, amount REAL, volume_usd REAL, side TEXT,"
  "  PRIMARY KEY (source, instrument, trade_id));"
  "CREATE INDEX trades_by_time ON trades (source, instrument, ts);"
  "CREATE TABLE instruments ("
  "  source TEXT NOT NULL, instrument TEXT NOT NULL, symbol TEXT, name TEXT, base TEXT, quote TEXT,"
  "  status TEXT, first_seen INTEGER, last_seen INTEGER,"
  "  PRIMARY KEY (source, instrument));",
  /* 2: runtime bookkeeping */
  "CREATE TABLE runs ("
  "  id INTEGER PRIMARY KEY, script TEXT NOT NULL, started REAL NOT NULL, ended REAL,"
  "  status TEXT NOT NULL, rows INTEGER NOT NULL DEFAULT 0, error TEXT);"
  "CREATE INDEX runs_by_script ON runs (script, started);"
  "CREATE TABLE script_state (script TEXT PRIMARY KEY, state TEXT NOT NULL, updated REAL NOT NULL);",
  /* 3: collector metadata, alerts, budget state and metrics */
  "CREATE TABLE collectors ("
  "  script TEXT PRIMARY KEY, runs INTEGER NOT NULL DEFAULT 0, ok INTEGER NOT NULL DEFAULT 0,"
  "  failures INTEGER NOT NULL DEFAULT 0, consecutive_failures INTEGER NOT NULL DEFAULT 0,"
  "  rows INTEGER NOT NULL DEFAULT 0, total_duration REAL NOT NULL DEFAULT 0,"
  "  mean_duration REAL GENERATED ALWAYS AS (total_duration / runs) VIRTUAL,"
  "  success_rate REAL GENERATED ALWAYS AS (1.0 * ok / runs) VIRTUAL,"
  "  last_run REAL, last_status TEXT, last_success REAL,"
  "  last_error TEXT, last_error_at REAL);"
  "CREATE TABLE alerts ("
  "  id INTEGER PRIMARY KEY, kind TEXT NOT NULL, subject TEXT NOT NULL, level TEXT NOT NULL,"
  "  message TEXT NOT NULL, opened REAL NOT NULL, last_seen REAL NOT NULL,"
  "  count INTEGER NOT NULL DEFAULT 1, resolved REAL);"
  "CREATE UNIQUE INDEX alerts_open ON alerts (kind, subject) WHERE resolved IS NULL;"
  "CREATE TABLE budget_state ("
  "  budget TEXT NOT NULL, key TEXT NOT NULL, start REAL NOT NULL, value REAL NOT NULL, note TEXT,"
  "  PRIMARY KEY (budget, key));"
  "CREATE TABLE budget_metrics ("
  "  budget TEXT NOT NULL, minute INTEGER NOT NULL, requests INTEGER NOT NULL DEFAULT 0,"
  "  weight REAL NOT NULL DEFAULT 0, waits INTEGER NOT NULL DEFAULT 0,"
  "  wait_seconds REAL NOT NULL DEFAULT 0, retries INTEGER NOT NULL DEFAULT 0,"
  "  throttled INTEGER NOT NULL DEFAULT 0, banned INTEGER NOT NULL DEFAULT 0,"
  "  failures INTEGER NOT NULL DEFAULT 0, PRIMARY KEY (budget, minute));",
  /* 4: once the series bookkeeping (backfill cursors, known-empty intervals); scripts/lib/series.lua
  ** owns that schema now (db.migrate "series") and recognises what this step made in an older
  ** database. Kept empty so that every version number keeps its meaning. */
  "",
  /* 5: the series catalogue (store_series.h). Candles and trades are rows keyed by a series id;
  ** the views `candles` and `trades` (store_series_views.c) keep the columns readers use. The tables of
  ** the layout before are renamed, and their rows moved in verified batches
  ** (store_migrate_series.c) while the daemon runs. */
  "CREATE TABLE series ("
  "  id INTEGER PRIMARY KEY, source TEXT NOT NULL, instrument TEXT NOT NULL, timeframe TEXT NOT NULL,"
  "  UNIQUE (source, instrument, timeframe));"
  "CREATE TABLE bars ("
  "  series INTEGER NOT NULL, ts INTEGER NOT NULL, open REAL, high REAL, low REAL, close REAL,"
  "  volume REAL, quote_volume REAL, trades INTEGER, PRIMARY KEY (series, ts)) WITHOUT ROWID;"
  "CREATE TABLE ticks ("
  "  series INTEGER NOT NULL, trade_id TEXT NOT NULL, ts INTEGER NOT NULL, price REAL, amount REAL,"
  "  volume_usd REAL, side TEXT, PRIMARY KEY (series, trade_id)) WITHOUT ROWID;"
  "CREATE INDEX ticks_by_time ON ticks (series, ts);"
  /* legacy_alter_table: a user's own view or trigger naming candles keeps naming candles (the
  ** view over the catalogue), instead of being rewritten to the table that goes away */
  "PRAGMA legacy_alter_table = ON;"
  "ALTER TABLE candles RENAME TO candles_v4;"
  "ALTER TABLE trades RENAME TO trades_v4;"
  "PRAGMA legacy_alter_table = OFF;",
  /* 6: once the series bookkeeping keyed by series id: scripts/lib/series.lua now (see 4). */
  "",
};

rt_store_t *rt_store_open(const char *path, int busy_timeout_ms, char *err, size_t errlen) {
  rt_store_t *s = calloc(1, sizeof *s);
  if (!s || !(s->path = strdup(path))) {
    free(s);
    snprintf(err, errlen, "out of memory");
    return NULL;
  }
  int rc = sqlite3_open_v2(path, &s->db, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_NOMUTEX, NULL);
  if (rc != SQLITE_OK) {
    snprintf(err, errlen, "%s: %s", path, s->db ? sqlite3_errmsg(s->db) : sqlite3_errstr(rc));
    goto fail;
  }
  int timeout = busy_timeout_ms > 0 ? busy_timeout_ms : 5000;
  sqlite3_busy_timeout(s->db, timeout);
  /* Switching a new file to WAL takes an exclusive lock, and SQLite answers SQLITE_BUSY without
  ** calling the busy handler while another process opening the same file holds it: retried here
  ** for as long as the busy timeout. */
  for (int waited = 0;; waited += 10) {
    rc = rt_store_exec(s, "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL; "
                          "PRAGMA foreign_keys=ON; PRAGMA temp_store=MEMORY;");
    if ((rc & 0xff) != SQLITE_BUSY || waited >= timeout) break;
    sqlite3_sleep(10);
  }
  if (rc != SQLITE_OK) {
    snprintf(err, errlen, "%s: %s", path, sqlite3_errmsg(s->db));
    goto fail;
  }
  if (rt_store_migrate(s, "core", core_steps, (int)(sizeof core_steps / sizeof *core_steps), err,
                       errlen) != SQLITE_OK)
    goto fail;
  if (!(s->series = rt_store_series_open(s, err, errlen))) goto fail;
  s->on_rollback = (void (*)(void *))rt_store_series_forget;   /* savepoint rollbacks too */
  s->on_rollback_ud = s->series;
  /* A run still marked running was cut short by a crash or kill -9. */
  rt_store_exec(s, "UPDATE runs SET status = 'interrupted', ended = started WHERE status = 'running'");
  return s;
fail:
  rt_store_close(s);
  return NULL;
}

void rt_store_close(rt_store_t *s) {
  if (!s) return;
  if (s->db) {
    if (s->depth > 0) sqlite3_exec(s->db, "ROLLBACK", NULL, NULL, NULL);
    rt_store_series_close(s->series);
    for (int i = 0; i < STMT_CACHE; i++) {
      sqlite3_finalize(s->cache[i].stmt);
      free(s->cache[i].sql);
    }
    sqlite3_close_v2(s->db);
  }
  free(s->path);
  free(s);
}

/* ---- run history ---------------------------------------------------------------------------- */

int64_t rt_store_run_begin(rt_store_t *s, const char *script, double started) {
  sqlite3_stmt *st;
  static const char sql[] = "INSERT INTO runs (script, started, status) VALUES (?, ?, 'running')";
  if (rt_store_prepare(s, sql, sizeof sql - 1, &st, NULL) != SQLITE_OK) return -1;
  sqlite3_bind_text(st, 1, script, -1, SQLITE_STATIC);
  sqlite3_bind_double(st, 2, started);
  int rc = sqlite3_step(st);
  sqlite3_reset(st);
  return rc == SQLITE_DONE ? sqlite3_last_insert_rowid(s->db) : -1;
}

int rt_store_run_end(rt_store_t *s, int64_t id, double ended, const char *status, int64_t rows,
                     const char *error) {
  sqlite3_stmt *st;
  static const char sql[] = "UPDATE runs SET ended = ?, status = ?, rows = ?, error = ? WHERE id = ?";
  int rc = rt_store_prepare(s, sql, sizeof sql - 1, &st, NULL);
  if (rc != SQLITE_OK) return rc;
  sqlite3_bind_double(st, 1, ended);
  sqlite3_bind_text(st, 2, status, -1, SQLITE_STATIC);
  sqlite3_bind_int64(st, 3, rows);
  if (error) sqlite3_bind_text(st, 4, error, -1, SQLITE_STATIC);
  sqlite3_bind_int64(st, 5, id);
  rc = sqlite3_step(st);
  sqlite3_reset(st);
  return rc == SQLITE_DONE ? SQLITE_OK : rc;
}

int rt_store_collector_update(rt_store_t *s, const char *script, double started, double ended,
                              const char *status, int64_t rows, const char *error) {
  sqlite3_stmt *st;
  /* ?1 script ?2 ended ?3 ok (0/1) ?4 rows ?5 duration ?6 status ?7 error */
  static const char sql[] =
    "INSERT INTO collectors (script, runs, ok, failures, consecutive_failures, rows, total_duration,"
    "  last_run, last_status, last_success, last_error, last_error_at)"
    " VALUES (?1, 1, ?3, 1 - ?3, 1 - ?3, ?4, ?5, ?2, ?6,"
    "  CASE WHEN ?3 THEN ?2 END, ?7, CASE WHEN ?3 THEN NULL ELSE ?2 END)"
    " ON CONFLICT (script) DO UPDATE SET runs = runs + 1, ok = ok + ?3, failures = failures + 1 - ?3,"
    "  consecutive_failures = CASE WHEN ?3 THEN 0 ELSE consecutive_failures + 1 END,"
    "  rows = rows + ?4, total_duration = total_duration + ?5,"
    "  last_run = ?2, last_status = ?6, last_success = CASE WHEN ?3 THEN ?2 ELSE last_success END,"
    "  last_error = CASE WHEN ?3 THEN last_error ELSE ?7 END,"
    "  last_error_at = CASE WHEN ?3 THEN last_error_at ELSE ?2 END"
    " RETURNING consecutive_failures";
  int rc = rt_store_prepare(s, sql, sizeof sql - 1, &st, NULL);
  if (rc != SQLITE_OK) return -1;
  int ok = strcmp(status, "ok") == 0;
  sqlite3_bind_text(st, 1, script, -1, SQLITE_STATIC);
  sqlite3_bind_double(st, 2, ended);
  sqlite3_bind_int(st, 3, ok);
  sqlite3_bind_int64(st, 4, rows);
  sqlite3_bind_double(st, 5, ended - started);
  sqlite3_bind_text(st, 6, status, -1, SQLITE_STATIC);
  if (error) sqlite3_bind_text(st, 7, error, -1, SQLITE_STATIC);
  int n = sqlite3_step(st) == SQLITE_ROW ? sqlite3_column_int(st, 0) : -1;
  sqlite3_reset(st);
  return n;
}
