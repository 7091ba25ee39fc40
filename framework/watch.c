/* watch.c -- following the master when Sentinel moves it (see watch.h).
 *
 * A sentinel publishes "+switch-master <name> <old-ip> <old-port>
 * <new-ip> <new-port>" when a failover ends. Only the sentinel the wire
 * is on is heard; every sentinel publishes each switch, so one is enough. A
 * switch missed while the wire reconnects is still found: Sentinel turns
 * the old master into a replica, which closes its connections, and the
 * daemon's connections answer -READONLY until they move (wire.c). */
#include "watch.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "log.h"
#include "resp.h"
#include "sentinel.h"
#include "wire.h"

#define SWITCH_CHANNEL "+switch-master"

struct watch {
    const config *cfg;
    wire *w;
    watch_fn *on_switch;
    void *ctx;
};

static void on_up(void *ctx) {
    watch *wt = ctx;
    resp_args(wire_out(wt->w), "SUBSCRIBE", SWITCH_CHANNEL);
}

/* A +switch-master message: "<name> <old-ip> <old-port> <new-ip> <new-port>". */
static void on_push(void *ctx, const resp_value *v) {
    watch *wt = ctx;
    if (v->type != RESP_ARRAY || v->integer != 3 || !resp_is(&v[1], "message"))
        return; /* the subscription's confirmation */
    const resp_value *body = resp_next(v, resp_next(v, &v[1]));
    if (body->type != RESP_STRING)
        return;
    char name[128], old_ip[256], new_ip[256];
    int old_port, new_port;
    if (sscanf(body->str, "%127s %255s %d %255s %d", name, old_ip, &old_port, new_ip,
               &new_port) != 5 ||
        strcmp(name, redwork_sentinel_name(wt->cfg->sentinel)) != 0)
        return;
    char address[300];
    snprintf(address, sizeof address, strchr(new_ip, ':') ? "[%s]:%d" : "%s:%d", new_ip,
             new_port);
    log_warn("sentinel", "failover: master '%s' moved from %s:%d to %s", name, old_ip, old_port,
             address);
    wt->on_switch(wt->ctx, address);
}

watch *watch_create(loop *lp, const config *cfg, watch_fn *on_switch, void *ctx) {
    watch *wt = calloc(1, sizeof *wt);
    if (wt == NULL)
        return NULL;
    wt->cfg = cfg;
    wt->on_switch = on_switch;
    wt->ctx = ctx;
    static const wire_handlers handlers = {.up = on_up, .push = on_push};
    wt->w = wire_create(lp, cfg, "sentinel", &handlers, wt, WIRE_PUSH | WIRE_SENTINEL);
    if (wt->w == NULL) {
        free(wt);
        return NULL;
    }
    return wt;
}

int watch_start(watch *wt, char *err, size_t errlen) { return wire_connect(wt->w, err, errlen); }

void watch_free(watch *wt) {
    if (wt == NULL)
        return;
    wire_free(wt->w);
    free(wt);
}
