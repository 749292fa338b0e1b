/* test_retry.c — unit tests of the retry policy (retry.h): reasons, delays, the
 * retry-or-dead-letter table, delay tiers and their queue names, deferral expiry. */
#include "retry.h"

#include <criterion/criterion.h>
#include <criterion/parameterized.h>

#include <stdint.h>
#include <string.h>

#define SEC  1000ULL
#define MIN  (60 * SEC)
#define HOUR (60 * MIN)

static gw_retry_policy policy(uint32_t max_attempts, size_t n, const uint64_t *backoff)
{
    gw_retry_policy p = {.max_attempts = max_attempts, .n_backoff = n};
    memcpy(p.backoff_ms, backoff, n * sizeof *backoff);
    return p;
}

/* The SPEC §4 default: max_attempts 5, backoff [1s, 5s, 30s, 2m]. */
static gw_retry_policy default_policy(void)
{
    static const uint64_t backoff[] = {1 * SEC, 5 * SEC, 30 * SEC, 2 * MIN};
    return policy(5, 4, backoff);
}

/* --- reasons --- */

struct reason_case {
    gw_reason reason;
    char name[32];
    bool transient;
};

ParameterizedTestParameters(retry, reason_names_are_the_spec_strings)
{
    static struct reason_case cases[] = {
        {GW_REASON_NO_ROUTE, "no_route", false},
        {GW_REASON_INVALID_EVENT, "invalid_event", false},
        {GW_REASON_PUBLISH_FAILED, "publish_failed", true},
        {GW_REASON_UNROUTABLE, "unroutable", true},
        {GW_REASON_REJECTED, "rejected", true},
        {GW_REASON_EXPIRED, "expired", false},
    };
    return cr_make_param_array(struct reason_case, cases, sizeof cases / sizeof cases[0]);
}

ParameterizedTest(struct reason_case *c, retry, reason_names_are_the_spec_strings)
{
    cr_assert_str_eq(gw_reason_name(c->reason), c->name);
    gw_reason parsed = (gw_reason)-1;
    cr_assert(gw_reason_parse(c->name, &parsed), "%s does not parse", c->name);
    cr_assert_eq(parsed, c->reason);
    cr_assert_eq(gw_reason_is_transient(c->reason), c->transient, "%s transient should be %d",
                 c->name, c->transient);
}

Test(retry, reason_parse_rejects_anything_but_an_exact_name)
{
    static const char *const bad[] = {"", "NO_ROUTE", "no_route ", "no", "unknown", "expired\n"};
    gw_reason r = GW_REASON_REJECTED;
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
        cr_assert_not(gw_reason_parse(bad[i], &r), "\"%s\" parsed", bad[i]);
    cr_assert_not(gw_reason_parse(NULL, &r));
    cr_assert_eq(r, GW_REASON_REJECTED, "a failed parse changed *out");
}

Test(retry, reason_name_of_a_value_outside_the_enum_is_unknown)
{
    cr_assert_str_eq(gw_reason_name((gw_reason)GW_REASON_COUNT), "unknown");
    cr_assert_str_eq(gw_reason_name((gw_reason)-1), "unknown");
}

Test(retry, action_names_are_stable)
{
    cr_assert_str_eq(gw_retry_action_name(GW_RETRY_ACTION_RETRY), "retry");
    cr_assert_str_eq(gw_retry_action_name(GW_RETRY_ACTION_DEAD_LETTER), "dead_letter");
    cr_assert_str_eq(gw_retry_action_name(GW_RETRY_ACTION_DEFER), "defer");
}

/* --- delays --- */

struct delay_case {
    uint32_t retry_count;
    uint64_t want_ms;
};

ParameterizedTestParameters(retry, delay_follows_the_backoff_list_then_repeats_its_last_entry)
{
    static struct delay_case cases[] = {
        {0, 1 * SEC}, {1, 5 * SEC}, {2, 30 * SEC},   {3, 2 * MIN},
        {4, 2 * MIN}, {5, 2 * MIN}, {1000, 2 * MIN}, {UINT32_MAX, 2 * MIN},
    };
    return cr_make_param_array(struct delay_case, cases, sizeof cases / sizeof cases[0]);
}

