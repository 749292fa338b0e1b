/* match.h — topic patterns and event-type names. Pure.
 *
 * An event type is 1..255 bytes of dot-separated, non-empty words; each word is
 * printable ASCII (0x21..0x7e) except '*' and '#', or well-formed UTF-8 that is not a
 * control or space character ("commande.créée"). A pattern is the same, but a
 * word may also be '*' (exactly one word) or '#' (zero or more words).
 */
#ifndef GW_MATCH_H
#define GW_MATCH_H

#include <stdbool.h>
#include <stddef.h>

#define GW_TYPE_MAX_BYTES 255

/* True when type[0..len) is a valid event type. */
bool gw_match_type_valid(const char *type, size_t len);

/* True when pattern (NUL-terminated) is a valid pattern; otherwise writes a short
 * reason ("empty word", "'*' must be a whole word", ...) into why. */
bool gw_match_pattern_valid(const char *pattern, char *why, size_t why_len);

/* True when pattern contains a '*' or '#' word. */
bool gw_match_is_pattern(const char *pattern);

/* Number of literal (non-wildcard) words in a valid pattern. */
int gw_match_literal_words(const char *pattern);

/* Reference matcher: does type[0..len) match the pattern? */
bool gw_match(const char *pattern, const char *type, size_t len);

#endif
