/*
** runtime/store_series.c - the series catalogue, its views and the db.upsert writer for candles
** and trades (see store_series.h). The migration of the old layout is in store_migrate_series.c.
**
** The cache maps (source, instrument, timeframe) to the series id. Ids are never reused (rows of
** `series` are never deleted by candled), so an id stays right across processes; only a rollback
** can take back a catalogue row this connection created, and every rollback empties the cache.
*/
#include "runtime/store_series_int.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char *const bar_cols[] = {"open", "high", "low", "close", "volume", "quote_volume", "trades"};
static const char *const tick_cols[] = {"ts", "price", "amount", "volume_usd", "side"};

const rt_series_spec_t rt_series_specs[RT_SERIES_SPECS] = {
  {"candles", "bars", "candles_v4", NULL, "ts", 0, bar_cols, 7},
  {"trades", "ticks", "trades_v4", "trades", "trade_id", 1, tick_cols, 5},
};

/* ---- SQL text ------------------------------------------------------------------------------- */

void rt_series_sql_add(rt_series_sql_t *b, const char *fmt, ...) {
  if (b->len >= sizeof b->text) return;
  va_list ap;
  va_start(ap, fmt);
  int n = vsnprintf(b->text + b->len, sizeof b->text - b->len, fmt, ap);
  va_end(ap);
  b->len += n > 0 ? (size_t)n : 0;
}

int rt_series_sql_ok(const rt_series_sql_t *b) { return b->len < sizeof b->text; }

/* The timeframe of a row: the view's column, or the constant of a trade stream. */
static void add_tf(rt_series_sql_t *b, const rt_series_spec_t *sp, const char *who) {
  if (sp->timeframe) rt_series_sql_add(b, "'%s'", sp->timeframe);
  else rt_series_sql_add(b, "%s.timeframe", who);
}

/* The series id of the row `who` (NEW or OLD): a scalar subquery. */
static void add_id(rt_series_sql_t *b, const rt_series_spec_t *sp, const char *who) {
  rt_series_sql_add(b, "(SELECT id FROM series WHERE source = %s.source AND instrument = %s.instrument"
                       " AND timeframe = ", who, who);
  add_tf(b, sp, who);
  rt_series_sql_add(b, ")");
}

static void add_cols(rt_series_sql_t *b, const rt_series_spec_t *sp, const char *prefix) {
  rt_series_sql_add(b, "%s%s", prefix, sp->key);
  for (int i = 0; i < sp->ncols; i++) rt_series_sql_add(b, ", %s%s", prefix, sp->cols[i]);
}

/* Statement of a trigger: the catalogue row of `who` exists afterwards. Never a conflict, so the
** outer statement's OR REPLACE cannot replace a catalogue row (and orphan its bars). */
static void add_ensure(rt_series_sql_t *b, const rt_series_spec_t *sp, const char *who) {
  rt_series_sql_add(b, " INSERT INTO series (source, instrument, timeframe) SELECT %s.source, %s.instrument, ",
                    who, who);
  add_tf(b, sp, who);
  rt_series_sql_add(b, " WHERE NOT EXISTS (SELECT 1 FROM series WHERE source = %s.source AND instrument = "
                       "%s.instrument AND timeframe = ", who, who);
  add_tf(b, sp, who);
  rt_series_sql_add(b, ");");
}

/* WHERE terms selecting the old-layout row of `who`. */
static void add_old_match(rt_series_sql_t *b, const rt_series_spec_t *sp, const char *who) {
  rt_series_sql_add(b, " WHERE source = %s.source AND instrument = %s.instrument", who, who);
  if (!sp->timeframe) rt_series_sql_add(b, " AND timeframe = %s.timeframe", who);
  rt_series_sql_add(b, " AND %s = %s.%s", sp->key, who, sp->key);
}

/* Statements of a trigger (while migrating): the old row of `who`'s key moves to the new table. */
static void add_move(rt_series_sql_t *b, const rt_series_spec_t *sp, const char *who) {
  rt_series_sql_add(b, " INSERT INTO %s (series, ", sp->table);
  add_cols(b, sp, "");
  rt_series_sql_add(b, ") SELECT ");
  add_id(b, sp, who);
  rt_series_sql_add(b, ", ");
  add_cols(b, sp, "");
  rt_series_sql_add(b, " FROM %s", sp->old);
  add_old_match(b, sp, who);
  rt_series_sql_add(b, "; DELETE FROM %s", sp->old);
  add_old_match(b, sp, who);
  rt_series_sql_add(b, ";");
}

