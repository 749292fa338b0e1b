/* err.c — gw_err texts and the located-diagnostics list. */
#include "err.h"

#include "alloc.h"

#include <stdarg.h>
#include <stdlib.h>

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

void gw_diags_add(gw_diags *d, const char *file, int line, int col, const char *fmt, ...)
{
    if (d->n == d->cap) {
        d->cap = d->cap ? d->cap * 2 : 8;
        d->items = gw_xrealloc(d->items, d->cap * sizeof *d->items);
    }
    gw_diag *g = &d->items[d->n++];
    g->file = file ? gw_xstrdup(file) : NULL;
    g->line = line;
    g->col = col;
    va_list ap;
    va_start(ap, fmt);
    g->msg = gw_xvasprintf(fmt, ap);
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
