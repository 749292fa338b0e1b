/* yamldoc.h — typed, position-reporting helpers over libyaml.
 *
 * The YAML readers (config.c, routes.c, cases.c) load a file into a small tree of
 * gw_yaml_node (scalars, sequences, mappings, each with its 1-based line/column)
 * and read it through typed getters that append located diagnostics
 * ("FILE:LINE:COL: what: message") to the caller's gw_diags. This is the only
 * libyaml user. It refuses what a config file never needs and an attacker would
 * use: anchors and aliases (billion laughs), nesting deeper than
 * GW_YAMLDOC_MAX_DEPTH, files larger than GW_YAMLDOC_MAX_BYTES, explicit tags other
 * than the YAML core ones, and duplicate mapping keys. Never logs, never exits.
 *
 * Getters take `what`, the context written before the message ("retry.backoff[1]",
 * "route \"order.*\": to[0].exchange"); NULL or "" means no prefix. On failure a
 * getter reports one diagnostic, counts it in doc->errors and leaves *out untouched.
 */
#ifndef GW_YAMLDOC_H
#define GW_YAMLDOC_H

#include "err.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define GW_YAMLDOC_MAX_BYTES (1024 * 1024)
#define GW_YAMLDOC_MAX_DEPTH 64

typedef enum gw_yaml_kind {
    GW_YAML_SCALAR,
    GW_YAML_SEQ,
    GW_YAML_MAP,
} gw_yaml_kind;

typedef struct gw_yaml_node gw_yaml_node;
struct gw_yaml_node {
    gw_yaml_kind kind;
    int line, col; /* 1-based start of the node */
    /* GW_YAML_SCALAR */
    char *str; /* NUL-terminated; len bytes (a "\0" escape may embed a NUL) */
    size_t len;
    bool plain; /* unquoted and untagged: may read as null, bool or integer */
    /* GW_YAML_SEQ: items[0..n). GW_YAML_MAP: keys[i] (always scalars) -> items[i],
     * in file order, keys unique (a duplicate is reported and dropped). */
    gw_yaml_node **items;
    gw_yaml_node **keys;
    size_t n;
};

typedef struct gw_yamldoc {
    char *file;         /* owned copy of the name used in messages */
    gw_yaml_node *root; /* NULL for an empty document */
    gw_diags *diags;    /* borrowed: where every diagnostic goes */
    size_t errors;      /* diagnostics reported through this doc so far */
    size_t first_diag;  /* diags->n when parsing began */
} gw_yamldoc;

/* Parses buf[0..len) (named file in messages). Returns GW_OK with a new doc in
 * *out (free with gw_yamldoc_free) when a tree was built; doc->errors may already
 * be > 0 for non-fatal problems (duplicate keys, unsupported tags), which the
 * caller must treat as invalid once it has reported its own findings. Returns
 * GW_ERR_INVALID, with the reason in diags and *out untouched, on a syntax error,
 * an anchor or alias, nesting deeper than GW_YAMLDOC_MAX_DEPTH, more than one
 * document, or len > GW_YAMLDOC_MAX_BYTES. diags must outlive the doc. */
gw_err gw_yamldoc_parse(const char *file, const char *buf, size_t len, gw_diags *diags,
                        gw_yamldoc **out);

/* Reads path into a new NUL-terminated buffer (*out_buf, caller frees) after
 * checking with stat that it is a regular file of at most GW_YAMLDOC_MAX_BYTES.
 * Returns GW_ERR_IO (cannot open/read) or GW_ERR_INVALID (too large, not a regular
 * file) with one diagnostic "path: message". */
gw_err gw_yamldoc_read_file(const char *path, char **out_buf, size_t *out_len, gw_diags *diags);

/* gw_yamldoc_read_file + gw_yamldoc_parse, messages named path. */
gw_err gw_yamldoc_load(const char *path, gw_diags *diags, gw_yamldoc **out);

void gw_yamldoc_free(gw_yamldoc *doc);

/* Reports "FILE:LINE:COL: message" at node at (at NULL: "FILE: message") and
 * counts it in doc->errors. */
