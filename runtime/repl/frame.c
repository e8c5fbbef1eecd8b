/*
** runtime/repl/frame.c - the REPL stream split into frames (see proto.h).
*/
#include "runtime/repl/proto.h"

#include <stdlib.h>
#include <string.h>

int rt_repl_reader_feed(rt_repl_reader_t *r, const char *data, size_t n, rt_repl_frame_fn fn, void *ud) {
  if (r->len + n > r->cap) {
    size_t cap = r->cap ? r->cap : 4096;
    while (cap < r->len + n) cap *= 2;
    char *nb = realloc(r->buf, cap);
    if (!nb) return -1;
    r->buf = nb;
    r->cap = cap;
  }
  if (n) memcpy(r->buf + r->len, data, n);
  r->len += n;
  size_t off = 0;
  int rc = 0;
  while (r->len - off >= RT_REPL_HEADER) {
    const unsigned char *h = (const unsigned char *)r->buf + off;
    uint32_t len = rt_repl_get_length(h);
    if (len > RT_REPL_MAX_FRAME) return -1;
    if (r->len - off < RT_REPL_HEADER + (size_t)len) break;
    off += RT_REPL_HEADER + (size_t)len;
    if (fn(ud, h[0], (const char *)h + RT_REPL_HEADER, len)) {
      rc = 1;
      break;
    }
  }
  memmove(r->buf, r->buf + off, r->len - off);
  r->len -= off;
  return rc;
}

void rt_repl_reader_free(rt_repl_reader_t *r) {
  free(r->buf);
  r->buf = NULL;
  r->len = r->cap = 0;
}
