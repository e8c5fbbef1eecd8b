/*
** runtime/dblock.h - one daemon per database: a lock on the database file itself.
**
** `candled run` holds a write lock on one byte of the database file (its real path, so every
** symlink and hard link to it names the same lock); `candled restore` holds it while the files
** move; `candled status` and the other commands ask whether someone holds it. There is no lock
** file to delete or to reach through another path. The kernel drops the lock when the holder
** dies, kill -9 included.
*/
#ifndef RT_DBLOCK_H
#define RT_DBLOCK_H

#include <stddef.h>

/// Take the lock on database `db` (created empty when `create` and missing: SQLite takes an empty
/// file for a new database). `real` receives the resolved path (or `db` when it cannot be
/// resolved). Returns the descriptor that holds the lock (the caller closes it, see below), -1 when
/// another process holds it, -2 on an error (errno; ENOENT when the file is missing and !create).
///
/// Close the descriptor only when no SQLite connection of this process has the file open: closing
/// any descriptor of a file drops every POSIX lock the process holds on it, SQLite's included.
int rt_dblock_take(const char *db, int create, char *real, size_t n);

/// Whether another process holds the lock on `db`: 1 held, 0 not held or no such file, -1 error
/// (errno). `*fd` receives a descriptor of the file, or -1; the same rule as above says when it may
/// be closed.
int rt_dblock_held(const char *db, int *fd);

#endif
