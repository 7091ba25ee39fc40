/* tls.c -- TLS to Redis for hiredis 0.14, which has none.
 *
 * DESIGN. The handshake runs on the caller's thread, bounded by the connect
 * timeout, so a bad certificate is an error at connect time with OpenSSL's
 * own words. Then a detached pump thread owns the session: it moves bytes
 * from the socketpair to SSL_write and from SSL_read to the socketpair,
 * non-blocking and buffered both ways, and when either side ends it shuts
 * the session down and closes both fds. One
 * thread per connection is cheap next to what a TLS-only Redis costs, and
 * it keeps the rest of redwork unaware of TLS. */
#include "tls.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

#include <openssl/crypto.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>

#include "buffer.h"
#include "clock.h"

/* The pump threads still running, which exit waits for (briefly) so that
 * a short-lived program does not end while one is freeing its session.
 * Owned by this module. */
static pthread_mutex_t pumps_lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t pumps_done = PTHREAD_COND_INITIALIZER;
static int pumps_live;
static pthread_once_t pumps_once = PTHREAD_ONCE_INIT;

#define PUMP_EXIT_WAIT_MS 500
#define PUMP_BUFFER_MAX (1u << 20) /* bytes held each way before the sender must wait */
#define PUMP_FLUSH_MS 1000         /* to deliver the server's last words */

static void wait_for_pumps(void) {
    struct timespec deadline;
    clock_gettime(CLOCK_REALTIME, &deadline);
    deadline.tv_nsec += PUMP_EXIT_WAIT_MS * 1000000L;
    if (deadline.tv_nsec >= 1000000000L) {
        deadline.tv_sec++;
        deadline.tv_nsec -= 1000000000L;
    }
    pthread_mutex_lock(&pumps_lock);
    while (pumps_live > 0 &&
           pthread_cond_timedwait(&pumps_done, &pumps_lock, &deadline) == 0)
        ;
    pthread_mutex_unlock(&pumps_lock);
}

static void register_wait_for_pumps(void) {
    atexit(wait_for_pumps);
}

typedef struct pump {
    SSL *ssl;
    SSL_CTX *ctx;
    int tcp;   /* the socket to the server */
    int inner; /* our end of the socketpair */
    buffer to_server, to_app;
} pump;

/* OpenSSL's last error, or WHAT if it has none. */
static const char *ssl_reason(const char *what, char *buf, size_t len) {
    unsigned long e = ERR_get_error();
    if (e == 0)
        return what;
    ERR_error_string_n(e, buf, len);
    return buf;
}

/* Connects a TCP socket to HOST:PORT within TIMEOUT_MS. */
static int tcp_connect(const char *host, int port, long long timeout_ms, char *why,
                       size_t whylen) {
    char service[16];
    snprintf(service, sizeof service, "%d", port);
    struct addrinfo hints = {.ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM};
    struct addrinfo *res = NULL;
    int rc = getaddrinfo(host, service, &hints, &res);
    if (rc != 0) {
        snprintf(why, whylen, "%s", gai_strerror(rc));
        return -1;
    }
    int fd = -1;
    snprintf(why, whylen, "no address");
    for (struct addrinfo *a = res; a != NULL && fd < 0; a = a->ai_next) {
        fd = socket(a->ai_family, a->ai_socktype | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
        if (fd < 0)
            continue;
        if (connect(fd, a->ai_addr, a->ai_addrlen) != 0 && errno != EINPROGRESS)
            goto next;
        struct pollfd p = {.fd = fd, .events = POLLOUT};
        int soerr = 0;
        socklen_t sl = sizeof soerr;
        if (poll(&p, 1, (int)timeout_ms) != 1) {
            errno = ETIMEDOUT;
            goto next;
        }
        if (getsockopt(fd, SOL_SOCKET, SO_ERROR, &soerr, &sl) != 0 || soerr != 0) {
            errno = soerr ? soerr : errno;
            goto next;
        }
        fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) & ~O_NONBLOCK);
        int one = 1;
        setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
        setsockopt(fd, SOL_SOCKET, SO_KEEPALIVE, &one, sizeof one);
        break;
    next:
        snprintf(why, whylen, "%s", strerror(errno));
        close(fd);
        fd = -1;
    }
    freeaddrinfo(res);
    return fd;
}

/* Writes what waits for the application until it is all written or the
 * socketpair is full. Returns 0, or -1 if the application's end is gone. */
static int write_to_app(pump *p) {
    while (p->to_app.len > 0) {
        ssize_t n = write(p->inner, p->to_app.data, p->to_app.len);
        if (n > 0) {
            redwork_buffer_consume(&p->to_app, (size_t)n);
            continue;
        }
        if (n < 0 && (errno == EAGAIN || errno == EINTR))
            return 0;
        return -1;
    }
    return 0;
}

