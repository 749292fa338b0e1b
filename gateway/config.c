/* config.c — the gateway config file (SPEC §4) -> immutable gw_config.
 *
 * The schema is one table, one line per option: section, key, kind, bounds, the
 * default as it would be written in YAML, and where it lands in gw_config. Unknown
 * keys in every section are located errors, and so is every value of the wrong
 * type or out of bounds; all of them are reported, not just the first. After the
 * table come the environment overrides (AMQP_GW_URL, AMQP_GW_USER,
 * AMQP_GW_PASSWORD) and path resolution against the config file's folder. Where
 * the file set each option is kept for later, cross-file checks (settings.c, which
 * also loads the routing table). Never touches a broker, never logs.
 */
#include "config.h"

#include "alloc.h"
#include "log.h"
#include "url.h"
#include "yamldoc.h"

#include <stddef.h>
#include <stdlib.h>
#include <string.h>

#define NAME_MAX_BYTES   255
#define PREFIX_MAX_BYTES 200 /* leaves room for ".retry.30s"-style suffixes */

#define MS_SECOND 1000ull
#define MS_MINUTE (60 * MS_SECOND)
#define MS_HOUR   (60 * MS_MINUTE)
#define MS_DAY    (24 * MS_HOUR)

struct gw_config_pos {
    char *key; /* "section.key" */
    int line, col;
};

typedef struct cfg_ctx {
    gw_yamldoc *doc;
    gw_config *cfg;
    char *dir; /* the config file's folder with a trailing '/', or NULL for the cwd */
} cfg_ctx;

typedef enum opt_kind {
    OPT_NAME,    /* char *, 1..max bytes */
    OPT_PATH,    /* char *, resolved against the config file's folder */
    OPT_U16,     /* uint16_t in [min, max] */
    OPT_U32,     /* uint32_t in [min, max] */
    OPT_MS,      /* uint64_t milliseconds, a duration in [min, max] */
    OPT_BOOL,    /* bool */
    OPT_HANDLER, /* handler(ctx, opt, node, what) */
} opt_kind;

typedef struct option option;
typedef void opt_handler(cfg_ctx *c, const option *o, const gw_yaml_node *n, const char *what);

struct option {
    const char *section; /* "" = top level */
    const char *key;
    opt_kind kind;
    uint64_t min, max; /* integers, durations in ms, or max bytes for OPT_NAME */
    const char *def;   /* default as YAML text; NULL = required (or none, for paths) */
    bool required;
    size_t offset;
    opt_handler *handler;
};

static opt_handler set_urls, set_heartbeat, set_type_from, set_backoff, set_listen, set_log_format,
    set_log_level, set_queue_type, set_forward_headers;

#define F(field) offsetof(gw_config, field)

/* clang-format off */
/* section, key, kind, min, max (ms for durations, bytes for names), default as
 * written in YAML, required, field, handler. */
