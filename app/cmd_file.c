/*
** app/cmd_file.c - `candled check` and `candled restore`: they work on the database file and
** never open the store (it may be damaged).
*/
#include "app/app.h"

#include <errno.h>
#include <limits.h>
#include <stdint.h>
#include <string.h>
#include <unistd.h>

#include "runtime/dblock.h"
#include "runtime/store.h"
#include "runtime/store_backup.h"

/* ---- check / restore: work on the file, never open the store (it may be damaged) ----------- */

static void print_check_row(void *ud, const char *table, int64_t rows, const char *problem) {
  (void)ud;
  if (!table) printf("  %-28s %12s  %s\n", "(file)", "", problem);
  else if (rows < 0) printf("  %-28s %12s  %s\n", table, "?", problem ? problem : "ok");
  else printf("  %-28s %12lld  %s\n", table, (long long)rows, problem ? problem : "ok");
}

int cmd_check(const char *config_path, int explicit_config, int argc, char **argv) {
  char db[PATH_MAX], err[1024];
  if (argc > 1) return app_usage_error("unexpected argument", argv[1]);
  if (argc == 1) snprintf(db, sizeof db, "%s", argv[0]);
  else if (app_config_key_path(config_path, explicit_config, "database.path", db, sizeof db) != 0) return 1;
  printf("integrity_check of %s\n  %-28s %12s  %s\n", db, "table", "rows", "result");
  int rc = rt_store_check_file(db, 1, print_check_row, NULL, err, sizeof err);
  if (rc < 0) {
    fprintf(stderr, "candled: check: %s\n", err);
    return 1;
  }
  printf("%s\n", rc == 1 ? "ok" : "DAMAGED: 'candled restore' replaces it with a verified backup ('candled backups')");
  return rc == 1 ? 0 : 1;
}

int cmd_restore(const char *config_path, int explicit_config, int argc, char **argv) {
  char db[PATH_MAX], real[PATH_MAX], aside[PATH_MAX], err[1024];
  if (argc < 1) return app_usage_error("restore needs a BACKUP file", NULL);
  if (argc > 1) return app_usage_error("unexpected argument", argv[1]);
  if (app_config_key_path(config_path, explicit_config, "database.path", db, sizeof db) != 0) return 1;
  if (app_mkdirs_for(db) < 0) {
    fprintf(stderr, "candled: database.path %s: cannot create its directory: %s\n", db, strerror(errno));
    return 1;
  }
  /* the daemon lock, held while the files move: no daemon starts meanwhile (no database yet: none runs) */
  int fd = rt_dblock_take(db, 0, real, sizeof real);
  if (fd == -1) {
    fprintf(stderr, "candled: restore: a daemon is running on %s: stop it first\n", real);
    return 1;
  }
  if (fd < 0 && errno != ENOENT) {
    fprintf(stderr, "candled: restore: %s: %s\n", db, strerror(errno));
    return 1;
  }
  /* the resolved file is replaced (a symlinked database.path stays a symlink) */
  int rc = rt_store_replace(real, argv[0], "replaced", aside, sizeof aside, err, sizeof err);
  if (fd >= 0) close(fd);                        /* no SQLite connection of ours has the file open */
  if (rc < 0) {
    fprintf(stderr, "candled: restore: %s\n", err);
    return 1;
  }
  printf("restored %s from %s", db, argv[0]);
  if (aside[0]) printf("; the replaced database is kept as %s", aside);
  printf("\n");
  return 0;
}
