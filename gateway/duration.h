/* duration.h — durations as the config writes them: "250ms", "5s", "2m", "1h". Pure leaf.
 *
 * The one parser and the one formatter of durations: the YAML readers (through
 * yamldoc.h), `replay --since`, the retry tier queue names (`gw.retry.30s`) and every
 * message or report that prints a duration use these two functions, so a value reads
 * the same everywhere. Includes nothing of the gateway; never allocates, never logs.
 */
#ifndef GW_DURATION_H
#define GW_DURATION_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Parses s (NUL-terminated): decimal digits, then exactly one unit of ms, s, m or h;
 * no sign, space, fraction or other unit. Sets *out_ms and returns true, or returns
 * false with *out_ms untouched when s is malformed or the value overflows 64 bits.
 * Bounds are the caller's (heartbeat allows 0s = off, a backoff does not). */
bool gw_duration_parse(const char *s, uint64_t *out_ms);

/* Writes ms in the largest unit that divides it exactly: 250 -> "250ms", 1000 -> "1s",
 * 90000 -> "90s", 120000 -> "2m", 7200000 -> "2h"; 0 -> "0s". gw_duration_parse reads
 * every output back to the same value. NUL-terminates within len (len > 0) and returns
 * the length the whole text needs, like snprintf (>= len means it was truncated).
 * GW_DURATION_TEXT_CAP always suffices. */
size_t gw_duration_format(uint64_t ms, char *buf, size_t len);

#define GW_DURATION_TEXT_CAP 24 /* 20 digits of UINT64_MAX + "ms" + NUL, rounded up */

#endif
