/* bench_mover.c — the ideal mover of bench/forward: the least a queue-to-exchange forwarder
 * with publisher confirms can do, written with the same client library as amqp-gw.
 *
 *   bench_mover URL SRC_QUEUE PREFETCH MODE EXCHANGES ROUTING_KEY
 *
 * Consumes SRC_QUEUE (manual acks, basic.qos PREFETCH) on one connection and publishes every
 * delivery to each exchange of the comma-separated EXCHANGES with ROUTING_KEY on a second
 * connection in confirm mode (the same two-connection shape as amqp-gw's session), pipelining
 * the confirms and acking the inbound queue with `multiple` once every copy of a delivery and of
 * every delivery before it is confirmed. Nothing else: no routing table, no mandatory flag, no
 * retry, no ledger beyond a sequence counter. What a copy carries is MODE:
 *   plain    byte-identical: the delivery's properties and headers as they came
 *   ids      plain, plus what amqp-gw's lean first copy adds: a correlation_id (a new UUIDv4)
 *            and, when missing, the message_id and type (the body's CloudEvents "id"/"type")
 *   headers  ids, plus amqp-gw's four forwarding headers (forward_headers: full):
 *            x-correlation-id, x-gw-route, x-gw-retry-count, x-gw-first-seen-at
 * Runs until SIGTERM or SIGINT, then acks what gets confirmed within 10 s, prints
 * `mover moved=N acked=N` and exits 0. Errors print
 * one line on stderr and exit 1 (a nack included: an ideal mover has no retry); usage errors
 * exit 2.
 */
#include "alloc.h"
#include "common/benchamqp.h"

#include <amqp.h>

#include <errno.h>
#include <inttypes.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <time.h>

#define CH           BENCH_CHANNEL
#define MAX_EXCHANGE 8

static volatile sig_atomic_t g_stop;

typedef enum { MODE_PLAIN, MODE_IDS, MODE_HEADERS } mode;

static void on_signal(int sig)
{
    (void)sig;
    g_stop = 1;
}

/* ---------------------------------------------------------------- what a copy carries */

static uint64_t g_rng[2];

static uint64_t rng_next(void)
{
    uint64_t s1 = g_rng[0];
    const uint64_t s0 = g_rng[1];
    g_rng[0] = s0;
    s1 ^= s1 << 23;
    g_rng[1] = s1 ^ s0 ^ (s1 >> 17) ^ (s0 >> 26);
    return g_rng[1] + s0;
}

/* A UUIDv4 in out[37], as amqp-gw makes one. */
static void uuid4(char out[37])
{
    uint8_t b[16];
    uint64_t a = rng_next(), c = rng_next();
    memcpy(b, &a, 8);
    memcpy(b + 8, &c, 8);
    b[6] = (uint8_t)((b[6] & 0x0f) | 0x40);
    b[8] = (uint8_t)((b[8] & 0x3f) | 0x80);
    snprintf(out, 37, "%02x%02x%02x%02x-%02x%02x-%02x%02x-%02x%02x-%02x%02x%02x%02x%02x%02x", b[0],
             b[1], b[2], b[3], b[4], b[5], b[6], b[7], b[8], b[9], b[10], b[11], b[12], b[13],
             b[14], b[15]);
}

/* The string value of "key":"..." in a JSON body (the bench's own flat envelope), or empty. */
static amqp_bytes_t body_field(amqp_bytes_t body, const char *key)
{
    char pat[32];
    int n = snprintf(pat, sizeof pat, "\"%s\":\"", key);
    const char *p = memmem(body.bytes, body.len, pat, (size_t)n);
    if (!p)
        return amqp_empty_bytes;
    p += n;
    const char *end = memchr(p, '"', (size_t)((const char *)body.bytes + body.len - p));
    return end ? (amqp_bytes_t){.len = (size_t)(end - p), .bytes = (void *)p} : amqp_empty_bytes;
}

typedef struct copy {
    amqp_basic_properties_t props;
    char correlation_id[37];
    amqp_table_entry_t entries[64];
} copy;

