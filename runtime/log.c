/*
** runtime/log.c - logfmt lines on stderr. One fwrite per line so concurrent writers (none today,
** but a forked helper or the shell) never interleave halves of lines.
*/
#include "runtime/log.h"

#include <stdlib.h>
#include <string.h>
#include <sys/time.h>
#include <time.h>

struct rt_log_s {
  FILE *out;
  rt_log_level_t level;
};

static const char *const level_names[] = {"debug", "info", "warn", "error"};

rt_log_t *rt_log_new(FILE *out) {
  rt_log_t *log = calloc(1, sizeof *log);
  if (!log) return NULL;
  log->out = out;
  log->level = RT_LOG_INFO;
  return log;
}

void rt_log_free(rt_log_t *log) { free(log); }

void rt_log_set_level(rt_log_t *log, rt_log_level_t level) { log->level = level; }

int rt_log_parse_level(const char *s) {
  for (int i = 0; i < 4; i++)
    if (strcmp(s, level_names[i]) == 0) return i;
  return -1;
}

int rt_log_enabled(const rt_log_t *log, rt_log_level_t level) { return level >= log->level; }

/* A value needs quotes when it is empty or holds a space, quote, '=' or control character. */
static int needs_quote(const char *v, size_t n) {
  if (n == 0) return 1;
  for (size_t i = 0; i < n; i++) {
    unsigned char c = (unsigned char)v[i];
    if (c <= ' ' || c == '"' || c == '=' || c == '\\' || c == 0x7f) return 1;
  }
  return 0;
}

/* Append v to the fixed line buffer, quoted when needed. Returns the new length (never past cap). */
static size_t put_value(char *buf, size_t len, size_t cap, const char *v, size_t n) {
  if (!needs_quote(v, n)) {
    size_t k = n < cap - len ? n : cap - len;
    memcpy(buf + len, v, k);
    return len + k;
  }
  if (len < cap) buf[len++] = '"';
  for (size_t i = 0; i < n && len + 2 < cap; i++) {
    unsigned char c = (unsigned char)v[i];
    if (c == '"' || c == '\\') { buf[len++] = '\\'; buf[len++] = (char)c; }
    else if (c == '\n') { buf[len++] = '\\'; buf[len++] = 'n'; }
    else if (c == '\t') { buf[len++] = '\\'; buf[len++] = 't'; }
    else if (c < ' ' || c == 0x7f) buf[len++] = '?';
    else buf[len++] = (char)c;
  }
  if (len < cap) buf[len++] = '"';
  return len;
}

void rt_log_append_field(luaL_Buffer *b, const char *key, size_t klen, const char *value, size_t vlen) {
  luaL_addchar(b, ' ');
  luaL_addlstring(b, key, klen);
  luaL_addchar(b, '=');
  if (!needs_quote(value, vlen)) { luaL_addlstring(b, value, vlen); return; }
  luaL_addchar(b, '"');
  for (size_t i = 0; i < vlen; i++) {
    unsigned char c = (unsigned char)value[i];
    if (c == '"' || c == '\\') { luaL_addchar(b, '\\'); luaL_addchar(b, (char)c); }
    else if (c == '\n') luaL_addstring(b, "\\n");
    else if (c == '\t') luaL_addstring(b, "\\t");
    else if (c < ' ' || c == 0x7f) luaL_addchar(b, '?');
    else luaL_addchar(b, (char)c);
  }
  luaL_addchar(b, '"');
}

void rt_log_write(rt_log_t *log, rt_log_level_t level, const char *script, const char *msg,
                  const char *fields) {
  if (!log || level < log->level) return;
  char line[8192];
  size_t cap = sizeof line - 2, len;
  struct timeval tv;
  struct tm tm;
  gettimeofday(&tv, NULL);
  time_t secs = tv.tv_sec;
  gmtime_r(&secs, &tm);
  len = strftime(line, cap, "ts=%Y-%m-%dT%H:%M:%S", &tm);
  len += (size_t)snprintf(line + len, cap - len, ".%03dZ level=%s", (int)(tv.tv_usec / 1000),
                          level_names[level]);
  if (script) {
    memcpy(line + len, " script=", 8);
    len = put_value(line, len + 8, cap, script, strlen(script));
  }
  if (len + 5 < cap) {
    memcpy(line + len, " msg=", 5);
    len = put_value(line, len + 5, cap, msg ? msg : "", msg ? strlen(msg) : 0);
  }
  if (fields && *fields) {
    size_t n = strlen(fields), k = n < cap - len ? n : cap - len;
    memcpy(line + len, fields, k);   /* fields start with a space (rt_log_append_field) */
    len += k;
  }
  line[len++] = '\n';
  fwrite(line, 1, len, log->out);
  fflush(log->out);
}

void rt_log_printf(rt_log_t *log, rt_log_level_t level, const char *script, const char *fmt, ...) {
  if (!log || level < log->level) return;
  char msg[4096];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(msg, sizeof msg, fmt, ap);
  va_end(ap);
  rt_log_write(log, level, script, msg, NULL);
}