static const option options[] = {
    {"broker",           "urls",               OPT_HANDLER,  0,  0,                 "[\"amqp://localhost:5672/%2f\"]",  false,  0,                             set_urls},
    {"broker",           "heartbeat",          OPT_HANDLER,  0,  MS_HOUR,           "30s",                              false,  0,                             set_heartbeat},
    {"broker",           "reconnect_max_delay",OPT_MS,       100, 5 * MS_MINUTE,   "5s",                               false,  F(reconnect_max_delay_ms),     NULL},
    {"broker.tls",       "ca_file",            OPT_PATH,     0,  0,                 NULL,                               false,  F(tls.ca_file),                NULL},
    {"broker.tls",       "cert_file",          OPT_PATH,     0,  0,                 NULL,                               false,  F(tls.cert_file),              NULL},
    {"broker.tls",       "key_file",           OPT_PATH,     0,  0,                 NULL,                               false,  F(tls.key_file),               NULL},
    {"broker.tls",       "verify_peer",        OPT_BOOL,     0,  0,                 "true",                             false,  F(tls.verify_peer),            NULL},
    {"broker.tls",       "verify_hostname",    OPT_BOOL,     0,  0,                 "true",                             false,  F(tls.verify_hostname),        NULL},
    {"inbound",          "queue",              OPT_NAME,     1,  NAME_MAX_BYTES,    "gw.inbound",                       false,  F(inbound_queue),              NULL},
    {"inbound",          "prefetch",           OPT_U16,      1,  65535,             "500",                              false,  F(prefetch),                   NULL},
    {"inbound",          "type_from",          OPT_HANDLER,  0,  0,                 "[property, header, body]",         false,  0,                             set_type_from},
    {"",                 "routes_file",        OPT_PATH,     0,  0,                 NULL,                               true,   F(routes_file),                NULL},
    {"retry",            "max_attempts",       OPT_U32,      0,  100,               "5",                                false,  F(retry.max_attempts),         NULL},
    {"retry",            "backoff",            OPT_HANDLER,  1,  MS_DAY,            "[1s, 5s, 30s, 2m]",                false,  0,                             set_backoff},
    {"dead_letter",      "exchange",           OPT_NAME,     1,  NAME_MAX_BYTES,    "gw.dlx",                           false,  F(dlx_exchange),               NULL},
    {"dead_letter",      "queue",              OPT_NAME,     1,  NAME_MAX_BYTES,    "gw.dlq",                           false,  F(dlq_queue),                  NULL},
    {"circuit_breaker",  "failure_threshold",  OPT_U32,      1,  1000,              "5",                                false,  F(breaker.failure_threshold),  NULL},
    {"circuit_breaker",  "open_for",           OPT_MS,       1,  MS_DAY,            "30s",                              false,  F(breaker.open_for_ms),        NULL},
    {"circuit_breaker",  "half_open_probes",   OPT_U32,      1,  100,               "1",                                false,  F(breaker.half_open_probes),   NULL},
    {"circuit_breaker",  "max_deferral",       OPT_MS,       1,  7 * MS_DAY,        "1h",                               false,  F(breaker.max_deferral_ms),    NULL},
    {"",                 "prefix",             OPT_NAME,     1,  PREFIX_MAX_BYTES,  "gw",                               false,  F(prefix),                     NULL},
    {"",                 "queue_type",         OPT_HANDLER,  0,  0,                 "classic",                          false,  0,                             set_queue_type},
    {"",                 "forward_headers",    OPT_HANDLER,  0,  0,                 "lean",                             false,  0,                             set_forward_headers},
    {"",                 "shutdown_timeout",   OPT_MS,       0,  MS_HOUR,           "10s",                              false,  F(shutdown_timeout_ms),        NULL},
    {"metrics",          "listen",             OPT_HANDLER,  0,  0,                 "\"127.0.0.1:9464\"",               false,  0,                             set_listen},
    {"log",              "format",             OPT_HANDLER,  0,  0,                 "json",                             false,  0,                             set_log_format},
    {"log",              "level",              OPT_HANDLER,  0,  0,                 "info",                             false,  0,                             set_log_level},
};

/* Every mapping of the file; a section's allowed keys are its options plus its subsections. */
static const char *const sections[] = {
    "", "broker", "broker.tls", "inbound", "retry", "dead_letter", "circuit_breaker", "metrics", "log",
};
/* clang-format on */

#define N_OPTIONS  (sizeof options / sizeof options[0])
#define N_SECTIONS (sizeof sections / sizeof sections[0])

static void note_pos(gw_config *cfg, const char *key, const gw_yaml_node *n)
{
    cfg->positions = gw_xrealloc(cfg->positions, (cfg->n_positions + 1) * sizeof *cfg->positions);
    cfg->positions[cfg->n_positions++] =
        (struct gw_config_pos){.key = gw_xstrdup(key), .line = n->line, .col = n->col};
}

