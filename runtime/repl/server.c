/*
** runtime/repl/server.c - the REPL server: a uv_pipe_t listening on a Unix socket, one client struct per
** connection, frame parsing, and one task per input.
**
** Lifetime: rt_repl_start mallocs the server (rt->repl) and rt_repl_close frees it once the
** listening pipe and every client pipe have run their close callbacks. A client is malloc'd on
** accept and freed in its pipe's close callback; it holds a registry ref to its Lua session
** (candled.repl's per-client table) and, while an input runs, a reference to that task. Closing a
** client first detaches and cancels the task, so a task never reports to a freed client; output
** from Lua finds clients by id (rt_repl_send), never by pointer. Output queued for a client is
** bounded (MAX_QUEUED): a client that stops reading is dropped.
*/
#include "runtime/repl/server.h"

#include <errno.h>
#include <lauxlib.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include "runtime/log.h"
#include "runtime/repl/proto.h"
#include "runtime/task.h"
#include "runtime/vm.h"

typedef struct client_s {
  struct rt_repl_s *repl;
  uv_pipe_t pipe;
  uint64_t id;
  int session_ref;             /* registry ref: candled.repl session table */
  rt_task_t *task;             /* the running input (referenced), or NULL */
  rt_repl_reader_t reader;     /* bytes received, not yet a whole frame */
  int closing;
  char rbuf[65536];            /* libuv reads into this */
  struct client_s *next;
} client_t;

struct rt_repl_s {
  rt_t *rt;
  uv_pipe_t server;
  int server_open;             /* server handle initialised and its close callback not yet run */
  int mod_ref;                 /* registry ref: the candled.repl module table */
  char path[sizeof(((struct sockaddr_un *)0)->sun_path)];
  dev_t dev;                   /* the socket file we created: removed only if still that one */
  ino_t ino;
  uint64_t next_id;
  client_t *clients;
};

/* A write in flight: the header and payload copied behind the request; freed by its callback. */
typedef struct {
  uv_write_t req;
  unsigned char data[];
} write_t;

static void client_close(client_t *c);

static void repl_maybe_free(struct rt_repl_s *r) {
  if (r->server_open || r->clients) return;
  rt_t *rt = r->rt;
  if (rt->L) rt_unref(rt, rt->L, r->mod_ref);
  free(r);
}

/* ---- writing -------------------------------------------------------------------------------- */

static void on_uv_written(uv_write_t *req, int status) {
  client_t *c = req->handle->data;             /* valid: close callbacks run after write callbacks */
  free(req);
  if (status < 0 && status != UV_ECANCELED) client_close(c);
}

/* Output waiting for a client that does not read is bounded: past this many bytes queued, the
** client is dropped (its input task cancelled), so a stalled reader cannot grow the daemon. */
#define MAX_QUEUED ((size_t)RT_REPL_MAX_FRAME * 2)

static int client_send(client_t *c, int type, const char *data, size_t len) {
  if (c->closing) return -1;
  if (len > RT_REPL_MAX_FRAME) len = RT_REPL_MAX_FRAME;   /* candled.repl caps what it renders */
  size_t queued = uv_stream_get_write_queue_size((uv_stream_t *)&c->pipe);
  if (queued + RT_REPL_HEADER + len > MAX_QUEUED) {
    rt_log_printf(c->repl->rt->log, RT_LOG_WARN, NULL,
                  "REPL client %llu dropped: it does not read its output (%zu bytes queued, limit %zu)",
                  (unsigned long long)c->id, queued, MAX_QUEUED);
    client_close(c);
    return -1;
  }
  write_t *w = malloc(sizeof *w + RT_REPL_HEADER + len);
  if (!w) return -1;
  rt_repl_put_header(w->data, type, (uint32_t)len);
  if (len) memcpy(w->data + RT_REPL_HEADER, data, len);
  uv_buf_t b = uv_buf_init((char *)w->data, (unsigned)(RT_REPL_HEADER + len));
  if (uv_write(&w->req, (uv_stream_t *)&c->pipe, &b, 1, on_uv_written) < 0) {
    free(w);
    client_close(c);
    return -1;
  }
  return 0;
}

int rt_repl_send(rt_t *rt, uint64_t id, int type, const char *data, size_t len) {
  if (!rt->repl) return -1;
  for (client_t *c = rt->repl->clients; c; c = c->next)
    if (c->id == id) return client_send(c, type, data, len);
  return -1;
}

/* ---- inputs --------------------------------------------------------------------------------- */

