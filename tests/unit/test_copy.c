/* test_copy.c — what each copy of an event carries (copy.c): headers and properties of
 * forwarded, parked, dead-letter and replayed copies, and how a copy keeps to the frame. */
#include "copy.h"

#include "delivery.h"
#include "headers.h"
#include "str.h"

#include <criterion/criterion.h>

#include <stdio.h>
#include <string.h>

#define FRAME 131072
/* What session.c counts for a message with no property but the fixed part. */
#define OTHER_BYTES (GW_HEADERS_CONTENT_FIXED + 10)

/* An event as session.c would describe it: its own headers and properties. */
typedef struct event {
    gw_delivery_entry h[64];
    gw_delivery ev;
} event;

/* Each test's event, what the gateway knows of it, and its copy (cleaned up after the test). */
static event e;
static gw_copy_meta m;
static gw_copy c;

static gw_event_ids ids = {
    .correlation_id = "c-1", .correlation_id_len = 3, .message_id = "m-1", .message_id_len = 3};

static char big[200000];

static void event_init(void)
{
    memset(&e, 0, sizeof e);
    e.ev.other_bytes = OTHER_BYTES;
    e.ev.headers = e.h;
}

static void setup(void)
{
    memset(big, 'x', sizeof big);
    event_init();
    m = (gw_copy_meta){.ids = &ids,
                       .type = "order.created",
                       .route = "order.*",
                       .retry_count = 2,
                       .first_seen_ms = 1700000000000ULL,
                       .from_tier = false,
                       .expiration = GW_STR_NULL};
    memset(&c, 0, sizeof c);
}

static void teardown(void)
{
    gw_copy_cleanup(&c);
}

TestSuite(copy, .init = setup, .fini = teardown);

/* A header of the event, as session.c measures it: an entry of the table and, the first
 * time its key is seen, the view's slot for it. */
static void add_entry(const char *key, char kind, gw_str v)
{
    gw_str k = gw_str_from_cstr(key);
    gw_delivery_header slot = gw_delivery_header_find(k);
    e.h[e.ev.n_headers++] =
        (gw_delivery_entry){.key = k,
                            .bytes = gw_headers_entry_size(k.len, kind, kind == 'S' ? v.len : 0),
                            .str = v,
                            .slot = slot};
    if (slot != GW_DH_COUNT && !e.ev.h[slot].present)
        e.ev.h[slot] = (gw_header_value){.present = true, .str = v, .has_int = kind == 'l'};
}

static void add_str(const char *key, gw_str v)
{
    add_entry(key, 'S', v);
}

static void add_text(const char *key, const char *v)
{
    add_str(key, gw_str_from_cstr(v));
}

/* A string header of n bytes. */
static void add_pad(const char *key, size_t n)
{
    add_str(key, (gw_str){big, n});
}

static void add_long(const char *key)
{
    add_entry(key, 'l', GW_STR_NULL);
}

/* The copy's own header key, or NULL. */
static const gw_hdr *hdr(const char *key)
{
    for (size_t i = 0; i < c.n_hdrs; i++)
        if (strcmp(c.hdrs[i].key, key) == 0)
            return &c.hdrs[i];
    return NULL;
}

/* Whether the copy leaves the event's header i out. */
static bool dropped(size_t i)
{
    return c.drop && c.drop[i];
}

/* How often key appears in the encoded copy: the event's kept headers plus the copy's. */
static int occurrences(const char *key)
{
    int n = hdr(key) ? 1 : 0;
    for (size_t i = 0; i < e.ev.n_headers; i++)
        if (!dropped(i) && gw_str_eq_cstr(e.h[i].key, key))
            n++;
    return n;
}

static void assert_str(gw_str s, const char *want)
{
    cr_assert_not_null(s.ptr, "want \"%s\", got none", want);
    cr_assert_eq(s.len, strlen(want), "want \"%s\", got \"%.*s\"", want, (int)s.len, s.ptr);
    cr_assert_eq(memcmp(s.ptr, want, s.len), 0, "want \"%s\", got \"%.*s\"", want, (int)s.len,
                 s.ptr);
}

static void assert_hdr_str(const char *key, const char *want)
{
    const gw_hdr *h = hdr(key);
    cr_assert_not_null(h, "no header %s", key);
    cr_assert_eq(h->kind, 's', "%s", key);
    assert_str(h->s, want);
}

