/*
** runtime/store_series.c - the series catalogue's cache and the db.upsert writer for candles and
** trades (see store_series.h): open, close and the writer. The catalogue (specs, the cache of
** series ids, resolving a triple) is store_series_catalog.c, the views and their triggers
** store_series_views.c, the migration of the old layout store_migrate_series.c.
**
** The cache maps (source, instrument, timeframe) to the series id. Ids are never reused (rows of
** `series` are never deleted by candled), so an id stays right across processes; only a rollback
** can take back a catalogue row this connection created, and every rollback empties the cache.
*/
#include "runtime/store_series_int.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static void on_rollback(void *ud) { rt_store_series_forget(ud); }

/* ---- open / close --------------------------------------------------------------------------- */

rt_store_series_t *rt_store_series_open(rt_store_t *s, char *err, size_t errlen) {
  rt_store_series_t *ss = calloc(1, sizeof *ss);
  if (!ss) {
    snprintf(err, errlen, "out of memory");
    return NULL;
  }
  ss->store = s;
  sqlite3 *db = rt_store_db(s);
  int rc = rt_series_functions(db);
  for (int i = 0; i < RT_SERIES_SPECS && rc == SQLITE_OK; i++) {
    const rt_series_spec_t *sp = &rt_series_specs[i];
    int old = rt_series_table_exists(s, sp->old);
    if (old < 0) {
      rc = SQLITE_ERROR;
      break;
    }
    ss->migrating[i] = old;
    if (old && (rc = rt_series_finish(s, sp)) == SQLITE_DONE) rc = SQLITE_OK;   /* rows left: not yet */
    else if (rc == SQLITE_OK) ss->migrating[i] = 0;
    if (rc == SQLITE_OK) rc = rt_series_install_views(s, sp, ss->migrating[i]);
  }
  if (rc != SQLITE_OK) {
    snprintf(err, errlen, "series layout: %s", sqlite3_errmsg(db));
    free(ss);
    return NULL;
  }
  sqlite3_rollback_hook(db, on_rollback, ss);
  return ss;
}

void rt_store_series_close(rt_store_series_t *ss) {
  if (!ss) return;
  sqlite3_rollback_hook(rt_store_db(ss->store), NULL, NULL);
  rt_series_cache_free(ss);
  free(ss);
}

/* ---- the upsert writer ---------------------------------------------------------------------- */

int rt_store_series_table(const char *table) {
  for (int i = 0; i < RT_SERIES_SPECS; i++)
    if (strcmp(table, rt_series_specs[i].view) == 0) return 1;
  return 0;
}

int rt_store_series_is_text(rt_store_t *s, int i) {
  rt_store_series_t *ss = rt_store_series_of(s);
  return i >= 0 && i < ss->ncol && ss->role[i] < 0;
}

int rt_store_series_begin(rt_store_t *s, const char *table, const char *const *cols, int ncol,
                          const char *const *keys, int nkeys, int update, char *err, size_t errlen) {
  rt_store_series_t *ss = rt_store_series_of(s);
  const rt_series_spec_t *sp = NULL;
  for (int i = 0; i < RT_SERIES_SPECS; i++)
    if (strcmp(table, rt_series_specs[i].view) == 0) sp = &rt_series_specs[i];
  if (!sp || ncol > RT_SERIES_MAX_COLS) {
    snprintf(err, errlen, "%s: not a series table, or too many columns", table);
    return SQLITE_MISUSE;
  }
  /* the key: exactly source, instrument, [timeframe,] key, in any order */
  const char *want[4] = {"source", "instrument", sp->timeframe ? sp->key : "timeframe", sp->key};
  int nwant = sp->timeframe ? 3 : 4, match = nkeys == nwant;
  for (int w = 0; w < nwant && match; w++) {
    int found = 0;
    for (int k = 0; k < nkeys; k++) found |= strcmp(keys[k], want[w]) == 0;
    match = found;
  }
  if (!match) {
    snprintf(err, errlen, "keys of %s must be %s, %s, %s%s%s (its key)", table, want[0], want[1], want[2],
             nwant == 4 ? ", " : "", nwant == 4 ? want[3] : "");
    return SQLITE_MISUSE;
  }
  ss->spec = sp;
  ss->ncol = 0;                                /* no writer until the statements are ready */
  ss->row_valid = 0;
  ss->col_source = ss->col_instrument = ss->col_tf = ss->col_key = -1;
  rt_series_sql_t ins, upd;
  ins.len = upd.len = 0;
  rt_series_sql_add(&ins, "INSERT INTO %s (series", sp->table);
  rt_series_sql_add(&upd, "UPDATE %s SET ", sp->table);
  int nparam = 1, nset = 0;
  for (int i = 0; i < ncol; i++) {
    const char *c = cols[i];
    if (strcmp(c, "source") == 0) ss->role[i] = -1, ss->col_source = i;
    else if (strcmp(c, "instrument") == 0) ss->role[i] = -2, ss->col_instrument = i;
    else if (!sp->timeframe && strcmp(c, "timeframe") == 0) ss->role[i] = -3, ss->col_tf = i;
    else {
      int known = strcmp(c, sp->key) == 0;
      for (int j = 0; j < sp->ncols && !known; j++) known = strcmp(c, sp->cols[j]) == 0;
      if (!known) {
        snprintf(err, errlen, "table %s has no column named %s", table, c);
        return SQLITE_MISUSE;
      }
      ss->role[i] = (short)++nparam;
      if (strcmp(c, sp->key) == 0) ss->col_key = i;
      rt_series_sql_add(&ins, ", %s", c);
      if (strcmp(c, sp->key) != 0) rt_series_sql_add(&upd, "%s%s = ?%d", nset++ ? ", " : "", c, nparam);
    }
  }
  if (ss->col_source < 0 || ss->col_instrument < 0 || ss->col_key < 0 || (!sp->timeframe && ss->col_tf < 0)) {
    snprintf(err, errlen, "the columns of %s must include its key (%s, %s, %s%s%s)", table, want[0], want[1],
             want[2], nwant == 4 ? ", " : "", nwant == 4 ? want[3] : "");
    return SQLITE_MISUSE;
  }
  rt_series_sql_add(&ins, ") VALUES (?1");
  for (int p = 2; p <= nparam; p++) rt_series_sql_add(&ins, ", ?%d", p);
  rt_series_sql_add(&ins, ") ON CONFLICT DO NOTHING");
  rt_series_sql_add(&upd, " WHERE series = ?1 AND %s = ?%d AND (", sp->key, ss->role[ss->col_key]);
  nset = 0;
  for (int i = 0; i < ncol; i++)
    if (ss->role[i] > 0 && i != ss->col_key)
      rt_series_sql_add(&upd, "%s%s IS NOT ?%d", nset++ ? " OR " : "", cols[i], ss->role[i]);
  rt_series_sql_add(&upd, ")");
  if (!rt_series_sql_ok(&ins) || !rt_series_sql_ok(&upd)) return SQLITE_TOOBIG;
  int rc = rt_store_prepare(s, ins.text, ins.len, &ss->ins, NULL);
  ss->upd = NULL;
  if (rc == SQLITE_OK && update && nset > 0) rc = rt_store_prepare(s, upd.text, upd.len, &ss->upd, NULL);
  if (rc != SQLITE_OK) snprintf(err, errlen, "%s", sqlite3_errmsg(rt_store_db(s)));
  else ss->ncol = ncol;
  return rc;
}