/* The server has ended the session: what it said last (an error line such
 * as "max number of clients reached") still goes to the application,
 * within PUMP_FLUSH_MS, before the pump closes its end. */
static void deliver_rest(pump *p) {
    uint64_t give_up = clock_now_us() + (uint64_t)PUMP_FLUSH_MS * 1000u;
    struct pollfd out = {.fd = p->inner, .events = POLLOUT};
    while (write_to_app(p) == 0 && p->to_app.len > 0 && clock_now_us() <= give_up &&
           poll(&out, 1, PUMP_FLUSH_MS) > 0)
        ;
}

/* One pass of the pump. Never blocks on a write, and holds at most
 * PUMP_BUFFER_MAX bytes each way: past that it stops reading the side that
 * sends, so the sender's buffers fill as they would without TLS -- Redis's
 * output-buffer limits still apply to a client that does not read.
 * Returns 0 to go on, -1 when a side has ended. */
static int pump_once(pump *p) {
    char buf[16384];
    int want_write = 0, server_ended = 0;
    while (p->to_server.len > 0) {
        int n = SSL_write(p->ssl, p->to_server.data, (int)p->to_server.len);
        if (n > 0) {
            redwork_buffer_consume(&p->to_server, (size_t)n);
            continue;
        }
        int e = SSL_get_error(p->ssl, n);
        if (e != SSL_ERROR_WANT_WRITE && e != SSL_ERROR_WANT_READ)
            return -1;
        want_write = e == SSL_ERROR_WANT_WRITE;
        break;
    }
    while (p->to_app.len < PUMP_BUFFER_MAX) {
        int n = SSL_read(p->ssl, buf, sizeof buf);
        if (n > 0) {
            if (buffer_append(&p->to_app, buf, (size_t)n) != 0)
                return -1;
            continue;
        }
        int e = SSL_get_error(p->ssl, n);
        server_ended = e != SSL_ERROR_WANT_READ && e != SSL_ERROR_WANT_WRITE;
        break; /* the server hung up, or the session broke, or nothing yet */
    }
    if (write_to_app(p) != 0)
        return -1;
    if (server_ended) {
        deliver_rest(p);
        return -1;
    }
    int app_room = p->to_server.len < PUMP_BUFFER_MAX, server_room = p->to_app.len < PUMP_BUFFER_MAX;
    struct pollfd fds[2] = {
        {.fd = p->inner, .events = (app_room ? POLLIN : 0) | (p->to_app.len > 0 ? POLLOUT : 0)},
        {.fd = p->tcp, .events = (server_room ? POLLIN : 0) | (want_write ? POLLOUT : 0)},
    };
    if (poll(fds, 2, -1) < 0)
        return errno == EINTR ? 0 : -1;
    if (!app_room && (fds[0].revents & (POLLHUP | POLLERR)))
        return -1; /* the application is gone: what waits for the server is moot */
    if (app_room && (fds[0].revents & (POLLIN | POLLHUP | POLLERR))) {
        ssize_t n = read(p->inner, buf, sizeof buf);
        if (n == 0 || (n < 0 && errno != EAGAIN && errno != EINTR))
            return -1; /* the application closed its end */
        if (n > 0 && buffer_append(&p->to_server, buf, (size_t)n) != 0)
            return -1;
    }
    return 0;
}

static void *pump_main(void *arg) {
    pump *p = arg;
    while (pump_once(p) == 0)
        ;
    SSL_shutdown(p->ssl);
    SSL_free(p->ssl);
    SSL_CTX_free(p->ctx);
    close(p->tcp);
    close(p->inner);
    redwork_buffer_free(&p->to_server);
    redwork_buffer_free(&p->to_app);
    free(p);
    OPENSSL_thread_stop(); /* this thread's OpenSSL state */
    pthread_mutex_lock(&pumps_lock);
    pumps_live--;
    pthread_cond_broadcast(&pumps_done);
    pthread_mutex_unlock(&pumps_lock);
    return NULL;
}

