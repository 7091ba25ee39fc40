/* sentinel.h -- where the master is, when Redis Sentinel says so.
 *
 * A redwork_sentinel holds what [redis] sentinels, master_name,
 * sentinel_username and sentinel_password_env say, and what the sentinels
 * last answered. conn.c does the asking: before each connection it asks
 * the sentinels in turn -- the one that answered last first -- with
 * SENTINEL get-master-addr-by-name, connects to the address it gets and
 * checks with ROLE that it is the master. When no sentinel answers, the
 * master found last is used (the caller is told once, through the warn
 * function), so a daemon whose sentinels are down keeps to the master that
 * was serving.
 *
 * One redwork_sentinel is shared by every connection of a process (the
 * daemon's wires reconnect on their own threads): it is thread-safe. */
#ifndef REDWORK_SENTINEL_H
#define REDWORK_SENTINEL_H

#include <stddef.h>

#define SENTINEL_DEFAULT_PORT 26379
#define SENTINEL_MAX 16

typedef struct redwork_sentinel redwork_sentinel;

/* Told once when no sentinel answers and the last master is used, and
 * once when a sentinel answers again. MESSAGE names the sentinels and the
 * master. */
typedef void redwork_sentinel_warn_fn(void *ctx, const char *message);

/* Parses LIST ("host:port, host:port, ..."; [v6-address]:port; port
 * 26379 when left out; at most SENTINEL_MAX) for the master named NAME;
 * USERNAME and PASSWORD (copied; NULL or "" for none) authenticate to the
 * sentinels. Returns NULL with ERR saying what is wrong with LIST or NAME
 * (or out of memory). */
redwork_sentinel *redwork_sentinel_create(const char *list, const char *name,
                                          const char *username, const char *password,
                                          char *err, size_t errlen);

/* Frees S. Accepts NULL. */
void redwork_sentinel_free(redwork_sentinel *s);

/* Sets the function told about fallbacks (see above); NULL: none. */
void redwork_sentinel_set_warn(redwork_sentinel *s, redwork_sentinel_warn_fn *fn, void *ctx);

/* How many sentinels there are. */
size_t redwork_sentinel_count(const redwork_sentinel *s);

/* The master's name, and the sentinels as configured (for messages). */
const char *redwork_sentinel_name(const redwork_sentinel *s);
const char *redwork_sentinel_list(const redwork_sentinel *s);

/* The user name and password for the sentinels ("" for none). */
const char *redwork_sentinel_username(const redwork_sentinel *s);
const char *redwork_sentinel_password(const redwork_sentinel *s);

/* The sentinel to ask K-th (0 <= K < count): the one that answered last,
 * then the others in the order given. Copies its host into HOST (HOSTLEN
 * bytes, 256 is always enough) and its port into *PORT. Returns the
 * sentinel's index, for redwork_sentinel_answered(). */
size_t redwork_sentinel_address(redwork_sentinel *s, size_t k, char *host, size_t hostlen,
                                int *port);

/* Sentinel INDEX said the master is at HOST:PORT. */
void redwork_sentinel_answered(redwork_sentinel *s, size_t index, const char *host, int port);

/* No sentinel answered: copies the master found last into HOST and
 * *PORT and returns 1 (warning once, with WHY, the reasons the sentinels
 * gave), or returns 0 if none was ever found. */
int redwork_sentinel_last_master(redwork_sentinel *s, char *host, size_t hostlen, int *port,
                                 const char *why);

#endif
