/* live.h — `amqp-gw check --live`: the routing table compared with what the broker has.
 *
 * Plans the topology the gateway would declare for a loaded set (settings.h), connects,
 * and asks the broker, without declaring anything, whether it has each exchange, queue
 * and binding of the plan with the same arguments (topology.h; bindings through the
 * management API, mgmt.h). Called by commands.c after the offline check passed.
 */
#ifndef GW_LIVE_H
#define GW_LIVE_H

#include "settings.h"

#include <stdio.h>

/* Exit code of `check --live` when the broker could not be reached or the connection
 * failed during the check: nothing (more) was compared. Drift is 1, usage errors 2. */
#define GW_EXIT_UNREACHABLE 3

/* Connects and reports on out, one line per exchange/queue/binding of set's plan, whether
 * the broker has it and whether its arguments differ, then a summary line. Returns 0 in
 * sync, 1 drift, GW_EXIT_UNREACHABLE when it could not connect (one line on err) or the
 * session failed mid-way. */
int gw_live_check(const gw_settings *set, FILE *out, FILE *err);

#endif
