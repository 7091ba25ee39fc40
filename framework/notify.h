/* notify.h -- telling systemd how the daemon is: the sd_notify protocol.
 *
 * systemd (Type=notify) passes $NOTIFY_SOCKET, a Unix datagram socket (a
 * path, or an abstract name written with a leading '@'), and with
 * WatchdogSec= also $WATCHDOG_USEC (and $WATCHDOG_PID). The daemon sends
 * newline-separated assignments there: READY=1 once it serves, STATUS=...
 * a line for `systemctl status`, RELOADING=1 and READY=1 around a reload,
 * STOPPING=1 when it drains, WATCHDOG=1 at least every WATCHDOG_USEC. This
 * is the documented datagram protocol, written here rather than taken from
 * libsystemd. Without $NOTIFY_SOCKET every call does nothing.
 *
 * A notifier belongs to the thread that made it. */
#ifndef REDWORK_NOTIFY_H
#define REDWORK_NOTIFY_H

#include <stdint.h>

typedef struct notifier notifier;

/* A notifier for $NOTIFY_SOCKET, or NULL when there is none (or it cannot
 * be used: logged once). The variables are unset afterwards, so that
 * processes forked later do not speak for the daemon. */
notifier *notify_open(void);

/* Sends TEXT ("READY=1", "STATUS=...", several lines at once). Accepts a
 * NULL notifier. Returns 0, or -1 (the send failed; nothing is retried). */
int notify_send(notifier *n, const char *text);

/* How often systemd wants WATCHDOG=1, in microseconds; 0 when it wants
 * none (no WatchdogSec=, or the watchdog is another process's). */
uint64_t notify_watchdog_usec(const notifier *n);

/* Closes and frees. Accepts NULL. */
void notify_close(notifier *n);

#endif
