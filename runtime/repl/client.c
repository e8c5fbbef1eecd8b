/*
** app/repl_client.c - `candled repl` and `candled reload`: blocking clients of the daemon's REPL
** socket. No event loop: one connection, one input at a time, written then read until its end
** frame ('R', 'X' or 'M'; 'O' frames before it are printed as they come).
**
** On a terminal, libedit's readline interface gives line editing, a history file and Tab
** completion (the daemon answers 'C' frames with candidates). That interface has no user-data
** pointer for its callbacks and signals carry none either, so the connection used by completion and
** the Ctrl-C flag are file statics, set only while readline() / a reply wait is in progress.
*/
#include "runtime/repl/client.h"

#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <editline/readline.h>

#include "runtime/repl/proto.h"

typedef enum { END_RESULT, END_ERROR, END_MORE, END_LOST } end_t;

/* A growable byte buffer; owned by whoever declared it (free(b.p)). */
typedef struct {
  char *p;
  size_t len, cap;
} buf_t;

static int buf_add(buf_t *b, const char *s, size_t n) {
  if (b->len + n + 1 > b->cap) {
    size_t cap = b->cap ? b->cap * 2 : 256;
    while (cap < b->len + n + 1) cap *= 2;
    char *p = realloc(b->p, cap);
    if (!p) return -1;
    b->p = p;
    b->cap = cap;
  }
  memcpy(b->p + b->len, s, n);
  b->len += n;
  b->p[b->len] = 0;
  return 0;
}

static volatile sig_atomic_t interrupted;     /* Ctrl-C (interactive sessions only) */
static int completion_fd = -1;                /* the connection, while readline() runs */
static char **candidates;                     /* the daemon's last completion answer (NULL-ended) */

/* ---- frames --------------------------------------------------------------------------------- */

static int write_all(int fd, const void *p, size_t n) {
  const char *c = p;
  while (n > 0) {
    ssize_t w = send(fd, c, n, MSG_NOSIGNAL);
    if (w < 0 && errno == EINTR) continue;
    if (w <= 0) return -1;
    c += w;
    n -= (size_t)w;
  }
  return 0;
}

static int send_frame(int fd, int type, const char *data, size_t len) {
  unsigned char h[RT_REPL_HEADER];
  rt_repl_put_header(h, type, (uint32_t)len);
  return write_all(fd, h, sizeof h) < 0 || (len && write_all(fd, data, len) < 0) ? -1 : 0;
}

/* Read exactly n bytes. A Ctrl-C (before or during the read) sends a cancel frame and goes on
** waiting: the daemon then ends the input with 'X' "cancelled". */
static int read_all(int fd, void *p, size_t n) {
  char *c = p;
  while (n > 0) {
    if (interrupted) {
      interrupted = 0;
      send_frame(fd, RT_REPL_CANCEL, NULL, 0);
    }
    ssize_t r = read(fd, c, n);                /* EINTR on Ctrl-C: the handler has no SA_RESTART */
    if (r < 0 && errno == EINTR) continue;
    if (r <= 0) return -1;
    c += r;
    n -= (size_t)r;
  }
  return 0;
}

/* One frame into *out (replacing its contents). Returns the type, or -1 when the connection ended. */
static int read_frame(int fd, buf_t *out) {
  unsigned char h[RT_REPL_HEADER];
  if (read_all(fd, h, sizeof h) < 0) return -1;
  uint32_t len = rt_repl_get_length(h);
  if (len > RT_REPL_MAX_FRAME) return -1;
  out->len = 0;
  if (out->cap < (size_t)len + 1) {
    char *p = realloc(out->p, (size_t)len + 1);
    if (!p) return -1;
    out->p = p;
    out->cap = (size_t)len + 1;
  }
  if (len && read_all(fd, out->p, len) < 0) return -1;
  out->len = len;
  out->p[len] = 0;
  return h[0];
}

static int connect_to(const char *path) {
  struct sockaddr_un a = {.sun_family = AF_UNIX};
  if (strlen(path) >= sizeof a.sun_path) {
    fprintf(stderr, "candled: cannot connect to the daemon at %s: path too long for a Unix socket\n", path);
    return -1;
  }
  snprintf(a.sun_path, sizeof a.sun_path, "%s", path);
  int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd >= 0 && connect(fd, (struct sockaddr *)&a, sizeof a) == 0) return fd;
  fprintf(stderr, "candled: cannot connect to the daemon at %s: %s (is 'candled run' running?)\n", path,
          strerror(errno));
  if (fd >= 0) close(fd);
  return -1;
}

