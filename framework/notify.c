/* notify.c -- the sd_notify datagram protocol (notify.h). */
#include "notify.h"

#include <errno.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include "log.h"

struct notifier {
    int fd;
    struct sockaddr_un to;
    socklen_t to_len;
    uint64_t watchdog_usec;
};

notifier *notify_open(void) {
    const char *path = getenv("NOTIFY_SOCKET");
    const char *usec = getenv("WATCHDOG_USEC"), *pid = getenv("WATCHDOG_PID");
    uint64_t watchdog = usec != NULL ? strtoull(usec, NULL, 10) : 0;
    if (pid != NULL && strtol(pid, NULL, 10) != (long)getpid())
        watchdog = 0; /* meant for another process */
    notifier *n = NULL;
    if (path != NULL && (path[0] == '/' || path[0] == '@') && strlen(path) > 1 &&
        strlen(path) < sizeof n->to.sun_path && (n = calloc(1, sizeof *n)) != NULL) {
        n->to.sun_family = AF_UNIX;
        memcpy(n->to.sun_path, path, strlen(path));
        if (path[0] == '@')
            n->to.sun_path[0] = '\0'; /* an abstract name */
        n->to_len = (socklen_t)(offsetof(struct sockaddr_un, sun_path) + strlen(path));
        n->watchdog_usec = watchdog;
        n->fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
        if (n->fd < 0) {
            log_warn("notify", "cannot make a socket for NOTIFY_SOCKET %s: %s", path,
                     strerror(errno));
            free(n);
            n = NULL;
        }
    } else if (path != NULL) {
        log_warn("notify", "NOTIFY_SOCKET '%s' is not a socket path: systemd is not told", path);
    }
    unsetenv("NOTIFY_SOCKET");
    unsetenv("WATCHDOG_USEC");
    unsetenv("WATCHDOG_PID");
    return n;
}

int notify_send(notifier *n, const char *text) {
    if (n == NULL)
        return 0;
    ssize_t sent = sendto(n->fd, text, strlen(text), MSG_NOSIGNAL,
                          (const struct sockaddr *)&n->to, n->to_len);
    return sent == (ssize_t)strlen(text) ? 0 : -1;
}

uint64_t notify_watchdog_usec(const notifier *n) { return n != NULL ? n->watchdog_usec : 0; }

void notify_close(notifier *n) {
    if (n == NULL)
        return;
    close(n->fd);
    free(n);
}
