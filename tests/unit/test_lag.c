/* test_lag.c — unit tests of the queue-depth rounds (lag.h): when a round is due, answers
 * matched to queues, a failure in the middle of a round, a new set of queues, a reset. */
#include "lag.h"

#include <criterion/criterion.h>

#include <string.h>

static const char *const names[] = {"gw.inbound", "gw.dlq", "gw.rejected", "gw.retry.1000"};
static const char *const roles[] = {"inbound", "dlq", "rejected", "retry"};

static void setup4(gw_lag *l)
{
    gw_lag_init(l, 5000);
    gw_lag_set_queues(l, names, roles, 4);
}

static long answer(gw_lag *l, const char *q, int64_t n)
{
    return gw_lag_answer(l, q, strlen(q), n);
}

Test(lag, the_first_round_is_due_at_once_then_every_interval)
{
    gw_lag l;
    setup4(&l);
    cr_assert_eq(l.q[0].messages, -1);
    cr_assert_str_eq(l.q[0].why, "not measured yet");
    cr_assert(gw_lag_due(&l, 100));
    for (size_t i = 0; i < 4; i++)
        cr_assert_eq(answer(&l, names[i], (int64_t)i * 10), (long)i);
    cr_assert(!l.in_flight);
    cr_assert(!gw_lag_due(&l, 5099), "1 ms before the interval");
    cr_assert(gw_lag_due(&l, 5100));
    gw_lag_cleanup(&l);
}

Test(lag, no_second_round_while_one_is_in_flight)
{
    gw_lag l;
    setup4(&l);
    cr_assert(gw_lag_due(&l, 0));
    answer(&l, "gw.inbound", 1);
    cr_assert(!gw_lag_due(&l, 60000), "three answers are still open");
    answer(&l, "gw.dlq", 2);
    answer(&l, "gw.rejected", 3);
    answer(&l, "gw.retry.1000", 4);
    cr_assert(gw_lag_due(&l, 60000));
    gw_lag_cleanup(&l);
}

Test(lag, answers_set_each_queue_depth_by_name)
{
    gw_lag l;
    setup4(&l);
    gw_lag_due(&l, 0);
    answer(&l, "gw.inbound", 12);
    answer(&l, "gw.dlq", 0);
    cr_assert_eq(l.q[0].messages, 12);
    cr_assert_eq(l.q[1].messages, 0);
    cr_assert_str_eq(l.q[1].why, "");
    cr_assert_eq(l.q[2].messages, -1, "not answered yet");
    cr_assert_eq(answer(&l, "gw.other", 5), -1, "not one of ours");
    cr_assert_eq(answer(&l, "gw.dl", 5), -1, "a prefix is not a name");
    gw_lag_cleanup(&l);
}

Test(lag, a_failure_answers_the_oldest_open_question_and_moves_it_last)
{
    gw_lag l;
    setup4(&l);
    gw_lag_due(&l, 0);
    answer(&l, "gw.inbound", 1);
    bool first = false;
    long at = gw_lag_failed(&l, "404 NOT_FOUND - no queue 'gw.dlq' in vhost '/'", &first);
    cr_assert_eq(at, 3);
    cr_assert(first);
    cr_assert_str_eq(l.q[3].name, "gw.dlq");
    cr_assert_eq(l.q[3].messages, -1);
    cr_assert_str_eq(l.q[3].why, "404 NOT_FOUND - no queue 'gw.dlq' in vhost '/'");
    cr_assert_str_eq(l.q[1].name, "gw.rejected");
    cr_assert_eq(l.q[1].messages, -1);
    cr_assert_str_eq(l.q[1].why, "not asked: the broker refused the question about gw.dlq");
    cr_assert_eq(l.q[0].messages, 1, "an answer before the failure stands");
    cr_assert(!l.in_flight);
    cr_assert_eq(gw_lag_failed(&l, "again", &first), -1, "no round in flight");
    /* the next round asks gw.dlq last: the others are measured */
    cr_assert(gw_lag_due(&l, 5000));
    answer(&l, "gw.inbound", 2);
    answer(&l, "gw.rejected", 3);
    answer(&l, "gw.retry.1000", 4);
    cr_assert_eq(gw_lag_failed(&l, "404 again", &first), 3);
    cr_assert_not(first, "refused again: said once");
    cr_assert_eq(l.q[1].messages, 3);
    cr_assert_eq(l.q[2].messages, 4);
    cr_assert(gw_lag_due(&l, 10000));
    answer(&l, "gw.inbound", 2);
    answer(&l, "gw.rejected", 3);
    answer(&l, "gw.retry.1000", 4);
    answer(&l, "gw.dlq", 0);
    cr_assert(!l.in_flight);
    cr_assert(gw_lag_due(&l, 15000));
    answer(&l, "gw.inbound", 2);
    answer(&l, "gw.rejected", 3);
    answer(&l, "gw.retry.1000", 4);
    cr_assert_str_eq(l.q[3].name, "gw.dlq");
    cr_assert_eq(gw_lag_failed(&l, "404 once more", &first), 3);
    cr_assert(first, "refused after an answer: said again");
    gw_lag_cleanup(&l);
}

Test(lag, a_new_set_keeps_known_depths_and_drops_the_round_in_flight)
{
    gw_lag l;
    setup4(&l);
    gw_lag_due(&l, 0);
    answer(&l, "gw.inbound", 7);
    static const char *const names2[] = {"gw.retry.30000", "gw.inbound"};
    static const char *const roles2[] = {"retry", "inbound"};
    gw_lag_set_queues(&l, names2, roles2, 2);
    cr_assert_eq(l.n, 2);
    cr_assert_eq(l.q[1].messages, 7);
    cr_assert_eq(l.q[0].messages, -1);
    cr_assert(!l.in_flight);
    cr_assert_eq(answer(&l, "gw.dlq", 1), -1, "a late answer for a queue no longer measured");
    gw_lag_cleanup(&l);
}

Test(lag, a_reset_makes_every_depth_unknown_and_the_next_round_due_at_once)
{
    gw_lag l;
    setup4(&l);
    gw_lag_due(&l, 1000);
    answer(&l, "gw.inbound", 7);
    gw_lag_reset(&l, "not connected");
    cr_assert_eq(l.q[0].messages, -1);
    cr_assert_str_eq(l.q[0].why, "not connected");
    cr_assert(gw_lag_due(&l, 1001));
    gw_lag_cleanup(&l);
}

Test(lag, nothing_is_due_without_queues)
{
    gw_lag l;
    gw_lag_init(&l, 0);
    cr_assert(!gw_lag_due(&l, 0));
    gw_lag_cleanup(&l);
    gw_lag_cleanup(&l);
}

Test(lag, the_dlq_age_is_zero_when_empty_and_counts_from_the_head_timestamp)
{
    char why[300] = "";
    cr_assert_eq(gw_lag_dlq_age(0, -1, 1700000000000ULL, why, sizeof why), 0);
    cr_assert_eq(gw_lag_dlq_age(3, 1699999900, 1700000000999ULL, why, sizeof why), 100);
    cr_assert_eq(gw_lag_dlq_age(3, 1700000500, 1700000000000ULL, why, sizeof why), 0,
                 "a timestamp ahead of now reads 0, never negative");
    cr_assert_str_eq(why, "");
    cr_assert_eq(gw_lag_dlq_age(3, -1, 1700000000000ULL, why, sizeof why), -1);
    cr_assert_not_null(strstr(why, "no timestamp"), "%s", why);
}
