/* classify.c — event-type extraction from property, header or JSON body.
 *
 * Owns the strictness rules for bodies that cJSON 1.7.15 alone would let through
 * (reliability-facts §3.1): trailing data, malformed UTF-8, raw NUL bytes,
 * `\u0000` escapes that silently truncate strings, and duplicate keys (cJSON keeps
 * the first, other parsers the last, so the gateway and a consumer could disagree
 * on the type). Called by intake.c for each delivery; never logs, never
 * allocates outside cJSON.
 */
#include "classify.h"

#include "match.h"

#include <cjson/cJSON.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

/* Longest quoted excerpt of message bytes in a why text. */
#define CLASSIFY_QUOTE_MAX 80

const char *gw_classify_source_name(gw_type_source source)
{
    switch (source) {
    case GW_TYPE_FROM_PROPERTY:
        return "property";
    case GW_TYPE_FROM_HEADER:
        return "header";
    case GW_TYPE_FROM_BODY:
        return "body";
    }
    return "unknown";
}

static void why_to(char why[GW_CLASSIFY_WHY_CAP], const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

static void why_to(char why[GW_CLASSIFY_WHY_CAP], const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(why, GW_CLASSIFY_WHY_CAP, fmt, ap);
    va_end(ap);
}

/* An id worth keeping as message_id: 1..255 bytes, well-formed UTF-8, no NUL. */
static bool id_usable(const char *p, size_t len)
{
    return p != NULL && len > 0 && len < GW_CLASSIFY_ID_CAP && memchr(p, 0, len) == NULL &&
           gw_str_utf8_valid(p, len, NULL);
}

static void set_ce_id(gw_classify_result *out, const char *p, size_t len)
{
    memcpy(out->ce_id, p, len);
    out->ce_id[len] = '\0';
    out->ce_id_len = len;
    out->has_ce_id = true;
}

/* Offset of the first `\u0000` escape in json[0..len), or SIZE_MAX. Only valid on text
 * cJSON has already accepted: there a backslash only ever starts an escape inside
 * a string, so stepping over whole escapes never mistakes `\\u0000` for one. */
static size_t find_u0000(const char *json, size_t len)
{
    const char *p = json, *end = json + len;
    while (p < end) {
        const char *bs = memchr(p, '\\', (size_t)(end - p));
        if (bs == NULL || end - bs < 2)
            return SIZE_MAX;
        if (bs[1] == 'u') {
            if (end - bs >= 6 && memcmp(bs + 2, "0000", 4) == 0)
                return (size_t)(bs - json);
            p = bs + 6;
        } else {
            p = bs + 2;
        }
    }
    return SIZE_MAX;
}

static bool is_json_ws(char c)
{
    return c == ' ' || c == '\t' || c == '\n' || c == '\r';
}

/* How many arrays and objects are open at byte pos of JSON text cJSON read up to pos. */
static size_t json_depth_at(const char *json, size_t pos)
{
    size_t depth = 0;
    bool in_string = false;
    for (size_t i = 0; i < pos; i++) {
        char c = json[i];
        if (in_string) {
            if (c == '\\')
                i++;
            else if (c == '"')
                in_string = false;
        } else if (c == '"') {
            in_string = true;
        } else if (c == '[' || c == '{') {
            depth++;
        } else if ((c == ']' || c == '}') && depth > 0) {
            depth--;
        }
    }
    return depth;
}

/* Cheap pre-check before reading a body only for its id: anything whose first
 * non-whitespace byte is not '{' cannot be a JSON object. */
static bool body_may_be_object(const gw_classify_input *in)
{
    const char *p = in->body;
    if (p == NULL)
        return false;
    const char *end = p + in->body_len;
    while (p < end && is_json_ws(*p))
        p++;
    return p < end && *p == '{';
}

/* Reads the body as strict JSON. On success *root is the parsed object (caller
 * deletes) and *type_item / *id_item the top-level "type" / "id" members or NULL. On
 * failure why says why; *root may be set all the same (the caller deletes it). */
static bool parse_body(const char *body, size_t len, char why[GW_CLASSIFY_WHY_CAP], cJSON **root,
                       const cJSON **type_item, const cJSON **id_item)
{
    size_t at;

    if (len == 0 || body == NULL) {
        why_to(why, "body is empty");
        return false;
    }
    const char *nul = memchr(body, 0, len);
    if (nul != NULL) {
        why_to(why, "body contains a NUL byte at byte %zu", (size_t)(nul - body));
        return false;
    }
    if (!gw_str_utf8_valid(body, len, &at)) {
        why_to(why, "body is not valid UTF-8 at byte %zu", at);
        return false;
    }

    const char *end = NULL;
    cJSON *doc = cJSON_ParseWithLengthOpts(body, len, &end, 0);
    if (doc == NULL) {
        bool located = end != NULL && end >= body && end <= body + len;
        size_t at = located ? (size_t)(end - body) : 0;
        /* cJSON stops at its nesting limit the way it stops at a syntax error. */
        if (located && at < len && (body[at] == '[' || body[at] == '{') &&
            json_depth_at(body, at) >= CJSON_NESTING_LIMIT)
            why_to(why,
                   "body nests JSON deeper than %d levels at byte %zu (the limit of the "
                   "gateway's JSON reader)",
                   CJSON_NESTING_LIMIT, at);
        else if (located)
            why_to(why, "body is not valid JSON at byte %zu", at);
        else
            why_to(why, "body is not valid JSON");
        return false;
    }
    *root = doc;

    const char *json_end = end;
    while (end < body + len && is_json_ws(*end))
        end++;
    if (end != body + len) {
        why_to(why, "body has trailing data after JSON at byte %zu", (size_t)(end - body));
        return false;
    }
    if (!cJSON_IsObject(doc)) {
        why_to(why, "body is not a JSON object");
        return false;
    }
    size_t u0 = find_u0000(body, (size_t)(json_end - body));
    if (u0 != SIZE_MAX) {
        why_to(why, "JSON string contains \\u0000 at byte %zu", u0);
        return false;
    }

    /* One walk of the top level: duplicates of the keys we route or dedupe on. */
    const cJSON *t = NULL, *id = NULL;
    for (const cJSON *c = doc->child; c != NULL; c = c->next) {
        if (c->string == NULL)
            continue;
        if (strcmp(c->string, "type") == 0) {
            if (t != NULL) {
                why_to(why, "duplicate key \"type\" in JSON body");
                return false;
            }
            t = c;
        } else if (strcmp(c->string, "id") == 0) {
            if (id != NULL) {
                why_to(why, "duplicate key \"id\" in JSON body");
                return false;
            }
            id = c;
        }
    }
    *type_item = t;
    *id_item = id;
    return true;
}

/* "no event type in property, header or body", naming the sources in order. */
static void why_no_type(gw_classify_result *out, const gw_type_source *order, size_t n_order)
{
    char list[64] = "";
    size_t o = 0;
    for (size_t i = 0; i < n_order; i++) {
        const char *sep = i == 0 ? "" : (i + 1 == n_order ? " or " : ", ");
        int k = snprintf(list + o, sizeof list - o, "%s%s", sep, gw_classify_source_name(order[i]));
        if (k < 0 || (size_t)k >= sizeof list - o)
            break;
        o += (size_t)k;
    }
    if (n_order == 0)
        why_to(out->why, "no event type: no source configured");
    else
        why_to(out->why, "no event type in %s", list);
}

gw_err gw_classify(const gw_type_source *order, size_t n_order, const gw_classify_input *in,
                   gw_classify_result *out)
{
    gw_err err = GW_ERR_INVALID;
    cJSON *root = NULL;
    const cJSON *type_item = NULL, *id_item = NULL;
    const char *type = NULL;
    size_t type_len = 0;
    char q[CLASSIFY_QUOTE_MAX + 8];

    out->type[0] = '\0';
    out->type_len = 0;
    out->source = n_order > 0 ? order[0] : GW_TYPE_FROM_PROPERTY;
    out->ce_id[0] = '\0';
    out->ce_id_len = 0;
    out->has_ce_id = false;
    out->body_parsed = false;
    out->why[0] = '\0';
    out->doc = NULL;
    out->body_read = false;
    out->body_why[0] = '\0';
    bool doc_ok = false; /* root holds a body that passed the strict rules */

    for (size_t i = 0; i < n_order && type == NULL; i++) {
        switch (order[i]) {
        case GW_TYPE_FROM_PROPERTY:
            /* SPEC §6: an empty type is no type; the next source may have one. */
            if (in->type_property.ptr == NULL || in->type_property.len == 0)
                break;
            type = in->type_property.ptr;
            type_len = in->type_property.len;
            out->source = GW_TYPE_FROM_PROPERTY;
            break;
        case GW_TYPE_FROM_HEADER:
            if (in->type_header_not_string) {
                why_to(out->why, "header cloudEvents_type is not a string");
                goto out;
            }
            if (in->type_header.ptr == NULL || in->type_header.len == 0)
                break;
            type = in->type_header.ptr;
            type_len = in->type_header.len;
            out->source = GW_TYPE_FROM_HEADER;
            break;
        case GW_TYPE_FROM_BODY:
            if (out->body_parsed)
                break; /* listed twice; already read */
            if (!parse_body(in->body, in->body_len, out->why, &root, &type_item, &id_item))
                goto out;
            out->body_parsed = true;
            doc_ok = true;
            if (type_item == NULL)
                break;
            if (!cJSON_IsString(type_item) || type_item->valuestring == NULL) {
                why_to(out->why, "field \"type\" is not a string");
                goto out;
            }
            /* strlen is exact: \u0000 escapes were refused above. */
            type = type_item->valuestring;
            type_len = strlen(type);
            if (type_len == 0) {
                why_to(out->why, "field \"type\" is empty");
                goto out;
            }
            out->source = GW_TYPE_FROM_BODY;
            break;
        }
    }

    if (type == NULL) {
        why_no_type(out, order, n_order);
        goto out;
    }
    if (type_len > GW_TYPE_MAX_BYTES) {
        why_to(out->why, "type longer than %d bytes (%zu bytes, from %s)", GW_TYPE_MAX_BYTES,
               type_len, gw_classify_source_name(out->source));
        goto out;
    }
    if (!gw_match_type_valid(type, type_len)) {
        gw_str_escape(q, sizeof q, type, type_len, CLASSIFY_QUOTE_MAX);
        why_to(out->why, "type \"%s\" is not a dot-separated name", q);
        goto out;
    }
    memcpy(out->type, type, type_len);
    out->type[type_len] = '\0';
    out->type_len = type_len;

    /* The type came from a property or header, so the body is not held to being
     * JSON: a structured-mode body may still carry the only CloudEvents id. */
    if (!out->body_parsed && !in->has_message_id && in->id_header.ptr == NULL &&
        body_may_be_object(in)) {
        out->body_read = true;
        doc_ok = parse_body(in->body, in->body_len, out->body_why, &root, &type_item, &id_item);
        if (!doc_ok)
            id_item = NULL; /* root, if any, is freed below */
    }
    if (id_usable(in->id_header.ptr, in->id_header.len))
        set_ce_id(out, in->id_header.ptr, in->id_header.len);
    else if (cJSON_IsString(id_item) && id_item->valuestring != NULL &&
             id_usable(id_item->valuestring, strlen(id_item->valuestring)))
        set_ce_id(out, id_item->valuestring, strlen(id_item->valuestring));

    if (in->keep_doc) {
        out->body_read |= out->body_parsed;
        if (doc_ok) {
            out->doc = root;
            root = NULL;
        }
    } else {
        out->body_read = false;
        out->body_why[0] = '\0';
    }
    err = GW_OK;
out:
    cJSON_Delete(root);
    return err;
}

gw_err gw_classify_parse_body(const void *body, size_t len, cJSON **out,
                              char why[GW_CLASSIFY_WHY_CAP])
{
    cJSON *root = NULL;
    const cJSON *t, *id;
    why[0] = '\0';
    *out = NULL;
    if (!parse_body(body, len, why, &root, &t, &id)) {
        cJSON_Delete(root);
        return GW_ERR_INVALID;
    }
    *out = root;
    return GW_OK;
}

void gw_classify_doc_free(cJSON *doc)
{
    cJSON_Delete(doc);
}
