/* settings.h — the gateway config and its routing table, loaded, checked and swapped as one.
 *
 * gw_settings_load reads the config file (config.h), then the routing table it names
 * (routes.h, the config's retry policy filling what a route's retry: leaves out), then
 * checks the two against each other with gw_settings_check, so that what `run` would
 * refuse at the broker or loop on is a located error in `check`, a refusal to start
 * in `run` and a refused SIGHUP reload (the set in use keeps serving).
 *
 * A set is immutable and counted. The daemon holds the current set; every event it
 * routes holds the set it was routed with until the event is settled; a reload makes
 * a new set (gw_settings_reload: a new table, the same config) and drops the daemon's
 * reference to the old one, which is freed when the last of its events lets go of it,
 * however busy the gateway is. Called by gateway.c, replay.c and the CLI commands.
 * Never touches a broker, never logs; not thread-safe (the loop's thread only).
 */
#ifndef GW_SETTINGS_H
#define GW_SETTINGS_H

#include "config.h"
#include "err.h"
#include "routes.h"

typedef struct gw_topology gw_topology; /* topology.h */

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Read the fields freely; change a set only through the functions below. */
typedef struct gw_settings {
    const gw_config *cfg;              /* the same for every set of one run: a reload keeps it */
    const gw_routes *routes;           /* this set's table */
    unsigned generation;               /* 1 for the set loaded at start, +1 per reload */
    size_t refs;                       /* references held; the set is freed when the last goes */
    struct gw_settings_shared *shared; /* private: the config and its own count */
} gw_settings;

/* Loads the config at config_path, the routing table it names, and checks them
 * together. On success *out is a new set with one reference (the caller's). On
 * failure returns GW_ERR_INVALID or GW_ERR_IO with every problem in diags as
 * FILE:LINE:COL: message (the config's, the table's, then the cross-check's; the
 * table is read even when the config has errors, so that all of them show at once)
 * and *out untouched. */
gw_err gw_settings_load(const char *config_path, gw_settings **out, gw_diags *diags);

/* SIGHUP: loads the routing table cur's config names again and checks it against that
 * config. On success *out is a new set (one reference, the caller's) sharing cur's
 * config, generation cur->generation + 1; cur is not changed. On failure as
 * gw_settings_load, and cur stays as it is. */
gw_err gw_settings_reload(const gw_settings *cur, gw_settings **out, gw_diags *diags);

/* The cross-check, pure. Appends one located diagnostic per problem and returns their
 * number (0: the pair is consistent):
 * - two of the gateway's own queues (inbound, dead-letter, rejection `<prefix>.rejected`,
 *   retry tiers `<prefix>.retry.<delay>`) or exchanges (dead-letter, rejection) with the
 *   same name, e.g. inbound.queue equal to dead_letter.queue: the gateway would consume
 *   its own copies forever. Located at the config key that set the name;
 * - the table declaring one of those exchanges or queues with another type, flags or
 *   arguments than the gateway declares it with (see topology.h): the broker would
 *   refuse one of the two declarations. Located at the table's declaration;
 * - a route destination that is one of the gateway's own exchanges. Located at it. */
size_t gw_settings_check(const gw_config *cfg, const gw_routes *r, gw_diags *diags);

/* The distinct retry delays of cfg's policy and r's route overrides, ascending: the
 * tier queues the gateway declares. Same contract as gw_retry_tiers. */
size_t gw_settings_tiers(const gw_config *cfg, const gw_routes *r, uint64_t *out_ms,
                         size_t out_cap);

/* The topology the gateway declares for cfg and r (topology.h), one delay queue per retry
 * tier of gw_settings_tiers included: what the daemon declares, check cross-checks and
 * check --live compares with the broker. cfg and r are borrowed and must outlive it; free it with
 * gw_topology_free. Pure; aborts on OOM. */
gw_topology *gw_settings_plan(const gw_config *cfg, const gw_routes *r);

/* Takes one more reference to s and returns s (NULL stays NULL). */
gw_settings *gw_settings_ref(gw_settings *s);

/* Drops one reference; frees s (and the config when no other set shares it) when it
 * was the last. Returns true when s was freed. NULL is a no-op returning false. */
bool gw_settings_release(gw_settings *s);

#endif
