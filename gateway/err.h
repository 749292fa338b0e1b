/* err.h — the one error enum and located diagnostics.
 *
 * Every module returns gw_err (0 = ok). Validation problems are collected as
 * gw_diag entries (FILE:LINE:COL: message) in a gw_diags list owned by the caller
 * and printed once by the layer that decides what to do (main.c / gateway.c).
 */
#ifndef GW_ERR_H
#define GW_ERR_H

#include <stddef.h>
#include <stdio.h>

typedef enum gw_err {
    GW_OK = 0,
    GW_ERR_INVALID,   /* bad input: config, routing table, message content */
    GW_ERR_IO,        /* file or socket I/O */
    GW_ERR_USAGE,     /* bad command line */
    GW_ERR_BROKER,    /* broker refused or connection failed */
    GW_ERR_TRANSIENT, /* may succeed later: connection lost, timeout, nack */
    GW_ERR_PERMANENT, /* will never succeed: 404, 406, frame too large */
    GW_ERR_NOT_FOUND,
} gw_err;

/* Static text for an error code; never NULL. */
const char *gw_err_str(gw_err err);

typedef struct gw_diag {
    char *file; /* owned; may be NULL for messages with no location */
    int line;   /* 1-based; 0 = unknown */
    int col;    /* 1-based; 0 = unknown */
    char *msg;  /* owned */
} gw_diag;

typedef struct gw_diags {
    gw_diag *items;
    size_t n;
    size_t cap;
} gw_diags;

/* Appends a diagnostic (file may be NULL; line/col 1-based, 0 = unknown). */
void gw_diags_add(gw_diags *d, const char *file, int line, int col, const char *fmt, ...)
    __attribute__((format(printf, 5, 6)));

/* Prints one "FILE:LINE:COL: message" line per diagnostic, in the order added. */
void gw_diags_print(const gw_diags *d, FILE *out);

/* Formats diagnostic i as "FILE:LINE:COL: message" into buf (always NUL-terminated). */
void gw_diag_format(const gw_diag *d, char *buf, size_t len);

/* Frees the items; the struct itself is the caller's. Safe on a zeroed struct. */
void gw_diags_cleanup(gw_diags *d);

#endif
