/* delivery.h — one consumed message as the gateway reads it: a plain view, filled once.
 *
 * session.c fills a gw_delivery from rabbitmq-c's structures when a message arrives
 * (basic.deliver or basic.get), in ONE scan of its header table: the envelope, the
 * properties, the CloudEvents attributes of the AMQP binding, the gateway's own
 * x-gw-* headers, the broker's x-death, and every entry of the table with its encoded
 * size (what copy.c lays a copy out over). Code above the session reads a delivery
 * through this view only; what it means (origin, trust, type, ids) is decided by
 * intake.c, what its copies carry by copy.c. The view decides nothing: it reports what
 * is there, including values of the wrong kind. This file declares plain data and the
 * header-name table; no I/O.
 *
 * Every gw_str is borrowed from the message and valid until gw_msg_free; ptr NULL
 * means absent (present-but-empty has ptr != NULL, len 0). Nothing is NUL-terminated.
 */
#ifndef GW_DELIVERY_H
#define GW_DELIVERY_H

#include "str.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* The headers a delivery view picks out of the table, one slot each. The names are in
 * headers.h (GW_H_*); gw_delivery_header_find maps a key to its slot. */
typedef enum gw_delivery_header {
    /* CloudEvents AMQP binding: both prefixes ("cloudEvents_" and "cloudEvents:") */
    GW_DH_CE_TYPE,
    GW_DH_CE_TYPE_COLON,
    GW_DH_CE_ID,
    GW_DH_CE_ID_COLON,
    /* the gateway's own (SPEC §6) */
    GW_DH_CORRELATION_ID, /* x-correlation-id */
    GW_DH_ROUTE,
    GW_DH_RETRY_COUNT,
    GW_DH_FIRST_SEEN_AT,
    GW_DH_LAST_ERROR,
    GW_DH_RETRY_DESTINATION,
    GW_DH_RETRY_ROUTING_KEY,
    GW_DH_DEAD_LETTER_REASON,
    GW_DH_ORIGINAL_EXCHANGE,
    GW_DH_ORIGINAL_ROUTING_KEY,
    GW_DH_DEAD_LETTERED_AT,
    GW_DH_REPLAYED_AT,
    GW_DH_REPLAY_COUNT,
    GW_DH_COUNT
} gw_delivery_header;

/* The slot for header key (exact, case-sensitive, as AMQP table keys are), or
 * GW_DH_COUNT when the view does not keep that header. */
gw_delivery_header gw_delivery_header_find(gw_str key);

/* The header name of a slot ("cloudEvents_type", "x-gw-retry-count", ...); NULL for
 * GW_DH_COUNT or a value outside the enum. Static. */
const char *gw_delivery_header_name(gw_delivery_header h);

/* One header value. A table may hold a key twice: the first occurrence counts. */
typedef struct gw_header_value {
    gw_str str;   /* the value when it is a string or byte array; ptr NULL otherwise */
    int64_t i;    /* that integer; an unsigned value above INT64_MAX reads INT64_MAX */
    bool present; /* the key is in the table, with a value of any kind */
    bool has_int; /* the value is an integer of any width or a timestamp */
} gw_header_value;

/* One entry of the header table, as it is on the wire. */
typedef struct gw_delivery_entry {
    gw_str key;
    size_t bytes; /* its encoded table entry: key length byte, key, kind byte, value */
    gw_str str;   /* its value when a string (long string or bytes); ptr NULL otherwise */
    int64_t i;    /* its value when has_int (as gw_header_value.i) */
    bool has_int; /* the value is an integer of any width or a timestamp */
    gw_delivery_header slot; /* gw_delivery_header_find(key): GW_DH_COUNT for a key the view
                                keeps no slot for (every x-gw-* name the gateway writes has one) */
} gw_delivery_entry;

/* One entry of the broker's x-death header (RabbitMQ keeps them most recent first).
 * queue and reason are strings, or the entry is not reported at all. */
typedef struct gw_xdeath_entry {
    gw_str queue;               /* the queue the message was dead-lettered from */
    gw_str reason;              /* "rejected", "expired", "maxlen", "delivery_limit" */
    gw_str original_expiration; /* the per-message TTL the broker removed; ptr NULL when
                                   absent or not a string */
} gw_xdeath_entry;

typedef struct gw_delivery {
    /* envelope */
    uint64_t delivery_tag;
    gw_str consumer_tag; /* the consumer it was delivered to */
    gw_str exchange;     /* as published */
    gw_str routing_key;  /* as published */

    /* properties (ptr NULL when the flag is not set) */
    gw_str type;
    gw_str message_id;
    gw_str correlation_id;
    gw_str expiration;
    bool has_timestamp; /* the timestamp property is set */

    gw_str body; /* never NULL: an empty body is ptr != NULL, len 0 */

    /* Encoded bytes of the content header's payload without the four properties
     * correlation_id, message_id, type and expiration and without the headers table: the
     * 14 fixed bytes (class, weight, body size, flags), every other short-string property
     * present, and 10 for delivery mode, priority and timestamp (counted whether set or
     * not). */
    size_t other_bytes;

    /* headers */
    size_t n_headers;                 /* entries in the table (0 without one) */
    const gw_delivery_entry *headers; /* all n_headers of them, in table order (x-death too) */
    gw_header_value h[GW_DH_COUNT];   /* indexed by gw_delivery_header */
    bool has_xdeath_latest;           /* x-death is an array whose first entry is a table
                                         with a string queue and reason */
    gw_xdeath_entry xdeath_latest;    /* that first entry, when has_xdeath_latest */
    gw_str xdeath_rejected_queue;     /* queue of the most recent entry with reason
                                         "rejected" (a consumer's reject or nack); ptr NULL
                                         when none */
} gw_delivery;

#endif