/* ---- one input ------------------------------------------------------------------------------ */

static void on_sigint(int sig) {
  (void)sig;
  interrupted = 1;
}

/*
** Send one input and print what comes back until its end frame: output and results on stdout,
** errors on stderr (after `err_prefix`). For 'M' the syntax error is left in *more.
*/
static end_t eval_one(int fd, const char *src, size_t len, const char *err_prefix, buf_t *more) {
  end_t end = END_LOST;
  buf_t f = {0};
  if (send_frame(fd, RT_REPL_EVAL, src, len) == 0) {
    for (;;) {
      int type = read_frame(fd, &f);
      if (type == RT_REPL_OUTPUT) {
        fwrite(f.p, 1, f.len, stdout);
        fflush(stdout);
        continue;
      }
      if (type == RT_REPL_RESULT) {
        if (f.len) printf("%s\n", f.p);
        fflush(stdout);
        end = END_RESULT;
      } else if (type == RT_REPL_ERROR) {
        fprintf(stderr, "%s%s\n", err_prefix, f.p);
        end = END_ERROR;
      } else if (type == RT_REPL_MORE) {
        more->len = 0;
        buf_add(more, f.p, f.len);
        end = END_MORE;
      } else if (type >= 0) {
        continue;                              /* a frame this client does not know: skip it */
      }
      break;
    }
  }
  free(f.p);
  if (end == END_LOST) fprintf(stderr, "candled: the daemon closed the connection\n");
  return end;
}

/* ---- completion ----------------------------------------------------------------------------- */

static void free_candidates(void) {
  if (!candidates) return;
  for (char **c = candidates; *c; c++) free(*c);
  free(candidates);
  candidates = NULL;
}

/* Ask the daemon for the candidates of `word`; they replace `candidates`. */
static void fetch_candidates(const char *word) {
  free_candidates();
  buf_t f = {0};
  if (send_frame(completion_fd, RT_REPL_COMPLETE, word, strlen(word)) < 0 ||
      read_frame(completion_fd, &f) != RT_REPL_LIST) {
    free(f.p);
    return;
  }
  size_t n = f.len ? 1 : 0, i = 0;
  for (size_t k = 0; k < f.len; k++) n += f.p[k] == '\n';
  candidates = calloc(n + 1, sizeof *candidates);
  for (char *s = f.p, *nl; candidates && f.len && s; s = nl ? nl + 1 : NULL) {
    nl = strchr(s, '\n');
    if (nl) *nl = 0;
    candidates[i++] = strdup(s);
  }
  free(f.p);
}

static char *next_candidate(const char *text, int state) {
  static size_t i;                             /* readline's generator protocol: state 0 restarts */
  (void)text;
  if (state == 0) i = 0;
  if (!candidates || !candidates[i]) return NULL;
  return strdup(candidates[i++]);
}

static char **on_complete(const char *text, int start, int end) {
  (void)start;
  (void)end;
  rl_attempted_completion_over = 1;            /* never fall back to file names */
  fetch_candidates(text);
  if (!candidates || !candidates[0]) return NULL;
  return rl_completion_matches(text, next_candidate);
}

/* ---- the session ---------------------------------------------------------------------------- */

/* ~/.candled_history (CANDLED_* variables are config overrides, so none names this file). */
static const char *history_file(char *out, size_t n) {
  const char *home = getenv("HOME");
  if (!home || !*home) return NULL;
  snprintf(out, n, "%s/.candled_history", home);
  return out;
}

/* stdin to the end (non-interactive mode). */
static int slurp_stdin(buf_t *b) {
  char chunk[65536];
  size_t n;
  while ((n = fread(chunk, 1, sizeof chunk, stdin)) > 0)
    if (buf_add(b, chunk, n) < 0) return -1;
  return ferror(stdin) ? -1 : buf_add(b, "", 0);
}

/* The next line of `all` from *pos (without its newline), as a malloc'd string; NULL at the end. */
static char *next_line(const buf_t *all, size_t *pos) {
  if (!all->p || *pos >= all->len) return NULL;
  const char *s = all->p + *pos, *nl = memchr(s, '\n', all->len - *pos);
  size_t n = nl ? (size_t)(nl - s) : all->len - *pos;
  *pos += n + (nl ? 1 : 0);
  char *line = malloc(n + 1);
  if (!line) return NULL;
  memcpy(line, s, n);
  line[n] = 0;
  return line;
}

