/* fuzz_contract.c — libFuzzer target for JSON pointers and route contracts (contract.c).
 *
 * Input layout: byte 0 = flags (bits 0-2 the required type, 7 = none; bits 3-4 the version
 * source: none, header, body pointer, dataschema; bit 5 the version/dataschema header is an
 * integer; bit 6 a second accepted version), byte 1 = length of the pointer text, byte 2 =
 * length of the header value, then the pointer text, the header value and the body. Each
 * piece is copied into its own exact-size heap buffer so ASan sees any read past a view.
 * Checks the invariants of contract.h (a pointer either compiles or says why; a violation is
 * one line of printable ASCII starting "contract: " and names its rule; the same input
 * decides the same way twice), not just "does not crash". Built by tests/fuzz/build.sh.
 */
#include "classify.h"
#include "contract.h"
#include "fuzzinput.h"

#include <cjson/cJSON.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 3)
        return 0;
    uint8_t flags = data[0];
    const uint8_t *p = data + 3;
    size_t left = size - 3, ptr_len, hdr_len, body_len;
    char *ptr_text = fuzz_take(&p, &left, data[1], &ptr_len);
    char *hdr = fuzz_take(&p, &left, data[2], &hdr_len);
    char *body = fuzz_take(&p, &left, left, &body_len);

    /* a pointer with a NUL byte cannot come from the table (yamldoc refuses it) */
    gw_contract *c = calloc(1, sizeof *c);
    if (!c)
        abort();
    char why[200];
    gw_pointer ptr;
    bool ok = memchr(ptr_text, 0, ptr_len) == NULL &&
              gw_pointer_parse(ptr_text, ptr_len, &ptr, why, sizeof why);
    if (memchr(ptr_text, 0, ptr_len) == NULL && !ok && why[0] == '\0')
        abort(); /* a refusal always says why */
    if (ok) {
        if (strlen(ptr.text) != ptr_len || memcmp(ptr.text, ptr_text, ptr_len) != 0)
            abort(); /* kept as written */
        c->require = calloc(1, sizeof *c->require);
        if (!c->require)
            abort();
        c->require[0].ptr = ptr;
        c->require[0].has_type = (flags & 7) != 7;
        c->require[0].type = (gw_json_type)((flags & 7) % 7);
        c->n_require = 1;
    }
    int source = (flags >> 3) & 3;
    if (source == 1)
        gw_contract_parse_version_from("header:v", c, why, sizeof why);
    else if (source == 2 && ok) {
        char *from = malloc(ptr_len + 6);
        if (!from)
            abort();
        memcpy(from, "body:", 5);
        memcpy(from + 5, ptr_text, ptr_len);
        from[ptr_len + 5] = '\0';
        if (!gw_contract_parse_version_from(from, c, why, sizeof why))
            abort(); /* the same pointer compiled above */
        free(from);
    } else if (source == 3)
        gw_contract_parse_version_from("dataschema", c, why, sizeof why);
    if (c->version_from != GW_VERSION_NONE) {
        gw_contract_add_version(c, "1");
        if (flags & 0x40)
            gw_contract_add_version(c, "beta");
    }

    gw_delivery_entry h[2];
    memset(h, 0, sizeof h);
    h[0].key = gw_str_from_cstr(source == 3 ? "cloudEvents_dataschema" : "v");
    if (flags & 0x20) {
        h[0].has_int = true;
        h[0].i = (int64_t)hdr_len - 100;
    } else {
        h[0].str = (gw_str){hdr, hdr_len};
    }
    h[1].key = gw_str_from_cstr("other");
    size_t n_h = hdr_len > 0 || (flags & 0x20) ? 2 : 0;

    cJSON *doc = NULL;
    char doc_why[GW_CLASSIFY_WHY_CAP];
    gw_classify_parse_body(body, body_len, &doc, doc_why);
    if (doc && ok) {
        bool amb;
        gw_pointer_get(&c->require[0].ptr, doc, &amb);
    }
    gw_contract_input in = {h, n_h, doc, doc_why};
    gw_contract_violation v1, v2;
    bool pass1 = gw_contract_check(c, &in, &v1);
    bool pass2 = gw_contract_check(c, &in, &v2);
    if (pass1 != pass2)
        abort();
    if (!pass1) {
        fuzz_check_printable(v1.why);
        if (strncmp(v1.why, "contract: ", 10) != 0 || v1.rule == NULL || strcmp(v1.why, v2.why))
            abort();
        if (!doc && strcmp(v1.rule, "body") != 0 && strcmp(v1.rule, "version") != 0)
            abort(); /* without a tree only the version (from a header) or the body can fail */
    }
    char *d = gw_contract_describe(c);
    free(d);

    gw_classify_doc_free(doc);
    gw_contract_free(c);
    free(ptr_text);
    free(hdr);
    free(body);
    return 0;
}
