/* delivery.c — the header names a delivery view keeps, and the key -> slot lookup.
 *
 * session.c calls gw_delivery_header_find once per header entry while it fills a
 * gw_delivery, so a lookup is a few length compares: most keys a producer sends are
 * none of ours and fail on the length or the first bytes. Pure.
 */
#include "delivery.h"

#include "headers.h"

#include <string.h>

#define NAME(s)                                                                                    \
    {                                                                                              \
        s, sizeof s - 1                                                                            \
    }

static const struct {
    const char *name;
    size_t len;
} names[GW_DH_COUNT] = {
    [GW_DH_CE_TYPE] = NAME(GW_H_CE_TYPE),
    [GW_DH_CE_TYPE_COLON] = NAME(GW_H_CE_TYPE_COLON),
    [GW_DH_CE_ID] = NAME(GW_H_CE_ID),
    [GW_DH_CE_ID_COLON] = NAME(GW_H_CE_ID_COLON),
    [GW_DH_CORRELATION_ID] = NAME(GW_H_CORRELATION_ID),
    [GW_DH_ROUTE] = NAME(GW_H_ROUTE),
    [GW_DH_RETRY_COUNT] = NAME(GW_H_RETRY_COUNT),
    [GW_DH_FIRST_SEEN_AT] = NAME(GW_H_FIRST_SEEN_AT),
    [GW_DH_LAST_ERROR] = NAME(GW_H_LAST_ERROR),
    [GW_DH_RETRY_DESTINATION] = NAME(GW_H_RETRY_DESTINATION),
    [GW_DH_RETRY_ROUTING_KEY] = NAME(GW_H_RETRY_ROUTING_KEY),
    [GW_DH_DEAD_LETTER_REASON] = NAME(GW_H_DEAD_LETTER_REASON),
    [GW_DH_ORIGINAL_EXCHANGE] = NAME(GW_H_ORIGINAL_EXCHANGE),
    [GW_DH_ORIGINAL_ROUTING_KEY] = NAME(GW_H_ORIGINAL_ROUTING_KEY),
    [GW_DH_DEAD_LETTERED_AT] = NAME(GW_H_DEAD_LETTERED_AT),
    [GW_DH_REPLAYED_AT] = NAME(GW_H_REPLAYED_AT),
    [GW_DH_REPLAY_COUNT] = NAME(GW_H_REPLAY_COUNT),
};

gw_delivery_header gw_delivery_header_find(gw_str key)
{
    if (key.ptr == NULL || key.len == 0 || (key.ptr[0] != 'x' && key.ptr[0] != 'c'))
        return GW_DH_COUNT;
    for (int h = 0; h < GW_DH_COUNT; h++)
        if (names[h].len == key.len && memcmp(names[h].name, key.ptr, key.len) == 0)
            return (gw_delivery_header)h;
    return GW_DH_COUNT;
}

const char *gw_delivery_header_name(gw_delivery_header h)
{
    if ((int)h < 0 || h >= GW_DH_COUNT)
        return NULL;
    return names[h].name;
}