ParameterizedTest(struct delay_case *c, retry,
                  delay_follows_the_backoff_list_then_repeats_its_last_entry)
{
    gw_retry_policy p = default_policy();
    cr_assert_eq(gw_retry_delay_ms(&p, c->retry_count), c->want_ms, "count %u: got %llu, want %llu",
                 c->retry_count, (unsigned long long)gw_retry_delay_ms(&p, c->retry_count),
                 (unsigned long long)c->want_ms);
}

Test(retry, delay_of_a_single_entry_backoff_is_that_entry_for_every_count)
{
    static const uint64_t backoff[] = {500};
    gw_retry_policy p = policy(3, 1, backoff);
    cr_assert_eq(gw_retry_delay_ms(&p, 0), 500);
    cr_assert_eq(gw_retry_delay_ms(&p, 1), 500);
    cr_assert_eq(gw_retry_delay_ms(&p, UINT32_MAX), 500);
}

Test(retry, delay_of_a_policy_without_backoff_is_zero)
{
    gw_retry_policy p = {.max_attempts = 3, .n_backoff = 0};
    cr_assert_eq(gw_retry_delay_ms(&p, 0), 0);
}

/* --- clamping an inbound count --- */

struct clamp_case {
    uint32_t max_attempts;
    int64_t raw;
    uint32_t want;
};

ParameterizedTestParameters(retry, clamp_count_keeps_inbound_counts_within_zero_and_max_attempts)
{
    static struct clamp_case cases[] = {
        {5, 0, 0},         {5, 3, 3},  {5, 5, 5},         {5, 6, 5},
        {5, INT64_MAX, 5}, {5, -1, 0}, {5, INT64_MIN, 0}, {5, 4294967296LL, 5},
        {0, 0, 0},         {0, 7, 0},  {0, -7, 0},
    };
    return cr_make_param_array(struct clamp_case, cases, sizeof cases / sizeof cases[0]);
}

ParameterizedTest(struct clamp_case *c, retry,
                  clamp_count_keeps_inbound_counts_within_zero_and_max_attempts)
{
    static const uint64_t backoff[] = {SEC};
    gw_retry_policy p = policy(c->max_attempts, 1, backoff);
    cr_assert_eq(gw_retry_clamp_count(&p, c->raw), c->want, "max %u raw %lld: got %u want %u",
                 c->max_attempts, (long long)c->raw, gw_retry_clamp_count(&p, c->raw), c->want);
}

/* --- the decision table: every reason x count (0, max-1, max, > max, huge) --- */

#define RETRY GW_RETRY_ACTION_RETRY
#define DEAD  GW_RETRY_ACTION_DEAD_LETTER

struct decide_case {
    gw_reason reason;
    uint32_t count;
    bool permanent;
    gw_retry_action want_action;
    uint64_t want_delay_ms;
    uint32_t want_next;
};

/* Policy under test: max_attempts 3, backoff [1s, 5s] (count 2 = max-1 is past the
 * list, so it waits the last entry). */