static void assert_hdr_int(const char *key, int64_t want)
{
    const gw_hdr *h = hdr(key);
    cr_assert_not_null(h, "no header %s", key);
    cr_assert_eq(h->kind, 'l', "%s", key);
    cr_assert_eq(h->i, want, "%s: %lld", key, (long long)h->i);
}

/* --- forwarded copies --- */

Test(copy, forward_sets_ids_type_and_the_forwarding_headers)
{
    gw_copy_forward(&e.ev, &m, GW_FORWARD_FULL, &c);
    assert_str(c.correlation_id, "c-1");
    assert_str(c.message_id, "m-1");
    assert_str(c.type, "order.created");
    cr_assert_null(c.expiration.ptr);
    cr_assert_not(c.persistent);
    cr_assert_eq(c.n_hdrs, 4);
    cr_assert_str_eq(c.hdrs[0].key, GW_H_CORRELATION_ID);
    assert_hdr_str(GW_H_CORRELATION_ID, "c-1");
    assert_hdr_str(GW_H_ROUTE, "order.*");
    assert_hdr_int(GW_H_RETRY_COUNT, 2);
    assert_hdr_int(GW_H_FIRST_SEEN_AT, 1700000000000LL);
    cr_assert_null(c.drop);
}

Test(copy, size_is_the_encoded_content_header)
{
    m.type = "t.x";
    m.route = "t.*";
    gw_copy_forward(&e.ev, &m, GW_FORWARD_FULL, &c);
    size_t props = (1 + 3) + (1 + 3) + (1 + 3); /* correlation_id, message_id, type */
    size_t table = 4 + (1 + 16 + 1 + 4 + 3)     /* x-correlation-id */
                   + (1 + 10 + 1 + 4 + 3)       /* x-gw-route */
                   + (1 + 16 + 1 + 8)           /* x-gw-retry-count */
                   + (1 + 18 + 1 + 8);          /* x-gw-first-seen-at */
    cr_assert_eq(c.bytes, OTHER_BYTES + props + table, "bytes %zu", c.bytes);
    cr_assert(gw_copy_fits(&c, c.bytes + GW_HEADERS_FRAME_OVERHEAD));
    cr_assert_not(gw_copy_fits(&c, c.bytes + GW_HEADERS_FRAME_OVERHEAD - 1));
}

Test(copy, forward_keeps_the_events_own_type_and_expiration_properties)
{
    e.ev.type = gw_str_from_cstr("producer.type");
    e.ev.expiration = gw_str_from_cstr("60000");
    m.from_tier = true;
    m.expiration = gw_str_from_cstr("5000");
    gw_copy_forward(&e.ev, &m, GW_FORWARD_FULL, &c);
    cr_assert_null(c.type.ptr);
    cr_assert_null(c.expiration.ptr);
}

Test(copy, forward_from_a_tier_restores_the_ttl_the_tier_removed)
{
    m.from_tier = true;
    m.expiration = gw_str_from_cstr("5000");
    gw_copy_forward(&e.ev, &m, GW_FORWARD_FULL, &c);
    assert_str(c.expiration, "5000");
    gw_copy_cleanup(&c);
    m.from_tier = false; /* a new event's expiration is never the gateway's to set */
    gw_copy_forward(&e.ev, &m, GW_FORWARD_FULL, &c);
    cr_assert_null(c.expiration.ptr);
}

