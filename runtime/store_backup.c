/*
** runtime/store_backup.c - backups, checks and the file moves of a restore (see store_backup.h).
**
** Threads: the blocking functions touch only their own connections and arguments, so they run on
** pool threads as well as on the loop thread of a command. The queued jobs are malloc'd on the
** loop thread, run once on the pool, and are freed by their after-work callback on the loop.
*/
#include "runtime/store_backup.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "runtime/rt.h"

static void set_err(char *err, size_t n, sqlite3 *db, const char *what) {
  snprintf(err, n, "%.300s: %s", what, db ? sqlite3_errmsg(db) : "out of memory");
}

static int fsync_path(const char *path) {
  int fd = open(path, O_RDONLY | O_CLOEXEC);
  if (fd < 0) return -1;
  int rc = fsync(fd);
  close(fd);
  return rc;
}

/* fsync the directory holding `path`, so a rename into it survives a power cut. */
static void fsync_dir_of(const char *path) {
  char dir[4096];
  snprintf(dir, sizeof dir, "%s", path);
  char *slash = strrchr(dir, '/');
  if (!slash) snprintf(dir, sizeof dir, ".");
  else if (slash == dir) dir[1] = 0;
  else *slash = 0;
  fsync_path(dir);
}

static void remove_db_files(const char *path) {
  char p[4400];
  unlink(path);
  snprintf(p, sizeof p, "%s-wal", path);
  unlink(p);
  snprintf(p, sizeof p, "%s-shm", path);
  unlink(p);
  snprintf(p, sizeof p, "%s-journal", path);
  unlink(p);
}

/* The first row of a check pragma: "ok" or a problem (copied into out). */
static int first_check_row(sqlite3 *db, const char *sql, char *out, size_t n) {
  sqlite3_stmt *st;
  int rc = sqlite3_prepare_v2(db, sql, -1, &st, NULL);
  if (rc != SQLITE_OK) {
    snprintf(out, n, "%s", sqlite3_errmsg(db));
    return -1;
  }
  rc = sqlite3_step(st);
  if (rc == SQLITE_ROW) snprintf(out, n, "%s", (const char *)sqlite3_column_text(st, 0));
  else snprintf(out, n, "%s", sqlite3_errmsg(db));
  sqlite3_finalize(st);
  return rc == SQLITE_ROW ? (strcmp(out, "ok") == 0 ? 1 : 0) : -1;
}

/* The tables of db (user tables, no sqlite_* ones), each with its row count. */
static int count_tables(sqlite3 *db, rt_backup_result_t *r) {
  sqlite3_stmt *st;
  r->ntables = 0;
  if (sqlite3_prepare_v2(db, "SELECT name FROM sqlite_schema WHERE type = 'table' AND name NOT LIKE 'sqlite_%'"
                         " ORDER BY name", -1, &st, NULL) != SQLITE_OK)
    return -1;
  while (sqlite3_step(st) == SQLITE_ROW && r->ntables < RT_BACKUP_MAX_TABLES) {
    rt_backup_table_t *t = &r->tables[r->ntables++];
    snprintf(t->name, sizeof t->name, "%s", (const char *)sqlite3_column_text(st, 0));
    t->rows = -1;
  }
  sqlite3_finalize(st);
  for (int i = 0; i < r->ntables; i++) {
    char *sql = sqlite3_mprintf("SELECT count(*) FROM \"%w\"", r->tables[i].name);
    if (sql && sqlite3_prepare_v2(db, sql, -1, &st, NULL) == SQLITE_OK) {
      if (sqlite3_step(st) == SQLITE_ROW) r->tables[i].rows = sqlite3_column_int64(st, 0);
      sqlite3_finalize(st);
    }
    sqlite3_free(sql);
  }
  return 0;
}

/*
** Backup API: all of src into dst. The source's read transaction is opened first and held to the
** end, so the copy is one snapshot even though it goes in steps (writers in other connections go
** on in the WAL; without it, each of their commits would restart the copy). Between steps of
** STEP_PAGES pages the part written so far is flushed (fdatasync on `sync_fd`, when >= 0): the
** copy never piles up a gigabyte of dirty pages that the kernel would then make every writer on
** the machine wait for, the daemon's loop included.
*/
#define STEP_PAGES 4096
static int copy_db(sqlite3 *src, sqlite3 *dst, int sync_fd, char *err, size_t n) {
  if (sqlite3_exec(src, "BEGIN; SELECT count(*) FROM sqlite_schema", NULL, NULL, NULL) != SQLITE_OK) {
    set_err(err, n, src, "backup: cannot read the database");
    return -1;
  }
  sqlite3_backup *b = sqlite3_backup_init(dst, "main", src, "main");
  if (!b) {
    set_err(err, n, dst, "backup");
    sqlite3_exec(src, "ROLLBACK", NULL, NULL, NULL);
    return -1;
  }
  int rc;
  do {
    rc = sqlite3_backup_step(b, STEP_PAGES);
    if (rc == SQLITE_OK && sync_fd >= 0) fdatasync(sync_fd);
    if (rc == SQLITE_BUSY || rc == SQLITE_LOCKED) sqlite3_sleep(20);
  } while (rc == SQLITE_OK || rc == SQLITE_BUSY || rc == SQLITE_LOCKED);
  sqlite3_backup_finish(b);
  sqlite3_exec(src, "ROLLBACK", NULL, NULL, NULL);
  if (rc != SQLITE_DONE) {
    snprintf(err, n, "backup: %s", sqlite3_errstr(rc));
    return -1;
  }
  return 0;
}