ParameterizedTestParameters(retry, decide_retries_transient_failures_until_max_attempts)
{
    static struct decide_case cases[] = {
        /* transient, not permanent */
        {GW_REASON_PUBLISH_FAILED, 0, false, RETRY, 1 * SEC, 1},
        {GW_REASON_PUBLISH_FAILED, 2, false, RETRY, 5 * SEC, 3},
        {GW_REASON_PUBLISH_FAILED, 3, false, DEAD, 0, 3},
        {GW_REASON_PUBLISH_FAILED, 4, false, DEAD, 0, 4},
        {GW_REASON_PUBLISH_FAILED, UINT32_MAX, false, DEAD, 0, UINT32_MAX},
        {GW_REASON_UNROUTABLE, 0, false, RETRY, 1 * SEC, 1},
        {GW_REASON_UNROUTABLE, 1, false, RETRY, 5 * SEC, 2},
        {GW_REASON_UNROUTABLE, 2, false, RETRY, 5 * SEC, 3},
        {GW_REASON_UNROUTABLE, 3, false, DEAD, 0, 3},
        {GW_REASON_UNROUTABLE, 4, false, DEAD, 0, 4},
        {GW_REASON_UNROUTABLE, UINT32_MAX, false, DEAD, 0, UINT32_MAX},
        {GW_REASON_REJECTED, 0, false, RETRY, 1 * SEC, 1},
        {GW_REASON_REJECTED, 2, false, RETRY, 5 * SEC, 3},
        {GW_REASON_REJECTED, 3, false, DEAD, 0, 3},
        {GW_REASON_REJECTED, 4, false, DEAD, 0, 4},
        {GW_REASON_REJECTED, UINT32_MAX, false, DEAD, 0, UINT32_MAX},
        /* transient but permanent: dead-letter at once */
        {GW_REASON_PUBLISH_FAILED, 0, true, DEAD, 0, 0},
        {GW_REASON_PUBLISH_FAILED, 2, true, DEAD, 0, 2},
        {GW_REASON_PUBLISH_FAILED, 3, true, DEAD, 0, 3},
        {GW_REASON_UNROUTABLE, 0, true, DEAD, 0, 0},
        {GW_REASON_UNROUTABLE, 2, true, DEAD, 0, 2},
        {GW_REASON_REJECTED, 0, true, DEAD, 0, 0},
        {GW_REASON_REJECTED, UINT32_MAX, true, DEAD, 0, UINT32_MAX},
        /* never retried */
        {GW_REASON_NO_ROUTE, 0, false, DEAD, 0, 0},
        {GW_REASON_NO_ROUTE, 2, false, DEAD, 0, 2},
        {GW_REASON_NO_ROUTE, 3, false, DEAD, 0, 3},
        {GW_REASON_NO_ROUTE, 4, false, DEAD, 0, 4},
        {GW_REASON_NO_ROUTE, UINT32_MAX, false, DEAD, 0, UINT32_MAX},
        {GW_REASON_INVALID_EVENT, 0, false, DEAD, 0, 0},
        {GW_REASON_INVALID_EVENT, 2, false, DEAD, 0, 2},
        {GW_REASON_INVALID_EVENT, 3, false, DEAD, 0, 3},
        {GW_REASON_INVALID_EVENT, 4, false, DEAD, 0, 4},
        {GW_REASON_INVALID_EVENT, UINT32_MAX, false, DEAD, 0, UINT32_MAX},
        {GW_REASON_EXPIRED, 0, false, DEAD, 0, 0},
        {GW_REASON_EXPIRED, 2, false, DEAD, 0, 2},
        {GW_REASON_EXPIRED, 3, false, DEAD, 0, 3},
        {GW_REASON_EXPIRED, 4, false, DEAD, 0, 4},
        {GW_REASON_EXPIRED, UINT32_MAX, false, DEAD, 0, UINT32_MAX},
        {GW_REASON_NO_ROUTE, 0, true, DEAD, 0, 0},
        {GW_REASON_INVALID_EVENT, 0, true, DEAD, 0, 0},
    };
    return cr_make_param_array(struct decide_case, cases, sizeof cases / sizeof cases[0]);
}

ParameterizedTest(struct decide_case *c, retry,
                  decide_retries_transient_failures_until_max_attempts)
{
    static const uint64_t backoff[] = {1 * SEC, 5 * SEC};
    gw_retry_policy p = policy(3, 2, backoff);
    gw_retry_decision d = gw_retry_decide(&p, c->count, c->reason, c->permanent);
    const char *what = gw_reason_name(c->reason);
    cr_assert_eq(d.action, c->want_action, "%s count %u permanent %d: action %s, want %s", what,
                 c->count, c->permanent, gw_retry_action_name(d.action),
                 gw_retry_action_name(c->want_action));
    cr_assert_eq(d.reason, c->reason, "%s count %u: reason changed to %s", what, c->count,
                 gw_reason_name(d.reason));
    cr_assert_eq(d.delay_ms, c->want_delay_ms, "%s count %u: delay %llu, want %llu", what, c->count,
                 (unsigned long long)d.delay_ms, (unsigned long long)c->want_delay_ms);
    cr_assert_eq(d.next_retry_count, c->want_next, "%s count %u: next %u, want %u", what, c->count,
                 d.next_retry_count, c->want_next);
}

