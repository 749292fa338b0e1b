/* test_breaker.c — unit tests of the circuit breaker (breaker.h) with an injected
 * clock: every transition, late results, lost probes, and the exchange registry.
 *
 * Most tests are a table of steps run against one breaker: an operation at a time
 * now_ms, what it must return and the state it must leave. */
#include "breaker.h"

#include <criterion/criterion.h>

#include <stdio.h>
#include <string.h>

enum op { ALLOW, OK, FAIL, TICK, CANCEL };

struct step {
    enum op op;
    uint64_t now_ms;
    int want; /* ALLOW: 1/0; OK/FAIL/TICK: gw_breaker_transition; CANCEL: ignored */
    gw_breaker_state want_state;
};

#define NONE        GW_BREAKER_TRANSITION_NONE
#define OPENED      GW_BREAKER_TRANSITION_OPENED
#define HALF_OPENED GW_BREAKER_TRANSITION_HALF_OPENED
#define CLOSED_T    GW_BREAKER_TRANSITION_CLOSED
#define REOPENED    GW_BREAKER_TRANSITION_REOPENED
#define CLOSED      GW_BREAKER_CLOSED
#define OPEN        GW_BREAKER_OPEN
#define HALF        GW_BREAKER_HALF_OPEN

/* threshold 3, open_for 1000 ms, 2 probes, max_deferral 1 h */
static const gw_breaker_config cfg3 = {
    .failure_threshold = 3,
    .open_for_ms = 1000,
    .half_open_probes = 2,
    .max_deferral_ms = 3600000,
};

static const char *op_name(enum op op)
{
    static const char *const names[] = {"allow", "ok", "fail", "tick", "cancel"};
    return names[op];
}

static void run_steps(gw_breaker *b, const struct step *steps, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        const struct step *s = &steps[i];
        int got = 0;
        switch (s->op) {
        case ALLOW:
            got = gw_breaker_allow(b, s->now_ms);
            cr_assert_eq(got, s->want, "step %zu: allow@%llu returned %d, want %d", i,
                         (unsigned long long)s->now_ms, got, s->want);
            break;
        case OK:
        case FAIL:
            got = gw_breaker_record(b, s->op == OK, s->now_ms);
            break;
        case TICK:
            got = gw_breaker_tick(b, s->now_ms);
            break;
        case CANCEL:
            gw_breaker_cancel(b);
            got = s->want;
            break;
        }
        if (s->op != ALLOW && s->op != CANCEL)
            cr_assert_eq(got, s->want, "step %zu: %s@%llu returned %s, want %s", i, op_name(s->op),
                         (unsigned long long)s->now_ms,
                         gw_breaker_transition_name((gw_breaker_transition)got),
                         gw_breaker_transition_name((gw_breaker_transition)s->want));
        cr_assert_eq(b->state, s->want_state, "step %zu: %s@%llu left %s, want %s", i,
                     op_name(s->op), (unsigned long long)s->now_ms, gw_breaker_state_name(b->state),
                     gw_breaker_state_name(s->want_state));
    }
}

#define RUN(b, steps) run_steps((b), (steps), sizeof(steps) / sizeof((steps)[0]))

/* Opens the breaker at time t with three failures at t. */
static const struct step open_at_100[] = {
    {FAIL, 100, NONE, CLOSED},
    {FAIL, 100, NONE, CLOSED},
    {FAIL, 100, OPENED, OPEN},
};

static gw_breaker opened_breaker(void)
{
    gw_breaker b;
    gw_breaker_init(&b, &cfg3);
    RUN(&b, open_at_100);
    return b;
}

Test(breaker, starts_closed_and_allows_requests)
{
    gw_breaker b;
    gw_breaker_init(&b, &cfg3);
    cr_assert_eq(b.state, CLOSED);
    cr_assert_eq(b.consecutive_failures, 0);
    cr_assert_eq(b.total_opens, 0);
    cr_assert(gw_breaker_allow(&b, 0));
    cr_assert(gw_breaker_allow(&b, 0));
}

