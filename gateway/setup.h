/* setup.h — what every subcommand sets up before its own work: the common options of argv,
 * the settings, logging, signal flags and the broker connection.
 *
 * run (gateway.c), check, explain and test (commands.c), check --live (live.c), replay
 * (replay.c) and main.c share these, so each answers --help and --version, finds its config
 * and reports a broken config or an unreachable broker the same way. Messages are one line
 * each, starting with `who`: "amqp-gw", or "amqp-gw replay" for replay's own. Nothing here
 * exits: callers return the exit code to main.c.
 */
#ifndef GW_SETUP_H
#define GW_SETUP_H

#include "config.h"
#include "err.h"
#include "session.h"
#include "settings.h"

#include <signal.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>

/* Exit code of every usage error (a bad command line). */
#define GW_EXIT_USAGE 2

/* Prints "WHO: MESSAGE (try 'amqp-gw CMD --help')" on stderr (without " CMD" when cmd is
 * NULL: the top-level help) and returns GW_EXIT_USAGE. */
int gw_setup_usage_error(const char *who, const char *cmd, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* --help and --version: prints usage (help wins) or "amqp-gw VERSION" on out and returns
 * true; false when neither was asked for. */
bool gw_setup_answer(bool help, bool version, const char *usage, FILE *out);

/* The config file: given (the -c / --config value, or NULL), else $AMQP_GW_CONFIG when set
 * and not empty. Returns GW_OK with *path set (borrowed from the argument or the
 * environment), or GW_ERR_USAGE with a one-line message in err: "empty config path" for an
 * empty given, "missing -c FILE (or AMQP_GW_CONFIG)" when there is none. */
gw_err gw_setup_config_path(const char *given, const char **path, char *err, size_t err_len);

/* Loads the config at config_path and its routing table (gw_settings_load) and prints every
 * diagnostic on err as FILE:LINE:COL: message. Returns the new set (one reference, the
 * caller's), or NULL when it is invalid or unreadable. */
gw_settings *gw_setup_load(const char *config_path, FILE *err);

/* Applies the config's log level and format (JSON or text) to log.h. */
void gw_setup_logging(const gw_config *cfg);

/* Installs the stop handler on SIGTERM and SIGINT, and the reload handler on SIGHUP when
 * reload is not NULL (else SIGHUP keeps its default action). A handler only sets its flag
 * to 1; the caller reads and clears the flags. The flags must live as long as the
 * process (static storage). */
void gw_setup_signals(volatile sig_atomic_t *stop, volatile sig_atomic_t *reload);

/* Connects to the first of cfg's broker URLs that answers (gw_session_connect_any), naming
 * the connection conn_name on the broker. url_out receives that URL (or the last one tried)
 * with any password redacted. Returns the session, or NULL after printing
 * "WHO: cannot connect to the broker (URL): WHY" on err. */
gw_session *gw_setup_connect(const gw_config *cfg, const char *who, const char *conn_name,
                             char *url_out, size_t url_len, FILE *err);

#endif
