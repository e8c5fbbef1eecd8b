/*
** runtime/log.h - structured logging to stderr, one logfmt line per event:
**   ts=2026-11-22T10:00:00.123Z level=info script=binance.klines msg="stored page" rows=1000
*/
#ifndef RT_LOG_H
#define RT_LOG_H

#include <stdarg.h>
#include <stdio.h>
#include <lauxlib.h>

typedef enum { RT_LOG_DEBUG, RT_LOG_INFO, RT_LOG_WARN, RT_LOG_ERROR } rt_log_level_t;

typedef struct rt_log_s rt_log_t;

/// A logger writing to `out` (not owned). Returns NULL on allocation failure.
rt_log_t *rt_log_new(FILE *out);
void rt_log_free(rt_log_t *log);
void rt_log_set_level(rt_log_t *log, rt_log_level_t level);
/// Parse "debug" | "info" | "warn" | "error". Returns -1 for anything else.
int rt_log_parse_level(const char *s);
int rt_log_enabled(const rt_log_t *log, rt_log_level_t level);

/// Write one line. `script` may be NULL; `fields` is pre-formatted "k=v k2=v2" text or NULL.
void rt_log_write(rt_log_t *log, rt_log_level_t level, const char *script, const char *msg,
                  const char *fields);

/// printf-style convenience for the C core (no fields).
void rt_log_printf(rt_log_t *log, rt_log_level_t level, const char *script, const char *fmt, ...)
  __attribute__((format(printf, 4, 5)));

/// Append " key=value" to a Lua string buffer, quoting and escaping the value when it holds a space,
/// quote, '=' or control character. Used by rt.log to build `fields`.
void rt_log_append_field(luaL_Buffer *b, const char *key, size_t klen, const char *value, size_t vlen);

#endif