Test(retry, max_attempts_zero_dead_letters_every_reason_at_once)
{
    static const uint64_t backoff[] = {1 * SEC};
    gw_retry_policy p = policy(0, 1, backoff);
    for (int r = 0; r < GW_REASON_COUNT; r++) {
        gw_retry_decision d = gw_retry_decide(&p, 0, (gw_reason)r, false);
        cr_assert_eq(d.action, DEAD, "%s retried with max_attempts 0", gw_reason_name(r));
        cr_assert_eq(d.next_retry_count, 0);
        cr_assert_eq(d.reason, (gw_reason)r);
    }
}

Test(retry, the_default_policy_retries_exactly_max_attempts_times_with_growing_delays)
{
    gw_retry_policy p = default_policy();
    static const uint64_t want[] = {1 * SEC, 5 * SEC, 30 * SEC, 2 * MIN, 2 * MIN};
    uint32_t count = 0;
    size_t retries = 0;
    for (;;) {
        gw_retry_decision d = gw_retry_decide(&p, count, GW_REASON_UNROUTABLE, false);
        if (d.action != RETRY)
            break;
        cr_assert_lt(retries, sizeof want / sizeof want[0], "retried more than max_attempts");
        cr_assert_eq(d.delay_ms, want[retries], "retry %zu waits %llu", retries,
                     (unsigned long long)d.delay_ms);
        count = d.next_retry_count;
        retries++;
    }
    cr_assert_eq(retries, 5);
    cr_assert_eq(count, 5);
}

Test(retry, a_clamped_forged_count_dead_letters_at_the_next_failure)
{
    gw_retry_policy p = default_policy();
    uint32_t count = gw_retry_clamp_count(&p, INT64_MAX);
    gw_retry_decision d = gw_retry_decide(&p, count, GW_REASON_PUBLISH_FAILED, false);
    cr_assert_eq(d.action, DEAD);
    cr_assert_eq(d.next_retry_count, 5);
}

/* --- tier naming --- */

struct name_case {
    uint64_t delay_ms;
    char want[32];
};

ParameterizedTestParameters(retry, tier_name_writes_the_delay_in_its_largest_exact_unit)
{
    static struct name_case cases[] = {
        {500, "gw.retry.500ms"},
        {1000, "gw.retry.1s"},
        {90000, "gw.retry.90s"},
        {120000, "gw.retry.2m"},
        {3600000, "gw.retry.1h"},
        {1500, "gw.retry.1500ms"},
        {5400000, "gw.retry.90m"},
        {7200000, "gw.retry.2h"},
        {86400000, "gw.retry.24h"},
        {1, "gw.retry.1ms"},
        {0, "gw.retry.0s"},
        {3601000, "gw.retry.3601s"},
        {UINT64_MAX, "gw.retry.18446744073709551615ms"},
    };
    return cr_make_param_array(struct name_case, cases, sizeof cases / sizeof cases[0]);
}

ParameterizedTest(struct name_case *c, retry, tier_name_writes_the_delay_in_its_largest_exact_unit)
{
    char buf[64];
    size_t n = gw_retry_tier_name("gw", c->delay_ms, buf, sizeof buf);
    cr_assert_str_eq(buf, c->want);
    cr_assert_eq(n, strlen(c->want));
}

Test(retry, tier_name_uses_the_configured_prefix)
{
    char buf[64];
    gw_retry_tier_name("acme.gw", 30 * SEC, buf, sizeof buf);
    cr_assert_str_eq(buf, "acme.gw.retry.30s");
}

