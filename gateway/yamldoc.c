/* yamldoc.c — libyaml events -> a small located tree, and typed getters over it.
 *
 * Builds the tree from libyaml's event API rather than its document API so that
 * an anchor, an alias or a too-deep nesting is refused at the first event that
 * shows it: a billion-laughs file fails before anything is expanded, and the depth
 * cap bounds both the builder's stack and every recursive walk. Used by config.c,
 * routes.c and cases.c; knows nothing about their schemas. Never logs or exits.
 */
#include "yamldoc.h"

#include "alloc.h"
#include "duration.h"

#include <errno.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <yaml.h>

#define CORE_TAG_PREFIX "tag:yaml.org,2002:"

/* One open collection while building; a mapping waits for the value of key. */
typedef struct frame {
    gw_yaml_node *node;
    gw_yaml_node *key; /* map only: the key whose value comes next, or NULL */
    bool drop_value;   /* key was a duplicate: discard the value when it completes */
} frame;

typedef struct builder {
    gw_yamldoc *doc;
    frame stack[GW_YAMLDOC_MAX_DEPTH];
    int depth;
    bool have_root;
    int documents;
} builder;

static void node_free(gw_yaml_node *n)
{
    if (!n)
        return;
    for (size_t i = 0; i < n->n; i++) {
        node_free(n->items[i]);
        if (n->keys)
            node_free(n->keys[i]);
    }
    free(n->items);
    free(n->keys);
    free(n->str);
    free(n);
}

static gw_yaml_node *node_new(gw_yaml_kind kind, yaml_mark_t mark)
{
    gw_yaml_node *n = gw_xcalloc(1, sizeof *n);
    n->kind = kind;
    n->line = (int)mark.line + 1;
    n->col = (int)mark.column + 1;
    return n;
}

