/*
** runtime/ws_url.h - splitting a WebSocket URL (ws_url.c), for ws.c.
*/
#ifndef RT_WS_URL_H
#define RT_WS_URL_H

#include <stddef.h>

/// Split u (a writable copy of the URL: NULs are written into it) into TLS or not, host, port
/// (default 80/443) and path ("/" when none). 0, or -1 with a message naming the URL in err.
int rt_ws_parse_url(char *u, int *tls, const char **host, int *port, char **path, char *err, size_t errlen);

#endif