/* Only the gateway's own tier queues make an event's x-gw-* headers trusted. */
Test(retry, is_tier_queue_knows_its_own_names_and_nothing_else)
{
    static const struct {
        const char *q;
        bool want;
    } cases[] = {
        {"gw.retry.1s", true},       {"gw.retry.250ms", true},
        {"gw.retry.2m", true},       {"gw.retry.1h", true},
        {"gw.retry.", false},        {"gw.retry.s", false},
        {"gw.retry.1x", false},      {"gw.retry.1s2", false},
        {"gw.retry.-1s", false},     {"gwx.retry.1s", false},
        {"g.retry.1s", false},       {"gw.retryx1s", false},
        {"gw.dlq", false},           {"", false},
        {"acme.gw.retry.1s", false}, {"gw.retry.1sms", false},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++)
        cr_expect_eq(gw_retry_is_tier_queue("gw", cases[i].q, strlen(cases[i].q)), cases[i].want,
                     "%s", cases[i].q);
    cr_expect(gw_retry_is_tier_queue("acme.gw", "acme.gw.retry.30s", 17));
    cr_expect_not(gw_retry_is_tier_queue("gw", NULL, 0));
    char buf[64];
    size_t n = gw_retry_tier_name("gw", 90 * SEC, buf, sizeof buf);
    cr_expect(gw_retry_is_tier_queue("gw", buf, n), "%s", buf);
}

/* The delay part is a duration as duration.h reads it, nothing longer or cut short. */
Test(retry, is_tier_queue_reads_the_delay_as_a_duration)
{
    cr_expect(gw_retry_is_tier_queue("gw", "gw.retry.18446744073709551615ms", 31));
    cr_expect_not(gw_retry_is_tier_queue("gw", "gw.retry.18446744073709551616ms", 31));
    cr_expect_not(gw_retry_is_tier_queue("gw", "gw.retry.1s\0x", 13));
    cr_expect_not(gw_retry_is_tier_queue("gw", "gw.retry.1s", 10), "cut short: \"1\"");
}

Test(retry, tier_name_truncates_and_reports_the_length_it_needed)
{
    char buf[8];
    size_t n = gw_retry_tier_name("gw", 500, buf, sizeof buf);
    cr_assert_eq(n, strlen("gw.retry.500ms"));
    cr_assert_str_eq(buf, "gw.retr");
}

/* --- distinct sorted tiers --- */

static void assert_tiers(const uint64_t *got, size_t n_got, const uint64_t *want, size_t n_want)
{
    cr_assert_eq(n_got, n_want, "%zu tiers, want %zu", n_got, n_want);
    for (size_t i = 0; i < n_want; i++)
        cr_assert_eq(got[i], want[i], "tier %zu is %llu, want %llu", i, (unsigned long long)got[i],
                     (unsigned long long)want[i]);
}

Test(retry, tiers_are_the_distinct_sorted_delays_of_the_default_and_every_override)
{
    static const uint64_t over1[] = {500, 5 * SEC};
    static const uint64_t over2[] = {1 * HOUR, 2 * MIN, 500};
    gw_retry_policy def = default_policy();
    gw_retry_policy o1 = policy(3, 2, over1);
    gw_retry_policy o2 = policy(1, 3, over2);
    const gw_retry_policy *all[] = {&def, &o1, NULL, &o2};
    uint64_t out[GW_RETRY_MAX_TIERS * 4];
    size_t n = gw_retry_tiers(all, 4, out, sizeof out / sizeof out[0]);
    static const uint64_t want[] = {500, 1 * SEC, 5 * SEC, 30 * SEC, 2 * MIN, 1 * HOUR};
    assert_tiers(out, n, want, sizeof want / sizeof want[0]);
    cr_assert_eq(gw_retry_longest_tier(all, 4), 1 * HOUR);
}

Test(retry, tiers_do_not_depend_on_the_order_of_policies)
{
    static const uint64_t a[] = {30 * SEC, 1 * SEC};
    static const uint64_t b[] = {5 * SEC, 1 * SEC, 250};
    gw_retry_policy pa = policy(2, 2, a), pb = policy(2, 3, b);
    const gw_retry_policy *ab[] = {&pa, &pb}, *ba[] = {&pb, &pa};
    uint64_t out1[8], out2[8];
    size_t n1 = gw_retry_tiers(ab, 2, out1, 8);
    size_t n2 = gw_retry_tiers(ba, 2, out2, 8);
    static const uint64_t want[] = {250, 1 * SEC, 5 * SEC, 30 * SEC};
    assert_tiers(out1, n1, want, 4);
    assert_tiers(out2, n2, want, 4);
}

