/* bench_load.c — the fast client side of bench/forward: preload and latency probe.
 *
 * Two jobs the Python driver is too slow for:
 *   bench_load preload URL QUEUE COUNT SIZE [STYLE]
 *       publishes COUNT persistent events of SIZE bytes (a JSON body with "type" and "id") to
 *       QUEUE through the default exchange, with publisher confirms pipelined (a window of
 *       unconfirmed publishes rather than a wait per message), and returns once the broker has
 *       confirmed every one. STYLE says what else an event carries: `typed` (the default: type
 *       property bench.event, content_type application/json), `ids` (typed, plus a message_id
 *       and a correlation_id, UUID-shaped: a well-behaved producer) or `cloudevents` (no type
 *       property, content_type application/cloudevents+json: an id-less structured CloudEvent
 *       whose type and id are in the body). Prints one line: `preload count=N seconds=S
 *       rate=R`.
 *   bench_load latency URL SRC_QUEUE DST_QUEUE RATE SECONDS SIZE
 *       a consumer thread on DST_QUEUE (its own connection, auto-ack) and a publisher that sends
 *       RATE persistent events a second for SECONDS seconds to SRC_QUEUE, each stamped with
 *       header x-bench-sent-ns (CLOCK_MONOTONIC, shared by both threads of this process). Before
 *       the timed load it sends probes until one arrives, so a shovel or gateway still starting
 *       does not count. Prints one line: `latency sent=N received=M p50_ms=.. p90_ms=.. p99_ms=..
 *       p999_ms=.. max_ms=.. mean_ms=..`.
 * The queues must exist. Errors print one line on stderr and exit 1; usage errors exit 2.
 * Heartbeats are off: both jobs are short and keep their sockets busy.
 */
#include "alloc.h"
#include "common/benchamqp.h"

#include <amqp.h>

#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define LOAD_CONFIRM_WINDOW 4000
#define LOAD_STALL_SECONDS  60
#define LOAD_PROBE_SECONDS  60
#define LOAD_DRAIN_SECONDS  30

static int64_t now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

static void sleep_until_ns(int64_t t)
{
    struct timespec ts = {.tv_sec = t / 1000000000, .tv_nsec = t % 1000000000};
    while (clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &ts, NULL) == EINTR)
        ;
}

static long parse_long(const char *s, const char *what, long lo, long hi)
{
    char *end;
    errno = 0;
    long v = strtol(s, &end, 10);
    if (errno || end == s || *end || v < lo || v > hi) {
        fprintf(stderr, "%s: %s must be an integer in %ld..%ld, not \"%s\"\n", bench_prog, what, lo,
                hi, s);
        exit(2);
    }
    return v;
}

/* A JSON-ish event body of exactly size bytes: {"type":"bench.event","id":N,"data":"xx..."}. */
static char *make_body(size_t size)
{
    static const char head[] = "{\"type\":\"bench.event\",\"id\":\"00000000\",\"data\":\"";
    static const char tail[] = "\"}";
    size_t fixed = sizeof head - 1 + sizeof tail - 1;
    if (size < fixed)
        bench_die("body size %zu is below the %zu bytes of the event envelope", size, fixed);
    char *b = gw_xmalloc(size + 1);
    memcpy(b, head, sizeof head - 1);
    memset(b + sizeof head - 1, 'x', size - fixed);
    memcpy(b + size - (sizeof tail - 1), tail, sizeof tail - 1);
    b[size] = '\0';
    return b;
}

/* Writes the 8-digit id into a body made by make_body. */
static void body_set_id(char *body, uint64_t id)
{
    char digits[16];
    snprintf(digits, sizeof digits, "%08" PRIu64, id % 100000000u);
    memcpy(body + strlen("{\"type\":\"bench.event\",\"id\":\""), digits, 8);
}