static int64_t wall_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* Fills c with the properties of the copy of m that MODE asks for (borrowing from m). */
static void make_copy(mode md, const amqp_message_t *m, const char *route, copy *c)
{
    c->props = m->properties;
    if (md == MODE_PLAIN)
        return;
    amqp_basic_properties_t *p = &c->props;
    if (!(p->_flags & AMQP_BASIC_CORRELATION_ID_FLAG)) {
        uuid4(c->correlation_id);
        p->correlation_id = amqp_cstring_bytes(c->correlation_id);
        p->_flags |= AMQP_BASIC_CORRELATION_ID_FLAG;
    }
    if (!(p->_flags & AMQP_BASIC_MESSAGE_ID_FLAG)) {
        p->message_id = body_field(m->body, "id");
        p->_flags |= AMQP_BASIC_MESSAGE_ID_FLAG;
    }
    if (!(p->_flags & AMQP_BASIC_TYPE_FLAG)) {
        p->type = body_field(m->body, "type");
        p->_flags |= AMQP_BASIC_TYPE_FLAG;
    }
    if (md != MODE_HEADERS)
        return;
    int n = 0;
    if (p->_flags & AMQP_BASIC_HEADERS_FLAG)
        for (int i = 0; i < p->headers.num_entries && n < 60; i++)
            c->entries[n++] = p->headers.entries[i];
    c->entries[n++] = (amqp_table_entry_t){
        .key = amqp_cstring_bytes("x-correlation-id"),
        .value = {.kind = AMQP_FIELD_KIND_UTF8, .value.bytes = p->correlation_id}};
    c->entries[n++] = (amqp_table_entry_t){
        .key = amqp_cstring_bytes("x-gw-route"),
        .value = {.kind = AMQP_FIELD_KIND_UTF8, .value.bytes = amqp_cstring_bytes(route)}};
    c->entries[n++] = (amqp_table_entry_t){.key = amqp_cstring_bytes("x-gw-retry-count"),
                                           .value = {.kind = AMQP_FIELD_KIND_I64, .value.i64 = 0}};
    c->entries[n++] =
        (amqp_table_entry_t){.key = amqp_cstring_bytes("x-gw-first-seen-at"),
                             .value = {.kind = AMQP_FIELD_KIND_I64, .value.i64 = wall_ms()}};
    p->headers = (amqp_table_t){.num_entries = n, .entries = c->entries};
    p->_flags |= AMQP_BASIC_HEADERS_FLAG;
}

/* ---------------------------------------------------------------- the move */

/* Deliveries in flight, in delivery order: tag and the last publish sequence of its copies. */
typedef struct pending {
    uint64_t tag, last_seq;
} pending;

typedef struct mover {
    amqp_connection_state_t in, out;
    pending *ring;
    size_t cap, head, n; /* ring of n deliveries from head */
    uint64_t next_seq;   /* sequence of the next publish (first is 1) */
    uint64_t confirmed;  /* every sequence <= this is confirmed */
    bool *single;        /* out-of-order single confirms above confirmed, by seq % cap2 */
    size_t cap2;
    uint64_t moved, acked;
} mover;

static void confirm(mover *mv, uint64_t seq, bool multiple)
{
    if (multiple) {
        if (seq > mv->confirmed) {
            for (uint64_t s = mv->confirmed + 1; s <= seq; s++)
                mv->single[s % mv->cap2] = false;
            mv->confirmed = seq;
        }
    } else if (seq > mv->confirmed) {
        mv->single[seq % mv->cap2] = true;
    }
    while (mv->single[(mv->confirmed + 1) % mv->cap2]) {
        mv->single[(mv->confirmed + 1) % mv->cap2] = false;
        mv->confirmed++;
    }
    /* one multiple ack for every delivery whose copies are all confirmed */
    uint64_t ack_tag = 0;
    while (mv->n && mv->ring[mv->head].last_seq <= mv->confirmed) {
        ack_tag = mv->ring[mv->head].tag;
        mv->head = (mv->head + 1) % mv->cap;
        mv->n--;
        mv->acked++;
    }
    if (ack_tag && amqp_basic_ack(mv->in, CH, ack_tag, 1) != AMQP_STATUS_OK)
        bench_die("basic.ack failed");
}

