/* conn.c -- opening a blocking connection to the configured Redis:
 * connect with a timeout (TCP, TLS, or a Unix socket when the host is a
 * path), AUTH with the password named by password_env, SELECT the db. */
#include "conn.h"

#include "sentinel.h"
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

/* Connects to the server P names: no sentinel involved. */
static redisContext *connect_server(const conn_params *p, char *err, size_t errlen) {
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
err:;
    const char *role = p->role != NULL ? p->role : "redis";
    if (p->host[0] == '/')
        snprintf(err, errlen, "%s %s: %s", role, p->host, why);
    else
        snprintf(err, errlen, "%s %s:%d: %s", role, p->host, p->port, why);
    redisFree(c);
    return NULL;
}

/* A connection to sentinel K (in redwork_sentinel_address() order), its
 * index in *INDEX and its address in AT (256 bytes) and *AT_PORT; NULL
 * with WHY. */
static redisContext *connect_sentinel(const conn_params *p, size_t k, size_t *index,
                                      char *at, int *at_port, char *why, size_t whylen) {
    redwork_sentinel *s = p->sentinel;
    *index = redwork_sentinel_address(s, k, at, 256, at_port);
    conn_params sp = *p;
    sp.sentinel = NULL;
    sp.host = at;
    sp.port = *at_port;
    sp.db = 0;
    sp.username = redwork_sentinel_username(s);
    sp.password = redwork_sentinel_password(s);
    sp.tls_server_name = NULL;
    sp.role = "sentinel";
    return connect_server(&sp, why, whylen);
}

/* Asks sentinel K (in redwork_sentinel_address() order) where the master
 * is. Returns 0 with HOST (256 bytes) and *PORT, or -1 with WHY. */
static int ask_sentinel(const conn_params *p, size_t k, char *host, int *port, char *why,
                        size_t whylen) {
    redwork_sentinel *s = p->sentinel;
    char at[256];
    int at_port;
    size_t index;
    redisContext *c = connect_sentinel(p, k, &index, at, &at_port, why, whylen);
    if (c == NULL)
        return -1;
    redisReply *r = redisCommand(c, "SENTINEL get-master-addr-by-name %s", redwork_sentinel_name(s));
    int ok = r != NULL && r->type == REDIS_REPLY_ARRAY && r->elements == 2 &&
             r->element[0]->type == REDIS_REPLY_STRING && r->element[0]->len < 256 &&
             r->element[1]->type == REDIS_REPLY_STRING;
    if (ok) {
        strcpy(host, r->element[0]->str);
        *port = atoi(r->element[1]->str);
        ok = *port > 0 && *port <= 65535;
    }
    if (!ok) {
        char reason[256];
        if (r != NULL && r->type == REDIS_REPLY_NIL)
            snprintf(reason, sizeof reason, "knows no master named '%s'",
                     redwork_sentinel_name(s));
        else
            redwork_conn_error(c, r, reason, sizeof reason);
        snprintf(why, whylen, "sentinel %.200s:%d: %.200s", at, at_port, reason);
    }
    freeReplyObject(r);
    redisFree(c);
    if (ok)
        redwork_sentinel_answered(s, index, host, *port);
    return ok ? 0 : -1;
}

/* The master's connection, found through P's sentinels: the first that
 * answers says where it is (else the master found last is tried), and
 * ROLE must say it is the master -- during a failover a sentinel may still
 * name the old one. */
static redisContext *connect_master(const conn_params *p, char *err, size_t errlen) {
    redwork_sentinel *s = p->sentinel;
    char host[256], reasons[1024] = "";
    int port = 0, found = 0;
    for (size_t k = 0; k < redwork_sentinel_count(s) && !found; k++) {
        char why[512];
        found = ask_sentinel(p, k, host, &port, why, sizeof why) == 0;
        if (!found) {
            size_t used = strlen(reasons);
            snprintf(reasons + used, sizeof reasons - used, "%s%s", used ? "; " : "", why);
        }
    }
    if (!found && !redwork_sentinel_last_master(s, host, sizeof host, &port, reasons)) {
        snprintf(err, errlen, "no sentinel of '%s' (%s) answers: %s", redwork_sentinel_name(s),
                 redwork_sentinel_list(s), reasons);
        return NULL;
    }
    conn_params mp = *p;
    mp.sentinel = NULL;
    mp.host = host;
    mp.port = port;
    redisContext *c = connect_server(&mp, err, errlen);
    if (c == NULL)
        return NULL;
    redisReply *r = redisCommand(c, "ROLE");
    int master = r != NULL && r->type == REDIS_REPLY_ARRAY && r->elements > 0 &&
                 r->element[0]->type == REDIS_REPLY_STRING &&
                 strcmp(r->element[0]->str, "master") == 0;
    if (!master) {
        char why[256];
        if (r != NULL && r->type == REDIS_REPLY_ARRAY && r->elements > 0 &&
            r->element[0]->type == REDIS_REPLY_STRING)
            snprintf(why, sizeof why, "ROLE says %s", r->element[0]->str);
        else
            redwork_conn_error(c, r, why, sizeof why);
        snprintf(err, errlen, "redis %s:%d, named master of '%s' by %s, is not the master: %s",
                 host, port, redwork_sentinel_name(s), found ? "a sentinel" : "the last sentinel",
                 why);
        redisFree(c);
        c = NULL;
    }
    freeReplyObject(r);
    return c;
}

redisContext *redwork_conn_connect(const conn_params *p, char *err, size_t errlen) {
    return p->sentinel != NULL ? connect_master(p, err, errlen) : connect_server(p, err, errlen);
}

redisContext *redwork_conn_sentinel(const conn_params *p, char *err, size_t errlen) {
    char reasons[1024] = "";
    for (size_t k = 0; k < redwork_sentinel_count(p->sentinel); k++) {
        char at[256], why[512];
        int at_port;
        size_t index;
        redisContext *c = connect_sentinel(p, k, &index, at, &at_port, why, sizeof why);
        if (c != NULL)
            return c;
        size_t used = strlen(reasons);
        snprintf(reasons + used, sizeof reasons - used, "%s%s", used ? "; " : "", why);
    }
    snprintf(err, errlen, "no sentinel of '%s' (%s) answers: %s",
             redwork_sentinel_name(p->sentinel), redwork_sentinel_list(p->sentinel), reasons);
    return NULL;
}

conn_params redwork_conn_params(const config *cfg) {
    return (conn_params){
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
        .sentinel = cfg->sentinel,
    };
}

redisContext *redwork_conn_open(const config *cfg, char *err, size_t errlen) {
    conn_params p = redwork_conn_params(cfg);
    return redwork_conn_connect(&p, err, errlen);
}

redisContext *redwork_conn_open_sentinel(const config *cfg, char *err, size_t errlen) {
    conn_params p = redwork_conn_params(cfg);
    return redwork_conn_sentinel(&p, err, errlen);
}
