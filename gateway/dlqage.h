/* dlqage.h — the age of the oldest message in the DLQ, measured on a thread of its own.
 *
 * AMQP 0-9-1 cannot look at a queue's head without taking the message (a basic.get and a
 * requeue would redeliver it and, on a quorum queue, count a delivery), so the age comes from
 * RabbitMQ's management API (mgmt.h): the timestamp property of the DLQ's head message, which
 * the gateway sets on every dead-letter copy that has none (copy.h). Every interval_ms the
 * thread asks the API at the broker the session is connected to (gw_dlqage_set_url) and
 * hands the result to the metrics (gw_metrics_dlq_age: an age, or why there is none). It
 * never touches a message, and the AMQP loop never waits for it. docs/metrics.md says what
 * the number means and where it is wrong. Logs nothing: the status page says why.
 */
#ifndef GW_DLQAGE_H
#define GW_DLQAGE_H

#include "config.h"
#include "metrics.h"

#include <stdint.h>

typedef struct gw_dlqage gw_dlqage;

/* Starts the thread for cfg's DLQ (cfg and metrics borrowed: they must outlive
 * gw_dlqage_stop). With queue_type quorum, whose queues RabbitMQ 3.x does not report a head
 * timestamp for, no thread is started: the metrics say so, and NULL is returned. NULL also
 * when the thread cannot start (the metrics say why). */
gw_dlqage *gw_dlqage_start(const gw_config *cfg, gw_metrics *metrics, uint64_t interval_ms);

/* The AMQP URL the session is connected to now (the API is found from it, mgmt.h), or NULL
 * while disconnected (nothing is asked then). Copied. NULL handle: no-op. */
void gw_dlqage_set_url(gw_dlqage *a, const char *amqp_url);

/* Stops and joins the thread (waits for a request in progress: at most the API's 10 s time-out)
 * and frees it. NULL: no-op. */
void gw_dlqage_stop(gw_dlqage *a);

#endif
