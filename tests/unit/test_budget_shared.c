/*
** tests/unit/test_budget_shared.c - the file runtime/budget_shared.c shares between processes: two
** mappings of one database see each other's records at once, a record outlives its mapping (a
** restart), keys stay apart, a full table says so, and a file of another layout starts over.
*/
#include <fcntl.h>
#include <stdlib.h>
#include <unistd.h>

#include "runtime/budget_shared.h"
#include "runtime/budget_window.h"
#include "check.h"

static char dir[] = "/tmp/candled-shm-XXXXXX";
static char db[256];

static void test_two_mappings_share_records(void) {
  char err[256];
  rt_budget_shm_t *a = rt_budget_shm_open(db, err, sizeof err), *b = rt_budget_shm_open(db, err, sizeof err);
  if (!CHECK(a && b)) return;
  int created;
  rt_budget_shm_lock(a);
  rt_budget_shm_lock(a);                       /* nested: one flock */
  rt_window_state_t *wa = rt_budget_shm_record(a, "api/1m", sizeof *wa, &created);
  CHECK(wa && created);
  wa->used = 7;
  wa->ring[3] = 7;
  rt_budget_shm_unlock(a);
  rt_budget_shm_unlock(a);
  rt_budget_shm_lock(b);                       /* would block if a still held the lock */
  rt_window_state_t *wb = rt_budget_shm_record(b, "api/1m", sizeof *wb, &created);
  CHECK(wb && !created);
  CHECK(wb->used == 7 && wb->ring[3] == 7);
  rt_budget_common_t *cb = rt_budget_shm_record(b, "api", sizeof *cb, &created);
  CHECK(cb && created && cb->paused_until == 0);
  cb->paused_until = 123.5;
  rt_budget_shm_unlock(b);
  rt_budget_shm_lock(a);
  rt_budget_common_t *ca = rt_budget_shm_record(a, "api", sizeof *ca, &created);
  CHECK(ca && !created && ca->paused_until == 123.5);
  rt_budget_shm_unlock(a);
  rt_budget_shm_close(a);
  rt_budget_shm_close(b);
  a = rt_budget_shm_open(db, err, sizeof err);  /* a restart */
  rt_budget_shm_lock(a);
  wa = rt_budget_shm_record(a, "api/1m", sizeof *wa, &created);
  CHECK(wa && !created && wa->used == 7);
  CHECK(rt_budget_shm_record(a, "", 1 << 20, &created) == NULL);   /* larger than a record */
  rt_budget_shm_unlock(a);
  rt_budget_shm_close(a);
}

static void test_full_table_and_other_layout(void) {
  char err[256], key[32];
  rt_budget_shm_t *a = rt_budget_shm_open(db, err, sizeof err);
  if (!CHECK(a)) return;
  int created, made = 0;
  rt_budget_shm_lock(a);
  for (int i = 0; i < 1000; i++) {
    snprintf(key, sizeof key, "b%d/1s", i);
    if (!rt_budget_shm_record(a, key, sizeof(rt_window_state_t), &created)) break;
    made += created;
  }
  CHECK(made > 100 && made < 1000);            /* a fixed table: full, not overrun */
  rt_budget_shm_unlock(a);
  rt_budget_shm_close(a);
  char path[300];
  snprintf(path, sizeof path, "%s-budgets", db);
  int fd = open(path, O_WRONLY);
  CHECK(fd >= 0 && write(fd, "oldbuild", 8) == 8);   /* another layout's magic */
  close(fd);
  a = rt_budget_shm_open(db, err, sizeof err);
  rt_budget_shm_lock(a);
  CHECK(rt_budget_shm_record(a, "api/1m", sizeof(rt_window_state_t), &created) && created);
  rt_budget_shm_unlock(a);
  rt_budget_shm_close(a);
  CHECK(rt_budget_shm_open("/nonexistent-dir/x.db", err, sizeof err) == NULL);
  CHECK(strstr(err, "/nonexistent-dir/x.db-budgets") != NULL);
  unlink(path);
}

int main(void) {
  if (!mkdtemp(dir)) return 1;
  snprintf(db, sizeof db, "%s/candled.db", dir);
  RUN(test_two_mappings_share_records);
  RUN(test_full_table_and_other_layout);
  rmdir(dir);
  return CHECK_DONE();
}
