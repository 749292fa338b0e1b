/* retry.c — the retry policy: failure reason -> retry-or-dead-letter, delay tiers.
 *
 * Pure: every answer is computed from the policy and the numbers passed in. The
 * broker holds pending retries (delay queues with a TTL dead-lettering back to the
 * inbound queue); this file only says which queue and whether at all.
 */
#include "retry.h"

#include "duration.h"

#include <stdio.h>
#include <string.h>

static const char *const reason_names[GW_REASON_COUNT] = {
    [GW_REASON_NO_ROUTE] = "no_route",
    [GW_REASON_INVALID_EVENT] = "invalid_event",
    [GW_REASON_PUBLISH_FAILED] = "publish_failed",
    [GW_REASON_UNROUTABLE] = "unroutable",
    [GW_REASON_REJECTED] = "rejected",
    [GW_REASON_EXPIRED] = "expired",
};

const char *gw_reason_name(gw_reason reason)
{
    if ((unsigned)reason >= GW_REASON_COUNT)
        return "unknown";
    return reason_names[reason];
}

bool gw_reason_parse(const char *s, gw_reason *out)
{
    if (s == NULL)
        return false;
    for (unsigned i = 0; i < GW_REASON_COUNT; i++) {
        if (strcmp(s, reason_names[i]) == 0) {
            *out = (gw_reason)i;
            return true;
        }
    }
    return false;
}

bool gw_reason_is_transient(gw_reason reason)
{
    return reason == GW_REASON_PUBLISH_FAILED || reason == GW_REASON_UNROUTABLE ||
           reason == GW_REASON_REJECTED;
}

const char *gw_retry_action_name(gw_retry_action action)
{
    switch (action) {
    case GW_RETRY_ACTION_RETRY:
        return "retry";
    case GW_RETRY_ACTION_DEAD_LETTER:
        return "dead_letter";
    case GW_RETRY_ACTION_DEFER:
        return "defer";
    }
    return "unknown";
}

uint32_t gw_retry_clamp_count(const gw_retry_policy *p, int64_t raw_count)
{
    if (raw_count < 0)
        return 0;
    if ((uint64_t)raw_count > p->max_attempts)
        return p->max_attempts;
    return (uint32_t)raw_count;
}

/* n_backoff is >= 1 and <= GW_RETRY_MAX_TIERS for a loaded config; cap it anyway so
 * a hand-built policy cannot make us read past the array. */
static size_t backoff_len(const gw_retry_policy *p)
{
    return p->n_backoff < GW_RETRY_MAX_TIERS ? p->n_backoff : GW_RETRY_MAX_TIERS;
}

uint64_t gw_retry_delay_ms(const gw_retry_policy *p, uint32_t retry_count)
{
    size_t n = backoff_len(p);
    if (n == 0)
        return 0;
    size_t i = retry_count < n - 1 ? retry_count : n - 1;
    return p->backoff_ms[i];
}

gw_retry_decision gw_retry_decide(const gw_retry_policy *p, uint32_t retry_count, gw_reason reason,
                                  bool permanent)
{
    gw_retry_decision d = {
        .action = GW_RETRY_ACTION_DEAD_LETTER,
        .reason = reason,
        .delay_ms = 0,
        .next_retry_count = retry_count,
    };
    /* retry_count < max_attempts (both uint32) also guarantees count + 1 fits. */
    if (gw_reason_is_transient(reason) && !permanent && retry_count < p->max_attempts) {
        d.action = GW_RETRY_ACTION_RETRY;
        d.delay_ms = gw_retry_delay_ms(p, retry_count);
        d.next_retry_count = retry_count + 1;
    }
    return d;
}

