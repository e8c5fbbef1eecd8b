/*
** runtime/store_conn.c - the store's connection at work: cached statements (a small table by SQL
** text, LRU eviction), transactions (the outermost BEGIN IMMEDIATE, inner ones savepoints), the
** migration machinery and the accessors. It calls nothing of the series layer: store.c hands it a
** rollback listener instead.
*/
#include "runtime/store.h"

#include "runtime/store_int.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static uint32_t hash_sql(const char *s, size_t n) {
  uint32_t h = 2166136261u;                    /* FNV-1a */
  for (size_t i = 0; i < n; i++) h = (h ^ (unsigned char)s[i]) * 16777619u;
  return h;
}

const char *rt_store_errmsg(rt_store_t *s) { return sqlite3_errmsg(s->db); }
sqlite3 *rt_store_db(rt_store_t *s) { return s->db; }
const char *rt_store_path(const rt_store_t *s) { return s->path; }
rt_store_series_t *rt_store_series_of(rt_store_t *s) { return s->series; }
int rt_store_tx_depth(const rt_store_t *s) { return s->depth; }

const char *rt_store_code_name(int rc) {
  switch (rc & 0xff) {
  case SQLITE_OK: return "SQLITE_OK";
  case SQLITE_ERROR: return "SQLITE_ERROR";
  case SQLITE_BUSY: return "SQLITE_BUSY";
  case SQLITE_LOCKED: return "SQLITE_LOCKED";
  case SQLITE_NOMEM: return "SQLITE_NOMEM";
  case SQLITE_READONLY: return "SQLITE_READONLY";
  case SQLITE_IOERR: return "SQLITE_IOERR";
  case SQLITE_CORRUPT: return "SQLITE_CORRUPT";
  case SQLITE_FULL: return "SQLITE_FULL";
  case SQLITE_CANTOPEN: return "SQLITE_CANTOPEN";
  case SQLITE_CONSTRAINT: return "SQLITE_CONSTRAINT";
  case SQLITE_MISMATCH: return "SQLITE_MISMATCH";
  case SQLITE_RANGE: return "SQLITE_RANGE";
  case SQLITE_NOTADB: return "SQLITE_NOTADB";
  default: return "SQLITE_ERROR";
  }
}

int rt_store_prepare(rt_store_t *s, const char *sql, size_t len, sqlite3_stmt **out, size_t *used) {
  uint32_t h = hash_sql(sql, len);
  cache_entry_t *victim = NULL;
  for (int i = 0; i < STMT_CACHE; i++) {
    cache_entry_t *e = &s->cache[i];
    if (e->sql && e->hash == h && e->len == len && memcmp(e->sql, sql, len) == 0) {
      e->used = ++s->clock;
      sqlite3_reset(e->stmt);
      sqlite3_clear_bindings(e->stmt);
      *out = e->stmt;
      if (used) *used = e->used_len;
      return SQLITE_OK;
    }
    if (!victim || !e->sql || (victim->sql && e->used < victim->used)) victim = e;
  }
  sqlite3_stmt *st = NULL;
  const char *tail = NULL;
  int rc = sqlite3_prepare_v3(s->db, sql, (int)len, SQLITE_PREPARE_PERSISTENT, &st, &tail);
  if (rc != SQLITE_OK) return rc;
  if (!st) return SQLITE_MISUSE;               /* only whitespace or comments */
  char *copy = malloc(len + 1);
  if (!copy) {
    sqlite3_finalize(st);
    return SQLITE_NOMEM;
  }
  memcpy(copy, sql, len);
  copy[len] = 0;
  if (victim->sql) {                            /* evict the least recently used statement */
    sqlite3_finalize(victim->stmt);
    free(victim->sql);
  }
  victim->sql = copy;
  victim->len = len;
  victim->used_len = tail ? (size_t)(tail - sql) : len;
  victim->hash = h;
  victim->stmt = st;
  victim->used = ++s->clock;
  *out = st;
  if (used) *used = victim->used_len;
  return SQLITE_OK;
}

int rt_store_exec(rt_store_t *s, const char *sql) { return sqlite3_exec(s->db, sql, NULL, NULL, NULL); }

int rt_store_begin(rt_store_t *s) {
  char sql[48];
  if (s->depth == 0) snprintf(sql, sizeof sql, "BEGIN IMMEDIATE");
  else snprintf(sql, sizeof sql, "SAVEPOINT rt_%d", s->depth);
  int rc = rt_store_exec(s, sql);
  if (rc == SQLITE_OK) s->depth++;
  return rc;
}

int rt_store_commit(rt_store_t *s) {
  char sql[48];
  if (s->depth <= 0) return SQLITE_MISUSE;
  if (s->depth == 1) snprintf(sql, sizeof sql, "COMMIT");
  else snprintf(sql, sizeof sql, "RELEASE rt_%d", s->depth - 1);
  int rc = rt_store_exec(s, sql);
  if (rc == SQLITE_OK) s->depth--;
  if (rc == SQLITE_OK && s->depth == 0 && s->on_tx) s->on_tx(s->on_tx_ud, 1, 0);
  return rc;
}

