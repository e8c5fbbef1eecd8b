/*
** runtime/alert.h - alerts: conditions worth a human's attention, kept in the alerts table.
**
** An alert is identified by (kind, subject), e.g. ("rate_limited", "binance_spot") or
** ("run_failing", "binance.klines"). Raising an open alert again updates its message, last_seen
** and count; resolving closes it (resolved = time). Opening and resolving are logged. Loop thread.
*/
#ifndef RT_ALERT_H
#define RT_ALERT_H

#include "runtime/rt.h"

/// Open (or refresh) the alert. level: "info", "warn" or "error". Returns 1 when it was newly
/// opened, 0 when refreshed, -1 when the store failed (logged).
int rt_alert_raise(rt_t *rt, const char *kind, const char *subject, const char *level, const char *msg);
/// Resolve the open alert (kind, subject). Returns 1 when one was open, 0 when none, -1 on error.
int rt_alert_resolve(rt_t *rt, const char *kind, const char *subject);

#endif
