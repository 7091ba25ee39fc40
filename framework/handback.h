/* handback.h -- finished work going back to the event loop's thread.
 *
 * A lock-free stack that any number of threads push onto and one thread
 * (the loop) empties all at once, getting the items oldest first. Items
 * are linked through a handback_node embedded in them: pushing allocates
 * nothing and never blocks. It is how a pool thread returns a request
 * with its reply, the moment the handler has finished; the pusher then
 * signals the loop (loop_async_signal), which costs nothing while the loop
 * is awake. */
#ifndef REDWORK_HANDBACK_H
#define REDWORK_HANDBACK_H

#include <stdatomic.h>

typedef struct handback_node {
    struct handback_node *next;
} handback_node;

typedef struct handback {
    _Atomic(handback_node *) top;
} handback;

/* An empty stack. Cannot fail. */
void handback_init(handback *h);

/* Pushes N. Any thread. */
void handback_push(handback *h, handback_node *n);

/* Takes every item pushed so far, oldest first, as a NULL-terminated list
 * through their next fields; NULL if none. One consumer thread only. */
handback_node *handback_take(handback *h);

#endif
