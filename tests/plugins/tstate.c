/* tstate.c -- a fixture for the SDK 1.1 calls: per-thread state
 * (thread_init/thread_fini, redwork_request_thread_state,
 * redwork_thread_index), raw replies, the host's worker id and drain flag.
 *
 * By the request's "mode": "raw" replies {"raw":[1,2,3]} as raw JSON;
 * "badraw" tries a raw reply that is not JSON; "drain" polls
 * redwork_host_draining() for up to 5 s and replies what it saw; anything
 * else counts the request in the thread's state and replies the thread
 * index, that count, the index the state was made on and the worker id.
 * thread_init, thread_fini and fini each append a line to the file named
 * by REDWORK_TEST_FINI_FILE, if set. */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "redwork/handler.h"

typedef struct thread_counter {
    long long requests;
    int made_on;
} thread_counter;

static void note(const char *fmt, ...) {
    const char *path = getenv("REDWORK_TEST_FINI_FILE");
    FILE *f = path != NULL ? fopen(path, "a") : NULL;
    if (f == NULL)
        return;
    va_list ap;
    va_start(ap, fmt);
    vfprintf(f, fmt, ap);
    va_end(ap);
    fputc('\n', f);
    fclose(f);
}

static int ts_init(const redwork_host *host, void **state) {
    *state = (void *)host;
    return 0;
}

static int ts_thread_init(void *state, void **thread_state) {
    (void)state;
    thread_counter *c = calloc(1, sizeof *c);
    if (c == NULL)
        return -1;
    c->made_on = redwork_thread_index();
    *thread_state = c;
    note("thread_init %d", c->made_on);
    return 0;
}

static void ts_thread_fini(void *state, void *thread_state) {
    (void)state;
    thread_counter *c = thread_state;
    note("thread_fini %d", c->made_on);
    free(c);
}

static int ts_handle(void *state, const redwork_request *req, redwork_reply *rep) {
    const redwork_host *host = state;
    const char *mode = redwork_request_string(req, "mode");
    if (mode != NULL && strcmp(mode, "raw") == 0) {
        static const char raw[] = " {\"raw\":[1,2,3]} ";
        return redwork_reply_raw(rep, raw, sizeof raw - 1);
    }
    if (mode != NULL && strcmp(mode, "badraw") == 0) {
        redwork_reply_raw(rep, "{\"raw\":", 7);
        return 0; /* the error it set is the reply */
    }
    cJSON *out = cJSON_CreateObject();
    if (mode != NULL && strcmp(mode, "drain") == 0) {
        int seen = 0;
        for (int i = 0; i < 500 && !(seen = redwork_host_draining(host)); i++)
            nanosleep(&(struct timespec){0, 10 * 1000000L}, NULL);
        cJSON_AddBoolToObject(out, "draining", seen);
        return redwork_reply_json(rep, out);
    }
    thread_counter *c = redwork_request_thread_state(req);
    if (c == NULL)
        return redwork_reply_error(rep, "internal", "no thread state");
    c->requests++;
    cJSON_AddNumberToObject(out, "thread", redwork_thread_index());
    cJSON_AddNumberToObject(out, "requests", (double)c->requests);
    cJSON_AddNumberToObject(out, "made_on", c->made_on);
    cJSON_AddStringToObject(out, "worker", redwork_host_worker_id(host));
    return redwork_reply_json(rep, out);
}

static void ts_fini(void *state) {
    (void)state;
    note("fini tstate");
}

REDWORK_HANDLER(.name = "tstate", .description = "SDK 1.1 fixture", .init = ts_init,
                .handle = ts_handle, .fini = ts_fini, .thread_init = ts_thread_init,
                .thread_fini = ts_thread_fini);