/* The four objects of a view: 0 the view, 1-3 its INSTEAD OF INSERT, UPDATE, DELETE triggers. */
void rt_series_object_sql(const rt_series_spec_t *sp, int migrating, int which, rt_series_sql_t *b) {
  b->len = 0;
  b->text[0] = 0;
  switch (which) {
  case 0:
    rt_series_sql_add(b, "CREATE VIEW %s AS SELECT s.source AS source, s.instrument AS instrument, ", sp->view);
    if (!sp->timeframe) rt_series_sql_add(b, "s.timeframe AS timeframe, ");
    rt_series_sql_add(b, "b.%s AS %s", sp->key, sp->key);
    for (int i = 0; i < sp->ncols; i++) rt_series_sql_add(b, ", b.%s AS %s", sp->cols[i], sp->cols[i]);
    rt_series_sql_add(b, " FROM series s JOIN %s b ON b.series = s.id", sp->table);
    if (sp->timeframe) rt_series_sql_add(b, " WHERE s.timeframe = '%s'", sp->timeframe);
    if (migrating) {
      rt_series_sql_add(b, " UNION ALL SELECT source, instrument, %s", sp->timeframe ? "" : "timeframe, ");
      add_cols(b, sp, "");
      rt_series_sql_add(b, " FROM %s", sp->old);
    }
    break;
  case 1:
    rt_series_sql_add(b, "CREATE TRIGGER %s_insert INSTEAD OF INSERT ON %s BEGIN", sp->view, sp->view);
    add_ensure(b, sp, "NEW");
    if (migrating) add_move(b, sp, "NEW");     /* a key still in the old table conflicts as before */
    rt_series_sql_add(b, " INSERT INTO %s (series, ", sp->table);
    add_cols(b, sp, "");
    rt_series_sql_add(b, ") VALUES (");
    add_id(b, sp, "NEW");
    rt_series_sql_add(b, ", ");
    add_cols(b, sp, "NEW.");
    rt_series_sql_add(b, "); END");
    break;
  case 2:
    rt_series_sql_add(b, "CREATE TRIGGER %s_update INSTEAD OF UPDATE ON %s BEGIN", sp->view, sp->view);
    if (migrating) {
      add_ensure(b, sp, "OLD");
      add_move(b, sp, "OLD");
    }
    add_ensure(b, sp, "NEW");
    rt_series_sql_add(b, " UPDATE %s SET series = ", sp->table);
    add_id(b, sp, "NEW");
    rt_series_sql_add(b, ", %s = NEW.%s", sp->key, sp->key);
    for (int i = 0; i < sp->ncols; i++) rt_series_sql_add(b, ", %s = NEW.%s", sp->cols[i], sp->cols[i]);
    rt_series_sql_add(b, " WHERE series = ");
    add_id(b, sp, "OLD");
    rt_series_sql_add(b, " AND %s = OLD.%s; END", sp->key, sp->key);
    break;
  default:
    rt_series_sql_add(b, "CREATE TRIGGER %s_delete INSTEAD OF DELETE ON %s BEGIN DELETE FROM %s WHERE series = ",
                      sp->view, sp->view, sp->table);
    add_id(b, sp, "OLD");
    rt_series_sql_add(b, " AND %s = OLD.%s;", sp->key, sp->key);
    if (migrating) {
      rt_series_sql_add(b, " DELETE FROM %s", sp->old);
      add_old_match(b, sp, "OLD");
      rt_series_sql_add(b, ";");
    }
    rt_series_sql_add(b, " END");
  }
}

static const char *const object_names[4][RT_SERIES_SPECS] = {
  {"candles", "trades"}, {"candles_insert", "trades_insert"},
  {"candles_update", "trades_update"}, {"candles_delete", "trades_delete"}};

/* 1 when the schema holds `name` with exactly `sql`, 0 when not, -1 on error. */
static int object_is(rt_store_t *s, const char *name, const char *sql) {
  sqlite3_stmt *st;
  static const char q[] = "SELECT sql FROM sqlite_schema WHERE name = ?1";
  if (rt_store_prepare(s, q, sizeof q - 1, &st, NULL) != SQLITE_OK) return -1;
  sqlite3_bind_text(st, 1, name, -1, SQLITE_STATIC);
  int rc = sqlite3_step(st), same = 0;
  if (rc == SQLITE_ROW) same = sqlite3_column_text(st, 0) && strcmp((const char *)sqlite3_column_text(st, 0), sql) == 0;
  sqlite3_reset(st);
  return rc == SQLITE_ROW || rc == SQLITE_DONE ? same : -1;
}

