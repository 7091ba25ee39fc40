/* top.h -- `redwork top`: every live worker, refreshed each second.
 *
 * On a terminal: a full-screen table (80 columns) of the workers from
 * their heartbeats -- id, host, pid, uptime, requests/s, errors/s, queue
 * depth, busy threads -- redrawn every second; `s` changes the sort, `q`
 * (or SIGINT) quits, and the terminal is left as it was. Not on a
 * terminal: one snapshot, the rates measured over one second. */
#ifndef REDWORK_TOP_H
#define REDWORK_TOP_H

#include "redwork/client.h"

/* Runs top against the Redis OPT names. Returns 0, or 2 (with the reason
 * on stderr) when the workers cannot be read. */
int top_run(const redwork_client_options *opt);

#endif
