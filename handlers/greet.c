/* greet -- the seed's example: {"user_id":"Alice"} -> "Hello, Alice!".
 * The greeting word comes from [handler.greet] word (default "Hello"). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <redwork/handler.h>

#define WORD_MAX 64

typedef struct greet_state {
    char word[WORD_MAX + 1];
} greet_state;

static int greet_init(const redwork_host *host, void **state) {
    const char *word = redwork_config_string(host, "word", "Hello");
    if (strlen(word) > WORD_MAX) {
        redwork_log(host, REDWORK_LOG_ERROR,
                    "[handler.greet] word: longer than %d characters", WORD_MAX);
        return -1;
    }
    greet_state *g = malloc(sizeof *g);
    if (g == NULL)
        return -1;
    strcpy(g->word, word);
    *state = g;
    return 0;
}

static int greet_handle(void *state, const redwork_request *req,
                        redwork_reply *rep) {
    const greet_state *g = state;
    const char *user = redwork_request_string(req, "user_id");
    if (user == NULL)
        return redwork_reply_error(rep, "bad_request",
                                   "user_id must be a string");
    size_t n = strlen(g->word) + strlen(user) + 4;
    char *text = malloc(n);
    if (text == NULL)
        return redwork_reply_error(rep, "internal", "out of memory");
    snprintf(text, n, "%s, %s!", g->word, user);
    int rc = redwork_reply_string(rep, text);
    free(text);
    return rc;
}

static void greet_fini(void *state) { free(state); }

REDWORK_HANDLER(.name = "greet",
                .description = "says hello to user_id (the seed's example)",
                .init = greet_init, .handle = greet_handle,
                .fini = greet_fini);
