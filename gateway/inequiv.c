/* inequiv.c — RabbitMQ's "inequivalent arg" refusals read, and the probe that learns an
 * existing queue's type from them.
 *
 * Called by topology.c, which sends each declaration the probe asks for. Knows the
 * broker's wording (rabbit_misc:assert_args_equivalence, as RabbitMQ 3.10 words it),
 * nothing of sockets or rabbitmq-c.
 */
#include "inequiv.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define MARK "PRECONDITION_FAILED - inequivalent arg '"
#define BUT  " but current is "

/* Each argument is read at most three ways (integer, boolean, string: the refused value
 * is never read again), each flag once, and the type ends the probe: more steps than
 * that means the broker is not converging. */
#define STEP_MAX (3 * GW_INEQUIV_MAX_ARGS + 3)

/* The last occurrence of needle in s, or NULL. */
static const char *last_of(const char *s, const char *needle)
{
    const char *found = NULL;
    for (const char *p = strstr(s, needle); p; p = strstr(p + 1, needle))
        found = p;
    return found;
}

/* Copies s[0..n) into buf (cap bytes); false when it does not fit. */
static bool copy_n(char *buf, size_t cap, const char *s, size_t n)
{
    if (n >= cap)
        return false;
    memcpy(buf, s, n);
    buf[n] = '\0';
    return true;
}

/* "none", "'V'" or "the value 'V' of type 'T'", up to the end of the text. */
static void read_current(const char *v, gw_inequiv *out)
{
    static const char value_of[] = "the value '", of_type[] = "' of type '";
    size_t n = strlen(v);
    out->current = GW_INEQUIV_CUT;
    if (strcmp(v, "none") == 0) {
        out->current = GW_INEQUIV_NONE;
        return;
    }
    if (n < 2 || v[n - 1] != '\'')
        return; /* cut short ("..."), or a wording this version does not know */
    if (strncmp(v, value_of, sizeof value_of - 1) == 0) {
        const char *start = v + sizeof value_of - 1;
        const char *t = last_of(start, of_type);
        if (!t)
            return;
        const char *type = t + sizeof of_type - 1;
        if (copy_n(out->value, sizeof out->value, start, (size_t)(t - start)) &&
            copy_n(out->type, sizeof out->type, type, (size_t)(v + n - 1 - type)))
            out->current = GW_INEQUIV_VALUE;
        return;
    }
    if (v[0] == '\'' && copy_n(out->value, sizeof out->value, v + 1, n - 2))
        out->current = GW_INEQUIV_VALUE;
}

bool gw_inequiv_parse(const char *text, gw_inequiv *out)
{
    memset(out, 0, sizeof *out);
    const char *p = text ? strstr(text, MARK) : NULL;
    if (!p)
        return false;
    p += sizeof MARK - 1;
    const char *q = strchr(p, '\'');
    if (!q || q == p || !copy_n(out->key, sizeof out->key, p, (size_t)(q - p)))
        return false;
    const char *but = last_of(q, BUT);
    if (but)
        read_current(but + sizeof BUT - 1, out);
    else
        out->current = GW_INEQUIV_CUT;
    return true;
}

/* ---------------------------------------------------------------- the probe */

void gw_inequiv_probe_init(gw_inequiv_probe *p, const gw_queue_decl *q)
{
    memset(p, 0, sizeof *p);
    p->planned = q;
    p->decl = *q;
    p->decl.args = p->args;
    if (q->n_args > GW_INEQUIV_MAX_ARGS) {
        p->decl.n_args = 0;
        p->steps = STEP_MAX; /* too many to track: the first step gives up */
        return;
    }
    if (q->n_args)
        memcpy(p->args, q->args, q->n_args * sizeof *p->args);
}

static const gw_arg *find_arg(const gw_arg *args, size_t n, const char *key)
{
    for (size_t i = 0; i < n; i++)
        if (strcmp(args[i].key, key) == 0)
            return &args[i];
    return NULL;
}

