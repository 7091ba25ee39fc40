/* hash -- SHA-256 of the request's "data" string, "rounds" times (each
 * round hashes the previous digest): a CPU-bound handler whose cost the
 * caller sets, for benchmarks of how throughput grows with threads and
 * processes. Replies {"sha256": "<64 hex digits>", "rounds": N}. */
#include <string.h>

#include <openssl/sha.h>

#include <redwork/handler.h>

#define ROUNDS_MAX 10000000LL

static int hash_handle(void *state, const redwork_request *req, redwork_reply *rep) {
    (void)state;
    const char *data = redwork_request_string(req, "data");
    long long rounds = 1;
    if (data == NULL)
        return redwork_reply_error(rep, "bad_request", "data must be a string");
    if (cJSON_GetObjectItemCaseSensitive(redwork_request_json(req), "rounds") != NULL &&
        (redwork_request_int(req, "rounds", &rounds) != 0 || rounds < 1 ||
         rounds > ROUNDS_MAX))
        return redwork_reply_error(rep, "bad_request", "rounds must be an integer 1..%lld",
                                   ROUNDS_MAX);
    unsigned char digest[SHA256_DIGEST_LENGTH];
    SHA256((const unsigned char *)data, strlen(data), digest);
    for (long long i = 1; i < rounds; i++)
        SHA256(digest, sizeof digest, digest);

    static const char hex[] = "0123456789abcdef";
    char text[2 * SHA256_DIGEST_LENGTH + 1];
    for (int i = 0; i < SHA256_DIGEST_LENGTH; i++) {
        text[2 * i] = hex[digest[i] >> 4];
        text[2 * i + 1] = hex[digest[i] & 15];
    }
    text[sizeof text - 1] = '\0';
    cJSON *result = cJSON_CreateObject();
    if (result == NULL || cJSON_AddStringToObject(result, "sha256", text) == NULL ||
        cJSON_AddNumberToObject(result, "rounds", (double)rounds) == NULL) {
        cJSON_Delete(result);
        return redwork_reply_error(rep, "internal", "out of memory");
    }
    return redwork_reply_json(rep, result);
}

REDWORK_HANDLER(.name = "hash",
                .description = "SHA-256 of data, rounds times: a CPU-bound handler for benchmarks",
                .handle = hash_handle);
