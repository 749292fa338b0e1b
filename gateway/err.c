/* err.c — gw_err texts and the located-diagnostics list. */
#include "err.h"

#include "alloc.h"

#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

const char *gw_err_str(gw_err err)
{
    switch (err) {
    case GW_OK:
        return "ok";
    case GW_ERR_INVALID:
        return "invalid input";
    case GW_ERR_IO:
        return "i/o error";
    case GW_ERR_USAGE:
        return "usage error";
    case GW_ERR_BROKER:
        return "broker error";
    case GW_ERR_TRANSIENT:
        return "transient failure";
    case GW_ERR_PERMANENT:
        return "permanent failure";
    case GW_ERR_NOT_FOUND:
        return "not found";
    }
    return "unknown error";
}

/* A diagnostic is one line whatever it quotes: control bytes become \xNN (a caller that
 * quotes a value with gw_yamldoc_quote has already escaped them; this is the backstop
 * for names and paths passed through as they are). Takes ownership of s. */
static char *one_line(char *s)
{
    size_t extra = 0;
    for (const unsigned char *p = (const unsigned char *)s; *p; p++)
        if (*p < 0x20 || *p == 0x7f)
            extra += 3;
    if (extra == 0)
        return s;
    size_t len = strlen(s);
    char *r = gw_xmalloc(len + extra + 1), *w = r;
    for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
        if (*p < 0x20 || *p == 0x7f) {
            static const char hex[] = "0123456789abcdef";
            *w++ = '\\';
            *w++ = 'x';
            *w++ = hex[*p >> 4];
            *w++ = hex[*p & 15];
        } else {
            *w++ = (char)*p;
        }
    }
    *w = '\0';
    free(s);
    return r;
}

void gw_diags_add(gw_diags *d, const char *file, int line, int col, const char *fmt, ...)
{
    if (d->n == d->cap) {
        d->cap = d->cap ? d->cap * 2 : 8;
        d->items = gw_xrealloc(d->items, d->cap * sizeof *d->items);
    }
    gw_diag *g = &d->items[d->n++];
    g->file = file ? one_line(gw_xstrdup(file)) : NULL;
    g->line = line;
    g->col = col;
    va_list ap;
    va_start(ap, fmt);
    g->msg = one_line(gw_xvasprintf(fmt, ap));
    va_end(ap);
}

void gw_diag_format(const gw_diag *g, char *buf, size_t len)
{
    if (g->file && g->line > 0)
        snprintf(buf, len, "%s:%d:%d: %s", g->file, g->line, g->col, g->msg);
    else if (g->file)
        snprintf(buf, len, "%s: %s", g->file, g->msg);
    else
        snprintf(buf, len, "%s", g->msg);
}

void gw_diags_print(const gw_diags *d, FILE *out)
{
    for (size_t i = 0; i < d->n; i++) {
        const gw_diag *g = &d->items[i];
        if (g->file && g->line > 0)
            fprintf(out, "%s:%d:%d: %s\n", g->file, g->line, g->col, g->msg);
        else if (g->file)
            fprintf(out, "%s: %s\n", g->file, g->msg);
        else
            fprintf(out, "%s\n", g->msg);
    }
}

void gw_diags_cleanup(gw_diags *d)
{
    for (size_t i = 0; i < d->n; i++) {
        free(d->items[i].file);
        free(d->items[i].msg);
    }
    free(d->items);
    d->items = NULL;
    d->n = d->cap = 0;
}