/* Moves slot from to slot to, keeping pointers into the probe's own storage right. */
static void move_slot(gw_inequiv_probe *p, size_t from, size_t to)
{
    gw_arg a = p->args[from];
    if (a.key == p->keys[from]) {
        memcpy(p->keys[to], p->keys[from], sizeof p->keys[to]);
        a.key = p->keys[to];
    }
    if (a.kind == GW_ARG_STR && a.s == p->values[from]) {
        memcpy(p->values[to], p->values[from], sizeof p->values[to]);
        a.s = p->values[to];
    }
    p->args[to] = a;
    p->tries[to] = p->tries[from];
}

static void remove_slot(gw_inequiv_probe *p, size_t i)
{
    size_t last = p->decl.n_args - 1;
    if (i != last)
        move_slot(p, last, i);
    p->decl.n_args = last;
}

static bool parse_int(const char *s, int64_t *out)
{
    if (!*s)
        return false;
    char *end;
    errno = 0;
    long long v = strtoll(s, &end, 10);
    if (errno || *end)
        return false;
    *out = v;
    return true;
}

/* The kind a broker type name reads as; false for types the gateway never sends
 * (tables, arrays, floats, ...). */
static bool kind_of_type(const char *type, gw_arg_kind *kind)
{
    static const char *const ints[] = {"byte",        "short",        "signedint",
                                       "long",        "unsignedbyte", "unsignedshort",
                                       "unsignedint", "timestamp",    NULL};
    for (size_t i = 0; ints[i]; i++) {
        if (strcmp(type, ints[i]) == 0) {
            *kind = GW_ARG_INT;
            return true;
        }
    }
    if (strcmp(type, "bool") == 0) {
        *kind = GW_ARG_BOOL;
        return true;
    }
    if (strcmp(type, "longstr") == 0 || strcmp(type, "shortstr") == 0 ||
        strcmp(type, "binary") == 0) {
        *kind = GW_ARG_STR;
        return true;
    }
    return false;
}

/* value read as kind into arg (a string is borrowed); false when it does not read so. */
static bool read_as(const char *value, gw_arg_kind kind, gw_arg *arg)
{
    arg->kind = kind;
    switch (kind) {
    case GW_ARG_INT:
        return parse_int(value, &arg->i);
    case GW_ARG_BOOL:
        arg->b = strcmp(value, "true") == 0;
        return arg->b || strcmp(value, "false") == 0;
    case GW_ARG_STR:
        arg->s = (char *)value;
        return true;
    }
    return false;
}

static bool same_arg(const gw_arg *a, const gw_arg *b)
{
    if (a->kind != b->kind)
        return false;
    switch (a->kind) {
    case GW_ARG_INT:
        return a->i == b->i;
    case GW_ARG_BOOL:
        return a->b == b->b;
    case GW_ARG_STR:
        return strcmp(a->s, b->s) == 0;
    }
    return false;
}

/* Sets slot i to the next untried reading of the broker's value: the type it names, else
 * (the broker leaves the type out when both sides have a value) the planned argument's
 * kind, then integer, boolean, string — never the planned value, which was refused.
 * False when no reading is left. */
static bool adopt_value(gw_inequiv_probe *p, size_t i, const gw_inequiv *iq)
{
    const gw_arg *planned = find_arg(p->planned->args, p->planned->n_args, iq->key);
    gw_arg_kind order[4];
    size_t n = 0;
    if (iq->type[0]) {
        if (!kind_of_type(iq->type, &order[n]))
            return false;
        n++;
    } else {
        if (planned)
            order[n++] = planned->kind;
        static const gw_arg_kind rest[] = {GW_ARG_INT, GW_ARG_BOOL, GW_ARG_STR};
        for (size_t k = 0; k < 3; k++)
            if (!planned || rest[k] != planned->kind)
                order[n++] = rest[k];
    }
    size_t readable = 0;
    for (size_t k = 0; k < n; k++) {
        gw_arg next = {.key = p->args[i].key};
        if (!read_as(iq->value, order[k], &next) || (planned && same_arg(&next, planned)))
            continue;
        if (readable++ < p->tries[i])
            continue; /* tried before, and refused again */
        if (next.kind == GW_ARG_STR) {
            snprintf(p->values[i], sizeof p->values[i], "%s", iq->value);
            next.s = p->values[i];
        }
        p->args[i] = next;
        p->tries[i]++;
        return true;
    }
    return false;
}

