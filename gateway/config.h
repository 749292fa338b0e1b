/* config.h — the gateway config (SPEC §4): YAML file -> immutable gw_config.
 *
 * gw_config_load reads and validates the file (schema table; unknown keys, wrong
 * types, bad ranges and bad durations are located errors), applies the environment
 * overrides AMQP_GW_URL / AMQP_GW_USER / AMQP_GW_PASSWORD and resolves paths relative
 * to the config file. The routing table it names (routes_file) is loaded beside it
 * by settings.h, which also checks the two against each other. Never touches a
 * broker. The result is immutable.
 */
#ifndef GW_CONFIG_H
#define GW_CONFIG_H

#include "breaker.h"
#include "classify.h"
#include "copy.h"
#include "err.h"
#include "retry.h"
#include "routes.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef struct gw_tls_config {
    bool enabled;         /* true when a tls: block is present or a URL is amqps:// */
    char *ca_file;        /* absolute or relative to the config file (resolved); may be NULL */
    char *cert_file;      /* may be NULL */
    char *key_file;       /* may be NULL */
    bool verify_peer;     /* default true */
    bool verify_hostname; /* default true */
} gw_tls_config;

typedef struct gw_config {
    char *path; /* the config file as given */

    char **broker_urls; /* >= 1; AMQP_GW_URL (comma-separated) replaces the YAML list */
    size_t n_broker_urls;
    char *user;                      /* AMQP_GW_USER, or NULL (then the URL's user, else guest) */
    char *password;                  /* AMQP_GW_PASSWORD, or NULL */
    uint32_t heartbeat_s;            /* default 30 */
    uint64_t reconnect_max_delay_ms; /* default 5s: the longest wait between two rounds of URLs */
    gw_tls_config tls;

    char *inbound_queue; /* default gw.inbound */
    uint16_t prefetch;   /* default 500, 1..65535 */
    gw_type_source type_from[3];
    size_t n_type_from; /* default property, header, body */

    char *routes_file; /* resolved against the config file's folder */

    gw_retry_policy retry; /* default max_attempts 5, backoff [1s,5s,30s,2m] */
    char *dlx_exchange;    /* default gw.dlx */
    char *dlq_queue;       /* default gw.dlq */
    gw_breaker_config breaker;
    char *prefix;                       /* default gw */
    gw_queue_type queue_type;           /* default classic: the type of the gateway's own queues */
    gw_forward_headers forward_headers; /* default lean: x-gw-* headers on first copies too? */
    uint64_t shutdown_timeout_ms;       /* default 10s */
    char *metrics_listen;               /* default 127.0.0.1:9464; "" disables */
    bool log_json;                      /* log.format: json (default) | text */
    int log_level;                      /* gw_log_level; default info */

    struct gw_config_pos *positions; /* where the file set each option: gw_config_key_pos */
    size_t n_positions;
} gw_config;

/* Loads path (not the routing table: see settings.h). On success *out is a new
 * config the caller frees with gw_config_free. On failure returns GW_ERR_INVALID (or
 * GW_ERR_IO) with every problem appended to diags as FILE:LINE:COL: message, and
 * *out untouched. */
gw_err gw_config_load(const char *path, gw_config **out, gw_diags *diags);

/* As gw_config_load, but when the file is YAML with invalid values (GW_ERR_INVALID)
 * *out is still set, to what could be read (valid values, defaults for the rest), so
 * that the routing table it names can be read and its errors reported in the same
 * run (SPEC §3: all errors). The caller frees it and must not run with it. */
gw_err gw_config_load_partial(const char *path, gw_config **out, gw_diags *diags);

/* As gw_config_load, from memory; path is used for messages and relative paths. */
gw_err gw_config_parse(const char *path, const char *buf, size_t len, gw_config **out,
                       gw_diags *diags);

/* Where the file set key, written as in messages ("inbound.queue", "prefix"): sets
 * the 1-based *line and *col and returns true; false (outputs untouched) when the
 * key kept its default. For checks made after loading (settings.c). */
bool gw_config_key_pos(const gw_config *cfg, const char *key, int *line, int *col);

void gw_config_free(gw_config *cfg);

#endif