/* The input's task ended. candled.repl's eval returns kind ("ok" | "more" | "error") and text;
** anything else means the task itself failed or was cancelled. stack(t->co): [.. kind text] */
static void on_eval_done(rt_task_t *t, void *ud) {
  client_t *c = ud;
  lua_State *co = rt_task_thread(t);
  int type = RT_REPL_ERROR;
  const char *text = "cancelled";
  size_t len = strlen(text);
  if (t->status == RT_TASK_OK && t->nres >= 2) {
    const char *kind = lua_tostring(co, -t->nres);
    text = lua_tolstring(co, -t->nres + 1, &len);
    if (kind && strcmp(kind, "ok") == 0) type = RT_REPL_RESULT;
    else if (kind && strcmp(kind, "more") == 0) type = RT_REPL_MORE;
    if (!text) text = "", len = 0;
  } else if (t->status == RT_TASK_ERROR) {
    text = t->error ? t->error : "error";
    len = strlen(text);
  }
  c->task = NULL;
  client_send(c, type, text, len);
  rt_task_unref(t);
}

/* Run one input as a task: candled.repl.eval(session, src). */
static void client_eval(client_t *c, const char *src, size_t len) {
  rt_t *rt = c->repl->rt;
  lua_State *L = rt->L;
  if (c->task) {
    static const char busy[] = "busy: the previous input is still running (Ctrl-C cancels it)";
    client_send(c, RT_REPL_ERROR, busy, sizeof busy - 1);
    return;
  }
  if (rt->stopping) {
    static const char stop[] = "the daemon is stopping: no new inputs";
    client_send(c, RT_REPL_ERROR, stop, sizeof stop - 1);
    return;
  }
  lua_rawgeti(L, LUA_REGISTRYINDEX, c->repl->mod_ref);
  lua_getfield(L, -1, "eval");
  lua_remove(L, -2);
  lua_rawgeti(L, LUA_REGISTRYINDEX, c->session_ref);
  lua_pushlstring(L, src, len);                /* [eval session src] */
  char name[32];
  snprintf(name, sizeof name, "repl:%llu", (unsigned long long)c->id);
  rt_task_t *t = rt_task_spawn(rt, L, 2, name, NULL);   /* [] */
  if (!t) {
    client_send(c, RT_REPL_ERROR, "out of memory", 13);
    return;
  }
  rt_task_ref(t);
  c->task = t;
  rt_task_on_done(t, on_eval_done, c);
}

/* candled.repl.complete(session, word) -> list of candidates, sent as one 'L' frame. Runs on the
** main thread (protected): completion never waits. */
static void client_complete(client_t *c, const char *word, size_t len) {
  lua_State *L = c->repl->rt->L;
  int top = lua_gettop(L);
  luaL_Buffer b;
  lua_rawgeti(L, LUA_REGISTRYINDEX, c->repl->mod_ref);
  lua_getfield(L, -1, "complete");
  lua_rawgeti(L, LUA_REGISTRYINDEX, c->session_ref);
  lua_pushlstring(L, word, len);               /* [mod complete session word] */
  if (rt_vm_pcall(L, 2, 1) != LUA_OK || !lua_istable(L, -1)) {
    lua_settop(L, top);
    client_send(c, RT_REPL_LIST, "", 0);
    return;
  }
  luaL_buffinit(L, &b);                        /* [mod list <buffer>] */
  lua_Integer n = (lua_Integer)lua_rawlen(L, top + 2);
  for (lua_Integer i = 1; i <= n; i++) {
    lua_rawgeti(L, top + 2, i);
    if (lua_type(L, -1) == LUA_TSTRING) {
      if (i > 1) luaL_addchar(&b, '\n');
      luaL_addvalue(&b);
    } else {
      lua_pop(L, 1);
    }
  }
  luaL_pushresult(&b);
  size_t n_out;
  const char *out = lua_tolstring(L, -1, &n_out);
  client_send(c, RT_REPL_LIST, out, n_out);
  lua_settop(L, top);
}

static void client_frame(client_t *c, int type, const char *p, size_t len) {
  switch (type) {
  case RT_REPL_EVAL: client_eval(c, p, len); break;
  case RT_REPL_COMPLETE: client_complete(c, p, len); break;
  case RT_REPL_CANCEL:
    if (c->task) rt_task_cancel(c->task);      /* its done callback answers 'X' "cancelled" */
    break;
  default:
    rt_log_printf(c->repl->rt->log, RT_LOG_WARN, NULL, "repl: client %llu sent frame type %d: closing it",
                  (unsigned long long)c->id, type);
    client_close(c);
  }
}

/* ---- reading -------------------------------------------------------------------------------- */

/* rt_repl_reader_feed's callback: stop once the frame closed the client. */
static int client_frame_cb(void *ud, int type, const char *p, size_t len) {
  client_t *c = ud;
  if (c->closing) return 1;
  client_frame(c, type, p, len);
  return c->closing;
}