Test(copy, forward_replaces_a_producers_gateway_headers_instead_of_duplicating_them)
{
    add_text("app", "kept");
    add_text(GW_H_CORRELATION_ID, "forged");
    add_long(GW_H_RETRY_COUNT);
    add_text(GW_H_ROUTE, "forged.*");
    add_long(GW_H_FIRST_SEEN_AT);
    add_text(GW_H_LAST_ERROR, "fake error");
    add_text(GW_H_RETRY_DESTINATION, "elsewhere");
    add_text(GW_H_RETRY_ROUTING_KEY, "rk");
    add_text(GW_H_DEAD_LETTER_REASON, "no_route");
    add_text(GW_H_ORIGINAL_EXCHANGE, "x");
    add_text(GW_H_ORIGINAL_ROUTING_KEY, "rk");
    add_long(GW_H_DEAD_LETTERED_AT);
    add_long(GW_H_REPLAY_COUNT);
    gw_copy_forward(&e.ev, &m, GW_FORWARD_FULL, &c);
    cr_assert_not(dropped(0), "the event's own header is kept");
    for (size_t i = 1; i < 12; i++)
        cr_assert(dropped(i), "%.*s kept", (int)e.h[i].key.len, e.h[i].key.ptr);
    cr_assert_not(dropped(12), "x-gw-replay-count is kept: replay's guard counts on it");
    const char *keys[] = {GW_H_CORRELATION_ID, GW_H_RETRY_COUNT, GW_H_ROUTE, GW_H_FIRST_SEEN_AT};
    for (size_t i = 0; i < sizeof keys / sizeof keys[0]; i++)
        cr_assert_eq(occurrences(keys[i]), 1, "%s", keys[i]);
    assert_hdr_str(GW_H_ROUTE, "order.*");
    cr_assert_eq(occurrences(GW_H_LAST_ERROR), 0, "a new event has no last error");
}

Test(copy, forward_from_a_tier_keeps_its_last_error_and_drops_the_retry_address)
{
    add_text(GW_H_LAST_ERROR, "publish failed");
    add_text(GW_H_RETRY_DESTINATION, "orders");
    add_text(GW_H_RETRY_ROUTING_KEY, "order.created");
    m.from_tier = true;
    gw_copy_forward(&e.ev, &m, GW_FORWARD_FULL, &c);
    cr_assert_not(dropped(0));
    cr_assert(dropped(1));
    cr_assert(dropped(2));
}

Test(copy, forward_without_a_route_sets_no_route_header)
{
    add_text(GW_H_ROUTE, "from.before.*");
    m.route = NULL;
    gw_copy_forward(&e.ev, &m, GW_FORWARD_FULL, &c);
    cr_assert_eq(c.n_hdrs, 3);
    cr_assert_null(hdr(GW_H_ROUTE));
    cr_assert_eq(occurrences(GW_H_ROUTE), 1, "the event's own is left as it is");
}

Test(copy, a_lean_first_copy_sets_the_ids_and_type_and_no_header)
{
    add_text("app", "kept");
    gw_copy_forward(&e.ev, &m, GW_FORWARD_LEAN, &c);
    assert_str(c.correlation_id, "c-1");
    assert_str(c.message_id, "m-1");
    assert_str(c.type, "order.created");
    cr_assert_eq(c.n_hdrs, 0);
    cr_assert_null(c.drop, "the event's header table goes out as it came");
    size_t props = (1 + 3) + (1 + 3) + (1 + 13);
    cr_assert_eq(c.bytes, OTHER_BYTES + props + 4 + e.h[0].bytes, "bytes %zu", c.bytes);
}

Test(copy, a_lean_first_copy_of_an_event_without_headers_has_no_header_table)
{
    gw_copy_forward(&e.ev, &m, GW_FORWARD_LEAN, &c);
    cr_assert_eq(c.n_hdrs, 0);
    cr_assert_eq(c.bytes, OTHER_BYTES + (1 + 3) + (1 + 3) + (1 + 13), "bytes %zu", c.bytes);
}

Test(copy, a_lean_first_copy_drops_the_x_gw_headers_a_producer_wrote_but_the_replay_ones)
{
    add_text(GW_H_CORRELATION_ID, "theirs");
    add_long(GW_H_RETRY_COUNT);
    add_text(GW_H_ROUTE, "their.*");
    add_long(GW_H_FIRST_SEEN_AT);
    add_text(GW_H_LAST_ERROR, "stale");
    add_text(GW_H_DEAD_LETTER_REASON, "no_route");
    add_text(GW_H_RETRY_DESTINATION, "elsewhere");
    add_long(GW_H_REPLAY_COUNT);
    gw_copy_forward(&e.ev, &m, GW_FORWARD_LEAN, &c);
    cr_assert_eq(c.n_hdrs, 0);
    cr_assert_not(dropped(0), "x-correlation-id is the event's own: kept");
    for (size_t i = 1; i < 7; i++)
        cr_assert(dropped(i), "%.*s kept", (int)e.h[i].key.len, e.h[i].key.ptr);
    cr_assert_not(dropped(7), "x-gw-replay-count is kept: replay's guard counts on it");
}

