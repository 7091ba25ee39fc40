/* call.h -- `redworkd -c FILE --call HANDLER [JSON|-]`: one request run
 * through one handler in-process, with no Redis, for handler authors'
 * tests and CI. */
#ifndef REDWORK_CALL_H
#define REDWORK_CALL_H

#include <stddef.h>

#include "config.h"

/* Loads the handlers as the daemon does (CFG's handlers_dir, strict
 * modes, init() with its section), runs the request JSON (LEN bytes: an
 * object; a missing req_id becomes "call", its handler field is HANDLER)
 * through HANDLER exactly as a worker would -- on a pool thread, deferred
 * replies, thread_init and timeout_ms included -- and prints the reply
 * envelope on stdout, one line. CFG is changed (one thread, no stored
 * replies). Returns the exit status: 0 for an ok reply, 1 for an error
 * reply (bad JSON and an unknown handler included), 78 (EX_CONFIG) when
 * no handler loads, with the reason on stderr. */
int call_run(config *cfg, const char *handler, const char *json, size_t len);

#endif
