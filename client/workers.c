/* workers.c -- the live workers, from their heartbeat keys (workers.h). */
#include "workers.h"

#include <stdio.h>
#include <string.h>

#include <hiredis/hiredis.h>

#include "cluster.h"
#include "conn.h"
#include "options.h"
#include "protocol.h"

/* Adds the workers whose keys C holds to LIST. Returns 0, or -1 with ERR. */
static int read_server(redisContext *c, cJSON *list, char *err, size_t errlen) {
    char cursor[32] = "0";
    int rounds = 0;
    do {
        redisReply *scan = redisCommand(c, "SCAN %s MATCH " PROTOCOL_WORKER_PREFIX "* COUNT 1000",
                                        cursor);
        if (scan == NULL || scan->type != REDIS_REPLY_ARRAY || scan->elements != 2) {
            char why[256];
            snprintf(err, errlen, "SCAN failed: %s", redwork_conn_error(c, scan, why, sizeof why));
            freeReplyObject(scan);
            return -1;
        }
        snprintf(cursor, sizeof cursor, "%s", scan->element[0]->str);
        redisReply *keys = scan->element[1];
        for (size_t i = 0; i < keys->elements; i++) {
            redisReply *h = redisCommand(c, "HGETALL %s", keys->element[i]->str);
            if (h != NULL && h->type == REDIS_REPLY_ARRAY && h->elements > 0) {
                cJSON *w = cJSON_CreateObject();
                for (size_t f = 0; f + 1 < h->elements; f += 2)
                    cJSON_AddStringToObject(w, h->element[f]->str, h->element[f + 1]->str);
                cJSON_AddItemToArray(list, w);
            } /* else expired between SCAN and HGETALL */
            freeReplyObject(h);
        }
        freeReplyObject(scan);
    } while (strcmp(cursor, "0") != 0 && ++rounds < 100000);
    return 0;
}

cJSON *workers_read(const redwork_client_options *opt, char *err, size_t errlen) {
    redwork_sentinel *sentinel = NULL;
    if (redwork_client_sentinel(opt, &sentinel, err, errlen) != 0)
        return NULL;
    conn_params p = redwork_client_conn_params(opt, sentinel);
    /* In a cluster the keys are spread over the masters: each is read. */
    redwork_cluster_map map;
    redwork_cluster_map_init(&map);
    redisContext *c = opt->cluster ? redwork_cluster_discover(&p, NULL, &map, err, errlen)
                                   : redwork_conn_connect(&p, err, errlen);
    cJSON *list = c != NULL ? cJSON_CreateArray() : NULL;
    int failed = c == NULL || (!opt->cluster && read_server(c, list, err, errlen) != 0);
    if (c != NULL)
        redisFree(c);
    for (size_t i = 0; i < map.count && !failed; i++) {
        redisContext *node = redwork_cluster_connect_node(&p, &map, i, err, errlen);
        failed = node == NULL || read_server(node, list, err, errlen) != 0;
        if (node != NULL)
            redisFree(node);
    }
    redwork_cluster_map_clear(&map);
    redwork_sentinel_free(sentinel);
    if (failed) {
        cJSON_Delete(list);
        return NULL;
    }
    return list;
}

const char *workers_field(const cJSON *w, const char *name) {
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(w, name);
    return cJSON_IsString(v) ? v->valuestring : "";
}
