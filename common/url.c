/* url.c -- where Redis is, written as a URL (see url.h). */
#include "url.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Parses the N digits at P as a number in 0..MAX. Returns it, or -1. */
static long long number(const char *p, size_t n, long long max) {
    long long v = 0;
    if (n == 0 || n > 10)
        return -1;
    for (size_t i = 0; i < n; i++) {
        if (p[i] < '0' || p[i] > '9')
            return -1;
        v = v * 10 + (p[i] - '0');
    }
    return v <= max ? v : -1;
}

/* Copies the N bytes at P into DST (CAP bytes). Returns 0, or -1. */
static int copy(char *dst, size_t cap, const char *p, size_t n) {
    if (n >= cap)
        return -1;
    memcpy(dst, p, n);
    dst[n] = '\0';
    return 0;
}

static int fail(char *err, size_t errlen, const char *why) {
    snprintf(err, errlen, "%s", why);
    return -1;
}

/* unix:///path[?db=N] */
static int parse_unix(const char *p, redwork_url *out, char *err, size_t errlen) {
    const char *query = strchr(p, '?');
    size_t n = query != NULL ? (size_t)(query - p) : strlen(p);
    if (n == 0 || p[0] != '/')
        return fail(err, errlen, "unix:// needs an absolute socket path (unix:///run/redis.sock)");
    if (copy(out->host, sizeof out->host, p, n) != 0)
        return fail(err, errlen, "the socket path is too long");
    out->unix_socket = 1;
    if (query == NULL)
        return 0;
    if (strncmp(query, "?db=", 4) != 0 || (out->db = number(query + 4, strlen(query + 4),
                                                            2147483647LL)) < 0)
        return fail(err, errlen, "the only query is ?db=N (a database number)");
    return 0;
}

/* [user@]host[:port][/db] */
static int parse_tcp(const char *p, redwork_url *out, char *err, size_t errlen) {
    size_t authority = strcspn(p, "/?#");
    if (p[authority] == '?' || p[authority] == '#')
        return fail(err, errlen, "a redis:// URL takes no query or fragment");
    const char *at = memchr(p, '@', authority);
    if (at != NULL) {
        if (memchr(p, ':', (size_t)(at - p)) != NULL)
            return fail(err, errlen, "a password in the URL is refused: put it in an "
                                     "environment variable and name it with password_env");
        if (at == p || copy(out->username, sizeof out->username, p, (size_t)(at - p)) != 0)
            return fail(err, errlen, "the user name is empty or too long");
        authority -= (size_t)(at + 1 - p);
        p = at + 1;
    }
    const char *host = p, *host_end, *port = NULL;
    if (*p == '[') { /* [v6-address] */
        host_end = memchr(p, ']', authority);
        if (host_end == NULL)
            return fail(err, errlen, "an IPv6 address needs its closing ']'");
        host++;
        if (host_end + 1 < p + authority) {
            if (host_end[1] != ':')
                return fail(err, errlen, "only :port may follow an IPv6 address");
            port = host_end + 2;
        }
    } else {
        host_end = memchr(p, ':', authority);
        if (host_end != NULL)
            port = host_end + 1;
        else
            host_end = p + authority;
    }
    if (host_end == host || copy(out->host, sizeof out->host, host, (size_t)(host_end - host)) != 0)
        return fail(err, errlen, "the host is empty or too long");
    if (port != NULL &&
        (out->port = (int)number(port, (size_t)(p + authority - port), 65535)) < 1)
        return fail(err, errlen, "the port is not a number 1..65535");
    const char *path = p + authority;
    if (*path == '/' && path[1] != '\0' &&
        (out->db = number(path + 1, strlen(path + 1), 2147483647LL)) < 0)
        return fail(err, errlen, "the path is not a database number (/0, /1, ...)");
    return 0;
}

int redwork_url_parse(const char *url, redwork_url *out, char *err, size_t errlen) {
    memset(out, 0, sizeof *out);
    out->db = -1;
    if (strncmp(url, "unix://", 7) == 0)
        return parse_unix(url + 7, out, err, errlen);
    if (strncmp(url, "rediss://", 9) == 0) {
        out->tls = 1;
        return parse_tcp(url + 9, out, err, errlen);
    }
    if (strncmp(url, "redis://", 8) == 0)
        return parse_tcp(url + 8, out, err, errlen);
    return fail(err, errlen, "not a redis://, rediss:// or unix:// URL");
}

const char *redwork_url_redacted(const char *url, char *buf, size_t len) {
    const char *auth = strstr(url, "://");
    auth = auth != NULL ? auth + 3 : url;
    size_t n = strcspn(auth, "/?#");
    const char *at = memchr(auth, '@', n), *colon = at ? memchr(auth, ':', (size_t)(at - auth)) : NULL;
    if (colon == NULL)
        snprintf(buf, len, "%s", url);
    else
        snprintf(buf, len, "%.*s:***%s", (int)(colon - url), url, at);
    return buf;
}

int redwork_address_parse(const char *text, size_t n, char *host, size_t hostlen, int *port,
                          char *err, size_t errlen) {
    char url[300], why[256] = "";
    redwork_url u;
    if (n > 256 || snprintf(url, sizeof url, "redis://%.*s", (int)n, text) < 0 ||
        redwork_url_parse(url, &u, why, sizeof why) != 0 || *u.username || u.db >= 0 ||
        strlen(u.host) >= hostlen) {
        snprintf(err, errlen, "'%.*s' is not host:port%s%s", (int)(n > 256 ? 256 : n), text,
                 n <= 256 && *why ? ": " : "", n <= 256 ? why : "");
        return -1;
    }
    snprintf(host, hostlen, "%s", u.host);
    *port = u.port;
    return 0;
}
