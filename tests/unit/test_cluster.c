/* test_cluster.c -- hash slots, the slot map and redirects (common/cluster.h).
 *
 * Covers: CRC16 against the XMODEM check value; key slots against what
 * CLUSTER KEYSLOT of redis-server 7 answers, hash tags included (empty,
 * nested, several); a CLUSTER SLOTS answer made into a map (ranges, a
 * master serving two ranges, a master announced without an address, gaps
 * left unserved) and the answers refused; MOVED and ASK with IPv4, IPv6
 * and no host, and the errors that are not redirects. */
#include <criterion/criterion.h>

#include <stdlib.h>
#include <string.h>

#include "cluster.h"

Test(cluster, crc16_check_value) {
    cr_assert_eq(redwork_cluster_crc16("123456789", 9), 0x31C3);
    cr_assert_eq(redwork_cluster_crc16("", 0), 0);
}

/* The slots CLUSTER KEYSLOT gave for these keys on redis-server 7. */
Test(cluster, key_slots_as_redis_computes_them) {
    static const struct {
        const char *key;
        unsigned slot;
    } known[] = {
        {"foo", 12182}, {"bar", 5061}, {"hello", 866}, {"somekey", 11058},
        {"request", 8958}, {"callback:abc", 5615}, {"redwork:claim:x", 7949},
        {"{user1000}.following", 3443},
        {"foo{}{bar}", 8363},    /* an empty tag: the whole key */
        {"foo{{bar}}zap", 4015}, /* the tag is "{bar" */
        {"foo{bar}{zap}", 5061}, /* the first tag: "bar" */
        {"{}", 15257},
        {"jobs{0}", 13907}, {"jobs{1}", 9842}, {"jobs{2}", 5649},
        {"jobs{0}:dead", 13907}, /* a shard's dead letters share its slot */
    };
    for (size_t i = 0; i < sizeof known / sizeof known[0]; i++)
        cr_assert_eq(redwork_cluster_key_slot(known[i].key, strlen(known[i].key)), known[i].slot,
                     "%s", known[i].key);
}

/* ---- CLUSTER SLOTS answers, built by hand --------------------------------- */

static redisReply *reply_new(int type) {
    redisReply *r = calloc(1, sizeof *r);
    r->type = type;
    return r;
}

static redisReply *integer(long long v) {
    redisReply *r = reply_new(REDIS_REPLY_INTEGER);
    r->integer = v;
    return r;
}

static redisReply *string(const char *s) {
    redisReply *r = reply_new(REDIS_REPLY_STRING);
    r->str = strdup(s);
    r->len = strlen(s);
    return r;
}

static redisReply *array(size_t n, redisReply **items) {
    redisReply *r = reply_new(REDIS_REPLY_ARRAY);
    r->element = calloc(n, sizeof *r->element);
    r->elements = n;
    for (size_t i = 0; i < n; i++)
        r->element[i] = items[i];
    return r;
}

/* [first, last, [host, port, id], [replica host, port, id]] */
static redisReply *range(long long first, long long last, const char *host, int port) {
    redisReply *master[] = {string(host), integer(port), string("id")};
    redisReply *replica[] = {string("10.0.0.9"), integer(7000), string("rid")};
    redisReply *items[] = {integer(first), integer(last), array(3, master), array(3, replica)};
    return array(4, items);
}

Test(cluster, slot_map_from_cluster_slots) {
    redisReply *ranges[] = {
        range(0, 5460, "10.0.0.1", 7001),
        range(5461, 10922, "", 7002), /* announced without an address */
        range(10923, 12000, "10.0.0.3", 7003),
        range(12001, 16000, "10.0.0.1", 7001), /* a second range, same master */
    };
    redisReply *r = array(4, ranges);
    redwork_cluster_map m;
    redwork_cluster_map_init(&m);
    char err[256] = "";
    cr_assert_eq(redwork_cluster_map_parse(&m, r, "seed.internal", err, sizeof err), 0, "%s", err);
    cr_assert_eq(m.count, 3);
    cr_assert_eq(redwork_cluster_map_find(&m, "10.0.0.1", 7001), 0);
    cr_assert_eq(redwork_cluster_map_find(&m, "seed.internal", 7002), 1);
    cr_assert_eq(redwork_cluster_map_find(&m, "10.0.0.3", 7003), 2);
    cr_assert_eq(redwork_cluster_map_find(&m, "10.0.0.9", 7000), -1, "a replica is no master");
    cr_assert_eq(m.slot_node[0], 0);
    cr_assert_eq(m.slot_node[5461], 1);
    cr_assert_eq(m.slot_node[12000], 2);
    cr_assert_eq(m.slot_node[12001], 0);
    cr_assert_eq(m.slot_node[16383], CLUSTER_NO_NODE);
    cr_assert_eq(redwork_cluster_map_served(&m), 16001);
    redwork_cluster_map_clear(&m);
    cr_assert_eq(m.count, 0);
    freeReplyObject(r);
}