int rt_store_series_put(rt_store_t *s, const rt_store_value_t *vals, int *result) {
  rt_store_series_t *ss = rt_store_series_of(s);
  const rt_series_spec_t *sp = ss->spec;
  if (ss->ncol == 0) return SQLITE_MISUSE;    /* no successful rt_store_series_begin */
  rt_store_value_t tf = {SQLITE_TEXT, 0, 0, sp->timeframe, sp->timeframe ? strlen(sp->timeframe) : 0};
  const rt_store_value_t *triple[3] = {&vals[ss->col_source], &vals[ss->col_instrument],
                                       sp->timeframe ? &tf : &vals[ss->col_tf]};
  int64_t id;
  int rc = SQLITE_OK, same = ss->row_valid;
  for (int i = 0; i < 3 && same; i++)
    same = triple[i]->type == SQLITE_TEXT && triple[i]->s == ss->row_s[i] && triple[i]->n == ss->row_n[i];
  if (same) {
    id = ss->row_id;
  } else {
    if ((rc = rt_series_resolve(s, triple, &id)) != SQLITE_OK) return rc;
    for (int i = 0; i < 3; i++) ss->row_s[i] = triple[i]->s, ss->row_n[i] = triple[i]->n;
    ss->row_id = id;
    ss->row_valid = 1;                         /* resolved: all three are text */
  }
  int which = (int)(sp - rt_series_specs);
  if (ss->migrating[which]) {                  /* the old row of this key moves first */
    int64_t moved;
    const rt_store_value_t *k = &vals[ss->col_key];
    rc = rt_series_move(s, sp, triple, k, k, id, &moved);
    if (rc != SQLITE_OK) {
      int still = rt_series_table_exists(s, sp->old);   /* another process may have finished */
      if (still != 0) return rc;
      ss->migrating[which] = 0;
    }
  }
  sqlite3_bind_int64(ss->ins, 1, id);
  for (int i = 0; i < ss->ncol; i++)
    if (ss->role[i] > 0) rt_series_bind(ss->ins, ss->role[i], &vals[i]);
  rc = sqlite3_step(ss->ins);
  sqlite3_reset(ss->ins);
  if (rc != SQLITE_DONE) return rc;
  *result = 0;
  if (sqlite3_changes(rt_store_db(s)) > 0) {
    *result = 1;
  } else if (ss->upd) {
    sqlite3_bind_int64(ss->upd, 1, id);
    for (int i = 0; i < ss->ncol; i++)
      if (ss->role[i] > 0) rt_series_bind(ss->upd, ss->role[i], &vals[i]);
    rc = sqlite3_step(ss->upd);
    sqlite3_reset(ss->upd);
    if (rc != SQLITE_DONE) return rc;
    if (sqlite3_changes(rt_store_db(s)) > 0) *result = 2;
  }
  return SQLITE_OK;
}
