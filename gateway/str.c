/* str.c — borrowed byte-string views and a strict UTF-8 validator.
 *
 * The validator follows RFC 3629 (Unicode Table 3-7 "well-formed byte
 * sequences"), so overlongs, surrogates and code points past U+10FFFF are
 * refused. It has an 8-bytes-at-a-time ASCII fast path because classify runs it
 * over whole message bodies.
 */
#include "str.h"

#include "alloc.h"

#include <stdint.h>
#include <string.h>

gw_str gw_str_from_cstr(const char *s)
{
    if (s == NULL)
        return GW_STR_NULL;
    return (gw_str){s, strlen(s)};
}

bool gw_str_eq_cstr(gw_str s, const char *cstr)
{
    if (s.ptr == NULL || cstr == NULL)
        return false;
    size_t n = strlen(cstr);
    return s.len == n && memcmp(s.ptr, cstr, n) == 0;
}

bool gw_str_has_prefix(gw_str s, const char *prefix)
{
    if (s.ptr == NULL || prefix == NULL)
        return false;
    size_t n = strlen(prefix);
    return s.len >= n && memcmp(s.ptr, prefix, n) == 0;
}

char *gw_str_dup(gw_str s)
{
    if (s.ptr == NULL)
        return NULL;
    return gw_xstrndup(s.ptr, s.len);
}

size_t gw_str_utf8_seq_len(const unsigned char *p, size_t n)
{
    unsigned char c = p[0];
    if (c < 0x80)
        return 1;
    if (c < 0xc2) /* continuation byte, or 0xc0/0xc1 (overlong 2-byte lead) */
        return 0;
    if (c < 0xe0) {
        if (n < 2 || (p[1] & 0xc0) != 0x80)
            return 0;
        return 2;
    }
    if (c < 0xf0) {
        if (n < 3 || (p[2] & 0xc0) != 0x80)
            return 0;
        unsigned char lo = 0x80, hi = 0xbf;
        if (c == 0xe0)
            lo = 0xa0; /* overlong below U+0800 */
        else if (c == 0xed)
            hi = 0x9f; /* surrogates U+D800..U+DFFF */
        if (p[1] < lo || p[1] > hi)
            return 0;
        return 3;
    }
    if (c < 0xf5) {
        if (n < 4 || (p[2] & 0xc0) != 0x80 || (p[3] & 0xc0) != 0x80)
            return 0;
        unsigned char lo = 0x80, hi = 0xbf;
        if (c == 0xf0)
            lo = 0x90; /* overlong below U+10000 */
        else if (c == 0xf4)
            hi = 0x8f; /* above U+10FFFF */
        if (p[1] < lo || p[1] > hi)
            return 0;
        return 4;
    }
    return 0; /* 0xf5..0xff never appear in UTF-8 */
}

bool gw_str_utf8_valid(const char *p, size_t n, size_t *bad_at)
{
    const unsigned char *s = (const unsigned char *)p;
    size_t i = 0;
    while (i < n) {
        if (n - i >= 8) {
            uint64_t w;
            memcpy(&w, s + i, 8);
            if ((w & UINT64_C(0x8080808080808080)) == 0) {
                i += 8;
                continue;
            }
        }
        size_t k = gw_str_utf8_seq_len(s + i, n - i);
        if (k == 0) {
            if (bad_at != NULL)
                *bad_at = i;
            return false;
        }
        i += k;
    }
    return true;
}

void gw_str_escape(char *dst, size_t cap, const char *s, size_t len, size_t max_out)
{
    static const char hex[] = "0123456789abcdef";
    size_t o = 0;
    for (size_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char)s[i];
        char esc[5];
        size_t k = 0;
        if (c == '"' || c == '\\') {
            esc[k++] = '\\';
            esc[k++] = (char)c;
        } else if (c >= 0x20 && c < 0x7f) {
            esc[k++] = (char)c;
        } else {
            esc[k++] = '\\';
            esc[k++] = 'x';
            esc[k++] = hex[c >> 4];
            esc[k++] = hex[c & 0xf];
        }
        if (o + k > max_out || o + k + 4 > cap) {
            memcpy(dst + o, "...", 3);
            o += 3;
            break;
        }
        memcpy(dst + o, esc, k);
        o += k;
    }
    dst[o] = '\0';
}
