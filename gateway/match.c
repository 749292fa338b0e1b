/* match.c — event-type and topic-pattern syntax, and the reference matcher.
 *
 * Owns the rules of SPEC §5 for what an event type and a pattern look like, and
 * gw_match(), a small dynamic-programming matcher with RabbitMQ topic semantics
 * ('*' one word, '#' zero or more). The router (router.c) uses the syntax checks;
 * the routes loader uses the pattern checks; tests and the benchmark use gw_match
 * to cross-check the router's trie. Pure: no I/O, no allocation.
 */
#include "match.h"

#include "str.h"

#include <stdint.h>
#include <stdio.h>
#include <string.h>

/* A type of at most 255 bytes has at most 128 words (one byte + one dot each). */
#define MATCH_MAX_WORDS ((GW_TYPE_MAX_BYTES + 1) / 2)

typedef struct match_word {
    const char *p;
    size_t len;
} match_word;

/* Length of the word character at p[0..n): printable ASCII but '.', '*', '#', or one
 * well-formed UTF-8 sequence (no overlong form, no surrogate, at most U+10FFFF) that is
 * neither a C1 control nor a Unicode space; 0 when p holds no such character.
 * RabbitMQ routing keys are UTF-8, so "commande.créée" is a type like any other. */
static size_t word_char(const unsigned char *p, size_t n)
{
    unsigned char c = p[0];
    if (c < 0x80)
        return c >= 0x21 && c <= 0x7e && c != '.' && c != '*' && c != '#' ? 1 : 0;
    size_t len = gw_str_utf8_seq_len(p, n);
    if (len == 0)
        return 0;
    uint32_t cp = c & (0x7f >> len);
    for (size_t i = 1; i < len; i++)
        cp = (cp << 6) | (p[i] & 0x3f);
    if (cp <= 0x9f || cp == 0xa0 || cp == 0x1680 || (cp >= 0x2000 && cp <= 0x200a) ||
        cp == 0x2028 || cp == 0x2029 || cp == 0x202f || cp == 0x205f || cp == 0x3000 ||
        cp == 0xfeff)
        return 0;
    return len;
}

static bool word_is(const char *p, size_t len, char c)
{
    return len == 1 && p[0] == c;
}

bool gw_match_type_valid(const char *type, size_t len)
{
    if (!type || len == 0 || len > GW_TYPE_MAX_BYTES)
        return false;
    const unsigned char *p = (const unsigned char *)type;
    size_t word_len = 0;
    for (size_t i = 0; i < len;) {
        if (p[i] == '.') {
            if (word_len == 0)
                return false;
            word_len = 0;
            i++;
            continue;
        }
        size_t n = word_char(p + i, len - i);
        if (n == 0)
            return false;
        word_len += n;
        i += n;
    }
    return word_len > 0;
}

static bool fail(char *why, size_t why_len, const char *reason)
{
    if (why && why_len > 0)
        snprintf(why, why_len, "%s", reason);
    return false;
}

bool gw_match_pattern_valid(const char *pattern, char *why, size_t why_len)
{
    if (!pattern || pattern[0] == '\0')
        return fail(why, why_len, "empty pattern");
    size_t len = strlen(pattern);
    if (len > GW_TYPE_MAX_BYTES)
        return fail(why, why_len, "longer than 255 bytes");
    size_t start = 0;
    for (size_t i = 0; i <= len; i++) {
        if (i < len && pattern[i] != '.')
            continue;
        const char *w = pattern + start;
        size_t wlen = i - start;
        start = i + 1;
        if (wlen == 0)
            return fail(why, why_len, "empty word");
        if (word_is(w, wlen, '*') || word_is(w, wlen, '#'))
            continue;
        for (size_t k = 0; k < wlen;) {
            unsigned char c = (unsigned char)w[k];
            if (c == '*')
                return fail(why, why_len, "'*' must be a whole word");
            if (c == '#')
                return fail(why, why_len, "'#' must be a whole word");
            size_t n = word_char((const unsigned char *)w + k, wlen - k);
            if (n == 0)
                return fail(why, why_len,
                            "characters must be printable (ASCII or UTF-8) without spaces");
            k += n;
        }
    }
    return true;
}

/* Counts the dot-separated words of s (NUL-terminated) that are wildcards ('*' or '#')
 * when wildcards is true, or that are literal otherwise. */
static int count_words(const char *s, bool wildcards)
{
    int n = 0;
    const char *w = s;
    for (const char *p = s;; p++) {
        if (*p != '.' && *p != '\0')
            continue;
        size_t wlen = (size_t)(p - w);
        bool wild = word_is(w, wlen, '*') || word_is(w, wlen, '#');
        if (wild == wildcards)
            n++;
        if (*p == '\0')
            break;
        w = p + 1;
    }
    return n;
}

bool gw_match_is_pattern(const char *pattern)
{
    return pattern && count_words(pattern, true) > 0;
}

int gw_match_literal_words(const char *pattern)
{
    return pattern ? count_words(pattern, false) : 0;
}

/* Splits s[0..len) at dots into at most MATCH_MAX_WORDS words; -1 when there are more. */
static int split(const char *s, size_t len, match_word *out)
{
    int n = 0;
    size_t start = 0;
    for (size_t i = 0; i <= len; i++) {
        if (i < len && s[i] != '.')
            continue;
        if (n == MATCH_MAX_WORDS)
            return -1;
        out[n].p = s + start;
        out[n].len = i - start;
        n++;
        start = i + 1;
    }
    return n;
}

bool gw_match(const char *pattern, const char *type, size_t len)
{
    if (!pattern || !gw_match_type_valid(type, len))
        return false;
    match_word pw[MATCH_MAX_WORDS], tw[MATCH_MAX_WORDS];
    int np = split(pattern, strlen(pattern), pw);
    int nt = split(type, len, tw);
    if (np < 0 || nt < 0)
        return false;

    /* next[j]: pattern words i+1.. match type words j..; cur[j]: words i.. match j.. */
    bool next[MATCH_MAX_WORDS + 1], cur[MATCH_MAX_WORDS + 1];
    for (int j = 0; j <= nt; j++)
        next[j] = (j == nt);
    for (int i = np - 1; i >= 0; i--) {
        bool hash = word_is(pw[i].p, pw[i].len, '#');
        bool star = word_is(pw[i].p, pw[i].len, '*');
        for (int j = nt; j >= 0; j--) {
            if (hash) {
                cur[j] = next[j] || (j < nt && cur[j + 1]);
            } else if (j == nt) {
                cur[j] = false;
            } else if (star) {
                cur[j] = next[j + 1];
            } else {
                cur[j] = pw[i].len == tw[j].len && memcmp(pw[i].p, tw[j].p, tw[j].len) == 0 &&
                         next[j + 1];
            }
        }
        memcpy(next, cur, sizeof(bool) * (size_t)(nt + 1));
    }
    return next[0];
}