Test(retry, tiers_count_a_delay_repeated_within_one_policy_once)
{
    static const uint64_t same[] = {1 * SEC, 1 * SEC, 1 * SEC};
    gw_retry_policy p = policy(3, 3, same);
    const gw_retry_policy *all[] = {&p};
    uint64_t out[4];
    size_t n = gw_retry_tiers(all, 1, out, 4);
    static const uint64_t want[] = {1 * SEC};
    assert_tiers(out, n, want, 1);
}

Test(retry, tiers_into_a_small_buffer_keep_the_smallest_and_return_the_total)
{
    static const uint64_t big[] = {2 * MIN, 1 * SEC, 1 * HOUR, 500, 30 * SEC, 5 * SEC};
    gw_retry_policy p = policy(6, 6, big);
    const gw_retry_policy *all[] = {&p};
    uint64_t out[3] = {0};
    size_t n = gw_retry_tiers(all, 1, out, 3);
    cr_assert_eq(n, 6);
    static const uint64_t want[] = {500, 1 * SEC, 5 * SEC};
    assert_tiers(out, 3, want, 3);
    cr_assert_eq(gw_retry_tiers(all, 1, NULL, 0), 6);
}

Test(retry, tiers_and_longest_tier_of_no_policy_are_empty)
{
    const gw_retry_policy *none[] = {NULL, NULL};
    uint64_t out[1] = {42};
    cr_assert_eq(gw_retry_tiers(none, 2, out, 1), 0);
    cr_assert_eq(out[0], 42, "an empty result wrote to out");
    cr_assert_eq(gw_retry_longest_tier(none, 2), 0);
    cr_assert_eq(gw_retry_longest_tier(NULL, 0), 0);
}

/* --- deferral while a breaker is open --- */

#define DEFER GW_RETRY_ACTION_DEFER
#define T0    1700000000000ULL /* a wall-clock ms timestamp */

struct defer_case {
    char what[48];
    uint64_t since_ms;
    uint64_t now_ms;
    gw_retry_action want_action;
};

ParameterizedTestParameters(retry, defer_parks_events_until_max_deferral_then_expires_them)
{
    static struct defer_case cases[] = {
        {"just seen", T0, T0, DEFER},
        {"half way", T0, T0 + 30 * MIN, DEFER},
        {"exactly max_deferral", T0, T0 + 1 * HOUR, DEFER},
        {"1 ms past max_deferral", T0, T0 + 1 * HOUR + 1, DEAD},
        {"a day later", T0, T0 + 24 * HOUR, DEAD},
        {"first seen by a clock 5s ahead", T0 + 5 * SEC, T0, DEFER},
        {"first seen exactly max ahead", T0 + 1 * HOUR, T0, DEFER},
        {"first seen implausibly ahead", T0 + 1 * HOUR + 1, T0, DEAD},
        {"bogus far-future header", UINT64_MAX, T0, DEAD},
        {"zero header", 0, T0, DEAD},
    };
    return cr_make_param_array(struct defer_case, cases, sizeof cases / sizeof cases[0]);
}

ParameterizedTest(struct defer_case *c, retry,
                  defer_parks_events_until_max_deferral_then_expires_them)
{
    gw_retry_decision d =
        gw_retry_defer(c->since_ms, c->now_ms, 1 * HOUR, 2 * MIN, 2, GW_REASON_PUBLISH_FAILED);
    cr_assert_eq(d.action, c->want_action, "%s: %s, want %s", c->what,
                 gw_retry_action_name(d.action), gw_retry_action_name(c->want_action));
    cr_assert_eq(d.next_retry_count, 2, "%s: a deferral changed the retry count", c->what);
    if (c->want_action == DEFER) {
        cr_assert_eq(d.delay_ms, 2 * MIN, "%s: not deferred to the longest tier", c->what);
        cr_assert_eq(d.reason, GW_REASON_PUBLISH_FAILED);
    } else {
        cr_assert_eq(d.delay_ms, 0);
        cr_assert_eq(d.reason, GW_REASON_EXPIRED, "%s: reason %s", c->what,
                     gw_reason_name(d.reason));
    }
}