Test(breaker, opens_after_exactly_threshold_consecutive_failures)
{
    gw_breaker b;
    gw_breaker_init(&b, &cfg3);
    static const struct step steps[] = {
        {FAIL, 10, NONE, CLOSED},
        {FAIL, 20, NONE, CLOSED}, /* threshold - 1: still closed */
        {ALLOW, 25, 1, CLOSED},
        {FAIL, 30, OPENED, OPEN},
    };
    RUN(&b, steps);
    cr_assert_eq(b.consecutive_failures, 3, "the log line quotes %u failures",
                 b.consecutive_failures);
    cr_assert_eq(b.total_opens, 1);
    cr_assert_eq(b.opened_at_ms, 30);
}

Test(breaker, a_success_resets_the_consecutive_failure_count)
{
    gw_breaker b;
    gw_breaker_init(&b, &cfg3);
    static const struct step steps[] = {
        {FAIL, 1, NONE, CLOSED}, {FAIL, 2, NONE, CLOSED}, {OK, 3, NONE, CLOSED},
        {FAIL, 4, NONE, CLOSED}, {FAIL, 5, NONE, CLOSED}, {FAIL, 6, OPENED, OPEN},
    };
    RUN(&b, steps);
}

Test(breaker, threshold_one_opens_on_the_first_failure)
{
    gw_breaker_config c = cfg3;
    c.failure_threshold = 1;
    gw_breaker b;
    gw_breaker_init(&b, &c);
    static const struct step steps[] = {{FAIL, 0, OPENED, OPEN}};
    RUN(&b, steps);
}

Test(breaker, a_zero_threshold_or_probe_count_acts_as_one)
{
    gw_breaker_config c = cfg3;
    c.failure_threshold = 0;
    c.half_open_probes = 0;
    gw_breaker b;
    gw_breaker_init(&b, &c);
    static const struct step steps[] = {
        {OK, 0, NONE, CLOSED},
        {FAIL, 1, OPENED, OPEN},
        {ALLOW, 1001, 1, HALF},
        {ALLOW, 1001, 0, HALF},
    };
    RUN(&b, steps);
}

Test(breaker, open_refuses_every_request_and_counts_them)
{
    gw_breaker b = opened_breaker();
    static const struct step steps[] = {
        {ALLOW, 100, 0, OPEN},
        {ALLOW, 500, 0, OPEN},
        {ALLOW, 1099, 0, OPEN},
    };
    RUN(&b, steps);
    cr_assert_eq(b.total_refused, 3);
}

Test(breaker, open_turns_half_open_exactly_open_for_after_opening)
{
    gw_breaker b = opened_breaker();
    static const struct step steps[] = {
        {ALLOW, 1099, 0, OPEN}, /* 1 ms before */
        {ALLOW, 1100, 1, HALF}, /* exactly open_for */
    };
    RUN(&b, steps);
}

Test(breaker, tick_reports_the_half_open_change_once)
{
    gw_breaker b = opened_breaker();
    static const struct step steps[] = {
        {TICK, 1099, NONE, OPEN},
        {TICK, 1100, HALF_OPENED, HALF},
        {TICK, 1101, NONE, HALF},
        {TICK, 5000, NONE, HALF},
    };
    RUN(&b, steps);
}

Test(breaker, half_open_admits_exactly_half_open_probes_then_refuses)
{
    gw_breaker b = opened_breaker();
    static const struct step steps[] = {
        {ALLOW, 1100, 1, HALF},
        {ALLOW, 1100, 1, HALF},
        {ALLOW, 1100, 0, HALF},
        {ALLOW, 1200, 0, HALF},
    };
    RUN(&b, steps);
    cr_assert_eq(b.probes_in_flight, 2);
}

Test(breaker, a_probe_success_closes_it_and_resets_the_counts)
{
    gw_breaker b = opened_breaker();
    static const struct step steps[] = {
        {ALLOW, 1100, 1, HALF},
        {OK, 1150, CLOSED_T, CLOSED},
        {ALLOW, 1151, 1, CLOSED},
        {FAIL, 1152, NONE, CLOSED},
        {FAIL, 1153, NONE, CLOSED},
        {FAIL, 1154, OPENED, OPEN}, /* a full threshold again, not one failure */
    };
    RUN(&b, steps);
    cr_assert_eq(b.total_opens, 2);
}

