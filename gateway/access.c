/* access.c — see access.h. */
#include "access.h"

#define HOW "(rabbitmqctl set_permissions; README \"Broker permissions\")"

const char *gw_access_hint(gw_access_op op)
{
    switch (op) {
    case GW_ACCESS_PUBLISH:
        return "publishing needs write permission on the exchange: add it to the gateway "
               "user's write pattern " HOW;
    case GW_ACCESS_DECLARE_EXCHANGE:
        return "declaring an exchange needs configure permission on it: add it to the gateway "
               "user's configure pattern " HOW;
    case GW_ACCESS_DECLARE_QUEUE:
        return "declaring a queue needs configure permission on it, and with a dead-letter "
               "exchange also read permission on the queue and write permission on that "
               "exchange: add them to the gateway user's patterns " HOW;
    case GW_ACCESS_BIND:
        return "binding needs write permission on the queue and read permission on the "
               "exchange: add them to the gateway user's write and read patterns " HOW;
    case GW_ACCESS_CONSUME:
        return "consuming needs read permission on the queue: add it to the gateway user's "
               "read pattern " HOW;
    }
    return "the gateway user lacks a permission " HOW;
}

bool gw_access_refused(int reply_code)
{
    return reply_code == GW_ACCESS_REFUSED_CODE;
}
