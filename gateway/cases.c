/* cases.c — routing-table unit cases: the case-file loader and the pure runner.
 *
 * Loads a case file (format in cases.h) through yamldoc.c's located getters, so every
 * problem in the file is reported as FILE:LINE:COL: message before any case runs. The
 * runner has the gateway's own routing decision (dispatch.h) decide a new event of the
 * case's type (invalid type -> invalid_event, no route -> no_route, else the winning
 * route's destinations) and compares that with the expectation as multisets. Called by
 * commands.c (`amqp-gw test`); never prints, never exits.
 */
#include "cases.h"

#include "alloc.h"
#include "contract.h"
#include "dispatch.h"
#include "intake.h"
#include "match.h"
#include "yamldoc.h"

#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

/* AMQP short strings (exchange names) are at most 255 bytes. */
#define CASES_MAX_NAME_BYTES 255

static const char *const file_keys[] = {"cases", NULL};
static const char *const case_keys[] = {"name", "event", "type",  "headers",      "body", "expect",
                                        "to",   "error", "route", "destinations", NULL};
/* Spellings a case may use for the same field: the routing table's own words (`event`,
 * `to`) and the obvious others. */
static const char *const event_keys[] = {"event", "type", NULL};
static const char *const expect_keys[] = {"expect", "to", "destinations", NULL};
static const char *const dest_keys[] = {"exchange", "routing_key", NULL};

static void case_cleanup(gw_case *c)
{
    free(c->name);
    free(c->event);
    for (size_t i = 0; i < c->n_headers; i++) {
        free(c->headers[i].key);
        free(c->headers[i].value);
    }
    free(c->headers);
    for (size_t i = 0; i < c->n_dests; i++) {
        free(c->dests[i].exchange);
        free(c->dests[i].routing_key);
    }
    free(c->dests);
    free(c->route);
    free(c->body);
    free(c->error);
}

void gw_cases_free(gw_cases *cases)
{
    if (!cases)
        return;
    for (size_t i = 0; i < cases->n; i++)
        case_cleanup(&cases->items[i]);
    free(cases->items);
    free(cases->path);
    free(cases);
}

/* The node of the first spelling of a field present in item (NULL if none); two
 * spellings at once are an error. */
static const gw_yaml_node *field(gw_yamldoc *doc, const gw_yaml_node *item, const char *label,
                                 const char *const *names, const char **used)
{
    const gw_yaml_node *found = NULL;
    *used = names[0];
    for (const char *const *k = names; *k; k++) {
        const gw_yaml_node *n = gw_yamldoc_map_get(item, *k);
        if (!n)
            continue;
        if (found && doc)
            gw_yamldoc_error(doc, n, "%s: \"%s\" and \"%s\" say the same thing; use one", label,
                             *used, *k);
        if (!found) {
            found = n;
            *used = *k;
        }
    }
    return found;
}

/* The text of a scalar node, or NULL (no diagnostic) — to name a case in messages
 * before its fields are validated. */
static const char *peek_str(const gw_yaml_node *n)
{
    if (!n || n->kind != GW_YAML_SCALAR || gw_yamldoc_is_null(n) || strlen(n->str) != n->len)
        return NULL;
    return n->str;
}

/* `case "order created"` (name, else event) or `cases[3]` for messages. */
static char *case_label(const gw_yaml_node *item, size_t index)
{
    const char *label = peek_str(gw_yamldoc_map_get(item, "name"));
    const char *used;
    if (!label)
        label = peek_str(field(NULL, item, NULL, event_keys, &used));
    if (label && label[0] != '\0')
        return gw_xasprintf("case \"%s\"", label);
    return gw_xasprintf("cases[%zu]", index);
}

static void load_headers(gw_yamldoc *doc, const gw_yaml_node *n, const char *label, gw_case *c)
{
    char *what = gw_xasprintf("%s: headers", label);
    if (!gw_yamldoc_expect_map(doc, n, what))
        goto out;
    c->headers = gw_xcalloc(n->n ? n->n : 1, sizeof *c->headers);
    for (size_t i = 0; i < n->n; i++) {
        char *vwhat = gw_xasprintf("%s: headers.%s", label, n->keys[i]->str);
        const char *value;
        if (n->items[i]->kind != GW_YAML_SCALAR)
            gw_yamldoc_error(doc, n->items[i], "%s: expected a scalar, got %s", vwhat,
                             gw_yamldoc_kind_name(n->items[i]));
        else if (gw_yamldoc_get_str(doc, n->items[i], vwhat, &value)) {
            c->headers[c->n_headers].key = gw_xstrdup(n->keys[i]->str);
            c->headers[c->n_headers].value = gw_xstrdup(value);
            c->n_headers++;
        }
        free(vwhat);
    }
out:
    free(what);
}

