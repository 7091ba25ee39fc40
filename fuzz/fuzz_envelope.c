/* fuzz_envelope.c -- libFuzzer target: reply envelopes as libredwork reads
 * them (client/envelope.h), from any bytes: the req_id found fits its
 * buffer, and the result is a status with its strings, freed again. Run by
 * `make fuzz`; seeds in tests/fuzz/envelope/. */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "envelope.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    char *body = malloc(size + 1); /* as the reader gives it: NUL-terminated */
    if (body == NULL)
        return 0;
    memcpy(body, data, size);
    body[size] = '\0';
    char id[PROTOCOL_ID_MAX + 1];
    if (redwork_envelope_req_id(body, id) == 0 && strlen(id) > PROTOCOL_ID_MAX)
        abort();
    redwork_result res = {0};
    redwork_envelope_result(&res, body);
    if (res.status == REDWORK_OK ? res.result == NULL
                                 : res.status != REDWORK_ERROR_REPLY || res.error_code == NULL)
        abort();
    redwork_result_free(&res);
    free(body);
    return 0;
}
