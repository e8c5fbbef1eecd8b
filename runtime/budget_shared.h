/*
** runtime/budget_shared.h - budget state shared by every candled process on one database.
**
** A file next to the database ("<db>-budgets", like SQLite's -wal and -shm) holds a table of
** fixed-size records, each found by a key: one per budget window ("<budget>/<window>": its slots
** and learned limit) and one per budget ("<budget>": pause, ban, the current 429 incident). Every
** process maps the file (MAP_SHARED) and changes it only while it holds the file's flock, so an
** admission in one process is seen by the next check in any other, and by a process started a
** second later. A process that dies holding the lock releases it with its descriptor.
**
** Owned by the budget set; loop thread only. Records live as long as the mapping.
*/
#ifndef RT_BUDGET_SHARED_H
#define RT_BUDGET_SHARED_H

#include <stddef.h>

typedef struct rt_budget_shm_s rt_budget_shm_t;

/* The per-budget record. */
typedef struct {
  double paused_until;       /* no request may be sent before this (a 429's pause) */
  double incident_at;        /* when the 429 that opened the current incident came back */
  double banned_until;
  char ban_reason[128];
} rt_budget_common_t;

/// Map (creating it if needed) the file shared by the processes on database `db_path`. NULL with
/// a message naming the file on failure.
rt_budget_shm_t *rt_budget_shm_open(const char *db_path, char *err, size_t errlen);
/// Unmap and close.
void rt_budget_shm_close(rt_budget_shm_t *m);
/// Take / release the file's lock (nested calls count; only the outermost touches the file).
void rt_budget_shm_lock(rt_budget_shm_t *m);
void rt_budget_shm_unlock(rt_budget_shm_t *m);
/// The record for `key` (at most RT_BUDGET_SHM_KEY - 1 bytes), of `size` bytes; a new one is
/// zeroed and *created set to 1. NULL when the table is full. Call with the lock held.
void *rt_budget_shm_record(rt_budget_shm_t *m, const char *key, size_t size, int *created);
/// The file's path.
const char *rt_budget_shm_path(const rt_budget_shm_t *m);

#define RT_BUDGET_SHM_KEY 96

#endif