int rt_backup_file(const char *src, const char *dest, rt_backup_result_t *r) {
  char tmp[4200];
  sqlite3 *s = NULL, *d = NULL;
  memset(r, 0, sizeof *r);
  r->started = rt_now();
  snprintf(tmp, sizeof tmp, "%s.tmp", dest);
  remove_db_files(tmp);
  int rc = sqlite3_open_v2(src, &s, SQLITE_OPEN_READONLY | SQLITE_OPEN_NOMUTEX, NULL);
  if (rc != SQLITE_OK) {
    set_err(r->err, sizeof r->err, s, src);
    goto fail;
  }
  sqlite3_busy_timeout(s, 5000);
  if (sqlite3_open_v2(tmp, &d, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_NOMUTEX, NULL) != SQLITE_OK) {
    set_err(r->err, sizeof r->err, d, tmp);
    goto fail;
  }
  /* A new private file, checked and fsync'd before it gets its name: no journal needed while it
  ** is written, and dirty pages go to the file as the cache fills (then flushed step by step). */
  sqlite3_exec(d, "PRAGMA journal_mode = OFF; PRAGMA synchronous = OFF; PRAGMA main.cache_size = -16384",
               NULL, NULL, NULL);
  int sync_fd = open(tmp, O_RDONLY | O_CLOEXEC);
  int copied = copy_db(s, d, sync_fd, r->err, sizeof r->err);
  if (sync_fd >= 0) close(sync_fd);
  if (copied < 0) goto fail;
  sqlite3_close_v2(s);
  s = NULL;
  /* A copy of a WAL database is marked WAL: make it one file that needs no -wal beside it. */
  if (sqlite3_exec(d, "PRAGMA journal_mode = DELETE", NULL, NULL, NULL) != SQLITE_OK) {
    set_err(r->err, sizeof r->err, d, tmp);
    goto fail;
  }
  int ok = first_check_row(d, "PRAGMA integrity_check", r->check, sizeof r->check);
  if (ok != 1) {
    snprintf(r->err, sizeof r->err, "the copy failed its integrity check: %s", r->check);
    goto fail;
  }
  count_tables(d, r);
  sqlite3_close_v2(d);
  d = NULL;
  struct stat st;
  if (fsync_path(tmp) < 0 || stat(tmp, &st) < 0 || rename(tmp, dest) < 0) {
    snprintf(r->err, sizeof r->err, "%s: %s", dest, strerror(errno));
    goto fail;
  }
  fsync_dir_of(dest);
  r->size = (int64_t)st.st_size;
  r->finished = rt_now();
  r->ok = 1;
  return 0;
fail:
  if (s) sqlite3_close_v2(s);
  if (d) sqlite3_close_v2(d);
  remove_db_files(tmp);
  r->finished = rt_now();
  return -1;
}

/* Run a check pragma and hand every row but "ok" to row(). Returns 1 all ok, 0 problems, -1 error. */
static int check_rows(sqlite3 *db, const char *sql, const char *table, rt_check_row_fn row, void *ud,
                      int64_t rows, char *err, size_t n) {
  sqlite3_stmt *st;
  if (sqlite3_prepare_v2(db, sql, -1, &st, NULL) != SQLITE_OK) {
    set_err(err, n, db, "check");
    return -1;
  }
  int fine = 1, rc;
  while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
    const char *p = (const char *)sqlite3_column_text(st, 0);
    if (p && strcmp(p, "ok") == 0) continue;
    fine = 0;
    row(ud, table, rows, p ? p : "?");
  }
  if (rc != SQLITE_DONE) {
    fine = 0;
    row(ud, table, rows, sqlite3_errmsg(db));
  }
  sqlite3_finalize(st);
  return fine;
}