int rt_series_table_exists(rt_store_t *s, const char *name) {
  sqlite3_stmt *st;
  static const char q[] = "SELECT 1 FROM sqlite_schema WHERE type = 'table' AND name = ?1";
  if (rt_store_prepare(s, q, sizeof q - 1, &st, NULL) != SQLITE_OK) return -1;
  sqlite3_bind_text(st, 1, name, -1, SQLITE_STATIC);
  int rc = sqlite3_step(st);
  sqlite3_reset(st);
  return rc == SQLITE_ROW ? 1 : rc == SQLITE_DONE ? 0 : -1;
}

int rt_series_install_views(rt_store_t *s, const rt_series_spec_t *sp, int migrating) {
  rt_series_sql_t b;
  int same = 1;
  for (int w = 0; w < 4 && same == 1; w++) {
    rt_series_object_sql(sp, migrating, w, &b);
    same = object_is(s, object_names[w][sp - rt_series_specs], b.text);
  }
  if (same == 1) return SQLITE_OK;             /* no DDL: other connections keep their statements */
  if (same < 0) return SQLITE_ERROR;
  int rc = rt_store_begin(s);
  if (rc != SQLITE_OK) return rc;
  char drop[64];
  snprintf(drop, sizeof drop, "DROP VIEW IF EXISTS %s", sp->view);   /* drops its triggers */
  rc = rt_store_exec(s, drop);
  for (int w = 0; w < 4 && rc == SQLITE_OK; w++) {
    rt_series_object_sql(sp, migrating, w, &b);
    rc = rt_series_sql_ok(&b) ? rt_store_exec(s, b.text) : SQLITE_TOOBIG;
  }
  if (rc != SQLITE_OK) {
    rt_store_rollback(s);
    return rc;
  }
  return rt_store_commit(s);
}

/* ---- rt_checksum(v1, v2, ...): an order-independent checksum of rows -------------------------- */

/* The sum (mod 2^64) of a 64-bit hash of each row's values, type included, REALs by their bits:
** two sets of rows have the same checksum when they hold the same values (with overwhelming
** probability), in any order. */
static uint64_t fnv(uint64_t h, const void *p, size_t n) {
  const unsigned char *c = p;
  for (size_t i = 0; i < n; i++) h = (h ^ c[i]) * 1099511628211ull;
  return h;
}

static void checksum_step(sqlite3_context *cx, int argc, sqlite3_value **argv) {
  uint64_t *sum = sqlite3_aggregate_context(cx, sizeof *sum);
  if (!sum) {
    sqlite3_result_error_nomem(cx);
    return;
  }
  uint64_t h = 14695981039346656037ull;
  for (int i = 0; i < argc; i++) {
    unsigned char type = (unsigned char)sqlite3_value_type(argv[i]);
    h = fnv(h, &type, 1);
    if (type == SQLITE_INTEGER) {
      int64_t v = sqlite3_value_int64(argv[i]);
      h = fnv(h, &v, sizeof v);
    } else if (type == SQLITE_FLOAT) {
      double v = sqlite3_value_double(argv[i]);
      h = fnv(h, &v, sizeof v);
    } else if (type != SQLITE_NULL) {
      const void *p = type == SQLITE_TEXT ? (const void *)sqlite3_value_text(argv[i]) : sqlite3_value_blob(argv[i]);
      int64_t n = sqlite3_value_bytes(argv[i]);
      h = fnv(h, &n, sizeof n);
      if (n > 0) h = fnv(h, p, (size_t)n);
    }
  }
  h ^= h >> 31;                                /* finalise (splitmix64) so sums of near rows mix */
  h *= 0x7fb5d329728ea185ull;
  h ^= h >> 27;
  *sum += h;
}

static void checksum_final(sqlite3_context *cx) {
  uint64_t *sum = sqlite3_aggregate_context(cx, 0);
  sqlite3_result_int64(cx, sum ? (int64_t)*sum : 0);
}