bool gw_config_key_pos(const gw_config *cfg, const char *key, int *line, int *col)
{
    for (size_t i = 0; i < cfg->n_positions; i++) {
        if (strcmp(cfg->positions[i].key, key) == 0) {
            *line = cfg->positions[i].line;
            *col = cfg->positions[i].col;
            return true;
        }
    }
    return false;
}

static void *field(cfg_ctx *c, const option *o)
{
    return (char *)c->cfg + o->offset;
}

/* Removes "." segments and "x/.." pairs in place (lexically: "config/../routes/a.yaml"
 * becomes "routes/a.yaml"), so paths in messages read the way a user wrote them.
 * Leading ".." segments of a relative path are kept. */
static void normalize_path(char *path)
{
    bool abs = path[0] == '/';
    char *segs[256];
    size_t n = 0;
    char *save = NULL;
    char *copy = gw_xstrdup(path);
    for (char *t = strtok_r(copy, "/", &save); t; t = strtok_r(NULL, "/", &save)) {
        if (strcmp(t, ".") == 0)
            continue;
        if (strcmp(t, "..") == 0 && n > 0 && strcmp(segs[n - 1], "..") != 0) {
            n--;
            continue;
        }
        if (strcmp(t, "..") == 0 && abs)
            continue;
        if (n == sizeof segs / sizeof segs[0])
            goto out; /* absurdly deep: leave it as written */
        segs[n++] = t;
    }
    char *w = path;
    if (abs)
        *w++ = '/';
    for (size_t i = 0; i < n; i++) {
        size_t len = strlen(segs[i]);
        memmove(w, segs[i], len);
        w += len;
        if (i + 1 < n)
            *w++ = '/';
    }
    if (w == path)
        *w++ = '.';
    *w = '\0';
out:
    free(copy);
}

/* dir + p unless p is absolute or there is no folder. */
static char *resolve(const char *dir, const char *p)
{
    char *r = (!dir || p[0] == '/') ? gw_xstrdup(p) : gw_xasprintf("%s%s", dir, p);
    normalize_path(r);
    return r;
}

static void add_url(gw_config *cfg, const char *url)
{
    cfg->broker_urls =
        gw_xrealloc(cfg->broker_urls, (cfg->n_broker_urls + 1) * sizeof *cfg->broker_urls);
    cfg->broker_urls[cfg->n_broker_urls++] = gw_xstrdup(url);
    if (strncmp(url, "amqps://", 8) == 0)
        cfg->tls.enabled = true;
}

static void set_urls(cfg_ctx *c, const option *o, const gw_yaml_node *n, const char *what)
{
    (void)o;
    if (!gw_yamldoc_expect_seq(c->doc, n, what))
        return;
    if (n->n == 0) {
        gw_yamldoc_error(c->doc, n, "%s: at least one URL is required", what);
        return;
    }
    for (size_t i = 0; i < n->n; i++) {
        char item[64];
        snprintf(item, sizeof item, "%s[%zu]", what, i);
        const char *url;
        if (!gw_yamldoc_get_name(c->doc, n->items[i], item, 4096, &url))
            continue;
        char why[256];
        if (!gw_url_check(url, why, sizeof why)) {
            gw_yamldoc_error(c->doc, n->items[i], "%s: URL %s", item, why);
            continue;
        }
        add_url(c->cfg, url);
    }
}

static void set_heartbeat(cfg_ctx *c, const option *o, const gw_yaml_node *n, const char *what)
{
    uint64_t ms;
    if (!gw_yamldoc_get_duration(c->doc, n, what, o->min, o->max, &ms))
        return;
    if (ms % MS_SECOND != 0) {
        char q[80];
        gw_yamldoc_quote(n->str, n->len, q, sizeof q);
        gw_yamldoc_error(c->doc, n, "%s: %s is not a whole number of seconds", what, q);
        return;
    }
    c->cfg->heartbeat_s = (uint32_t)(ms / MS_SECOND);
}

