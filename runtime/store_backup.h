/*
** runtime/store_backup.h - verified copies of the database and its integrity checks.
**
** A backup copies the database with SQLite's online backup API on a connection of its own, in one
** step (one read transaction: a consistent snapshot while the daemon keeps writing in WAL mode),
** into "<dest>.tmp"; the copy is switched to a self-contained rollback journal, checked with
** PRAGMA integrity_check, its rows counted per table, fsync'd and renamed to dest. A copy that
** fails its check is deleted, never renamed. The blocking calls run on any thread (each opens
** its own connections); rt_backup_queue runs one on a background thread of the lowest CPU priority
** so the loop keeps serving.
*/
#ifndef RT_STORE_BACKUP_H
#define RT_STORE_BACKUP_H

#include <stddef.h>
#include <stdint.h>
#include <uv.h>

typedef struct rt_backup_table_s {
  char name[128];
  int64_t rows;
} rt_backup_table_t;

#define RT_BACKUP_MAX_TABLES 128

typedef struct rt_backup_result_s {
  int ok;                  /* 1: dest exists, verified */
  char err[512];           /* why not, when !ok */
  double started, finished;
  int64_t size;            /* bytes of dest */
  char check[256];         /* "ok" or the first problem integrity_check reported */
  int ntables;
  rt_backup_table_t tables[RT_BACKUP_MAX_TABLES];
} rt_backup_result_t;

/// Copy the database `src` to `dest` as described above (blocking). Returns 0 or -1 (r->err).
int rt_backup_file(const char *src, const char *dest, rt_backup_result_t *r);

/// Check the database file `path` (blocking, read-only): `full` runs integrity_check per table and
/// over the whole file, else quick_check. Calls `row(ud, table, rows, problem)` once per table
/// (problem NULL when the table is fine; rows -1 when it cannot be counted) and once with table
/// NULL for problems outside any table. Returns 1 when everything is fine, 0 when a problem was
/// found, -1 when the file cannot be read as a database at all (message in err).
typedef void (*rt_check_row_fn)(void *ud, const char *table, int64_t rows, const char *problem);
int rt_store_check_file(const char *path, int full, rt_check_row_fn row, void *ud, char *err, size_t errlen);

/// quick_check of `path` (blocking): 1 fine, 0 damaged, -1 unreadable; the first problem in err.
int rt_store_quick_check(const char *path, char *err, size_t errlen);

/// Copy the verified database `src` (integrity_check first) to `dest` in WAL mode, atomically
/// (through "<dest>.tmp", fsync'd). Returns 0 or -1 with a message in err.
int rt_store_install_copy(const char *src, const char *dest, char *err, size_t errlen);

/// Rename the database `path` and its -wal/-shm files to "<path>.<tag>-<UTC time>[-wal|-shm]";
/// the new name in `aside`. Returns 0 or -1 with a message in err (nothing renamed when the main
/// file could not be).
int rt_store_move_aside(const char *path, const char *tag, char *aside, size_t n, char *err, size_t errlen);

/// Replace the database `path` with a verified copy of `src`: the copy is installed beside it first
/// ("<path>.incoming"), then the old file (when there is one) moves aside with `tag` (its new name
/// in `aside`, "" when there was none), then the copy takes its name. Returns 0 or -1 with a
/// message in err; on failure before the move the old file is untouched.
int rt_store_replace(const char *path, const char *src, const char *tag, char *aside, size_t n, char *err,
                     size_t errlen);

/// The database files under `dir` ("*.db"), newest name first (backup names start with their UTC
/// time). Returns a malloc'd NULL-ended array of malloc'd paths (free with rt_backup_list_free),
/// or NULL when dir cannot be read.
char **rt_backup_list(const char *dir);
void rt_backup_list_free(char **list);

/// One backup on a background thread (nice 19). `done` runs on the loop thread with the result; the job
/// owns copies of both paths. rt_backup_abandon makes `done` not be called (the job still
/// finishes: SQLite cannot be stopped mid-step safely) and frees everything when it ends.
typedef struct rt_backup_job_s rt_backup_job_t;
typedef void (*rt_backup_done_fn)(void *ud, const rt_backup_result_t *r);
rt_backup_job_t *rt_backup_queue(uv_loop_t *loop, const char *src, const char *dest, rt_backup_done_fn done,
                                 void *ud);
void rt_backup_abandon(rt_backup_job_t *j);

/// quick_check on a background thread; `done(ud, ok, problem)` on the loop thread (ok as above).
typedef struct rt_check_job_s rt_check_job_t;
typedef void (*rt_check_done_fn)(void *ud, int ok, const char *problem);
rt_check_job_t *rt_check_queue(uv_loop_t *loop, const char *path, rt_check_done_fn done, void *ud);
void rt_check_abandon(rt_check_job_t *j);

#endif
