/* fuzz_classify.c — libFuzzer target for event-type extraction and header values.
 *
 * Input layout: byte 0 = flags (bits 0-2 order permutation, bits 3-4 number of
 * sources, bit 5 property present, bit 6 header present, bit 7 header not a
 * string), byte 1 = bit 0 id header present, bit 1 message_id set, bytes 2..4 =
 * lengths of the property, header and id header (each capped by what remains), then
 * those three strings, then the body. Every piece is copied into its own exact-size heap
 * buffer so ASan sees any read past a view. Checks the invariants of classify.h
 * and headers.h, not just "does not crash". Built by tests/fuzz/build.sh.
 */
#include "classify.h"
#include "headers.h"
#include "match.h"
#include "str.h"
#include "fuzzinput.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static const gw_type_source perms[6][3] = {
    {GW_TYPE_FROM_PROPERTY, GW_TYPE_FROM_HEADER, GW_TYPE_FROM_BODY},
    {GW_TYPE_FROM_PROPERTY, GW_TYPE_FROM_BODY, GW_TYPE_FROM_HEADER},
    {GW_TYPE_FROM_HEADER, GW_TYPE_FROM_PROPERTY, GW_TYPE_FROM_BODY},
    {GW_TYPE_FROM_HEADER, GW_TYPE_FROM_BODY, GW_TYPE_FROM_PROPERTY},
    {GW_TYPE_FROM_BODY, GW_TYPE_FROM_PROPERTY, GW_TYPE_FROM_HEADER},
    {GW_TYPE_FROM_BODY, GW_TYPE_FROM_HEADER, GW_TYPE_FROM_PROPERTY},
};

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 5)
        return 0;
    uint8_t flags = data[0];
    bool has_id = data[1] & 1;
    size_t want[3] = {data[2], data[3], data[4]};
    const uint8_t *p = data + 5;
    size_t left = size - 5;

    size_t prop_len, hdr_len, id_len, body_len;
    char *prop = fuzz_take(&p, &left, want[0], &prop_len);
    char *hdr = fuzz_take(&p, &left, want[1], &hdr_len);
    char *id = fuzz_take(&p, &left, want[2], &id_len);
    char *body = fuzz_take(&p, &left, left, &body_len);

    gw_classify_input in = {0};
    if (flags & 0x20)
        in.type_property = (gw_str){prop, prop_len};
    if (flags & 0x40)
        in.type_header = (gw_str){hdr, hdr_len};
    in.type_header_not_string = (flags & 0x80) != 0;
    if (has_id)
        in.id_header = (gw_str){id, id_len};
    in.has_message_id = (data[1] & 2) != 0;
    in.body = body;
    in.body_len = body_len;

    size_t n_order = (size_t)((flags >> 3) & 3);
    if (n_order == 0)
        n_order = 3;
    gw_classify_result res;
    gw_err err = gw_classify(perms[(flags & 7) % 6], n_order, &in, &res);
    if (err == GW_OK) {
        if (res.why[0] != '\0' || strlen(res.type) != res.type_len ||
            !gw_match_type_valid(res.type, res.type_len))
            abort();
        if (res.has_ce_id &&
            (res.ce_id_len == 0 || res.ce_id_len > 255 || strlen(res.ce_id) != res.ce_id_len ||
             !gw_str_utf8_valid(res.ce_id, res.ce_id_len, NULL)))
            abort();
        if (res.source == GW_TYPE_FROM_PROPERTY &&
            (res.type_len != prop_len || memcmp(res.type, prop, prop_len) != 0))
            abort();
    } else {
        if (err != GW_ERR_INVALID || res.why[0] == '\0')
            abort();
        fuzz_check_printable(res.why);
    }

    /* The error-text budget over the same bytes. */
    char out[GW_HEADERS_ERROR_MAX_BYTES + 1];
    size_t budget = data[2] * 8u;
    size_t n = gw_headers_truncate_error(body, body_len, budget, out, sizeof out);
    if (n > budget || n > GW_HEADERS_ERROR_MAX_BYTES || strlen(out) != n ||
        !gw_str_utf8_valid(out, n, NULL))
        abort();

    gw_event_ids ids;
    uint8_t rnd[32] = {0};
    memcpy(rnd, data, size < 32 ? size : 32);
    gw_headers_ids(in.type_property, in.type_header, in.id_header, GW_STR_NULL, rnd, &ids);
    if (ids.correlation_id_len > 255 || ids.message_id_len > 255)
        abort();
    (void)gw_headers_is_gateway_owned((gw_str){prop, prop_len});
    (void)gw_headers_is_broker_owned((gw_str){hdr, hdr_len});

    free(prop);
    free(hdr);
    free(id);
    free(body);
    return 0;
}
