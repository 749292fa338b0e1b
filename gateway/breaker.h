/* breaker.h — a circuit breaker per destination exchange (SPEC §7).
 *
 * CLOSED -> OPEN after failure_threshold consecutive failures; OPEN refuses every
 * request (the caller defers the event without spending an attempt); after open_for
 * it turns HALF_OPEN and admits half_open_probes requests at a time; a probe's
 * success closes it, a probe's failure reopens it for a new open_for window.
 * gateway.c asks gw_breaker_allow before publishing to an exchange and reports each
 * publish's outcome with gw_breaker_record, logging every transition it returns.
 * Pure: no I/O, no logging, no clock reads — time comes in as now_ms, a monotonic
 * millisecond clock (gw_clock_mono_ms), the same one for every call on a breaker.
 *
 * Results that were not asked for by the current state (late results):
 * - while OPEN, every result is ignored: a late success from a request allowed
 *   before it opened does not close it, and a late failure does not extend the
 *   window (opened_at stays), so an outage ends open_for after the last opening;
 * - while HALF_OPEN with no probe in flight, results are ignored likewise (they
 *   cannot be probe outcomes); with probes in flight a result is taken as a probe's
 *   outcome — the API has no ticket, so a late result then stands in for a probe;
 * - while CLOSED, every result counts as usual.
 * Probes admitted in HALF_OPEN are released by gw_breaker_record or
 * gw_breaker_cancel. A probe that never reports (a bug, a lost connection the caller
 * did not record) is written off after open_for_ms so the breaker cannot stay stuck.
 */
#ifndef GW_BREAKER_H
#define GW_BREAKER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* SPEC §4 circuit_breaker:, filled by the config. */
typedef struct gw_breaker_config {
    uint32_t failure_threshold; /* default 5 */
    uint64_t open_for_ms;       /* default 30s */
    uint32_t half_open_probes;  /* default 1 */
    uint64_t max_deferral_ms;   /* default 1h; for gw_retry_defer, the breaker ignores it */
} gw_breaker_config;

/* Values are stable: they are the metrics gauge (0 closed, 1 open, 2 half-open). */
typedef enum gw_breaker_state {
    GW_BREAKER_CLOSED = 0,
    GW_BREAKER_OPEN = 1,
    GW_BREAKER_HALF_OPEN = 2,
} gw_breaker_state;

typedef enum gw_breaker_transition {
    GW_BREAKER_TRANSITION_NONE,
    GW_BREAKER_TRANSITION_OPENED,      /* CLOSED -> OPEN */
    GW_BREAKER_TRANSITION_HALF_OPENED, /* OPEN -> HALF_OPEN (open_for elapsed) */
    GW_BREAKER_TRANSITION_CLOSED,      /* HALF_OPEN -> CLOSED (a probe succeeded) */
    GW_BREAKER_TRANSITION_REOPENED,    /* HALF_OPEN -> OPEN (a probe failed) */
} gw_breaker_transition;

/* Caller's storage; read the fields freely, change them only through the functions. */
typedef struct gw_breaker {
    gw_breaker_config cfg; /* a copy; 0 threshold/probes act as 1 */
    gw_breaker_state state;
    uint32_t consecutive_failures; /* failures since the last success or close; kept
                                      while OPEN so a log line can quote it */
    uint32_t probes_in_flight;     /* HALF_OPEN: admitted, no outcome yet */
    uint64_t opened_at_ms;         /* when it last opened (OPEN) */
    uint64_t probe_window_at_ms;   /* HALF_OPEN: since when the current probes are out */
    uint64_t since_ms;             /* when it entered its current state (0: CLOSED since init) */
    uint64_t total_opens;          /* OPENED + REOPENED transitions */
    uint64_t total_refused;        /* requests gw_breaker_allow refused */
} gw_breaker;

/* Starts CLOSED with zero counts and a copy of *cfg. */
void gw_breaker_init(gw_breaker *b, const gw_breaker_config *cfg);

/* Replaces the configuration (SIGHUP reload) keeping state and counts; a new
 * open_for applies to the current window too. */
