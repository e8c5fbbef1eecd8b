/*
** runtime/store_guard.c - what SQL the daemon's connection refuses (an SQLite authorizer).
**
** Scripts share the store's connection, so a statement of theirs must not reach another file or
** weaken the database for everyone: ATTACH and DETACH (any path the daemon user can write), VACUUM
** INTO (a copy anywhere), and the pragmas that change durability, locking or the file itself
** (journal_mode, synchronous, locking_mode, page_size, writable_schema, ...) are refused with
** SQLITE_AUTH ("not authorized"). Reading a pragma (no argument) stays allowed. The store sets its
** own pragmas before the guard is installed; database.allow_unsafe_sql = true turns it off.
*/
#include "runtime/store.h"

#include <sqlite3.h>
#include <string.h>
#include <strings.h>

/* Pragmas that must not be set through the shared connection. */
static const char *const guarded_pragmas[] = {
  "journal_mode", "synchronous", "locking_mode", "page_size", "auto_vacuum", "writable_schema",
  "schema_version", "user_version", "application_id", "cell_size_check", "ignore_check_constraints",
  "query_only", "foreign_keys", "defer_foreign_keys", "secure_delete", "temp_store",
  "temp_store_directory", "data_store_directory", "mmap_size", "journal_size_limit",
  "wal_autocheckpoint", "max_page_count", "recursive_triggers", "trusted_schema", "busy_timeout",
  "case_sensitive_like", "hard_heap_limit", "soft_heap_limit", "threads",
  NULL};

static int authorize(void *ud, int action, const char *a, const char *b, const char *dbname, const char *trigger) {
  (void)ud;
  (void)dbname;
  (void)trigger;
  switch (action) {
  case SQLITE_ATTACH:
  case SQLITE_DETACH:
    return SQLITE_DENY;
  case SQLITE_PRAGMA:
    if (!b) return SQLITE_OK;                  /* reading a pragma */
    for (const char *const *p = guarded_pragmas; *p; p++)
      if (strcasecmp(a, *p) == 0) return SQLITE_DENY;
    return SQLITE_OK;
  default:
    return SQLITE_OK;
  }
}

void rt_store_guard(rt_store_t *s, int allow_unsafe) {
  sqlite3_set_authorizer(rt_store_db(s), allow_unsafe ? NULL : authorize, NULL);
}
