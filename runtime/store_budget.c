/*
** runtime/store_budget.c - budget_state and budget_metrics (see store_budget.h).
*/
#include "runtime/store_budget.h"

int rt_store_budget_save(rt_store_t *s, const char *budget, const char *key, double start, double value,
                         const char *note) {
  sqlite3_stmt *st;
  static const char sql[] =
    "INSERT INTO budget_state (budget, key, start, value, note) VALUES (?, ?, ?, ?, ?)"
    " ON CONFLICT (budget, key) DO UPDATE SET start = excluded.start, value = excluded.value,"
    " note = excluded.note";
  int rc = rt_store_prepare(s, sql, sizeof sql - 1, &st, NULL);
  if (rc != SQLITE_OK) return rc;
  sqlite3_bind_text(st, 1, budget, -1, SQLITE_STATIC);
  sqlite3_bind_text(st, 2, key, -1, SQLITE_STATIC);
  sqlite3_bind_double(st, 3, start);
  sqlite3_bind_double(st, 4, value);
  if (note) sqlite3_bind_text(st, 5, note, -1, SQLITE_STATIC);
  rc = sqlite3_step(st);
  sqlite3_reset(st);
  return rc == SQLITE_DONE ? SQLITE_OK : rc;
}

int rt_store_budget_load(rt_store_t *s, const char *budget,
                         void (*fn)(void *ud, const char *key, double start, double value, const char *note),
                         void *ud) {
  sqlite3_stmt *st;
  static const char sql[] = "SELECT key, start, value, note FROM budget_state WHERE budget = ?";
  int rc = rt_store_prepare(s, sql, sizeof sql - 1, &st, NULL);
  if (rc != SQLITE_OK) return rc;
  sqlite3_bind_text(st, 1, budget, -1, SQLITE_STATIC);
  while ((rc = sqlite3_step(st)) == SQLITE_ROW)
    fn(ud, (const char *)sqlite3_column_text(st, 0), sqlite3_column_double(st, 1), sqlite3_column_double(st, 2),
       (const char *)sqlite3_column_text(st, 3));
  sqlite3_reset(st);
  return rc == SQLITE_DONE ? SQLITE_OK : rc;
}

int rt_store_budget_metrics(rt_store_t *s, const char *budget, int64_t minute, const rt_store_budget_minute_t *m) {
  sqlite3_stmt *st;
  static const char sql[] =
    "INSERT INTO budget_metrics (budget, minute, requests, weight, waits, wait_seconds, retries,"
    " throttled, banned, failures) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10)"
    " ON CONFLICT (budget, minute) DO UPDATE SET requests = requests + ?3, weight = weight + ?4,"
    " waits = waits + ?5, wait_seconds = wait_seconds + ?6, retries = retries + ?7,"
    " throttled = throttled + ?8, banned = banned + ?9, failures = failures + ?10";
  int rc = rt_store_prepare(s, sql, sizeof sql - 1, &st, NULL);
  if (rc != SQLITE_OK) return rc;
  sqlite3_bind_text(st, 1, budget, -1, SQLITE_STATIC);
  sqlite3_bind_int64(st, 2, minute);
  sqlite3_bind_int64(st, 3, m->requests);
  sqlite3_bind_double(st, 4, m->weight);
  sqlite3_bind_int64(st, 5, m->waits);
  sqlite3_bind_double(st, 6, m->wait_seconds);
  sqlite3_bind_int64(st, 7, m->retries);
  sqlite3_bind_int64(st, 8, m->throttled);
  sqlite3_bind_int64(st, 9, m->bans);
  sqlite3_bind_int64(st, 10, m->failures);
  rc = sqlite3_step(st);
  sqlite3_reset(st);
  return rc == SQLITE_DONE ? SQLITE_OK : rc;
}
