/* plugin.c -- the handler plugins: loading, checking, reloading, looking
 * up, calling, and the SDK's host functions (redwork_config_*, redwork_log).
 *
 * The loader trusts nothing in a file until it has checked it: the file's
 * permissions and those of every folder above it (strict_modes, as sshd's
 * StrictModes; the file is opened once, and the copy loaded is made from
 * that descriptor, so the file checked is the file loaded), that dlopen resolves
 * every symbol now (RTLD_NOW), the ABI version (same major, minor not newer
 * than ours) before reading any other field, the struct size, the name, the
 * handle callback and the name's uniqueness; only then is init() called.
 * Every refusal dlcloses the file and names it.
 *
 * DESIGN of reload. The current handlers are an array swapped under the
 * set's lock. Each plugin counts references: one for being current, one per
 * request routed to it. plugin_reload_dir() builds the next array (keeping
 * unchanged plugins, loading new and changed files from private copies) and
 * swaps it in; a plugin left out loses the set's reference, and whoever
 * drops the last reference puts it on the set's retired list, where the
 * main thread's plugin_collect() runs its fini() and dlcloses it -- so
 * fini() always runs on the main thread, after the last handle() returned. */
#include "plugin.h"

#include <dirent.h>
#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "log.h"

struct redwork_host {
    const plugin_set *set;
    config_section section; /* a copy of [handler.NAME] as loaded (empty: none) */
    const char *name;
};

struct plugin {
    plugin_set *set;
    void *dl;
    const redwork_handler *h;
    char *path;      /* the file in handlers_dir it was loaded from */
    struct stat src; /* that file when it was loaded, to see it change */
    void *state;
    redwork_host host;
    /* Per pool thread: what thread_init gave, and whether it ran. Each
     * entry is its thread's only, until the plugin is finalised. */
    void **thread_state;
    unsigned char *thread_ready;
    size_t threads;
    struct plugin *next_retired;
    /* Counted by the event loop's thread for every request routed here,
     * while pool threads read the fields above: on its own cache line. */
    _Alignas(64) atomic_long refs;
};

struct plugin_set {
    const config *cfg;
    char tmp[64];         /* where private folders for copies are made */
    unsigned long copies; /* names the copies apart */
    pthread_mutex_t lock; /* items, count, retired */
    plugin **items;
    size_t count;
    plugin *retired; /* no reference left: to finalise on the main thread */
    atomic_int draining; /* redwork_host_draining() */
};

plugin_set *plugin_set_create(const config *cfg, char *err, size_t errlen) {
    plugin_set *set = calloc(1, sizeof *set);
    if (set == NULL) {
        snprintf(err, errlen, "out of memory");
        return NULL;
    }
    set->cfg = cfg;
    const char *tmp = getenv("TMPDIR");
    snprintf(set->tmp, sizeof set->tmp, "%s",
             tmp != NULL && *tmp && strlen(tmp) < sizeof set->tmp - 20 ? tmp : "/tmp");
    if (pthread_mutex_init(&set->lock, NULL) != 0) {
        snprintf(err, errlen, "cannot make a mutex");
        free(set);
        return NULL;
    }
    atomic_init(&set->draining, 0);
    return set;
}

/* 1 if H's struct, SIZE bytes as built, has FIELD: fields added after 1.0
 * are read only then. */
#define HAS_FIELD(h, field) \
    ((h)->size >= offsetof(redwork_handler, field) + sizeof((h)->field) && (h)->field != NULL)

/* The size of the ABI 1.0 struct: the smallest a plugin may have. */
#define SIZE_1_0 (offsetof(redwork_handler, fini) + sizeof(void (*)(void *)))

static void free_plugin(plugin *p) {
    redwork_config_section_clear(&p->host.section);
    free(p->thread_state);
    free(p->thread_ready);
    free(p->path);
    free(p);
}

/* thread_fini for every thread state left (on the calling thread), fini(),
 * dlclose, free. */
static void finalise(plugin *p) {
    for (size_t i = 0; i < p->threads; i++)
        if (p->thread_ready[i] && HAS_FIELD(p->h, thread_fini))
            p->h->thread_fini(p->state, p->thread_state[i]);
    if (p->h->fini != NULL)
        p->h->fini(p->state);
    dlclose(p->dl);
    free_plugin(p);
}

