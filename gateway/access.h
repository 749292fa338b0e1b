/* access.h — what a 403 ACCESS_REFUSED from the broker means for one of the gateway's
 * operations, and what to do.
 *
 * RabbitMQ 3.10 refuses with "access to exchange 'x' in vhost '/' refused for user 'u'":
 * the resource, not the permission. Which permission it was follows from the operation
 * (RabbitMQ's access control table; README "Broker permissions"), so the gateway adds it.
 * Pure: static strings, no I/O.
 */
#ifndef GW_ACCESS_H
#define GW_ACCESS_H

#include <stdbool.h>

#define GW_ACCESS_REFUSED_CODE 403

typedef enum gw_access_op {
    GW_ACCESS_PUBLISH,          /* basic.publish */
    GW_ACCESS_DECLARE_EXCHANGE, /* exchange.declare, not passive */
    GW_ACCESS_DECLARE_QUEUE,    /* queue.declare, not passive */
    GW_ACCESS_BIND,             /* queue.bind */
    GW_ACCESS_CONSUME,          /* basic.consume, basic.get */
} gw_access_op;

/* The permission op needs and what to do, as one clause to append after the broker's
 * words ("...: publishing needs write permission on the exchange: ..."). */
const char *gw_access_hint(gw_access_op op);

/* Whether a reply code is the broker's access refusal. */
bool gw_access_refused(int reply_code);

#endif
