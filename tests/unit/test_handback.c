/* test_handback.c -- the hand-back stack from the pool to the event loop
 * (framework/handback.h): order, nothing lost or doubled under many
 * producers, and the take-all of a single consumer. */
#include <criterion/criterion.h>

#include <pthread.h>
#include <stdlib.h>

#include "handback.h"

typedef struct item {
    handback_node node; /* first: the node is the item */
    int producer;
    int seq;
} item;

Test(handback, empty_take_is_null) {
    handback h;
    handback_init(&h);
    cr_assert_null(handback_take(&h));
}

Test(handback, take_gives_oldest_first_and_empties) {
    handback h;
    handback_init(&h);
    item items[5];
    for (int i = 0; i < 5; i++) {
        items[i].seq = i;
        handback_push(&h, &items[i].node);
    }
    int expect = 0;
    for (handback_node *n = handback_take(&h); n != NULL; n = n->next)
        cr_assert_eq(((item *)n)->seq, expect++);
    cr_assert_eq(expect, 5);
    cr_assert_null(handback_take(&h), "the stack is empty after a take");
}

Test(handback, pushes_after_a_take_come_in_the_next_one) {
    handback h;
    handback_init(&h);
    item a = {.seq = 1}, b = {.seq = 2};
    handback_push(&h, &a.node);
    handback_node *first = handback_take(&h);
    handback_push(&h, &b.node);
    cr_assert_eq(first, &a.node);
    cr_assert_null(first->next);
    handback_node *second = handback_take(&h);
    cr_assert_eq(second, &b.node);
    cr_assert_null(second->next);
}

#define PRODUCERS 4
#define PER_PRODUCER 50000

typedef struct producer {
    handback *h;
    item *items; /* its own PER_PRODUCER items */
    int index;
} producer;

static void *produce(void *arg) {
    producer *p = arg;
    for (int i = 0; i < PER_PRODUCER; i++) {
        p->items[i].producer = p->index;
        p->items[i].seq = i;
        handback_push(p->h, &p->items[i].node);
    }
    return NULL;
}

/* Four threads push while this one takes: every item comes out once, and
 * each producer's items in the order it pushed them. */
Test(handback, many_producers_one_consumer, .timeout = 60) {
    handback h;
    handback_init(&h);
    item *items = calloc(PRODUCERS * PER_PRODUCER, sizeof *items);
    unsigned char *got = calloc(PRODUCERS * PER_PRODUCER, 1);
    cr_assert(items != NULL && got != NULL);
    producer producers[PRODUCERS];
    pthread_t threads[PRODUCERS];
    for (int p = 0; p < PRODUCERS; p++) {
        producers[p] = (producer){&h, items + p * PER_PRODUCER, p};
        cr_assert_eq(pthread_create(&threads[p], NULL, produce, &producers[p]), 0);
    }
    int seen = 0, next[PRODUCERS] = {0};
    while (seen < PRODUCERS * PER_PRODUCER) {
        for (handback_node *n = handback_take(&h); n != NULL; n = n->next) {
            item *it = (item *)n;
            int index = it->producer * PER_PRODUCER + it->seq;
            cr_assert_eq(got[index], 0, "item %d taken twice", index);
            got[index] = 1;
            cr_assert_eq(it->seq, next[it->producer], "producer %d out of order", it->producer);
            next[it->producer]++;
            seen++;
        }
    }
    for (int p = 0; p < PRODUCERS; p++)
        pthread_join(threads[p], NULL);
    cr_assert_null(handback_take(&h));
    free(got);
    free(items);
}