Test(breaker, a_probe_failure_reopens_it_for_a_new_open_for_window)
{
    gw_breaker b = opened_breaker();
    static const struct step steps[] = {
        {ALLOW, 1100, 1, HALF}, {FAIL, 1500, REOPENED, OPEN},
        {ALLOW, 1500, 0, OPEN}, {ALLOW, 2100, 0, OPEN}, /* the old window would end here */
        {ALLOW, 2499, 0, OPEN}, {ALLOW, 2500, 1, HALF},
    };
    RUN(&b, steps);
    cr_assert_eq(b.total_opens, 2);
    cr_assert_eq(b.opened_at_ms, 1500);
    cr_assert_eq(b.consecutive_failures, 4);
}

Test(breaker, a_late_success_while_open_does_not_close_it)
{
    gw_breaker b = opened_breaker();
    static const struct step steps[] = {
        {OK, 200, NONE, OPEN},
        {OK, 300, NONE, OPEN},
        {ALLOW, 300, 0, OPEN},
    };
    RUN(&b, steps);
    cr_assert_eq(b.consecutive_failures, 3);
}

Test(breaker, a_late_failure_while_open_does_not_extend_the_window)
{
    gw_breaker b = opened_breaker();
    static const struct step steps[] = {
        {FAIL, 900, NONE, OPEN},
        {FAIL, 1099, NONE, OPEN},
        {ALLOW, 1100, 1, HALF},
    };
    RUN(&b, steps);
    cr_assert_eq(b.total_opens, 1);
    cr_assert_eq(b.opened_at_ms, 100);
}

Test(breaker, a_late_result_in_half_open_with_no_probe_out_is_ignored)
{
    gw_breaker b = opened_breaker();
    static const struct step steps[] = {
        {TICK, 1100, HALF_OPENED, HALF},
        {FAIL, 1110, NONE, HALF},
        {OK, 1120, NONE, HALF},
        {ALLOW, 1130, 1, HALF},
    };
    RUN(&b, steps);
}

Test(breaker, a_late_result_after_open_for_reports_the_half_open_change)
{
    gw_breaker b = opened_breaker();
    static const struct step steps[] = {
        {OK, 1100, HALF_OPENED, HALF}, /* applies the tick; not a probe, so ignored */
        {ALLOW, 1100, 1, HALF},
    };
    RUN(&b, steps);
}

Test(breaker, the_remaining_probe_outcomes_after_closing_count_as_closed_results)
{
    gw_breaker b = opened_breaker();
    static const struct step steps[] = {
        {ALLOW, 1100, 1, HALF},
        {ALLOW, 1100, 1, HALF},
        {OK, 1200, CLOSED_T, CLOSED},
        {FAIL, 1210, NONE, CLOSED},
    };
    RUN(&b, steps);
    cr_assert_eq(b.consecutive_failures, 1);
    cr_assert_eq(b.probes_in_flight, 0);
}

Test(breaker, the_remaining_probe_outcomes_after_reopening_are_ignored)
{
    gw_breaker b = opened_breaker();
    static const struct step steps[] = {
        {ALLOW, 1100, 1, HALF}, {ALLOW, 1100, 1, HALF},   {FAIL, 1200, REOPENED, OPEN},
        {OK, 1210, NONE, OPEN}, {FAIL, 1220, NONE, OPEN}, {ALLOW, 2199, 0, OPEN},
        {ALLOW, 2200, 1, HALF},
    };
    RUN(&b, steps);
}

Test(breaker, cancel_releases_a_probe_slot_without_a_verdict)
{
    gw_breaker_config c = cfg3;
    c.half_open_probes = 1;
    gw_breaker b;
    gw_breaker_init(&b, &c);
    static const struct step steps[] = {
        {FAIL, 0, NONE, CLOSED}, {FAIL, 0, NONE, CLOSED},      {FAIL, 0, OPENED, OPEN},
        {ALLOW, 1000, 1, HALF},  {ALLOW, 1000, 0, HALF},       {CANCEL, 1000, 0, HALF},
        {ALLOW, 1001, 1, HALF},  {OK, 1002, CLOSED_T, CLOSED},
    };
    RUN(&b, steps);
}

Test(breaker, cancel_outside_half_open_changes_nothing)
{
    gw_breaker b;
    gw_breaker_init(&b, &cfg3);
    gw_breaker_record(&b, false, 0);
    gw_breaker_cancel(&b);
    cr_assert_eq(b.state, CLOSED);
    cr_assert_eq(b.consecutive_failures, 1);
    cr_assert_eq(b.probes_in_flight, 0);
}

