/* config.h — the gateway config (SPEC §4): YAML file -> immutable gw_config.
 *
 * gw_config_load reads and validates the file (schema table; unknown keys, wrong
 * types, bad ranges and bad durations are located errors), applies the environment
 * overrides AMQP_GW_URL / AMQP_GW_USER / AMQP_GW_PASSWORD, resolves paths relative
 * to the config file, and loads the routing table named by routes_file. Never
 * touches a broker. The result is immutable; reload builds a new one.
 */
#ifndef GW_CONFIG_H
#define GW_CONFIG_H

#include "breaker.h"
#include "classify.h"
#include "err.h"
#include "retry.h"

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

struct gw_routes;

typedef struct gw_config {
    char *path; /* the config file as given */

    char **broker_urls; /* >= 1; AMQP_GW_URL (comma-separated) replaces the YAML list */
    size_t n_broker_urls;
    char *user;           /* AMQP_GW_USER, or NULL (then the URL's user, else guest) */
    char *password;       /* AMQP_GW_PASSWORD, or NULL */
    uint32_t heartbeat_s; /* default 30 */
    gw_tls_config tls;

    char *inbound_queue; /* default gw.inbound */
    uint16_t prefetch;   /* default 500, 1..65535 */
    gw_type_source type_from[3];
    size_t n_type_from; /* default property, header, body */

    char *routes_file;        /* resolved against the config file's folder */
    struct gw_routes *routes; /* loaded by gw_config_load; owned */

    gw_retry_policy retry; /* default max_attempts 5, backoff [1s,5s,30s,2m] */
    char *dlx_exchange;    /* default gw.dlx */
    char *dlq_queue;       /* default gw.dlq */
    gw_breaker_config breaker;
    char *prefix;                 /* default gw */
    uint64_t shutdown_timeout_ms; /* default 10s */
    char *metrics_listen;         /* default 127.0.0.1:9464; "" disables */
    bool log_json;                /* log.format: json (default) | text */
    int log_level;                /* gw_log_level; default info */
} gw_config;

/* Loads path (and its routing table). On success *out is a new config the caller
 * frees with gw_config_free. On failure returns GW_ERR_INVALID (or GW_ERR_IO) with
 * every problem appended to diags as FILE:LINE:COL: message, and *out untouched. */
gw_err gw_config_load(const char *path, gw_config **out, gw_diags *diags);

/* Same, from memory; path is used for messages and relative paths; the routing
 * table is not loaded when load_routes is false (cfg->routes stays NULL). */
gw_err gw_config_parse(const char *path, const char *buf, size_t len, bool load_routes,
                       gw_config **out, gw_diags *diags);

void gw_config_free(gw_config *cfg);

#endif