void plugin_set_free(plugin_set *set) {
    if (set == NULL)
        return;
    plugin_collect(set);
    for (size_t i = set->count; i-- > 0;)
        finalise(set->items[i]);
    free(set->items);
    pthread_mutex_destroy(&set->lock);
    free(set);
}

/* strict_modes, for the file or folder PATH whose status is ST: owned by
 * us or root, and not writable by group or others -- unless SHARED_OK and
 * it is a folder with the sticky bit (like /tmp), where nobody but the
 * owner of the entry below (checked in turn) can rename or replace it. */
static int check_owner_mode(const char *path, const struct stat *st, int shared_ok, char *err,
                            size_t errlen) {
    if (st->st_uid != 0 && st->st_uid != geteuid()) {
        snprintf(err, errlen,
                 "%s: owned by uid %u, not by root or the daemon's uid %u "
                 "(strict_modes)", path, (unsigned)st->st_uid, (unsigned)geteuid());
        return -1;
    }
    int sticky_dir = S_ISDIR(st->st_mode) && (st->st_mode & S_ISVTX);
    if ((st->st_mode & (S_IWGRP | S_IWOTH)) && !(shared_ok && sticky_dir)) {
        snprintf(err, errlen,
                 "%s: writable by group or others (mode %03o; strict_modes)",
                 path, (unsigned)(st->st_mode & 0777));
        return -1;
    }
    return 0;
}

/* strict_modes, as sshd's StrictModes, for the folder DIR and every folder
 * above it up to /, symlinks resolved: DIR itself must pass
 * check_owner_mode() outright (nobody else may add a file to it); the
 * folders above may instead be sticky (see check_owner_mode). */
static int check_folders(const plugin_set *set, const char *dir, char *err, size_t errlen) {
    if (!set->cfg->strict_modes)
        return 0;
    char *real = realpath(dir, NULL);
    if (real == NULL) {
        snprintf(err, errlen, "%s: %s", dir, strerror(errno));
        return -1;
    }
    int rc = 0;
    for (int leaf = 1;; leaf = 0) { /* REAL is absolute: it ends at "/" */
        struct stat st;
        if (stat(real, &st) != 0) {
            snprintf(err, errlen, "%s: %s", real, strerror(errno));
            rc = -1;
        } else if (check_owner_mode(real, &st, !leaf, err, errlen) != 0) {
            size_t n = strlen(err);
            if (!leaf) /* say whose folder it is */
                snprintf(err + n, errlen - n, ", a folder above %s", dir);
            rc = -1;
        }
        if (rc != 0 || strcmp(real, "/") == 0)
            break;
        char *slash = strrchr(real, '/');
        slash[slash == real] = '\0'; /* up one: "/a" becomes "/" */
    }
    free(real);
    return rc;
}

static int valid_name(const char *s) {
    if (s == NULL)
        return 0;
    size_t n = strspn(s, "abcdefghijklmnopqrstuvwxyz0123456789_-");
    return n > 0 && n <= 64 && s[n] == '\0';
}

/* Checks the struct H found in PATH against the COUNT plugins of OTHERS
 * (for the name). Returns 0, or -1 with ERR. */