Test(cluster, slot_maps_refused) {
    redwork_cluster_map m;
    redwork_cluster_map_init(&m);
    char err[256];

    redisReply *e = reply_new(REDIS_REPLY_ERROR);
    e->str = strdup("ERR This instance has cluster support disabled");
    e->len = strlen(e->str);
    cr_assert_eq(redwork_cluster_map_parse(&m, e, "h", err, sizeof err), -1);
    cr_assert(strstr(err, "cluster support disabled") != NULL, "%s", err);
    freeReplyObject(e);

    redisReply *none = array(0, NULL);
    cr_assert_eq(redwork_cluster_map_parse(&m, none, "h", err, sizeof err), -1);
    cr_assert(strstr(err, "no slot") != NULL, "%s", err);
    freeReplyObject(none);

    redisReply *bad[] = {range(100, 16384, "10.0.0.1", 7001)};
    redisReply *r = array(1, bad);
    cr_assert_eq(redwork_cluster_map_parse(&m, r, "h", err, sizeof err), -1);
    cr_assert(strstr(err, "range 0") != NULL, "%s", err);
    cr_assert_eq(m.count, 0);
    freeReplyObject(r);

    redisReply *port0[] = {range(0, 10, "10.0.0.1", 0)};
    r = array(1, port0);
    cr_assert_eq(redwork_cluster_map_parse(&m, r, "h", err, sizeof err), -1);
    cr_assert(strstr(err, "address") != NULL, "%s", err);
    freeReplyObject(r);
}

/* ---- redirects ------------------------------------------------------------ */

static redwork_cluster_redirect parse_ok(const char *msg) {
    redwork_cluster_redirect r;
    memset(&r, 0, sizeof r);
    cr_assert_eq(redwork_cluster_redirect_parse(msg, strlen(msg), &r), 1, "%s", msg);
    return r;
}

Test(cluster, redirects) {
    redwork_cluster_redirect r = parse_ok("MOVED 3999 127.0.0.1:6381");
    cr_assert_eq(r.ask, 0);
    cr_assert_eq(r.slot, 3999);
    cr_assert_str_eq(r.host, "127.0.0.1");
    cr_assert_eq(r.port, 6381);

    r = parse_ok("ASK 16383 ::1:7002");
    cr_assert_eq(r.ask, 1);
    cr_assert_eq(r.slot, 16383);
    cr_assert_str_eq(r.host, "::1");
    cr_assert_eq(r.port, 7002);

    r = parse_ok("MOVED 0 [fe80::1]:7003");
    cr_assert_str_eq(r.host, "fe80::1");
    cr_assert_eq(r.port, 7003);

    r = parse_ok("MOVED 12 :7004"); /* the answering node's own host */
    cr_assert_str_eq(r.host, "");
    cr_assert_eq(r.port, 7004);
}

Test(cluster, errors_that_are_not_redirects) {
    static const char *const not_redirects[] = {
        "ERR unknown command", "MOVED", "MOVED 3999", "MOVED x 127.0.0.1:6381",
        "MOVED 16384 127.0.0.1:6381", "MOVED 1 127.0.0.1", "MOVED 1 127.0.0.1:0",
        "MOVED 1 127.0.0.1:65536", "MOVED 1 127.0.0.1:6381x", "ASK  1 h:1",
        "CLUSTERDOWN Hash slot not served", "TRYAGAIN Multiple keys request during rehashing",
    };
    for (size_t i = 0; i < sizeof not_redirects / sizeof not_redirects[0]; i++) {
        redwork_cluster_redirect r;
        cr_assert_eq(redwork_cluster_redirect_parse(not_redirects[i], strlen(not_redirects[i]), &r),
                     0, "%s", not_redirects[i]);
    }
    char longer[600];
    memset(longer, 'h', sizeof longer);
    memcpy(longer, "MOVED 1 ", 8);
    memcpy(longer + sizeof longer - 5, ":123", 4);
    longer[sizeof longer - 1] = '\0';
    redwork_cluster_redirect r;
    cr_assert_eq(redwork_cluster_redirect_parse(longer, strlen(longer), &r), 0, "over-long host");
}