Test(breaker, probes_lost_for_a_whole_open_for_are_written_off)
{
    gw_breaker b = opened_breaker();
    static const struct step steps[] = {
        {ALLOW, 1100, 1, HALF}, {ALLOW, 1100, 1, HALF}, {ALLOW, 1500, 0, HALF},
        {ALLOW, 2099, 0, HALF}, {ALLOW, 2100, 1, HALF}, {ALLOW, 2100, 1, HALF},
        {ALLOW, 2100, 0, HALF},
    };
    RUN(&b, steps);
}

Test(breaker, a_full_outage_cycles_through_every_state)
{
    gw_breaker b;
    gw_breaker_init(&b, &cfg3);
    static const struct step steps[] = {
        {ALLOW, 0, 1, CLOSED},           {OK, 1, NONE, CLOSED},    {FAIL, 10, NONE, CLOSED},
        {FAIL, 20, NONE, CLOSED},        {FAIL, 30, OPENED, OPEN}, {ALLOW, 40, 0, OPEN},
        {TICK, 1030, HALF_OPENED, HALF}, {ALLOW, 1030, 1, HALF},   {FAIL, 1040, REOPENED, OPEN},
        {ALLOW, 2039, 0, OPEN},          {ALLOW, 2040, 1, HALF},   {OK, 2050, CLOSED_T, CLOSED},
        {ALLOW, 2060, 1, CLOSED},
    };
    RUN(&b, steps);
    cr_assert_eq(b.total_opens, 2);
    cr_assert_eq(b.consecutive_failures, 0);
}

Test(breaker, since_ms_is_when_it_entered_its_current_state)
{
    gw_breaker b;
    gw_breaker_init(&b, &cfg3);
    cr_assert_eq(b.since_ms, 0, "closed since init");
    for (uint64_t t = 10; t <= 30; t += 10) {
        cr_assert(gw_breaker_allow(&b, t));
        gw_breaker_record(&b, false, t);
    }
    cr_assert_eq(b.state, GW_BREAKER_OPEN);
    cr_assert_eq(b.since_ms, 30);
    cr_assert(!gw_breaker_allow(&b, 500));
    cr_assert_eq(b.since_ms, 30, "a refusal is no change of state");
    /* no event: the tick alone turns it half-open, at the tick's time */
    cr_assert_eq(gw_breaker_tick(&b, 1200), GW_BREAKER_TRANSITION_HALF_OPENED);
    cr_assert_eq(b.since_ms, 1200);
    cr_assert(gw_breaker_allow(&b, 1300));
    cr_assert_eq(gw_breaker_record(&b, true, 1310), GW_BREAKER_TRANSITION_CLOSED);
    cr_assert_eq(b.state, GW_BREAKER_CLOSED);
    cr_assert_eq(b.since_ms, 1310);
}

Test(breaker, configure_keeps_the_state_and_applies_the_new_window)
{
    gw_breaker b = opened_breaker();
    gw_breaker_config c = cfg3;
    c.open_for_ms = 5000;
    gw_breaker_configure(&b, &c);
    cr_assert_eq(b.state, OPEN);
    static const struct step steps[] = {{ALLOW, 1100, 0, OPEN}, {ALLOW, 5100, 1, HALF}};
    RUN(&b, steps);
}

Test(breaker, a_clock_before_the_opening_never_half_opens_it)
{
    gw_breaker b = opened_breaker();
    static const struct step steps[] = {{ALLOW, 0, 0, OPEN}, {TICK, 99, NONE, OPEN}};
    RUN(&b, steps);
}

Test(breaker, state_and_transition_names_are_stable)
{
    cr_assert_str_eq(gw_breaker_state_name(CLOSED), "closed");
    cr_assert_str_eq(gw_breaker_state_name(OPEN), "open");
    cr_assert_str_eq(gw_breaker_state_name(HALF), "half_open");
    cr_assert_str_eq(gw_breaker_state_name((gw_breaker_state)7), "unknown");
    cr_assert_eq((int)CLOSED, 0);
    cr_assert_eq((int)OPEN, 1);
    cr_assert_eq((int)HALF, 2);
    cr_assert_str_eq(gw_breaker_transition_name(NONE), "none");
    cr_assert_str_eq(gw_breaker_transition_name(OPENED), "opened");
    cr_assert_str_eq(gw_breaker_transition_name(HALF_OPENED), "half_opened");
    cr_assert_str_eq(gw_breaker_transition_name(CLOSED_T), "closed");
    cr_assert_str_eq(gw_breaker_transition_name(REOPENED), "reopened");
    cr_assert_str_eq(gw_breaker_transition_name((gw_breaker_transition)9), "unknown");
}