static int check_handler(const char *path, const redwork_handler *h,
                         plugin *const *others, size_t count, char *err,
                         size_t errlen) {
    unsigned major = h->abi >> 16, minor = h->abi & 0xffff;
    if (major != REDWORK_HANDLER_ABI_MAJOR || minor > REDWORK_HANDLER_ABI_MINOR) {
        snprintf(err, errlen,
                 "%s: handler ABI %u.%u, this daemon supports %d.0 to %d.%d "
                 "(rebuild it against this SDK)", path, major, minor,
                 REDWORK_HANDLER_ABI_MAJOR, REDWORK_HANDLER_ABI_MAJOR,
                 REDWORK_HANDLER_ABI_MINOR);
        return -1;
    }
    if (h->size < SIZE_1_0) {
        snprintf(err, errlen, "%s: handler struct is %u bytes, ABI %u.%u needs %zu at least",
                 path, h->size, major, minor, (size_t)SIZE_1_0);
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
    for (size_t i = 0; i < count; i++)
        if (strcmp(others[i]->h->name, h->name) == 0) {
            snprintf(err, errlen, "%s: duplicate handler name '%s' (already "
                     "loaded from %s)", path, h->name, others[i]->path);
            return -1;
        }
    return 0;
}

/* Removes a copy and its private folder (once dlopen has mapped it, the
 * mapping stays): nothing is left behind, even by a worker that crashes
 * later. Frees COPY. */
static void discard_copy(char *copy) {
    unlink(copy);
    char *slash = strrchr(copy, '/');
    *slash = '\0';
    rmdir(copy);
    free(copy);
}

/* Copies the file open at IN (SRC names it) into a new private folder.
 * Returns the copy's malloc'd path (give it to discard_copy), or NULL with
 * ERR. */
static char *private_copy(plugin_set *set, int in, const char *src, char *err,
                          size_t errlen) {
    const char *base = strrchr(src, '/');
    base = base != NULL ? base + 1 : src;
    size_t n = strlen(set->tmp) + strlen(base) + 48;
    char *dst = malloc(n);
    if (dst == NULL) {
        snprintf(err, errlen, "%s: out of memory", src);
        return NULL;
    }
    snprintf(dst, n, "%s/redworkd-XXXXXX", set->tmp);
    if (mkdtemp(dst) == NULL) {
        snprintf(err, errlen, "%s: cannot make a private folder in %s for its copy: %s",
                 src, set->tmp, strerror(errno));
        free(dst);
        return NULL;
    }
    size_t dirlen = strlen(dst);
    snprintf(dst + dirlen, n - dirlen, "/%lu-%s", ++set->copies, base);
    int out = open(dst, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0700);
    int ok = out >= 0 && lseek(in, 0, SEEK_SET) == 0;
    char buf[65536];
    ssize_t got;
    while (ok && (got = read(in, buf, sizeof buf)) != 0)
        ok = got > 0 && write(out, buf, (size_t)got) == got;
    if (!ok)
        snprintf(err, errlen, "%s: cannot copy to %s: %s", src, dst, strerror(errno));
    if (out >= 0 && close(out) != 0 && ok) {
        snprintf(err, errlen, "%s: cannot copy to %s: %s", src, dst, strerror(errno));
        ok = 0;
    }
    if (!ok) {
        discard_copy(dst);
        return NULL;
    }
    return dst;
}

/* Opens PATH once, for strict_modes to check and for the copy to be made
 * from, so the file checked is the file loaded; a symlink's target must
 * sit in folders that pass check_folders() too. Returns the descriptor
 * with its status in *ST, or -1 with ERR. */
static int open_checked(const plugin_set *set, const char *path, struct stat *st, char *err,
                        size_t errlen) {
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0 || fstat(fd, st) != 0) {
        snprintf(err, errlen, "%s: %s", path, strerror(errno));
        if (fd >= 0)
            close(fd);
        return -1;
    }
    struct stat link;
    int failed = !S_ISREG(st->st_mode);
    if (failed)
        snprintf(err, errlen, "%s: not a regular file", path);
    else if (set->cfg->strict_modes)
        failed = check_owner_mode(path, st, 0, err, errlen) != 0;
    if (!failed && set->cfg->strict_modes && lstat(path, &link) == 0 && S_ISLNK(link.st_mode)) {
        char *target = realpath(path, NULL), why[512] = "";
        if (target == NULL) {
            snprintf(why, sizeof why, "%s", strerror(errno));
        } else {
            char *slash = strrchr(target, '/');
            slash[slash == target] = '\0'; /* its folder */
            check_folders(set, target, why, sizeof why);
        }
        failed = *why != '\0';
        if (failed)
            snprintf(err, errlen, "%s (a symlink): %s", path, why);
        free(target);
    }
    if (failed) {
        close(fd);
        return -1;
    }
    return fd;
}

/* Loads PATH, checking its name against the COUNT plugins of OTHERS; its
 * init() gets its section in SECTIONS. Returns the initialised plugin
 * holding one reference, or NULL with ERR. */
