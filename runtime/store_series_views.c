/*
** runtime/store_series_views.c - the views `candles` and `trades` over the series catalogue and
** their INSTEAD OF triggers, as SQL text made from the specs (store_series_int.h), installed only
** when the schema does not hold exactly that text already (DDL would make every connection
** re-prepare). While an old table is left (migrating), each view has a second arm over it and the
** triggers move a key's old row before they write it.
*/
#include "runtime/store_series_int.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

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

/* 1 when the view of `sp` and its three triggers are exactly as wanted, 0 when not, -1 on error. */
static int views_are(rt_store_t *s, const rt_series_spec_t *sp, int migrating) {
  rt_series_sql_t b;
  int same = 1;
  for (int w = 0; w < 4 && same == 1; w++) {
    rt_series_object_sql(sp, migrating, w, &b);
    same = object_is(s, object_names[w][sp - rt_series_specs], b.text);
  }
  return same;
}

int rt_series_install_views(rt_store_t *s, const rt_series_spec_t *sp, int migrating) {
  rt_series_sql_t b;
  int same = views_are(s, sp, migrating);
  if (same == 1) return SQLITE_OK;             /* no DDL: other connections keep their statements */
  if (same < 0) return SQLITE_ERROR;
  int rc = rt_store_begin(s);
  if (rc != SQLITE_OK) return rc;
  /* under the write lock: another process opening the database may have installed them meanwhile */
  if ((same = views_are(s, sp, migrating)) != 0) {
    if (same == 1) return rt_store_commit(s);
    rt_store_rollback(s);
    return SQLITE_ERROR;
  }
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