/* rt_fail(message): fails the statement with `message` (the migration's verification uses it so
** that the connection's error names what did not match). */
static void fail_func(sqlite3_context *cx, int argc, sqlite3_value **argv) {
  (void)argc;
  sqlite3_result_error(cx, (const char *)sqlite3_value_text(argv[0]), -1);
}

/* ---- the catalogue cache -------------------------------------------------------------------- */

typedef struct rt_series_slot_s {
  char *key;                   /* owned; NULL = free slot */
  size_t len;
  uint64_t hash;
  int64_t id;
} slot_t;

static void cache_clear(rt_store_series_t *ss) {
  for (size_t i = 0; i < ss->cap; i++) {
    free(ss->slots[i].key);
    ss->slots[i].key = NULL;
  }
  ss->used = 0;
  ss->have_last = 0;
  ss->row_valid = 0;
}

void rt_store_series_forget(rt_store_series_t *ss) {
  if (ss) cache_clear(ss);
}

static void on_rollback(void *ud) { rt_store_series_forget(ud); }

static slot_t *cache_find(rt_store_series_t *ss, const char *key, size_t len, uint64_t h) {
  if (!ss->cap) return NULL;
  for (size_t i = h & (ss->cap - 1);; i = (i + 1) & (ss->cap - 1)) {
    slot_t *e = &ss->slots[i];
    if (!e->key) return e;
    if (e->hash == h && e->len == len && memcmp(e->key, key, len) == 0) return e;
  }
}

static int cache_put(rt_store_series_t *ss, const char *key, size_t len, uint64_t h, int64_t id) {
  if ((ss->used + 1) * 10 >= ss->cap * 7) {   /* grow at 70% */
    size_t cap = ss->cap ? ss->cap * 2 : 64;
    slot_t *old = ss->slots, *slots = calloc(cap, sizeof *slots);
    if (!slots) return SQLITE_NOMEM;
    size_t ocap = ss->cap;
    ss->slots = slots;
    ss->cap = cap;
    for (size_t i = 0; i < ocap; i++)
      if (old[i].key) *cache_find(ss, old[i].key, old[i].len, old[i].hash) = old[i];
    free(old);
  }
  slot_t *e = cache_find(ss, key, len, h);
  if (e->key) {
    e->id = id;
    return SQLITE_OK;
  }
  if (!(e->key = malloc(len ? len : 1))) return SQLITE_NOMEM;
  memcpy(e->key, key, len);
  e->len = len;
  e->hash = h;
  e->id = id;
  ss->used++;
  return SQLITE_OK;
}

/* The cache key of a triple: each part with its length in front, so no separator is ambiguous. */
static int make_key(rt_store_series_t *ss, const rt_store_value_t *v[3]) {
  size_t need = 0;
  for (int i = 0; i < 3; i++) need += sizeof(uint32_t) + v[i]->n;
  if (need > ss->key_cap) {
    char *p = realloc(ss->key, need);
    if (!p) return SQLITE_NOMEM;
    ss->key = p;
    ss->key_cap = need;
  }
  size_t at = 0;
  for (int i = 0; i < 3; i++) {
    uint32_t n = (uint32_t)v[i]->n;
    memcpy(ss->key + at, &n, sizeof n);
    memcpy(ss->key + at + sizeof n, v[i]->s, v[i]->n);
    at += sizeof n + v[i]->n;
  }
  ss->key_len = at;
  return SQLITE_OK;
}

void rt_series_bind(sqlite3_stmt *st, int i, const rt_store_value_t *v) {
  switch (v->type) {
  case SQLITE_INTEGER: sqlite3_bind_int64(st, i, v->i); break;
  case SQLITE_FLOAT: sqlite3_bind_double(st, i, v->d); break;
  case SQLITE_TEXT: sqlite3_bind_text(st, i, v->s, (int)v->n, SQLITE_STATIC); break;
  default: sqlite3_bind_null(st, i);
  }
}

