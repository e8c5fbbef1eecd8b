/*
** runtime/migrate.h - the series-layout migration of an existing database, run on the loop in
** time slices (store_series.h has the batches), so a large database never stalls the loop.
**
** Started after the store opens; when nothing is left to migrate it does nothing. The timer is
** unref'd: it never keeps the process alive, and whatever batches committed stay done (the next
** start continues). Progress, completion and failure are logged.
*/
#ifndef RT_MIGRATE_H
#define RT_MIGRATE_H

#include "runtime/rt.h"

typedef struct rt_migrate_s rt_migrate_t;

/// Begin migrating rt->store in batches of `batch` rows. NULL when there is nothing to migrate
/// (or no memory: the next start tries again).
rt_migrate_t *rt_migrate_start(rt_t *rt, int batch);
/// Stop between batches; the handle is freed by its close callback (run the loop). NULL is fine.
void rt_migrate_stop(rt_migrate_t *m);

#endif