static void set_type_from(cfg_ctx *c, const option *o, const gw_yaml_node *n, const char *what)
{
    static const char *const names[] = {"property", "header", "body", NULL};
    (void)o;
    if (!gw_yamldoc_expect_seq(c->doc, n, what))
        return;
    if (n->n == 0 || n->n > 3) {
        gw_yamldoc_error(c->doc, n, "%s: needs 1 to 3 of property, header, body", what);
        return;
    }
    gw_type_source got[3];
    size_t k = 0;
    bool seen[3] = {false, false, false};
    for (size_t i = 0; i < n->n; i++) {
        char item[64];
        snprintf(item, sizeof item, "%s[%zu]", what, i);
        int v;
        if (!gw_yamldoc_get_enum(c->doc, n->items[i], item, names, &v))
            continue;
        if (seen[v]) {
            gw_yamldoc_error(c->doc, n->items[i], "%s: \"%s\" is listed twice", item, names[v]);
            continue;
        }
        seen[v] = true;
        got[k++] = (gw_type_source)v;
    }
    memcpy(c->cfg->type_from, got, k * sizeof got[0]);
    c->cfg->n_type_from = k;
}

static void set_backoff(cfg_ctx *c, const option *o, const gw_yaml_node *n, const char *what)
{
    if (!gw_yamldoc_expect_seq(c->doc, n, what))
        return;
    if (n->n == 0 || n->n > GW_RETRY_MAX_TIERS) {
        gw_yamldoc_error(c->doc, n, "%s: needs 1 to %d durations, got %zu", what,
                         GW_RETRY_MAX_TIERS, n->n);
        return;
    }
    gw_retry_policy *r = &c->cfg->retry;
    bool ok = true;
    for (size_t i = 0; i < n->n; i++) {
        char item[64];
        snprintf(item, sizeof item, "%s[%zu]", what, i);
        if (!gw_yamldoc_get_duration(c->doc, n->items[i], item, o->min, o->max, &r->backoff_ms[i]))
            ok = false;
    }
    r->n_backoff = ok ? n->n : r->n_backoff;
}

/* "host:port" (IPv6 hosts in brackets) or "" to disable. */
static bool listen_ok(const char *s)
{
    const char *colon = strrchr(s, ':');
    if (!colon || colon == s || !colon[1])
        return false;
    if (s[0] == '[') {
        if (colon[-1] != ']' || colon - s < 3)
            return false;
    } else if (memchr(s, ':', (size_t)(colon - s))) {
        return false;
    }
    long port = 0;
    for (const char *p = colon + 1; *p; p++) {
        if (*p < '0' || *p > '9' || port > 65535)
            return false;
        port = port * 10 + (*p - '0');
    }
    return port >= 1 && port <= 65535;
}

static void set_listen(cfg_ctx *c, const option *o, const gw_yaml_node *n, const char *what)
{
    (void)o;
    const char *s;
    if (!gw_yamldoc_get_str(c->doc, n, what, &s))
        return;
    if (*s && !listen_ok(s)) {
        char q[80];
        gw_yamldoc_quote(n->str, n->len, q, sizeof q);
        gw_yamldoc_error(c->doc, n, "%s: expected \"host:port\" (or \"\" to disable), got %s", what,
                         q);
        return;
    }
    free(c->cfg->metrics_listen);
    c->cfg->metrics_listen = gw_xstrdup(s);
}

static void set_log_format(cfg_ctx *c, const option *o, const gw_yaml_node *n, const char *what)
{
    static const char *const names[] = {"json", "text", NULL};
    (void)o;
    int v;
    if (gw_yamldoc_get_enum(c->doc, n, what, names, &v))
        c->cfg->log_json = v == 0;
}

