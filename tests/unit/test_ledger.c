/* test_ledger.c — unit tests of the delivery ledger (ledger.h): confirms, returns,
 * channel resets and restarts, timeouts, the ack plan, and a property test that
 * drives random interleavings of all of them against a simple model. */
#include "ledger.h"

#include <criterion/criterion.h>

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define T_MS 30000 /* the confirm timeout the tests use */

/* A publish on ch with seq for a key of three strings (id NULL: no message id). */
static gw_ledger_pub pub(int ch, uint64_t seq, const char *rk, const char *id, const char *body,
                         uintptr_t cookie, uint64_t sent_ms)
{
    gw_ledger_pub p = {0};
    p.ch = ch;
    p.seq = seq;
    p.key.routing_key = rk;
    p.key.message_id = gw_str_from_cstr(id);
    p.key.body = gw_str_from_cstr(body);
    p.cookie = (const void *)cookie;
    p.sent_ms = sent_ms;
    return p;
}

static void add(gw_ledger *l, uint64_t d, gw_ledger_pub p)
{
    gw_ledger_publish(l, d, &p);
}

/* Publishes cookie on ch/seq for delivery d with the key ("rk", "id", "body"). */
static void publish(gw_ledger *l, uint64_t d, int ch, uint64_t seq, uintptr_t cookie)
{
    add(l, d, pub(ch, seq, "rk", "id", "body", cookie, 0));
}

static uintptr_t cookie_of(const gw_ledger_settled *s)
{
    return (uintptr_t)s->pub.cookie;
}

static gw_str S(const char *s)
{
    return gw_str_from_cstr(s);
}

/* Takes every settled publish, comparing them in order with want: "COOKIE RESULT ...",
 * RESULT one of A(cked) N(acked) C(losed) R(estarted) T(imed out) D(ropped), followed
 * by r when the publish was returned. "" expects none. */
static void expect_settled(gw_ledger *l, const char *want)
{
    static const char results[] = "ANCPRTD"; /* in gw_ledger_result order; P: replaced */
    const char *p = want;
    gw_ledger_settled s;
    while (gw_ledger_take_settled(l, &s)) {
        char *end;
        unsigned long cookie = strtoul(p, &end, 10);
        cr_assert_neq(end, p, "\"%s\": one more settled, cookie %lu", want,
                      (unsigned long)cookie_of(&s));
        cr_assert_eq(cookie_of(&s), cookie, "\"%s\": cookie %lu instead of %lu", want,
                     (unsigned long)cookie_of(&s), cookie);
        cr_assert_eq(results[s.result], *end, "\"%s\": publish %lu settled as %c", want, cookie,
                     results[s.result]);
        end++;
        cr_assert_eq(s.returned, *end == 'r', "\"%s\": publish %lu returned: %d", want, cookie,
                     s.returned);
        p = end + (*end == 'r');
        while (*p == ' ')
            p++;
    }
    cr_assert_eq(*p, '\0', "\"%s\": nothing settled from \"%s\" on", want, p);
}

/* A ledger holding one delivery (tag 1, id in *d) with n publishes on ch, sequence and
 * cookie 1..n. */
static gw_ledger *ledger_with(int ch, uint64_t n, uint64_t *d)
{
    gw_ledger *l = gw_ledger_new();
    *d = gw_ledger_deliver(l, 1, NULL);
    for (uint64_t seq = 1; seq <= n; seq++)
        publish(l, *d, ch, seq, seq);
    return l;
}

/* n dispatched deliveries with tags 1..n, ids in d[]; when ch > 0 each has one
 * publish on ch, sequence and cookie its tag. */
static gw_ledger *ledger_of_deliveries(size_t n, int ch, uint64_t *d)
{
    gw_ledger *l = gw_ledger_new();
    for (size_t i = 0; i < n; i++) {
        d[i] = gw_ledger_deliver(l, i + 1, NULL);
        if (ch > 0)
            publish(l, d[i], ch, i + 1, i + 1);
        gw_ledger_dispatched(l, d[i]);
    }
    return l;
}

static void expect_ack(const gw_ledger_plan *p, size_t i, uint64_t tag, bool multiple)
{
    cr_assert_lt(i, p->n_acks);
    cr_assert_eq(p->acks[i].tag, tag, "ack %zu: tag %llu", i, (unsigned long long)p->acks[i].tag);
    cr_assert_not(p->acks[i].nack, "ack %zu is a nack", i);
    cr_assert_eq(p->acks[i].multiple, multiple, "ack %zu: multiple", i);
}

static void expect_nack(const gw_ledger_plan *p, size_t i, uint64_t tag, bool requeue)
{
    cr_assert_lt(i, p->n_acks);
    cr_assert_eq(p->acks[i].tag, tag, "nack %zu: tag %llu", i, (unsigned long long)p->acks[i].tag);
    cr_assert(p->acks[i].nack, "nack %zu is an ack", i);
    cr_assert_not(p->acks[i].multiple);
    cr_assert_eq(p->acks[i].requeue, requeue, "nack %zu: requeue", i);
}

/* --- confirms --- */