Test(copy, a_retry_carries_the_forwarding_headers_whatever_the_mode)
{
    m.from_tier = true;
    gw_copy_forward(&e.ev, &m, GW_FORWARD_LEAN, &c);
    cr_assert_eq(c.n_hdrs, 4);
    assert_hdr_int(GW_H_RETRY_COUNT, 2);
    assert_hdr_str(GW_H_ROUTE, "order.*");
}

Test(copy, a_replayed_event_is_forwarded_with_the_forwarding_headers_whatever_the_mode)
{
    add_long(GW_H_REPLAYED_AT);
    add_long(GW_H_REPLAY_COUNT);
    add_long(GW_H_RETRY_COUNT);
    m.retry_count = 0;
    gw_copy_forward(&e.ev, &m, GW_FORWARD_LEAN, &c);
    cr_assert_eq(c.n_hdrs, 4);
    assert_hdr_int(GW_H_RETRY_COUNT, 0);
    cr_assert_eq(occurrences(GW_H_RETRY_COUNT), 1);
    cr_assert_not(dropped(0) || dropped(1), "the replay headers stay");
}

/* --- parked copies --- */

Test(copy, park_addresses_the_copy_back_to_its_destination)
{
    m.retry_count = 3;
    cr_assert(gw_copy_park(&e.ev, &m, "orders", "order.created", "exchange returned it", false,
                           FRAME, &c));
    cr_assert(c.persistent);
    assert_str(c.correlation_id, "c-1");
    assert_str(c.message_id, "m-1");
    assert_str(c.type, "order.created");
    cr_assert_eq(c.n_hdrs, 7);
    assert_hdr_int(GW_H_RETRY_COUNT, 3);
    assert_hdr_str(GW_H_RETRY_DESTINATION, "orders");
    assert_hdr_str(GW_H_RETRY_ROUTING_KEY, "order.created");
    assert_hdr_str(GW_H_LAST_ERROR, "exchange returned it");
    cr_assert_str_eq(c.hdrs[c.n_hdrs - 1].key, GW_H_LAST_ERROR);
}

Test(copy, park_replaces_the_headers_of_an_earlier_attempt)
{
    add_long(GW_H_RETRY_COUNT);
    add_text(GW_H_LAST_ERROR, "first failure");
    add_text(GW_H_RETRY_DESTINATION, "orders");
    m.from_tier = true;
    cr_assert(gw_copy_park(&e.ev, &m, "orders", "rk", "second failure", false, FRAME, &c));
    for (size_t i = 0; i < e.ev.n_headers; i++)
        cr_assert(dropped(i));
    assert_hdr_str(GW_H_LAST_ERROR, "second failure");
}

Test(copy, a_deferral_keeps_the_error_the_event_came_back_with)
{
    add_text(GW_H_LAST_ERROR, "404 NOT_FOUND");
    m.from_tier = true;
    cr_assert(gw_copy_park(&e.ev, &m, "orders", "rk", "circuit breaker open", true, FRAME, &c));
    assert_hdr_str(GW_H_LAST_ERROR, "404 NOT_FOUND");
    cr_assert_eq(occurrences(GW_H_LAST_ERROR), 1);
    gw_copy_cleanup(&c);
    /* a producer's x-gw-last-error on a new event is not the gateway's */
    m.from_tier = false;
    cr_assert(gw_copy_park(&e.ev, &m, "orders", "rk", "circuit breaker open", true, FRAME, &c));
    assert_hdr_str(GW_H_LAST_ERROR, "circuit breaker open");
}

Test(copy, carried_error_is_read_only_from_an_event_back_from_a_tier)
{
    add_long(GW_H_LAST_ERROR); /* not a string: none */
    m.from_tier = true;
    cr_assert_null(gw_copy_carried_error(&e.ev, &m).ptr);
    event_init();
    add_text(GW_H_LAST_ERROR, "earlier");
    assert_str(gw_copy_carried_error(&e.ev, &m), "earlier");
    m.from_tier = false;
    cr_assert_null(gw_copy_carried_error(&e.ev, &m).ptr);
}