/* durable or auto_delete as the broker says the queue has it. */
static gw_inequiv_step adopt_flag(bool *flag, const gw_inequiv *iq, char *why, size_t why_len)
{
    bool v = strcmp(iq->value, "true") == 0;
    if ((!v && strcmp(iq->value, "false") != 0) || *flag == v) {
        snprintf(why, why_len, "the broker's answer about %s does not read as true or false",
                 iq->key);
        return GW_INEQUIV_UNKNOWN;
    }
    *flag = v;
    return GW_INEQUIV_AGAIN;
}

/* An argument as the broker says the queue has it (none: left out). */
static gw_inequiv_step adopt_arg(gw_inequiv_probe *p, const gw_inequiv *iq, char *why,
                                 size_t why_len)
{
    const gw_arg *a = find_arg(p->args, p->decl.n_args, iq->key);
    size_t slot = a ? (size_t)(a - p->args) : p->decl.n_args;
    if (iq->current == GW_INEQUIV_NONE) {
        if (!a) {
            snprintf(why, why_len,
                     "the broker says the queue has no %s, and neither has the "
                     "declaration",
                     iq->key);
            return GW_INEQUIV_UNKNOWN;
        }
        remove_slot(p, slot);
        return GW_INEQUIV_AGAIN;
    }
    if (!a) {
        if (slot == GW_INEQUIV_MAX_ARGS) {
            snprintf(why, why_len, "the queue has more arguments than the gateway compares");
            return GW_INEQUIV_UNKNOWN;
        }
        snprintf(p->keys[slot], sizeof p->keys[slot], "%s", iq->key);
        p->args[slot] = (gw_arg){.key = p->keys[slot]};
        p->tries[slot] = 0;
    }
    if (!adopt_value(p, slot, iq)) {
        snprintf(why, why_len, "the queue's %s is '%s', which the gateway cannot declare back",
                 iq->key, iq->value);
        return GW_INEQUIV_UNKNOWN;
    }
    if (!a)
        p->decl.n_args++;
    return GW_INEQUIV_AGAIN;
}

gw_inequiv_step gw_inequiv_probe_next(gw_inequiv_probe *p, const char *refusal, char *why,
                                      size_t why_len)
{
    gw_inequiv iq;
    if (++p->steps > STEP_MAX) {
        snprintf(why, why_len, "the broker kept refusing the declaration");
        return GW_INEQUIV_UNKNOWN;
    }
    if (!gw_inequiv_parse(refusal, &iq)) {
        snprintf(why, why_len, "the broker refused it otherwise: %s", refusal);
        return GW_INEQUIV_UNKNOWN;
    }
    if (strcmp(iq.key, "x-queue-type") == 0) {
        /* "none" is a queue declared without the argument: classic, the default */
        snprintf(p->existing, sizeof p->existing, "%.*s", (int)sizeof p->existing - 1,
                 iq.current == GW_INEQUIV_NONE    ? "classic"
                 : iq.current == GW_INEQUIV_VALUE ? iq.value
                                                  : "");
        return GW_INEQUIV_TYPE;
    }
    if (iq.current == GW_INEQUIV_CUT) {
        snprintf(why, why_len,
                 "the broker's answer was cut short before saying what the queue has for %s "
                 "(it cuts answers at 255 bytes: a long queue name)",
                 iq.key);
        return GW_INEQUIV_UNKNOWN;
    }
    if (strcmp(iq.key, "durable") == 0)
        return adopt_flag(&p->decl.durable, &iq, why, why_len);
    if (strcmp(iq.key, "auto_delete") == 0)
        return adopt_flag(&p->decl.auto_delete, &iq, why, why_len);
    return adopt_arg(p, &iq, why, why_len);
}