Test(ledger, a_confirmed_publish_settles_as_acked_and_its_delivery_is_then_acked)
{
    gw_ledger *l = gw_ledger_new();
    int job;
    uint64_t d = gw_ledger_deliver(l, 7, &job);
    publish(l, d, 2, 1, 100);
    gw_ledger_dispatched(l, d);
    cr_assert_eq(gw_ledger_plan_acks(l).n_acks, 0, "nothing is acked before the confirm");
    gw_ledger_confirm(l, 2, 1, false, true);
    gw_ledger_settled s;
    cr_assert(gw_ledger_take_settled(l, &s));
    cr_assert_eq(cookie_of(&s), 100);
    cr_assert_eq(s.result, GW_LEDGER_ACKED);
    cr_assert_eq(s.delivery, d);
    cr_assert_eq(s.delivery_cookie, &job);
    gw_ledger_plan p = gw_ledger_plan_acks(l);
    cr_assert_eq(p.n_acks, 1);
    expect_ack(&p, 0, 7, true);
    cr_assert_eq(p.n_released, 1);
    cr_assert_eq(p.released[0], &job);
    cr_assert_eq(gw_ledger_deliveries(l), 0);
    gw_ledger_free(l);
}

Test(ledger, a_nack_inside_a_multiple_confirm_fails_only_that_publish)
{
    uint64_t d;
    gw_ledger *l = ledger_with(2, 5, &d);
    gw_ledger_confirm(l, 2, 3, false, false);
    gw_ledger_confirm(l, 2, 5, true, true);
    expect_settled(l, "3N 1A 2A 4A 5A");
    gw_ledger_free(l);
}

Test(ledger, a_multiple_nack_fails_every_outstanding_publish_up_to_its_sequence)
{
    uint64_t d;
    gw_ledger *l = ledger_with(2, 4, &d);
    gw_ledger_confirm(l, 2, 2, false, true);
    gw_ledger_confirm(l, 2, 3, true, false);
    expect_settled(l, "2A 1N 3N");
    cr_assert_eq(gw_ledger_outstanding(l), 1, "seq 4 is still outstanding");
    gw_ledger_free(l);
}

Test(ledger, a_confirm_of_a_settled_sequence_or_an_unknown_channel_changes_nothing)
{
    uint64_t d;
    gw_ledger *l = ledger_with(2, 1, &d);
    gw_ledger_confirm(l, 2, 1, false, true);
    gw_ledger_confirm(l, 2, 1, false, false);
    gw_ledger_confirm(l, 2, 1, true, false);
    gw_ledger_confirm(l, 9, 1, true, true);
    gw_ledger_confirm(l, 2000, 1, true, true);
    expect_settled(l, "1A");
    gw_ledger_free(l);
}

Test(ledger, a_channel_ring_grows_past_its_first_capacity_and_keeps_every_publish)
{
    uint64_t d;
    gw_ledger *l = ledger_with(3, 3000, &d);
    gw_ledger_confirm(l, 3, 1500, false, false);
    gw_ledger_confirm(l, 3, 3000, true, true);
    gw_ledger_settled s;
    cr_assert(gw_ledger_take_settled(l, &s));
    cr_assert_eq(cookie_of(&s), 1500);
    uintptr_t n = 0;
    while (gw_ledger_take_settled(l, &s)) {
        n++;
        cr_assert_eq(cookie_of(&s), n < 1500 ? n : n + 1);
        cr_assert_eq(s.result, GW_LEDGER_ACKED);
    }
    cr_assert_eq(n, 2999);
    gw_ledger_free(l);
}

Test(ledger, the_delivery_ring_and_the_settled_queue_grow_in_order_after_wrapping)
{
    gw_ledger *l = gw_ledger_new();
    uint64_t first = 0;
    for (uint64_t tag = 1; tag <= 5000; tag++) {
        uint64_t d = gw_ledger_deliver(l, tag, NULL);
        publish(l, d, 2, tag, tag);
        gw_ledger_dispatched(l, d);
        if (tag % 700 == 0) {
            /* settle some, take fewer, ack what is finished: both rings wrap */
            gw_ledger_confirm(l, 2, tag - 100, true, true);
            gw_ledger_settled s;
            for (int i = 0; i < 500 && gw_ledger_take_settled(l, &s); i++)
                cr_assert_eq(cookie_of(&s), ++first);
            gw_ledger_plan p = gw_ledger_plan_acks(l);
            cr_assert_eq(p.n_acks, 1);
            expect_ack(&p, 0, first, true);
        }
    }
    gw_ledger_confirm(l, 2, 5000, true, true);
    gw_ledger_settled s;
    while (gw_ledger_take_settled(l, &s))
        cr_assert_eq(cookie_of(&s), ++first);
    cr_assert_eq(first, 5000);
    gw_ledger_plan p = gw_ledger_plan_acks(l);
    expect_ack(&p, 0, 5000, true);
    cr_assert_eq(gw_ledger_deliveries(l), 0);
    gw_ledger_free(l);
}

/* --- returns --- */

Test(ledger, a_return_before_its_confirm_settles_the_publish_as_returned)
{
    gw_ledger *l = gw_ledger_new();
    uint64_t d = gw_ledger_deliver(l, 1, NULL);
    add(l, d, pub(2, 1, "orders", "m-1", "{}", 1, 0));
    add(l, d, pub(2, 2, "orders", "m-2", "{}", 2, 0));
    cr_assert_eq(gw_ledger_return(l, 2, 312, S("orders"), S("m-2"), S("{}")), 1);
    gw_ledger_confirm(l, 2, 2, true, true);
    gw_ledger_settled s;
    cr_assert(gw_ledger_take_settled(l, &s));
    cr_assert_not(s.returned);
    cr_assert(gw_ledger_take_settled(l, &s));
    cr_assert(s.returned);
    cr_assert_eq(s.return_code, 312);
    cr_assert_eq(s.result, GW_LEDGER_ACKED, "the broker acks what it returned");
    gw_ledger_free(l);
}