Test(copy, park_refuses_a_copy_that_leaves_no_room_for_the_brokers_x_death)
{
    /* an empty error: near the limit a longer one would be cut, and the copy shrink */
    cr_assert(gw_copy_park(&e.ev, &m, "orders", "rk", "", false, FRAME, &c));
    size_t need = c.bytes + GW_HEADERS_FRAME_OVERHEAD + GW_COPY_BROKER_RESERVE;
    gw_copy_cleanup(&c);
    /* the same copy with a header of the event that eats the reserve */
    add_pad("pad", 100);
    size_t pad = e.h[0].bytes;
    cr_assert(gw_copy_park(&e.ev, &m, "orders", "rk", "", false, need + pad, &c));
    gw_copy_cleanup(&c);
    cr_assert_not(gw_copy_park(&e.ev, &m, "orders", "rk", "", false, need + pad - 1, &c));
}

Test(copy, park_truncates_the_error_to_the_room_left_beside_the_reserve)
{
    add_pad("pad", 8000);
    char why[2000];
    memset(why, 'e', sizeof why - 1);
    why[sizeof why - 1] = '\0';
    size_t frame = 8000 + 2048 + 500;
    cr_assert(gw_copy_park(&e.ev, &m, "orders", "rk", why, false, frame, &c));
    const gw_hdr *h = hdr(GW_H_LAST_ERROR);
    cr_assert_lt(h->s.len, 500);
    cr_assert_not_null(strstr(c.error, "[truncated "), "%s", c.error);
    cr_assert(gw_copy_fits(&c, frame - GW_COPY_BROKER_RESERVE));
}

/* --- dead-letter copies --- */

Test(copy, dead_letter_carries_the_reason_the_origin_and_the_forwarding_headers)
{
    add_text(GW_H_RETRY_DESTINATION, "orders");
    add_text(GW_H_RETRY_ROUTING_KEY, "order.created");
    add_text("app", "kept");
    m.from_tier = true;
    gw_copy_dead_letter(&e.ev, &m, "unroutable", "orders", "order.created", "no queue bound",
                        1700000005000ULL, FRAME, &c);
    cr_assert(c.persistent);
    assert_str(c.correlation_id, "c-1");
    assert_str(c.message_id, "m-1");
    const char *order[] = {
        GW_H_DEAD_LETTER_REASON, GW_H_ORIGINAL_EXCHANGE, GW_H_ORIGINAL_ROUTING_KEY,
        GW_H_DEAD_LETTERED_AT,   GW_H_CORRELATION_ID,    GW_H_ROUTE,
        GW_H_RETRY_COUNT,        GW_H_FIRST_SEEN_AT,     GW_H_LAST_ERROR};
    cr_assert_eq(c.n_hdrs, 9);
    cr_assert_eq(c.n_wanted, 9);
    for (size_t i = 0; i < 9; i++)
        cr_assert_str_eq(c.hdrs[i].key, order[i]);
    assert_hdr_str(GW_H_DEAD_LETTER_REASON, "unroutable");
    assert_hdr_str(GW_H_ORIGINAL_EXCHANGE, "orders");
    assert_hdr_str(GW_H_ORIGINAL_ROUTING_KEY, "order.created");
    assert_hdr_int(GW_H_DEAD_LETTERED_AT, 1700000005000LL);
    assert_hdr_int(GW_H_RETRY_COUNT, 2);
    assert_hdr_str(GW_H_LAST_ERROR, "no queue bound");
    cr_assert(dropped(0));
    cr_assert(dropped(1));
    cr_assert_not(dropped(2));
    cr_assert_eq(c.shed, 0);
}

Test(copy, dead_letter_sets_the_timestamp_only_when_the_event_has_none)
{
    gw_copy_dead_letter(&e.ev, &m, "no_route", "in", "x", "no route", 1700000005999ULL, FRAME, &c);
    cr_assert_eq(c.timestamp_s, 1700000005, "seconds, as AMQP's timestamp property has them");
    gw_copy_cleanup(&c);
    e.ev.has_timestamp = true;
    gw_copy_dead_letter(&e.ev, &m, "no_route", "in", "x", "no route", 1700000005999ULL, FRAME, &c);
    cr_assert_eq(c.timestamp_s, 0, "the event's own timestamp is kept");
    gw_copy_cleanup(&c);
    gw_copy_forward(&e.ev, &m, GW_FORWARD_FULL, &c);
    cr_assert_eq(c.timestamp_s, 0);
}