static amqp_basic_properties_t event_props(amqp_table_t *headers)
{
    amqp_basic_properties_t p;
    memset(&p, 0, sizeof p);
    p._flags = AMQP_BASIC_DELIVERY_MODE_FLAG | AMQP_BASIC_TYPE_FLAG | AMQP_BASIC_CONTENT_TYPE_FLAG;
    p.delivery_mode = AMQP_DELIVERY_PERSISTENT;
    p.type = amqp_cstring_bytes("bench.event");
    p.content_type = amqp_cstring_bytes("application/json");
    if (headers) {
        p._flags |= AMQP_BASIC_HEADERS_FLAG;
        p.headers = *headers;
    }
    return p;
}

/* ---------------------------------------------------------------- preload */

typedef struct confirm_state {
    bool *acked; /* by delivery tag, 1..count */
    uint64_t count;
    uint64_t low; /* every tag <= low is confirmed */
} confirm_state;

static void confirm_mark(confirm_state *cs, uint64_t tag, bool multiple)
{
    if (tag > cs->count)
        bench_die("broker confirmed delivery tag %" PRIu64 " but only %" PRIu64 " were published",
                  tag, cs->count);
    if (multiple) {
        for (uint64_t t = cs->low + 1; t <= tag; t++)
            cs->acked[t] = true;
    } else {
        cs->acked[tag] = true;
    }
    while (cs->low < cs->count && cs->acked[cs->low + 1])
        cs->low++;
}

/* Reads one frame (waiting up to timeout_ms, 0 = poll) and applies confirms; false on timeout. */
static bool read_confirm(amqp_connection_state_t c, confirm_state *cs, int timeout_ms)
{
    amqp_frame_t f;
    struct timeval tv = {.tv_sec = timeout_ms / 1000, .tv_usec = (timeout_ms % 1000) * 1000};
    int rc = amqp_simple_wait_frame_noblock(c, &f, &tv);
    if (rc == AMQP_STATUS_TIMEOUT)
        return false;
    if (rc != AMQP_STATUS_OK)
        bench_die("reading confirms: %s", amqp_error_string2(rc));
    if (f.frame_type != AMQP_FRAME_METHOD)
        return true;
    switch (f.payload.method.id) {
    case AMQP_BASIC_ACK_METHOD: {
        amqp_basic_ack_t *a = f.payload.method.decoded;
        confirm_mark(cs, a->delivery_tag, a->multiple);
        break;
    }
    case AMQP_BASIC_NACK_METHOD: {
        amqp_basic_nack_t *n = f.payload.method.decoded;
        bench_die("broker nacked publish %" PRIu64 " (disk or memory alarm?)", n->delivery_tag);
    }
    case AMQP_CHANNEL_CLOSE_METHOD: {
        amqp_channel_close_t *cc = f.payload.method.decoded;
        bench_die("channel closed by broker: %u %.*s", cc->reply_code, (int)cc->reply_text.len,
                  (const char *)cc->reply_text.bytes);
    }
    case AMQP_CONNECTION_CLOSE_METHOD: {
        amqp_connection_close_t *cc = f.payload.method.decoded;
        bench_die("connection closed by broker: %u %.*s", cc->reply_code, (int)cc->reply_text.len,
                  (const char *)cc->reply_text.bytes);
    }
    default:
        break;
    }
    amqp_maybe_release_buffers(c);
    return true;
}

/* What a preloaded event carries besides its body (see the top of the file). */
typedef enum { STYLE_TYPED, STYLE_IDS, STYLE_CLOUDEVENTS } style;

