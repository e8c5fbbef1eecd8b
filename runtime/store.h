/*
** runtime/store.h - SQLite storage: one writer connection in WAL mode, a prepared-statement cache,
** transactions (nested as savepoints), versioned migrations and the runtime's own tables.
**
** Loop thread only. Statements from rt_store_prepare belong to the cache: never finalize them.
*/
#ifndef RT_STORE_H
#define RT_STORE_H

#include <stddef.h>
#include <stdint.h>
#include <sqlite3.h>

typedef struct rt_store_s rt_store_t;

/// Open the database at `path` (its directory must exist) in WAL mode and apply the
/// core migrations; runs left "running" by a crash are marked "interrupted". NULL + err on failure.
rt_store_t *rt_store_open(const char *path, int busy_timeout_ms, char *err, size_t errlen);
/// Roll back an open transaction, finalize cached statements and close the connection.
void rt_store_close(rt_store_t *s);

/// Install the authorizer of store_guard.c on the connection (allow_unsafe = 1 removes it): ATTACH,
/// DETACH, VACUUM INTO and setting pragmas of durability, locking or the file fail with SQLITE_AUTH.
/// Called once the store has set its own pragmas (main.c, after rt_store_open).
void rt_store_guard(rt_store_t *s, int allow_unsafe);

sqlite3 *rt_store_db(rt_store_t *s);
const char *rt_store_path(const rt_store_t *s);

/// A cached statement for `sql`, reset with its bindings cleared. Returns SQLITE_OK or an error
/// code (message from rt_store_errmsg). Only the first statement of sql is prepared.
/// `*used` (may be NULL) receives the bytes of sql the first statement took.
int rt_store_prepare(rt_store_t *s, const char *sql, size_t len, sqlite3_stmt **out, size_t *used);

/// Run SQL text with no parameters (may hold several statements). SQLITE_OK or an error code.
int rt_store_exec(rt_store_t *s, const char *sql);

/// Transactions: the outermost begin is BEGIN IMMEDIATE, inner ones are savepoints.
int rt_store_begin(rt_store_t *s);
int rt_store_commit(rt_store_t *s);
int rt_store_rollback(rt_store_t *s);
int rt_store_tx_depth(const rt_store_t *s);
/// Be told when the outermost transaction commits (fn(ud, 1, 0)) and after any rollback
/// (fn(ud, 0, depth now)): events.c publishes what a transaction wrote only once it committed.
/// One listener; fn NULL removes it.
typedef void (*rt_store_tx_fn)(void *ud, int committed, int depth);
void rt_store_on_tx(rt_store_t *s, rt_store_tx_fn fn, void *ud);

/// Apply the steps of migration set `name` that are newer than its stored version, each step with
/// its version row in one transaction. The version is read inside that transaction (BEGIN
/// IMMEDIATE), so processes opening one database at once apply each step exactly once. Returns
/// SQLITE_OK or an error (message in err).
int rt_store_migrate(rt_store_t *s, const char *name, const char *const *steps, int nsteps,
                     char *err, size_t errlen);
/// Begin a migration step of `name`: a transaction (BEGIN IMMEDIATE, or a savepoint inside one)
/// holding the write lock, and the version read inside it in *have. On error nothing is open.
int rt_store_migration_begin(rt_store_t *s, const char *name, int *have);
/// The version of migration set `name` (0 when never migrated), or -1 on error.
int rt_store_migration_version(rt_store_t *s, const char *name);
/// Record that `name` is at `version` (inside the caller's transaction).
int rt_store_migration_record(rt_store_t *s, const char *name, int version);

/// Run history: a row when a scheduled run starts, completed when it ends. Returns the run id or -1.
int64_t rt_store_run_begin(rt_store_t *s, const char *script, double started);
int rt_store_run_end(rt_store_t *s, int64_t id, double ended, const char *status, int64_t rows,
                     const char *error);

/// Per-collector metadata (table collectors): fold one finished run into the script's counts,
/// means and last success/error. Returns the script's consecutive failures now, or -1 on error.
int rt_store_collector_update(rt_store_t *s, const char *script, double started, double ended,
                              const char *status, int64_t rows, const char *error);
/// The last error message of the connection.
const char *rt_store_errmsg(rt_store_t *s);
/// A stable name for an SQLite result code: "SQLITE_BUSY", "SQLITE_CONSTRAINT", ...
const char *rt_store_code_name(int rc);

#endif
