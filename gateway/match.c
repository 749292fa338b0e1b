/* match.c — event-type and topic-pattern syntax, and the reference matcher.
 *
 * Owns the rules of SPEC §5 for what an event type and a pattern look like, and
 * gw_match(), a small dynamic-programming matcher with RabbitMQ topic semantics
 * ('*' one word, '#' zero or more). The router (router.c) uses the syntax checks;
 * the routes loader uses the pattern checks; tests and the benchmark use gw_match
 * to cross-check the router's trie. Pure: no I/O, no allocation.
 */
#include "match.h"

#include <stdio.h>
#include <string.h>

/* A type of at most 255 bytes has at most 128 words (one byte + one dot each). */
#define MATCH_MAX_WORDS ((GW_TYPE_MAX_BYTES + 1) / 2)

typedef struct match_word {
    const char *p;
    size_t len;
} match_word;

static bool is_word_byte(unsigned char c)
{
    return c >= 0x21 && c <= 0x7e && c != '.' && c != '*' && c != '#';
}

static bool word_is(const char *p, size_t len, char c)
{
    return len == 1 && p[0] == c;
}

bool gw_match_type_valid(const char *type, size_t len)
{
    if (!type || len == 0 || len > GW_TYPE_MAX_BYTES)
        return false;
    size_t word_len = 0;
    for (size_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char)type[i];
        if (c == '.') {
            if (word_len == 0)
                return false;
            word_len = 0;
        } else if (is_word_byte(c)) {
            word_len++;
        } else {
            return false;
        }
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
        for (size_t k = 0; k < wlen; k++) {
            unsigned char c = (unsigned char)w[k];
            if (c == '*')
                return fail(why, why_len, "'*' must be a whole word");
            if (c == '#')
                return fail(why, why_len, "'#' must be a whole word");
            if (!is_word_byte(c))
                return fail(why, why_len, "characters must be printable ASCII without spaces");
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
