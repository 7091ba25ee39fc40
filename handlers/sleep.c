/* sleep -- sleeps "ms" milliseconds (0..60000), then replies
 * {"slept_ms": ms}: a slow handler for concurrency, drain and timeout
 * tests. */
#include <errno.h>
#include <time.h>

#include <redwork/handler.h>

#define SLEEP_MAX_MS 60000

static int sleep_handle(void *state, const redwork_request *req,
                        redwork_reply *rep) {
    (void)state;
    long long ms = 0;
    if (redwork_request_int(req, "ms", &ms) != 0 || ms < 0 || ms > SLEEP_MAX_MS)
        return redwork_reply_error(rep, "bad_request",
                                   "ms must be an integer 0..%d", SLEEP_MAX_MS);
    struct timespec left = {.tv_sec = ms / 1000, .tv_nsec = (ms % 1000) * 1000000L};
    while (nanosleep(&left, &left) != 0 && errno == EINTR)
        ;
    cJSON *result = cJSON_CreateObject();
    if (result == NULL || cJSON_AddNumberToObject(result, "slept_ms", (double)ms) == NULL) {
        cJSON_Delete(result);
        return redwork_reply_error(rep, "internal", "out of memory");
    }
    return redwork_reply_json(rep, result);
}

REDWORK_HANDLER(.name = "sleep",
                .description = "sleeps ms milliseconds, for tests",
                .handle = sleep_handle);
