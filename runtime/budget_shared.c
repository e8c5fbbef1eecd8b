/*
** runtime/budget_shared.c - the budget file shared by the processes on one database (see
** budget_shared.h).
**
** Layout: a header (magic, version, record size and count), then RECORDS records of RECORD_SIZE
** bytes: a NUL-terminated key (empty = free) and the record's data. A file with another layout
** (an older build) is reset under the lock: its counts are lost once, never misread.
*/
#include "runtime/budget_shared.h"

#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "runtime/budget_window.h"

#define MAGIC "candledB"
#define VERSION 1
#define RECORDS 256
#define DATA_SIZE (sizeof(rt_window_state_t) > sizeof(rt_budget_common_t) ? sizeof(rt_window_state_t) \
                                                                          : sizeof(rt_budget_common_t))
#define RECORD_SIZE ((RT_BUDGET_SHM_KEY + DATA_SIZE + 63) / 64 * 64)

typedef struct {
  char magic[8];
  uint32_t version, record_size, records, pad;
} header_t;

#define FILE_SIZE (sizeof(header_t) + (size_t)RECORDS * RECORD_SIZE)

struct rt_budget_shm_s {
  int fd;
  int depth;                 /* lock nesting */
  unsigned char *map;        /* FILE_SIZE bytes */
  char *path;
};

const char *rt_budget_shm_path(const rt_budget_shm_t *m) { return m->path; }

static int layout_ok(const header_t *h) {
  return memcmp(h->magic, MAGIC, 8) == 0 && h->version == VERSION && h->record_size == RECORD_SIZE &&
         h->records == RECORDS;
}

rt_budget_shm_t *rt_budget_shm_open(const char *db_path, char *err, size_t errlen) {
  rt_budget_shm_t *m = calloc(1, sizeof *m);
  size_t n = strlen(db_path) + sizeof "-budgets";
  if (!m || !(m->path = malloc(n))) {
    free(m);
    snprintf(err, errlen, "out of memory");
    return NULL;
  }
  snprintf(m->path, n, "%s-budgets", db_path);
  m->fd = open(m->path, O_RDWR | O_CREAT | O_CLOEXEC, 0644);
  if (m->fd < 0) goto fail;
  if (flock(m->fd, LOCK_EX) < 0) goto fail;
  struct stat sb;
  int ok = fstat(m->fd, &sb) == 0 && (sb.st_size == (off_t)FILE_SIZE || ftruncate(m->fd, (off_t)FILE_SIZE) == 0);
  if (ok) {
    m->map = mmap(NULL, FILE_SIZE, PROT_READ | PROT_WRITE, MAP_SHARED, m->fd, 0);
    if (m->map == MAP_FAILED) {
      m->map = NULL;
      ok = 0;
    }
  }
  if (ok && !layout_ok((header_t *)m->map)) {   /* new (all zero) or another layout: start over */
    memset(m->map, 0, FILE_SIZE);
    header_t *h = (header_t *)m->map;
    memcpy(h->magic, MAGIC, 8);
    h->version = VERSION;
    h->record_size = RECORD_SIZE;
    h->records = RECORDS;
  }
  flock(m->fd, LOCK_UN);
  if (ok) return m;
fail:
  snprintf(err, errlen, "%s: %s", m->path, strerror(errno));
  rt_budget_shm_close(m);
  return NULL;
}

void rt_budget_shm_close(rt_budget_shm_t *m) {
  if (!m) return;
  if (m->map) munmap(m->map, FILE_SIZE);
  if (m->fd >= 0) close(m->fd);
  free(m->path);
  free(m);
}

void rt_budget_shm_lock(rt_budget_shm_t *m) {
  if (m->depth++ > 0) return;
  while (flock(m->fd, LOCK_EX) < 0 && errno == EINTR) {
  }
}

void rt_budget_shm_unlock(rt_budget_shm_t *m) {
  if (--m->depth > 0) return;
  flock(m->fd, LOCK_UN);
}

void *rt_budget_shm_record(rt_budget_shm_t *m, const char *key, size_t size, int *created) {
  *created = 0;
  if (size > DATA_SIZE || strlen(key) >= RT_BUDGET_SHM_KEY) return NULL;
  unsigned char *free_rec = NULL;
  for (int i = 0; i < RECORDS; i++) {
    unsigned char *r = m->map + sizeof(header_t) + (size_t)i * RECORD_SIZE;
    if (!r[0]) {
      if (!free_rec) free_rec = r;
    } else if (strcmp((char *)r, key) == 0) {
      return r + RT_BUDGET_SHM_KEY;
    }
  }
  if (!free_rec) return NULL;
  memset(free_rec, 0, RECORD_SIZE);
  memcpy(free_rec, key, strlen(key) + 1);       /* the key last: a crash before it leaves it free */
  *created = 1;
  return free_rec + RT_BUDGET_SHM_KEY;
}