int rt_series_resolve(rt_store_t *s, const rt_store_value_t *v[3], int64_t *id) {
  rt_store_series_t *ss = rt_store_series_of(s);
  int text = v[0]->type == SQLITE_TEXT && v[1]->type == SQLITE_TEXT && v[2]->type == SQLITE_TEXT;
  uint64_t h = 0;
  int rc;
  if (text) {                                  /* NULLs go to SQLite, which names the column */
    if ((rc = make_key(ss, v)) != SQLITE_OK) return rc;
    if (ss->have_last && ss->key_len == ss->last_len && memcmp(ss->key, ss->last, ss->key_len) == 0) {
      *id = ss->last_id;
      return SQLITE_OK;
    }
    h = fnv(14695981039346656037ull, ss->key, ss->key_len);
    slot_t *e = cache_find(ss, ss->key, ss->key_len, h);
    if (e && e->key) {
      *id = e->id;
      goto remember;
    }
  }
  sqlite3_stmt *st;
  static const char sel[] = "SELECT id FROM series WHERE source = ?1 AND instrument = ?2 AND timeframe = ?3";
  static const char ins[] = "INSERT INTO series (source, instrument, timeframe) VALUES (?1, ?2, ?3)";
  if ((rc = rt_store_prepare(s, sel, sizeof sel - 1, &st, NULL)) != SQLITE_OK) return rc;
  for (int i = 0; i < 3; i++) rt_series_bind(st, i + 1, v[i]);
  rc = sqlite3_step(st);
  if (rc == SQLITE_ROW) *id = sqlite3_column_int64(st, 0);
  sqlite3_reset(st);
  if (rc == SQLITE_DONE) {
    if ((rc = rt_store_prepare(s, ins, sizeof ins - 1, &st, NULL)) != SQLITE_OK) return rc;
    for (int i = 0; i < 3; i++) rt_series_bind(st, i + 1, v[i]);
    rc = sqlite3_step(st);
    sqlite3_reset(st);
    if (rc != SQLITE_DONE) return rc;
    *id = sqlite3_last_insert_rowid(rt_store_db(s));
  } else if (rc != SQLITE_ROW) {
    return rc;
  }
  if (!text) return SQLITE_OK;
  if ((rc = cache_put(ss, ss->key, ss->key_len, h, *id)) != SQLITE_OK) return rc;
remember:
  if (ss->key_len > ss->last_cap) {
    char *p = realloc(ss->last, ss->key_len);
    if (!p) return SQLITE_OK;                  /* only the fast path is lost */
    ss->last = p;
    ss->last_cap = ss->key_len;
  }
  memcpy(ss->last, ss->key, ss->key_len);
  ss->last_len = ss->key_len;
  ss->last_id = *id;
  ss->have_last = 1;
  return SQLITE_OK;
}

/* ---- open / close --------------------------------------------------------------------------- */

rt_store_series_t *rt_store_series_open(rt_store_t *s, char *err, size_t errlen) {
  rt_store_series_t *ss = calloc(1, sizeof *ss);
  if (!ss) {
    snprintf(err, errlen, "out of memory");
    return NULL;
  }
  ss->store = s;
  sqlite3 *db = rt_store_db(s);
  int rc = sqlite3_create_function_v2(db, "rt_checksum", -1, SQLITE_UTF8 | SQLITE_DETERMINISTIC, NULL, NULL,
                                      checksum_step, checksum_final, NULL);
  if (rc == SQLITE_OK)
    rc = sqlite3_create_function_v2(db, "rt_fail", 1, SQLITE_UTF8, NULL, fail_func, NULL, NULL, NULL);
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
  cache_clear(ss);
  free(ss->slots);
  free(ss->key);
  free(ss->last);
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
  for (int k = 0; k < nkeys && match; k++) {
    int found = 0;
    for (int w = 0; w < nwant; w++) found |= strcmp(keys[k], want[w]) == 0;
    match = found;
  }
  if (!match) {
    snprintf(err, errlen, "keys of %s must be %s, %s, %s%s%s (its key)", table, want[0], want[1], want[2],
             nwant == 4 ? ", " : "", nwant == 4 ? want[3] : "");
    return SQLITE_MISUSE;
  }
  ss->spec = sp;
  ss->ncol = ncol;
  ss->row_valid = 0;
  ss->col_tf = -1;
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
      ss->role[i] = (signed char)++nparam;
      if (strcmp(c, sp->key) == 0) ss->col_key = i;
      rt_series_sql_add(&ins, ", %s", c);
      if (strcmp(c, sp->key) != 0) rt_series_sql_add(&upd, "%s%s = ?%d", nset++ ? ", " : "", c, nparam);
    }
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
  return rc;
}

int rt_store_series_put(rt_store_t *s, const rt_store_value_t *vals, int *result) {
  rt_store_series_t *ss = rt_store_series_of(s);
  const rt_series_spec_t *sp = ss->spec;
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
