/* main.c — amqp-gw's entry point: argv, subcommands, exit codes.
 *
 * Parses the command line, picks the subcommand and hands over to gateway.c (run),
 * commands.c (check, explain, test; check --live through live.c) or replay.c (replay). The
 * options every subcommand shares (--help, --version, -c and AMQP_GW_CONFIG) are answered
 * through setup.c, as replay answers them. Usage errors exit 2 with one line naming the
 * problem and the --help to read. Nothing here is worth unit testing: tests/unit/test_cli.c
 * drives the built binary instead.
 */
#include "alloc.h"
#include "commands.h"
#include "gateway.h"
#include "replay.h"
#include "setup.h"

#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char usage_main[] =
    "usage: amqp-gw <command> [options]\n"
    "\n"
    "A RabbitMQ routing gateway: republishes domain events from one inbound queue to the\n"
    "exchanges a YAML routing table names, with retries and a dead-letter queue.\n"
    "\n"
    "commands:\n"
    "  run -c FILE                   run the gateway in the foreground\n"
    "  check [--live] -c FILE        validate the config and routing table (--live: compare\n"
    "                                the table with what the broker has)\n"
    "  explain -c FILE TYPE...       show where events of each type would go\n"
    "  test -c FILE CASES.yaml       check a routing table against test cases\n"
    "  replay -c FILE [options]      move dead-lettered events back (amqp-gw replay --help)\n"
    "\n"
    "options:\n"
    "  -c, --config FILE             gateway config (default: $AMQP_GW_CONFIG)\n"
    "  -h, --help                    show help (also: amqp-gw <command> --help)\n"
    "  --version                     show the version\n"
    "\n"
    "exit codes: 0 ok, 1 failure (invalid config, failed case, drift), 2 usage error,\n"
    "            3 check --live could not reach the broker\n";

static const char usage_run[] =
    "usage: amqp-gw run -c FILE\n"
    "\n"
    "Runs the gateway in the foreground until SIGTERM or SIGINT; SIGHUP reloads the\n"
    "routing table. Logs go to stderr.\n"
    "\n"
    "options:\n"
    "  -c, --config FILE   gateway config (default: $AMQP_GW_CONFIG)\n"
    "  -h, --help          show this help\n"
    "  --version           show the version\n"
    "\n"
    "exit codes: 0 after a clean shutdown, 1 when it could not start, 2 usage error\n";

static const char usage_check[] =
    "usage: amqp-gw check [--live] -c FILE\n"
    "\n"
    "Validates the config and its routing table without touching a broker; prints every\n"
    "problem as FILE:LINE:COL: message. With --live it also connects and reports, per\n"
    "exchange, queue and binding of the table, whether the broker has it and whether its\n"
    "arguments differ.\n"
    "\n"
    "options:\n"
    "  -c, --config FILE   gateway config (default: $AMQP_GW_CONFIG)\n"
    "  --live              also compare with the broker\n"
    "  -h, --help          show this help\n"
    "  --version           show the version\n"
    "\n"
    "exit codes: 0 valid (and in sync), 1 invalid (or drift), 2 usage error,\n"
    "            3 --live could not reach the broker (or lost it during the check)\n";

static const char usage_explain[] =
    "usage: amqp-gw explain -c FILE TYPE...\n"
    "\n"
    "Prints, for each event type, the route that matches, each destination exchange and\n"
    "routing key, and the retry policy; or that the event would be dead-lettered.\n"
    "\n"
    "options:\n"
    "  -c, --config FILE   gateway config (default: $AMQP_GW_CONFIG)\n"
    "  -h, --help          show this help\n"
    "  --version           show the version\n"
    "  --                  end of options (for types that start with '-')\n"
    "\n"
    "exit codes: 0 explained, 1 invalid config, 2 usage error\n";

static const char usage_test[] =
    "usage: amqp-gw test -c FILE CASES.yaml\n"
    "\n"
    "Runs routing-table test cases: each case gives an event type and the destinations it\n"
    "must reach (or no_route / invalid_event), optionally the route that must match.\n"
    "Prints PASS or FAIL per case and a summary. Format: see routes/example.cases.yaml.\n"
    "\n"
    "options:\n"
    "  -c, --config FILE   gateway config (default: $AMQP_GW_CONFIG)\n"
    "  -h, --help          show this help\n"
    "  --version           show the version\n"
    "\n"
    "exit codes: 0 all cases pass, 1 a case fails or a file is invalid, 2 usage error\n";

enum command { CMD_RUN, CMD_CHECK, CMD_EXPLAIN, CMD_TEST };

