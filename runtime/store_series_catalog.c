/*
** runtime/store_series_catalog.c - the series catalogue: the specs of the two views, and the cache
** that maps (source, instrument, timeframe) to a series id, created when new. Shared by the writer
** (store_series.c) and the migration of the old layout (store_migrate_series.c), which both depend
** on it and not on each other.
**
** Ids are never reused (rows of `series` are never deleted by candled), so an id stays right across
** processes; only a rollback can take back a catalogue row this connection created, and every
** rollback empties the cache (rt_store_series_forget).
*/
#include "runtime/store_series_int.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char *const bar_cols[] = {"open", "high", "low", "close", "volume", "quote_volume", "trades"};
static const char *const tick_cols[] = {"ts", "price", "amount", "volume_usd", "side"};

const rt_series_spec_t rt_series_specs[RT_SERIES_SPECS] = {
  {"candles", "bars", "candles_v4", NULL, "ts", 0, bar_cols, 7},
  {"trades", "ticks", "trades_v4", "trades", "trade_id", 1, tick_cols, 5},
};

uint64_t rt_series_fnv(uint64_t h, const void *p, size_t n) {
  const unsigned char *c = p;
  for (size_t i = 0; i < n; i++) h = (h ^ c[i]) * 1099511628211ull;
  return h;
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
    h = rt_series_fnv(14695981039346656037ull, ss->key, ss->key_len);
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

void rt_series_cache_free(rt_store_series_t *ss) {
  cache_clear(ss);
  free(ss->slots);
  free(ss->key);
  free(ss->last);
}