static void load_dest(gw_yamldoc *doc, const gw_yaml_node *n, const char *label, size_t index,
                      gw_case *c)
{
    char *what = gw_xasprintf("%s: expect[%zu]", label, index);
    const char *exchange = NULL, *routing_key = NULL;
    if (!gw_yamldoc_expect_map(doc, n, what))
        goto out;
    gw_yamldoc_check_keys(doc, n, what, dest_keys);
    const gw_yaml_node *ex = gw_yamldoc_map_require(doc, n, what, "exchange");
    if (ex) {
        char *ewhat = gw_xasprintf("%s.exchange", what);
        gw_yamldoc_get_name(doc, ex, ewhat, CASES_MAX_NAME_BYTES, &exchange);
        free(ewhat);
    }
    const gw_yaml_node *rk = gw_yamldoc_map_get(n, "routing_key");
    if (rk) {
        char *rwhat = gw_xasprintf("%s.routing_key", what);
        if (gw_yamldoc_get_str(doc, rk, rwhat, &routing_key) &&
            strlen(routing_key) > CASES_MAX_NAME_BYTES) {
            gw_yamldoc_error(doc, rk, "%s: longer than %d bytes", rwhat, CASES_MAX_NAME_BYTES);
            routing_key = NULL;
        }
        free(rwhat);
    }
    if (exchange) {
        gw_case_dest *d = &c->dests[c->n_dests++];
        d->exchange = gw_xstrdup(exchange);
        d->routing_key = routing_key ? gw_xstrdup(routing_key) : NULL;
    }
out:
    free(what);
}

static void load_expect(gw_yamldoc *doc, const gw_yaml_node *n, const char *label, gw_case *c)
{
    if (n->kind == GW_YAML_SCALAR && !gw_yamldoc_is_null(n)) {
        if (strcmp(n->str, "no_route") == 0 && n->len == 8)
            c->expect = GW_CASE_EXPECT_NO_ROUTE;
        else if (strcmp(n->str, "invalid_event") == 0 && n->len == 13)
            c->expect = GW_CASE_EXPECT_INVALID_EVENT;
        else
            gw_yamldoc_error(doc, n,
                             "%s: expect: expected a list of destinations, no_route or "
                             "invalid_event, got \"%s\"",
                             label, n->str);
        return;
    }
    if (n->kind != GW_YAML_SEQ) {
        gw_yamldoc_error(doc, n,
                         "%s: expect: expected a list of destinations, no_route or "
                         "invalid_event, got %s",
                         label, gw_yamldoc_kind_name(n));
        return;
    }
    /* An empty list: the event reaches no destination (it is dead-lettered, for no route
     * or as invalid). */
    c->expect = GW_CASE_EXPECT_DESTINATIONS;
    c->dests = gw_xcalloc(n->n ? n->n : 1, sizeof *c->dests);
    for (size_t i = 0; i < n->n; i++)
        load_dest(doc, n->items[i], label, i, c);
}