int rt_store_check_file(const char *path, int full, rt_check_row_fn row, void *ud, char *err, size_t n) {
  sqlite3 *db = NULL;
  if (access(path, R_OK) < 0) {
    snprintf(err, n, "%s: %s", path, strerror(errno));
    return -1;
  }
  if (sqlite3_open_v2(path, &db, SQLITE_OPEN_READONLY | SQLITE_OPEN_NOMUTEX, NULL) != SQLITE_OK) {
    set_err(err, n, db, path);
    sqlite3_close_v2(db);
    return -1;
  }
  sqlite3_busy_timeout(db, 5000);
  rt_backup_result_t *r = calloc(1, sizeof *r);
  if (!r || count_tables(db, r) < 0) {
    set_err(err, n, db, path);
    free(r);
    sqlite3_close_v2(db);
    return -1;
  }
  int fine = 1;
  for (int i = 0; i < r->ntables && full; i++) {
    char *sql = sqlite3_mprintf("PRAGMA integrity_check(\"%w\")", r->tables[i].name);
    int f = check_rows(db, sql, r->tables[i].name, row, ud, r->tables[i].rows, err, n);
    sqlite3_free(sql);
    if (f == 1) row(ud, r->tables[i].name, r->tables[i].rows, NULL);
    else if (f < 0) row(ud, r->tables[i].name, r->tables[i].rows, err);
    if (f != 1) fine = 0;
  }
  /* The whole file: pages no table owns and the freelist (full, once every table passed), or
  ** everything at once (quick). */
  if (fine) {
    int f = check_rows(db, full ? "PRAGMA integrity_check" : "PRAGMA quick_check", NULL, row, ud, -1, err, n);
    if (f < 0 && !full) {
      free(r);
      sqlite3_close_v2(db);
      return -1;
    }
    fine = f == 1;
    for (int i = 0; i < r->ntables && !full && fine; i++) row(ud, r->tables[i].name, r->tables[i].rows, NULL);
  }
  free(r);
  sqlite3_close_v2(db);
  return fine;
}

static void first_problem(void *ud, const char *table, int64_t rows, const char *problem) {
  (void)rows;
  char *out = ud;
  if (problem && !out[0]) snprintf(out, 256, "%s%s%s", table ? table : "", table ? ": " : "", problem);
}

int rt_store_quick_check(const char *path, char *err, size_t errlen) {
  char problem[256] = "";
  int rc = rt_store_check_file(path, 0, first_problem, problem, err, errlen);
  if (rc == 0) snprintf(err, errlen, "%s", problem);
  return rc;
}

int rt_store_install_copy(const char *src, const char *dest, char *err, size_t n) {
  char tmp[4200], check[256];
  sqlite3 *s = NULL, *d = NULL;
  snprintf(tmp, sizeof tmp, "%s.tmp", dest);
  remove_db_files(tmp);
  if (sqlite3_open_v2(src, &s, SQLITE_OPEN_READONLY | SQLITE_OPEN_NOMUTEX, NULL) != SQLITE_OK) {
    set_err(err, n, s, src);
    goto fail;
  }
  int ok = first_check_row(s, "PRAGMA integrity_check", check, sizeof check);
  if (ok != 1) {
    snprintf(err, n, "%s: not a verified database (integrity_check: %s)", src, check);
    goto fail;
  }
  if (sqlite3_open_v2(tmp, &d, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_NOMUTEX, NULL) != SQLITE_OK) {
    set_err(err, n, d, tmp);
    goto fail;
  }
  if (copy_db(s, d, -1, err, n) < 0) goto fail;
  if (sqlite3_exec(d, "PRAGMA journal_mode = WAL", NULL, NULL, NULL) != SQLITE_OK) {
    set_err(err, n, d, tmp);
    goto fail;
  }
  sqlite3_close_v2(s);
  sqlite3_close_v2(d);
  s = d = NULL;
  if (fsync_path(tmp) < 0 || rename(tmp, dest) < 0) {
    snprintf(err, n, "%s: %s", dest, strerror(errno));
    goto fail;
  }
  fsync_dir_of(dest);
  return 0;
fail:
  if (s) sqlite3_close_v2(s);
  if (d) sqlite3_close_v2(d);
  remove_db_files(tmp);
  return -1;
}

int rt_store_move_aside(const char *path, const char *tag, char *aside, size_t n, char *err, size_t errlen) {
  char stamp[32], from[4200], to[4300];
  time_t now = time(NULL);
  struct tm tm;
  gmtime_r(&now, &tm);
  strftime(stamp, sizeof stamp, "%Y%m%dT%H%M%SZ", &tm);
  snprintf(aside, n, "%s.%s-%s", path, tag, stamp);
  if (rename(path, aside) < 0) {
    snprintf(err, errlen, "cannot move %s aside: %s", path, strerror(errno));
    return -1;
  }
  static const char *const sfx[] = {"-wal", "-shm", "-journal"};
  for (int i = 0; i < 3; i++) {
    snprintf(from, sizeof from, "%s%s", path, sfx[i]);
    snprintf(to, sizeof to, "%s%s", aside, sfx[i]);
    rename(from, to);                  /* absent: nothing to keep */
  }
  fsync_dir_of(path);
  return 0;
}