static void on_uv_alloc(uv_handle_t *h, size_t suggested, uv_buf_t *b) {
  client_t *c = h->data;
  (void)suggested;
  *b = uv_buf_init(c->rbuf, sizeof c->rbuf);
}

/* Append what arrived and handle every whole frame in it. */
static void on_uv_read(uv_stream_t *s, ssize_t n, const uv_buf_t *b) {
  client_t *c = s->data;
  if (n < 0) {                                 /* EOF or error: the client is gone */
    client_close(c);
    return;
  }
  int rc = rt_repl_reader_feed(&c->reader, b->base, (size_t)n, client_frame_cb, c);
  if (rc < 0 && !c->closing) {
    rt_log_printf(c->repl->rt->log, RT_LOG_WARN, NULL, "repl: client %llu sent a frame over %u bytes: closing it",
                  (unsigned long long)c->id, RT_REPL_MAX_FRAME);
    client_close(c);
  }
}

/* ---- clients -------------------------------------------------------------------------------- */

static void on_uv_client_closed(uv_handle_t *h) {
  client_t *c = h->data;
  struct rt_repl_s *r = c->repl;
  for (client_t **pp = &r->clients; *pp; pp = &(*pp)->next)
    if (*pp == c) {
      *pp = c->next;
      break;
    }
  if (r->rt->L) rt_unref(r->rt, r->rt->L, c->session_ref);
  rt_repl_reader_free(&c->reader);
  free(c);
  repl_maybe_free(r);
}

/* Detach and cancel the running input, then close the pipe. Idempotent. */
static void client_close(client_t *c) {
  if (c->closing) return;
  c->closing = 1;
  if (c->task) {
    rt_task_t *t = c->task;
    c->task = NULL;
    rt_task_off_done(t, on_eval_done, c);
    if (t->state != RT_TASK_DONE) rt_task_cancel(t);
    rt_task_unref(t);
  }
  uv_close((uv_handle_t *)&c->pipe, on_uv_client_closed);
}

/* A new connection: a client with its own Lua session (candled.repl.session(id)). */
static void on_uv_connection(uv_stream_t *server, int status) {
  struct rt_repl_s *r = server->data;
  rt_t *rt = r->rt;
  if (status < 0) {
    rt_log_printf(rt->log, RT_LOG_WARN, NULL, "repl: accept: %s", uv_strerror(status));
    return;
  }
  client_t *c = calloc(1, sizeof *c);
  if (!c) return;
  c->repl = r;
  c->id = ++r->next_id;
  c->session_ref = LUA_NOREF;
  uv_pipe_init(&rt->loop, &c->pipe, 0);
  c->pipe.data = c;
  c->next = r->clients;
  r->clients = c;
  if (uv_accept(server, (uv_stream_t *)&c->pipe) < 0) {
    client_close(c);
    return;
  }
  lua_State *L = rt->L;
  lua_rawgeti(L, LUA_REGISTRYINDEX, r->mod_ref);
  lua_getfield(L, -1, "session");
  lua_remove(L, -2);
  lua_pushinteger(L, (lua_Integer)c->id);
  if (rt_vm_pcall(L, 1, 1) != LUA_OK) {
    rt_log_printf(rt->log, RT_LOG_ERROR, NULL, "repl: session: %s", lua_tostring(L, -1));
    lua_pop(L, 1);
    client_close(c);
    return;
  }
  c->session_ref = rt_ref(rt, L);
  uv_read_start((uv_stream_t *)&c->pipe, on_uv_alloc, on_uv_read);
}

/* ---- the socket file ------------------------------------------------------------------------ */

/* Make `path` free for bind: absent, or a stale socket of ours (nobody accepts on it), removed.
** Anything else is refused. */
static int clear_path(const char *path, char *err, size_t errlen) {
  struct stat st;
  if (lstat(path, &st) < 0) {
    if (errno == ENOENT) return 0;
    snprintf(err, errlen, "repl.socket %s: %s", path, strerror(errno));
    return -1;
  }
  if (!S_ISSOCK(st.st_mode)) {
    snprintf(err, errlen, "repl.socket %s: exists and is not a socket: refusing to replace it", path);
    return -1;
  }
  if (st.st_uid != geteuid()) {
    snprintf(err, errlen, "repl.socket %s: a socket owned by uid %u, not us: refusing to use it", path,
             (unsigned)st.st_uid);
    return -1;
  }
  struct sockaddr_un a = {.sun_family = AF_UNIX};
  snprintf(a.sun_path, sizeof a.sun_path, "%s", path);
  int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) {
    snprintf(err, errlen, "repl.socket %s: socket: %s", path, strerror(errno));
    return -1;
  }
  int rc = connect(fd, (struct sockaddr *)&a, sizeof a), e = errno;
  close(fd);
  if (rc == 0) {
    snprintf(err, errlen, "repl.socket %s: another process is listening on it (a daemon already running?)", path);
    return -1;
  }
  if (e != ECONNREFUSED && e != ENOENT) {
    snprintf(err, errlen, "repl.socket %s: %s", path, strerror(e));
    return -1;
  }
  if (unlink(path) < 0 && errno != ENOENT) {
    snprintf(err, errlen, "repl.socket %s: cannot remove the stale socket: %s", path, strerror(errno));
    return -1;
  }
  return 0;
}

