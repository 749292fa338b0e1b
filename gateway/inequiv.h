/* inequiv.h — a queue that exists otherwise: what RabbitMQ's refusal says, and how to learn
 * the existing queue's type from it (SPEC §7). Pure.
 *
 * RabbitMQ refuses a queue.declare whose flags or arguments differ from the existing
 * queue's with 406 PRECONDITION_FAILED, "inequivalent arg 'KEY' for queue 'Q' in vhost 'V':
 * received MINE but current is THEIRS", naming only the first key that differs in its own
 * order — x-message-ttl, x-dead-letter-*, x-overflow and others come before x-queue-type.
 * AMQP 0-9-1 cannot ask a queue's type, so a probe learns it: it declares the queue again
 * with each differing flag or argument as the broker says the queue has it, until the
 * broker either names x-queue-type (the types differ, and the refusal says the existing
 * one) or accepts (the types are the same: only other arguments differ). Each such
 * declaration only repeats what the queue has, so it changes nothing. The caller
 * (topology.c) sends the declarations; this module only reads refusals and decides.
 */
#ifndef GW_INEQUIV_H
#define GW_INEQUIV_H

#include "routes.h"

#include <stdbool.h>
#include <stddef.h>

typedef enum gw_inequiv_current {
    GW_INEQUIV_CUT,   /* the text does not say (RabbitMQ cuts a reply text at 255 bytes) */
    GW_INEQUIV_NONE,  /* "current is none": the queue has no such argument */
    GW_INEQUIV_VALUE, /* "current is 'V'" or "current is the value 'V' of type 'T'" */
} gw_inequiv_current;

typedef struct gw_inequiv {
    char key[64]; /* "x-queue-type", "x-overflow", "durable", "auto_delete", ... */
    gw_inequiv_current current;
    char value[256]; /* GW_INEQUIV_VALUE: as printed, without the quotes */
    char type[32];   /* GW_INEQUIV_VALUE: "longstr", "signedint", "bool", ...; "" when
                        the text leaves it out (the broker does when both sides have a
                        value, even of different types) */
} gw_inequiv;

/* Reads an "inequivalent arg" refusal anywhere in text (a session error such as
 * `declare queue "q": 406 PRECONDITION_FAILED - inequivalent arg ...`). False when text
 * holds none (another error: not found, access refused, a lost connection, ...). */
bool gw_inequiv_parse(const char *text, gw_inequiv *out);

#define GW_INEQUIV_MAX_ARGS 32

typedef enum gw_inequiv_step {
    GW_INEQUIV_AGAIN,   /* declare probe->decl and pass its refusal on (success: same type) */
    GW_INEQUIV_TYPE,    /* the types differ: probe->existing names the queue's type */
    GW_INEQUIV_UNKNOWN, /* the refusals do not tell: why says so */
} gw_inequiv_step;

/* A probe's state. Large (about 12 KiB): allocate it, or keep it off small stacks. */
typedef struct gw_inequiv_probe {
    const gw_queue_decl *planned; /* the refused declaration (borrowed) */
    gw_queue_decl decl; /* the next declaration: the planned one's name, type and bindings,
                           flags and arguments as learnt; args point into args[] */
    gw_arg args[GW_INEQUIV_MAX_ARGS];
    char keys[GW_INEQUIV_MAX_ARGS][64];    /* keys learnt from refusals */
    char values[GW_INEQUIV_MAX_ARGS][256]; /* string values learnt from refusals */
    unsigned tries[GW_INEQUIV_MAX_ARGS];   /* readings of a value tried for each arg */
    unsigned steps;
    char existing[32]; /* GW_INEQUIV_TYPE: "classic", "quorum", "stream", ...; "" when the
                          refusal was cut short before saying (the type differs anyway) */
} gw_inequiv_probe;

/* Starts a probe from the declaration the broker refused. q is borrowed (its name) for
 * the probe's life; at most GW_INEQUIV_MAX_ARGS arguments are kept (more: the first
 * step says UNKNOWN). */
void gw_inequiv_probe_init(gw_inequiv_probe *p, const gw_queue_decl *q);

/* Reads the refusal of the last declaration (the planned one first, then probe->decl)
 * and says what to do next. A bounded number of steps: a probe that does not converge
 * ends UNKNOWN. why (why_len > 0) is written for UNKNOWN only. */
gw_inequiv_step gw_inequiv_probe_next(gw_inequiv_probe *p, const char *refusal, char *why,
                                      size_t why_len);

#endif
