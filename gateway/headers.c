/* headers.c — values and size budget of the gateway's headers (SPEC §6).
 *
 * Why a budget at all: a header table that outgrows the negotiated frame_max makes
 * rabbitmq-c fail the publish (TABLE_TOO_BIG) on every retry, and an error text
 * copied from a broker reply or a stack of failures can be arbitrarily long. So the
 * one free-text header, x-gw-last-error, is cut to fit. Pure: callers supply sizes,
 * random bytes and the strings; copy.c puts the results together into a copy.
 */
#include "headers.h"

#include <stdio.h>
#include <string.h>

/* "…" (U+2026) followed by "[truncated N bytes]". */
#define TRUNC_ELLIPSIS "\xe2\x80\xa6"

static bool id_set(gw_str s)
{
    return s.ptr != NULL && s.len > 0 && s.len <= GW_HEADERS_SHORTSTR_MAX;
}

static void copy_id(char *dst, size_t *dst_len, gw_str s)
{
    memcpy(dst, s.ptr, s.len);
    dst[s.len] = '\0';
    *dst_len = s.len;
}

void gw_headers_ids(gw_str correlation_id, gw_str header_correlation_id, gw_str message_id,
                    gw_str ce_id, const uint8_t random32[32], gw_event_ids *out)
{
    if (id_set(correlation_id)) {
        copy_id(out->correlation_id, &out->correlation_id_len, correlation_id);
        out->correlation_origin = GW_ID_KEPT;
    } else if (id_set(header_correlation_id) &&
               memchr(header_correlation_id.ptr, 0, header_correlation_id.len) == NULL) {
        copy_id(out->correlation_id, &out->correlation_id_len, header_correlation_id);
        out->correlation_origin = GW_ID_FROM_HEADER;
    } else {
        gw_uuid_v4(random32, out->correlation_id);
        out->correlation_id_len = GW_UUID_TEXT_LEN;
        out->correlation_origin = GW_ID_GENERATED;
    }

    if (id_set(message_id)) {
        copy_id(out->message_id, &out->message_id_len, message_id);
        out->message_origin = GW_ID_KEPT;
    } else if (id_set(ce_id)) {
        copy_id(out->message_id, &out->message_id_len, ce_id);
        out->message_origin = GW_ID_FROM_CLOUDEVENTS;
    } else {
        gw_uuid_v4(random32 + 16, out->message_id);
        out->message_id_len = GW_UUID_TEXT_LEN;
        out->message_origin = GW_ID_GENERATED;
    }
}

size_t gw_headers_props_room(size_t frame_max)
{
    const size_t fixed = GW_HEADERS_FRAME_OVERHEAD + GW_HEADERS_CONTENT_FIXED;
    if (frame_max == 0)
        return SIZE_MAX;
    return frame_max > fixed ? frame_max - fixed : 0;
}

static size_t sat_add(size_t a, size_t b)
{
    return a > SIZE_MAX - b ? SIZE_MAX : a + b;
}

size_t gw_headers_entry_size(size_t key_len, char kind, size_t value_len)
{
    size_t value;
    switch (kind) {
    case 'S':
    case 'x':
    case 'F':
    case 'A':
        value = sat_add(4, value_len);
        break;
    case 't':
    case 'b':
    case 'B':
        value = 1;
        break;
    case 's':
    case 'u':
        value = 2;
        break;
    case 'I':
    case 'i':
    case 'f':
        value = 4;
        break;
    case 'l':
    case 'L':
    case 'd':
    case 'T':
        value = 8;
        break;
    case 'D':
        value = 5;
        break;
    case 'V':
        value = 0;
        break;
    default:
        return SIZE_MAX;
    }
    return sat_add(sat_add(2, key_len), value);
}

size_t gw_headers_error_budget(size_t frame_max, size_t existing_props_bytes)
{
    size_t room = gw_headers_props_room(frame_max);
    size_t entry = gw_headers_entry_size(strlen(GW_H_LAST_ERROR), 'S', 0);
    size_t used = sat_add(existing_props_bytes, entry);
    return room > used ? room - used : 0;
}

static size_t decimal_digits(size_t v)
{
    size_t d = 1;
    while (v >= 10) {
        v /= 10;
        d++;
    }
    return d;
}

size_t gw_headers_truncate_error(const char *err, size_t err_len, size_t budget, char *out,
                                 size_t out_cap)
{
    if (out_cap == 0)
        return 0;
    if (err == NULL)
        err_len = 0;

    size_t cap = budget;
    if (cap > GW_HEADERS_ERROR_MAX_BYTES)
        cap = GW_HEADERS_ERROR_MAX_BYTES;
    if (cap > out_cap - 1)
        cap = out_cap - 1;

    /* The marker's count has at most as many digits as err_len, so reserving for
     * that bound keeps prefix + marker within cap whatever is dropped. */
    size_t marker_len = strlen(TRUNC_ELLIPSIS "[truncated  bytes]") + decimal_digits(err_len);
    bool fits = err_len <= cap;
    bool with_marker = !fits && marker_len <= cap;
    size_t limit = with_marker ? cap - marker_len : cap;

    const unsigned char *s = (const unsigned char *)err;
    size_t i = 0, o = 0;
    while (i < err_len) {
        size_t k = gw_str_utf8_seq_len(s + i, err_len - i);
        bool bad = k == 0 || s[i] == 0;
        size_t n = bad ? 1 : k;
        if (o + n > limit)
            break;
        if (bad)
            out[o] = '?';
        else
            memcpy(out + o, s + i, n);
        o += n;
        i += n;
    }
    if (i < err_len && with_marker) {
        int m = snprintf(out + o, out_cap - o, TRUNC_ELLIPSIS "[truncated %zu bytes]", err_len - i);
        if (m > 0)
            o += (size_t)m;
    }
    out[o] = '\0';
    return o;
}

bool gw_headers_is_gateway_owned(gw_str key)
{
    return gw_str_has_prefix(key, "x-gw-") || gw_str_eq_cstr(key, GW_H_CORRELATION_ID);
}

bool gw_headers_is_broker_owned(gw_str key)
{
    return gw_str_eq_cstr(key, GW_H_X_DEATH) || gw_str_has_prefix(key, "x-first-death-") ||
           gw_str_has_prefix(key, "x-last-death-") || gw_str_eq_cstr(key, "x-delivery-count");
}
