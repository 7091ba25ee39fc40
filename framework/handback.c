/* handback.c -- finished work going back to the event loop's thread.
 *
 * A Treiber stack with a take-all pop: pushers compare-and-swap the top,
 * the one consumer swaps the whole stack out and reverses it. With a
 * single consumer that never pops one item at a time there is no ABA
 * problem, and a push is one uncontended CAS in the common case. */
#include "handback.h"

#include <stddef.h>

void handback_init(handback *h) { atomic_init(&h->top, NULL); }

void handback_push(handback *h, handback_node *n) {
    handback_node *top = atomic_load_explicit(&h->top, memory_order_relaxed);
    do {
        n->next = top;
    } while (!atomic_compare_exchange_weak_explicit(&h->top, &top, n, memory_order_release,
                                                    memory_order_relaxed));
}

handback_node *handback_take(handback *h) {
    handback_node *n = atomic_exchange_explicit(&h->top, NULL, memory_order_acquire);
    handback_node *oldest_first = NULL;
    while (n != NULL) {
        handback_node *next = n->next;
        n->next = oldest_first;
        oldest_first = n;
        n = next;
    }
    return oldest_first;
}
