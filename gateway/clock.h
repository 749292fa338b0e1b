/* clock.h — time sources. Only impure modules call these; pure modules take now_ms. */
#ifndef GW_CLOCK_H
#define GW_CLOCK_H

#include <stdint.h>

/* Monotonic milliseconds (CLOCK_MONOTONIC), for timers and timeouts. */
uint64_t gw_clock_mono_ms(void);
/* Wall-clock milliseconds since the Unix epoch, for headers. */
uint64_t gw_clock_wall_ms(void);

#endif