static void set_log_level(cfg_ctx *c, const option *o, const gw_yaml_node *n, const char *what)
{
    static const char *const names[] = {"debug", "info", "warn", "error", NULL};
    (void)o;
    int v;
    if (gw_yamldoc_get_enum(c->doc, n, what, names, &v))
        c->cfg->log_level = gw_log_level_parse(names[v]);
}

/* The type of every queue the gateway declares for itself (topology.h). */
static void set_queue_type(cfg_ctx *c, const option *o, const gw_yaml_node *n, const char *what)
{
    (void)o;
    int v;
    if (gw_yamldoc_get_enum(c->doc, n, what, gw_queue_type_names, &v))
        c->cfg->queue_type = (gw_queue_type)v;
}

/* Whether first copies carry the gateway's x-gw-* headers too (copy.h, SPEC §6). */
static void set_forward_headers(cfg_ctx *c, const option *o, const gw_yaml_node *n,
                                const char *what)
{
    (void)o;
    int v;
    if (gw_yamldoc_get_enum(c->doc, n, what, gw_forward_headers_names, &v))
        c->cfg->forward_headers = (gw_forward_headers)v;
}

static void apply(cfg_ctx *c, const option *o, const gw_yaml_node *n, const char *what)
{
    void *p = field(c, o);
    const char *s;
    int64_t i;
    switch (o->kind) {
    case OPT_NAME:
        if (gw_yamldoc_get_name(c->doc, n, what, o->max, &s)) {
            free(*(char **)p);
            *(char **)p = gw_xstrdup(s);
        }
        break;
    case OPT_PATH:
        if (gw_yamldoc_get_name(c->doc, n, what, 4096, &s)) {
            free(*(char **)p);
            *(char **)p = resolve(c->dir, s);
        }
        break;
    case OPT_U16:
        if (gw_yamldoc_get_int(c->doc, n, what, (int64_t)o->min, (int64_t)o->max, &i))
            *(uint16_t *)p = (uint16_t)i;
        break;
    case OPT_U32:
        if (gw_yamldoc_get_int(c->doc, n, what, (int64_t)o->min, (int64_t)o->max, &i))
            *(uint32_t *)p = (uint32_t)i;
        break;
    case OPT_MS:
        gw_yamldoc_get_duration(c->doc, n, what, o->min, o->max, (uint64_t *)p);
        break;
    case OPT_BOOL:
        gw_yamldoc_get_bool(c->doc, n, what, (bool *)p);
        break;
    case OPT_HANDLER:
        o->handler(c, o, n, what);
        break;
    }
}

/* The mapping at a dotted section path, or NULL when absent (or not a mapping). */
static const gw_yaml_node *section_node(const gw_yaml_node *root, const char *section)
{
    const gw_yaml_node *n = root;
    const char *p = section;
    while (*p && n) {
        const char *dot = strchr(p, '.');
        size_t len = dot ? (size_t)(dot - p) : strlen(p);
        char key[64];
        snprintf(key, sizeof key, "%.*s", (int)len, p);
        n = gw_yamldoc_map_get(n, key);
        p += len + (dot ? 1 : 0);
    }
    return n && n->kind == GW_YAML_MAP ? n : NULL;
}

/* Applies every default through the same code as the file's values, so a default
 * obeys the same bounds. The defaults are constants: a failure is a bug here. */
static void apply_defaults(cfg_ctx *c)
{
    for (size_t i = 0; i < N_OPTIONS; i++) {
        const option *o = &options[i];
        if (!o->def)
            continue;
        gw_yamldoc *d = NULL;
        if (gw_yamldoc_parse("<default>", o->def, strlen(o->def), c->doc->diags, &d) != GW_OK)
            abort();
        gw_yamldoc *file_doc = c->doc;
        c->doc = d;
        apply(c, o, d->root, o->key);
        c->doc = file_doc;
        if (d->errors)
            abort();
        gw_yamldoc_free(d);
    }
}

