/* breaker.c — a circuit breaker per destination exchange (SPEC §7).
 *
 * The state machine and the exchange-name registry. Pure: time comes in as now_ms;
 * the caller logs the transitions this returns. Only the registry allocates.
 */
#include "breaker.h"

#include "alloc.h"

#include <stdlib.h>
#include <string.h>

struct gw_breaker_entry {
    char *exchange; /* owned */
    gw_breaker breaker;
};

/* A threshold or probe count of 0 would open on no failure or never admit a probe;
 * the config rejects both, and the breaker treats them as 1 rather than wedge. */
static uint32_t at_least_one(uint32_t v)
{
    return v == 0 ? 1 : v;
}

void gw_breaker_init(gw_breaker *b, const gw_breaker_config *cfg)
{
    memset(b, 0, sizeof *b);
    b->cfg = *cfg;
    b->state = GW_BREAKER_CLOSED;
}

void gw_breaker_configure(gw_breaker *b, const gw_breaker_config *cfg)
{
    b->cfg = *cfg;
}

static bool elapsed(uint64_t since_ms, uint64_t now_ms, uint64_t span_ms)
{
    return now_ms >= since_ms && now_ms - since_ms >= span_ms;
}

static void open_at(gw_breaker *b, uint64_t now_ms)
{
    b->state = GW_BREAKER_OPEN;
    b->opened_at_ms = now_ms;
    b->since_ms = now_ms;
    b->probes_in_flight = 0;
    b->total_opens++;
}

gw_breaker_transition gw_breaker_tick(gw_breaker *b, uint64_t now_ms)
{
    if (b->state != GW_BREAKER_OPEN || !elapsed(b->opened_at_ms, now_ms, b->cfg.open_for_ms))
        return GW_BREAKER_TRANSITION_NONE;
    b->state = GW_BREAKER_HALF_OPEN;
    b->probes_in_flight = 0;
    b->probe_window_at_ms = now_ms;
    b->since_ms = now_ms;
    return GW_BREAKER_TRANSITION_HALF_OPENED;
}

bool gw_breaker_allow(gw_breaker *b, uint64_t now_ms)
{
    gw_breaker_tick(b, now_ms);
    switch (b->state) {
    case GW_BREAKER_CLOSED:
        return true;
    case GW_BREAKER_OPEN:
        break;
    case GW_BREAKER_HALF_OPEN:
        if (b->probes_in_flight >= at_least_one(b->cfg.half_open_probes) &&
            elapsed(b->probe_window_at_ms, now_ms, b->cfg.open_for_ms)) {
            /* Probes out for a whole open_for without an outcome were lost by
             * the caller; free their slots rather than stay half-open forever. */
            b->probes_in_flight = 0;
        }
        if (b->probes_in_flight < at_least_one(b->cfg.half_open_probes)) {
            if (b->probes_in_flight == 0)
                b->probe_window_at_ms = now_ms;
            b->probes_in_flight++;
            return true;
        }
        break;
    }
    b->total_refused++;
    return false;
}

gw_breaker_transition gw_breaker_record(gw_breaker *b, bool success, uint64_t now_ms)
{
    gw_breaker_transition ticked = gw_breaker_tick(b, now_ms);
    switch (b->state) {
    case GW_BREAKER_CLOSED:
        if (success) {
            b->consecutive_failures = 0;
            return GW_BREAKER_TRANSITION_NONE;
        }
        if (b->consecutive_failures < UINT32_MAX)
            b->consecutive_failures++;
        if (b->consecutive_failures < at_least_one(b->cfg.failure_threshold))
            return GW_BREAKER_TRANSITION_NONE;
        open_at(b, now_ms);
        return GW_BREAKER_TRANSITION_OPENED;
    case GW_BREAKER_OPEN:
        /* A late outcome of a request admitted before it opened: neither closes
         * it nor extends the window. */
        return ticked;
    case GW_BREAKER_HALF_OPEN:
        if (b->probes_in_flight == 0)
            return ticked; /* not a probe's outcome */
        b->probes_in_flight--;
        if (success) {
            b->state = GW_BREAKER_CLOSED;
            b->consecutive_failures = 0;
            b->probes_in_flight = 0;
            b->since_ms = now_ms;
            return GW_BREAKER_TRANSITION_CLOSED;
        }
        if (b->consecutive_failures < UINT32_MAX)
            b->consecutive_failures++;
        open_at(b, now_ms);
        return GW_BREAKER_TRANSITION_REOPENED;
    }
    return GW_BREAKER_TRANSITION_NONE;
}

