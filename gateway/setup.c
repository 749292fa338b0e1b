/* setup.c — the set-up every subcommand shares: common options, settings, logging,
 * signal flags, the broker connection.
 *
 * Owns the signal handlers: each only sets the flag its caller registered. Prints the
 * one-line messages of a failed set-up; the callers decide the exit code. Knows no
 * subcommand: main.c, gateway.c, commands.c, live.c and replay.c call it, never the
 * other way round.
 */
#include "setup.h"

#include "log.h"

#include <stdarg.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

/* A handler may read only lock-free atomics (C11 7.14.1.1): the flag pointers are such. */
_Static_assert(ATOMIC_POINTER_LOCK_FREE == 2, "signal handlers read the flag pointers");
static _Atomic(volatile sig_atomic_t *) stop_flag;
static _Atomic(volatile sig_atomic_t *) reload_flag;

static void on_stop_signal(int sig)
{
    (void)sig;
    volatile sig_atomic_t *f = atomic_load(&stop_flag);
    if (f)
        *f = 1;
}

static void on_reload_signal(int sig)
{
    (void)sig;
    volatile sig_atomic_t *f = atomic_load(&reload_flag);
    if (f)
        *f = 1;
}

int gw_setup_usage_error(const char *who, const char *cmd, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    fprintf(stderr, "%s: ", who);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fprintf(stderr, " (try 'amqp-gw%s%s --help')\n", cmd ? " " : "", cmd ? cmd : "");
    return GW_EXIT_USAGE;
}

bool gw_setup_answer(bool help, bool version, const char *usage, FILE *out)
{
    if (help)
        fputs(usage, out);
    else if (version)
        fprintf(out, "amqp-gw %s\n", GW_VERSION);
    return help || version;
}

gw_err gw_setup_config_path(const char *given, const char **path, char *err, size_t err_len)
{
    if (given && given[0] == '\0') {
        snprintf(err, err_len, "empty config path");
        return GW_ERR_USAGE;
    }
    if (!given) {
        given = getenv("AMQP_GW_CONFIG");
        if (!given || given[0] == '\0') {
            snprintf(err, err_len, "missing -c FILE (or AMQP_GW_CONFIG)");
            return GW_ERR_USAGE;
        }
    }
    *path = given;
    return GW_OK;
}

gw_settings *gw_setup_load(const char *config_path, FILE *err)
{
    gw_settings *set = NULL;
    gw_diags diags = {0};
    gw_settings_load(config_path, &set, &diags);
    gw_diags_print(&diags, err);
    gw_diags_cleanup(&diags);
    return set;
}

void gw_setup_logging(const gw_config *cfg)
{
    gw_log_min_level = (gw_log_level)cfg->log_level;
    gw_log_set_text(!cfg->log_json);
}

void gw_setup_signals(volatile sig_atomic_t *stop, volatile sig_atomic_t *reload)
{
    atomic_store(&stop_flag, stop);
    atomic_store(&reload_flag, reload);
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sigemptyset(&sa.sa_mask);
    sa.sa_handler = on_stop_signal;
    sigaction(SIGTERM, &sa, NULL);
    sigaction(SIGINT, &sa, NULL);
    if (reload) {
        sa.sa_handler = on_reload_signal;
        sigaction(SIGHUP, &sa, NULL);
    }
}

gw_session *gw_setup_connect(const gw_config *cfg, const char *who, const char *conn_name,
                             char *url_out, size_t url_len, FILE *err)
{
    char why[512];
    gw_session *s = NULL;
    if (gw_session_connect_any(cfg, conn_name, &s, url_out, url_len, why, sizeof why) != GW_OK) {
        fprintf(err, "%s: cannot connect to the broker (%s): %s\n", who, url_out, why);
        return NULL;
    }
    return s;
}