static void load_case(gw_yamldoc *doc, const gw_yaml_node *item, size_t index, gw_case *c)
{
    char *label = case_label(item, index);
    char *what = NULL;
    const char *s;

    c->line = item->line;
    c->col = item->col;
    if (!gw_yamldoc_expect_map(doc, item, label))
        goto out;
    gw_yamldoc_check_keys(doc, item, label, case_keys);

    const gw_yaml_node *n = gw_yamldoc_map_get(item, "name");
    if (n) {
        what = gw_xasprintf("%s: name", label);
        if (gw_yamldoc_get_str(doc, n, what, &s))
            c->name = gw_xstrdup(s);
        free(what);
    }
    const char *used;
    n = field(doc, item, label, event_keys, &used);
    if (!n)
        gw_yamldoc_map_require(doc, item, label, "event"); /* reports it missing */
    if (n) {
        what = gw_xasprintf("%s: %s", label, used);
        if (gw_yamldoc_get_str(doc, n, what, &s))
            c->event = gw_xstrdup(s);
        free(what);
    }
    n = gw_yamldoc_map_get(item, "headers");
    if (n)
        load_headers(doc, n, label, c);
    n = gw_yamldoc_map_get(item, "route");
    if (n) {
        what = gw_xasprintf("%s: route", label);
        char why[128];
        if (gw_yamldoc_get_str(doc, n, what, &s)) {
            if (gw_match_pattern_valid(s, why, sizeof why))
                c->route = gw_xstrdup(s);
            else
                gw_yamldoc_error(doc, n, "%s: \"%s\" is not a valid event type or pattern: %s",
                                 what, s, why);
        }
        free(what);
    }
    n = gw_yamldoc_map_get(item, "body");
    if (n) {
        what = gw_xasprintf("%s: body", label);
        /* the body as published; a scalar's bytes as they are (a "\0" escape too) */
        if (n->kind != GW_YAML_SCALAR || gw_yamldoc_is_null(n)) {
            gw_yamldoc_error(doc, n,
                             "%s: expected a string (the body as published, e.g. "
                             "'{\"data\": {}}'), got %s",
                             what, gw_yamldoc_kind_name(n));
        } else {
            c->body = gw_xmemdup(n->str, n->len + 1);
            c->body_len = n->len;
        }
        free(what);
    }
    const gw_yaml_node *expect = field(doc, item, label, expect_keys, &used);
    if (expect)
        load_expect(doc, expect, label, c);
    n = gw_yamldoc_map_get(item, "error");
    if (n) {
        what = gw_xasprintf("%s: error", label);
        if (gw_yamldoc_get_str(doc, n, what, &s)) {
            if (c->expect == GW_CASE_EXPECT_NO_ROUTE || c->expect == GW_CASE_EXPECT_INVALID_EVENT)
                c->error = gw_xstrdup(s);
            else if (expect)
                gw_yamldoc_error(doc, n,
                                 "%s: only a dead-letter has one: use it with expect: "
                                 "invalid_event or no_route",
                                 what);
        }
        free(what);
    }
    if (!expect && !gw_yamldoc_map_get(item, "route"))
        gw_yamldoc_error(doc, item,
                         "%s: needs expect: (destinations, no_route or "
                         "invalid_event) or route: (the route that must match)",
                         label);
    if (!c->name && c->event)
        c->name = gw_xstrdup(c->event);
out:
    free(label);
}

gw_err gw_cases_parse(const char *path, const char *buf, size_t len, gw_cases **out,
                      gw_diags *diags)
{
    gw_yamldoc *doc = NULL;
    gw_cases *cases = NULL;
    gw_err err = gw_yamldoc_parse(path, buf, len, diags, &doc);
    if (err != GW_OK)
        return err;

    const gw_yaml_node *root = doc->root;
    if (!root || gw_yamldoc_is_null(root)) {
        gw_yamldoc_error(doc, NULL, "empty file: expected a mapping with a cases: list");
        goto out;
    }
    const gw_yaml_node *list = root; /* a bare list of cases is fine too */
    if (root->kind != GW_YAML_SEQ) {
        if (!gw_yamldoc_expect_map(doc, root, "case file"))
            goto out;
        gw_yamldoc_check_keys(doc, root, "case file", file_keys);
        list = gw_yamldoc_map_require(doc, root, "case file", "cases");
    }
    if (!list || !gw_yamldoc_expect_seq(doc, list, "cases"))
        goto out;
    if (list->n == 0) {
        gw_yamldoc_error(doc, list, "cases: the list is empty");
        goto out;
    }

    cases = gw_xcalloc(1, sizeof *cases);
    cases->path = gw_xstrdup(path);
    cases->items = gw_xcalloc(list->n, sizeof *cases->items);
    for (size_t i = 0; i < list->n; i++) {
        load_case(doc, list->items[i], i, &cases->items[i]);
        cases->n++;
    }

out:
    if (doc->errors > 0) {
        err = GW_ERR_INVALID;
        gw_cases_free(cases);
    } else {
        *out = cases;
    }
    gw_yamldoc_free(doc);
    return err;
}

gw_err gw_cases_load(const char *path, gw_cases **out, gw_diags *diags)
{
    char *buf = NULL;
    size_t len = 0;
    gw_err err = gw_yamldoc_read_file(path, &buf, &len, diags);
    if (err == GW_OK)
        err = gw_cases_parse(path, buf, len, out, diags);
    free(buf);
    return err;
}

/* ---- runner ---------------------------------------------------------------------- */

/* A growing one-line string. */
typedef struct text {
    char *s;
    size_t len;
} text;

