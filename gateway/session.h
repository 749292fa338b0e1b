/* session.h — every use of rabbitmq-c: connections, channels, topology, publish,
 * frames, acks. Nothing above this file sees an amqp_* type.
 *
 * A session is two AMQP connections driven from one thread: a consumer connection
 * (one channel, manual acks, prefetch) and a publisher connection (confirm-mode
 * channels, mandatory publishes). RabbitMQ blocks publishing connections under an
 * alarm by no longer reading their socket; keeping consumers apart keeps acks flowing.
 * Frames are read with a raw dispatcher (never amqp_consume_message) and handed to
 * the caller through gw_session_handler callbacks. Any connection-level error makes
 * the whole session dead: the caller destroys it and reconnects.
 */
#ifndef GW_SESSION_H
#define GW_SESSION_H

#include "config.h"
#include "delivery.h"
#include "copy.h"
#include "err.h"
#include "routes.h"
#include "str.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef struct gw_session gw_session;
typedef struct gw_msg gw_msg; /* one consumed message, owned by whoever holds it */

/* Channel numbers on the publisher connection. Channel GW_CH_OWN carries the
 * gateway's own publishes (retry tiers, DLQ); destination channels start above. */
#define GW_CH_OWN       1
#define GW_CH_DEST_BASE 2
#define GW_CH_MAX       2000

typedef struct gw_session_handler {
    void *ctx;
    /* A delivery; the callee takes ownership of m (free with gw_msg_free) and reads it
     * through gw_msg_delivery(m). */
    void (*on_deliver)(void *ctx, gw_msg *m);
    /* Publisher confirm on channel ch: seq (or all <= seq when multiple). */
    void (*on_confirm)(void *ctx, int ch, uint64_t seq, bool multiple, bool ack);
    /* basic.return of a mandatory publish; a confirm for it follows. body is the
     * returned message's (valid during the call). */
    void (*on_return)(void *ctx, int ch, int reply_code, gw_str reply_text, gw_str exchange,
                      gw_str routing_key, gw_str message_id, gw_str body);
    /* The broker closed publisher channel ch (e.g. 404), or confirmed the close of a
     * channel the caller retired (reply_code 200); unconfirmed publishes on it are lost.
     * The channel must be reopened (gw_session_channel_open) before reuse. */
    void (*on_channel_closed)(void *ctx, int ch, int reply_code, gw_str reply_text);
    /* The broker cancelled our consumer (queue deleted). */
    void (*on_cancelled)(void *ctx, gw_str consumer_tag);
    /* connection.blocked / unblocked on the publisher connection. */
    void (*on_blocked)(void *ctx, bool blocked, gw_str reason);
    /* An answer to gw_session_queue_depths: queue holds messages ready for delivery (the
     * declare-ok's message_count: delivered and unacked ones are not counted), or,
     * with queue.ptr NULL and messages -1, the broker closed the depth channel instead of
     * answering the oldest question still open (404: a queue does not exist) and the
     * questions asked after it will never be answered; error says why. May be NULL when
     * gw_session_queue_depths is never called. */
    void (*on_queue_depth)(void *ctx, gw_str queue, int64_t messages, gw_str error);
} gw_session_handler;

/* Connects both connections to url (credentials from cfg->user/password override
 * the URL's), with heartbeats and the connection.blocked and consumer_cancel_notify
 * capabilities, opens GW_CH_OWN in confirm mode. On failure returns GW_ERR_PERMANENT
 * when the broker refused the login (user, password or vhost: retrying cannot help
 * until an operator acts), else GW_ERR_BROKER; err holds one line saying what
 * happened and what to do ("connection refused, nothing is listening at HOST:PORT: is
 * the broker running ...", "... wrong user name or password: check AMQP_GW_USER ..."). */
gw_err gw_session_connect(const gw_config *cfg, const char *url, const char *name, gw_session **out,
                          char *err, size_t err_len);
/* Tries cfg->broker_urls in order, once each; the first that connects wins. url_out
 * receives that URL (or the last one tried) with any password redacted, for
 * messages. On failure err holds the last URL's reason. */
gw_err gw_session_connect_any(const gw_config *cfg, const char *name, gw_session **out,
                              char *url_out, size_t url_len, char *err, size_t err_len);

/* Closes gracefully when healthy, otherwise just destroys. NULL is a no-op. */
void gw_session_free(gw_session *s);
bool gw_session_alive(const gw_session *s);
/* Why the session died (empty while alive). */
const char *gw_session_error(const gw_session *s);
/* Negotiated frame_max of the publisher connection. */
size_t gw_session_frame_max(const gw_session *s);