static const struct {
    const char *name;
    enum command cmd;
    const char *usage;
} commands[] = {
    {"run", CMD_RUN, usage_run},
    {"check", CMD_CHECK, usage_check},
    {"explain", CMD_EXPLAIN, usage_explain},
    {"test", CMD_TEST, usage_test},
};

/* The parsed command line of one subcommand. */
struct args {
    const char *config; /* NULL until -c or AMQP_GW_CONFIG */
    bool live;
    bool help;
    bool version;
    char **pos; /* positional arguments, in order (points into argv) */
    int n_pos;
};

/* Parses argv[first..argc) of subcommand cmd into a; options and positionals may
 * mix, "--" ends options. Returns 0, or the usage exit code after printing the line. */
static int parse_args(const char *name, enum command cmd, int argc, char **argv, int first,
                      struct args *a)
{
    bool options_done = false;
    for (int i = first; i < argc; i++) {
        char *arg = argv[i];
        if (options_done || arg[0] != '-' || arg[1] == '\0') {
            a->pos[a->n_pos++] = arg;
            continue;
        }
        if (strcmp(arg, "--") == 0) {
            options_done = true;
        } else if (strcmp(arg, "-h") == 0 || strcmp(arg, "--help") == 0) {
            a->help = true;
        } else if (strcmp(arg, "--version") == 0) {
            a->version = true;
        } else if (strcmp(arg, "-c") == 0 || strcmp(arg, "--config") == 0) {
            if (i + 1 >= argc)
                return gw_setup_usage_error("amqp-gw", name, "option '%s' requires a file", arg);
            a->config = argv[++i];
        } else if (strncmp(arg, "--config=", 9) == 0) {
            a->config = arg + 9;
        } else if (strcmp(arg, "--live") == 0 && cmd == CMD_CHECK) {
            a->live = true;
        } else {
            return gw_setup_usage_error("amqp-gw", name, "unknown option '%s'", arg);
        }
    }
    return 0;
}

/* Runs the parsed subcommand; returns the exit code. */
static int dispatch(const char *name, enum command cmd, const char *usage, struct args *a)
{
    if (gw_setup_answer(a->help, a->version, usage, stdout))
        return 0;
    char err[128];
    if (gw_setup_config_path(a->config, &a->config, err, sizeof err) != GW_OK)
        return gw_setup_usage_error("amqp-gw", name, "%s", err);
    switch (cmd) {
    case CMD_RUN:
        if (a->n_pos > 0)
            return gw_setup_usage_error("amqp-gw", name, "unexpected argument '%s'", a->pos[0]);
        return gw_gateway_run(a->config);
    case CMD_CHECK:
        if (a->n_pos > 0)
            return gw_setup_usage_error("amqp-gw", name, "unexpected argument '%s'", a->pos[0]);
        return gw_commands_check(a->config, a->live, stdout, stderr);
    case CMD_EXPLAIN:
        if (a->n_pos == 0)
            return gw_setup_usage_error("amqp-gw", name, "missing event type");
        return gw_commands_explain(a->config, a->pos, (size_t)a->n_pos, stdout, stderr);
    case CMD_TEST:
        if (a->n_pos == 0)
            return gw_setup_usage_error("amqp-gw", name, "missing case file");
        if (a->n_pos > 1)
            return gw_setup_usage_error("amqp-gw", name, "unexpected argument '%s'", a->pos[1]);
        return gw_commands_test(a->config, a->pos[0], stdout, stderr);
    }
    return GW_EXIT_USAGE;
}

int main(int argc, char **argv)
{
    if (argc < 2)
        return gw_setup_usage_error("amqp-gw", NULL, "missing command");

    const char *name = argv[1];
    bool help = strcmp(name, "-h") == 0 || strcmp(name, "--help") == 0 || strcmp(name, "help") == 0;
    bool version = strcmp(name, "--version") == 0 || strcmp(name, "-V") == 0;
    if (gw_setup_answer(help, version, usage_main, stdout))
        return 0;
    if (name[0] == '-')
        return gw_setup_usage_error("amqp-gw", NULL, "unknown option '%s'", name);
    if (strcmp(name, "replay") == 0) /* replay has options of its own */
        return gw_replay_main(argc - 1, argv + 1);

    size_t k = 0;
    while (k < sizeof commands / sizeof commands[0] && strcmp(commands[k].name, name) != 0)
        k++;
    if (k == sizeof commands / sizeof commands[0])
        return gw_setup_usage_error("amqp-gw", NULL, "unknown command '%s'", name);

    struct args a = {.pos = gw_xcalloc((size_t)argc, sizeof(char *))};
    int rc = parse_args(name, commands[k].cmd, argc, argv, 2, &a);
    if (rc == 0)
        rc = dispatch(name, commands[k].cmd, commands[k].usage, &a);
    free(a.pos);
    return rc;
}
