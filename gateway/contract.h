/* contract.h — a route's event contract (SPEC §5 `contract:`): JSON pointers and versions. Pure.
 *
 * A contract lists required JSON pointers (RFC 6901) into the body, each with an optional
 * JSON type, and optionally the accepted versions of the event, read from a header, from a
 * pointer into the body, or from the CloudEvents `dataschema` attribute. routes.c builds
 * one per route that has `contract:` (through gw_pointer_parse and
 * gw_contract_parse_version_from, so a table error is reported where it is written);
 * intake.c checks an event against it with gw_contract_check. The body is parsed elsewhere
 * (classify.h, by its strict rules) and comes in as a cJSON tree: this module never parses
 * a body, never logs, reads no clock; it allocates only while a table is loaded.
 *
 * Versions are compared as text: an integer header or body value reads as its decimal
 * digits, so `versions: [1, 2]` accepts the header value 2, the string "2", the JSON
 * number 2 and a dataschema ending in `/v2` or `/2`.
 */
#ifndef GW_CONTRACT_H
#define GW_CONTRACT_H

#include "delivery.h"

#include <stdbool.h>
#include <stddef.h>

struct cJSON;

/* A compiled JSON pointer. "" is the whole document; "/a~1b/0" is member "a/b", then
 * element 0 (or member "0" of an object). */
typedef struct gw_pointer {
    char *text;    /* as written, NUL-terminated (owned) */
    char **tokens; /* unescaped reference tokens (owned), n_tokens of them */
    size_t n_tokens;
} gw_pointer;

/* Compiles text[0..len) (no NUL byte inside). Returns false with one line in why (e.g.
 * `bad escape "~2" at byte 5 (~0 is "~", ~1 is "/")`) when it is not an RFC 6901 pointer:
 * not empty and not starting with "/", or a "~" not followed by 0 or 1. On true *out is
 * new (gw_pointer_cleanup). */
bool gw_pointer_parse(const char *text, size_t len, gw_pointer *out, char *why, size_t why_cap);

void gw_pointer_cleanup(gw_pointer *p);

/* What p names in doc (borrowed from doc), or NULL when it names nothing: a missing
 * member, an index past the end, "-", an index with a leading zero or sign, or a step
 * into a scalar. *ambiguous (may be NULL) is set when an object on the way holds the
 * member twice: JSON readers disagree on which one counts, so callers treat it as a
 * violation rather than pick one (the first is returned). */
const struct cJSON *gw_pointer_get(const gw_pointer *p, const struct cJSON *doc, bool *ambiguous);

/* JSON types a required pointer may demand. integer = a number without fractional part. */
typedef enum gw_json_type {
    GW_JSON_STRING,
    GW_JSON_NUMBER,
    GW_JSON_INTEGER,
    GW_JSON_BOOLEAN,
    GW_JSON_OBJECT,
    GW_JSON_ARRAY,
    GW_JSON_NULL,
} gw_json_type;

/* "string", "number", "integer", "boolean", "object", "array", "null", NULL: indexed by
 * gw_json_type (the table's `type:` values). */
extern const char *const gw_json_type_names[];

typedef struct gw_contract_require {
    gw_pointer ptr;
    bool has_type;
    gw_json_type type; /* when has_type */
} gw_contract_require;

typedef enum gw_version_source {
    GW_VERSION_NONE,       /* no versions: */
    GW_VERSION_HEADER,     /* header:NAME */
    GW_VERSION_BODY,       /* body:/pointer */
    GW_VERSION_DATASCHEMA, /* CloudEvents dataschema: header cloudEvents_dataschema or
                              cloudEvents:dataschema, else the body's "dataschema" */
} gw_version_source;

typedef struct gw_contract {
    gw_contract_require *require; /* owned; checked in this order */
    size_t n_require;
    char **versions; /* owned; accepted versions as text ("1", "2", "beta") */
    size_t n_versions;
    char *versions_text; /* owned: "1, 2", for messages */
    gw_version_source version_from;
    char *version_from_text; /* owned; as written, NULL for GW_VERSION_NONE */
    char *version_header;    /* owned; GW_VERSION_HEADER: the header name */
    gw_pointer version_ptr;  /* GW_VERSION_BODY */
} gw_contract;

/* Reads a version_from value ("header:NAME", "body:/pointer", "dataschema") into c's
 * version_from, version_from_text, version_header and version_ptr. Returns false with one
 * line in why when it is none of those. */
bool gw_contract_parse_version_from(const char *text, gw_contract *c, char *why, size_t why_cap);

/* Appends accepted version v (borrowed; copied) and keeps versions_text in step. */
void gw_contract_add_version(gw_contract *c, const char *v);

/* Frees everything c owns, and c (NULL is a no-op). */
void gw_contract_free(gw_contract *c);

/* The whole contract on one line, for `explain`, e.g.
 * `require /id, /data/order_id (string); versions 1, 2 from header:x-event-version`.
 * Returns a new string (free()). */
char *gw_contract_describe(const gw_contract *c);

/* True when checking c against an event with these headers reads the body: a required
 * pointer, a version from body:, or a dataschema no header carries. */
bool gw_contract_needs_body(const gw_contract *c, const gw_delivery_entry *headers,
                            size_t n_headers);

/* What gw_contract_check reads. */
typedef struct gw_contract_input {
    const gw_delivery_entry *headers; /* the delivery's header table (borrowed) */
    size_t n_headers;
    const struct cJSON *doc; /* the body as classify's strict reader parsed it, or NULL */
    const char *doc_why;     /* doc NULL: why the body is not JSON (one line) */
} gw_contract_input;

#define GW_CONTRACT_WHY_CAP 512

/* The contract rule an event broke. */
typedef struct gw_contract_violation {
    /* One line for x-gw-last-error, e.g. `contract: /data/order_id is missing`,
     * `contract: /data/amount is string, want number`, `contract: version 3 not accepted
     * (1, 2)`, `contract: body is not JSON: ...`. Bytes from the message are escaped
     * (printable ASCII only) and quoted excerpts cut short. */
    char why[GW_CONTRACT_WHY_CAP];
    /* The metric's rule label (static or borrowed from c): the pointer of a require rule
     * as written, "version" or "body". */
    const char *rule;
} gw_contract_violation;

/* Checks an event against c: first the version (a version the contract does not know
 * explains missing fields better than the fields do), then, if the body is needed and is
 * not JSON, "body", then each required pointer in order. Returns true when it passes;
 * false with the first broken rule in *out. */
bool gw_contract_check(const gw_contract *c, const gw_contract_input *in,
                       gw_contract_violation *out);

#endif