Test(ledger, a_return_after_the_confirm_matches_nothing)
{
    uint64_t d;
    gw_ledger *l = ledger_with(2, 1, &d);
    gw_ledger_confirm(l, 2, 1, false, true);
    cr_assert_eq(gw_ledger_return(l, 2, 312, S("rk"), S("id"), S("body")), 0);
    expect_settled(l, "1A");
    gw_ledger_free(l);
}

Test(ledger, a_return_marks_every_unsettled_publish_with_the_same_routing_key_id_and_body)
{
    /* Two events with one message id (two producers): the routed copy's confirm may
     * come after the return of the unroutable one, so both count as returned. */
    gw_ledger *l = gw_ledger_new();
    uint64_t d1 = gw_ledger_deliver(l, 1, NULL);
    uint64_t d2 = gw_ledger_deliver(l, 2, NULL);
    publish(l, d1, 2, 1, 1);
    publish(l, d2, 2, 2, 2);
    cr_assert_eq(gw_ledger_return(l, 2, 312, S("rk"), S("id"), S("body")), 2);
    cr_assert_eq(gw_ledger_return(l, 2, 312, S("rk"), S("id"), S("body")), 0,
                 "a publish is returned once");
    gw_ledger_confirm(l, 2, 2, true, true);
    expect_settled(l, "1Ar 2Ar");
    gw_ledger_free(l);
}

Test(ledger, a_return_with_another_routing_key_id_or_body_or_channel_matches_nothing)
{
    uint64_t d;
    gw_ledger *l = ledger_with(2, 1, &d);
    cr_assert_eq(gw_ledger_return(l, 2, 312, S("rk2"), S("id"), S("body")), 0);
    cr_assert_eq(gw_ledger_return(l, 2, 312, S("r"), S("id"), S("body")), 0);
    cr_assert_eq(gw_ledger_return(l, 2, 312, S("rk"), S("id2"), S("body")), 0);
    cr_assert_eq(gw_ledger_return(l, 2, 312, S("rk"), S(""), S("body")), 0);
    cr_assert_eq(gw_ledger_return(l, 2, 312, S("rk"), S("id"), S("bodY")), 0);
    cr_assert_eq(gw_ledger_return(l, 2, 312, S("rk"), S("id"), S("")), 0);
    cr_assert_eq(gw_ledger_return(l, 3, 312, S("rk"), S("id"), S("body")), 0);
    cr_assert_eq(gw_ledger_return(l, 2, 312, S("rk"), S("id"), S("body")), 1);
    gw_ledger_free(l);
}

Test(ledger, a_return_without_a_message_id_matches_on_routing_key_and_body)
{
    gw_ledger *l = gw_ledger_new();
    uint64_t d = gw_ledger_deliver(l, 1, NULL);
    add(l, d, pub(1, 1, "q", "id-a", "x", 1, 0));
    add(l, d, pub(1, 2, "q", NULL, "x", 2, 0));
    add(l, d, pub(1, 3, "q", NULL, "y", 3, 0));
    cr_assert_eq(gw_ledger_return(l, 1, 312, S("q"), GW_STR_NULL, S("x")), 2);
    cr_assert_eq(gw_ledger_return(l, 1, 312, S("q"), S("id-a"), S("y")), 0,
                 "a copy without id does not match a return naming one");
    gw_ledger_free(l);
}

/* --- channel resets, sequence restarts, timeouts --- */

Test(ledger, a_sequence_restart_fails_what_was_outstanding_on_that_channel_only)
{
    uint64_t d;
    gw_ledger *l = ledger_with(2, 2, &d);
    publish(l, d, 3, 1, 31);
    gw_ledger_confirm(l, 2, 1, false, true);
    /* channel 2 was reopened: its first publish is sequence 1 again */
    publish(l, d, 2, 1, 10);
    expect_settled(l, "1A 2R");
    cr_assert_eq(gw_ledger_outstanding(l), 2, "the new publish and channel 3's");
    gw_ledger_confirm(l, 2, 1, false, true);
    expect_settled(l, "10A");
    gw_ledger_free(l);
}

Test(ledger, a_closed_channel_fails_its_outstanding_publishes_and_starts_again_at_one)
{
    uint64_t d;
    gw_ledger *l = ledger_with(2, 2, &d);
    publish(l, d, 4, 1, 41);
    gw_ledger_channel_lost(l, 2);
    gw_ledger_channel_lost(l, 7); /* never used: nothing happens */
    expect_settled(l, "1C 2C");
    publish(l, d, 2, 1, 3);
    expect_settled(l, ""); /* sequence 1 after a close is no restart */
    cr_assert_eq(gw_ledger_outstanding(l), 2);
    gw_ledger_free(l);
}

