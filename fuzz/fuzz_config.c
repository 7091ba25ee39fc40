/* fuzz_config.c -- libFuzzer target: the ini parser and validation
 * (config_load) on arbitrary files. Each input is written to a private
 * temporary file and loaded; an accepted config must be usable, a refused
 * one must say where. Run by `make fuzz`; seeds in tests/fuzz/config/. */
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "config.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    static char path[64];
    if (path[0] == '\0')
        snprintf(path, sizeof path, "/tmp/redwork-fuzz-%ld.ini", (long)getpid());
    FILE *f = fopen(path, "wb");
    if (f == NULL)
        return 0;
    fwrite(data, 1, size, f);
    fclose(f);
    char err[1024] = "";
    config *cfg = redwork_config_load(path, err, sizeof err);
    if (cfg == NULL) {
        if (strncmp(err, path, strlen(path)) != 0)
            abort(); /* every error names the file */
        return 0;
    }
    if (cfg->channel_count == 0 || cfg->id[0] == '\0')
        abort(); /* an accepted config has channels and an id */
    for (size_t i = 0; i < cfg->channel_count; i++)
        redwork_config_route_for(cfg, cfg->channel_list[i]);
    redwork_config_section_get(redwork_config_section_for(cfg, "greet"), "word");
    redwork_config_free(cfg);
    return 0;
}
