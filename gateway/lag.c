/* lag.c — rounds of queue-depth questions and their answers (lag.h). Pure. */
#include "lag.h"

#include "alloc.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

void gw_lag_init(gw_lag *l, uint64_t interval_ms)
{
    memset(l, 0, sizeof *l);
    l->interval_ms = interval_ms ? interval_ms : 1;
}

void gw_lag_cleanup(gw_lag *l)
{
    for (size_t i = 0; i < l->n; i++)
        free(l->q[i].name);
    free(l->q);
    l->q = NULL;
    l->n = 0;
}

static void unknown(gw_lag_queue *q, const char *why)
{
    q->messages = -1;
    snprintf(q->why, sizeof q->why, "%s", why);
}

void gw_lag_set_queues(gw_lag *l, const char *const *names, const char *const *roles, size_t n)
{
    gw_lag_queue *q = n ? gw_xcalloc(n, sizeof *q) : NULL;
    for (size_t i = 0; i < n; i++) {
        q[i].name = gw_xstrdup(names[i]);
        q[i].role = roles[i];
        unknown(&q[i], "not measured yet");
        for (size_t k = 0; k < l->n; k++) {
            if (strcmp(l->q[k].name, names[i]) == 0) {
                q[i].messages = l->q[k].messages;
                memcpy(q[i].why, l->q[k].why, sizeof q[i].why);
            }
        }
    }
    gw_lag_cleanup(l);
    l->q = q;
    l->n = n;
    l->in_flight = false;
}

bool gw_lag_due(gw_lag *l, uint64_t now_ms)
{
    if (l->in_flight || l->n == 0)
        return false;
    if (l->asked && now_ms >= l->round_at_ms && now_ms - l->round_at_ms < l->interval_ms)
        return false;
    l->asked = true;
    l->round_at_ms = now_ms;
    l->in_flight = true;
    l->next = 0;
    return true;
}

long gw_lag_answer(gw_lag *l, const char *queue, size_t len, int64_t messages)
{
    for (size_t i = 0; i < l->n; i++) {
        if (strlen(l->q[i].name) == len && memcmp(l->q[i].name, queue, len) == 0) {
            l->q[i].messages = messages;
            l->q[i].why[0] = '\0';
            l->q[i].refused = false;
            if (l->in_flight && i >= l->next) {
                l->next = i + 1;
                if (l->next >= l->n)
                    l->in_flight = false;
            }
            return (long)i;
        }
    }
    return -1;
}

long gw_lag_failed(gw_lag *l, const char *why, bool *first)
{
    if (!l->in_flight || l->next >= l->n)
        return -1;
    size_t failed = l->next;
    *first = !l->q[failed].refused;
    l->q[failed].refused = true;
    char text[GW_LAG_WHY_MAX];
    unknown(&l->q[failed], why);
    snprintf(text, sizeof text, "not asked: the broker refused the question about %.120s",
             l->q[failed].name);
    for (size_t i = failed + 1; i < l->n; i++)
        unknown(&l->q[i], text);
    l->in_flight = false;
    /* asked last from now on, so that one missing queue does not keep the others
     * unmeasured round after round */
    gw_lag_queue f = l->q[failed];
    memmove(&l->q[failed], &l->q[failed + 1], (l->n - failed - 1) * sizeof *l->q);
    l->q[l->n - 1] = f;
    return (long)(l->n - 1);
}

int64_t gw_lag_dlq_age(int64_t messages, int64_t head_ts_s, uint64_t now_wall_ms, char *why,
                       size_t why_len)
{
    if (messages <= 0)
        return 0;
    if (head_ts_s < 0) {
        snprintf(why, why_len,
                 "the broker reports no timestamp for the DLQ's head message (its statistics "
                 "lag the queue by a few seconds; or the head is paged out of memory, or was "
                 "put there without a timestamp by something other than the gateway)");
        return -1;
    }
    int64_t now_s = (int64_t)(now_wall_ms / 1000);
    return now_s > head_ts_s ? now_s - head_ts_s : 0;
}

void gw_lag_reset(gw_lag *l, const char *why)
{
    for (size_t i = 0; i < l->n; i++)
        unknown(&l->q[i], why);
    l->in_flight = false;
    l->asked = false;
}