int redwork_tls_connect(const tls_params *tp, char *err, size_t errlen) {
    char why[768] = "", sslbuf[256];
    pump *p = calloc(1, sizeof *p);
    int pair[2] = {-1, -1};
    if (p == NULL) {
        snprintf(why, sizeof why, "out of memory");
        goto err;
    }
    p->tcp = p->inner = -1;
    if ((p->ctx = SSL_CTX_new(TLS_client_method())) == NULL) {
        snprintf(why, sizeof why, "%s", ssl_reason("cannot make a TLS context", sslbuf, sizeof sslbuf));
        goto err;
    }
    SSL_CTX_set_min_proto_version(p->ctx, TLS1_2_VERSION);
    SSL_CTX_set_verify(p->ctx, SSL_VERIFY_PEER, NULL);
    int ca_ok = tp->ca_file != NULL && *tp->ca_file
                    ? SSL_CTX_load_verify_locations(p->ctx, tp->ca_file, NULL)
                    : SSL_CTX_set_default_verify_paths(p->ctx);
    if (ca_ok != 1) {
        snprintf(why, sizeof why, "tls_ca_file %s: %s", tp->ca_file ? tp->ca_file : "",
                 ssl_reason("cannot load the CA certificates", sslbuf, sizeof sslbuf));
        goto err;
    }
    if (tp->cert_file != NULL && *tp->cert_file &&
        (SSL_CTX_use_certificate_chain_file(p->ctx, tp->cert_file) != 1 ||
         SSL_CTX_use_PrivateKey_file(p->ctx, tp->key_file, SSL_FILETYPE_PEM) != 1)) {
        snprintf(why, sizeof why, "tls_cert_file %s / tls_key_file %s: %s",
                 tp->cert_file, tp->key_file ? tp->key_file : "",
                 ssl_reason("cannot load the client certificate", sslbuf, sizeof sslbuf));
        goto err;
    }
    if ((p->tcp = tcp_connect(tp->host, tp->port, tp->connect_timeout_ms, why,
                              sizeof why)) < 0)
        goto err;
    struct timeval tv = {.tv_sec = tp->connect_timeout_ms / 1000,
                         .tv_usec = (tp->connect_timeout_ms % 1000) * 1000};
    setsockopt(p->tcp, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv); /* the handshake */
    setsockopt(p->tcp, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);

    const char *name = tp->server_name != NULL && *tp->server_name ? tp->server_name
                                                                   : tp->host;
    unsigned char ip[16];
    int is_ip = inet_pton(AF_INET, name, ip) == 1 || inet_pton(AF_INET6, name, ip) == 1;
    if ((p->ssl = SSL_new(p->ctx)) == NULL || SSL_set_fd(p->ssl, p->tcp) != 1 ||
        (!is_ip && SSL_set_tlsext_host_name(p->ssl, name) != 1) ||
        (is_ip ? X509_VERIFY_PARAM_set1_ip_asc(SSL_get0_param(p->ssl), name)
               : SSL_set1_host(p->ssl, name)) != 1) {
        snprintf(why, sizeof why, "%s", ssl_reason("cannot set up TLS", sslbuf, sizeof sslbuf));
        goto err;
    }
    if (SSL_connect(p->ssl) != 1) {
        long verify = SSL_get_verify_result(p->ssl);
        snprintf(why, sizeof why, "TLS handshake failed: %s",
                 verify != X509_V_OK ? X509_verify_cert_error_string(verify)
                                     : ssl_reason("the server closed the connection",
                                                  sslbuf, sizeof sslbuf));
        goto err;
    }
    /* From here on the pump never blocks (see pump_once). */
    fcntl(p->tcp, F_SETFL, fcntl(p->tcp, F_GETFL) | O_NONBLOCK);
    SSL_set_mode(p->ssl, SSL_MODE_ENABLE_PARTIAL_WRITE |
                         SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER);

    if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, pair) != 0) {
        snprintf(why, sizeof why, "socketpair: %s", strerror(errno));
        goto err;
    }
    p->inner = pair[1];
    fcntl(p->inner, F_SETFL, fcntl(p->inner, F_GETFL) | O_NONBLOCK);
    pthread_t thread;
    pthread_attr_t attr;
    if (pthread_attr_init(&attr) != 0) {
        snprintf(why, sizeof why, "cannot start the TLS thread: pthread_attr_init failed");
        close(pair[0]);
        goto err;
    }
    pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
    sigset_t all, old; /* the pump takes no signals */
    sigfillset(&all);
    pthread_once(&pumps_once, register_wait_for_pumps);
    pthread_mutex_lock(&pumps_lock);
    pumps_live++;
    pthread_mutex_unlock(&pumps_lock);
    pthread_sigmask(SIG_SETMASK, &all, &old);
    int rc = pthread_create(&thread, &attr, pump_main, p);
    pthread_sigmask(SIG_SETMASK, &old, NULL);
    pthread_attr_destroy(&attr);
    if (rc != 0) {
        pthread_mutex_lock(&pumps_lock);
        pumps_live--;
        pthread_mutex_unlock(&pumps_lock);
        snprintf(why, sizeof why, "cannot start the TLS thread: %s", strerror(rc));
        close(pair[0]);
        goto err;
    }
    return pair[0];
err:
    snprintf(err, errlen, "redis %s:%d (TLS): %s", tp->host, tp->port, why);
    if (p != NULL) {
        if (p->ssl != NULL)
            SSL_free(p->ssl);
        if (p->ctx != NULL)
            SSL_CTX_free(p->ctx);
        if (p->tcp >= 0)
            close(p->tcp);
        if (p->inner >= 0)
            close(p->inner);
        free(p);
    }
    ERR_clear_error();
    return -1;
}