Test(ledger, a_replaced_channel_settles_its_outstanding_publishes_as_replaced)
{
    uint64_t d;
    gw_ledger *l = ledger_with(2, 2, &d);
    publish(l, d, 4, 1, 41);
    gw_ledger_confirm(l, 2, 1, false, false); /* the nack that made it be replaced */
    gw_ledger_channel_replaced(l, 2);
    expect_settled(l, "1N 2P"); /* channel 4 untouched */
    publish(l, d, 2, 1, 3);
    expect_settled(l, ""); /* the number may be used again from sequence 1 */
    cr_assert_eq(gw_ledger_outstanding(l), 2);
    gw_ledger_free(l);
}

Test(ledger, a_publish_times_out_exactly_at_the_timeout)
{
    gw_ledger *l = gw_ledger_new();
    uint64_t d = gw_ledger_deliver(l, 1, NULL);
    add(l, d, pub(2, 1, "rk", "id", "b", 1, 1000));
    add(l, d, pub(2, 2, "rk", "id", "b", 2, 2000));
    gw_ledger_expire(l, 1000 + T_MS - 1, T_MS);
    cr_assert_eq(gw_ledger_outstanding(l), 2);
    gw_ledger_expire(l, 1000 + T_MS, T_MS);
    expect_settled(l, "1T");
    gw_ledger_confirm(l, 2, 1, false, true); /* late: ignored */
    expect_settled(l, "");
    gw_ledger_expire(l, 2000 + T_MS, T_MS);
    expect_settled(l, "2T");
    gw_ledger_free(l);
}

Test(ledger, rearm_makes_every_outstanding_timeout_count_from_then)
{
    uint64_t d;
    gw_ledger *l = ledger_with(2, 1, &d);
    gw_ledger_rearm(l, 50000);
    gw_ledger_expire(l, 50000 + T_MS - 1, T_MS);
    cr_assert_eq(gw_ledger_outstanding(l), 1);
    gw_ledger_expire(l, 50000 + T_MS, T_MS);
    gw_ledger_settled s;
    cr_assert(gw_ledger_take_settled(l, &s));
    cr_assert_eq(s.result, GW_LEDGER_TIMED_OUT);
    cr_assert_eq(s.pub.sent_ms, 50000);
    gw_ledger_free(l);
}

/* --- the ack plan --- */

Test(ledger, acks_are_held_back_behind_an_unfinished_delivery)
{
    uint64_t d[3];
    gw_ledger *l = ledger_of_deliveries(3, 2, d);
    gw_ledger_confirm(l, 2, 3, false, true);
    gw_ledger_confirm(l, 2, 2, false, true);
    expect_settled(l, "3A 2A");
    cr_assert_eq(gw_ledger_unfinished(l), 1);
    gw_ledger_plan p = gw_ledger_plan_acks(l);
    cr_assert_eq(p.n_acks, 0, "delivery 1 is unfinished: nothing behind it is acked");
    cr_assert_eq(p.n_released, 0);
    gw_ledger_confirm(l, 2, 1, false, true);
    expect_settled(l, "1A");
    p = gw_ledger_plan_acks(l);
    cr_assert_eq(p.n_acks, 1);
    expect_ack(&p, 0, 3, true);
    cr_assert_eq(p.n_released, 3);
    gw_ledger_free(l);
}

Test(ledger, a_delivery_still_dispatching_is_not_acked_even_with_nothing_outstanding)
{
    uint64_t d;
    gw_ledger *l = ledger_with(2, 1, &d);
    gw_ledger_confirm(l, 2, 1, false, true);
    expect_settled(l, "1A");
    cr_assert_eq(gw_ledger_plan_acks(l).n_acks, 0);
    gw_ledger_dispatched(l, d);
    gw_ledger_dispatched(l, d);
    cr_assert_eq(gw_ledger_unfinished(l), 0);
    cr_assert_eq(gw_ledger_plan_acks(l).n_acks, 1);
    gw_ledger_free(l);
}

Test(ledger, a_settled_publish_keeps_its_delivery_unfinished_until_it_is_taken)
{
    uint64_t d;
    gw_ledger *l = ledger_with(2, 1, &d);
    gw_ledger_dispatched(l, d);
    gw_ledger_confirm(l, 2, 1, false, false);
    cr_assert_eq(gw_ledger_plan_acks(l).n_acks, 0, "its failure is not handled yet");
    cr_assert_eq(gw_ledger_unfinished(l), 1);
    gw_ledger_free(l);
}

Test(ledger, a_failure_copy_published_while_taking_keeps_its_delivery_unacked)
{
    /* Nacked publishes get retry copies on the same channel from inside the take
     * loop; a delivery is acked only once its copy is confirmed. */
    uint64_t d[2];
    gw_ledger *l = ledger_of_deliveries(2, 1, d);
    gw_ledger_confirm(l, 1, 2, true, false);
    gw_ledger_settled s;
    uint64_t seq = 3;
    while (gw_ledger_take_settled(l, &s))
        publish(l, s.delivery, 1, seq++, 10 + cookie_of(&s));
    cr_assert_eq(seq, 5);
    cr_assert_eq(gw_ledger_plan_acks(l).n_acks, 0);
    cr_assert_eq(gw_ledger_outstanding(l), 2);
    gw_ledger_confirm(l, 1, 3, false, true);
    expect_settled(l, "11A");
    gw_ledger_plan p = gw_ledger_plan_acks(l);
    cr_assert_eq(p.n_acks, 1);
    expect_ack(&p, 0, 1, true);
    gw_ledger_confirm(l, 1, 4, false, true);
    expect_settled(l, "12A");
    p = gw_ledger_plan_acks(l);
    expect_ack(&p, 0, 2, true);
    gw_ledger_free(l);
}

