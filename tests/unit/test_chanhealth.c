/* test_chanhealth.c — unit tests of when a nack-wedged publisher channel is replaced
 * (chanhealth.h), with an injected clock. */
#include "chanhealth.h"

#include <criterion/criterion.h>

#define N  GW_CHANHEALTH_STREAK
#define IV GW_CHANHEALTH_MIN_INTERVAL_MS

Test(chanhealth, replaced_after_a_streak_of_nacks)
{
    gw_chanhealth h = {0};
    for (int i = 1; i < N; i++)
        cr_assert_not(gw_chanhealth_confirm(&h, false, 1000), "nack %d of %d", i, N);
    cr_assert(gw_chanhealth_confirm(&h, false, 1000));
}

Test(chanhealth, an_ack_breaks_the_streak)
{
    gw_chanhealth h = {0};
    for (int round = 0; round < 10; round++) {
        for (int i = 1; i < N; i++)
            cr_assert_not(gw_chanhealth_confirm(&h, false, 1000));
        cr_assert_not(gw_chanhealth_confirm(&h, true, 1000));
    }
    cr_assert_eq(h.nack_streak, 0);
}

Test(chanhealth, acks_alone_never_replace)
{
    gw_chanhealth h = {0};
    for (int i = 0; i < 1000; i++)
        cr_assert_not(gw_chanhealth_confirm(&h, true, (uint64_t)i));
}

Test(chanhealth, at_most_one_replacement_per_interval)
{
    gw_chanhealth h = {0};
    uint64_t t = 50000;
    for (int i = 1; i < N; i++)
        gw_chanhealth_confirm(&h, false, t);
    cr_assert(gw_chanhealth_confirm(&h, false, t));
    gw_chanhealth_replaced(&h, t);
    cr_assert_eq(h.nack_streak, 0, "the new channel starts its own streak");
    /* the new channel nacks everything too: no second replacement before the interval */
    int replaced = 0;
    for (uint64_t now = t; now < t + IV; now += 10)
        replaced += gw_chanhealth_confirm(&h, false, now);
    cr_assert_eq(replaced, 0);
    cr_assert(gw_chanhealth_confirm(&h, false, t + IV), "due once the interval has passed");
}

Test(chanhealth, a_streak_kept_past_the_interval_replaces_at_once)
{
    gw_chanhealth h = {0};
    gw_chanhealth_replaced(&h, 1000);
    for (int i = 0; i < N + 5; i++)
        cr_assert_not(gw_chanhealth_confirm(&h, false, 1000 + IV - 1));
    cr_assert(gw_chanhealth_confirm(&h, false, 1000 + IV));
}

Test(chanhealth, a_clock_behind_the_last_replacement_does_not_block_it)
{
    gw_chanhealth h = {0};
    gw_chanhealth_replaced(&h, 90000);
    for (int i = 1; i < N; i++)
        gw_chanhealth_confirm(&h, false, 10);
    cr_assert(gw_chanhealth_confirm(&h, false, 10));
}

Test(chanhealth, the_streak_counter_does_not_wrap)
{
    gw_chanhealth h = {0};
    gw_chanhealth_replaced(&h, 0);
    for (int i = 0; i < 100000; i++)
        gw_chanhealth_confirm(&h, false, 1);
    cr_assert_eq(h.nack_streak, N);
}
