/* chanhealth.c — see chanhealth.h. */
#include "chanhealth.h"

bool gw_chanhealth_confirm(gw_chanhealth *h, bool ack, uint64_t now_ms)
{
    if (ack) {
        h->nack_streak = 0;
        return false;
    }
    if (h->nack_streak < GW_CHANHEALTH_STREAK)
        h->nack_streak++;
    if (h->nack_streak < GW_CHANHEALTH_STREAK)
        return false;
    /* now_ms < replaced_ms: a clock from another run; do not wait on it */
    return !h->replaced || now_ms < h->replaced_ms ||
           now_ms - h->replaced_ms >= GW_CHANHEALTH_MIN_INTERVAL_MS;
}

void gw_chanhealth_replaced(gw_chanhealth *h, uint64_t now_ms)
{
    h->nack_streak = 0;
    h->replaced = true;
    h->replaced_ms = now_ms;
}