gw_retry_decision gw_retry_defer(uint64_t since_ms, uint64_t now_ms, uint64_t max_deferral_ms,
                                 uint64_t longest_tier_ms, uint32_t retry_count, gw_reason reason)
{
    uint64_t apart = now_ms >= since_ms ? now_ms - since_ms : since_ms - now_ms;
    gw_retry_decision d = {
        .action = GW_RETRY_ACTION_DEFER,
        .reason = reason,
        .delay_ms = longest_tier_ms,
        .next_retry_count = retry_count,
    };
    if (apart > max_deferral_ms) {
        d.action = GW_RETRY_ACTION_DEAD_LETTER;
        d.reason = GW_REASON_EXPIRED;
        d.delay_ms = 0;
    }
    return d;
}

/* True when value occurs among the delays that come before (pi, bi) in the
 * policies' order: the first occurrence of each delay is the one that counts. */
static bool seen_before(const gw_retry_policy *const *policies, size_t pi, size_t bi,
                        uint64_t value)
{
    for (size_t i = 0; i <= pi; i++) {
        if (policies[i] == NULL)
            continue;
        size_t end = i < pi ? backoff_len(policies[i]) : bi;
        for (size_t j = 0; j < end; j++) {
            if (policies[i]->backoff_ms[j] == value)
                return true;
        }
    }
    return false;
}

/* Inserts value into the ascending out[0..*n) holding at most cap values; when
 * full, the largest value falls off (or value is dropped if it is the largest). */
static void insert_bounded(uint64_t *out, size_t *n, size_t cap, uint64_t value)
{
    size_t pos = *n;
    while (pos > 0 && out[pos - 1] > value)
        pos--;
    if (pos >= cap)
        return;
    size_t last = *n < cap ? *n : cap - 1;
    memmove(&out[pos + 1], &out[pos], (last - pos) * sizeof *out);
    out[pos] = value;
    if (*n < cap)
        (*n)++;
}

size_t gw_retry_tiers(const gw_retry_policy *const *policies, size_t n, uint64_t *out_ms,
                      size_t out_cap)
{
    size_t total = 0, written = 0;
    for (size_t pi = 0; pi < n; pi++) {
        if (policies[pi] == NULL)
            continue;
        size_t len = backoff_len(policies[pi]);
        for (size_t bi = 0; bi < len; bi++) {
            uint64_t v = policies[pi]->backoff_ms[bi];
            if (seen_before(policies, pi, bi, v))
                continue;
            total++;
            if (out_cap > 0)
                insert_bounded(out_ms, &written, out_cap, v);
        }
    }
    return total;
}

uint64_t gw_retry_longest_tier(const gw_retry_policy *const *policies, size_t n)
{
    uint64_t longest = 0;
    for (size_t pi = 0; pi < n; pi++) {
        if (policies[pi] == NULL)
            continue;
        size_t len = backoff_len(policies[pi]);
        for (size_t bi = 0; bi < len; bi++) {
            if (policies[pi]->backoff_ms[bi] > longest)
                longest = policies[pi]->backoff_ms[bi];
        }
    }
    return longest;
}

static size_t format_result(int r)
{
    return r < 0 ? 0 : (size_t)r;
}

bool gw_retry_is_tier_queue(const char *prefix, const char *queue, size_t len)
{
    static const char mid[] = ".retry.";
    size_t plen = strlen(prefix), mlen = sizeof mid - 1;
    if (queue == NULL || len <= plen + mlen)
        return false;
    if (memcmp(queue, prefix, plen) != 0 || memcmp(queue + plen, mid, mlen) != 0)
        return false;
    /* <digits><unit>, as gw_duration_format writes it */
    char delay[GW_DURATION_TEXT_CAP];
    size_t dlen = len - plen - mlen;
    if (dlen >= sizeof delay || memchr(queue + plen + mlen, '\0', dlen))
        return false;
    memcpy(delay, queue + plen + mlen, dlen);
    delay[dlen] = '\0';
    uint64_t ms;
    return gw_duration_parse(delay, &ms);
}

size_t gw_retry_tier_name(const char *prefix, uint64_t delay_ms, char *buf, size_t len)
{
    char delay[GW_DURATION_TEXT_CAP];
    gw_duration_format(delay_ms, delay, sizeof delay);
    return format_result(snprintf(buf, len, "%s.retry.%s", prefix, delay));
}