static void text_addf(text *t, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static void text_addf(text *t, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    char *add = gw_xvasprintf(fmt, ap);
    va_end(ap);
    size_t n = strlen(add);
    t->s = gw_xrealloc(t->s, t->len + n + 1);
    memcpy(t->s + t->len, add, n + 1);
    t->len += n;
    free(add);
}

/* One destination as "exchange/routing_key" (an empty key as ""). */
static void text_add_dest(text *t, const char *exchange, const char *routing_key)
{
    if (routing_key[0] == '\0')
        text_addf(t, "%s/\"\"", exchange);
    else
        text_addf(t, "%s/%s", exchange, routing_key);
}

/* What the table does with the event: the outcome a case is compared with. */
typedef struct outcome {
    const gw_route *route;         /* NULL: dead-lettered */
    bool invalid;                  /* invalid_event (else, with no route, no_route) */
    const gw_route *broken;        /* invalid_event: the route whose contract it broke, or NULL */
    char why[GW_DISPATCH_WHY_CAP]; /* dead-lettered: its x-gw-last-error */
    /* route's destinations as the gateway publishes to them, in the route's order */
    const char **exchange, **routing_key;
    size_t n_dests;
} outcome;

/* Decides a new event of the case as the gateway does: the event intake.c makes of a
 * message whose type property is the case's event, with the case's headers and body,
 * then dispatch.c's intent for it, checked against the route's contract. */
static void decide(const gw_case *c, const gw_routes *routes, outcome *o)
{
    /* a new event has spent no attempt: no retry policy is asked anything */
    static const gw_retry_policy no_retry = {.n_backoff = 1};
    static const gw_type_source from_property[] = {GW_TYPE_FROM_PROPERTY};
    static const uint8_t no_random[32];
    const gw_intake_config cfg = {from_property, 1, "", ""};
    gw_delivery d;
    memset(&d, 0, sizeof d);
    d.consumer_tag = gw_str_from_cstr("amqp-gw test");
    d.type = gw_str_from_cstr(c->event);
    d.body = c->body ? (gw_str){c->body, c->body_len} : gw_str_from_cstr("");
    gw_delivery_entry *h = gw_xcalloc(c->n_headers ? c->n_headers : 1, sizeof *h);
    for (size_t i = 0; i < c->n_headers; i++)
        h[i] = (gw_delivery_entry){.key = gw_str_from_cstr(c->headers[i].key),
                                   .str = gw_str_from_cstr(c->headers[i].value),
                                   .slot = GW_DH_COUNT};
    d.headers = h;
    d.n_headers = c->n_headers;

    gw_intake_event ev;
    gw_intake_classify(&cfg, &d, 0, no_random, &ev);
    gw_dispatch_intent in;
    gw_dispatch_decide(&ev, routes, &no_retry, &in);
    const gw_contract *contract = gw_dispatch_contract(&in, &ev);
    gw_contract_violation v;
    const gw_route *broken = NULL;
    if (contract && !gw_intake_contract(contract, &d, &ev, &v)) {
        broken = in.route;
        gw_dispatch_contract_broken(&in, &ev, v.why);
    }
    gw_intake_release(&ev);
    free(h);
    *o = (outcome){
        NULL,   in.kind == GW_DISPATCH_DEAD_LETTER && in.reason == GW_REASON_INVALID_EVENT,
        broken, "",
        NULL,   NULL,
        0};
    memcpy(o->why, in.why, sizeof o->why);
    if (in.kind != GW_DISPATCH_FORWARD)
        return;
    o->route = in.route;
    o->exchange = gw_xcalloc(in.route->n_to + 1, sizeof *o->exchange);
    o->routing_key = gw_xcalloc(in.route->n_to + 1, sizeof *o->routing_key);
    size_t pos = 0;
    while (gw_dispatch_next(&in, c->event, &pos, &o->exchange[o->n_dests],
                            &o->routing_key[o->n_dests]))
        o->n_dests++;
}

static void text_add_outcome(text *t, const outcome *o)
{
    if (o->invalid) {
        text_addf(t, "dead-letter (invalid_event: %s)", o->why);
        return;
    }
    if (!o->route) {
        text_addf(t, "dead-letter (no_route)");
        return;
    }
    for (size_t i = 0; i < o->n_dests; i++) {
        if (i > 0)
            text_addf(t, " + ");
        text_add_dest(t, o->exchange[i], o->routing_key[i]);
    }
}

static void text_add_expected(text *t, const gw_case *c)
{
    if (c->expect == GW_CASE_EXPECT_NO_ROUTE) {
        text_addf(t, "dead-letter (no_route)");
        return;
    }
    if (c->expect == GW_CASE_EXPECT_INVALID_EVENT) {
        text_addf(t, "dead-letter (invalid_event)");
        return;
    }
    if (c->n_dests == 0)
        text_addf(t, "no destination");
    for (size_t i = 0; i < c->n_dests; i++) {
        if (i > 0)
            text_addf(t, " + ");
        text_add_dest(t, c->dests[i].exchange,
                      c->dests[i].routing_key ? c->dests[i].routing_key : c->event);
    }
}

/* Compares the expected destinations with the route's as multisets; on a difference
 * appends "expected ..., got ... (missing ...; unexpected ...)" to t. */
static bool check_dests(const gw_case *c, const outcome *o, text *t)
{
    if (!o->route && c->n_dests == 0)
        return true;
    if (!o->route) {
        text_addf(t, "expected ");
        text_add_expected(t, c);
        text_addf(t, ", got ");
        text_add_outcome(t, o);
        return false;
    }
    bool *used = gw_xcalloc(o->n_dests ? o->n_dests : 1, sizeof *used);
    bool *found = gw_xcalloc(c->n_dests, sizeof *found);
    size_t n_missing = 0, n_unexpected = o->n_dests;
    for (size_t i = 0; i < c->n_dests; i++) {
        const char *want_key = c->dests[i].routing_key ? c->dests[i].routing_key : c->event;
        for (size_t j = 0; j < o->n_dests && !found[i]; j++) {
            if (!used[j] && strcmp(o->exchange[j], c->dests[i].exchange) == 0 &&
                strcmp(o->routing_key[j], want_key) == 0) {
                used[j] = found[i] = true;
                n_unexpected--;
            }
        }
        if (!found[i])
            n_missing++;
    }
    bool ok = n_missing == 0 && n_unexpected == 0;
    if (!ok) {
        text_addf(t, "expected ");
        text_add_expected(t, c);
        text_addf(t, ", got ");
        text_add_outcome(t, o);
        text_addf(t, " (");
        if (n_missing > 0) {
            text_addf(t, "missing ");
            size_t k = 0;
            for (size_t i = 0; i < c->n_dests; i++) {
                if (found[i])
                    continue;
                if (k++ > 0)
                    text_addf(t, " + ");
                text_add_dest(t, c->dests[i].exchange,
                              c->dests[i].routing_key ? c->dests[i].routing_key : c->event);
            }
        }
        if (n_unexpected > 0) {
            text_addf(t, "%sunexpected ", n_missing > 0 ? "; " : "");
            size_t k = 0;
            for (size_t j = 0; j < o->n_dests; j++) {
                if (used[j])
                    continue;
                if (k++ > 0)
                    text_addf(t, " + ");
                text_add_dest(t, o->exchange[j], o->routing_key[j]);
            }
        }
        text_addf(t, ")");
    }
    free(used);
    free(found);
    return ok;
}

bool gw_cases_check(const gw_case *c, const gw_routes *routes, char **why)
{
    outcome o;
    decide(c, routes, &o);

    text t = {NULL, 0};
    bool ok = true;

    if (c->route) {
        /* the route matched, even when its contract then dead-lettered the event */
        const gw_route *matched = o.route ? o.route : o.broken;
        bool same = matched && strcmp(matched->event, c->route) == 0;
        if (!same) {
            ok = false;
            text_addf(&t, "expected route %s, got ", c->route);
            if (matched)
                text_addf(&t, "route %s", matched->event);
            else
                text_addf(&t, o.invalid ? "invalid event type" : "no route");
        }
    }

    text sub = {NULL, 0};
    bool sub_ok = true;
    switch (c->expect) {
    case GW_CASE_EXPECT_NONE:
        break;
    case GW_CASE_EXPECT_DESTINATIONS:
        sub_ok = check_dests(c, &o, &sub);
        break;
    case GW_CASE_EXPECT_NO_ROUTE:
    case GW_CASE_EXPECT_INVALID_EVENT: {
        bool want_invalid = c->expect == GW_CASE_EXPECT_INVALID_EVENT;
        sub_ok = !o.route && o.invalid == want_invalid;
        if (!sub_ok) {
            text_addf(&sub, "expected ");
            text_add_expected(&sub, c);
            text_addf(&sub, ", got ");
            if (o.route)
                text_addf(&sub, "route %s -> ", o.route->event);
            text_add_outcome(&sub, &o);
        } else if (c->error && strcmp(c->error, o.why) != 0) {
            sub_ok = false;
            text_addf(&sub, "expected error \"%s\", got \"%s\"", c->error, o.why);
        }
        break;
    }
    }
    if (!sub_ok) {
        if (!ok)
            text_addf(&t, "; ");
        text_addf(&t, "%s", sub.s);
        ok = false;
    }
    free(sub.s);
    free(o.exchange);
    free(o.routing_key);

    if (!ok && why)
        *why = t.s;
    else
        free(t.s);
    return ok;
}
