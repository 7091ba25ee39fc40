/* plugin.c -- the handler plugins: loading, checking, looking up, calling,
 * and the SDK's host functions (redwork_config_*, redwork_log).
 *
 * The loader trusts nothing in a file until it has checked it: the file's
 * permissions (strict_modes, as sshd's StrictModes), that dlopen resolves
 * every symbol now (RTLD_NOW), the ABI version (same major, minor not newer
 * than ours) before reading any other field, the struct size, the name, the
 * handle callback and the name's uniqueness; only then is init() called.
 * Every refusal dlcloses the file and names it. */
#include "plugin.h"

#include <dirent.h>
#include <dlfcn.h>
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "log.h"

struct redwork_host {
    const config *cfg;
    const config_section *section; /* [handler.NAME], or NULL */
    const char *name;
};

struct plugin {
    void *dl;
    const redwork_handler *h;
    char *path;
    void *state;
    redwork_host host;
};

struct plugin_set {
    const config *cfg;
    plugin **items;
    size_t count;
};

plugin_set *plugin_set_create(const config *cfg) {
    plugin_set *set = calloc(1, sizeof *set);
    if (set != NULL)
        set->cfg = cfg;
    return set;
}

void plugin_set_free(plugin_set *set) {
    if (set == NULL)
        return;
    for (size_t i = set->count; i-- > 0;) {
        plugin *p = set->items[i];
        if (p->h->fini != NULL)
            p->h->fini(p->state);
        dlclose(p->dl);
        free(p->path);
        free(p);
    }
    free(set->items);
    free(set);
}

/* With strict_modes: PATH must be owned by us or root and not writable by
 * group or others, so nobody else can put code into the daemon. */
static int check_modes(const plugin_set *set, const char *path, char *err,
                       size_t errlen) {
    if (!set->cfg->strict_modes)
        return 0;
    struct stat st;
    if (stat(path, &st) != 0) {
        snprintf(err, errlen, "%s: %s", path, strerror(errno));
        return -1;
    }
    if (st.st_uid != 0 && st.st_uid != geteuid()) {
        snprintf(err, errlen,
                 "%s: owned by uid %u, not by root or the daemon's uid %u "
                 "(strict_modes)", path, (unsigned)st.st_uid, (unsigned)geteuid());
        return -1;
    }
    if (st.st_mode & (S_IWGRP | S_IWOTH)) {
        snprintf(err, errlen,
                 "%s: writable by group or others (mode %03o; strict_modes)",
                 path, (unsigned)(st.st_mode & 0777));
        return -1;
    }
    return 0;
}

static int valid_name(const char *s) {
    if (s == NULL)
        return 0;
    size_t n = strspn(s, "abcdefghijklmnopqrstuvwxyz0123456789_-");
    return n > 0 && n <= 64 && s[n] == '\0';
}

/* Checks the struct H found in PATH. Returns 0, or -1 with ERR. */
static int check_handler(const plugin_set *set, const char *path,
                         const redwork_handler *h, char *err, size_t errlen) {
    unsigned major = h->abi >> 16, minor = h->abi & 0xffff;
    if (major != REDWORK_HANDLER_ABI_MAJOR || minor > REDWORK_HANDLER_ABI_MINOR) {
        snprintf(err, errlen,
                 "%s: handler ABI %u.%u, this daemon supports %d.0 to %d.%d "
                 "(rebuild it against this SDK)", path, major, minor,
                 REDWORK_HANDLER_ABI_MAJOR, REDWORK_HANDLER_ABI_MAJOR,
                 REDWORK_HANDLER_ABI_MINOR);
        return -1;
    }
    if (h->size < sizeof(redwork_handler)) {
        snprintf(err, errlen, "%s: handler struct is %u bytes, ABI %u.%u needs %zu",
                 path, h->size, major, minor, sizeof(redwork_handler));
        return -1;
    }
    if (!valid_name(h->name)) {
        snprintf(err, errlen, "%s: missing or invalid handler name "
                 "(must be [a-z0-9_-]{1,64})", path);
        return -1;
    }
    if (h->handle == NULL) {
        snprintf(err, errlen, "%s: handler '%s' has no handle callback", path,
                 h->name);
        return -1;
    }
    for (size_t i = 0; i < set->count; i++)
        if (strcmp(set->items[i]->h->name, h->name) == 0) {
            snprintf(err, errlen, "%s: duplicate handler name '%s' (already "
                     "loaded from %s)", path, h->name, set->items[i]->path);
            return -1;
        }
    return 0;
}

int plugin_load_file(plugin_set *set, const char *path, char *err,
                     size_t errlen) {
    if (check_modes(set, path, err, errlen) != 0)
        return -1;
    plugin *p = calloc(1, sizeof *p);
    plugin **items = realloc(set->items, (set->count + 1) * sizeof *items);
    if (items != NULL)
        set->items = items;
    if (p == NULL || items == NULL || (p->path = strdup(path)) == NULL) {
        snprintf(err, errlen, "%s: out of memory", path);
        goto err;
    }

    dlerror();
    p->dl = dlopen(path, RTLD_NOW | RTLD_LOCAL);
    if (p->dl == NULL) {
        snprintf(err, errlen, "%s: cannot load: %s", path, dlerror());
        goto err;
    }
    p->h = dlsym(p->dl, REDWORK_HANDLER_SYMBOL);
    if (p->h == NULL) {
        const char *why = dlerror();
        snprintf(err, errlen, "%s: no symbol %s (write it with REDWORK_HANDLER()): %s",
                 path, REDWORK_HANDLER_SYMBOL, why != NULL ? why : "NULL");
        goto err;
    }
    if (check_handler(set, path, p->h, err, errlen) != 0)
        goto err;

    p->host.cfg = set->cfg;
    p->host.name = p->h->name;
    p->host.section = config_section_for(set->cfg, p->h->name);
    if (p->h->init != NULL) {
        int rc = p->h->init(&p->host, &p->state);
        if (rc != 0) {
            snprintf(err, errlen, "%s: init of handler '%s' failed (returned %d)",
                     path, p->h->name, rc);
            goto err;
        }
    }
    set->items[set->count++] = p;
    return 0;
err:
    if (p != NULL && p->dl != NULL)
        dlclose(p->dl);
    if (p != NULL)
        free(p->path);
    free(p);
    return -1;
}