void rt_store_on_tx(rt_store_t *s, rt_store_tx_fn fn, void *ud) {
  s->on_tx = fn;
  s->on_tx_ud = ud;
}

int rt_store_rollback(rt_store_t *s) {
  char sql[64];
  if (s->depth <= 0) return SQLITE_MISUSE;
  if (s->depth == 1) snprintf(sql, sizeof sql, "ROLLBACK");
  else snprintf(sql, sizeof sql, "ROLLBACK TO rt_%d; RELEASE rt_%d", s->depth - 1, s->depth - 1);
  int rc = rt_store_exec(s, sql);
  if (s->on_rollback) s->on_rollback(s->on_rollback_ud);   /* e.g. catalogue rows made in it are gone */
  s->depth--;                                  /* even on error: SQLite ended the transaction */
  if (s->depth == 0 && !sqlite3_get_autocommit(s->db)) sqlite3_exec(s->db, "ROLLBACK", 0, 0, 0);
  if (s->on_tx) s->on_tx(s->on_tx_ud, 0, s->depth);
  return rc;
}

/* ---- migrations ----------------------------------------------------------------------------- */

static int ensure_migrations_table(rt_store_t *s) {
  return rt_store_exec(s, "CREATE TABLE IF NOT EXISTS migrations (name TEXT NOT NULL, "
                          "version INTEGER NOT NULL, applied REAL NOT NULL, PRIMARY KEY (name, version))");
}

int rt_store_migration_version(rt_store_t *s, const char *name) {
  sqlite3_stmt *st;
  if (ensure_migrations_table(s) != SQLITE_OK) return -1;
  static const char sql[] = "SELECT coalesce(max(version), 0) FROM migrations WHERE name = ?";
  if (rt_store_prepare(s, sql, sizeof sql - 1, &st, NULL) != SQLITE_OK) return -1;
  sqlite3_bind_text(st, 1, name, -1, SQLITE_STATIC);
  int v = sqlite3_step(st) == SQLITE_ROW ? sqlite3_column_int(st, 0) : -1;
  sqlite3_reset(st);
  return v;
}

int rt_store_migration_record(rt_store_t *s, const char *name, int version) {
  sqlite3_stmt *st;
  static const char sql[] =
    "INSERT INTO migrations (name, version, applied) VALUES (?, ?, (julianday('now') - 2440587.5) * 86400.0)";
  int rc = rt_store_prepare(s, sql, sizeof sql - 1, &st, NULL);
  if (rc != SQLITE_OK) return rc;
  sqlite3_bind_text(st, 1, name, -1, SQLITE_STATIC);
  sqlite3_bind_int(st, 2, version);
  rc = sqlite3_step(st);
  sqlite3_reset(st);
  return rc == SQLITE_DONE ? SQLITE_OK : rc;
}

int rt_store_migration_begin(rt_store_t *s, const char *name, int *have) {
  int rc = rt_store_begin(s);
  if (rc != SQLITE_OK) return rc;
  if ((*have = rt_store_migration_version(s, name)) < 0) {
    rc = sqlite3_errcode(s->db);
    rt_store_rollback(s);
    return rc != SQLITE_OK ? rc : SQLITE_ERROR;
  }
  return SQLITE_OK;
}

int rt_store_migrate(rt_store_t *s, const char *name, const char *const *steps, int nsteps,
                     char *err, size_t errlen) {
  if (rt_store_migration_version(s, name) == nsteps) return SQLITE_OK;   /* the common case: no lock */
  for (;;) {
    int have, rc = rt_store_migration_begin(s, name, &have);
    if (rc != SQLITE_OK) {
      snprintf(err, errlen, "migration %s: %s", name, sqlite3_errmsg(s->db));
      return rc;
    }
    if (have >= nsteps) {                      /* done, here or by another process meanwhile */
      rt_store_commit(s);
      if (have == nsteps) return SQLITE_OK;
      snprintf(err, errlen, "migration %s: database is at version %d, this build knows %d", name, have,
               nsteps);
      return SQLITE_ERROR;
    }
    if ((rc = rt_store_exec(s, steps[have])) != SQLITE_OK ||
        (rc = rt_store_migration_record(s, name, have + 1)) != SQLITE_OK) {
      snprintf(err, errlen, "migration %s step %d: %s", name, have + 1, sqlite3_errmsg(s->db));
      rt_store_rollback(s);
      return rc;
    }
    if ((rc = rt_store_commit(s)) != SQLITE_OK) {
      snprintf(err, errlen, "migration %s: %s", name, sqlite3_errmsg(s->db));
      rt_store_rollback(s);
      return rc;
    }
  }
}
