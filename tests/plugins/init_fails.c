/* init_fails.c -- fixture: init() returns -1, so the loader must refuse
 * the plugin and must not call fini() (which would append "fini
 * init_fails" to the file named by REDWORK_TEST_FINI_FILE). */
#include <stdio.h>
#include <stdlib.h>

#include "redwork/handler.h"

static int if_init(const redwork_host *host, void **state) {
    (void)host;
    *state = NULL;
    return -1;
}

static int if_handle(void *state, const redwork_request *req,
                     redwork_reply *rep) {
    (void)state, (void)req;
    return redwork_reply_string(rep, "init_fails");
}

static void if_fini(void *state) {
    (void)state;
    const char *path = getenv("REDWORK_TEST_FINI_FILE");
    FILE *f = path != NULL ? fopen(path, "a") : NULL;
    if (f != NULL) {
        fputs("fini init_fails\n", f);
        fclose(f);
    }
}

REDWORK_HANDLER(.name = "init_fails", .init = if_init, .handle = if_handle,
                .fini = if_fini);