Test(copy, dead_letter_truncates_a_long_error_to_1024_bytes)
{
    char why[5000];
    memset(why, 'e', sizeof why - 1);
    why[sizeof why - 1] = '\0';
    gw_copy_dead_letter(&e.ev, &m, "publish_failed", "x", "rk", why, 1, FRAME, &c);
    const gw_hdr *h = hdr(GW_H_LAST_ERROR);
    cr_assert_leq(h->s.len, GW_HEADERS_ERROR_MAX_BYTES);
    cr_assert_gt(h->s.len, GW_HEADERS_ERROR_MAX_BYTES - 10);
    cr_assert_eq(h->s.ptr, c.error);
    cr_assert_not_null(strstr(c.error, "[truncated "));
}

/* How many bytes the dead-letter copy of e needs when it has room for everything. */
static size_t dead_letter_bytes(const char *why)
{
    gw_copy_dead_letter(&e.ev, &m, "publish_failed", "x", "rk", why, 1, FRAME, &c);
    size_t n = c.bytes;
    gw_copy_cleanup(&c);
    return n;
}

Test(copy, dead_letter_cuts_the_error_to_the_room_the_events_headers_leave)
{
    add_pad("pad", 5000);
    size_t base = dead_letter_bytes("");
    size_t frame = base + GW_HEADERS_FRAME_OVERHEAD + 200;
    char why[900];
    memset(why, 'e', sizeof why - 1);
    why[sizeof why - 1] = '\0';
    gw_copy_dead_letter(&e.ev, &m, "publish_failed", "x", "rk", why, 1, frame, &c);
    cr_assert_eq(c.n_hdrs, c.n_wanted, "every header kept");
    cr_assert_null(c.drop);
    const gw_hdr *h = hdr(GW_H_LAST_ERROR);
    cr_assert_gt(h->s.len, 100);
    cr_assert_leq(h->s.len, 200);
    cr_assert_not_null(strstr(c.error, "[truncated "));
    cr_assert(gw_copy_fits(&c, frame));
}

Test(copy, dead_letter_leaves_out_its_own_headers_from_the_last_when_the_event_fills_the_frame)
{
    add_pad("pad", 5000);
    add_text("app", "kept");
    size_t all = dead_letter_bytes("why");
    /* room for everything but the error and x-gw-first-seen-at */
    size_t frame = all + GW_HEADERS_FRAME_OVERHEAD - strlen("why") - (2 + 15 + 4) - (2 + 18 + 8);
    gw_copy_dead_letter(&e.ev, &m, "no_route", "x", "rk", "why", 1, frame, &c);
    cr_assert_eq(c.n_wanted, 9);
    cr_assert_eq(c.n_hdrs, 7, "kept %zu", c.n_hdrs);
    cr_assert_null(hdr(GW_H_LAST_ERROR));
    cr_assert_null(hdr(GW_H_FIRST_SEEN_AT));
    assert_hdr_int(GW_H_RETRY_COUNT, 2);
    cr_assert_null(c.drop, "the event's own headers are all kept");
    cr_assert_eq(c.shed, 0);
    cr_assert(gw_copy_fits(&c, frame));
}

Test(copy, dead_letter_sheds_the_events_largest_headers_first_only_as_many_as_needed)
{
    add_text("small", "s");
    add_pad("pad1", 3000);
    add_pad("pad2", 6000);
    add_pad("pad3", 3000);
    size_t all = dead_letter_bytes("why");
    /* pad2 must go; nothing else needs to */
    size_t frame = all + GW_HEADERS_FRAME_OVERHEAD - 5000;
    gw_copy_dead_letter(&e.ev, &m, "unroutable", "x", "rk", "why", 1, frame, &c);
    cr_assert_eq(c.shed, 1);
    cr_assert_not(dropped(0));
    cr_assert_not(dropped(1));
    cr_assert(dropped(2), "the largest is left out");
    cr_assert_not(dropped(3));
    cr_assert_eq(c.n_hdrs, c.n_wanted - 1, "every gateway header but the error");
    cr_assert_null(hdr(GW_H_LAST_ERROR));
    assert_hdr_str(GW_H_DEAD_LETTER_REASON, "unroutable");
    cr_assert(gw_copy_fits(&c, frame));
    gw_copy_cleanup(&c);
    /* two must go: pad2, then the first of the equals */
    frame = all + GW_HEADERS_FRAME_OVERHEAD - 8000;
    gw_copy_dead_letter(&e.ev, &m, "unroutable", "x", "rk", "why", 1, frame, &c);
    cr_assert_eq(c.shed, 2);
    cr_assert(dropped(1));
    cr_assert(dropped(2));
    cr_assert_not(dropped(3));
    cr_assert_not(dropped(0));
}

