/* good.c -- a well-formed fixture handler for test_plugin.
 *
 * init() reads [handler.good] word (string), times (int) and loud (bool)
 * through the host getters and refuses to start if one is malformed;
 * handle() replies them with its name and the request's channel; fini()
 * appends "fini good" to the file named by REDWORK_TEST_FINI_FILE, if set,
 * so the test can see it ran exactly once. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "redwork/handler.h"

typedef struct good_state {
    char *word;
    long long times;
    int loud;
    const redwork_host *host;
} good_state;

static int good_init(const redwork_host *host, void **state) {
    good_state *st = calloc(1, sizeof *st);
    if (st == NULL)
        return -1;
    st->host = host;
    st->word = strdup(redwork_config_string(host, "word", "Hello"));
    if (st->word == NULL || redwork_config_int(host, "times", 1, &st->times) != 0 ||
        redwork_config_bool(host, "loud", 0, &st->loud) != 0) {
        free(st->word);
        free(st);
        return -1;
    }
    *state = st;
    return 0;
}

static int good_handle(void *state, const redwork_request *req,
                       redwork_reply *rep) {
    const good_state *st = state;
    const char *mode = redwork_request_string(req, "mode");
    if (mode != NULL && strcmp(mode, "fail") == 0)
        return 1; /* non-zero with nothing set */
    cJSON *out = cJSON_CreateObject();
    cJSON_AddStringToObject(out, "word", st->word);
    cJSON_AddNumberToObject(out, "times", (double)st->times);
    cJSON_AddBoolToObject(out, "loud", st->loud);
    cJSON_AddStringToObject(out, "name", redwork_host_name(st->host));
    cJSON_AddStringToObject(out, "channel", redwork_request_channel(req));
    return redwork_reply_json(rep, out);
}

static void good_fini(void *state) {
    good_state *st = state;
    const char *path = getenv("REDWORK_TEST_FINI_FILE");
    if (path != NULL) {
        FILE *f = fopen(path, "a");
        if (f != NULL) {
            fputs("fini good\n", f);
            fclose(f);
        }
    }
    free(st->word);
    free(st);
}

REDWORK_HANDLER(.name = "good", .description = "test fixture",
                .init = good_init, .handle = good_handle, .fini = good_fini);