/* Reads what the publisher connection has (confirms); false when nothing was there. */
static bool read_out(mover *mv)
{
    amqp_frame_t f;
    struct timeval tv = {0, 0};
    int rc = amqp_simple_wait_frame_noblock(mv->out, &f, &tv);
    if (rc == AMQP_STATUS_TIMEOUT)
        return false;
    if (rc != AMQP_STATUS_OK)
        bench_die("publisher connection: %s", amqp_error_string2(rc));
    if (f.frame_type == AMQP_FRAME_METHOD) {
        if (f.payload.method.id == AMQP_BASIC_ACK_METHOD) {
            amqp_basic_ack_t *a = f.payload.method.decoded;
            confirm(mv, a->delivery_tag, a->multiple);
        } else if (f.payload.method.id == AMQP_BASIC_NACK_METHOD) {
            bench_die("the broker nacked publish %" PRIu64,
                      ((amqp_basic_nack_t *)f.payload.method.decoded)->delivery_tag);
        } else if (f.payload.method.id == AMQP_CHANNEL_CLOSE_METHOD ||
                   f.payload.method.id == AMQP_CONNECTION_CLOSE_METHOD) {
            bench_die("the broker closed the publisher channel (does the exchange exist?)");
        }
    }
    amqp_maybe_release_buffers(mv->out);
    return true;
}

/* Reads what the consumer connection has (a delivery: published at once); false when idle. */
static bool read_in(mover *mv, mode md, amqp_bytes_t *exchanges, int n_ex, amqp_bytes_t rk,
                    const char *route)
{
    amqp_frame_t f;
    struct timeval tv = {0, 0};
    int rc = amqp_simple_wait_frame_noblock(mv->in, &f, &tv);
    if (rc == AMQP_STATUS_TIMEOUT)
        return false;
    if (rc != AMQP_STATUS_OK)
        bench_die("consumer connection: %s", amqp_error_string2(rc));
    if (f.frame_type != AMQP_FRAME_METHOD || f.payload.method.id != AMQP_BASIC_DELIVER_METHOD) {
        if (f.frame_type == AMQP_FRAME_METHOD &&
            (f.payload.method.id == AMQP_CHANNEL_CLOSE_METHOD ||
             f.payload.method.id == AMQP_CONNECTION_CLOSE_METHOD))
            bench_die("the broker closed the consumer channel");
        return true;
    }
    uint64_t tag = ((amqp_basic_deliver_t *)f.payload.method.decoded)->delivery_tag;
    amqp_message_t m;
    amqp_rpc_reply_t r = amqp_read_message(mv->in, f.channel, &m, 0);
    if (r.reply_type != AMQP_RESPONSE_NORMAL)
        bench_die("reading a delivery failed");
    copy c;
    make_copy(md, &m, route, &c);
    for (int i = 0; i < n_ex; i++) {
        if (amqp_basic_publish(mv->out, CH, exchanges[i], rk, 0, 0, &c.props, m.body) !=
            AMQP_STATUS_OK)
            bench_die("basic.publish failed");
        mv->next_seq++;
    }
    if (mv->n == mv->cap)
        bench_die("more deliveries in flight than the prefetch allows");
    mv->ring[(mv->head + mv->n) % mv->cap] = (pending){tag, mv->next_seq - 1};
    mv->n++;
    mv->moved++;
    amqp_destroy_message(&m);
    amqp_maybe_release_buffers(mv->in);
    return true;
}