static int compare_names(const void *a, const void *b) {
    return strcmp(*(char *const *)a, *(char *const *)b);
}

/* The *.so names in DIR, sorted, in *NAMES (caller frees each and the
 * array). Returns the count, or -1 with ERR. */
static int list_plugins(const char *dir, char ***names, char *err,
                        size_t errlen) {
    DIR *d = opendir(dir);
    if (d == NULL) {
        snprintf(err, errlen, "%s: cannot read handlers_dir: %s", dir, strerror(errno));
        return -1;
    }
    char **list = NULL;
    int count = 0;
    struct dirent *e;
    while ((e = readdir(d)) != NULL) {
        size_t n = strlen(e->d_name);
        if (n <= 3 || strcmp(e->d_name + n - 3, ".so") != 0)
            continue;
        char **grown = realloc(list, ((size_t)count + 1) * sizeof *list);
        if (grown == NULL || (grown[count] = strdup(e->d_name)) == NULL) {
            list = grown != NULL ? grown : list;
            snprintf(err, errlen, "%s: out of memory", dir);
            closedir(d);
            while (count-- > 0)
                free(list[count]);
            free(list);
            return -1;
        }
        list = grown;
        count++;
    }
    closedir(d);
    if (count > 0)
        qsort(list, (size_t)count, sizeof *list, compare_names);
    *names = list;
    return count;
}

int plugin_load_dir(plugin_set *set, const char *dir, char *err,
                    size_t errlen) {
    if (check_modes(set, dir, err, errlen) != 0)
        return -1;
    char **names = NULL;
    int count = list_plugins(dir, &names, err, errlen);
    if (count < 0)
        return -1;
    int loaded = 0;
    for (int i = 0; i < count; i++) {
        char path[4096], why[1024];
        snprintf(path, sizeof path, "%s/%s", dir, names[i]);
        if (plugin_load_file(set, path, why, sizeof why) == 0) {
            loaded++;
            log_info("plugin", "loaded handler '%s' from %s",
                     set->items[set->count - 1]->h->name, path);
        } else {
            log_warn("plugin", "refused %s", why);
        }
        free(names[i]);
    }
    free(names);
    return loaded;
}

size_t plugin_count(const plugin_set *set) { return set->count; }

const plugin *plugin_find(const plugin_set *set, const char *name) {
    for (size_t i = 0; i < set->count; i++)
        if (strcmp(set->items[i]->h->name, name) == 0)
            return set->items[i];
    return NULL;
}

const char *plugin_name(const plugin *p) { return p->h->name; }

char *plugin_names(const plugin_set *set) {
    size_t len = 1;
    for (size_t i = 0; i < set->count; i++)
        len += strlen(set->items[i]->h->name) + 1;
    char *out = malloc(len);
    if (out == NULL)
        return NULL;
    out[0] = '\0';
    for (size_t i = 0; i < set->count; i++) {
        if (i > 0)
            strcat(out, ",");
        strcat(out, set->items[i]->h->name);
    }
    return out;
}

int plugin_handle(const plugin *p, const redwork_request *req,
                  redwork_reply *rep) {
    return p->h->handle(p->state, req, rep);
}

/* ---- the SDK's host functions ------------------------------------------ */

const char *redwork_host_name(const redwork_host *host) { return host->name; }

const char *redwork_config_string(const redwork_host *host, const char *key,
                                  const char *def) {
    const config_entry *e = config_section_get(host->section, key);
    return e != NULL ? e->value : def;
}

/* Logs a malformed [handler.NAME] value the way config errors read. */
static int bad_value(const redwork_host *host, const config_entry *e,
                     const char *what) {
    log_error(host->name, "%s:%d: [handler.%s] %s: '%s' is not %s",
              host->cfg->path, e->line, host->name, e->key, e->value, what);
    return -1;
}

int redwork_config_int(const redwork_host *host, const char *key,
                       long long def, long long *out) {
    const config_entry *e = config_section_get(host->section, key);
    if (e == NULL) {
        *out = def;
        return 0;
    }
    char *end;
    errno = 0;
    long long n = strtoll(e->value, &end, 10);
    if (*e->value == '\0' || *end != '\0' || errno == ERANGE)
        return bad_value(host, e, "an integer");
    *out = n;
    return 0;
}

int redwork_config_bool(const redwork_host *host, const char *key, int def,
                        int *out) {
    const config_entry *e = config_section_get(host->section, key);
    if (e == NULL) {
        *out = def;
        return 0;
    }
    if (config_parse_bool(e->value, out) == 0)
        return 0;
    return bad_value(host, e, "a boolean (on/off, yes/no, true/false, 1/0)");
}

void redwork_log(const redwork_host *host, int level, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    log_vwrite(level, host->name, fmt, ap);
    va_end(ap);
}
