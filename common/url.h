/* url.h -- where Redis is, written as a URL, for redworkd's [redis] url,
 * libredwork's options and the CLI's --url and REDIS_URL:
 *
 *     redis://[user@]host[:port][/db]     TCP (host may be [v6-address])
 *     rediss://[user@]host[:port][/db]    TCP with TLS
 *     unix:///path/to/redis.sock[?db=N]   a Unix socket
 *
 * A password in a URL is refused: secrets reach redwork only through the
 * environment (password_env), never through a file, a command line or a
 * process list. Characters are taken as written (no %-decoding). */
#ifndef REDWORK_URL_H
#define REDWORK_URL_H

#include <stddef.h>

typedef struct redwork_url {
    char host[256];     /* host name or address; unix://: the socket's path */
    int port;           /* 0: not in the URL */
    long long db;       /* -1: not in the URL */
    char username[128]; /* "": not in the URL */
    int tls;            /* rediss:// */
    int unix_socket;    /* unix:// */
} redwork_url;

/* Parses URL into OUT. Returns 0, or -1 with ERR saying what is wrong
 * (without repeating the URL, which the caller names with its key). */
int redwork_url_parse(const char *url, redwork_url *out, char *err, size_t errlen);

/* Parses the N bytes at TEXT as "host", "host:port" or "[v6]:port" (a
 * redis:// URL's address, without user or database) into HOST (HOSTLEN
 * bytes) and *PORT (0 when absent). Returns 0, or -1 with ERR. */
int redwork_address_parse(const char *text, size_t n, char *host, size_t hostlen, int *port,
                          char *err, size_t errlen);

/* Copies URL into BUF (LEN bytes) with any password in it replaced by
 * "***", for messages that quote a refused URL. Returns BUF. */
const char *redwork_url_redacted(const char *url, char *buf, size_t len);

#endif
