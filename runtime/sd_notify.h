/*
** runtime/sd_notify.h - tell systemd (Type=notify) that the daemon is ready or stopping.
*/
#ifndef RT_SD_NOTIFY_H
#define RT_SD_NOTIFY_H

/// Send `state` ("READY=1", "STOPPING=1", "STATUS=...", newline-separated) to $NOTIFY_SOCKET.
/// Returns 1 sent, 0 when there is no $NOTIFY_SOCKET, -1 on error.
int rt_sd_notify(const char *state);

#endif