Test(copy, dead_letter_leaves_out_all_the_events_headers_when_shedding_the_largest_is_not_enough)
{
    char keys[40][8];
    for (int i = 0; i < 40; i++) {
        snprintf(keys[i], sizeof keys[i], "h%02d", i);
        add_pad(keys[i], 1000);
    }
    size_t all = dead_letter_bytes("why");
    /* 32 of them are not enough, 40 are */
    size_t frame = all + GW_HEADERS_FRAME_OVERHEAD - 36 * 1010;
    gw_copy_dead_letter(&e.ev, &m, "unroutable", "x", "rk", "why", 1, frame, &c);
    cr_assert_eq(c.shed, 40);
    for (size_t i = 0; i < 40; i++)
        cr_assert(dropped(i));
    cr_assert(gw_copy_fits(&c, frame));
}

/* --- replayed copies --- */

Test(copy, replay_resets_the_retry_count_and_counts_the_replay)
{
    e.ev.correlation_id = gw_str_from_cstr("c-dlq");
    add_text(GW_H_DEAD_LETTER_REASON, "unroutable");
    add_text(GW_H_ORIGINAL_EXCHANGE, "orders");
    add_text(GW_H_ORIGINAL_ROUTING_KEY, "order.created");
    add_long(GW_H_DEAD_LETTERED_AT);
    add_text(GW_H_RETRY_DESTINATION, "orders");
    add_text(GW_H_RETRY_ROUTING_KEY, "order.created");
    add_long(GW_H_RETRY_COUNT);
    add_long(GW_H_REPLAY_COUNT);
    add_long(GW_H_REPLAYED_AT);
    add_text(GW_H_LAST_ERROR, "kept for the record");
    add_long(GW_H_FIRST_SEEN_AT);
    gw_copy_replay(&e.ev, 1, 1700000009000ULL, &c);
    cr_assert_null(c.correlation_id.ptr, "properties kept as they are");
    cr_assert_null(c.message_id.ptr);
    cr_assert_null(c.type.ptr);
    cr_assert_not(c.persistent);
    cr_assert_eq(c.n_hdrs, 3);
    assert_hdr_int(GW_H_RETRY_COUNT, 0);
    assert_hdr_int(GW_H_REPLAYED_AT, 1700000009000LL);
    assert_hdr_int(GW_H_REPLAY_COUNT, 2);
    for (size_t i = 0; i < 9; i++)
        cr_assert(dropped(i), "%.*s kept", (int)e.h[i].key.len, e.h[i].key.ptr);
    cr_assert_not(dropped(9), "x-gw-last-error kept");
    cr_assert_not(dropped(10), "x-gw-first-seen-at kept");
}

Test(copy, replay_of_a_copy_without_a_replay_count_counts_one)
{
    gw_copy_replay(&e.ev, 0, 5, &c);
    assert_hdr_int(GW_H_REPLAY_COUNT, 1);
    cr_assert_null(c.drop);
}

Test(copy, dead_letter_shedding_its_own_error_never_brings_back_the_events_stale_error)
{
    m.from_tier = true;
    add_pad("pad", 5000);
    add_text(GW_H_LAST_ERROR, "an earlier failure of another destination");
    size_t all = dead_letter_bytes("why");
    size_t frame = all + GW_HEADERS_FRAME_OVERHEAD - 10; /* a little short */
    gw_copy_dead_letter(&e.ev, &m, "no_route", "x", "rk", "why", 1, frame, &c);
    cr_assert(c.n_hdrs < c.n_wanted, "the copy sheds some of its own headers");
    cr_assert_eq(occurrences(GW_H_LAST_ERROR), 0, "the event's stale x-gw-last-error is carried");
    cr_assert(gw_copy_fits(&c, frame));
}
