/* holds.c -- the stream entries a daemon holds (see holds.h): an
 * intrusive ring, oldest first, so adding and releasing cost nothing and
 * a touch walks only what is held. */
#include "holds.h"

#include <string.h>

#include "resp.h"

void holds_init(holds *set) {
    set->head.prev = set->head.next = &set->head;
    set->head.set = NULL;
    set->count = 0;
}

void holds_add(holds *set, hold *h) {
    h->set = set;
    h->next = &set->head;
    h->prev = set->head.prev;
    set->head.prev->next = h;
    set->head.prev = h;
    set->count++;
}

void hold_release(hold *h) {
    if (h->set == NULL)
        return;
    h->prev->next = h->next;
    h->next->prev = h->prev;
    h->set->count--;
    h->set = NULL;
    h->prev = h->next = NULL;
}

int holds_touch(const holds *set, const char *const *streams, size_t n,
                const char *group, const char *consumer, buffer *out) {
    int commands = 0;
    for (size_t i = 0; i < n; i++) {
        size_t ids = 0;
        for (const hold *h = set->head.next; h != &set->head; h = h->next)
            ids += h->stream == streams[i];
        if (ids == 0)
            continue;
        resp_array(out, 6 + ids);
        resp_bulk_str(out, "XCLAIM");
        resp_bulk_str(out, streams[i]);
        resp_bulk_str(out, group);
        resp_bulk_str(out, consumer);
        resp_bulk_str(out, "0");
        for (const hold *h = set->head.next; h != &set->head; h = h->next)
            if (h->stream == streams[i])
                resp_bulk_str(out, h->id);
        resp_bulk_str(out, "JUSTID");
        commands++;
    }
    return out->failed ? -1 : commands;
}
