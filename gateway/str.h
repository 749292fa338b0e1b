/* str.h — borrowed byte-string views and UTF-8 checks. Pure.
 *
 * gw_str is a (pointer, length) view into bytes someone else owns — typically a
 * rabbitmq-c buffer that session.c adapts — so the pure modules (classify,
 * headers) never see library types. Views are not NUL-terminated; ptr == NULL
 * means "absent", which is distinct from present-but-empty (ptr != NULL, len 0).
 */
#ifndef GW_STR_H
#define GW_STR_H

#include <stdbool.h>
#include <stddef.h>

typedef struct gw_str {
    const char *ptr; /* borrowed; NULL = absent */
    size_t len;
} gw_str;

#define GW_STR_NULL ((gw_str){NULL, 0})

/* A view of a NUL-terminated string (NULL gives GW_STR_NULL). */
gw_str gw_str_from_cstr(const char *s);

/* True when s is present and its bytes equal cstr exactly (case-sensitive). */
bool gw_str_eq_cstr(gw_str s, const char *cstr);

/* True when s is present and begins with prefix (case-sensitive). */
bool gw_str_has_prefix(gw_str s, const char *prefix);

/* A new NUL-terminated copy (gw_xmalloc; caller frees with free()); NULL when s is
 * absent. An embedded NUL byte is copied as is, so strlen() may be shorter. */
char *gw_str_dup(gw_str s);

/* Writes s[0..len) (message bytes: anything) as one safe line into dst: printable ASCII as
 * it is, '"' and '\\' backslash-escaped, every other byte as \xNN; cut with "..." once the
 * output would pass max_out bytes (or cap). dst is always NUL-terminated; cap >= 8. Used to
 * quote bytes from a message in x-gw-last-error texts. */
void gw_str_escape(char *dst, size_t cap, const char *s, size_t len, size_t max_out);

/* Length (1..4) of the well-formed UTF-8 sequence at p[0..n), or 0 when the bytes
 * there are not one: a stray continuation byte, a truncated sequence, an overlong
 * form, a surrogate (U+D800..U+DFFF) or a code point above U+10FFFF. n must be >= 1. */
size_t gw_str_utf8_seq_len(const unsigned char *p, size_t n);

/* True when p[0..n) is well-formed UTF-8 (a NUL byte counts as well-formed). On
 * false, *bad_at (if not NULL) is the offset of the first byte that is not. */
bool gw_str_utf8_valid(const char *p, size_t n, size_t *bad_at);

#endif