void gw_breaker_configure(gw_breaker *b, const gw_breaker_config *cfg);

/* Applies the time-driven change: OPEN -> HALF_OPEN once now_ms - opened_at_ms >=
 * open_for_ms (exactly open_for counts). Returns GW_BREAKER_TRANSITION_HALF_OPENED
 * when that happened now, else NONE. gateway.c calls it for every breaker on each turn
 * of its loop, so an open breaker reads half-open once open_for has passed whether or
 * not an event arrives (and logs it, and sets the gauge); gw_breaker_allow and
 * gw_breaker_record apply it too. */
gw_breaker_transition gw_breaker_tick(gw_breaker *b, uint64_t now_ms);

/* May a request go to this destination now? CLOSED: yes. OPEN: no (counted in
 * total_refused), unless open_for has elapsed, which makes it HALF_OPEN first.
 * HALF_OPEN: yes while fewer than half_open_probes probes are in flight, and then
 * the request is a probe counted in flight until gw_breaker_record or
 * gw_breaker_cancel; no otherwise. Every true must be followed by exactly one
 * gw_breaker_record or gw_breaker_cancel. */
bool gw_breaker_allow(gw_breaker *b, uint64_t now_ms);

/* Reports the outcome of a request gw_breaker_allow admitted. Applies gw_breaker_tick
 * first. CLOSED: success resets consecutive_failures; the failure that makes it
 * failure_threshold opens it (OPENED). HALF_OPEN with probes in flight: releases
 * one; success closes it (CLOSED, counts reset), failure reopens it with a new
 * open_for window from now_ms (REOPENED). Other late results: see the file comment.
 * Returns the transition that happened (HALF_OPENED when only the tick changed it). */
gw_breaker_transition gw_breaker_record(gw_breaker *b, bool success, uint64_t now_ms);

/* Releases a request gw_breaker_allow admitted but that was never attempted
 * (shutdown, connection lost before publishing): no verdict, only the probe slot. */
void gw_breaker_cancel(gw_breaker *b);

/* "closed", "open", "half_open"; "unknown" outside the enum. Static. */
const char *gw_breaker_state_name(gw_breaker_state state);

/* "none", "opened", "half_opened", "closed", "reopened"; "unknown" outside. Static. */
const char *gw_breaker_transition_name(gw_breaker_transition t);

/* The registry: destination exchange name -> its breaker, created CLOSED on first
 * use with the registry's config. Linear search: a routing table names few
 * exchanges. Caller's storage. */
typedef struct gw_breaker_entry gw_breaker_entry;

typedef struct gw_breakers {
    gw_breaker_config cfg;
    gw_breaker_entry **entries; /* owned; each entry owned, address stable */
    size_t n;
    size_t cap;
} gw_breakers;

void gw_breakers_init(gw_breakers *bs, const gw_breaker_config *cfg);

/* Frees every breaker; pointers from gw_breakers_get/_find/_at become invalid. */
void gw_breakers_cleanup(gw_breakers *bs);

/* The breaker for exchange (the default exchange "" is a name like any other),
 * created on first use. Borrowed: valid until gw_breakers_cleanup, whatever other
 * breakers are created meanwhile. Aborts only on out-of-memory. */
gw_breaker *gw_breakers_get(gw_breakers *bs, const char *exchange);

/* The breaker for exchange, or NULL if none was created. Borrowed. */
gw_breaker *gw_breakers_find(const gw_breakers *bs, const char *exchange);

/* Applies cfg to the registry and every existing breaker (gw_breaker_configure). */
void gw_breakers_configure(gw_breakers *bs, const gw_breaker_config *cfg);

/* Iteration for metrics, in creation order, i < gw_breakers_count(bs) (NULL past
 * the end). Sets *exchange (borrowed) when exchange is not NULL. */
size_t gw_breakers_count(const gw_breakers *bs);
gw_breaker *gw_breakers_at(const gw_breakers *bs, size_t i, const char **exchange);

#endif