/* --- topology (synchronous RPCs on a scratch channel) --- */

/* Declares an exchange / queue / binding. GW_ERR_BROKER with err on failure. A
 * queue that already exists with other arguments (406) is used as it is when
 * accept_existing is true: then the result is GW_ERR_INVALID and err says how the
 * declaration differed (the caller logs it as a warning). */
gw_err gw_session_declare_exchange(gw_session *s, const gw_exchange_decl *x, char *err,
                                   size_t err_len);
gw_err gw_session_declare_queue(gw_session *s, const gw_queue_decl *q, const gw_arg *extra,
                                size_t n_extra, bool accept_existing, char *err, size_t err_len);
gw_err gw_session_bind(gw_session *s, const char *queue, const char *exchange,
                       const char *routing_key, const gw_arg *args, size_t n_args, char *err,
                       size_t err_len);
/* Passive checks: GW_ERR_NOT_FOUND when absent. */
gw_err gw_session_exchange_exists(gw_session *s, const char *name, char *err, size_t err_len);
gw_err gw_session_queue_inspect(gw_session *s, const char *name, uint32_t *messages,
                                uint32_t *consumers, char *err, size_t err_len);

/* Asks the depth of each of names[0..n): one passive queue.declare each, sent without
 * waiting on a channel of the consumer connection kept for this (opened, also without
 * waiting, on first use). The answers arrive through on_queue_depth, in the order asked,
 * as gw_session_poll reads them. Nothing here waits for the broker, and the consumer
 * connection never publishes, so the broker never blocks it: measuring cannot stall
 * publishing or acks, and changes no queue. GW_ERR_BROKER when the session is (now) dead. */
gw_err gw_session_queue_depths(gw_session *s, const char *const *names, size_t n);

/* --- consuming (consumer connection) --- */

/* Consumes queue with manual acks on the consumer channel. prefetch limits this consumer
 * alone (basic.qos per consumer): consumers of one session hold up to the sum of theirs. */
gw_err gw_session_consume(gw_session *s, const char *queue, const char *tag, uint16_t prefetch,
                          char *err, size_t err_len);
gw_err gw_session_cancel(gw_session *s, const char *tag);
gw_err gw_session_ack(gw_session *s, uint64_t delivery_tag, bool multiple);
gw_err gw_session_nack(gw_session *s, uint64_t delivery_tag, bool multiple, bool requeue);

/* --- publishing (publisher connection) --- */

gw_err gw_session_channel_open(gw_session *s, int ch, char *err, size_t err_len);
bool gw_session_channel_is_open(const gw_session *s, int ch);
/* Closes publisher channel ch without waiting (channel.close sent, nothing read). Its
 * number cannot be opened again until the broker's close-ok arrives; then
 * on_channel_closed reports it with reply code 200, and publishes on it that were never
 * confirmed are lost. Confirms that arrive before the close-ok are reported as usual.
 * GW_ERR_INVALID when ch is not open; GW_ERR_BROKER when the session is (now) dead. */
gw_err gw_session_channel_retire(gw_session *s, int ch);
bool gw_session_blocked(const gw_session *s);

/* Publishes m's body, mandatory, on ch to (exchange, routing_key), with m's properties and
 * headers changed exactly as c says; c must have been decided over gw_msg_delivery(m).
 * *seq is the publish's confirm sequence number on ch. GW_ERR_PERMANENT when the message
 * cannot be encoded (exchange or routing key over 255 bytes, content header over frame_max:
 * see gw_copy_fits) — checked before anything is sent; GW_ERR_BROKER when the connection
 * broke. */
gw_err gw_session_publish(gw_session *s, int ch, const char *exchange, const char *routing_key,
                          const gw_msg *m, const gw_copy *c, uint64_t *seq);

/* Waits up to timeout_ms for frames on either connection and dispatches them all
 * to h (draining buffered frames before sleeping); services heartbeats.
 * Returns GW_OK, or GW_ERR_BROKER when the session died. */
gw_err gw_session_poll(gw_session *s, int timeout_ms, const gw_session_handler *h);

/* --- messages --- */

void gw_msg_free(gw_msg *m);
/* Everything the message says (delivery.h), read once when it arrived: the envelope,
 * properties, body, CloudEvents attributes, the x-gw-* headers, the latest x-death
 * entry and the measured header entries copies are laid out over (copy.h). The only way
 * to read m. Borrowed from m; valid until gw_msg_free(m). */
const gw_delivery *gw_msg_delivery(const gw_msg *m);

#endif
