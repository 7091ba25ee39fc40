/* http.c -- the metrics endpoint: GET /metrics and GET /healthz.
 *
 * DESIGN. libmicrohttpd's own polling thread answers; each answer is made
 * whole in memory (a few tens of kilobytes) and handed over to be copied. */
#include "http.h"

#include <netdb.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <microhttpd.h>

#include "url.h"

struct http {
    struct MHD_Daemon *daemon;
    metrics *m;
};

static enum MHD_Result answer(struct MHD_Connection *c, unsigned status, const char *type,
                              const char *body, size_t len) {
    struct MHD_Response *r =
        MHD_create_response_from_buffer(len, (void *)body, MHD_RESPMEM_MUST_COPY);
    if (r == NULL)
        return MHD_NO;
    MHD_add_response_header(r, MHD_HTTP_HEADER_CONTENT_TYPE, type);
    enum MHD_Result ok = MHD_queue_response(c, status, r);
    MHD_destroy_response(r);
    return ok;
}

static enum MHD_Result on_request(void *cls, struct MHD_Connection *c, const char *url,
                                  const char *method, const char *version,
                                  const char *upload, size_t *upload_size, void **state) {
    (void)version;
    (void)upload;
    http *h = cls;
    if (*state == NULL) { /* the headers: answer once the body (none) is in */
        *state = h;
        return MHD_YES;
    }
    *upload_size = 0;
    if (strcmp(method, "GET") != 0 && strcmp(method, "HEAD") != 0)
        return answer(c, MHD_HTTP_METHOD_NOT_ALLOWED, "text/plain", "only GET\n", 9);
    if (strcmp(url, "/metrics") == 0) {
        buffer out = BUFFER_INIT;
        enum MHD_Result ok =
            metrics_render(h->m, &out) == 0
                ? answer(c, MHD_HTTP_OK, "text/plain; version=0.0.4; charset=utf-8", out.data,
                         out.len)
                : answer(c, MHD_HTTP_INTERNAL_SERVER_ERROR, "text/plain", "out of memory\n", 14);
        redwork_buffer_free(&out);
        return ok;
    }
    if (strcmp(url, "/healthz") == 0) {
        char why[256];
        if (metrics_health(h->m, why, sizeof why))
            return answer(c, MHD_HTTP_OK, "text/plain", "ok\n", 3);
        size_t n = strlen(why);
        if (n + 1 < sizeof why)
            why[n++] = '\n';
        return answer(c, MHD_HTTP_SERVICE_UNAVAILABLE, "text/plain", why, n);
    }
    return answer(c, MHD_HTTP_NOT_FOUND, "text/plain", "not found: /metrics or /healthz\n", 32);
}

http *http_start(const char *listen, metrics *m, int own_thread, char *err, size_t errlen) {
    char host[256], port[16], why[300] = "";
    int port_number;
    if (redwork_address_parse(listen, strlen(listen), host, sizeof host, &port_number, why,
                              sizeof why) != 0 || port_number == 0) {
        snprintf(err, errlen, "[metrics] listen: %s", *why ? why : "a port is needed");
        return NULL;
    }
    snprintf(port, sizeof port, "%d", port_number);
    struct addrinfo hints = {.ai_socktype = SOCK_STREAM, .ai_flags = AI_PASSIVE}, *ai = NULL;
    int rc = getaddrinfo(*host ? host : NULL, port, &hints, &ai);
    if (rc != 0) {
        snprintf(err, errlen, "[metrics] listen '%s': %s", listen, gai_strerror(rc));
        return NULL;
    }
    http *h = calloc(1, sizeof *h);
    if (h == NULL) {
        freeaddrinfo(ai);
        snprintf(err, errlen, "[metrics] listen '%s': out of memory", listen);
        return NULL;
    }
    h->m = m;
    unsigned flags = (own_thread ? MHD_USE_INTERNAL_POLLING_THREAD : MHD_USE_EPOLL) |
                     MHD_USE_ERROR_LOG;
    if (ai->ai_family == AF_INET6)
        flags |= MHD_USE_IPv6;
    h->daemon = MHD_start_daemon(flags, 0, NULL, NULL, on_request, h, MHD_OPTION_SOCK_ADDR,
                                 ai->ai_addr, MHD_OPTION_CONNECTION_TIMEOUT, 10u,
                                 MHD_OPTION_CONNECTION_LIMIT, 64u, MHD_OPTION_END);
    freeaddrinfo(ai);
    if (h->daemon == NULL) {
        snprintf(err, errlen, "[metrics] listen '%s': cannot serve there (in use, or not "
                 "this host's address)", listen);
        free(h);
        return NULL;
    }
    return h;
}

int http_fd(const http *h) {
    const union MHD_DaemonInfo *info = MHD_get_daemon_info(h->daemon, MHD_DAEMON_INFO_EPOLL_FD);
    return info != NULL ? info->epoll_fd : -1;
}

void http_serve(http *h) { MHD_run(h->daemon); }

void http_forget(http *h) {
    if (h == NULL)
        return;
    const union MHD_DaemonInfo *info = MHD_get_daemon_info(h->daemon, MHD_DAEMON_INFO_LISTEN_FD);
    if (info != NULL)
        close(info->listen_fd);
    int fd = http_fd(h);
    if (fd >= 0)
        close(fd);
}

void http_stop(http *h) {
    if (h == NULL)
        return;
    MHD_stop_daemon(h->daemon);
    free(h);
}