static plugin *load(plugin_set *set, const char *path, plugin *const *others,
                    size_t count, const config *sections, char *err, size_t errlen) {
    plugin *p = aligned_alloc(_Alignof(plugin), sizeof *p); /* refs' cache line */
    char *copy = NULL;
    int fd = -1;
    if (p != NULL)
        memset(p, 0, sizeof *p);
    if (p == NULL || (p->path = strdup(path)) == NULL) {
        snprintf(err, errlen, "%s: out of memory", path);
        goto err;
    }
    if ((fd = open_checked(set, path, &p->src, err, errlen)) < 0)
        goto err;
    copy = private_copy(set, fd, path, err, errlen);
    close(fd);
    if (copy == NULL)
        goto err;
    dlerror();
    p->dl = dlopen(copy, RTLD_NOW | RTLD_LOCAL);
    discard_copy(copy);
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
    if (check_handler(path, p->h, others, count, err, errlen) != 0)
        goto err;
    p->set = set;
    p->host.set = set;
    p->host.name = p->h->name;
    p->threads = set->cfg->threads > 0 ? (size_t)set->cfg->threads : 1;
    p->thread_state = calloc(p->threads, sizeof *p->thread_state);
    p->thread_ready = calloc(p->threads, 1);
    if (p->thread_state == NULL || p->thread_ready == NULL ||
        redwork_config_section_copy(&p->host.section,
                                    redwork_config_section_for(sections, p->h->name)) != 0) {
        snprintf(err, errlen, "%s: out of memory", path);
        goto err;
    }
    if (p->h->init != NULL) {
        int rc = p->h->init(&p->host, &p->state);
        if (rc != 0) {
            snprintf(err, errlen, "%s: init of handler '%s' failed (returned %d)",
                     path, p->h->name, rc);
            goto err;
        }
    }
    atomic_init(&p->refs, 1);
    return p;
err:
    if (p != NULL && p->dl != NULL)
        dlclose(p->dl);
    if (p != NULL)
        free_plugin(p);
    return NULL;
}

/* Makes ITEMS (COUNT, malloc'd) the current handlers. Returns the old
 * array (the caller frees it); its plugins' fates are the caller's. */
static plugin **swap_in(plugin_set *set, plugin **items, size_t count) {
    pthread_mutex_lock(&set->lock);
    plugin **old = set->items;
    set->items = items;
    set->count = count;
    pthread_mutex_unlock(&set->lock);
    return old;
}

int plugin_load_file(plugin_set *set, const char *path, char *err,
                     size_t errlen) {
    plugin **items = malloc((set->count + 1) * sizeof *items);
    if (items == NULL) {
        snprintf(err, errlen, "%s: out of memory", path);
        return -1;
    }
    plugin *p = load(set, path, set->items, set->count, set->cfg, err, errlen);
    if (p == NULL) {
        free(items);
        return -1;
    }
    if (set->count > 0)
        memcpy(items, set->items, set->count * sizeof *items);
    items[set->count] = p;
    free(swap_in(set, items, set->count + 1));
    return 0;
}

static int compare_names(const void *a, const void *b) {
    return strcmp(*(char *const *)a, *(char *const *)b);
}

/* The paths of the *.so files in DIR, sorted, in *PATHS (caller frees each
 * and the array). Returns the count, or -1 with ERR. */
static int list_plugins(const plugin_set *set, const char *dir, char ***paths,
                        char *err, size_t errlen) {
    if (check_folders(set, dir, err, errlen) != 0)
        return -1;
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
        size_t len = strlen(dir) + n + 2;
        char *path = grown != NULL ? malloc(len) : NULL;
        if (path == NULL) {
            list = grown != NULL ? grown : list;
            snprintf(err, errlen, "%s: out of memory", dir);
            closedir(d);
            while (count-- > 0)
                free(list[count]);
            free(list);
            return -1;
        }
        snprintf(path, len, "%s/%s", dir, e->d_name);
        list = grown;
        list[count++] = path;
    }
    closedir(d);
    if (count > 0)
        qsort(list, (size_t)count, sizeof *list, compare_names);
    *paths = list;
    return count;
}

int plugin_load_dir(plugin_set *set, const char *dir, char *err,
                    size_t errlen) {
    char **paths = NULL;
    int count = list_plugins(set, dir, &paths, err, errlen);
    if (count < 0)
        return -1;
    int loaded = 0;
    for (int i = 0; i < count; i++) {
        char why[1024];
        if (plugin_load_file(set, paths[i], why, sizeof why) == 0) {
            loaded++;
            log_info("plugin", "loaded handler '%s' from %s",
                     set->items[set->count - 1]->h->name, paths[i]);
        } else {
            log_warn("plugin", "refused %s", why);
        }
        free(paths[i]);
    }
    free(paths);
    return loaded;
}