Test(ledger, a_restart_found_while_publishing_a_failure_copy_joins_the_same_queue)
{
    gw_ledger *l = gw_ledger_new();
    uint64_t d1 = gw_ledger_deliver(l, 1, NULL);
    uint64_t d2 = gw_ledger_deliver(l, 2, NULL);
    publish(l, d1, 2, 1, 1); /* a destination publish */
    publish(l, d2, 1, 1, 2); /* an own copy on channel 1 */
    gw_ledger_channel_lost(l, 2);
    gw_ledger_settled s;
    cr_assert(gw_ledger_take_settled(l, &s));
    cr_assert_eq(s.result, GW_LEDGER_CLOSED);
    /* its retry copy goes to channel 1, which was reopened meanwhile */
    publish(l, s.delivery, 1, 1, 3);
    expect_settled(l, "2R");
    cr_assert_eq(gw_ledger_outstanding(l), 1);
    gw_ledger_free(l);
}

Test(ledger, consecutive_acks_collapse_into_one_multiple_ack)
{
    uint64_t d[5];
    gw_ledger *l = ledger_of_deliveries(5, 0, d);
    gw_ledger_plan p = gw_ledger_plan_acks(l);
    cr_assert_eq(p.n_acks, 1);
    expect_ack(&p, 0, 5, true);
    cr_assert_eq(p.n_released, 5);
    gw_ledger_free(l);
}

Test(ledger, a_requeued_or_rejected_delivery_is_nacked_between_two_ack_runs)
{
    uint64_t d[6];
    gw_ledger *l = ledger_of_deliveries(6, 0, d);
    gw_ledger_set_verdict(l, d[2], GW_LEDGER_REQUEUE);
    gw_ledger_set_verdict(l, d[3], GW_LEDGER_REQUEUE);
    gw_ledger_set_verdict(l, d[3], GW_LEDGER_REJECT);
    gw_ledger_set_verdict(l, d[3], GW_LEDGER_REQUEUE); /* never lowered */
    gw_ledger_plan p = gw_ledger_plan_acks(l);
    cr_assert_eq(p.n_acks, 4);
    expect_ack(&p, 0, 2, true);
    expect_nack(&p, 1, 3, true);
    expect_nack(&p, 2, 4, false); /* reject wins over requeue */
    expect_ack(&p, 3, 6, true);
    gw_ledger_free(l);
}

Test(ledger, after_a_left_delivery_acks_name_one_delivery_each)
{
    uint64_t d[4];
    gw_ledger *l = ledger_of_deliveries(4, 0, d);
    gw_ledger_set_verdict(l, d[1], GW_LEDGER_LEAVE);
    gw_ledger_plan p = gw_ledger_plan_acks(l);
    cr_assert_eq(p.n_released, 4);
    cr_assert_eq(p.n_acks, 3);
    expect_ack(&p, 0, 1, true);  /* nothing is left unacked before it */
    expect_ack(&p, 1, 3, false); /* a multiple ack would ack delivery 2 too */
    expect_ack(&p, 2, 4, false);
    gw_ledger_dispatched(l, gw_ledger_deliver(l, 5, NULL));
    p = gw_ledger_plan_acks(l);
    expect_ack(&p, 0, 5, false); /* still left, in a later plan too */
    gw_ledger_free(l);
}

Test(ledger, abandon_drops_every_publish_and_take_delivery_hands_back_every_delivery)
{
    gw_ledger *l = gw_ledger_new();
    int j1, j2;
    uint64_t d0 = gw_ledger_deliver(l, 1, NULL);
    gw_ledger_set_verdict(l, d0, GW_LEDGER_LEAVE);
    gw_ledger_dispatched(l, d0);
    uint64_t d1 = gw_ledger_deliver(l, 2, &j1);
    uint64_t d2 = gw_ledger_deliver(l, 3, &j2);
    publish(l, d1, 2, 1, 1);
    publish(l, d2, 3, 1, 2);
    gw_ledger_dispatched(l, d1);
    cr_assert_eq(gw_ledger_plan_acks(l).n_released, 1, "the left one");
    gw_ledger_abandon(l);
    expect_settled(l, "1D 2D");
    cr_assert_eq(gw_ledger_outstanding(l), 0);
    void *c;
    cr_assert(gw_ledger_take_delivery(l, &c));
    cr_assert_eq(c, &j1);
    cr_assert(gw_ledger_take_delivery(l, &c));
    cr_assert_eq(c, &j2);
    cr_assert_not(gw_ledger_take_delivery(l, &c));
    cr_assert_eq(gw_ledger_deliveries(l), 0);
    cr_assert_eq(gw_ledger_unfinished(l), 0);
    /* a new session: sequences start at 1 again, acks may be multiple again */
    uint64_t d3 = gw_ledger_deliver(l, 1, NULL);
    publish(l, d3, 2, 1, 3);
    expect_settled(l, "");
    gw_ledger_dispatched(l, d3);
    gw_ledger_confirm(l, 2, 1, false, true);
    expect_settled(l, "3A");
    gw_ledger_plan p = gw_ledger_plan_acks(l);
    expect_ack(&p, 0, 1, true);
    gw_ledger_free(l);
}

/* ---------------------------------------------------------------- property */