static void report_at(gw_yamldoc *doc, int line, int col, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

static void report_at(gw_yamldoc *doc, int line, int col, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    char *msg = gw_xvasprintf(fmt, ap);
    va_end(ap);
    gw_diags_add(doc->diags, doc->file, line, col, "%s", msg);
    doc->errors++;
    free(msg);
}

static void report_mark(gw_yamldoc *doc, yaml_mark_t mark, const char *msg)
{
    report_at(doc, (int)mark.line + 1, (int)mark.column + 1, "%s", msg);
}

void gw_yamldoc_quote(const char *s, size_t len, char *buf, size_t cap)
{
    size_t o = 0;
    buf[o++] = '"';
    for (size_t i = 0; i < len && o + 8 < cap; i++) {
        unsigned char c = (unsigned char)s[i];
        if (i == 60) {
            o += (size_t)snprintf(buf + o, cap - o, "...");
            break;
        }
        if (c < 0x20 || c == 0x7f || c == '"' || c == '\\')
            o += (size_t)snprintf(buf + o, cap - o, c == '"' || c == '\\' ? "\\%c" : "\\x%02x", c);
        else
            buf[o++] = (char)c;
    }
    buf[o++] = '"';
    buf[o] = '\0';
}

/* "!!binary" for core tags, the tag as written otherwise. */
static void tag_display(const char *tag, char *buf, size_t cap)
{
    size_t plen = strlen(CORE_TAG_PREFIX);
    if (strncmp(tag, CORE_TAG_PREFIX, plen) == 0)
        snprintf(buf, cap, "!!%s", tag + plen);
    else
        snprintf(buf, cap, "%s", tag);
}

/* NULL / "!" (non-specific) and the YAML core schema tags are accepted. */
static bool tag_allowed(const char *tag)
{
    static const char *const core[] = {"str", "int", "bool", "null", "float", "seq", "map", NULL};
    if (!tag || strcmp(tag, "!") == 0)
        return true;
    size_t plen = strlen(CORE_TAG_PREFIX);
    if (strncmp(tag, CORE_TAG_PREFIX, plen) != 0)
        return false;
    for (size_t i = 0; core[i]; i++)
        if (strcmp(tag + plen, core[i]) == 0)
            return true;
    return false;
}

static void check_tag(builder *b, const yaml_char_t *tag, yaml_mark_t mark)
{
    if (tag_allowed((const char *)tag))
        return;
    char shown[128];
    tag_display((const char *)tag, shown, sizeof shown);
    char msg[192];
    snprintf(msg, sizeof msg, "unsupported tag \"%s\"", shown);
    report_mark(b->doc, mark, msg);
}

static void append(gw_yaml_node *parent, gw_yaml_node *key, gw_yaml_node *value)
{
    parent->items = gw_xrealloc(parent->items, (parent->n + 1) * sizeof *parent->items);
    if (key) {
        parent->keys = gw_xrealloc(parent->keys, (parent->n + 1) * sizeof *parent->keys);
        parent->keys[parent->n] = key;
    }
    parent->items[parent->n++] = value;
}

/* Hands a completed node to its parent (or makes it the root). */
static void attach(builder *b, gw_yaml_node *n)
{
    if (b->depth == 0) {
        b->doc->root = n;
        b->have_root = true;
        return;
    }
    frame *f = &b->stack[b->depth - 1];
    if (f->node->kind == GW_YAML_SEQ) {
        append(f->node, NULL, n);
        return;
    }
    if (!f->key) {
        /* A key: collection keys are refused when they start, so n is a scalar. */
        for (size_t i = 0; i < f->node->n; i++) {
            const gw_yaml_node *k = f->node->keys[i];
            if (k->len == n->len && memcmp(k->str, n->str, n->len) == 0) {
                char q[256];
                gw_yamldoc_quote(n->str, n->len, q, sizeof q);
                report_at(b->doc, n->line, n->col, "duplicate key %s (first at line %d)", q,
                          k->line);
                f->drop_value = true;
                break;
            }
        }
        f->key = n;
        return;
    }
    if (f->drop_value) {
        node_free(f->key);
        node_free(n);
    } else {
        append(f->node, f->key, n);
    }
    f->key = NULL;
    f->drop_value = false;
}

static bool expecting_key(const builder *b)
{
    if (b->depth == 0)
        return false;
    const frame *f = &b->stack[b->depth - 1];
    return f->node->kind == GW_YAML_MAP && !f->key;
}

static void parser_error(gw_yamldoc *doc, const yaml_parser_t *p, const char *buf, size_t len)
{
    const char *problem = p->problem ? p->problem : "invalid YAML";
    if (p->error == YAML_MEMORY_ERROR) {
        gw_diags_add(doc->diags, doc->file, 0, 0, "out of memory while parsing");
        doc->errors++;
        return;
    }
    if (p->error == YAML_READER_ERROR) {
        /* The reader reports a byte offset, not a mark: find its line and column. */
        int line = 1, col = 1;
        for (size_t i = 0; i < p->problem_offset && i < len; i++) {
            if (buf[i] == '\n') {
                line++;
                col = 1;
            } else {
                col++;
            }
        }
        if (p->problem_value >= 0)
            report_at(doc, line, col, "%s (byte 0x%02x)", problem, (unsigned)p->problem_value);
        else
            report_at(doc, line, col, "%s", problem);
        return;
    }
    int line = (int)p->problem_mark.line + 1, col = (int)p->problem_mark.column + 1;
    /* libyaml mostly says "found character that cannot start any token" for a tab. */
    const char *hint = "";
    if (p->problem_mark.index < len && buf[p->problem_mark.index] == '\t')
        hint = strstr(problem, "tab") ? ": YAML forbids tabs for indentation, indent with spaces"
                                      : ": a tab; YAML forbids tabs for indentation, indent with "
                                        "spaces";
    if (p->context)
        report_at(doc, line, col, "%s%s (%s at line %d, column %d)", problem, hint, p->context,
                  (int)p->context_mark.line + 1, (int)p->context_mark.column + 1);
    else
        report_at(doc, line, col, "%s%s", problem, hint);
}

/* Handles one event; returns false on a fatal problem (already reported). */
static bool on_event(builder *b, const yaml_event_t *ev)
{
    const yaml_char_t *anchor = NULL, *tag = NULL;
    switch (ev->type) {
    case YAML_DOCUMENT_START_EVENT:
        if (++b->documents > 1) {
            report_mark(b->doc, ev->start_mark, "only one YAML document per file is supported");
            return false;
        }
        return true;
    case YAML_ALIAS_EVENT:
        report_mark(b->doc, ev->start_mark, "aliases are not supported");
        return false;
    case YAML_SCALAR_EVENT:
        anchor = ev->data.scalar.anchor;
        tag = ev->data.scalar.tag;
        break;
    case YAML_SEQUENCE_START_EVENT:
        anchor = ev->data.sequence_start.anchor;
        tag = ev->data.sequence_start.tag;
        break;
    case YAML_MAPPING_START_EVENT:
        anchor = ev->data.mapping_start.anchor;
        tag = ev->data.mapping_start.tag;
        break;
    case YAML_SEQUENCE_END_EVENT:
    case YAML_MAPPING_END_EVENT: {
        gw_yaml_node *n = b->stack[--b->depth].node;
        attach(b, n);
        return true;
    }
    default:
        return true;
    }

    if (anchor) {
        report_mark(b->doc, ev->start_mark, "anchors and aliases are not supported");
        return false;
    }
    check_tag(b, tag, ev->start_mark);

    if (ev->type == YAML_SCALAR_EVENT) {
        gw_yaml_node *n = node_new(GW_YAML_SCALAR, ev->start_mark);
        n->len = ev->data.scalar.length;
        n->str = gw_xstrndup((const char *)ev->data.scalar.value, n->len);
        n->plain = ev->data.scalar.style == YAML_PLAIN_SCALAR_STYLE && !tag;
        attach(b, n);
        return true;
    }

    if (expecting_key(b)) {
        report_mark(b->doc, ev->start_mark, "mapping keys must be scalars");
        return false;
    }
    if (b->depth == GW_YAMLDOC_MAX_DEPTH) {
        char msg[96];
        snprintf(msg, sizeof msg, "nesting deeper than %d levels is not supported",
                 GW_YAMLDOC_MAX_DEPTH);
        report_mark(b->doc, ev->start_mark, msg);
        return false;
    }
    frame *f = &b->stack[b->depth++];
    f->node =
        node_new(ev->type == YAML_MAPPING_START_EVENT ? GW_YAML_MAP : GW_YAML_SEQ, ev->start_mark);
    f->key = NULL;
    f->drop_value = false;
    return true;
}

gw_err gw_yamldoc_parse(const char *file, const char *buf, size_t len, gw_diags *diags,
                        gw_yamldoc **out)
{
    gw_err err = GW_ERR_INVALID;
    gw_yamldoc *doc = gw_xcalloc(1, sizeof *doc);
    doc->file = gw_xstrdup(file);
    doc->diags = diags;
    doc->first_diag = diags->n;
    builder b = {.doc = doc};
    yaml_parser_t parser;
    bool parser_ready = false;

    if (len > GW_YAMLDOC_MAX_BYTES) {
        gw_diags_add(diags, file, 0, 0, "file is too large (%zu bytes; the limit is %d bytes)", len,
                     GW_YAMLDOC_MAX_BYTES);
        goto out;
    }
    if (!yaml_parser_initialize(&parser)) {
        gw_diags_add(diags, file, 0, 0, "cannot initialise the YAML parser");
        goto out;
    }
    parser_ready = true;
    yaml_parser_set_input_string(&parser, (const unsigned char *)buf, len);

    for (;;) {
        yaml_event_t ev;
        if (!yaml_parser_parse(&parser, &ev)) {
            parser_error(doc, &parser, buf, len);
            goto out;
        }
        bool ok = on_event(&b, &ev);
        bool done = ev.type == YAML_STREAM_END_EVENT;
        yaml_event_delete(&ev);
        if (!ok)
            goto out;
        if (done)
            break;
    }
    *out = doc;
    doc = NULL;
    err = GW_OK;
out:
    if (parser_ready)
        yaml_parser_delete(&parser);
    for (int i = 0; i < b.depth; i++) {
        node_free(b.stack[i].node);
        node_free(b.stack[i].key);
    }
    gw_yamldoc_free(doc);
    return err;
}

gw_err gw_yamldoc_read_file(const char *path, char **out_buf, size_t *out_len, gw_diags *diags)
{
    gw_err err = GW_ERR_IO;
    char *buf = NULL;
    FILE *f = fopen(path, "rb");
    if (!f) {
        gw_diags_add(diags, path, 0, 0, "cannot open: %s", strerror(errno));
        return GW_ERR_IO;
    }
    struct stat st;
    if (fstat(fileno(f), &st) != 0) {
        gw_diags_add(diags, path, 0, 0, "cannot stat: %s", strerror(errno));
        goto out;
    }
    if (!S_ISREG(st.st_mode)) {
        gw_diags_add(diags, path, 0, 0, "not a regular file");
        err = GW_ERR_INVALID;
        goto out;
    }
    if (st.st_size > GW_YAMLDOC_MAX_BYTES) {
        gw_diags_add(diags, path, 0, 0, "file is too large (%lld bytes; the limit is %d bytes)",
                     (long long)st.st_size, GW_YAMLDOC_MAX_BYTES);
        err = GW_ERR_INVALID;
        goto out;
    }
    /* Read one byte past the cap: the file may have grown since the stat. */
    buf = gw_xmalloc(GW_YAMLDOC_MAX_BYTES + 2);
    size_t n = fread(buf, 1, GW_YAMLDOC_MAX_BYTES + 1, f);
    if (ferror(f)) {
        gw_diags_add(diags, path, 0, 0, "cannot read: %s", strerror(errno));
        goto out;
    }
    if (n > GW_YAMLDOC_MAX_BYTES) {
        gw_diags_add(diags, path, 0, 0, "file is too large (the limit is %d bytes)",
                     GW_YAMLDOC_MAX_BYTES);
        err = GW_ERR_INVALID;
        goto out;
    }
    buf[n] = '\0';
    *out_buf = gw_xrealloc(buf, n + 1);
    *out_len = n;
    buf = NULL;
    err = GW_OK;
out:
    free(buf);
    fclose(f);
    return err;
}

gw_err gw_yamldoc_load(const char *path, gw_diags *diags, gw_yamldoc **out)
{
    char *buf = NULL;
    size_t len = 0;
    gw_err err = gw_yamldoc_read_file(path, &buf, &len, diags);
    if (err != GW_OK)
        return err;
    err = gw_yamldoc_parse(path, buf, len, diags, out);
    free(buf);
    return err;
}

void gw_yamldoc_free(gw_yamldoc *doc)
{
    if (!doc)
        return;
    node_free(doc->root);
    free(doc->file);
    free(doc);
}

typedef struct ranked_diag {
    gw_diag d;
    size_t idx;
} ranked_diag;

static int diag_cmp(const void *pa, const void *pb)
{
    const ranked_diag *a = pa, *b = pb;
    if (a->d.line != b->d.line)
        return a->d.line < b->d.line ? -1 : 1;
    if (a->d.col != b->d.col)
        return a->d.col < b->d.col ? -1 : 1;
    return a->idx < b->idx ? -1 : a->idx > b->idx;
}

void gw_yamldoc_sort_diags(gw_yamldoc *doc)
{
    gw_diags *d = doc->diags;
    if (doc->first_diag >= d->n)
        return;
    size_t n = d->n - doc->first_diag;
    ranked_diag *tmp = gw_xmalloc(n * sizeof *tmp);
    for (size_t i = 0; i < n; i++)
        tmp[i] = (ranked_diag){d->items[doc->first_diag + i], i};
    qsort(tmp, n, sizeof *tmp, diag_cmp);
    for (size_t i = 0; i < n; i++)
        d->items[doc->first_diag + i] = tmp[i].d;
    free(tmp);
}

/* Adds "what: msg" (or just msg) at node at. */
static void vreport(gw_yamldoc *doc, const gw_yaml_node *at, const char *what, const char *fmt,
                    va_list ap)
{
    char *msg = gw_xvasprintf(fmt, ap);
    int line = at ? at->line : 0, col = at ? at->col : 0;
    if (what && *what)
        gw_diags_add(doc->diags, doc->file, line, col, "%s: %s", what, msg);
    else
        gw_diags_add(doc->diags, doc->file, line, col, "%s", msg);
    doc->errors++;
    free(msg);
}

static void report(gw_yamldoc *doc, const gw_yaml_node *at, const char *what, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

static void report(gw_yamldoc *doc, const gw_yaml_node *at, const char *what, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vreport(doc, at, what, fmt, ap);
    va_end(ap);
}

void gw_yamldoc_error(gw_yamldoc *doc, const gw_yaml_node *at, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vreport(doc, at, NULL, fmt, ap);
    va_end(ap);
}

bool gw_yamldoc_is_null(const gw_yaml_node *n)
{
    if (!n)
        return true;
    if (n->kind != GW_YAML_SCALAR || !n->plain)
        return false;
    return n->len == 0 || strcmp(n->str, "~") == 0 || strcmp(n->str, "null") == 0 ||
           strcmp(n->str, "Null") == 0 || strcmp(n->str, "NULL") == 0;
}

const char *gw_yamldoc_kind_name(const gw_yaml_node *n)
{
    if (gw_yamldoc_is_null(n))
        return "null";
    switch (n->kind) {
    case GW_YAML_SEQ:
        return "a sequence";
    case GW_YAML_MAP:
        return "a mapping";
    case GW_YAML_SCALAR:
        break;
    }
    return "a string";
}

const gw_yaml_node *gw_yamldoc_map_get(const gw_yaml_node *map, const char *key)
{
    if (!map || map->kind != GW_YAML_MAP)
        return NULL;
    size_t klen = strlen(key);
    for (size_t i = 0; i < map->n; i++)
        if (map->keys[i]->len == klen && memcmp(map->keys[i]->str, key, klen) == 0)
            return map->items[i];
    return NULL;
}

const gw_yaml_node *gw_yamldoc_map_require(gw_yamldoc *doc, const gw_yaml_node *map,
                                           const char *what, const char *key)
{
    const gw_yaml_node *v = gw_yamldoc_map_get(map, key);
    if (gw_yamldoc_is_null(v)) {
        report(doc, map, what, "missing required key \"%s\"", key);
        return NULL;
    }
    return v;
}

static size_t edit_distance(const char *a, size_t la, const char *b)
{
    size_t lb = strlen(b);
    if (la > 64 || lb > 64)
        return SIZE_MAX;
    size_t row[65];
    for (size_t j = 0; j <= lb; j++)
        row[j] = j;
    for (size_t i = 1; i <= la; i++) {
        size_t diag = row[0];
        row[0] = i;
        for (size_t j = 1; j <= lb; j++) {
            size_t up = row[j];
            size_t best = diag + (a[i - 1] == b[j - 1] ? 0 : 1);
            if (up + 1 < best)
                best = up + 1;
            if (row[j - 1] + 1 < best)
                best = row[j - 1] + 1;
            row[j] = best;
            diag = up;
        }
    }
    return row[lb];
}

/* The entry of names (NULL-terminated) that s[0..len), which is none of them, misspells:
 * within two edits and fewer edits than s has bytes; NULL when nothing is that near. */
static const char *nearest(const char *s, size_t len, const char *const *names)
{
    const char *near = NULL;
    size_t near_d = 3; /* suggest only within two edits */
    for (size_t j = 0; names[j]; j++) {
        size_t d = edit_distance(s, len, names[j]);
        if (d < near_d && d < len) {
            near = names[j];
            near_d = d;
        }
    }
    return near;
}

static bool listed(const char *s, size_t len, const char *const *names)
{
    for (size_t j = 0; names[j]; j++)
        if (strlen(names[j]) == len && memcmp(names[j], s, len) == 0)
            return true;
    return false;
}

bool gw_yamldoc_check_keys(gw_yamldoc *doc, const gw_yaml_node *map, const char *what,
                           const char *const *allowed)
{
    bool ok = true;
    if (!map || map->kind != GW_YAML_MAP)
        return true;
    for (size_t i = 0; i < map->n; i++) {
        const gw_yaml_node *k = map->keys[i];
        if (listed(k->str, k->len, allowed))
            continue;
        const char *near = nearest(k->str, k->len, allowed);
        ok = false;
        char q[256];
        gw_yamldoc_quote(k->str, k->len, q, sizeof q);
        if (near)
            report(doc, k, what, "unknown key %s (did you mean \"%s\"?)", q, near);
        else
            report(doc, k, what, "unknown key %s", q);
    }
    return ok;
}

bool gw_yamldoc_expect_map(gw_yamldoc *doc, const gw_yaml_node *n, const char *what)
{
    if (n && n->kind == GW_YAML_MAP)
        return true;
    report(doc, n, what, "expected a mapping, got %s", gw_yamldoc_kind_name(n));
    return false;
}

bool gw_yamldoc_expect_seq(gw_yamldoc *doc, const gw_yaml_node *n, const char *what)
{
    if (n && n->kind == GW_YAML_SEQ)
        return true;
    report(doc, n, what, "expected a sequence, got %s", gw_yamldoc_kind_name(n));
    return false;
}

bool gw_yamldoc_get_str(gw_yamldoc *doc, const gw_yaml_node *n, const char *what, const char **out)
{
    if (!n || n->kind != GW_YAML_SCALAR || gw_yamldoc_is_null(n)) {
        report(doc, n, what, "expected a string, got %s", gw_yamldoc_kind_name(n));
        return false;
    }
    if (strlen(n->str) != n->len) {
        report(doc, n, what, "contains a NUL byte");
        return false;
    }
    *out = n->str;
    return true;
}

bool gw_yamldoc_get_name(gw_yamldoc *doc, const gw_yaml_node *n, const char *what, size_t max_bytes,
                         const char **out)
{
    const char *s;
    if (!gw_yamldoc_get_str(doc, n, what, &s))
        return false;
    if (n->len == 0) {
        report(doc, n, what, "must not be empty");
        return false;
    }
    if (n->len > max_bytes) {
        report(doc, n, what, "longer than %zu bytes", max_bytes);
        return false;
    }
    for (size_t i = 0; i < n->len; i++) {
        unsigned char ch = (unsigned char)s[i];
        if (ch < 0x20 || ch == 0x7f) {
            report(doc, n, what, "contains a control character (byte %zu)", i);
            return false;
        }
    }
    *out = s;
    return true;
}

bool gw_yamldoc_get_bool(gw_yamldoc *doc, const gw_yaml_node *n, const char *what, bool *out)
{
    if (n && n->kind == GW_YAML_SCALAR && n->plain && !gw_yamldoc_is_null(n)) {
        if (strcmp(n->str, "true") == 0) {
            *out = true;
            return true;
        }
        if (strcmp(n->str, "false") == 0) {
            *out = false;
            return true;
        }
    }
    if (n && n->kind == GW_YAML_SCALAR && !gw_yamldoc_is_null(n)) {
        char q[256];
        gw_yamldoc_quote(n->str, n->len, q, sizeof q);
        report(doc, n, what, "expected true or false, got %s", q);
    } else {
        report(doc, n, what, "expected true or false, got %s", gw_yamldoc_kind_name(n));
    }
    return false;
}

bool gw_yamldoc_scalar_int(const gw_yaml_node *n, int64_t *out)
{
    if (!n || n->kind != GW_YAML_SCALAR || !n->plain || n->len == 0)
        return false;
    const char *p = n->str;
    bool neg = *p == '-';
    if (neg)
        p++;
    if (!*p)
        return false;
    uint64_t v = 0;
    uint64_t limit = neg ? (uint64_t)INT64_MAX + 1 : (uint64_t)INT64_MAX;
    for (; *p; p++) {
        if (*p < '0' || *p > '9')
            return false;
        unsigned d = (unsigned)(*p - '0');
        if (v > (limit - d) / 10)
            return false;
        v = v * 10 + d;
    }
    if ((size_t)(p - n->str) != n->len)
        return false;
    *out = neg ? (v == (uint64_t)INT64_MAX + 1 ? INT64_MIN : -(int64_t)v) : (int64_t)v;
    return true;
}

bool gw_yamldoc_get_int(gw_yamldoc *doc, const gw_yaml_node *n, const char *what, int64_t min,
                        int64_t max, int64_t *out)
{
    int64_t v;
    if (!gw_yamldoc_scalar_int(n, &v)) {
        if (n && n->kind == GW_YAML_SCALAR && !gw_yamldoc_is_null(n)) {
            char q[256];
            gw_yamldoc_quote(n->str, n->len, q, sizeof q);
            report(doc, n, what, "expected an integer, got %s", q);
        } else {
            report(doc, n, what, "expected an integer, got %s", gw_yamldoc_kind_name(n));
        }
        return false;
    }
    if (v < min || v > max) {
        report(doc, n, what, "%" PRId64 " is out of range (%" PRId64 "..%" PRId64 ")", v, min, max);
        return false;
    }
    *out = v;
    return true;
}

bool gw_yamldoc_get_duration(gw_yamldoc *doc, const gw_yaml_node *n, const char *what,
                             uint64_t min_ms, uint64_t max_ms, uint64_t *out_ms)
{
    if (!n || n->kind != GW_YAML_SCALAR || gw_yamldoc_is_null(n)) {
        report(doc, n, what, "expected a duration (e.g. 5s), got %s", gw_yamldoc_kind_name(n));
        return false;
    }
    uint64_t ms;
    if (strlen(n->str) != n->len || !gw_duration_parse(n->str, &ms)) {
        char q[256];
        gw_yamldoc_quote(n->str, n->len, q, sizeof q);
        report(doc, n, what, "bad duration %s (use e.g. 250ms, 5s, 2m, 1h)", q);
        return false;
    }
    if (ms < min_ms || ms > max_ms) {
        char lo[GW_DURATION_TEXT_CAP], hi[GW_DURATION_TEXT_CAP];
        gw_duration_format(min_ms, lo, sizeof lo);
        gw_duration_format(max_ms, hi, sizeof hi);
        report(doc, n, what, "%s is out of range (%s..%s)", n->str, lo, hi);
        return false;
    }
    *out_ms = ms;
    return true;
}

bool gw_yamldoc_get_enum(gw_yamldoc *doc, const gw_yaml_node *n, const char *what,
                         const char *const *names, int *out)
{
    if (n && n->kind == GW_YAML_SCALAR && !gw_yamldoc_is_null(n)) {
        for (int i = 0; names[i]; i++) {
            if (strlen(names[i]) == n->len && memcmp(names[i], n->str, n->len) == 0) {
                *out = i;
                return true;
            }
        }
    }
    char list[256];
    size_t o = 0;
    list[0] = '\0';
    for (size_t i = 0; names[i] && o < sizeof list; i++)
        o += (size_t)snprintf(list + o, sizeof list - o, "%s%s", i ? "|" : "", names[i]);
    if (n && n->kind == GW_YAML_SCALAR && !gw_yamldoc_is_null(n)) {
        char q[256];
        gw_yamldoc_quote(n->str, n->len, q, sizeof q);
        const char *near = nearest(n->str, n->len, names);
        if (near)
            report(doc, n, what, "expected one of %s, got %s (did you mean \"%s\"?)", list, q,
                   near);
        else
            report(doc, n, what, "expected one of %s, got %s", list, q);
    } else {
        report(doc, n, what, "expected one of %s, got %s", list, gw_yamldoc_kind_name(n));
    }
    return false;
}