/* 1 if the file at P's path is still the one P was loaded from. */
static int unchanged(const plugin *p) {
    struct stat st;
    return stat(p->path, &st) == 0 && st.st_dev == p->src.st_dev &&
           st.st_ino == p->src.st_ino && st.st_size == p->src.st_size &&
           st.st_mtim.tv_sec == p->src.st_mtim.tv_sec &&
           st.st_mtim.tv_nsec == p->src.st_mtim.tv_nsec;
}

int plugin_reload_dir(plugin_set *set, const char *dir, const config *sections, char *err,
                      size_t errlen) {
    char **paths = NULL;
    int count = list_plugins(set, dir, &paths, err, errlen);
    if (count < 0)
        return -1;
    plugin **next = malloc(((size_t)count + 1) * sizeof *next);
    unsigned char *kept = calloc(set->count + 1, 1);
    if (next == NULL || kept == NULL) {
        snprintf(err, errlen, "%s: out of memory", dir);
        free(next);
        free(kept);
        for (int i = 0; i < count; i++)
            free(paths[i]);
        free(paths);
        return -1;
    }
    size_t n = 0;
    int changes = 0;
    /* Unchanged files first, so a changed file cannot take their names. */
    for (int i = 0; i < count; i++)
        for (size_t j = 0; j < set->count; j++)
            if (strcmp(set->items[j]->path, paths[i]) == 0 && unchanged(set->items[j])) {
                next[n++] = set->items[j];
                kept[j] = 1;
            }
    for (int i = 0; i < count; i++) {
        size_t old = set->count;
        for (size_t j = 0; j < set->count; j++)
            if (strcmp(set->items[j]->path, paths[i]) == 0)
                old = j;
        if (old < set->count && kept[old])
            continue;
        char why[1024];
        plugin *p = load(set, paths[i], next, n, sections, why, sizeof why);
        if (p != NULL) {
            next[n++] = p;
            changes++;
            log_info("plugin", "%s handler '%s' from %s",
                     old < set->count ? "replaced" : "loaded", p->h->name, paths[i]);
        } else if (old < set->count) {
            next[n++] = set->items[old];
            kept[old] = 1;
            log_warn("plugin", "kept handler '%s': the new file is refused: %s",
                     set->items[old]->h->name, why);
        } else {
            log_warn("plugin", "refused %s", why);
        }
    }
    size_t before_count = set->count;
    plugin **before = swap_in(set, next, n);
    for (size_t j = 0; j < before_count; j++) {
        if (kept[j])
            continue;
        if (access(before[j]->path, F_OK) != 0) { /* else it was replaced */
            log_info("plugin", "unloaded handler '%s' (%s is gone)",
                     before[j]->h->name, before[j]->path);
            changes++;
        }
        plugin_release(before[j]); /* the set's reference */
    }
    free(before);
    free(kept);
    for (int i = 0; i < count; i++)
        free(paths[i]);
    free(paths);
    return changes;
}

void plugin_collect(plugin_set *set) {
    pthread_mutex_lock(&set->lock);
    plugin *p = set->retired;
    set->retired = NULL;
    pthread_mutex_unlock(&set->lock);
    while (p != NULL) {
        plugin *next = p->next_retired;
        log_debug("plugin", "finalised the old handler '%s' from %s", p->h->name,
                  p->path);
        finalise(p);
        p = next;
    }
}

size_t plugin_count(plugin_set *set) {
    pthread_mutex_lock(&set->lock);
    size_t n = set->count;
    pthread_mutex_unlock(&set->lock);
    return n;
}

const plugin *plugin_acquire(plugin_set *set, const char *name) {
    plugin *found = NULL;
    pthread_mutex_lock(&set->lock);
    for (size_t i = 0; i < set->count && found == NULL; i++)
        if (strcmp(set->items[i]->h->name, name) == 0)
            found = set->items[i];
    if (found != NULL)
        atomic_fetch_add_explicit(&found->refs, 1, memory_order_relaxed);
    pthread_mutex_unlock(&set->lock);
    return found;
}

void plugin_release(const plugin *cp) {
    plugin *p = (plugin *)cp; /* the count is the one mutable part */
    if (p == NULL || atomic_fetch_sub_explicit(&p->refs, 1, memory_order_acq_rel) != 1)
        return;
    plugin_set *set = p->set;
    pthread_mutex_lock(&set->lock);
    p->next_retired = set->retired;
    set->retired = p;
    pthread_mutex_unlock(&set->lock);
}