int rt_store_replace(const char *path, const char *src, const char *tag, char *aside, size_t n, char *err,
                     size_t errlen) {
  char incoming[4200];
  struct stat st;
  aside[0] = 0;
  snprintf(incoming, sizeof incoming, "%s.incoming", path);
  if (rt_store_install_copy(src, incoming, err, errlen) < 0) return -1;
  if (stat(path, &st) == 0 && rt_store_move_aside(path, tag, aside, n, err, errlen) < 0) {
    remove_db_files(incoming);
    return -1;
  }
  if (rename(incoming, path) < 0) {
    snprintf(err, errlen, "cannot install %s as %s: %s", incoming, path, strerror(errno));
    return -1;
  }
  fsync_dir_of(path);
  return 0;
}

static int by_name_desc(const void *a, const void *b) {
  return strcmp(*(char *const *)b, *(char *const *)a);
}

char **rt_backup_list(const char *dir) {
  DIR *d = opendir(dir);
  if (!d) return NULL;
  size_t n = 0, cap = 16;
  char **list = malloc(cap * sizeof *list);
  struct dirent *e;
  while (list && (e = readdir(d))) {
    size_t len = strlen(e->d_name);
    if (len < 4 || strcmp(e->d_name + len - 3, ".db") != 0) continue;
    if (n + 2 > cap) {
      char **p = realloc(list, (cap *= 2) * sizeof *list);
      if (!p) break;
      list = p;
    }
    size_t plen = strlen(dir) + len + 2;
    if (!(list[n] = malloc(plen))) break;
    snprintf(list[n++], plen, "%s/%s", dir, e->d_name);
  }
  closedir(d);
  if (!list) return NULL;
  list[n] = NULL;
  qsort(list, n, sizeof *list, by_name_desc);
  return list;
}

void rt_backup_list_free(char **list) {
  for (char **p = list; p && *p; p++) free(*p);
  free(list);
}

/* ---- on the thread pool --------------------------------------------------------------------- */

struct rt_backup_job_s {
  uv_work_t work;
  char *src, *dest;
  rt_backup_done_fn done;   /* NULL once abandoned */
  void *ud;
  rt_backup_result_t r;
};

static void on_uv_backup_work(uv_work_t *w) {
  rt_backup_job_t *j = w->data;
  rt_backup_file(j->src, j->dest, &j->r);
}

static void on_uv_backup_after(uv_work_t *w, int status) {
  rt_backup_job_t *j = w->data;
  if (status != 0) {
    j->r.ok = 0;
    snprintf(j->r.err, sizeof j->r.err, "backup cancelled: %s", uv_strerror(status));
  }
  if (j->done) j->done(j->ud, &j->r);
  free(j->src);
  free(j->dest);
  free(j);
}

rt_backup_job_t *rt_backup_queue(uv_loop_t *loop, const char *src, const char *dest, rt_backup_done_fn done,
                                 void *ud) {
  rt_backup_job_t *j = calloc(1, sizeof *j);
  if (!j) return NULL;
  j->src = strdup(src);
  j->dest = strdup(dest);
  j->done = done;
  j->ud = ud;
  j->work.data = j;
  if (!j->src || !j->dest || uv_queue_work(loop, &j->work, on_uv_backup_work, on_uv_backup_after) < 0) {
    free(j->src);
    free(j->dest);
    free(j);
    return NULL;
  }
  return j;
}

void rt_backup_abandon(rt_backup_job_t *j) { j->done = NULL; }

struct rt_check_job_s {
  uv_work_t work;
  char *path;
  rt_check_done_fn done;
  void *ud;
  int ok;
  char problem[512];
};

static void on_uv_check_work(uv_work_t *w) {
  rt_check_job_t *j = w->data;
  j->ok = rt_store_quick_check(j->path, j->problem, sizeof j->problem);
}

static void on_uv_check_after(uv_work_t *w, int status) {
  rt_check_job_t *j = w->data;
  if (status != 0) {
    j->ok = -1;
    snprintf(j->problem, sizeof j->problem, "check cancelled");
  }
  if (j->done) j->done(j->ud, j->ok, j->problem);
  free(j->path);
  free(j);
}

rt_check_job_t *rt_check_queue(uv_loop_t *loop, const char *path, rt_check_done_fn done, void *ud) {
  rt_check_job_t *j = calloc(1, sizeof *j);
  if (!j) return NULL;
  j->path = strdup(path);
  j->done = done;
  j->ud = ud;
  j->work.data = j;
  if (!j->path || uv_queue_work(loop, &j->work, on_uv_check_work, on_uv_check_after) < 0) {
    free(j->path);
    free(j);
    return NULL;
  }
  return j;
}

void rt_check_abandon(rt_check_job_t *j) { j->done = NULL; }
