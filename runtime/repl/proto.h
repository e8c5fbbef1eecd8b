/*
** runtime/repl/proto.h - the REPL wire protocol, shared by the daemon (server.c) and the client
** (client.c).
**
** A stream of frames over a local Unix socket: 1 type byte (ASCII), 4 bytes of payload length
** (big-endian, at most RT_REPL_MAX_FRAME) and the payload (bytes, no terminator).
**
**   client -> daemon
**     'E' eval      payload: one input, the lines typed so far joined by "\n"
**     'C' complete  payload: the word before the cursor ("sta", "rt.ht", "h:jo")
**     'K' cancel    empty: cancel the input this client is running (Ctrl-C)
**   daemon -> client
**     'O' output    text the running input printed (print()); any number, before its end frame
**     'R' result    the input ended: its values rendered as text (empty for a statement)
**     'X' error     the input ended with an error: message and traceback
**     'M' more      the input is incomplete: payload = the syntax error; send it again with more lines
**     'L' list      the answer to 'C': full candidates ("rt.http"), separated by "\n"
**
** One input at a time per connection: an 'E' while one runs is answered 'X' (busy). Each
** connection has its own Lua environment, kept until it closes; closing it cancels its input.
*/
#ifndef RT_REPL_PROTO_H
#define RT_REPL_PROTO_H

#include <stddef.h>
#include <stdint.h>

#define RT_REPL_MAX_FRAME (16u << 20)   /* 16 MiB: larger frames close the connection */
#define RT_REPL_HEADER 5

enum {
  RT_REPL_EVAL = 'E', RT_REPL_COMPLETE = 'C', RT_REPL_CANCEL = 'K',
  RT_REPL_OUTPUT = 'O', RT_REPL_RESULT = 'R', RT_REPL_ERROR = 'X', RT_REPL_MORE = 'M',
  RT_REPL_LIST = 'L'
};

static inline void rt_repl_put_header(unsigned char h[RT_REPL_HEADER], int type, uint32_t len) {
  h[0] = (unsigned char)type;
  h[1] = (unsigned char)(len >> 24);
  h[2] = (unsigned char)(len >> 16);
  h[3] = (unsigned char)(len >> 8);
  h[4] = (unsigned char)len;
}

static inline uint32_t rt_repl_get_length(const unsigned char h[RT_REPL_HEADER]) {
  return (uint32_t)h[1] << 24 | (uint32_t)h[2] << 16 | (uint32_t)h[3] << 8 | (uint32_t)h[4];
}

/*
** Splitting the stream into frames (frame.c; the daemon's reader, fuzzed by
** tests/fuzz/fuzz_repl_frames.c). A reader keeps the bytes of an incomplete frame between reads.
*/
typedef struct rt_repl_reader_s {
  char *buf;                          /* bytes received, not yet a whole frame; owned */
  size_t len, cap;
} rt_repl_reader_t;

/// Called for each whole frame; returns nonzero to stop reading (the connection is closing).
typedef int (*rt_repl_frame_fn)(void *ud, int type, const char *payload, size_t len);

/// Append n bytes and call fn for every whole frame, in order. Returns 0 when every whole frame
/// was handed over (the rest is kept), 1 when fn stopped the reading, -1 when a header announces
/// more than RT_REPL_MAX_FRAME or memory ran out (close the connection; nothing more is read).
int rt_repl_reader_feed(rt_repl_reader_t *r, const char *data, size_t n, rt_repl_frame_fn fn, void *ud);

/// Free the kept bytes (the reader may be fed again afterwards).
void rt_repl_reader_free(rt_repl_reader_t *r);

#endif
