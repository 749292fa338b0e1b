/* classify.h — which event type is this message? Pure.
 *
 * Takes the event type from the first source of inbound.type_from (SPEC §4, §6)
 * that has one: the AMQP `type` property, the header `cloudEvents_type` /
 * `cloudEvents:type` (CloudEvents AMQP binding), or the JSON body field `type`.
 * The body is parsed (cJSON) when the body source is reached, and then it is held
 * to strict JSON: well-formed UTF-8, no NUL byte, nothing but whitespace after the
 * value, no `\u0000` escape, a top-level object without duplicate "type"/"id"
 * keys. Otherwise it is parsed only for its CloudEvents "id" (see ce_id below), and
 * a body that fails those rules then simply has no id. Every type must pass
 * gw_match_type_valid (match.h).
 *
 * intake.c fills gw_classify_input from a delivery view (delivery.h); this module
 * knows no rabbitmq-c type, never logs and allocates nothing itself (only cJSON
 * allocates, while the body is parsed; the tree is freed before returning unless the
 * caller asks to keep it, so that a route's contract (contract.h) reads the same tree
 * instead of parsing the body again). Failures map to dead-letter reason invalid_event.
 */
#ifndef GW_CLASSIFY_H
#define GW_CLASSIFY_H

#include "err.h"
#include "str.h"

#include <stdbool.h>
#include <stddef.h>

struct cJSON;

/* Where an event type may come from; inbound.type_from lists them in the order tried. */
typedef enum gw_type_source {
    GW_TYPE_FROM_PROPERTY,
    GW_TYPE_FROM_HEADER,
    GW_TYPE_FROM_BODY,
} gw_type_source;

#define GW_CLASSIFY_TYPE_CAP 256 /* GW_TYPE_MAX_BYTES + NUL */
#define GW_CLASSIFY_ID_CAP   256 /* AMQP shortstr (message_id) + NUL */
#define GW_CLASSIFY_WHY_CAP  160

/* Everything borrowed; nothing needs to be NUL-terminated. */
typedef struct gw_classify_input {
    gw_str type_property;        /* AMQP `type` property; ptr NULL if absent */
    gw_str type_header;          /* string value of header cloudEvents_type or cloudEvents:type;
                                    ptr NULL if absent or not a string */
    bool type_header_not_string; /* the header is present with a non-string value */
    gw_str id_header;            /* string value of header cloudEvents_id / cloudEvents:id */
    bool has_message_id;         /* the message_id property is set (1..255 bytes): the body is
                                    then never read just for its "id" */
    const void *body;            /* may be NULL when body_len is 0 */
    size_t body_len;
    bool keep_doc; /* hand a body read here to the caller (result doc / body_why) */
} gw_classify_input;

typedef struct gw_classify_result {
    char type[GW_CLASSIFY_TYPE_CAP]; /* NUL-terminated; valid on GW_OK */
    size_t type_len;
    gw_type_source source; /* where the type came from; valid on GW_OK */
    /* CloudEvents id: from the id header, else from the body's "id" string. The body
     * is read for it when the body source was reached anyway, or else (SPEC §6: the
     * CloudEvents id fills an unset message_id) when has_message_id is false, the id
     * header is absent and the body's first non-whitespace byte is '{'. A body read
     * only for the id that is not strict JSON just yields no id, never an error. Only an id
     * of 1..255 bytes of well-formed UTF-8 without NUL counts; anything else is ignored (has_ce_id
     * false), never an error. */
    char ce_id[GW_CLASSIFY_ID_CAP];
    size_t ce_id_len;
    bool has_ce_id;
    bool body_parsed; /* the body source was reached and the body was read for the type
                         (a read only for the id does not set it) */
    /* On GW_ERR_INVALID: one line saying why, e.g. `body is not valid JSON at byte
     * 17` (byte offsets are 0-based). Printable ASCII only: any bytes quoted from
     * the message are escaped as \xNN. Empty on GW_OK. */
    char why[GW_CLASSIFY_WHY_CAP];
    /* With in->keep_doc and GW_OK: when the body was read (for the type or only for the
     * id), body_read is true and either doc is the tree (the caller owns it: free with
     * gw_classify_doc_free) or doc is NULL and body_why says why the body is not strict
     * JSON. Otherwise doc is NULL, body_read false and body_why "". */
    struct cJSON *doc;
    bool body_read;
    char body_why[GW_CLASSIFY_WHY_CAP];
} gw_classify_result;

/* Classifies one message. order[0..n_order) is inbound.type_from (borrowed).
 * Returns GW_OK with out->type set, or GW_ERR_INVALID with out->why set (the
 * gateway dead-letters with reason invalid_event). *out is always fully written.
 * An empty property or header has no type: the next source in order is tried
 * (SPEC §6). A header that is not a string, and a body source that is reached but
 * unreadable or whose "type" is not a string or is empty, are errors, not "absent". */
gw_err gw_classify(const gw_type_source *order, size_t n_order, const gw_classify_input *in,
                   gw_classify_result *out);

/* Reads body[0..len) by the same strict rules as the body source (a JSON object, nothing
 * after it, well-formed UTF-8, no NUL byte or \u0000 escape, no duplicate "type" or "id",
 * nesting within cJSON's limit), for a caller that needs the tree when classify did not
 * read the body. Returns GW_OK with *out the tree (gw_classify_doc_free), or
 * GW_ERR_INVALID with *out NULL and why set as gw_classify_result.why would be. */
gw_err gw_classify_parse_body(const void *body, size_t len, struct cJSON **out,
                              char why[GW_CLASSIFY_WHY_CAP]);

/* Frees a tree gw_classify or gw_classify_parse_body handed out (NULL is a no-op). */
void gw_classify_doc_free(struct cJSON *doc);

/* "property", "header" or "body". */
const char *gw_classify_source_name(gw_type_source source);

#endif
