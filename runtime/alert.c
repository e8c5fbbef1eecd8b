/*
** runtime/alert.c - alerts in SQLite (see alert.h). One open row per (kind, subject), enforced by
** the partial unique index alerts_open.
*/
#include "runtime/alert.h"

#include <stdio.h>
#include <string.h>

#include "runtime/log.h"
#include "runtime/store.h"

static int step_changes(rt_t *rt, sqlite3_stmt *st) {
  int rc = sqlite3_step(st);
  sqlite3_reset(st);
  if (rc != SQLITE_DONE) {
    rt_log_printf(rt->log, RT_LOG_ERROR, NULL, "alerts: %s", rt_store_errmsg(rt->store));
    return -1;
  }
  return sqlite3_changes(rt_store_db(rt->store));
}

int rt_alert_raise(rt_t *rt, const char *kind, const char *subject, const char *level, const char *msg) {
  static const char upd[] =
    "UPDATE alerts SET level = ?3, message = ?4, last_seen = ?5, count = count + 1"
    " WHERE kind = ?1 AND subject = ?2 AND resolved IS NULL";
  static const char ins[] =
    "INSERT INTO alerts (kind, subject, level, message, opened, last_seen) VALUES (?1, ?2, ?3, ?4, ?5, ?5)";
  if (!rt->store) return -1;
  double now = rt_now();
  for (int i = 0; i < 2; i++) {
    sqlite3_stmt *st;
    const char *sql = i == 0 ? upd : ins;
    if (rt_store_prepare(rt->store, sql, strlen(sql), &st, NULL) != SQLITE_OK) {
      rt_log_printf(rt->log, RT_LOG_ERROR, NULL, "alerts: %s", rt_store_errmsg(rt->store));
      return -1;
    }
    sqlite3_bind_text(st, 1, kind, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 2, subject, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 3, level, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 4, msg, -1, SQLITE_STATIC);
    sqlite3_bind_double(st, 5, now);
    int n = step_changes(rt, st);
    if (n < 0) return -1;
    if (n > 0 && i == 0) return 0;
    if (n > 0) {
      char fields[256];
      snprintf(fields, sizeof fields, " alert=%s subject=%s", kind, subject);
      rt_log_write(rt->log, strcmp(level, "error") == 0 ? RT_LOG_ERROR : RT_LOG_WARN, NULL, msg, fields);
      if (rt->on_alert) rt->on_alert(rt, "opened", kind, subject, level, msg);
      return 1;
    }
  }
  return -1;
}

int rt_alert_resolve(rt_t *rt, const char *kind, const char *subject) {
  static const char sql[] =
    "UPDATE alerts SET resolved = ?3 WHERE kind = ?1 AND subject = ?2 AND resolved IS NULL";
  sqlite3_stmt *st;
  if (!rt->store) return -1;
  if (rt_store_prepare(rt->store, sql, sizeof sql - 1, &st, NULL) != SQLITE_OK) return -1;
  sqlite3_bind_text(st, 1, kind, -1, SQLITE_STATIC);
  sqlite3_bind_text(st, 2, subject, -1, SQLITE_STATIC);
  sqlite3_bind_double(st, 3, rt_now());
  int n = step_changes(rt, st);
  if (n > 0) {
    char fields[256];
    snprintf(fields, sizeof fields, " alert=%s subject=%s", kind, subject);
    rt_log_write(rt->log, RT_LOG_INFO, NULL, "alert resolved", fields);
    if (rt->on_alert) rt->on_alert(rt, "resolved", kind, subject, NULL, NULL);
  }
  return n < 0 ? -1 : n > 0;
}
