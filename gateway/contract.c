/* contract.c — JSON pointers over a cJSON tree, and a route's contract checked against one event.
 *
 * Pointers are compiled once, when the routing table is loaded (escapes undone, so an event
 * costs one member or index step per token). A check walks the tree classify's strict reader
 * built and the delivery's header table; it allocates nothing. Words for x-gw-last-error are
 * built here, so every violation reads the same wherever it is reported (the daemon's DLQ
 * copy, `amqp-gw test`).
 */
#include "contract.h"

#include "alloc.h"
#include "headers.h"
#include "str.h"

#include <cjson/cJSON.h>
#include <inttypes.h>
#include <math.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Longest excerpt of message bytes quoted in a violation. */
#define QUOTE_MAX 80

const char *const gw_json_type_names[] = {"string", "number", "integer", "boolean",
                                          "object", "array",  "null",    NULL};

/* ---------------------------------------------------------------- pointers */

bool gw_pointer_parse(const char *text, size_t len, gw_pointer *out, char *why, size_t why_cap)
{
    if (len > 0 && text[0] != '/') {
        snprintf(why, why_cap,
                 "a JSON pointer starts with \"/\" (or is \"\" for the whole body), e.g. "
                 "/data/order_id");
        return false;
    }
    size_t n = 0;
    for (size_t i = 0; i < len; i++) {
        if (text[i] == '/')
            n++;
        else if (text[i] == '~' && (i + 1 == len || (text[i + 1] != '0' && text[i + 1] != '1'))) {
            snprintf(why, why_cap, "bad escape \"~%.1s\" at byte %zu (~0 is \"~\", ~1 is \"/\")",
                     i + 1 < len ? text + i + 1 : "", i);
            return false;
        }
    }
    gw_pointer p = {.text = gw_xstrndup(text, len), .n_tokens = n};
    p.tokens = gw_xcalloc(n ? n : 1, sizeof *p.tokens);
    size_t k = 0;
    for (size_t i = 0; i < len; k++) {
        size_t start = ++i; /* past the "/" */
        while (i < len && text[i] != '/')
            i++;
        char *t = gw_xmalloc(i - start + 1), *o = t;
        for (size_t j = start; j < i; j++) {
            if (text[j] == '~') {
                *o++ = text[j + 1] == '0' ? '~' : '/';
                j++;
            } else {
                *o++ = text[j];
            }
        }
        *o = '\0';
        p.tokens[k] = t;
    }
    *out = p;
    return true;
}

void gw_pointer_cleanup(gw_pointer *p)
{
    for (size_t i = 0; i < p->n_tokens; i++)
        free(p->tokens[i]);
    free(p->tokens);
    free(p->text);
    memset(p, 0, sizeof *p);
}

/* An array index as RFC 6901 writes it: "0" or digits without a leading zero. */
static bool array_index(const char *t, size_t *out)
{
    if (t[0] == '\0' || (t[0] == '0' && t[1] != '\0'))
        return false;
    size_t v = 0;
    for (const char *c = t; *c; c++) {
        if (*c < '0' || *c > '9' || v > (SIZE_MAX - 9) / 10)
            return false;
        v = v * 10 + (size_t)(*c - '0');
    }
    *out = v;
    return true;
}

const cJSON *gw_pointer_get(const gw_pointer *p, const cJSON *doc, bool *ambiguous)
{
    const cJSON *cur = doc;
    if (ambiguous)
        *ambiguous = false;
    for (size_t i = 0; cur && i < p->n_tokens; i++) {
        const char *t = p->tokens[i];
        const cJSON *next = NULL;
        if (cJSON_IsObject(cur)) {
            /* one walk of the members: the first match, and whether there is a second */
            for (const cJSON *c = cur->child; c; c = c->next) {
                if (!c->string || strcmp(c->string, t) != 0)
                    continue;
                if (next) {
                    if (ambiguous)
                        *ambiguous = true;
                    break;
                }
                next = c;
            }
        } else if (cJSON_IsArray(cur)) {
            size_t idx;
            if (array_index(t, &idx)) {
                const cJSON *c = cur->child;
                for (size_t k = 0; c && k < idx; k++)
                    c = c->next;
                next = c;
            }
        }
        cur = next;
    }
    return cur;
}