/* --- the registry --- */

Test(breaker, registry_creates_a_separate_breaker_per_exchange)
{
    gw_breakers bs;
    gw_breakers_init(&bs, &cfg3);
    gw_breaker *orders = gw_breakers_get(&bs, "orders");
    gw_breaker *audit = gw_breakers_get(&bs, "audit");
    cr_assert_neq(orders, audit);
    cr_assert_eq(gw_breakers_get(&bs, "orders"), orders, "a second get created another");
    for (int i = 0; i < 3; i++)
        gw_breaker_record(orders, false, 10);
    cr_assert_eq(orders->state, OPEN);
    cr_assert_eq(audit->state, CLOSED, "a failure on orders touched audit");
    cr_assert(gw_breaker_allow(audit, 20));
    cr_assert_eq(gw_breakers_count(&bs), 2);
    gw_breakers_cleanup(&bs);
}

Test(breaker, registry_find_does_not_create)
{
    gw_breakers bs;
    gw_breakers_init(&bs, &cfg3);
    cr_assert_null(gw_breakers_find(&bs, "orders"));
    cr_assert_eq(gw_breakers_count(&bs), 0);
    gw_breaker *b = gw_breakers_get(&bs, "orders");
    cr_assert_eq(gw_breakers_find(&bs, "orders"), b);
    cr_assert_null(gw_breakers_find(&bs, "order"));
    gw_breakers_cleanup(&bs);
}

Test(breaker, registry_breakers_keep_their_address_as_the_registry_grows)
{
    gw_breakers bs;
    gw_breakers_init(&bs, &cfg3);
    gw_breaker *first = gw_breakers_get(&bs, "first");
    gw_breaker_record(first, false, 0);
    char name[32];
    for (int i = 0; i < 200; i++) {
        snprintf(name, sizeof name, "exchange.%d", i);
        gw_breakers_get(&bs, name);
    }
    cr_assert_eq(gw_breakers_get(&bs, "first"), first);
    cr_assert_eq(first->consecutive_failures, 1);
    cr_assert_eq(gw_breakers_count(&bs), 201);
    gw_breakers_cleanup(&bs);
}

Test(breaker, registry_iterates_in_creation_order_with_names)
{
    gw_breakers bs;
    gw_breakers_init(&bs, &cfg3);
    static const char *const names[] = {"orders", "", "audit"};
    for (size_t i = 0; i < 3; i++)
        gw_breakers_get(&bs, names[i]);
    gw_breakers_get(&bs, "orders");
    cr_assert_eq(gw_breakers_count(&bs), 3);
    for (size_t i = 0; i < 3; i++) {
        const char *ex = NULL;
        gw_breaker *b = gw_breakers_at(&bs, i, &ex);
        cr_assert_not_null(b);
        cr_assert_str_eq(ex, names[i]);
        cr_assert_eq(gw_breakers_find(&bs, names[i]), b);
    }
    cr_assert_null(gw_breakers_at(&bs, 3, NULL));
    gw_breakers_cleanup(&bs);
    cr_assert_eq(gw_breakers_count(&bs), 0);
}

Test(breaker, registry_configure_reaches_existing_and_new_breakers)
{
    gw_breakers bs;
    gw_breakers_init(&bs, &cfg3);
    gw_breaker *old = gw_breakers_get(&bs, "old");
    gw_breaker_config c = cfg3;
    c.failure_threshold = 1;
    gw_breakers_configure(&bs, &c);
    gw_breaker *fresh = gw_breakers_get(&bs, "fresh");
    cr_assert_eq(gw_breaker_record(old, false, 0), OPENED);
    cr_assert_eq(gw_breaker_record(fresh, false, 0), OPENED);
    gw_breakers_cleanup(&bs);
}

Test(breaker, registry_cleanup_of_an_empty_registry_is_fine)
{
    gw_breakers bs;
    gw_breakers_init(&bs, &cfg3);
    gw_breakers_cleanup(&bs);
    gw_breakers_cleanup(&bs);
    cr_assert_eq(gw_breakers_count(&bs), 0);
}
