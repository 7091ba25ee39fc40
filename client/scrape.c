/* scrape.c -- a worker's /metrics, fetched and read for `redwork top`
 * (scrape.h). HTTP/1.0 on a blocking socket with send and receive
 * timeouts, the whole exchange bounded by one deadline; the answer is at
 * most SCRAPE_MAX bytes. Only the two series top shows are parsed. */
#include "scrape.h"

#include <errno.h>
#include <math.h>
#include <netdb.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

#include "clock.h"
#include "url.h"

#define SCRAPE_MAX (8u << 20)

int scrape_endpoint(const char *listen, const char *host, char *out, size_t len) {
    char addr[256], why[128];
    int port = 0;
    if (listen == NULL || *listen == '\0' ||
        redwork_address_parse(listen, strlen(listen), addr, sizeof addr, &port, why,
                              sizeof why) != 0 ||
        port <= 0)
        return -1;
    if (*addr == '\0' || strcmp(addr, "0.0.0.0") == 0 || strcmp(addr, "::") == 0 ||
        strcmp(addr, "*") == 0)
        snprintf(addr, sizeof addr, "%s", host);
    int n = strchr(addr, ':') != NULL ? snprintf(out, len, "[%s]:%d", addr, port)
                                      : snprintf(out, len, "%s:%d", addr, port);
    return n > 0 && (size_t)n < len ? 0 : -1;
}

/* Connects to ENDPOINT with TIMEOUT_MS for each step. Returns the socket,
 * or -1 with ERR. */
static int connect_to(const char *endpoint, int timeout_ms, char *err, size_t errlen) {
    char host[256], port[16], why[128];
    int port_number = 0;
    if (redwork_address_parse(endpoint, strlen(endpoint), host, sizeof host, &port_number, why,
                              sizeof why) != 0) {
        snprintf(err, errlen, "metrics %s: %s", endpoint, why);
        return -1;
    }
    snprintf(port, sizeof port, "%d", port_number);
    struct addrinfo hints = {.ai_socktype = SOCK_STREAM}, *found;
    int rc = getaddrinfo(host, port, &hints, &found);
    if (rc != 0) {
        snprintf(err, errlen, "metrics %s: %s", endpoint, gai_strerror(rc));
        return -1;
    }
    struct timeval tv = {timeout_ms / 1000, (timeout_ms % 1000) * 1000};
    int fd = -1, saved = 0;
    for (struct addrinfo *a = found; a != NULL && fd < 0; a = a->ai_next) {
        fd = socket(a->ai_family, a->ai_socktype | SOCK_CLOEXEC, a->ai_protocol);
        if (fd < 0)
            continue;
        setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
        setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv); /* bounds connect too */
        if (connect(fd, a->ai_addr, a->ai_addrlen) != 0) {
            saved = errno;
            close(fd);
            fd = -1;
        }
    }
    freeaddrinfo(found);
    if (fd < 0)
        snprintf(err, errlen, "metrics %s: %s", endpoint,
                 saved == EINPROGRESS || saved == EAGAIN ? "no answer" : strerror(saved));
    return fd;
}

int scrape_fetch(const char *endpoint, int timeout_ms, scrape *out, char *err, size_t errlen) {
    scrape_clear(out);
    uint64_t deadline = clock_now_us() + (uint64_t)timeout_ms * 1000;
    int fd = connect_to(endpoint, timeout_ms, err, errlen);
    if (fd < 0)
        return -1;
    char request[512];
    int n = snprintf(request, sizeof request,
                     "GET /metrics HTTP/1.0\r\nHost: %s\r\nUser-Agent: redwork-top\r\n\r\n",
                     endpoint);
    size_t len = 0, cap = 65536;
    char *buf = NULL;
    const char *why = NULL;
    if (n <= 0 || (size_t)n >= sizeof request || write(fd, request, (size_t)n) != n)
        why = "cannot send the request";
    else if ((buf = malloc(cap)) == NULL)
        why = "out of memory";
    while (why == NULL) {
        if (len + 1 == cap) {
            char *grown = cap < SCRAPE_MAX ? realloc(buf, cap * 2) : NULL;
            if (grown == NULL) {
                why = cap < SCRAPE_MAX ? "out of memory" : "answer too long";
                break;
            }
            buf = grown;
            cap *= 2;
        }
        ssize_t got = read(fd, buf + len, cap - len - 1);
        if (got == 0)
            break;
        if (got < 0 && errno != EINTR)
            why = errno == EAGAIN || errno == EWOULDBLOCK ? "no answer in time" : strerror(errno);
        else if (got > 0)
            len += (size_t)got;
        if (why == NULL && clock_now_us() > deadline)
            why = "no answer in time";
    }
    close(fd);
    const char *body = NULL;
    if (why == NULL) {
        buf[len] = '\0';
        body = strstr(buf, "\r\n\r\n");
        if (strncmp(buf, "HTTP/1.", 7) != 0 || body == NULL)
            why = "not an HTTP answer";
        else if (strncmp(buf + 8, " 200", 4) != 0)
            why = "answered other than 200";
        else if (scrape_parse(body + 4, out) != 0)
            why = "out of memory";
    }
    if (why != NULL)
        snprintf(err, errlen, "metrics %s: %s", endpoint, why);
    free(buf);
    return why == NULL ? 0 : -1;
}

