/* plugin.h -- the handler plugins: loading, checking, looking up, calling.
 *
 * A plugin_set holds the handlers loaded from *.so files. Each file is
 * dlopen'ed, its redwork_handler_v1 checked (ABI major equal, minor not
 * newer, size, name, handle, no duplicate name) and its init() called with
 * its [handler.NAME] section; a refused file is dlclose'd and its reason
 * names the file. Loading and freeing happen on one thread before and after
 * the pool runs; plugin_find() and plugin_handle() are then thread-safe. */
#ifndef REDWORK_PLUGIN_H
#define REDWORK_PLUGIN_H

#include <stddef.h>

#include "config.h"
#include "redwork/handler.h"

typedef struct plugin plugin;
typedef struct plugin_set plugin_set;

/* An empty set whose handlers will read their sections from CFG (borrowed,
 * must outlive the set). NULL when out of memory. */
plugin_set *plugin_set_create(const config *cfg);

/* Calls every handler's fini(), dlcloses them, frees the set. Accepts NULL. */
void plugin_set_free(plugin_set *set);

/* Loads one file. Returns 0 if the handler joined the set, or -1 with ERR
 * saying which file was refused and why. */
int plugin_load_file(plugin_set *set, const char *path, char *err,
                     size_t errlen);

/* Loads every *.so in DIR, in name order, logging one line per refused
 * file. Returns how many loaded, or -1 with ERR if DIR cannot be read. */
int plugin_load_dir(plugin_set *set, const char *dir, char *err,
                    size_t errlen);

size_t plugin_count(const plugin_set *set);

/* The handler named NAME, or NULL. */
const plugin *plugin_find(const plugin_set *set, const char *name);

const char *plugin_name(const plugin *p);

/* The names of all handlers, comma-separated, malloc'd (caller frees);
 * NULL when out of memory. */
char *plugin_names(const plugin_set *set);

/* Runs P's handle() on REQ, filling REP. Returns what handle() returned. */
int plugin_handle(const plugin *p, const redwork_request *req,
                  redwork_reply *rep);

#endif