/* ---------------------------------------------------------------- contracts */

bool gw_contract_parse_version_from(const char *text, gw_contract *c, char *why, size_t why_cap)
{
    if (strncmp(text, "header:", 7) == 0) {
        if (text[7] == '\0' || strlen(text + 7) > GW_HEADERS_SHORTSTR_MAX) {
            snprintf(why, why_cap,
                     "header: needs a header name of 1 to %d bytes, e.g. "
                     "\"header:x-event-version\"",
                     GW_HEADERS_SHORTSTR_MAX);
            return false;
        }
        c->version_from = GW_VERSION_HEADER;
        c->version_header = gw_xstrdup(text + 7);
    } else if (strncmp(text, "body:", 5) == 0) {
        char pwhy[160];
        if (!gw_pointer_parse(text + 5, strlen(text + 5), &c->version_ptr, pwhy, sizeof pwhy)) {
            snprintf(why, why_cap, "body: %s", pwhy);
            return false;
        }
        c->version_from = GW_VERSION_BODY;
    } else if (strcmp(text, "dataschema") == 0) {
        c->version_from = GW_VERSION_DATASCHEMA;
    } else {
        snprintf(why, why_cap,
                 "expected \"header:NAME\", \"body:/json/pointer\" or \"dataschema\"");
        return false;
    }
    c->version_from_text = gw_xstrdup(text);
    return true;
}

void gw_contract_add_version(gw_contract *c, const char *v)
{
    c->versions = gw_xrealloc(c->versions, (c->n_versions + 1) * sizeof *c->versions);
    c->versions[c->n_versions++] = gw_xstrdup(v);
    char *t = c->versions_text ? gw_xasprintf("%s, %s", c->versions_text, v) : gw_xstrdup(v);
    free(c->versions_text);
    c->versions_text = t;
}

void gw_contract_free(gw_contract *c)
{
    if (!c)
        return;
    for (size_t i = 0; i < c->n_require; i++)
        gw_pointer_cleanup(&c->require[i].ptr);
    free(c->require);
    for (size_t i = 0; i < c->n_versions; i++)
        free(c->versions[i]);
    free(c->versions);
    free(c->versions_text);
    free(c->version_from_text);
    free(c->version_header);
    gw_pointer_cleanup(&c->version_ptr);
    free(c);
}

char *gw_contract_describe(const gw_contract *c)
{
    char *s = gw_xstrdup("");
    for (size_t i = 0; i < c->n_require; i++) {
        const gw_contract_require *r = &c->require[i];
        char *t = gw_xasprintf(
            "%s%s\"%s\"%s%s%s", s, i == 0 ? "require " : ", ", r->ptr.text, r->has_type ? " (" : "",
            r->has_type ? gw_json_type_names[r->type] : "", r->has_type ? ")" : "");
        free(s);
        s = t;
    }
    if (c->n_versions > 0) {
        char *t = gw_xasprintf("%s%sversions %s from %s", s, c->n_require ? "; " : "",
                               c->versions_text, c->version_from_text);
        free(s);
        s = t;
    }
    return s;
}

/* The first entry of the table called name. */
static const gw_delivery_entry *header_find(const gw_delivery_entry *h, size_t n, const char *name)
{
    size_t len = strlen(name);
    for (size_t i = 0; i < n; i++)
        if (h[i].key.len == len && memcmp(h[i].key.ptr, name, len) == 0)
            return &h[i];
    return NULL;
}

static const gw_delivery_entry *dataschema_header(const gw_delivery_entry *h, size_t n)
{
    const gw_delivery_entry *e = header_find(h, n, "cloudEvents_dataschema");
    return e ? e : header_find(h, n, "cloudEvents:dataschema");
}

bool gw_contract_needs_body(const gw_contract *c, const gw_delivery_entry *headers,
                            size_t n_headers)
{
    if (c->n_require > 0 || c->version_from == GW_VERSION_BODY)
        return true;
    return c->version_from == GW_VERSION_DATASCHEMA && !dataschema_header(headers, n_headers);
}