static int cmd_move(const char *url, const char *queue, int prefetch, mode md, char *exchange_list,
                    const char *routing_key)
{
    amqp_bytes_t ex[MAX_EXCHANGE];
    int n_ex = 0;
    for (char *save = NULL, *t = strtok_r(exchange_list, ",", &save); t;
         t = strtok_r(NULL, ",", &save)) {
        if (n_ex == MAX_EXCHANGE)
            bench_die("at most %d exchanges", MAX_EXCHANGE);
        ex[n_ex++] = amqp_cstring_bytes(t);
    }
    if (!n_ex)
        bench_die("no exchange given");
    if (getrandom(g_rng, sizeof g_rng, 0) != (ssize_t)sizeof g_rng)
        g_rng[0] = (uint64_t)time(NULL), g_rng[1] = 0x9e3779b97f4a7c15u;

    mover mv = {.cap = (size_t)prefetch + 1};
    mv.ring = gw_xcalloc(mv.cap, sizeof *mv.ring);
    mv.cap2 = (size_t)prefetch * (size_t)n_ex * 2 + 2;
    mv.single = gw_xcalloc(mv.cap2, sizeof *mv.single);
    mv.in = bench_open(url, "bench_mover consumer");
    mv.out = bench_open(url, "bench_mover publisher");
    amqp_confirm_select(mv.out, CH);
    bench_check_rpc(mv.out, "confirm.select");
    amqp_basic_qos(mv.in, CH, 0, (uint16_t)prefetch, 0);
    bench_check_rpc(mv.in, "basic.qos");
    amqp_basic_consume(mv.in, CH, amqp_cstring_bytes(queue), amqp_empty_bytes, 0, 0, 0,
                       amqp_empty_table);
    bench_check_rpc(mv.in, "basic.consume");

    struct sigaction sa = {.sa_handler = on_signal};
    sigaction(SIGTERM, &sa, NULL);
    sigaction(SIGINT, &sa, NULL);
    amqp_bytes_t rk = amqp_cstring_bytes(routing_key);
    while (!g_stop) {
        bool busy = false;
        for (int i = 0; i < 256 && read_out(&mv); i++)
            busy = true;
        for (int i = 0; i < 256 && read_in(&mv, md, ex, n_ex, rk, routing_key); i++)
            busy = true;
        if (busy)
            continue;
        struct pollfd p[2] = {{.fd = amqp_get_sockfd(mv.in), .events = POLLIN},
                              {.fd = amqp_get_sockfd(mv.out), .events = POLLIN}};
        if (poll(p, 2, 100) < 0 && errno != EINTR)
            bench_die("poll: %s", strerror(errno));
    }
    /* as amqp-gw does on SIGTERM: what was moved is acked once confirmed (for 10 s at most),
     * so the source queue ends empty rather than with redeliveries */
    for (time_t give_up = time(NULL) + 10; mv.n && time(NULL) < give_up;) {
        if (!read_out(&mv)) {
            struct pollfd p = {.fd = amqp_get_sockfd(mv.out), .events = POLLIN};
            poll(&p, 1, 100);
        }
    }
    printf("mover moved=%" PRIu64 " acked=%" PRIu64 "\n", mv.moved, mv.acked);
    fflush(stdout);
    amqp_connection_close(mv.in, AMQP_REPLY_SUCCESS);
    amqp_connection_close(mv.out, AMQP_REPLY_SUCCESS);
    amqp_destroy_connection(mv.in);
    amqp_destroy_connection(mv.out);
    free(mv.ring);
    free(mv.single);
    return 0;
}

int main(int argc, char **argv)
{
    bench_prog = "bench_mover";
    if (argc != 7) {
        fprintf(stderr,
                "usage: %s URL SRC_QUEUE PREFETCH plain|ids|headers EXCHANGE[,EXCHANGE...] "
                "ROUTING_KEY\n",
                bench_prog);
        return 2;
    }
    char *end;
    long prefetch = strtol(argv[3], &end, 10);
    if (*end || prefetch < 1 || prefetch > 65535) {
        fprintf(stderr, "%s: PREFETCH must be an integer in 1..65535, not \"%s\"\n", bench_prog,
                argv[3]);
        return 2;
    }
    mode md;
    if (strcmp(argv[4], "plain") == 0)
        md = MODE_PLAIN;
    else if (strcmp(argv[4], "ids") == 0)
        md = MODE_IDS;
    else if (strcmp(argv[4], "headers") == 0)
        md = MODE_HEADERS;
    else {
        fprintf(stderr, "%s: MODE must be plain, ids or headers, not \"%s\"\n", bench_prog,
                argv[4]);
        return 2;
    }
    return cmd_move(argv[1], argv[2], (int)prefetch, md, argv[5], argv[6]);
}
