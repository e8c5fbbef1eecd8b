/*
** runtime/alert.c - alerts (see alert.h): logged, raised on the event bus, kept in SQLite by
** store_alerts.c. One open row per (kind, subject), enforced by
** the partial unique index alerts_open.
*/
#include "runtime/alert.h"

#include <stdio.h>
#include <string.h>

#include "runtime/log.h"
#include "runtime/store.h"
#include "runtime/store_alerts.h"

int rt_alert_raise(rt_t *rt, const char *kind, const char *subject, const char *level, const char *msg) {
  if (!rt->store) return -1;
  int rc = rt_store_alert_open(rt->store, kind, subject, level, msg, rt_now());
  if (rc < 0) {
    rt_log_printf(rt->log, RT_LOG_ERROR, NULL, "alerts: %s", rt_store_errmsg(rt->store));
    return -1;
  }
  if (rc == 0) return 0;                       /* already open: counted */
  char fields[256];
  snprintf(fields, sizeof fields, " alert=%s subject=%s", kind, subject);
  rt_log_write(rt->log, strcmp(level, "error") == 0 ? RT_LOG_ERROR : RT_LOG_WARN, NULL, msg, fields);
  if (rt->on_alert) rt->on_alert(rt, "opened", kind, subject, level, msg);
  return 1;
}

int rt_alert_resolve(rt_t *rt, const char *kind, const char *subject) {
  if (!rt->store) return -1;
  int n = rt_store_alert_resolve(rt->store, kind, subject, rt_now());
  if (n == RT_STORE_ALERT_PREPARE_FAILED) return -1;
  if (n < 0) rt_log_printf(rt->log, RT_LOG_ERROR, NULL, "alerts: %s", rt_store_errmsg(rt->store));
  if (n > 0) {
    char fields[256];
    snprintf(fields, sizeof fields, " alert=%s subject=%s", kind, subject);
    rt_log_write(rt->log, RT_LOG_INFO, NULL, "alert resolved", fields);
    if (rt->on_alert) rt->on_alert(rt, "resolved", kind, subject, NULL, NULL);
  }
  return n < 0 ? -1 : n > 0;
}
