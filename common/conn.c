/* conn.c -- opening a blocking connection to the configured Redis:
 * connect with a timeout (TCP, TLS, or a Unix socket when the host is a
 * path), AUTH with the password named by password_env, SELECT the db. */
#include "conn.h"

#include "tls.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/time.h>

#define COMMAND_TIMEOUT_S 5

const char *redwork_conn_error(const redisContext *c, const redisReply *reply,
                       char *err, size_t errlen) {
    if (reply != NULL && reply->type == REDIS_REPLY_ERROR)
        snprintf(err, errlen, "%s", reply->str);
    else if (c != NULL && c->err)
        snprintf(err, errlen, "%s", c->errstr);
    else if (reply != NULL)
        snprintf(err, errlen, "unexpected reply type %d", reply->type);
    else
        snprintf(err, errlen, "no reply");
    return err;
}

/* Runs one command that must not fail. Returns 0, or -1 with ERR. */
static int command_ok(redisContext *c, char *err, size_t errlen,
                      const char *what, int argc, const char **argv) {
    redisReply *reply = redisCommandArgv(c, argc, argv, NULL);
    int ok = reply != NULL && reply->type != REDIS_REPLY_ERROR;
    if (!ok) {
        char why[256];
        snprintf(err, errlen, "%s failed: %s", what,
                 redwork_conn_error(c, reply, why, sizeof why));
    }
    freeReplyObject(reply);
    return ok ? 0 : -1;
}

redisContext *redwork_conn_connect(const conn_params *p, char *err, size_t errlen) {
    struct timeval connect_tv = {
        .tv_sec = p->connect_timeout_ms / 1000,
        .tv_usec = (p->connect_timeout_ms % 1000) * 1000,
    };
    char why[256];
    redisContext *c = NULL;
    if (p->tls) {
        tls_params tp = {
            .host = p->host, .port = p->port, .connect_timeout_ms = p->connect_timeout_ms,
            .ca_file = p->tls_ca_file, .cert_file = p->tls_cert_file,
            .key_file = p->tls_key_file, .server_name = p->tls_server_name,
        };
        int fd = redwork_tls_connect(&tp, err, errlen);
        if (fd < 0)
            return NULL; /* ERR says it all */
        c = redisConnectFd(fd);
    } else if (p->host[0] == '/') {
        c = redisConnectUnixWithTimeout(p->host, connect_tv);
    } else {
        c = redisConnectWithTimeout(p->host, p->port, connect_tv);
    }
    if (c == NULL || c->err) {
        snprintf(why, sizeof why, "%s", c != NULL ? c->errstr : "out of memory");
        goto err;
    }
    struct timeval command_tv = {.tv_sec = COMMAND_TIMEOUT_S};
    if (redisSetTimeout(c, command_tv) != REDIS_OK ||
        (!p->tls && p->host[0] != '/' && redisEnableKeepAlive(c) != REDIS_OK)) {
        /* TLS: keepalive is set on its own socket; a Unix socket has none */
        snprintf(why, sizeof why, "cannot set socket options: %s", c->errstr);
        goto err;
    }
    if (p->password != NULL && *p->password) {
        int with_user = p->username != NULL && *p->username;
        const char *argv[] = {"AUTH", with_user ? p->username : p->password,
                              p->password};
        if (command_ok(c, why, sizeof why, "AUTH", with_user ? 3 : 2, argv) != 0)
            goto err;
    }
    if (p->db != 0) {
        char db[24];
        snprintf(db, sizeof db, "%lld", p->db);
        if (command_ok(c, why, sizeof why, "SELECT",
                       2, (const char *[]){"SELECT", db}) != 0)
            goto err;
    }
    return c;
err:
    if (p->host[0] == '/')
        snprintf(err, errlen, "redis %s: %s", p->host, why);
    else
        snprintf(err, errlen, "redis %s:%d: %s", p->host, p->port, why);
    redisFree(c);
    return NULL;
}

redisContext *redwork_conn_open(const config *cfg, char *err, size_t errlen) {
    conn_params p = {
        .host = cfg->redis_host,
        .port = (int)cfg->redis_port,
        .db = cfg->redis_db,
        .username = cfg->redis_username,
        .password = *cfg->redis_password_env ? getenv(cfg->redis_password_env) : NULL,
        .connect_timeout_ms = cfg->connect_timeout_ms,
        .tls = (int)cfg->tls,
        .tls_ca_file = cfg->tls_ca_file,
        .tls_cert_file = cfg->tls_cert_file,
        .tls_key_file = cfg->tls_key_file,
        .tls_server_name = cfg->tls_server_name,
    };
    return redwork_conn_connect(&p, err, errlen);
}
