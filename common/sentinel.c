/* sentinel.c -- the sentinels' addresses and what they last said (see
 * sentinel.h; the asking is in conn.c). */
#include "sentinel.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "url.h"

typedef struct address {
    char host[256];
    int port;
} address;

struct redwork_sentinel {
    pthread_mutex_t lock;
    address at[SENTINEL_MAX];
    size_t count;
    size_t last;          /* the sentinel that answered last */
    char name[128];
    char list[1024];
    char username[128];
    char password[256];
    address master;       /* found last; port 0: never */
    int falling_back;     /* the last master is in use: warned */
    redwork_sentinel_warn_fn *warn;
    void *warn_ctx;
};

/* Parses one "host:port", "host" or "[v6]:port" of N bytes at P. */
static int parse_address(const char *p, size_t n, address *out, char *err, size_t errlen) {
    if (redwork_address_parse(p, n, out->host, sizeof out->host, &out->port, err, errlen) != 0)
        return -1;
    if (out->port == 0)
        out->port = SENTINEL_DEFAULT_PORT;
    return 0;
}

redwork_sentinel *redwork_sentinel_create(const char *list, const char *name,
                                          const char *username, const char *password,
                                          char *err, size_t errlen) {
    if (name == NULL || *name == '\0' || strlen(name) >= 128) {
        snprintf(err, errlen, "the master's name is empty or too long");
        return NULL;
    }
    redwork_sentinel *s = calloc(1, sizeof *s);
    if (s == NULL) {
        snprintf(err, errlen, "out of memory");
        return NULL;
    }
    for (const char *p = list; p != NULL && *p != '\0';) {
        p += strspn(p, " \t");
        size_t n = strcspn(p, ",");
        size_t item = n;
        while (item > 0 && (p[item - 1] == ' ' || p[item - 1] == '\t'))
            item--;
        if (item == 0) {
            snprintf(err, errlen, "an empty entry in the list");
            goto err;
        }
        if (s->count == SENTINEL_MAX) {
            snprintf(err, errlen, "more than %d sentinels", SENTINEL_MAX);
            goto err;
        }
        if (parse_address(p, item, &s->at[s->count], err, errlen) != 0)
            goto err;
        s->count++;
        p += n;
        if (*p == ',')
            p++;
    }
    if (s->count == 0) {
        snprintf(err, errlen, "no sentinel given");
        goto err;
    }
    if (strlen(list) >= sizeof s->list ||
        (username != NULL && strlen(username) >= sizeof s->username) ||
        (password != NULL && strlen(password) >= sizeof s->password)) {
        snprintf(err, errlen, "the list, the user name or the password is too long");
        goto err;
    }
    strcpy(s->list, list);
    strcpy(s->name, name);
    strcpy(s->username, username != NULL ? username : "");
    strcpy(s->password, password != NULL ? password : "");
    if (pthread_mutex_init(&s->lock, NULL) != 0) {
        snprintf(err, errlen, "cannot make a mutex");
        goto err;
    }
    return s;
err:
    free(s);
    return NULL;
}

void redwork_sentinel_free(redwork_sentinel *s) {
    if (s == NULL)
        return;
    pthread_mutex_destroy(&s->lock);
    free(s);
}

void redwork_sentinel_set_warn(redwork_sentinel *s, redwork_sentinel_warn_fn *fn, void *ctx) {
    pthread_mutex_lock(&s->lock);
    s->warn = fn;
    s->warn_ctx = ctx;
    pthread_mutex_unlock(&s->lock);
}

size_t redwork_sentinel_count(const redwork_sentinel *s) { return s->count; }

const char *redwork_sentinel_name(const redwork_sentinel *s) { return s->name; }

const char *redwork_sentinel_list(const redwork_sentinel *s) { return s->list; }

const char *redwork_sentinel_username(const redwork_sentinel *s) { return s->username; }

const char *redwork_sentinel_password(const redwork_sentinel *s) { return s->password; }

size_t redwork_sentinel_address(redwork_sentinel *s, size_t k, char *host, size_t hostlen,
                                int *port) {
    pthread_mutex_lock(&s->lock);
    /* The last to answer first; the others keep their order around it. */
    size_t index = k == 0 ? s->last : (k <= s->last ? k - 1 : k);
    snprintf(host, hostlen, "%s", s->at[index].host);
    *port = s->at[index].port;
    pthread_mutex_unlock(&s->lock);
    return index;
}

void redwork_sentinel_answered(redwork_sentinel *s, size_t index, const char *host, int port) {
    char message[512] = "";
    pthread_mutex_lock(&s->lock);
    s->last = index;
    snprintf(s->master.host, sizeof s->master.host, "%s", host);
    s->master.port = port;
    redwork_sentinel_warn_fn *warn = s->warn;
    void *ctx = s->warn_ctx;
    if (s->falling_back)
        snprintf(message, sizeof message, "sentinel %s:%d answers again: master '%s' is at %s:%d",
                 s->at[index].host, s->at[index].port, s->name, host, port);
    s->falling_back = 0;
    pthread_mutex_unlock(&s->lock);
    if (*message && warn != NULL)
        warn(ctx, message);
}

int redwork_sentinel_last_master(redwork_sentinel *s, char *host, size_t hostlen, int *port,
                                 const char *why) {
    char message[1536] = "";
    pthread_mutex_lock(&s->lock);
    int found = s->master.port != 0;
    if (found) {
        snprintf(host, hostlen, "%s", s->master.host);
        *port = s->master.port;
        if (!s->falling_back)
            snprintf(message, sizeof message, "no sentinel answers (%s); staying with the last "
                     "known master of '%s', %s:%d", why, s->name, s->master.host, s->master.port);
        s->falling_back = 1;
    }
    redwork_sentinel_warn_fn *warn = s->warn;
    void *ctx = s->warn_ctx;
    pthread_mutex_unlock(&s->lock);
    if (*message && warn != NULL)
        warn(ctx, message);
    return found;
}