static int blank(const char *s) {
  for (; *s; s++)
    if (*s != ' ' && *s != '\t' && *s != '\r') return 0;
  return 1;
}

int rt_repl_client_run(const char *socket_path) {
  int fd = connect_to(socket_path);
  if (fd < 0) return 1;
  int tty = isatty(STDIN_FILENO);
  char hbuf[4096];
  const char *hist = NULL;
  buf_t all = {0}, input = {0}, more = {0};
  size_t pos = 0;
  int failed = 0, lost = 0;
  struct sigaction sa = {0}, old_sa;
  if (tty) {
    sa.sa_handler = on_sigint;                 /* no SA_RESTART: a waiting read() returns EINTR */
    sigemptyset(&sa.sa_mask);
    sigaction(SIGINT, &sa, &old_sa);
    interrupted = 0;
    rl_readline_name = "candled";
    rl_basic_word_break_characters = " \t\n\"\\'`@$><=;|&{(+-*/%^~#,[]";
    rl_completion_append_character = '\0';
    rl_attempted_completion_function = on_complete;
    using_history();
    stifle_history(1000);
    if ((hist = history_file(hbuf, sizeof hbuf))) read_history(hist);
    printf("candled REPL on %s: help() lists the helpers, Ctrl-D exits\n", socket_path);
    fflush(stdout);
  } else if (slurp_stdin(&all) < 0) {
    fprintf(stderr, "candled: cannot read stdin: %s\n", strerror(errno));
    close(fd);
    free(all.p);
    return 1;
  }
  for (;;) {
    char *line;
    if (tty) {
      completion_fd = fd;
      line = readline(input.len ? "candled>> " : "candled> ");
      completion_fd = -1;
    } else {
      line = next_line(&all, &pos);
    }
    if (!line && tty && interrupted) {         /* Ctrl-C at the prompt: drop the lines typed so far */
      interrupted = 0;
      input.len = 0;
      putchar('\n');
      continue;
    }
    if (!line) {
      if (tty) putchar('\n');
      if (input.len && !tty) {
        fprintf(stderr, "candled: incomplete input at the end: %s\n", more.p ? more.p : "");
        failed = 1;
      }
      break;
    }
    if (input.len == 0 && blank(line)) {
      free(line);
      continue;
    }
    int bad = (input.len && buf_add(&input, "\n", 1) < 0) || buf_add(&input, line, strlen(line)) < 0;
    free(line);
    if (bad) {
      fprintf(stderr, "candled: out of memory\n");
      failed = 1;
      break;
    }
    end_t end = eval_one(fd, input.p, input.len, "", &more);
    if (end == END_MORE) continue;
    if (tty) {
      add_history(input.p);
      if (hist) write_history(hist);
    }
    input.len = 0;
    if (end == END_ERROR) failed = 1;
    if (end == END_LOST) {
      lost = 1;
      break;
    }
  }
  free_candidates();
  free(all.p);
  free(input.p);
  free(more.p);
  close(fd);
  if (tty) {
    clear_history();
    sigaction(SIGINT, &old_sa, NULL);
  }
  return lost || (failed && !tty) ? 1 : 0;
}

int rt_repl_client_reload(const char *socket_path, const char *name) {
  int fd = connect_to(socket_path);
  if (fd < 0) return 1;
  buf_t src = {0}, more = {0};
  buf_add(&src, "return reload_report(", 21);
  if (name) {
    buf_add(&src, "\"", 1);
    for (const unsigned char *p = (const unsigned char *)name; *p; p++) {
      char esc[8];
      int n = *p == '"' || *p == '\\' ? snprintf(esc, sizeof esc, "\\%c", *p)
            : *p < 0x20 || *p == 0x7f ? snprintf(esc, sizeof esc, "\\%03u", *p)
                                      : snprintf(esc, sizeof esc, "%c", *p);
      buf_add(&src, esc, (size_t)n);
    }
    buf_add(&src, "\"", 1);
  }
  int bad = buf_add(&src, ")", 1) < 0;
  end_t end = bad ? END_ERROR : eval_one(fd, src.p, src.len, "candled: reload: ", &more);
  free(src.p);
  free(more.p);
  close(fd);
  return end == END_RESULT ? 0 : 1;
}
