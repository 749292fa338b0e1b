/* replay.h — `amqp-gw replay`: move dead-lettered events back (SPEC §9).
 *
 * Option parsing and the filter are pure (unit-tested); gw_replay_main drives a
 * session: it consumes the DLQ, republishes the matching messages to their original
 * exchange and routing key (or through the inbound queue), acks each DLQ copy only
 * after its republish is confirmed, and puts every other message back in place.
 */
#ifndef GW_REPLAY_H
#define GW_REPLAY_H

#include "delivery.h"
#include "err.h"
#include "retry.h"
#include "str.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef struct gw_replay_opts {
    const char *config_path;
    const char *queue;     /* NULL = the configured DLQ */
    const char *type_glob; /* pattern over the event type (route syntax), or NULL */
    bool has_reason;
    gw_reason reason;
    const char *route;    /* exact x-gw-route value, or NULL */
    uint64_t since_ms;    /* 0 = no limit; else dead-lettered within this long ago */
    uint64_t limit;       /* 0 = no limit */
    double rate;          /* messages per second; 0 = unlimited */
    bool to_inbound;      /* false: original exchange and routing key */
    uint32_t max_replays; /* default 3 */
    bool dry_run;
    bool version; /* --version: print it and stop */
} gw_replay_opts;

/* Parses argv (argv[0] is "replay"). On a usage error returns GW_ERR_USAGE with a
 * one-line message in err. --help sets *help. */
gw_err gw_replay_parse_args(int argc, char **argv, gw_replay_opts *o, bool *help, char *err,
                            size_t err_len);

/* What the filter looks at, read from a DLQ message's properties and headers. */
typedef struct gw_replay_view {
    gw_str type;               /* type property */
    gw_str reason;             /* x-gw-dead-letter-reason when a string, else ptr NULL */
    gw_str route;              /* x-gw-route when a string, else ptr NULL */
    bool has_dead_lettered_at; /* x-gw-dead-lettered-at is an integer */
    int64_t dead_lettered_at_ms;
    int64_t replay_count; /* x-gw-replay-count, 0 if absent or not an integer */
} gw_replay_view;

/* The filter's view of delivery d (borrowed from d). */
gw_replay_view gw_replay_view_of(const gw_delivery *d);

typedef enum gw_replay_verdict {
    GW_REPLAY_MOVE,
    GW_REPLAY_NO_MATCH,
    GW_REPLAY_MAX_REPLAYS, /* matches, but already replayed max_replays times */
} gw_replay_verdict;

/* Decides what happens to one message; now_ms is wall-clock ms. */
gw_replay_verdict gw_replay_filter(const gw_replay_opts *o, const gw_replay_view *v,
                                   uint64_t now_ms);

/* Runs `amqp-gw replay ARGS`: returns the exit code (0 ok, 1 failure, 2 usage). */
int gw_replay_main(int argc, char **argv);

#endif
