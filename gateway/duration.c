/* duration.c — parses and formats durations ("250ms", "5s", "2m", "1h").
 *
 * One table of units serves both directions. Called by yamldoc.c, retry.c,
 * replay.c and the CLI; includes only its own header.
 */
#include "duration.h"

#include <inttypes.h>
#include <stdio.h>
#include <string.h>

/* Largest first: the formatter takes the first unit that divides the value. */
static const struct {
    const char *name;
    uint64_t ms;
} units[] = {
    {"h", 3600000},
    {"m", 60000},
    {"s", 1000},
    {"ms", 1},
};

#define N_UNITS (sizeof units / sizeof units[0])

bool gw_duration_parse(const char *s, uint64_t *out_ms)
{
    uint64_t v = 0;
    const char *p = s;
    if (*p < '0' || *p > '9')
        return false;
    for (; *p >= '0' && *p <= '9'; p++) {
        uint64_t d = (uint64_t)(*p - '0');
        if (v > (UINT64_MAX - d) / 10)
            return false;
        v = v * 10 + d;
    }
    for (size_t i = 0; i < N_UNITS; i++) {
        if (strcmp(p, units[i].name) != 0)
            continue;
        if (v > UINT64_MAX / units[i].ms)
            return false;
        *out_ms = v * units[i].ms;
        return true;
    }
    return false;
}

size_t gw_duration_format(uint64_t ms, char *buf, size_t len)
{
    size_t i = 0;
    /* 0 is "0s": the way a config writes "off" (heartbeat: 0s) */
    while (ms == 0 ? units[i].ms != 1000 : ms % units[i].ms != 0)
        i++;
    int n = snprintf(buf, len, "%" PRIu64 "%s", ms / units[i].ms, units[i].name);
    return n < 0 ? 0 : (size_t)n;
}
