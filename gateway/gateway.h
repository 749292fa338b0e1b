/* gateway.h — the daemon: owns config, routes, sessions and breakers; runs the loop.
 *
 * Data flows one way: consume -> classify -> route -> publish -> confirm -> ack.
 * Called by main.c only.
 */
#ifndef GW_GATEWAY_H
#define GW_GATEWAY_H

/* `amqp-gw run -c FILE`: loads the config and its table (settings.h), connects, declares topology
 * and forwards until SIGTERM/SIGINT. Returns the process exit code (0 after a clean shutdown, 1
 * when it could not start). */
int gw_gateway_run(const char *config_path);

#endif
