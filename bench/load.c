/* load.c -- a small load generator for redworkd: keeps CONCURRENCY requests
 * in flight until TOTAL have been answered (or DEADLINE seconds passed) and
 * prints the throughput. One connection PSUBSCRIBEs callback:<run>.* for all
 * replies (subscribed before anything is published); the main thread
 * publishes whenever a slot is free.
 *
 *   build/bench/load [-h HOST] [-p PORT] [-c CONCURRENCY] [-n TOTAL]
 *                    [-t DEADLINE_S] [-C CHANNEL] [-H HANDLER]
 */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <hiredis/hiredis.h>

typedef struct run {
    const char *host;
    int port;
    long concurrency, total;
    double deadline_s;
    const char *channel, *handler;
    char tag[64];
    pthread_mutex_t lock;
    pthread_cond_t slot;
    long in_flight, answered, errors;
    _Atomic int failed; /* read by the receiver between replies */
} run;

static double now_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void *receive_replies(void *arg) {
    run *r = arg;
    redisContext *sub = redisConnect(r->host, r->port);
    redisReply *reply;
    if (sub == NULL || sub->err)
        goto fail;
    struct timeval tv = {.tv_sec = 1};
    redisSetTimeout(sub, tv);
    reply = redisCommand(sub, "PSUBSCRIBE callback:%s.*", r->tag);
    if (reply == NULL)
        goto fail;
    freeReplyObject(reply);
    pthread_mutex_lock(&r->lock);
    r->in_flight = 0; /* subscribed: publishing may start */
    pthread_cond_broadcast(&r->slot);
    pthread_mutex_unlock(&r->lock);
    double end = now_s() + r->deadline_s;
    while (now_s() < end && !r->failed) {
        if (redisGetReply(sub, (void **)&reply) != REDIS_OK) {
            if (sub->err == REDIS_ERR_IO) { /* read timeout: check time */
                sub->err = 0;
                continue;
            }
            goto fail;
        }
        int ok = reply->type == REDIS_REPLY_ARRAY && reply->elements == 4 &&
                 strstr(reply->element[3]->str, "\"ok\":true") != NULL;
        freeReplyObject(reply);
        pthread_mutex_lock(&r->lock);
        r->answered++;
        r->errors += !ok;
        r->in_flight--;
        pthread_cond_signal(&r->slot);
        int done = r->answered == r->total;
        pthread_mutex_unlock(&r->lock);
        if (done)
            break;
    }
    redisFree(sub);
    return NULL;
fail:
    fprintf(stderr, "load: subscriber: %s\n", sub ? sub->errstr : "no memory");
    redisFree(sub);
    pthread_mutex_lock(&r->lock);
    r->failed = 1;
    pthread_cond_broadcast(&r->slot);
    pthread_mutex_unlock(&r->lock);
    return NULL;
}

int main(int argc, char **argv) {
    run r = {.host = "127.0.0.1", .port = 6379, .concurrency = 64,
             .total = 100000, .deadline_s = 60, .channel = "request",
             .handler = "echo", .in_flight = -1};
    int opt;
    while ((opt = getopt(argc, argv, "h:p:c:n:t:C:H:")) != -1) {
        switch (opt) {
        case 'h': r.host = optarg; break;
        case 'p': r.port = atoi(optarg); break;
        case 'c': r.concurrency = atol(optarg); break;
        case 'n': r.total = atol(optarg); break;
        case 't': r.deadline_s = atof(optarg); break;
        case 'C': r.channel = optarg; break;
        case 'H': r.handler = optarg; break;
        default:
            fprintf(stderr, "usage: load [-h HOST] [-p PORT] [-c CONCURRENCY] "
                    "[-n TOTAL] [-t DEADLINE_S] [-C CHANNEL] [-H HANDLER]\n");
            return 64;
        }
    }
    if (r.concurrency < 1 || r.total < 1)
        return 64;
    snprintf(r.tag, sizeof r.tag, "load%ld", (long)getpid());
    pthread_mutex_init(&r.lock, NULL);
    pthread_cond_init(&r.slot, NULL);

    redisContext *pub = redisConnect(r.host, r.port);
    if (pub == NULL || pub->err) {
        fprintf(stderr, "load: %s:%d: %s\n", r.host, r.port,
                pub ? pub->errstr : "no memory");
        return 69;
    }
    pthread_t receiver;
    pthread_create(&receiver, NULL, receive_replies, &r);

    double start = 0, end = 0;
    long sent = 0, no_worker = 0;
    for (; sent < r.total; sent++) {
        pthread_mutex_lock(&r.lock);
        while (!r.failed && (r.in_flight < 0 || r.in_flight >= r.concurrency))
            pthread_cond_wait(&r.slot, &r.lock);
        int failed = r.failed;
        r.in_flight++;
        pthread_mutex_unlock(&r.lock);
        if (failed)
            break;
        if (sent == 0)
            start = now_s();
        redisReply *reply = redisCommand(
            pub, "PUBLISH %s {\"req_id\":\"%s.%ld\",\"handler\":\"%s\",\"n\":%ld}",
            r.channel, r.tag, sent, r.handler, sent);
        if (reply == NULL || reply->type != REDIS_REPLY_INTEGER || reply->integer == 0) {
            no_worker++;
            freeReplyObject(reply);
            pthread_mutex_lock(&r.lock);
            r.failed = 1; /* the receiver stops waiting */
            pthread_mutex_unlock(&r.lock);
            break;
        }
        freeReplyObject(reply);
    }
    pthread_join(receiver, NULL);
    end = now_s();
    redisFree(pub);
    double secs = end - start;
    printf("handler=%s concurrency=%ld sent=%ld answered=%ld errors=%ld "
           "seconds=%.3f rps=%.0f\n", r.handler, r.concurrency, sent,
           r.answered, r.errors, secs, secs > 0 ? (double)r.answered / secs : 0);
    if (no_worker)
        fprintf(stderr, "load: PUBLISH reached no subscriber: is redworkd running?\n");
    return r.answered == r.total && r.errors == 0 ? 0 : 1;
}
