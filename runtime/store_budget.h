/*
** runtime/store_budget.h - the budget tables of the store: budget_state (day/month counts and
** bans, which must outlive every process) and budget_metrics (per budget and minute).
**
** Loop thread only; the caller chooses the transaction (rt_store_begin/commit).
*/
#ifndef RT_STORE_BUDGET_H
#define RT_STORE_BUDGET_H

#include <stdint.h>

#include "runtime/store.h"

/* One minute's counts of one budget, added to what the row holds. */
typedef struct {
  int64_t requests, waits, retries, throttled, bans, failures;
  double weight, wait_seconds;
} rt_store_budget_minute_t;

/// Upsert budget_state (budget, key): start, value, note (may be NULL). SQLITE_OK or an error.
int rt_store_budget_save(rt_store_t *s, const char *budget, const char *key, double start, double value,
                         const char *note);
/// Call fn for every budget_state row of `budget`. SQLITE_OK or an error.
int rt_store_budget_load(rt_store_t *s, const char *budget,
                         void (*fn)(void *ud, const char *key, double start, double value, const char *note),
                         void *ud);
/// Add counts to budget_metrics (budget, minute). SQLITE_OK or an error.
int rt_store_budget_metrics(rt_store_t *s, const char *budget, int64_t minute, const rt_store_budget_minute_t *m);

#endif
