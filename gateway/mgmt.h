/* mgmt.h — what AMQP 0-9-1 cannot ask the broker, asked of RabbitMQ's management HTTP API:
 * whether a binding exists (check --live), and the timestamp of a queue's head message (the
 * DLQ's oldest age, dlqage.h).
 *
 * The API's address is $AMQP_GW_MANAGEMENT_URL (e.g. "https://rabbit-1:15671"), else derived
 * from the AMQP URL: the same host, http on 15672 (https on 15671 for amqps://). It logs in
 * with the AMQP credentials (after AMQP_GW_USER / AMQP_GW_PASSWORD). A derived address is
 * used only if /api/overview lists an AMQP listener on the URL's port: on a host with
 * several nodes, port 15672 may belong to another one. The HTTP client is
 * libcurl; the pure parts (the address, reading the API's answer) are separate functions so
 * they can be tested without a broker.
 */
#ifndef GW_MGMT_H
#define GW_MGMT_H

#include "config.h"
#include "routes.h"

#include <stdbool.h>
#include <stddef.h>

typedef struct gw_mgmt gw_mgmt;

/* For the broker at amqp_url (one of cfg's); NULL (with err) when the URL does not parse. */
gw_mgmt *gw_mgmt_new(const gw_config *cfg, const char *amqp_url, char *err, size_t err_len);
void gw_mgmt_free(gw_mgmt *m);

/* The API's base address, for messages ("http://localhost:15672"). */
const char *gw_mgmt_base(const gw_mgmt *m);

typedef enum gw_mgmt_answer {
    GW_MGMT_BOUND = 1,
    GW_MGMT_NOT_BOUND = 0,
    GW_MGMT_UNKNOWN = -1, /* no answer (plugin off, refused, 401, ...): why says so */
} gw_mgmt_answer;

/* Whether queue is bound to exchange with routing key `key` and exactly these binding
 * arguments. Once the API has failed to answer at all, later calls return UNKNOWN at once
 * with the same why (one time-out, not one per binding). */
gw_mgmt_answer gw_mgmt_binding(gw_mgmt *m, const char *exchange, const char *queue, const char *key,
                               const gw_arg *args, size_t n_args, char *why, size_t why_len);

/* The head of queue as the API reports it: *messages (ready and unacknowledged) and
 * *head_ts_s, the timestamp property of its first message in seconds since the epoch, -1
 * when the API reports none (an empty queue, a head without a timestamp, a classic queue's
 * head paged out of memory, a quorum queue). The numbers are the broker's statistics, up to
 * its collect_statistics_interval (5 s by default) old. False with why when it did not
 * answer (plugin off, refused, 401, no such queue ...). Never caches a failure. */
bool gw_mgmt_queue_head(gw_mgmt *m, const char *queue, int64_t *messages, int64_t *head_ts_s,
                        char *why, size_t why_len);

/* --- pure parts ---------------------------------------------------------------------- */

/* Reads the answer of GET /api/queues/{vhost}/{queue} (a JSON object): see
 * gw_mgmt_queue_head. False with why when it has no number `messages`. */
bool gw_mgmt_queue_head_parse(const char *json, size_t len, int64_t *messages, int64_t *head_ts_s,
                              char *why, size_t why_len);

/* Writes the API base address for amqp_url (override, when non-NULL and non-empty, wins;
 * a trailing '/' is dropped). False when amqp_url does not parse. */
bool gw_mgmt_base_url(const char *amqp_url, const char *override, char *buf, size_t len);

/* Reads the API's answer for GET /api/bindings/{vhost}/e/{exchange}/q/{queue} (a JSON
 * array of bindings) and says whether one has this routing key and exactly these
 * arguments. UNKNOWN (with why) when the text is not such an array. */
gw_mgmt_answer gw_mgmt_bindings_match(const char *json, size_t len, const char *key,
                                      const gw_arg *args, size_t n_args, char *why, size_t why_len);

/* Whether an /api/overview answer lists an amqp or amqp/ssl listener on port. */
bool gw_mgmt_overview_has_port(const char *json, size_t len, int port);

#endif
