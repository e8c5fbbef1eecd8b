/* tests/fuzz/fuzz_repl_frames.c - the REPL stream reader (runtime/repl/frame.c): the input fed in
** pieces whose sizes come from its first byte gives the same frames as fed whole; every frame
** handed over lies within what was sent, and an oversized header stops the reading. */
#include <stdlib.h>
#include <string.h>

#include "runtime/repl/proto.h"

typedef struct {
  size_t frames, bytes;                        /* frames and payload bytes handed over */
  unsigned hash;
} seen_t;

static int on_frame(void *ud, int type, const char *p, size_t len) {
  seen_t *s = ud;
  if (len > RT_REPL_MAX_FRAME) abort();
  s->frames++;
  s->bytes += len;
  s->hash = s->hash * 31u + (unsigned)type;
  for (size_t i = 0; i < len; i++) s->hash = s->hash * 31u + (unsigned char)p[i];
  return type == 'Q';                          /* a frame that closes the connection */
}

static int feed(const uint8_t *data, size_t size, size_t step, seen_t *s) {
  rt_repl_reader_t r = {0};
  int rc = 0;
  for (size_t off = 0; off < size && rc == 0; off += step) {
    size_t n = size - off < step ? size - off : step;
    rc = rt_repl_reader_feed(&r, (const char *)data + off, n, on_frame, s);
  }
  if (rc == 0 && r.len >= RT_REPL_HEADER &&   /* a whole frame left unread */
      r.len >= RT_REPL_HEADER + (size_t)rt_repl_get_length((unsigned char *)r.buf))
    abort();
  rt_repl_reader_free(&r);
  return rc;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  if (size < 1) return 0;
  size_t step = (size_t)data[0] % 17 + 1;
  seen_t whole = {0}, pieces = {0};
  int a = feed(data + 1, size - 1, size, &whole), b = feed(data + 1, size - 1, step, &pieces);
  if (a != b || whole.frames != pieces.frames || whole.bytes != pieces.bytes || whole.hash != pieces.hash) abort();
  if (whole.bytes + whole.frames * RT_REPL_HEADER > size - 1) abort();
  return 0;
}