/* The value of label NAME in the braces at LABELS (which end at the first
 * unquoted '}'), unescaped into OUT. Returns 0, or -1 when absent. */
static int label(const char *labels, const char *name, char *out, size_t len) {
    size_t name_len = strlen(name);
    for (const char *p = labels + 1; *p && *p != '}';) {
        const char *eq = strchr(p, '=');
        if (eq == NULL || eq[1] != '"')
            return -1;
        int wanted = (size_t)(eq - p) == name_len && strncmp(p, name, name_len) == 0;
        size_t n = 0;
        for (p = eq + 2; *p && *p != '"'; p++) {
            char c = *p;
            if (c == '\\' && p[1]) {
                c = *++p;
                c = c == 'n' ? '\n' : c;
            }
            if (wanted && n + 1 < len)
                out[n++] = c;
        }
        if (*p != '"')
            return -1;
        if (wanted) {
            out[n] = '\0';
            return 0;
        }
        p += p[1] == ',' ? 2 : 1;
    }
    return -1;
}

/* The handler NAME in S, added when new. NULL out of memory. */
static scrape_handler *handler_of(scrape *s, const char *name) {
    scrape_handler *h = (scrape_handler *)scrape_find(s, name);
    if (h != NULL)
        return h;
    if (s->count == s->cap) {
        size_t cap = s->cap ? s->cap * 2 : 16;
        scrape_handler *grown = realloc(s->handler, cap * sizeof *grown);
        if (grown == NULL)
            return NULL;
        s->handler = grown;
        s->cap = cap;
    }
    h = &s->handler[s->count++];
    memset(h, 0, sizeof *h);
    snprintf(h->name, sizeof h->name, "%s", name);
    return h;
}

/* Adds the sample at LINE (ending at EOL) to OUT if it is one top needs.
 * Returns 0, or -1 out of memory. */
static int parse_line(const char *line, const char *eol, scrape *out) {
    static const char requests[] = "redwork_requests_total{";
    static const char bucket[] = "redwork_request_duration_seconds_bucket{";
    int is_requests = strncmp(line, requests, sizeof requests - 1) == 0;
    if (!is_requests && strncmp(line, bucket, sizeof bucket - 1) != 0)
        return 0;
    const char *labels = strchr(line, '{'), *end = strstr(labels, "} ");
    char name[128], other[64];
    if (end == NULL || end > eol || label(labels, "handler", name, sizeof name) != 0 ||
        label(labels, is_requests ? "outcome" : "le", other, sizeof other) != 0)
        return 0;
    double value = strtod(end + 2, NULL);
    scrape_handler *h = handler_of(out, name);
    if (h == NULL)
        return -1;
    if (is_requests) {
        h->requests += value;
        if (strcmp(other, "ok") != 0)
            h->errors += value;
    } else if (h->buckets < SCRAPE_BUCKETS) {
        h->le[h->buckets] = strcmp(other, "+Inf") == 0 ? INFINITY : strtod(other, NULL);
        h->count[h->buckets++] = value;
    }
    return 0;
}

int scrape_parse(const char *text, scrape *out) {
    while (*text) {
        const char *eol = strchr(text, '\n');
        if (eol == NULL)
            eol = text + strlen(text);
        if (parse_line(text, eol, out) != 0)
            return -1;
        text = *eol ? eol + 1 : eol;
    }
    return 0;
}

const scrape_handler *scrape_find(const scrape *s, const char *name) {
    for (size_t i = 0; i < s->count; i++)
        if (strcmp(s->handler[i].name, name) == 0)
            return &s->handler[i];
    return NULL;
}

void scrape_clear(scrape *s) {
    free(s->handler);
    memset(s, 0, sizeof *s);
}

double scrape_quantile(const double *le, const double *count, size_t n, double q) {
    if (n == 0 || count[n - 1] <= 0)
        return -1;
    double rank = q * count[n - 1];
    size_t b = 0;
    while (b + 1 < n && count[b] < rank)
        b++;
    if (isinf(le[b]))
        return b > 0 ? le[b - 1] : 0;
    double lower = b > 0 ? le[b - 1] : 0, below = b > 0 ? count[b - 1] : 0;
    double inside = count[b] - below;
    return inside > 0 ? lower + (le[b] - lower) * (rank - below) / inside : le[b];
}
