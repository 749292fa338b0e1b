/* headers.h — the x-gw-* header rules (SPEC §6), pure.
 *
 * Decides the VALUES the gateway puts on a republished message — correlation_id,
 * message_id, the truncated x-gw-last-error — and which inbound header keys are
 * the gateway's (overwritten) or the broker's (kept, never written). It also
 * sizes AMQP table entries and the room x-gw-last-error gets, for copy.c, which
 * decides what each copy carries. This module knows no rabbitmq-c type, never logs
 * and takes randomness as input.
 */
#ifndef GW_HEADERS_H
#define GW_HEADERS_H

#include "str.h"
#include "uuid.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Header names the gateway writes. */
#define GW_H_CORRELATION_ID       "x-correlation-id"
#define GW_H_ROUTE                "x-gw-route"
#define GW_H_RETRY_COUNT          "x-gw-retry-count"
#define GW_H_FIRST_SEEN_AT        "x-gw-first-seen-at"
#define GW_H_LAST_ERROR           "x-gw-last-error"
#define GW_H_RETRY_DESTINATION    "x-gw-retry-destination"
#define GW_H_RETRY_ROUTING_KEY    "x-gw-retry-routing-key"
#define GW_H_DEAD_LETTER_REASON   "x-gw-dead-letter-reason"
#define GW_H_ORIGINAL_EXCHANGE    "x-gw-original-exchange"
#define GW_H_ORIGINAL_ROUTING_KEY "x-gw-original-routing-key"
#define GW_H_DEAD_LETTERED_AT     "x-gw-dead-lettered-at"
#define GW_H_REPLAYED_AT          "x-gw-replayed-at"
#define GW_H_REPLAY_COUNT         "x-gw-replay-count"

/* CloudEvents attributes of the AMQP binding a delivery view picks out (delivery.h). */
#define GW_H_CE_TYPE       "cloudEvents_type"
#define GW_H_CE_TYPE_COLON "cloudEvents:type"
#define GW_H_CE_ID         "cloudEvents_id"
#define GW_H_CE_ID_COLON   "cloudEvents:id"

/* Broker-owned header read for retries of downstream rejections. */
#define GW_H_X_DEATH "x-death"

#define GW_HEADERS_SHORTSTR_MAX    255  /* AMQP short string: correlation_id, message_id, type */
#define GW_HEADERS_ERROR_MAX_BYTES 1024 /* x-gw-last-error never exceeds this */
#define GW_HEADERS_FRAME_OVERHEAD  8    /* frame header (type, channel, size) + frame-end */
#define GW_HEADERS_CONTENT_FIXED   14   /* class-id, weight, body-size, property flags */

/* Where an id came from. */
typedef enum gw_id_origin {
    GW_ID_KEPT,             /* the message's own property */
    GW_ID_FROM_HEADER,      /* correlation_id: header x-correlation-id */
    GW_ID_FROM_CLOUDEVENTS, /* message_id: the CloudEvents id */
    GW_ID_GENERATED,        /* a new UUIDv4 */
} gw_id_origin;

typedef struct gw_event_ids {
    char correlation_id[GW_HEADERS_SHORTSTR_MAX + 1]; /* NUL-terminated */
    size_t correlation_id_len; /* exact; a kept property may hold a NUL byte */
    gw_id_origin correlation_origin;
    char message_id[GW_HEADERS_SHORTSTR_MAX + 1];
    size_t message_id_len;
    gw_id_origin message_origin;
} gw_event_ids;

/* Picks the correlation_id and message_id of a republished message (SPEC §6).
 *   correlation_id: the property if set; else header x-correlation-id; else a new
 *                   UUIDv4 from random32[0..16).
 *   message_id:     the property if set; else ce_id; else a new UUIDv4 from
 *                   random32[16..32).
 * All inputs are borrowed views (ptr NULL = absent). A value counts as "set" only
 * when it is 1..255 bytes; an empty or over-long value is treated as absent (AMQP
 * short strings hold at most 255 bytes, and an empty id correlates nothing). The
 * header x-correlation-id is also treated as absent when it contains a NUL byte.
 * random32 is always read; the caller supplies fresh random bytes per message. */
void gw_headers_ids(gw_str correlation_id, gw_str header_correlation_id, gw_str message_id,
                    gw_str ce_id, const uint8_t random32[32], gw_event_ids *out);

/* Bytes the encoded basic properties (flags excluded) may take in one content
 * header frame: frame_max - GW_HEADERS_FRAME_OVERHEAD - GW_HEADERS_CONTENT_FIXED,
 * or 0 when frame_max is smaller. frame_max 0 (no limit negotiated) gives SIZE_MAX. */
size_t gw_headers_props_room(size_t frame_max);

/* Encoded size of one AMQP field-table entry: 1 (key length) + key_len + 1 (kind)
 * + the value. kind is the field kind letter of the RabbitMQ table grammar:
 *   'S' long string, 'x' byte array, 'F' table, 'A' array: 4 + value_len (value_len
 *       = bytes after the 4-byte length prefix);
 *   't' 'b' 'B': 1; 's' 'u': 2; 'I' 'i' 'f': 4; 'l' 'L' 'd' 'T': 8; 'D': 5; 'V': 0
 *       (value_len ignored).
 * An unknown kind gives SIZE_MAX, so a fits-in-frame check fails closed. */
size_t gw_headers_entry_size(size_t key_len, char kind, size_t value_len);

/* Largest x-gw-last-error value (bytes) that still fits the frame. existing_props_bytes
 * is the encoded size of every other property of the publish, including the whole
 * headers table (its 4-byte length and every entry) except the x-gw-last-error entry.
 * Returns 0 when even an empty value does not fit — the caller must then treat the
 * publish as too large (a permanent error), since no truncation can save it. */
size_t gw_headers_error_budget(size_t frame_max, size_t existing_props_bytes);

/* Writes the x-gw-last-error value for err[0..err_len) into out (out_cap bytes,
 * always NUL-terminated when out_cap > 0). The result is at most
 * min(budget, GW_HEADERS_ERROR_MAX_BYTES, out_cap - 1) bytes and always well-formed
 * UTF-8: invalid bytes and NUL bytes become '?'. When err is longer, it is cut at a
 * character boundary and "…[truncated N bytes]" is appended (N = bytes of err
 * dropped); if the limit is too small even for that marker, the result is a bare
 * prefix. Returns the length written (excluding the NUL). */
size_t gw_headers_truncate_error(const char *err, size_t err_len, size_t budget, char *out,
                                 size_t out_cap);

/* True for keys the gateway owns and overwrites instead of duplicating: every
 * "x-gw-" key and "x-correlation-id" (case-sensitive, as AMQP table keys are). A
 * producer-supplied x-gw-* header is replaced by the gateway's value, or dropped
 * when the gateway has none to set. */
bool gw_headers_is_gateway_owned(gw_str key);

/* True for keys the broker owns: "x-death", "x-first-death-*", "x-last-death-*" and
 * "x-delivery-count" (quorum queues). They are copied as they are and never written. */
bool gw_headers_is_broker_owned(gw_str key);

#endif