int plugin_exists(plugin_set *set, const char *name) {
    const plugin *p = plugin_acquire(set, name);
    plugin_release(p);
    return p != NULL;
}

const char *plugin_name(const plugin *p) { return p->h->name; }

char *plugin_names(plugin_set *set) {
    pthread_mutex_lock(&set->lock);
    size_t len = 1;
    for (size_t i = 0; i < set->count; i++)
        len += strlen(set->items[i]->h->name) + 1;
    char *out = malloc(len);
    if (out != NULL) {
        out[0] = '\0';
        for (size_t i = 0; i < set->count; i++) {
            if (i > 0)
                strcat(out, ",");
            strcat(out, set->items[i]->h->name);
        }
    }
    pthread_mutex_unlock(&set->lock);
    return out;
}

int plugin_handle(const plugin *p, const redwork_request *req,
                  redwork_reply *rep) {
    return p->h->handle(p->state, req, rep);
}

void plugin_hold(const plugin *cp) {
    plugin *p = (plugin *)cp; /* the count is the one mutable part */
    atomic_fetch_add_explicit(&p->refs, 1, memory_order_relaxed);
}

int plugin_thread_state(const plugin *cp, int thread, void **out) {
    plugin *p = (plugin *)cp; /* thread THREAD's entry is that thread's */
    *out = NULL;
    if (thread < 0 || (size_t)thread >= p->threads || !HAS_FIELD(p->h, thread_init))
        return 0;
    if (!p->thread_ready[thread]) {
        void *state = NULL;
        int rc = p->h->thread_init(p->state, &state);
        if (rc != 0)
            return rc;
        p->thread_state[thread] = state;
        p->thread_ready[thread] = 1;
    }
    *out = p->thread_state[thread];
    return 0;
}

void plugin_thread_exit(plugin_set *set, int thread) {
    pthread_mutex_lock(&set->lock);
    size_t n = set->count;
    plugin **held = malloc((n > 0 ? n : 1) * sizeof *held);
    for (size_t i = 0; held != NULL && i < n; i++) {
        held[i] = set->items[i];
        plugin_hold(held[i]);
    }
    pthread_mutex_unlock(&set->lock);
    if (held == NULL)
        return; /* out of memory: finalise() runs the thread_fini left, later */
    for (size_t i = 0; i < n; i++) {
        plugin *p = held[i];
        if (thread >= 0 && (size_t)thread < p->threads && p->thread_ready[thread]) {
            if (HAS_FIELD(p->h, thread_fini))
                p->h->thread_fini(p->state, p->thread_state[thread]);
            p->thread_ready[thread] = 0;
        }
        plugin_release(p);
    }
    free(held);
}

void plugin_set_draining(plugin_set *set) { atomic_store(&set->draining, 1); }

/* ---- the SDK's host functions ------------------------------------------ */

const char *redwork_host_name(const redwork_host *host) { return host->name; }

const char *redwork_host_worker_id(const redwork_host *host) { return host->set->cfg->id; }

int redwork_host_draining(const redwork_host *host) {
    return atomic_load_explicit(&((plugin_set *)host->set)->draining, memory_order_relaxed);
}

const char *redwork_config_string(const redwork_host *host, const char *key,
                                  const char *def) {
    const config_entry *e = redwork_config_section_get(&host->section, key);
    return e != NULL ? e->value : def;
}

/* Logs a malformed [handler.NAME] value the way config errors read. */
static int bad_value(const redwork_host *host, const config_entry *e,
                     const char *what) {
    log_error(host->name, "%s:%d: [handler.%s] %s: '%s' is not %s",
              host->set->cfg->path, e->line, host->name, e->key, e->value, what);
    return -1;
}

int redwork_config_int(const redwork_host *host, const char *key,
                       long long def, long long *out) {
    const config_entry *e = redwork_config_section_get(&host->section, key);
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
    const config_entry *e = redwork_config_section_get(&host->section, key);
    if (e == NULL) {
        *out = def;
        return 0;
    }
    if (redwork_config_parse_bool(e->value, out) == 0)
        return 0;
    return bad_value(host, e, "a boolean (on/off, yes/no, true/false, 1/0)");
}

void redwork_log(const redwork_host *host, int level, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    redwork_log_vwrite(level, host->name, fmt, ap);
    va_end(ap);
}