static int cmd_preload(const char *url, const char *queue, uint64_t count, size_t size, style st)
{
    amqp_connection_state_t c = bench_open(url, "bench_load preload");
    amqp_confirm_select(c, BENCH_CHANNEL);
    bench_check_rpc(c, "confirm.select");

    confirm_state cs = {.acked = gw_xcalloc(count + 1, sizeof(bool)), .count = count};
    char *body = make_body(size);
    amqp_basic_properties_t p = event_props(NULL);
    char message_id[40], correlation_id[40];
    if (st == STYLE_IDS)
        p._flags |= AMQP_BASIC_MESSAGE_ID_FLAG | AMQP_BASIC_CORRELATION_ID_FLAG;
    if (st == STYLE_CLOUDEVENTS) {
        p._flags &= (amqp_flags_t)~AMQP_BASIC_TYPE_FLAG;
        p.content_type = amqp_cstring_bytes("application/cloudevents+json");
    }
    amqp_bytes_t q = amqp_cstring_bytes(queue);
    int64_t t0 = now_ns();

    for (uint64_t i = 1; i <= count; i++) {
        int64_t waited_from = now_ns();
        while (i - 1 - cs.low >= LOAD_CONFIRM_WINDOW) {
            if (!read_confirm(c, &cs, 1000) &&
                now_ns() - waited_from > (int64_t)LOAD_STALL_SECONDS * 1000000000)
                bench_die("no confirm for %d s after %" PRIu64 " of %" PRIu64 " publishes",
                          LOAD_STALL_SECONDS, i - 1, count);
        }
        body_set_id(body, i);
        if (st == STYLE_IDS) {
            snprintf(message_id, sizeof message_id, "00000000-0000-4000-8000-%012" PRIu64, i);
            snprintf(correlation_id, sizeof correlation_id, "00000000-0000-4000-9000-%012" PRIu64,
                     i);
            p.message_id = amqp_cstring_bytes(message_id);
            p.correlation_id = amqp_cstring_bytes(correlation_id);
        }
        int rc = amqp_basic_publish(c, BENCH_CHANNEL, amqp_empty_bytes, q, 0, 0, &p,
                                    (amqp_bytes_t){.len = size, .bytes = body});
        if (rc != AMQP_STATUS_OK)
            bench_die("publish %" PRIu64 " to queue \"%s\": %s", i, queue, amqp_error_string2(rc));
        while (read_confirm(c, &cs, 0))
            ;
    }
    int64_t waited_from = now_ns();
    while (cs.low < count) {
        if (!read_confirm(c, &cs, 1000) &&
            now_ns() - waited_from > (int64_t)LOAD_STALL_SECONDS * 1000000000)
            bench_die("only %" PRIu64 " of %" PRIu64 " publishes confirmed after %d s", cs.low,
                      count, LOAD_STALL_SECONDS);
    }
    double s = (double)(now_ns() - t0) / 1e9;
    printf("preload count=%" PRIu64 " seconds=%.3f rate=%.0f\n", count, s, (double)count / s);
    free(body);
    free(cs.acked);
    bench_close(c);
    return 0;
}

/* ---------------------------------------------------------------- latency */

typedef struct lat_consumer {
    const char *url;
    const char *queue;
    uint64_t expect; /* timed messages to wait for */
    int64_t *lat_ns; /* one per timed message received */
    uint64_t received;
    atomic_bool ready;      /* consuming */
    atomic_bool probe_seen; /* a probe came through: the path is up */
    atomic_bool publishing_done;
    atomic_llong last_sent_ns;
    uint64_t strays; /* messages without our stamp */
} lat_consumer;

static bool header_i64(const amqp_table_t *t, const char *key, int64_t *out)
{
    size_t klen = strlen(key);
    for (int i = 0; i < t->num_entries; i++) {
        const amqp_table_entry_t *e = &t->entries[i];
        if (e->key.len != klen || memcmp(e->key.bytes, key, klen) != 0)
            continue;
        switch (e->value.kind) {
        case AMQP_FIELD_KIND_I64:
            *out = e->value.value.i64;
            return true;
        case AMQP_FIELD_KIND_U64:
            *out = (int64_t)e->value.value.u64;
            return true;
        case AMQP_FIELD_KIND_I32:
            *out = e->value.value.i32;
            return true;
        default:
            return false;
        }
    }
    return false;
}

