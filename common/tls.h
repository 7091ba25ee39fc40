/* tls.h -- TLS to Redis for hiredis 0.14, which has none.
 *
 * redwork_tls_connect() makes a verified OpenSSL session to the server and hands
 * back one end of a socketpair; a detached thread pumps bytes between the
 * other end and the session. hiredis speaks plain RESP on the returned fd
 * (redisConnectFd), so every module keeps using its protocol reader,
 * command formatter and poll(2) on c->fd unchanged. The thread ends, and
 * frees everything, when the fd is closed or the server hangs up. */
#ifndef REDWORK_TLS_H
#define REDWORK_TLS_H

#include <stddef.h>

typedef struct tls_params {
    const char *host;
    int port;
    long long connect_timeout_ms;
    const char *ca_file;     /* "" or NULL: the system's trusted CAs */
    const char *cert_file;   /* a client certificate, "" or NULL: none */
    const char *key_file;    /* its key */
    const char *server_name; /* the name to verify, "" or NULL: host */
} tls_params;

/* Connects to P's host:port within its timeout and makes a TLS session
 * whose certificate must chain to the CA and match the server name (or
 * IP address). Returns the plaintext fd (the caller owns it), or -1 with
 * ERR naming host:port and the reason (OpenSSL's text included). */
int redwork_tls_connect(const tls_params *p, char *err, size_t errlen);

#endif