static void check_sections(cfg_ctx *c, const gw_yaml_node *root)
{
    for (size_t s = 0; s < N_SECTIONS; s++) {
        const char *sec = sections[s];
        const gw_yaml_node *map = *sec ? NULL : root;
        if (*sec) {
            /* Present but not a mapping: report at the value. */
            const char *dot = strrchr(sec, '.');
            char parent[64];
            snprintf(parent, sizeof parent, "%.*s", dot ? (int)(dot - sec) : 0, sec);
            const gw_yaml_node *pn = *parent ? section_node(root, parent) : root;
            const gw_yaml_node *v = gw_yamldoc_map_get(pn, dot ? dot + 1 : sec);
            if (!v)
                continue;
            if (!gw_yamldoc_expect_map(c->doc, v, sec))
                continue;
            map = v;
        }
        if (!map)
            continue;
        const char *allowed[N_OPTIONS + N_SECTIONS + 1];
        size_t k = 0;
        size_t slen = strlen(sec);
        for (size_t i = 0; i < N_OPTIONS; i++)
            if (strcmp(options[i].section, sec) == 0)
                allowed[k++] = options[i].key;
        for (size_t i = 0; i < N_SECTIONS; i++) {
            const char *sub = sections[i];
            if (!*sub)
                continue;
            if (slen == 0 && !strchr(sub, '.'))
                allowed[k++] = sub;
            else if (slen && strncmp(sub, sec, slen) == 0 && sub[slen] == '.' &&
                     !strchr(sub + slen + 1, '.'))
                allowed[k++] = sub + slen + 1;
        }
        allowed[k] = NULL;
        gw_yamldoc_check_keys(c->doc, map, sec, allowed);
    }
}

static void apply_file(cfg_ctx *c, const gw_yaml_node *root)
{
    for (size_t i = 0; i < N_OPTIONS; i++) {
        const option *o = &options[i];
        const gw_yaml_node *map = *o->section ? section_node(root, o->section) : root;
        char what[96];
        snprintf(what, sizeof what, "%s%s%s", o->section, *o->section ? "." : "", o->key);
        const gw_yaml_node *v = gw_yamldoc_map_get(map, o->key);
        if (!v) {
            if (o->required) {
                /* Located at the section when it exists, else file-level. */
                gw_yamldoc_error(c->doc, map, "missing required key \"%s\"", what);
            }
            continue;
        }
        if (o->kind == OPT_HANDLER && o->handler == set_urls) {
            /* The file's list replaces the default one. */
            for (size_t u = 0; u < c->cfg->n_broker_urls; u++)
                free(c->cfg->broker_urls[u]);
            c->cfg->n_broker_urls = 0;
            c->cfg->tls.enabled = false;
        }
        apply(c, o, v, what);
        note_pos(c->cfg, what, v);
    }
    if (section_node(root, "broker.tls"))
        c->cfg->tls.enabled = true;
}

/* AMQP_GW_URL / _USER / _PASSWORD; an unset or empty variable changes nothing. */
static size_t apply_env(cfg_ctx *c)
{
    size_t errors = 0;
    gw_config *cfg = c->cfg;
    const char *urls = getenv("AMQP_GW_URL");
    if (urls && *urls) {
        bool tls_block = section_node(c->doc->root, "broker.tls") != NULL;
        for (size_t u = 0; u < cfg->n_broker_urls; u++)
            free(cfg->broker_urls[u]);
        cfg->n_broker_urls = 0;
        cfg->tls.enabled = tls_block;
        const char *p = urls;
        for (;;) {
            const char *comma = strchr(p, ',');
            size_t len = comma ? (size_t)(comma - p) : strlen(p);
            while (len && (*p == ' ' || *p == '\t')) {
                p++;
                len--;
            }
            while (len && (p[len - 1] == ' ' || p[len - 1] == '\t'))
                len--;
            char *url = gw_xstrndup(p, len), why[256];
            if (!*url) {
                gw_diags_add(c->doc->diags, NULL, 0, 0, "AMQP_GW_URL: empty URL in the list");
                errors++;
            } else if (!gw_url_check(url, why, sizeof why)) {
                /* Never echo the URL: it may hold a password (why never does). */
                gw_diags_add(c->doc->diags, NULL, 0, 0, "AMQP_GW_URL: URL %zu %s",
                             cfg->n_broker_urls + errors + 1, why);
                errors++;
            } else {
                add_url(cfg, url);
            }
            free(url);
            if (!comma)
                break;
            p = comma + 1;
        }
    }
    const char *user = getenv("AMQP_GW_USER");
    if (user && *user)
        cfg->user = gw_xstrdup(user);
    const char *password = getenv("AMQP_GW_PASSWORD");
    if (password && *password)
        cfg->password = gw_xstrdup(password);
    return errors;
}