static void *consumer_main(void *arg)
{
    lat_consumer *lc = arg;
    amqp_connection_state_t c = bench_open(lc->url, "bench_load latency consumer");
    amqp_basic_consume(c, BENCH_CHANNEL, amqp_cstring_bytes(lc->queue), amqp_empty_bytes, 0, 1, 0,
                       amqp_empty_table);
    bench_check_rpc(c, "basic.consume");
    atomic_store(&lc->ready, true);

    while (lc->received < lc->expect) {
        if (atomic_load(&lc->publishing_done) &&
            now_ns() - atomic_load(&lc->last_sent_ns) > (int64_t)LOAD_DRAIN_SECONDS * 1000000000)
            break;
        amqp_envelope_t env;
        struct timeval tv = {.tv_sec = 0, .tv_usec = 200000};
        amqp_maybe_release_buffers(c);
        amqp_rpc_reply_t r = amqp_consume_message(c, &env, &tv, 0);
        int64_t t = now_ns();
        if (r.reply_type == AMQP_RESPONSE_LIBRARY_EXCEPTION &&
            r.library_error == AMQP_STATUS_TIMEOUT)
            continue;
        if (r.reply_type != AMQP_RESPONSE_NORMAL) {
            char buf[512];
            bench_die("consuming from \"%s\": %s", lc->queue, bench_reply_text(r, buf, sizeof buf));
        }
        const amqp_basic_properties_t *p = &env.message.properties;
        int64_t sent, probe;
        if (!(p->_flags & AMQP_BASIC_HEADERS_FLAG)) {
            lc->strays++;
        } else if (header_i64(&p->headers, "x-bench-probe", &probe)) {
            atomic_store(&lc->probe_seen, true);
        } else if (header_i64(&p->headers, "x-bench-sent-ns", &sent)) {
            lc->lat_ns[lc->received++] = t - sent;
        } else {
            lc->strays++;
        }
        amqp_destroy_envelope(&env);
    }
    bench_close(c);
    return NULL;
}

static int cmp_i64(const void *a, const void *b)
{
    int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
    return (x > y) - (x < y);
}

static double pct_ms(const int64_t *v, uint64_t n, double pct)
{
    if (!n)
        return 0.0;
    uint64_t i = (uint64_t)(pct / 100.0 * (double)(n - 1) + 0.5);
    return (double)v[i] / 1e6;
}