void gw_breaker_cancel(gw_breaker *b)
{
    if (b->state == GW_BREAKER_HALF_OPEN && b->probes_in_flight > 0)
        b->probes_in_flight--;
}

const char *gw_breaker_state_name(gw_breaker_state state)
{
    switch (state) {
    case GW_BREAKER_CLOSED:
        return "closed";
    case GW_BREAKER_OPEN:
        return "open";
    case GW_BREAKER_HALF_OPEN:
        return "half_open";
    }
    return "unknown";
}

const char *gw_breaker_transition_name(gw_breaker_transition t)
{
    switch (t) {
    case GW_BREAKER_TRANSITION_NONE:
        return "none";
    case GW_BREAKER_TRANSITION_OPENED:
        return "opened";
    case GW_BREAKER_TRANSITION_HALF_OPENED:
        return "half_opened";
    case GW_BREAKER_TRANSITION_CLOSED:
        return "closed";
    case GW_BREAKER_TRANSITION_REOPENED:
        return "reopened";
    }
    return "unknown";
}

void gw_breakers_init(gw_breakers *bs, const gw_breaker_config *cfg)
{
    memset(bs, 0, sizeof *bs);
    bs->cfg = *cfg;
}

void gw_breakers_cleanup(gw_breakers *bs)
{
    for (size_t i = 0; i < bs->n; i++) {
        free(bs->entries[i]->exchange);
        free(bs->entries[i]);
    }
    free(bs->entries);
    bs->entries = NULL;
    bs->n = 0;
    bs->cap = 0;
}

gw_breaker *gw_breakers_find(const gw_breakers *bs, const char *exchange)
{
    for (size_t i = 0; i < bs->n; i++) {
        if (strcmp(bs->entries[i]->exchange, exchange) == 0)
            return &bs->entries[i]->breaker;
    }
    return NULL;
}

gw_breaker *gw_breakers_get(gw_breakers *bs, const char *exchange)
{
    gw_breaker *found = gw_breakers_find(bs, exchange);
    if (found != NULL)
        return found;
    if (bs->n == bs->cap) {
        bs->cap = bs->cap == 0 ? 8 : bs->cap * 2;
        bs->entries = gw_xrealloc(bs->entries, bs->cap * sizeof *bs->entries);
    }
    /* Entries are allocated one by one so a breaker's address survives growth. */
    gw_breaker_entry *e = gw_xmalloc(sizeof *e);
    e->exchange = gw_xstrdup(exchange);
    gw_breaker_init(&e->breaker, &bs->cfg);
    bs->entries[bs->n++] = e;
    return &e->breaker;
}

void gw_breakers_configure(gw_breakers *bs, const gw_breaker_config *cfg)
{
    bs->cfg = *cfg;
    for (size_t i = 0; i < bs->n; i++)
        gw_breaker_configure(&bs->entries[i]->breaker, cfg);
}

size_t gw_breakers_count(const gw_breakers *bs)
{
    return bs->n;
}

gw_breaker *gw_breakers_at(const gw_breakers *bs, size_t i, const char **exchange)
{
    if (i >= bs->n)
        return NULL;
    if (exchange != NULL)
        *exchange = bs->entries[i]->exchange;
    return &bs->entries[i]->breaker;
}