/* Random interleavings of deliveries, publishes (first-pass and failure copies),
 * confirms (single/multiple, ack/nack, late ones), returns, channel closes, silent
 * reopens (a restart the ledger finds at the next publish), timeouts, re-arms and a
 * rare session loss, against a model that knows what each event must settle. After
 * each step the plan's acks are applied to a model broker, which checks that every
 * ack names deliveries whose copies all ended confirmed, in delivery order, once.
 * At the end everything is confirmed or timed out: every delivery must have been
 * acked, nacked, left or dropped exactly once, and the ledger must be empty. */

#define P_ITERATIONS 300
#define P_STEPS      400
#define P_DELIVERIES 48
#define P_PUBLISHES  2048
#define P_CHANNELS   3 /* channels 1..3 */
#define P_TIMEOUT    1000
#define P_MAX_TRIES  3

static const struct {
    const char *rk, *id, *body;
} P_KEYS[] = {
    {"a", "m1", "x"}, {"a", "m1", "y"}, {"a", "m2", "x"},
    {"b", "m1", "x"}, {"a", NULL, "x"}, {"a", NULL, "y"},
};
#define P_N_KEYS (sizeof P_KEYS / sizeof P_KEYS[0])

enum { HELD, ACKED, NACKED, LEFT, DROPPED };

typedef struct mpub {
    int d, ch, key, tries;
    uint64_t seq, sent;
    bool out;    /* outstanding in the ledger, as far as the model knows */
    bool doomed; /* its channel was reopened without the ledger being told */
    bool returned;
    int expect; /* the result the model settled it with; -1 while outstanding */
    bool taken;
} mpub;

typedef struct mdlv {
    uint64_t id, tag;
    int epoch;   /* consumer channel incarnation */
    int to_send; /* first-pass copies not yet published */
    int chains, good, open;
    bool dispatched, leave, requeue, reject, released;
    int state;
} mdlv;

typedef struct model {
    uint64_t rng;
    gw_ledger *l;
    mdlv d[P_DELIVERIES];
    int n_d, next_release;
    mpub p[P_PUBLISHES];
    int n_p;
    uint64_t next_seq[P_CHANNELS + 1];
    bool reopened[P_CHANNELS + 1];
    uint64_t now, tag;
    int epoch;
} model;

static uint64_t rnd(model *m, uint64_t n)
{
    m->rng ^= m->rng >> 12;
    m->rng ^= m->rng << 25;
    m->rng ^= m->rng >> 27;
    return (m->rng * 2685821657736338717ULL >> 11) % n;
}

static void m_settle(mpub *p, gw_ledger_result r)
{
    p->out = false;
    p->expect = (int)r;
}

static void m_publish(model *m, int di, int tries)
{
    cr_assert_lt(m->n_p, P_PUBLISHES);
    int ch = 1 + (int)rnd(m, P_CHANNELS);
    if (m->reopened[ch]) {
        /* the ledger finds the restart now: the old incarnation's publishes fail */
        for (int i = 0; i < m->n_p; i++)
            if (m->p[i].out && m->p[i].ch == ch)
                m_settle(&m->p[i], GW_LEDGER_RESTARTED);
        m->reopened[ch] = false;
    }
    mpub *p = &m->p[m->n_p];
    *p = (mpub){
        di, ch,   (int)rnd(m, P_N_KEYS), tries, m->next_seq[ch]++, m->now, true, false, false,
        -1, false};
    gw_ledger_pub lp = pub(ch, p->seq, P_KEYS[p->key].rk, P_KEYS[p->key].id, P_KEYS[p->key].body,
                           (uintptr_t)m->n_p + 1, m->now);
    lp.kind = tries;
    m->n_p++;
    m->d[di].open++;
    gw_ledger_publish(m->l, m->d[di].id, &lp);
}

/* Takes every settled publish and acts as a caller: a failure gets a retry copy
 * (up to P_MAX_TRIES) or the delivery is requeued or rejected. */
static void m_drain(model *m)
{
    gw_ledger_settled s;
    while (gw_ledger_take_settled(m->l, &s)) {
        int pi = (int)cookie_of(&s) - 1;
        cr_assert(pi >= 0 && pi < m->n_p);
        mpub *p = &m->p[pi];
        cr_assert_not(p->taken, "publish %d settled twice", pi);
        cr_assert_neq(p->expect, -1, "publish %d settled while the model has it outstanding", pi);
        cr_assert_eq((int)s.result, p->expect, "publish %d", pi);
        cr_assert_eq(s.returned, p->returned, "publish %d", pi);
        cr_assert_eq(s.pub.kind, p->tries);
        p->taken = true;
        mdlv *d = &m->d[p->d];
        cr_assert_eq(s.delivery, d->id);
        cr_assert_eq(s.delivery_cookie, d);
        d->open--;
        if (s.result == GW_LEDGER_DROPPED)
            continue;
        if (s.result == GW_LEDGER_ACKED && !s.returned)
            d->good++;
        else if (p->tries < P_MAX_TRIES && rnd(m, 3) != 0)
            m_publish(m, p->d, p->tries + 1);
        else if (rnd(m, 4) == 0) {
            d->reject = true;
            gw_ledger_set_verdict(m->l, d->id, GW_LEDGER_REJECT);
        } else {
            d->requeue = true;
            gw_ledger_set_verdict(m->l, d->id, GW_LEDGER_REQUEUE);
        }
    }
}