void gw_yamldoc_error(gw_yamldoc *doc, const gw_yaml_node *at, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* Sorts the diagnostics added since the doc was parsed by line, then column
 * (stable; file-level ones first), so a reader checked in schema order still
 * reports in file order. */
void gw_yamldoc_sort_diags(gw_yamldoc *doc);

/* True for a missing node (NULL) or a plain null scalar: empty, ~, null, Null, NULL. */
bool gw_yamldoc_is_null(const gw_yaml_node *n);

/* "a mapping", "a sequence", "a string", "null" — for "expected X, got Y" messages. */
const char *gw_yamldoc_kind_name(const gw_yaml_node *n);

/* The value under key in a mapping (borrowed), or NULL when absent or map is not a
 * mapping. */
const gw_yaml_node *gw_yamldoc_map_get(const gw_yaml_node *map, const char *key);

/* As gw_yamldoc_map_get, but reports "what: missing required key \"key\"" at the
 * mapping when absent or null. */
const gw_yaml_node *gw_yamldoc_map_require(gw_yamldoc *doc, const gw_yaml_node *map,
                                           const char *what, const char *key);

/* Reports "what: unknown key \"xyz\"" (plus " (did you mean \"x\"?)" when one
 * allowed key is close) at each key of map not in allowed (NULL-terminated).
 * Returns true when every key is allowed. Does nothing if map is not a mapping. */
bool gw_yamldoc_check_keys(gw_yamldoc *doc, const gw_yaml_node *map, const char *what,
                           const char *const *allowed);

/* "what: expected a mapping, got a sequence" unless n is a mapping. */
bool gw_yamldoc_expect_map(gw_yamldoc *doc, const gw_yaml_node *n, const char *what);
bool gw_yamldoc_expect_seq(gw_yamldoc *doc, const gw_yaml_node *n, const char *what);

/* A non-null scalar without embedded NUL, as a borrowed string (may be ""). */
bool gw_yamldoc_get_str(gw_yamldoc *doc, const gw_yaml_node *n, const char *what, const char **out);

/* A string of 1..max_bytes bytes (exchange/queue names, prefixes). */
bool gw_yamldoc_get_name(gw_yamldoc *doc, const gw_yaml_node *n, const char *what, size_t max_bytes,
                         const char **out);

/* Plain true or false (nothing else: not yes/no/on/off/1/0, not quoted). */
bool gw_yamldoc_get_bool(gw_yamldoc *doc, const gw_yaml_node *n, const char *what, bool *out);

/* A plain decimal integer in [min, max]. */
bool gw_yamldoc_get_int(gw_yamldoc *doc, const gw_yaml_node *n, const char *what, int64_t min,
                        int64_t max, int64_t *out);

/* A duration ("250ms", "5s", "2m", "1h"; see gw_duration_parse) whose value
 * in milliseconds lies in [min_ms, max_ms]. Reports
 * "what: bad duration \"5x\" (use e.g. 250ms, 5s, 2m, 1h)" or an out-of-range message. */
bool gw_yamldoc_get_duration(gw_yamldoc *doc, const gw_yaml_node *n, const char *what,
                             uint64_t min_ms, uint64_t max_ms, uint64_t *out_ms);

/* One of names (NULL-terminated); *out = its index. Reports
 * "what: expected one of direct|topic|fanout, got \"x\"", followed by
 * " (did you mean \"topic\"?)" when the value is within two edits of a name. */
bool gw_yamldoc_get_enum(gw_yamldoc *doc, const gw_yaml_node *n, const char *what,
                         const char *const *names, int *out);

/* Parses a plain scalar's text as a decimal int64 ("-12", "500"); false when it is
 * not one (no diagnostic). Used where a scalar may be an integer or a string. */
bool gw_yamldoc_scalar_int(const gw_yaml_node *n, int64_t *out);

/* Writes s[0..len) double-quoted for a message, control bytes, quotes and
 * backslashes escaped, cut after 60 bytes with "...". cap >= 8. */
void gw_yamldoc_quote(const char *s, size_t len, char *buf, size_t cap);

#endif