static int cmd_latency(const char *url, const char *src, const char *dst, long rate, long seconds,
                       size_t size)
{
    uint64_t total = (uint64_t)rate * (uint64_t)seconds;
    lat_consumer lc = {
        .url = url, .queue = dst, .expect = total, .lat_ns = gw_xcalloc(total, sizeof(int64_t))};
    pthread_t th;
    if (pthread_create(&th, NULL, consumer_main, &lc) != 0)
        bench_die("cannot start the consumer thread");
    amqp_connection_state_t c = bench_open(url, "bench_load latency publisher");
    int64_t deadline = now_ns() + 30LL * 1000000000;
    while (!atomic_load(&lc.ready)) {
        if (now_ns() > deadline)
            bench_die("the consumer on \"%s\" did not start within 30 s", dst);
        sleep_until_ns(now_ns() + 5000000);
    }

    char *body = make_body(size);
    amqp_bytes_t q = amqp_cstring_bytes(src);
    amqp_table_entry_t h[2];
    h[0].key = amqp_cstring_bytes("x-bench-probe");
    h[0].value.kind = AMQP_FIELD_KIND_I64;
    h[0].value.value.i64 = 1;
    amqp_table_t probe_headers = {.num_entries = 1, .entries = h};
    amqp_basic_properties_t pp = event_props(&probe_headers);

    /* Probes until the path (gateway consuming, shovel started) carries messages. */
    deadline = now_ns() + (int64_t)LOAD_PROBE_SECONDS * 1000000000;
    while (!atomic_load(&lc.probe_seen)) {
        if (now_ns() > deadline)
            bench_die("no probe reached \"%s\" from \"%s\" within %d s: is the gateway or shovel "
                      "running?",
                      dst, src, LOAD_PROBE_SECONDS);
        int rc = amqp_basic_publish(c, BENCH_CHANNEL, amqp_empty_bytes, q, 0, 0, &pp,
                                    (amqp_bytes_t){.len = size, .bytes = body});
        if (rc != AMQP_STATUS_OK)
            bench_die("probe publish to \"%s\": %s", src, amqp_error_string2(rc));
        sleep_until_ns(now_ns() + 100000000);
    }
    sleep_until_ns(now_ns() + 200000000); /* let straggling probes drain */

    amqp_table_entry_t *sent = &h[1];
    sent->key = amqp_cstring_bytes("x-bench-sent-ns");
    sent->value.kind = AMQP_FIELD_KIND_I64;
    amqp_table_t stamp_headers = {.num_entries = 1, .entries = sent};
    amqp_basic_properties_t p = event_props(&stamp_headers);
    int64_t period_ns = 1000000000LL / rate;
    int64_t t0 = now_ns();
    int64_t max_behind = 0;
    for (uint64_t i = 0; i < total; i++) {
        int64_t due = t0 + (int64_t)i * period_ns;
        int64_t t = now_ns();
        if (t < due)
            sleep_until_ns(due);
        else if (t - due > max_behind)
            max_behind = t - due;
        body_set_id(body, i + 1);
        sent->value.value.i64 = now_ns();
        int rc = amqp_basic_publish(c, BENCH_CHANNEL, amqp_empty_bytes, q, 0, 0, &p,
                                    (amqp_bytes_t){.len = size, .bytes = body});
        if (rc != AMQP_STATUS_OK)
            bench_die("publish %" PRIu64 " to \"%s\": %s", i + 1, src, amqp_error_string2(rc));
        atomic_store(&lc.last_sent_ns, (long long)now_ns());
    }
    double pub_s = (double)(now_ns() - t0) / 1e9;
    atomic_store(&lc.publishing_done, true);
    pthread_join(th, NULL);
    bench_close(c);

    qsort(lc.lat_ns, lc.received, sizeof(int64_t), cmp_i64);
    double sum = 0;
    for (uint64_t i = 0; i < lc.received; i++)
        sum += (double)lc.lat_ns[i];
    printf("latency sent=%" PRIu64 " received=%" PRIu64 " offered_rate=%.0f p50_ms=%.3f "
           "p90_ms=%.3f p99_ms=%.3f p999_ms=%.3f max_ms=%.3f mean_ms=%.3f publisher_lag_ms=%.3f "
           "strays=%" PRIu64 "\n",
           total, lc.received, (double)total / pub_s, pct_ms(lc.lat_ns, lc.received, 50),
           pct_ms(lc.lat_ns, lc.received, 90), pct_ms(lc.lat_ns, lc.received, 99),
           pct_ms(lc.lat_ns, lc.received, 99.9), pct_ms(lc.lat_ns, lc.received, 100),
           lc.received ? sum / (double)lc.received / 1e6 : 0.0, (double)max_behind / 1e6,
           lc.strays);
    free(body);
    free(lc.lat_ns);
    return lc.received == total ? 0 : 1;
}

static void usage(void)
{
    fprintf(stderr,
            "usage: %s preload URL QUEUE COUNT SIZE [typed|ids|cloudevents]\n"
            "       %s latency URL SRC_QUEUE DST_QUEUE RATE SECONDS SIZE\n",
            bench_prog, bench_prog);
    exit(2);
}

int main(int argc, char **argv)
{
    bench_prog = "bench_load";
    if (argc < 2)
        usage();
    if (strcmp(argv[1], "preload") == 0 && (argc == 6 || argc == 7)) {
        uint64_t count = (uint64_t)parse_long(argv[4], "COUNT", 1, 50000000);
        size_t size = (size_t)parse_long(argv[5], "SIZE", 64, 64 * 1024 * 1024);
        static const char *const styles[] = {"typed", "ids", "cloudevents"};
        for (int i = 0; i < 3; i++)
            if (argc == 6 || strcmp(argv[6], styles[i]) == 0)
                return cmd_preload(argv[2], argv[3], count, size, (style)(argc == 6 ? 0 : i));
        fprintf(stderr, "%s: STYLE must be typed, ids or cloudevents, not \"%s\"\n", bench_prog,
                argv[6]);
        return 2;
    }
    if (strcmp(argv[1], "latency") == 0 && argc == 8) {
        long rate = parse_long(argv[5], "RATE", 1, 1000000);
        long seconds = parse_long(argv[6], "SECONDS", 1, 3600);
        size_t size = (size_t)parse_long(argv[7], "SIZE", 64, 64 * 1024 * 1024);
        return cmd_latency(argv[2], argv[3], argv[4], rate, seconds, size);
    }
    usage();
}
