/*
** runtime/ws_url.c - a ws:// or wss:// URL split into its parts for ws.c (moved out of ws.c as is).
*/
#include "runtime/ws_url.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Split c->parts (a copy of the URL) into scheme, host, port and path. 0 or -1 with a message. */
int rt_ws_parse_url(char *u, int *tls, const char **host, int *port, char **path, char *err, size_t errlen) {
  char *p;
  if (!strncmp(u, "ws://", 5)) {
    *tls = 0;
    p = u + 5;
  } else if (!strncmp(u, "wss://", 6)) {
    *tls = 1;
    p = u + 6;
  } else {
    snprintf(err, errlen, "ws.connect: '%.200s' is not a ws:// or wss:// URL", u);
    return -1;
  }
  char *slash = strpbrk(p, "/?");
  size_t hlen = slash ? (size_t)(slash - p) : strlen(p);
  static const char root[] = "/";
  *path = slash ? slash : (char *)root;
  char *h = p, *colon = NULL;
  if (*h == '[') {                       /* [v6]:port */
    char *close = memchr(h, ']', hlen);
    if (!close) goto bad;
    colon = (close + 1 < p + hlen && close[1] == ':') ? close + 1 : NULL;
    h++;
    *close = 0;
  } else {
    colon = memchr(h, ':', hlen);
  }
  *port = *tls ? 443 : 80;
  if (colon) {
    char *end;
    long v = strtol(colon + 1, &end, 10);
    if (end != p + hlen || v <= 0 || v > 65535) goto bad;
    *port = (int)v;
    *colon = 0;
  }
  *host = h;
  if (!**host) goto bad;
  return 0;
bad:
  snprintf(err, errlen, "ws.connect: '%.200s': bad host or port", u);
  return -1;
}
