/* hello.c -- a redwork handler in a project of its own: replies
 * "<greeting>, <name>!", the greeting read from [handler.hello] greeting
 * (default "Hi") when the handler is loaded. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <redwork/handler.h>

static int hello_init(const redwork_host *host, void **state) {
    char *greeting = strdup(redwork_config_string(host, "greeting", "Hi"));
    if (greeting == NULL)
        return -1;
    *state = greeting;
    return 0;
}

static int hello(void *state, const redwork_request *req, redwork_reply *rep) {
    const char *greeting = state;
    const char *name = redwork_request_string(req, "name");
    if (name == NULL)
        return redwork_reply_error(rep, "bad_request", "'name' must be a string");
    char text[256];
    snprintf(text, sizeof text, "%s, %s!", greeting, name);
    return redwork_reply_string(rep, text);
}

static void hello_fini(void *state) { free(state); }

REDWORK_HANDLER(.name = "hello",
                .description = "replies <greeting>, <name>!",
                .init = hello_init,
                .handle = hello,
                .fini = hello_fini);
