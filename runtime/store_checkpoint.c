/*
** runtime/store_checkpoint.c - WAL checkpoints on libuv's thread pool (see store_checkpoint.h).
**
** Threads: on_wal (the writer's commit hook), after_work, start and stop run on the loop thread;
** work runs on a pool thread and touches only `db` (the checkpoint connection, opened there on
** first use) and the result fields, which the loop thread reads in after_work. The two never
** overlap: `busy` is set before the job is queued and cleared in after_work.
**
** Lifetime: the struct is malloc'd by start. stop frees it at once when no job is in flight,
** otherwise marks it stopped and after_work frees it (and closes `db`).
*/
#include "runtime/store_checkpoint.h"

#include <stdlib.h>
#include <string.h>

struct rt_checkpoint_s {
  uv_loop_t *loop;
  rt_store_t *store;
  rt_log_t *log;
  int pages;               /* queue a job when a commit leaves this many pages in the WAL */
  uv_work_t work;
  int busy;                /* a job is queued or running */
  int stopped;             /* rt_checkpoint_stop ran: after_work frees */
  sqlite3 *db;             /* the checkpoint connection (pool thread while busy); owned */
  char *path;              /* owned copy of the database path */
  int rc;                  /* the job's result */
  int log_frames, copied;  /* the job's WAL size and frames checkpointed */
  char err[256];
  uint64_t runs, frames;
};

static void checkpoint_free(rt_checkpoint_t *c) {
  if (c->db) sqlite3_close_v2(c->db);
  free(c->path);
  free(c);
}

/* Pool thread. */
static void on_uv_work(uv_work_t *w) {
  rt_checkpoint_t *c = w->data;
  c->err[0] = 0;
  c->log_frames = c->copied = 0;
  if (!c->db) {
    c->rc = sqlite3_open_v2(c->path, &c->db, SQLITE_OPEN_READWRITE | SQLITE_OPEN_NOMUTEX, NULL);
    /* A new connection learns that the database is in WAL mode on its first read; until then a
    ** checkpoint does nothing (pnLog -1). */
    if (c->rc == SQLITE_OK) c->rc = sqlite3_exec(c->db, "PRAGMA journal_mode", NULL, NULL, NULL);
    if (c->rc != SQLITE_OK) {
      snprintf(c->err, sizeof c->err, "%s", c->db ? sqlite3_errmsg(c->db) : sqlite3_errstr(c->rc));
      sqlite3_close_v2(c->db);
      c->db = NULL;
      return;
    }
  }
  c->rc = sqlite3_wal_checkpoint_v2(c->db, "main", SQLITE_CHECKPOINT_PASSIVE, &c->log_frames, &c->copied);
  if (c->rc != SQLITE_OK) snprintf(c->err, sizeof c->err, "%s", sqlite3_errmsg(c->db));
}

static void on_uv_after_work(uv_work_t *w, int status) {
  rt_checkpoint_t *c = w->data;
  c->busy = 0;
  if (c->stopped) {
    checkpoint_free(c);
    return;
  }
  if (status == 0 && c->rc == SQLITE_OK) {
    c->runs++;
    c->frames += (uint64_t)(c->copied > 0 ? c->copied : 0);
  } else if (status == 0 && c->rc != SQLITE_BUSY && c->rc != SQLITE_LOCKED) {
    /* BUSY: another process holds the checkpoint lock, and the next commit asks again. */
    rt_log_printf(c->log, RT_LOG_WARN, NULL, "WAL checkpoint of %s failed: %s", c->path, c->err);
  }
}

/* The writer connection's commit hook (loop thread). */
static int on_wal(void *ud, sqlite3 *db, const char *name, int pages) {
  (void)db;
  (void)name;
  rt_checkpoint_t *c = ud;
  if (pages < c->pages || c->busy) return SQLITE_OK;
  c->work.data = c;
  if (uv_queue_work(c->loop, &c->work, on_uv_work, on_uv_after_work) == 0) c->busy = 1;
  return SQLITE_OK;
}

rt_checkpoint_t *rt_checkpoint_start(uv_loop_t *loop, rt_store_t *s, rt_log_t *log, int pages) {
  rt_checkpoint_t *c = calloc(1, sizeof *c);
  if (!c || !(c->path = strdup(rt_store_path(s)))) {
    free(c);
    return NULL;
  }
  c->loop = loop;
  c->store = s;
  c->log = log;
  c->pages = pages > 0 ? pages : 1000;
  sqlite3_wal_hook(rt_store_db(s), on_wal, c);   /* replaces the automatic checkpoint */
  return c;
}

void rt_checkpoint_stop(rt_checkpoint_t *c) {
  if (!c) return;
  sqlite3_wal_autocheckpoint(rt_store_db(c->store), c->pages);   /* removes on_wal */
  c->stopped = 1;
  if (c->busy) uv_cancel((uv_req_t *)&c->work);  /* after_work runs either way, and frees */
  else checkpoint_free(c);
}

void rt_checkpoint_stats(const rt_checkpoint_t *c, uint64_t *runs, uint64_t *frames) {
  *runs = c->runs;
  *frames = c->frames;
}