/* Create the socket with mode 0600 (umask around bind; then chmod and check what is there). */
static int bind_private(struct rt_repl_s *r, char *err, size_t errlen) {
  mode_t old = umask(0177);
  int rc = uv_pipe_bind(&r->server, r->path);
  umask(old);
  if (rc < 0) {
    snprintf(err, errlen, "repl.socket %s: bind: %s", r->path, uv_strerror(rc));
    return -1;
  }
  struct stat st;
  if (chmod(r->path, 0600) < 0 || lstat(r->path, &st) < 0 || !S_ISSOCK(st.st_mode) ||
      st.st_uid != geteuid() || (st.st_mode & 0777) != 0600) {
    snprintf(err, errlen, "repl.socket %s: cannot make it private (mode 0600)", r->path);
    unlink(r->path);
    return -1;
  }
  r->dev = st.st_dev;
  r->ino = st.st_ino;
  return 0;
}

static void on_uv_server_closed(uv_handle_t *h) {
  struct rt_repl_s *r = h->data;
  r->server_open = 0;
  repl_maybe_free(r);
}

/* Remove the socket file if it is still the one bind_private made. */
static void remove_path(struct rt_repl_s *r) {
  struct stat st;
  if (r->ino && lstat(r->path, &st) == 0 && st.st_dev == r->dev && st.st_ino == r->ino) unlink(r->path);
  r->ino = 0;
}

/* ---- start / close -------------------------------------------------------------------------- */

int rt_repl_start(rt_t *rt, const char *path, char *err, size_t errlen) {
  if (strlen(path) >= sizeof(((struct sockaddr_un *)0)->sun_path)) {
    snprintf(err, errlen, "repl.socket %s: path too long for a Unix socket (at most %zu bytes)", path,
             sizeof(((struct sockaddr_un *)0)->sun_path) - 1);
    return -1;
  }
  struct rt_repl_s *r = calloc(1, sizeof *r);
  if (!r) {
    snprintf(err, errlen, "repl: out of memory");
    return -1;
  }
  r->rt = rt;
  r->mod_ref = LUA_NOREF;
  snprintf(r->path, sizeof r->path, "%s", path);
  lua_State *L = rt->L;
  lua_getglobal(L, "require");
  lua_pushliteral(L, "candled.repl");
  if (rt_vm_pcall(L, 1, 1) != LUA_OK) {
    snprintf(err, errlen, "repl: %s", lua_tostring(L, -1));
    lua_pop(L, 1);
    free(r);
    return -1;
  }
  r->mod_ref = rt_ref(rt, L);
  int rc;
  if (clear_path(path, err, errlen) < 0) goto fail;
  if ((rc = uv_pipe_init(&rt->loop, &r->server, 0)) < 0) {
    snprintf(err, errlen, "repl: %s", uv_strerror(rc));
    goto fail;
  }
  r->server_open = 1;
  r->server.data = r;
  if (bind_private(r, err, errlen) < 0) goto fail;
  if ((rc = uv_listen((uv_stream_t *)&r->server, 16, on_uv_connection)) < 0) {
    snprintf(err, errlen, "repl.socket %s: listen: %s", path, uv_strerror(rc));
    goto fail;
  }
  rt->repl = r;
  return 0;
fail:
  remove_path(r);
  if (r->server_open) uv_close((uv_handle_t *)&r->server, on_uv_server_closed);   /* frees r */
  else repl_maybe_free(r);
  return -1;
}

void rt_repl_close(rt_t *rt) {
  struct rt_repl_s *r = rt->repl;
  if (!r) return;
  rt->repl = NULL;
  remove_path(r);
  if (r->server_open && !uv_is_closing((uv_handle_t *)&r->server))
    uv_close((uv_handle_t *)&r->server, on_uv_server_closed);
  for (client_t *c = r->clients; c; c = c->next) client_close(c);   /* unlinked in close callbacks */
  repl_maybe_free(r);                          /* when nothing was open */
}
