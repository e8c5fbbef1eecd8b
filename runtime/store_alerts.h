/*
** runtime/store_alerts.h - the SQL of the alerts table (store_alerts.c), for alert.c.
*/
#ifndef RT_STORE_ALERTS_H
#define RT_STORE_ALERTS_H

#include "runtime/store.h"

#define RT_STORE_ALERT_PREPARE_FAILED (-1)
#define RT_STORE_ALERT_STEP_FAILED (-2)

/// Open alert (kind, subject), or update the open one (level, message, last_seen, count + 1).
/// 1 when a new alert opened, 0 when an open one was updated, or a negative RT_STORE_ALERT_* error
/// (message from rt_store_errmsg).
int rt_store_alert_open(rt_store_t *s, const char *kind, const char *subject, const char *level, const char *msg,
                        double now);
/// Resolve the open alert (kind, subject): the rows changed (0 or 1), or a negative error.
int rt_store_alert_resolve(rt_store_t *s, const char *kind, const char *subject, double now);

#endif
