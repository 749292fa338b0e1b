/* gateway.h — the daemon: owns config, routes, sessions and breakers; runs the loop.
 *
 * Data flows one way: consume -> classify -> route -> publish -> confirm -> ack.
 * Called by main.c only.
 */
#ifndef GW_GATEWAY_H
#define GW_GATEWAY_H

#include "settings.h"

/* `amqp-gw run -c FILE`: loads the config and its table (settings.h), connects, declares topology and forwards
 * until SIGTERM/SIGINT. Returns the process exit code (0 after a clean shutdown,
 * 1 when it could not start). */
int gw_gateway_run(const char *config_path);

/* Exit code of `check --live` when the broker could not be reached or the connection
 * failed during the check: nothing (more) was compared. Drift is 1, usage errors 2. */
#define GW_EXIT_UNREACHABLE 3

/* `amqp-gw check --live`: connects and reports, per exchange/queue/binding of the
 * table, whether the broker has it and whether its arguments differ. Writes the
 * report to stdout. Returns 0 in sync, 1 drift, GW_EXIT_UNREACHABLE when it could not
 * connect (one line on stderr) or the session failed mid-way. */
int gw_gateway_check_live(const gw_settings *set);

#endif
