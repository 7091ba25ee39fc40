/* plugin.h -- the handler plugins: loading, checking, reloading, looking
 * up, calling.
 *
 * A plugin_set holds the handlers loaded from *.so files. Each file is
 * copied to a private folder and dlopen'ed from there (so a changed file is
 * a new object, never dlopen's cached handle), its redwork_handler_v1
 * checked (ABI major equal, minor not newer, size, name, handle, no
 * duplicate name) and its init() called with its [handler.NAME] section; a
 * refused file is dlclose'd and its reason names the file.
 *
 * Reference counting makes reload safe: the set holds one reference to each
 * current handler and every request holds one to the handler it was routed
 * to, so a handler replaced or removed by plugin_reload_dir() keeps running
 * the requests it has and is finalised (fini, dlclose) by plugin_collect()
 * once the last is done. Loading, reloading, collecting and freeing happen
 * on the main thread; plugin_acquire(), plugin_hold(), plugin_release(),
 * plugin_name(), plugin_handle() and plugin_set_draining() are
 * thread-safe; plugin_thread_state() and plugin_thread_exit() run on the
 * pool thread they are for.
 *
 * A 1.0 plugin's struct is smaller than ours: a field added after 1.0 is
 * read only when the plugin's size covers it. */
#ifndef REDWORK_PLUGIN_H
#define REDWORK_PLUGIN_H

#include <stddef.h>

#include "config.h"
#include "redwork/handler.h"

typedef struct plugin plugin;
typedef struct plugin_set plugin_set;

/* An empty set whose handlers will read their sections from CFG (borrowed,
 * must outlive the set). NULL with ERR if its private folder cannot be
 * made or memory ran out. */
plugin_set *plugin_set_create(const config *cfg, char *err, size_t errlen);

/* Calls every handler's fini(), dlcloses them, removes the private folder,
 * frees the set. No request may still hold a handler. Accepts NULL. */
void plugin_set_free(plugin_set *set);

/* Loads one file into the set. Returns 0 if the handler joined the set, or
 * -1 with ERR saying which file was refused and why. */
int plugin_load_file(plugin_set *set, const char *path, char *err,
                     size_t errlen);

/* Loads every *.so in DIR, in name order, logging one line per refused
 * file. Returns how many loaded, or -1 with ERR if DIR cannot be read (or
 * fails strict_modes). */
int plugin_load_dir(plugin_set *set, const char *dir, char *err,
                    size_t errlen);

/* Rescans DIR: loads new files, replaces handlers whose file changed
 * (device, inode, size or time), unloads those whose file is gone, and
 * keeps a handler whose new file is refused. A handler loaded now gets
 * its [handler.NAME] section from SECTIONS (the config file as re-read;
 * borrowed: each handler keeps a copy of its own section). One log line
 * per change. Requests in flight finish on the version they started with.
 * Returns the number of changes, or -1 with ERR if DIR cannot be read
 * (nothing changes then). */
int plugin_reload_dir(plugin_set *set, const char *dir, const config *sections, char *err,
                      size_t errlen);

/* Finalises (fini, dlclose) the replaced or removed handlers that no
 * request holds any more. Call it regularly from the main thread. */
void plugin_collect(plugin_set *set);

size_t plugin_count(plugin_set *set);

/* The current handler named NAME, with a reference the caller must give
 * back with plugin_release(); NULL if there is none. Thread-safe. */
const plugin *plugin_acquire(plugin_set *set, const char *name);

/* Gives back a reference from plugin_acquire(). Accepts NULL. Thread-safe. */
void plugin_release(const plugin *p);

/* 1 if a current handler is named NAME. */
int plugin_exists(plugin_set *set, const char *name);

const char *plugin_name(const plugin *p);

/* The names of the current handlers, comma-separated, malloc'd (caller
 * frees); NULL when out of memory. */
char *plugin_names(plugin_set *set);

/* Runs P's handle() on REQ, filling REP. Returns what handle() returned. */
int plugin_handle(const plugin *p, const redwork_request *req,
                  redwork_reply *rep);

/* Takes one more reference to P, which the caller holds one of already
 * (a deferred reply keeps its handler's version loaded). Give it back
 * with plugin_release(). Thread-safe. */
void plugin_hold(const plugin *p);

/* P's thread state for pool thread THREAD (0 .. threads - 1), in *OUT:
 * P's thread_init() runs on the calling thread, which must be THREAD, the
 * first time. Returns 0 (*OUT NULL when P has no thread_init or THREAD is
 * out of range), or what a failing thread_init() returned. */
int plugin_thread_state(const plugin *p, int thread, void **out);

/* On pool thread THREAD as it ends: runs thread_fini() there for every
 * current handler with a state for THREAD. (A handler version already
 * replaced gets its thread_fini() calls when it is finalised.) */
void plugin_thread_exit(plugin_set *set, int thread);

/* A drain has begun: redwork_host_draining() says 1 from now on. Any
 * thread. */
void plugin_set_draining(plugin_set *set);

#endif