void gw_config_free(gw_config *cfg)
{
    if (!cfg)
        return;
    free(cfg->path);
    for (size_t i = 0; i < cfg->n_broker_urls; i++)
        free(cfg->broker_urls[i]);
    free(cfg->broker_urls);
    free(cfg->user);
    free(cfg->password);
    free(cfg->tls.ca_file);
    free(cfg->tls.cert_file);
    free(cfg->tls.key_file);
    free(cfg->inbound_queue);
    free(cfg->routes_file);
    free(cfg->dlx_exchange);
    free(cfg->dlq_queue);
    free(cfg->prefix);
    free(cfg->metrics_listen);
    for (size_t i = 0; i < cfg->n_positions; i++)
        free(cfg->positions[i].key);
    free(cfg->positions);
    free(cfg);
}

/* keep_invalid: hand out what could be read even when the file has errors. */
static gw_err config_from_doc(const char *path, gw_yamldoc *doc, bool keep_invalid, gw_config **out)
{
    gw_err err = GW_ERR_INVALID;
    cfg_ctx c = {.doc = doc, .cfg = gw_xcalloc(1, sizeof(gw_config))};
    const char *slash = strrchr(path, '/');
    c.dir = slash ? gw_xstrndup(path, (size_t)(slash - path) + 1) : NULL;
    c.cfg->path = gw_xstrdup(path);

    apply_defaults(&c);
    const gw_yaml_node *root = doc->root;
    if (root && !gw_yamldoc_expect_map(doc, root, NULL))
        root = NULL;
    check_sections(&c, root);
    apply_file(&c, root);
    size_t env_errors = apply_env(&c);
    gw_yamldoc_sort_diags(doc);

    if ((doc->errors || env_errors) && !keep_invalid)
        goto out;
    err = doc->errors || env_errors ? GW_ERR_INVALID : GW_OK;
    *out = c.cfg;
    c.cfg = NULL;
out:
    gw_config_free(c.cfg);
    free(c.dir);
    return err;
}

gw_err gw_config_parse(const char *path, const char *buf, size_t len, gw_config **out,
                       gw_diags *diags)
{
    gw_yamldoc *doc = NULL;
    gw_err err = gw_yamldoc_parse(path, buf, len, diags, &doc);
    if (err != GW_OK)
        return err;
    err = config_from_doc(path, doc, false, out);
    gw_yamldoc_free(doc);
    return err;
}

static gw_err load(const char *path, bool keep_invalid, gw_config **out, gw_diags *diags)
{
    gw_yamldoc *doc = NULL;
    gw_err err = gw_yamldoc_load(path, diags, &doc);
    if (err != GW_OK)
        return err;
    err = config_from_doc(path, doc, keep_invalid, out);
    gw_yamldoc_free(doc);
    return err;
}

gw_err gw_config_load(const char *path, gw_config **out, gw_diags *diags)
{
    return load(path, false, out, diags);
}

gw_err gw_config_load_partial(const char *path, gw_config **out, gw_diags *diags)
{
    return load(path, true, out, diags);
}