static bool m_ackable(const mdlv *d)
{
    return d->released && d->dispatched && d->open == 0 && d->good == d->chains && !d->requeue &&
           !d->reject && !d->leave;
}

static bool m_unacked(const mdlv *d)
{
    return d->state == HELD || d->state == LEFT;
}

/* Applies the ledger's ack plan to the model broker. */
static void m_plan(model *m)
{
    gw_ledger_plan pl = gw_ledger_plan_acks(m->l);
    for (size_t i = 0; i < pl.n_released; i++) {
        while (m->next_release < m->n_d && m->d[m->next_release].state == DROPPED)
            m->next_release++;
        cr_assert_lt(m->next_release, m->n_d);
        mdlv *d = &m->d[m->next_release++];
        cr_assert_eq(pl.released[i], d, "released out of delivery order");
        cr_assert(d->dispatched && d->open == 0, "released before it finished");
        d->released = true;
        if (d->leave)
            d->state = LEFT;
    }
    for (size_t i = 0; i < pl.n_acks; i++) {
        const gw_ledger_ack *a = &pl.acks[i];
        int covered = 0;
        for (int k = 0; k < m->n_d; k++) {
            mdlv *d = &m->d[k];
            if (d->epoch != m->epoch || !m_unacked(d))
                continue;
            if (a->multiple ? d->tag > a->tag : d->tag != a->tag)
                continue;
            covered++;
            if (a->nack) {
                cr_assert_not(a->multiple);
                cr_assert(d->released && d->open == 0 && (d->requeue || d->reject));
                cr_assert_eq(a->requeue, !d->reject);
                d->state = NACKED;
            } else {
                cr_assert(m_ackable(d), "tag %llu acked before all its copies were confirmed",
                          (unsigned long long)d->tag);
                d->state = ACKED;
            }
        }
        cr_assert_geq(covered, 1, "an ack for nothing unacked");
    }
    for (int k = 0; k < m->n_d; k++) {
        const mdlv *d = &m->d[k];
        cr_assert(!d->released || d->state != HELD,
                  "delivery %d released but neither acked, nacked nor left", k);
    }
}

static void m_check_counts(model *m)
{
    size_t out = 0, held = 0, unfinished = 0;
    for (int i = 0; i < m->n_p; i++)
        out += m->p[i].out;
    for (int k = 0; k < m->n_d; k++) {
        const mdlv *d = &m->d[k];
        if (d->released || d->state == DROPPED)
            continue;
        held++;
        unfinished += !(d->dispatched && d->open == 0);
    }
    cr_assert_eq(gw_ledger_outstanding(m->l), out);
    cr_assert_eq(gw_ledger_deliveries(m->l), held);
    cr_assert_eq(gw_ledger_unfinished(m->l), unfinished);
}

static void m_deliver(model *m)
{
    if (m->n_d == P_DELIVERIES)
        return;
    mdlv *d = &m->d[m->n_d];
    memset(d, 0, sizeof *d);
    d->tag = ++m->tag;
    d->epoch = m->epoch;
    d->leave = rnd(m, 10) == 0;
    d->to_send = d->leave ? 0 : (int)rnd(m, 4); /* 0: e.g. requeued before publishing */
    d->state = HELD;
    d->id = gw_ledger_deliver(m->l, d->tag, d);
    if (d->to_send == 0 && !d->leave && rnd(m, 2)) {
        d->requeue = true;
        gw_ledger_set_verdict(m->l, d->id, GW_LEDGER_REQUEUE);
    }
    m->n_d++;
}

/* Publishes one more first-pass copy of delivery k, or marks it dispatched. */
static void m_dispatch(model *m, int k)
{
    mdlv *d = &m->d[k];
    if (d->dispatched || d->state != HELD)
        return;
    if (d->to_send > 0) {
        d->to_send--;
        d->chains++;
        m_publish(m, k, 1);
        m_drain(m);
        return;
    }
    if (d->leave)
        gw_ledger_set_verdict(m->l, d->id, GW_LEDGER_LEAVE);
    d->dispatched = true;
    gw_ledger_dispatched(m->l, d->id);
}

static void m_confirm(model *m, int ch, uint64_t seq, bool multiple, bool ack)
{
    for (int i = 0; i < m->n_p; i++) {
        mpub *p = &m->p[i];
        if (p->out && !p->doomed && p->ch == ch && (multiple ? p->seq <= seq : p->seq == seq))
            m_settle(p, ack ? GW_LEDGER_ACKED : GW_LEDGER_NACKED);
    }
    gw_ledger_confirm(m->l, ch, seq, multiple, ack);
}

static void m_expire(model *m)
{
    for (int i = 0; i < m->n_p; i++)
        if (m->p[i].out && m->now - m->p[i].sent >= P_TIMEOUT)
            m_settle(&m->p[i], GW_LEDGER_TIMED_OUT);
    gw_ledger_expire(m->l, m->now, P_TIMEOUT);
}

static void m_step_end(model *m)
{
    m_drain(m);
    if (rnd(m, 2))
        m_plan(m);
    m_check_counts(m);
}

