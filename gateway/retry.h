/* retry.h — the retry policy: failure reason -> retry-or-dead-letter, delay tiers.
 *
 * Pure decisions over a gw_retry_policy: which failures are retried,
 * how long each retry waits, which broker-side delay queues (`<prefix>.retry.<delay>`)
 * the gateway must declare, and when an event deferred by an open circuit breaker
 * has waited too long (SPEC §6, §7). gateway.c calls it when a publish fails, a
 * consumer rejects, or a breaker is open. It never does I/O, logs, reads a clock or
 * allocates: time comes in as milliseconds from the caller.
 */
#ifndef GW_RETRY_H
#define GW_RETRY_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define GW_RETRY_MAX_TIERS 16

/* How often and how long to retry (SPEC §4 retry:, or a route's retry: override).
 * The config and the routing table fill it; this module only reads it. */
typedef struct gw_retry_policy {
    uint32_t max_attempts; /* retries after the first try; 0 = no retry */
    uint64_t backoff_ms[GW_RETRY_MAX_TIERS];
    size_t n_backoff; /* >= 1 */
} gw_retry_policy;

/* Why an event failed or was dead-lettered; the names are the SPEC §6 values of
 * header x-gw-dead-letter-reason. */
typedef enum gw_reason {
    GW_REASON_NO_ROUTE,       /* no route matches the event type: permanent */
    GW_REASON_INVALID_EVENT,  /* no type, unreadable body: permanent */
    GW_REASON_PUBLISH_FAILED, /* nack, confirm timeout, missing exchange: transient */
    GW_REASON_UNROUTABLE,     /* basic.return of a mandatory publish: transient */
    GW_REASON_REJECTED,       /* a consumer rejected it without requeue: transient */
    GW_REASON_EXPIRED,        /* deferred by an open breaker longer than max_deferral */
} gw_reason;

#define GW_REASON_COUNT 6

/* "no_route", "invalid_event", "publish_failed", "unroutable", "rejected",
 * "expired"; "unknown" for a value outside the enum. Static, never NULL. */
const char *gw_reason_name(gw_reason reason);

/* Parses a name gw_reason_name returns (exact, case-sensitive). Returns false and
 * leaves *out untouched when s is NULL or not a reason name. */
bool gw_reason_parse(const char *s, gw_reason *out);

/* True for the reasons worth retrying: publish_failed, unroutable, rejected. */
bool gw_reason_is_transient(gw_reason reason);

typedef enum gw_retry_action {
    GW_RETRY_ACTION_RETRY,       /* republish to the delay queue of delay_ms */
    GW_RETRY_ACTION_DEAD_LETTER, /* publish to the DLQ with reason */
    GW_RETRY_ACTION_DEFER,       /* breaker open: park in the delay queue of delay_ms */
} gw_retry_action;

typedef struct gw_retry_decision {
    gw_retry_action action;
    gw_reason reason;          /* the failure; GW_REASON_EXPIRED for an expired deferral */
    uint64_t delay_ms;         /* RETRY/DEFER: the tier to park in; DEAD_LETTER: 0 */
    uint32_t next_retry_count; /* the x-gw-retry-count the republished copy carries:
                                  RETRY: count + 1; DEFER and DEAD_LETTER: count unchanged */
} gw_retry_decision;

/* Static name of an action: "retry", "dead_letter", "defer". */
const char *gw_retry_action_name(gw_retry_action action);

/* Turns the x-gw-retry-count an inbound message carried (read as a signed integer;
 * 0 when absent) into a count the gateway can trust: negative -> 0, above
 * p->max_attempts -> p->max_attempts (so a forged or stale huge count dead-letters
 * at the next failure instead of overflowing or retrying forever). */
uint32_t gw_retry_clamp_count(const gw_retry_policy *p, int64_t raw_count);

/* Delay before retry number retry_count + 1, where retry_count is the
 * x-gw-retry-count the failed message carried (0 on the first try):
 * backoff_ms[min(retry_count, n_backoff - 1)]. 0 if the policy has no backoff. */
uint64_t gw_retry_delay_ms(const gw_retry_policy *p, uint32_t retry_count);

/* Decides what to do with a failed event. retry_count: the message's clamped
 * x-gw-retry-count (see gw_retry_clamp_count; larger values are still handled).
 * permanent: the failure can never succeed however often it is retried (routing key
 * or header table too large, access refused) even if the reason is transient.
 * RETRY when the reason is transient, !permanent and retry_count < max_attempts
 * (delay gw_retry_delay_ms(p, retry_count), next count retry_count + 1); otherwise
 * DEAD_LETTER with the same reason. max_attempts 0 therefore never retries. */
gw_retry_decision gw_retry_decide(const gw_retry_policy *p, uint32_t retry_count, gw_reason reason,
                                  bool permanent);

/* Decides what to do with an event whose destination's breaker is open.
 * since_ms and now_ms must be read from the SAME clock; the gateway passes the
 * x-gw-first-seen-at header (wall-clock ms since the epoch) and the current
 * wall-clock time, so the deferral budget counts from the first time any gateway
 * instance saw the event and survives restarts and other instances. DEAD_LETTER with
 * GW_REASON_EXPIRED when the two are more than max_deferral_ms apart (strictly
 * greater; a since_ms that far in the FUTURE is not trusted either, otherwise a bogus
 * header would defer forever; smaller skews between instances count as 0 elapsed);
 * else DEFER to longest_tier_ms with retry_count unchanged (a deferral spends no
 * attempt). reason is reported as GW_REASON_EXPIRED for dead-letters and as the
 * caller's reason for deferrals. */
gw_retry_decision gw_retry_defer(uint64_t since_ms, uint64_t now_ms, uint64_t max_deferral_ms,
                                 uint64_t longest_tier_ms, uint32_t retry_count, gw_reason reason);

/* The distinct delays, sorted ascending, over policies[0..n) (NULL entries are
 * skipped: pass the default policy and each route override). Writes the smallest
 * min(total, out_cap) of them to out_ms (out_ms may be NULL when out_cap is 0) and
 * returns the total number of distinct delays, so a return above out_cap means the
 * buffer was too small. At most n * GW_RETRY_MAX_TIERS values exist. */
size_t gw_retry_tiers(const gw_retry_policy *const *policies, size_t n, uint64_t *out_ms,
                      size_t out_cap);

/* The longest delay over policies[0..n) (NULL entries skipped): the tier an open
 * breaker defers to. 0 when there is none. */
uint64_t gw_retry_longest_tier(const gw_retry_policy *const *policies, size_t n);

/* Writes the delay queue name `<prefix>.retry.<delay>` ("gw.retry.1s",
 * "gw.retry.500ms"; the delay as gw_duration_format writes it) into buf.
 * NUL-terminates within len (len > 0); returns the length the full name needs, like
 * snprintf (>= len means it was truncated). */
size_t gw_retry_tier_name(const char *prefix, uint64_t delay_ms, char *buf, size_t len);

/* True when queue[0..len) is one of the gateway's retry tiers for prefix: the name
 * "<prefix>.retry.<delay>" of any delay (tiers of an earlier routing table count too). */
bool gw_retry_is_tier_queue(const char *prefix, const char *queue, size_t len);

#endif
