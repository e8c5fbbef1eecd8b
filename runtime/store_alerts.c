/*
** runtime/store_alerts.c - the alerts table's SQL (store_alerts.h); alert.c decides what an alert
** means (logging, the event bus).
*/
#include "runtime/store_alerts.h"

#include <sqlite3.h>
#include <string.h>

/* Step a write; the rows it changed, or RT_STORE_ALERT_STEP_FAILED. */
static int step_changes(rt_store_t *s, sqlite3_stmt *st) {
  int rc = sqlite3_step(st);
  sqlite3_reset(st);
  if (rc != SQLITE_DONE) return RT_STORE_ALERT_STEP_FAILED;
  return sqlite3_changes(rt_store_db(s));
}

int rt_store_alert_open(rt_store_t *s, const char *kind, const char *subject, const char *level, const char *msg,
                        double now) {
  static const char upd[] =
    "UPDATE alerts SET level = ?3, message = ?4, last_seen = ?5, count = count + 1"
    " WHERE kind = ?1 AND subject = ?2 AND resolved IS NULL";
  static const char ins[] =
    "INSERT INTO alerts (kind, subject, level, message, opened, last_seen) VALUES (?1, ?2, ?3, ?4, ?5, ?5)";
  for (int i = 0; i < 2; i++) {
    sqlite3_stmt *st;
    const char *sql = i == 0 ? upd : ins;
    if (rt_store_prepare(s, sql, strlen(sql), &st, NULL) != SQLITE_OK) return RT_STORE_ALERT_PREPARE_FAILED;
    sqlite3_bind_text(st, 1, kind, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 2, subject, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 3, level, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 4, msg, -1, SQLITE_STATIC);
    sqlite3_bind_double(st, 5, now);
    int n = step_changes(s, st);
    if (n < 0) return n;
    if (n > 0) return i;                       /* 0: an open alert was updated, 1: a new one */
  }
  return RT_STORE_ALERT_STEP_FAILED;
}

int rt_store_alert_resolve(rt_store_t *s, const char *kind, const char *subject, double now) {
  static const char sql[] =
    "UPDATE alerts SET resolved = ?3 WHERE kind = ?1 AND subject = ?2 AND resolved IS NULL";
  sqlite3_stmt *st;
  if (rt_store_prepare(s, sql, sizeof sql - 1, &st, NULL) != SQLITE_OK) return RT_STORE_ALERT_PREPARE_FAILED;
  sqlite3_bind_text(st, 1, kind, -1, SQLITE_STATIC);
  sqlite3_bind_text(st, 2, subject, -1, SQLITE_STATIC);
  sqlite3_bind_double(st, 3, now);
  return step_changes(s, st);
}