static void m_step(model *m)
{
    uint64_t r = rnd(m, 100);
    int ch = 1 + (int)rnd(m, P_CHANNELS);
    if (r < 20) {
        m_deliver(m);
    } else if (r < 50) {
        if (m->n_d)
            m_dispatch(m, (int)rnd(m, (uint64_t)m->n_d));
    } else if (r < 72) {
        /* a confirm of any sequence of the channel's current incarnation; a settled
         * one (timed out, say) may be confirmed late */
        if (m->next_seq[ch] > 1 && !m->reopened[ch])
            m_confirm(m, ch, 1 + rnd(m, m->next_seq[ch] - 1), rnd(m, 2), rnd(m, 5) != 0);
    } else if (r < 82) {
        if (m->reopened[ch])
            return m_step_end(m); /* no publish of the new incarnation to return yet */
        int k = (int)rnd(m, P_N_KEYS);
        bool with_id = rnd(m, 4) != 0 && P_KEYS[k].id;
        size_t hits = 0;
        for (int i = 0; i < m->n_p; i++) {
            mpub *p = &m->p[i];
            if (!p->out || p->doomed || p->returned || p->ch != ch)
                continue;
            if (strcmp(P_KEYS[p->key].rk, P_KEYS[k].rk) != 0 ||
                strcmp(P_KEYS[p->key].body, P_KEYS[k].body) != 0)
                continue;
            if (with_id && (!P_KEYS[p->key].id || strcmp(P_KEYS[p->key].id, P_KEYS[k].id) != 0))
                continue;
            p->returned = true;
            hits++;
        }
        cr_assert_eq(gw_ledger_return(m->l, ch, 312, S(P_KEYS[k].rk),
                                      with_id ? S(P_KEYS[k].id) : GW_STR_NULL, S(P_KEYS[k].body)),
                     hits);
    } else if (r < 85) {
        bool replaced = r >= 83; /* closed by the caller, to replace it */
        for (int i = 0; i < m->n_p; i++)
            if (m->p[i].out && m->p[i].ch == ch)
                m_settle(&m->p[i], replaced ? GW_LEDGER_REPLACED : GW_LEDGER_CLOSED);
        m->next_seq[ch] = 1;
        m->reopened[ch] = false;
        if (replaced)
            gw_ledger_channel_replaced(m->l, ch);
        else
            gw_ledger_channel_lost(m->l, ch);
    } else if (r < 88) {
        /* reopened without a close being reported: found at the next publish */
        for (int i = 0; i < m->n_p; i++)
            if (m->p[i].out && m->p[i].ch == ch)
                m->p[i].doomed = true;
        m->next_seq[ch] = 1;
        m->reopened[ch] = true;
    } else if (r < 97) {
        m->now += rnd(m, P_TIMEOUT / 2);
        m_expire(m);
    } else if (r < 99) {
        for (int i = 0; i < m->n_p; i++)
            if (m->p[i].out)
                m->p[i].sent = m->now;
        gw_ledger_rearm(m->l, m->now);
    } else if (rnd(m, 4) == 0) {
        /* the session dies: everything is dropped and redelivered later */
        for (int i = 0; i < m->n_p; i++)
            if (m->p[i].out)
                m_settle(&m->p[i], GW_LEDGER_DROPPED);
        gw_ledger_abandon(m->l);
        m_drain(m);
        void *c;
        while (gw_ledger_take_delivery(m->l, &c)) {
            mdlv *d = c;
            cr_assert_eq(d->state, HELD);
            cr_assert_not(d->released);
            d->state = DROPPED;
        }
        for (int k = 0; k < m->n_d; k++)
            if (m->d[k].state == LEFT)
                m->d[k].state = DROPPED; /* redelivered by the broker, never acked */
        for (int c2 = 1; c2 <= P_CHANNELS; c2++) {
            m->next_seq[c2] = 1;
            m->reopened[c2] = false;
        }
        m->epoch++;
        m->tag = 0;
    }
    m_step_end(m);
}

static void m_finish(model *m)
{
    for (int round = 0;; round++) {
        cr_assert_lt(round, 1000, "the ledger never empties");
        for (int k = 0; k < m->n_d; k++)
            while (m->d[k].state == HELD && !m->d[k].dispatched)
                m_dispatch(m, k);
        m_drain(m);
        if (gw_ledger_outstanding(m->l) == 0)
            break;
        if (round % 2 == 0) {
            for (int ch = 1; ch <= P_CHANNELS; ch++)
                if (m->next_seq[ch] > 1 && !m->reopened[ch])
                    m_confirm(m, ch, m->next_seq[ch] - 1, true, rnd(m, 4) != 0);
        } else {
            m->now += P_TIMEOUT;
            m_expire(m);
        }
        m_drain(m);
    }
    m_plan(m);
    m_check_counts(m);
    cr_assert_eq(gw_ledger_deliveries(m->l), 0);
    cr_assert_eq(gw_ledger_unfinished(m->l), 0);
    for (int k = 0; k < m->n_d; k++)
        cr_assert_neq(m->d[k].state, HELD, "delivery %d left forever", k);
}

Test(ledger, random_interleavings_never_ack_early_and_settle_every_delivery_once, .timeout = 60)
{
    static model m;
    for (uint64_t seed = 1; seed <= P_ITERATIONS; seed++) {
        memset(&m, 0, sizeof m);
        m.rng = seed * 0x9E3779B97F4A7C15ULL;
        m.l = gw_ledger_new();
        for (int c = 1; c <= P_CHANNELS; c++)
            m.next_seq[c] = 1;
        for (int i = 0; i < P_STEPS; i++)
            m_step(&m);
        m_finish(&m);
        gw_ledger_free(m.l);
    }
}