static void why_set(gw_contract_violation *out, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

static void why_set(gw_contract_violation *out, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(out->why, sizeof out->why, fmt, ap);
    va_end(ap);
}

/* Message (or table) bytes as one safe line, cut after QUOTE_MAX bytes of output. */
static void escape(char *dst, size_t cap, const char *s, size_t len)
{
    gw_str_escape(dst, cap, s, len, QUOTE_MAX);
}

static const char *json_type_of(const cJSON *v)
{
    if (cJSON_IsString(v))
        return "string";
    if (cJSON_IsNumber(v))
        return "number";
    if (cJSON_IsBool(v))
        return "boolean";
    if (cJSON_IsObject(v))
        return "object";
    if (cJSON_IsArray(v))
        return "array";
    return "null";
}

/* An integral JSON number within int64 range. */
static bool json_integer(const cJSON *v, int64_t *out)
{
    if (!cJSON_IsNumber(v))
        return false;
    double d = v->valuedouble;
    if (!isfinite(d) || floor(d) != d)
        return false;
    if (out) {
        if (d < -9.2e18 || d > 9.2e18)
            return false;
        *out = (int64_t)d;
    }
    return true;
}

static bool type_ok(const cJSON *v, gw_json_type t)
{
    switch (t) {
    case GW_JSON_STRING:
        return cJSON_IsString(v);
    case GW_JSON_NUMBER:
        return cJSON_IsNumber(v);
    case GW_JSON_INTEGER:
        return json_integer(v, NULL);
    case GW_JSON_BOOLEAN:
        return cJSON_IsBool(v);
    case GW_JSON_OBJECT:
        return cJSON_IsObject(v);
    case GW_JSON_ARRAY:
        return cJSON_IsArray(v);
    case GW_JSON_NULL:
        return cJSON_IsNull(v);
    }
    return false;
}

/* The pointer as written, escaped for the message. */
static void ptr_text(char *dst, size_t cap, const gw_pointer *p)
{
    if (p->text[0] == '\0')
        snprintf(dst, cap, "the body");
    else
        escape(dst, cap, p->text, strlen(p->text));
}

/* The version of the event as text into ver (NUL-terminated, at most cap-1 bytes kept),
 * or false with the violation written. */
static bool read_version(const gw_contract *c, const gw_contract_input *in, char *ver, size_t cap,
                         size_t *ver_len, gw_contract_violation *out)
{
    char q[QUOTE_MAX + 8];
    gw_str s = GW_STR_NULL;
    switch (c->version_from) {
    case GW_VERSION_NONE:
        return true;
    case GW_VERSION_HEADER: {
        const gw_delivery_entry *e = header_find(in->headers, in->n_headers, c->version_header);
        escape(q, sizeof q, c->version_header, strlen(c->version_header));
        if (!e) {
            why_set(out, "contract: header %s is missing", q);
            return false;
        }
        if (e->has_int) {
            *ver_len = (size_t)snprintf(ver, cap, "%" PRId64, e->i);
            return true;
        }
        if (!e->str.ptr) {
            why_set(out, "contract: header %s is not a string or integer", q);
            return false;
        }
        s = e->str;
        break;
    }
    case GW_VERSION_BODY: {
        bool amb;
        const cJSON *v = gw_pointer_get(&c->version_ptr, in->doc, &amb);
        ptr_text(q, sizeof q, &c->version_ptr);
        int64_t i;
        if (!v) {
            why_set(out, "contract: %s is missing", q);
            return false;
        }
        if (amb) {
            why_set(out, "contract: %s is ambiguous (a member on the way is there twice)", q);
            return false;
        }
        if (json_integer(v, &i)) {
            *ver_len = (size_t)snprintf(ver, cap, "%" PRId64, i);
            return true;
        }
        if (!cJSON_IsString(v)) {
            why_set(out, "contract: %s is %s, want integer or string", q, json_type_of(v));
            return false;
        }
        s = gw_str_from_cstr(v->valuestring);
        break;
    }
    case GW_VERSION_DATASCHEMA: {
        const gw_delivery_entry *e = dataschema_header(in->headers, in->n_headers);
        if (e) {
            s = e->str;
        } else {
            bool amb = false;
            const cJSON *v = NULL;
            for (const cJSON *m = cJSON_IsObject(in->doc) ? in->doc->child : NULL; m; m = m->next) {
                if (m->string && strcmp(m->string, "dataschema") == 0) {
                    amb = v != NULL;
                    if (amb)
                        break;
                    v = m;
                }
            }
            if (!v) {
                why_set(out, "contract: dataschema is missing");
                return false;
            }
            if (amb) {
                why_set(out, "contract: dataschema is ambiguous (the body has it twice)");
                return false;
            }
            s = cJSON_IsString(v) ? gw_str_from_cstr(v->valuestring) : GW_STR_NULL;
        }
        if (!s.ptr) {
            why_set(out, "contract: dataschema is not a string");
            return false;
        }
        /* the last path segment, without query, fragment or trailing slashes */
        size_t end = 0;
        while (end < s.len && s.ptr[end] != '?' && s.ptr[end] != '#')
            end++;
        while (end > 0 && s.ptr[end - 1] == '/')
            end--;
        size_t start = end;
        while (start > 0 && s.ptr[start - 1] != '/')
            start--;
        size_t d = start < end && s.ptr[start] == 'v' ? start + 1 : start;
        bool digits = d < end;
        for (size_t k = d; k < end; k++)
            digits &= s.ptr[k] >= '0' && s.ptr[k] <= '9';
        if (!digits) {
            escape(q, sizeof q, s.ptr, s.len);
            why_set(out,
                    "contract: dataschema \"%s\" names no version (its last path segment "
                    "must be v<N> or <N>)",
                    q);
            return false;
        }
        s = (gw_str){s.ptr + d, end - d};
        break;
    }
    }
    *ver_len = s.len < cap ? s.len : cap - 1;
    memcpy(ver, s.ptr, *ver_len);
    ver[*ver_len] = '\0';
    if (*ver_len < s.len) /* longer than any version a table can accept: never equal */
        *ver_len = cap;
    return true;
}

static bool check_version(const gw_contract *c, const gw_contract_input *in,
                          gw_contract_violation *out)
{
    char ver[256];
    size_t len = 0;
    out->rule = "version";
    if (!read_version(c, in, ver, sizeof ver, &len, out))
        return false;
    for (size_t i = 0; i < c->n_versions; i++)
        if (strlen(c->versions[i]) == len && memcmp(c->versions[i], ver, len) == 0)
            return true;
    char q[QUOTE_MAX + 8];
    escape(q, sizeof q, ver, len < sizeof ver ? len : strlen(ver));
    why_set(out, "contract: version %s not accepted (%s)", q, c->versions_text);
    return false;
}

bool gw_contract_check(const gw_contract *c, const gw_contract_input *in,
                       gw_contract_violation *out)
{
    out->why[0] = '\0';
    out->rule = NULL;
    if (gw_contract_needs_body(c, in->headers, in->n_headers) && !in->doc) {
        /* a version read from a header is checked first all the same: a version nobody
         * accepts says more than the body it came with */
        bool version_in_header =
            c->version_from == GW_VERSION_HEADER || (c->version_from == GW_VERSION_DATASCHEMA &&
                                                     dataschema_header(in->headers, in->n_headers));
        if (version_in_header && !check_version(c, in, out))
            return false;
        out->rule = "body";
        why_set(out, "contract: body is not JSON: %s",
                in->doc_why && in->doc_why[0] ? in->doc_why : "it was not read");
        return false;
    }
    if (c->n_versions > 0 && !check_version(c, in, out))
        return false;
    char q[QUOTE_MAX + 8];
    for (size_t i = 0; i < c->n_require; i++) {
        const gw_contract_require *r = &c->require[i];
        bool amb;
        const cJSON *v = gw_pointer_get(&r->ptr, in->doc, &amb);
        if (v && !amb && (!r->has_type || type_ok(v, r->type)))
            continue;
        out->rule = r->ptr.text;
        ptr_text(q, sizeof q, &r->ptr);
        if (!v)
            why_set(out, "contract: %s is missing", q);
        else if (amb)
            why_set(out, "contract: %s is ambiguous (a member on the way is there twice)", q);
        else
            why_set(out, "contract: %s is %s, want %s", q, json_type_of(v),
                    gw_json_type_names[r->type]);
        return false;
    }
    return true;
}
