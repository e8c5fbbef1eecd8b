/*
** runtime/ws.h - WebSocket client: libwebsockets on the runtime's libuv loop (foreign-loop mode).
**
** One lws context per runtime, created on the first connect and destroyed at shutdown
** (rt_ws_shutdown from the loop's stop, rt_ws_free once the loop has run its close callbacks).
** No Lua here: a connection buffers what arrives and tells one waiter (a C callback) that something
** changed; the waiter looks at the connection and decides.
**
** Receive queue policy: at most `queue_max` whole messages wait in a connection. When the queue is
** full the connection stops reading from its socket (lws rx flow control, so TCP pushes back on the
** server) and reads again once the queue has been drained to half. Nothing is ever dropped; a
** server that gives up on a slow reader closes the connection, which the reader then sees. A message
** larger than `max_message` bytes closes the connection with code TOO_LARGE.
**
** Lifetime: a connection is malloc'd by rt_ws_connect and has two owners, its user (until
** rt_ws_release) and libwebsockets (until the socket is destroyed); it is freed when both let go.
*/
#ifndef RT_WS_H
#define RT_WS_H

#include <stddef.h>
#include <stdint.h>

#include "runtime/rt.h"

typedef struct rt_ws_s rt_ws_t;
typedef struct rt_ws_conn_s rt_ws_conn_t;

typedef enum { RT_WS_CONNECTING, RT_WS_OPEN, RT_WS_CLOSED } rt_ws_state_t;

typedef struct {
  const char *url;              /* ws://host[:port]/path or wss://... */
  const char *const *headers;   /* extra handshake headers "Name: value", or NULL */
  int nheaders;
  unsigned ping_interval;       /* seconds after the last pong (or the open) before we ping; 0 = never */
  unsigned idle_timeout;        /* seconds without a pong before hanging up (> ping_interval, which it
                                   needs); 0 = never */
  size_t queue_max;             /* messages buffered before reading pauses (>= 2) */
  size_t max_message;           /* largest message in bytes */
} rt_ws_opts_t;

/* Why a waiter is called: something happened on the connection (opened, a message, closed), or
** the wait's timeout passed first. */
typedef enum { RT_WS_WAKE_EVENT, RT_WS_WAKE_TIMEOUT } rt_ws_wake_t;
typedef void (*rt_ws_wake_fn)(void *ud, rt_ws_wake_t why);

typedef struct {
  unsigned long received, sent, pings_answered, pongs, paused;
  size_t queued;
} rt_ws_stats_t;

/// Start connecting. On success returns 0 with a connection in CONNECTING state in *out (the
/// caller owns it until rt_ws_release). On failure -1 with a code ("EINVAL" for a bad URL,
/// "ENOMEM", "ECANCELED" after shutdown) and a message in err.
int rt_ws_connect(rt_t *rt, const rt_ws_opts_t *o, rt_ws_conn_t **out, const char **code, char *err,
                  size_t errlen);

/// Call fn(ud, why) once, the next time something happens on c, or after `timeout` seconds
/// (timeout < 0: no timeout). Replaces a previous wait. Never calls fn from inside this call.
void rt_ws_wait(rt_ws_conn_t *c, double timeout, rt_ws_wake_fn fn, void *ud);
/// Forget the pending wait (no-op when none).
void rt_ws_wait_cancel(rt_ws_conn_t *c);

rt_ws_state_t rt_ws_state(const rt_ws_conn_t *c);
/// Why the connection is closed (or failed to open): a code ("CLOSED", "ECONNREFUSED",
/// "HANDSHAKE", "TLS", "TOO_LARGE", "SHUTDOWN", "CONNECT") and a one-line message. NULLs while open.
void rt_ws_why(const rt_ws_conn_t *c, const char **code, const char **msg);

/// The oldest buffered message (len bytes, NUL-terminated, valid until rt_ws_drop) and whether it
/// came as a binary frame, or NULL when the queue is empty.
const char *rt_ws_peek(const rt_ws_conn_t *c, size_t *len, int *binary);
/// Drop the oldest buffered message; reading resumes once the queue is down to half.
void rt_ws_drop(rt_ws_conn_t *c);

/// Queue a message for sending (copied). Returns 0, or -1 with a code ("CLOSED", "EAGAIN" while
/// connecting, "QUEUE_FULL" past 64 MiB waiting to be written).
int rt_ws_send(rt_ws_conn_t *c, const char *data, size_t len, int binary, const char **code);

/// Close with a normal close frame (1000). Buffered messages stay readable. Idempotent.
void rt_ws_close(rt_ws_conn_t *c);

/// The user lets go of c: closes it if open, drops the wait and frees it once lws is done with it.
void rt_ws_release(rt_ws_conn_t *c);

void rt_ws_stats(const rt_ws_conn_t *c, rt_ws_stats_t *out);

/// Close every connection (code SHUTDOWN, their waiters called), their timers, and destroy the lws
/// context; its handles close in the following loop run. Idempotent; no-op when never used.
void rt_ws_shutdown(rt_t *rt);
/// Free the engine once the loop has run the close callbacks (rt_close). Idempotent.
void rt_ws_free(rt_t *rt);

#endif
