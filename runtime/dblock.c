/*
** runtime/dblock.c - the daemon lock on the database file (see dblock.h).
**
** Which lock. SQLite's unix VFS locks the database file with POSIX record locks (fcntl F_SETLK)
** on its lock page: PENDING_BYTE at 0x40000000, RESERVED_BYTE at +1 and the SHARED range of 510
** bytes at +2 (up to 0x400001FF). In WAL mode it locks the -shm file besides, never other bytes of
** the database. This lock is an open-file-description lock (F_OFD_SETLK) on the one byte
** 0x40000200, just past that page:
**   - it never overlaps a range SQLite locks, so it cannot conflict with any connection (ours or
**     another process's); a lock on the whole file would make every reader busy;
**   - an OFD lock belongs to its open file description, not to the process: SQLite closing its own
**     descriptors (which drops the process's POSIX record locks on the file) leaves it held;
**   - it is a record lock, so it also holds across NFS, where flock() is emulated with a lock
**     on the whole file that would collide with SQLite's.
** Locks are advisory and the byte need not exist: the file is not changed.
*/
#define _GNU_SOURCE
#include "runtime/dblock.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdlib.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#define DBLOCK_BYTE 0x40000200L

static void lock_range(struct flock *fl, short type) {
  memset(fl, 0, sizeof *fl);
  fl->l_type = type;
  fl->l_whence = SEEK_SET;
  fl->l_start = DBLOCK_BYTE;
  fl->l_len = 1;
  fl->l_pid = 0;                                /* required 0 for OFD locks */
}

int rt_dblock_take(const char *db, int create, char *real, size_t n) {
  int fd = open(db, O_RDWR | O_CLOEXEC | (create ? O_CREAT : 0), 0644);
  if (fd < 0) {
    snprintf(real, n, "%s", db);
    return -2;
  }
  char buf[PATH_MAX];
  snprintf(real, n, "%s", realpath(db, buf) ? buf : db);
  struct flock fl;
  lock_range(&fl, F_WRLCK);
  int rc;
  while ((rc = fcntl(fd, F_OFD_SETLK, &fl)) < 0 && errno == EINTR) {
  }
  if (rc < 0) {
    int err = errno;
    close(fd);                                  /* before any SQLite connection of ours: safe */
    errno = err;
    return err == EAGAIN || err == EACCES ? -1 : -2;
  }
  return fd;
}

int rt_dblock_held(const char *db, int *fd) {
  *fd = open(db, O_RDONLY | O_CLOEXEC);
  if (*fd < 0) return errno == ENOENT ? 0 : -1;
  struct flock fl;
  lock_range(&fl, F_WRLCK);
  if (fcntl(*fd, F_OFD_GETLK, &fl) < 0) return -1;
  return fl.l_type != F_UNLCK;
}
