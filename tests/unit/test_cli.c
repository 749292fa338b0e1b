/* test_cli.c — the built amqp-gw binary (GW_BINARY): subcommands, output and exit codes.
 *
 * Each test spawns the binary with posix_spawn, captures stdout and stderr through
 * pipes and waits at most CLI_TIMEOUT_MS for it. Paths are relative to the repo root
 * (CTest's working directory). Fixtures of its own live in tests/fixtures/cases/.
 */
#include <criterion/criterion.h>
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

extern char **environ;

#define CLI_TIMEOUT_MS 20000
#define CLI_MAX_OUTPUT (256 * 1024)
#define FIXTURE_CONFIG "tests/fixtures/cases/gw.yaml"
#define FIXTURE_ROUTES "tests/fixtures/cases/routes.yaml"
#define SHIPPED_CONFIG "config/amqp-gw.yaml"

typedef struct cli_result {
    int status; /* exit code; -1 when killed by a signal */
    char out[CLI_MAX_OUTPUT];
    size_t out_len;
    char err[CLI_MAX_OUTPUT];
    size_t err_len;
} cli_result;

static long long now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* The environment of this process without AMQP_GW_CONFIG, plus extra (NULL or
 * "NAME=value"). Static storage: one call per test process at a time. */
static char **child_env(const char *extra)
{
    static char *env[1024];
    size_t n = 0;
    for (char **e = environ; *e && n < 1022; e++)
        if (strncmp(*e, "AMQP_GW_CONFIG=", 15) != 0)
            env[n++] = *e;
    if (extra)
        env[n++] = (char *)extra;
    env[n] = NULL;
    return env;
}

static void drain(int fd, char *buf, size_t *len, int *open_fd)
{
    char tmp[4096];
    ssize_t n = read(fd, tmp, sizeof tmp);
    if (n > 0) {
        size_t room = CLI_MAX_OUTPUT - 1 - *len;
        size_t take = (size_t)n < room ? (size_t)n : room;
        memcpy(buf + *len, tmp, take);
        *len += take;
        buf[*len] = '\0';
    } else if (n == 0 || (errno != EINTR && errno != EAGAIN)) {
        close(fd);
        *open_fd = -1;
    }
}

/* Runs GW_BINARY with args (NULL-terminated, without argv[0]) and env_extra in the
 * environment; fills r. Fails the test if it cannot spawn or the child outlives
 * CLI_TIMEOUT_MS (it is then killed). */
static void run_env(cli_result *r, const char *env_extra, const char *const *args)
{
    char *argv[64];
    size_t n = 0;
    argv[n++] = (char *)GW_BINARY;
    for (; args[n - 1] && n < 63; n++)
        argv[n] = (char *)args[n - 1];
    argv[n] = NULL;

    int out_pipe[2], err_pipe[2];
    cr_assert_eq(pipe2(out_pipe, O_CLOEXEC), 0);
    cr_assert_eq(pipe2(err_pipe, O_CLOEXEC), 0);
    posix_spawn_file_actions_t fa;
    posix_spawn_file_actions_init(&fa);
    posix_spawn_file_actions_adddup2(&fa, out_pipe[1], STDOUT_FILENO);
    posix_spawn_file_actions_adddup2(&fa, err_pipe[1], STDERR_FILENO);
    posix_spawn_file_actions_addopen(&fa, STDIN_FILENO, "/dev/null", O_RDONLY, 0);
    pid_t pid;
    int rc = posix_spawn(&pid, GW_BINARY, &fa, NULL, argv, child_env(env_extra));
    posix_spawn_file_actions_destroy(&fa);
    close(out_pipe[1]);
    close(err_pipe[1]);
    cr_assert_eq(rc, 0, "cannot spawn %s: %s", GW_BINARY, strerror(rc));

    memset(r, 0, sizeof *r);
    int fds[2] = {out_pipe[0], err_pipe[0]};
    long long deadline = now_ms() + CLI_TIMEOUT_MS;
    bool timed_out = false;
    while (fds[0] >= 0 || fds[1] >= 0) {
        long long left = deadline - now_ms();
        if (left <= 0) {
            timed_out = true;
            break;
        }
        struct pollfd p[2] = {{fds[0], POLLIN, 0}, {fds[1], POLLIN, 0}};
        int ready = poll(p, 2, (int)left);
        if (ready < 0 && errno == EINTR)
            continue;
        cr_assert_geq(ready, 0, "poll: %s", strerror(errno));
        if (fds[0] >= 0 && (p[0].revents & (POLLIN | POLLHUP | POLLERR)))
            drain(fds[0], r->out, &r->out_len, &fds[0]);
        if (fds[1] >= 0 && (p[1].revents & (POLLIN | POLLHUP | POLLERR)))
            drain(fds[1], r->err, &r->err_len, &fds[1]);
    }
    int status = 0;
    while (!timed_out && waitpid(pid, &status, WNOHANG) == 0) {
        if (now_ms() >= deadline) {
            timed_out = true;
            break;
        }
        usleep(10 * 1000);
    }
    if (timed_out) {
        kill(pid, SIGKILL);
        waitpid(pid, &status, 0);
    }
    for (int i = 0; i < 2; i++)
        if (fds[i] >= 0)
            close(fds[i]);
    cr_assert_not(timed_out, "%s did not finish within %d ms", GW_BINARY, CLI_TIMEOUT_MS);
    r->status = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

#define RUN(r, ...) run_env((r), NULL, (const char *const[]){__VA_ARGS__, NULL})

static cli_result res;

/* Number of '\n'-terminated lines in s. */
static size_t count_lines(const char *s)
{
    size_t n = 0;
    for (; *s; s++)
        n += *s == '\n';
    return n;
}

/* True when every line of s starts "FILE:LINE:COL: " with LINE and COL > 0. */
static bool every_line_located(const char *s, const char *file)
{
    size_t flen = strlen(file);
    while (*s) {
        const char *end = strchr(s, '\n');
        if (!end)
            return false;
        if (strncmp(s, file, flen) != 0 || s[flen] != ':')
            return false;
        int line = 0, col = 0, used = 0;
        if (sscanf(s + flen + 1, "%d:%d: %n", &line, &col, &used) != 2 || used == 0 || line <= 0 ||
            col <= 0)
            return false;
        s = end + 1;
    }
    return true;
}

static void assert_usage_error(const char *want_err)
{
    cr_assert_eq(res.status, 2, "exit %d, stderr: %s", res.status, res.err);
    cr_assert_str_eq(res.err, want_err);
    cr_assert_eq(res.out_len, 0, "stdout: %s", res.out);
}

Test(cli, prints_its_version)
{
    RUN(&res, "--version");
    cr_assert_eq(res.status, 0);
    cr_assert_str_eq(res.out, "amqp-gw " GW_VERSION "\n");
    cr_assert_str_eq(res.out, "amqp-gw 0.1.0\n");
    cr_assert_eq(res.err_len, 0);
    RUN(&res, "explain", "--version");
    cr_assert_eq(res.status, 0);
    cr_assert_str_eq(res.out, "amqp-gw 0.1.0\n");
    RUN(&res, "replay", "--version");
    cr_assert_eq(res.status, 0);
    cr_assert_str_eq(res.out, "amqp-gw 0.1.0\n");
    RUN(&res, "replay", "--help");
    cr_assert_eq(res.status, 0);
}

Test(cli, prints_help_listing_every_command)
{
    RUN(&res, "--help");
    cr_assert_eq(res.status, 0);
    cr_assert(strncmp(res.out, "usage: amqp-gw <command>", 24) == 0, "%s", res.out);
    const char *cmds[] = {"\n  run -c FILE", "\n  check [--live] -c FILE",
                          "\n  explain -c FILE TYPE...", "\n  test -c FILE CASES.yaml"};
    for (size_t i = 0; i < sizeof cmds / sizeof cmds[0]; i++)
        cr_assert(strstr(res.out, cmds[i]) != NULL, "help lacks %s", cmds[i]);
    cr_assert_eq(res.err_len, 0);
}

Test(cli, prints_help_for_each_command_without_a_config)
{
    const char *cmds[] = {"run", "check", "explain", "test"};
    for (size_t i = 0; i < sizeof cmds / sizeof cmds[0]; i++) {
        RUN(&res, cmds[i], "--help");
        cr_assert_eq(res.status, 0, "%s --help exited %d", cmds[i], res.status);
        char want[64];
        snprintf(want, sizeof want, "usage: amqp-gw %s ", cmds[i]);
        cr_assert(strncmp(res.out, want, strlen(want)) == 0, "%s", res.out);
    }
}

Test(cli, rejects_an_unknown_command_with_one_line_and_exit_2)
{
    RUN(&res, "frobnicate");
    assert_usage_error("amqp-gw: unknown command 'frobnicate' (try 'amqp-gw --help')\n");
}

Test(cli, rejects_a_missing_command_with_exit_2)
{
    run_env(&res, NULL, (const char *const[]){NULL});
    assert_usage_error("amqp-gw: missing command (try 'amqp-gw --help')\n");
}

Test(cli, rejects_an_unknown_option_naming_the_command_help)
{
    RUN(&res, "explain", "--x", "-c", FIXTURE_CONFIG, "order.created");
    assert_usage_error("amqp-gw: unknown option '--x' (try 'amqp-gw explain --help')\n");
    RUN(&res, "--frob");
    assert_usage_error("amqp-gw: unknown option '--frob' (try 'amqp-gw --help')\n");
    RUN(&res, "explain", "--live", "-c", FIXTURE_CONFIG, "order.created");
    assert_usage_error("amqp-gw: unknown option '--live' (try 'amqp-gw explain --help')\n");
}

Test(cli, rejects_missing_arguments_with_exit_2)
{
    RUN(&res, "check");
    assert_usage_error("amqp-gw: missing -c FILE (or AMQP_GW_CONFIG) (try 'amqp-gw check "
                       "--help')\n");
    RUN(&res, "check", "-c");
    assert_usage_error("amqp-gw: option '-c' requires a file (try 'amqp-gw check --help')\n");
    RUN(&res, "explain", "-c", FIXTURE_CONFIG);
    assert_usage_error("amqp-gw: missing event type (try 'amqp-gw explain --help')\n");
    RUN(&res, "test", "-c", FIXTURE_CONFIG);
    assert_usage_error("amqp-gw: missing case file (try 'amqp-gw test --help')\n");
    RUN(&res, "check", "-c", FIXTURE_CONFIG, "extra");
    assert_usage_error("amqp-gw: unexpected argument 'extra' (try 'amqp-gw check --help')\n");
}

Test(cli, takes_the_config_from_AMQP_GW_CONFIG_when_c_is_omitted)
{
    run_env(&res, "AMQP_GW_CONFIG=" FIXTURE_CONFIG, (const char *const[]){"check", NULL});
    cr_assert_eq(res.status, 0, "stderr: %s", res.err);
    cr_assert(strncmp(res.out, FIXTURE_CONFIG ": ok (", strlen(FIXTURE_CONFIG) + 6) == 0, "%s",
              res.out);
}

Test(cli, checks_the_shipped_config_and_routing_table)
{
    RUN(&res, "check", "-c", SHIPPED_CONFIG);
    cr_assert_eq(res.status, 0, "stderr: %s", res.err);
    cr_assert(strncmp(res.out, SHIPPED_CONFIG ": ok (", strlen(SHIPPED_CONFIG) + 6) == 0, "%s",
              res.out);
    cr_assert(strstr(res.out, "routes/example.yaml: ") != NULL, "%s", res.out);
    cr_assert_eq(res.err_len, 0, "stderr: %s", res.err);
}

Test(cli, summarises_a_valid_table_and_notes_undeclared_exchanges)
{
    RUN(&res, "check", "--config", FIXTURE_CONFIG);
    cr_assert_eq(res.status, 0, "stderr: %s", res.err);
    cr_assert_str_eq(res.out, FIXTURE_CONFIG
                     ": ok (" FIXTURE_ROUTES ": 2 exchanges, 1 queue, 5 routes)\n"
                     "note: exchange \"legacy.payments\" (route \"payment.#\", " FIXTURE_ROUTES
                     ":25) is not declared by the table; it must already exist on the "
                     "broker\n");
    cr_assert_eq(res.err_len, 0, "stderr: %s", res.err);
}

Test(cli, reports_every_config_error_located_and_exits_1)
{
    RUN(&res, "check", "-c", "tests/fixtures/cases/broken-config.yaml");
    cr_assert_eq(res.status, 1, "stdout: %s", res.out);
    cr_assert_eq(res.out_len, 0, "stdout: %s", res.out);
    cr_assert_eq(count_lines(res.err), 4, "stderr: %s", res.err);
    cr_assert(every_line_located(res.err, "tests/fixtures/cases/broken-config.yaml"), "%s",
              res.err);
    const char *at[] = {":6:3: ", ":9:17: ", ":10:19: ", ":11:1: "};
    for (size_t i = 0; i < sizeof at / sizeof at[0]; i++)
        cr_assert(strstr(res.err, at[i]) != NULL, "no error at %s in: %s", at[i], res.err);
}

Test(cli, reports_every_routing_table_error_located_and_exits_1)
{
    RUN(&res, "check", "-c", "tests/fixtures/cases/broken-routes-gw.yaml");
    cr_assert_eq(res.status, 1, "stdout: %s", res.out);
    cr_assert_eq(res.out_len, 0, "stdout: %s", res.out);
    cr_assert_eq(count_lines(res.err), 5, "stderr: %s", res.err);
    cr_assert(every_line_located(res.err, "tests/fixtures/cases/broken-routes.yaml"), "%s",
              res.err);
    const char *at[] = {":5:25: ", ":9:20: ", ":11:12: ", ":14:5: ", ":15:5: "};
    for (size_t i = 0; i < sizeof at / sizeof at[0]; i++)
        cr_assert(strstr(res.err, at[i]) != NULL, "no error at %s in: %s", at[i], res.err);
}

/* What run would loop on or see refused by the broker is refused before it connects. */
Test(cli, check_and_run_refuse_an_inbound_queue_that_is_the_dlq)
{
    static const char config[] = "tests/fixtures/invalid/inbound_queue_is_the_dlq.yaml";
    const char *cmds[] = {"check", "run"};
    for (size_t i = 0; i < sizeof cmds / sizeof cmds[0]; i++) {
        RUN(&res, cmds[i], "-c", config);
        cr_assert_eq(res.status, 1, "%s: stdout: %s", cmds[i], res.out);
        cr_assert_eq(count_lines(res.err), 1, "%s: stderr: %s", cmds[i], res.err);
        cr_assert(every_line_located(res.err, config), "%s: %s", cmds[i], res.err);
        cr_assert(strstr(res.err, ":5:10: inbound.queue: ") != NULL, "%s: %s", cmds[i], res.err);
    }
}

Test(cli, reports_a_missing_config_file_and_exits_1)
{
    RUN(&res, "check", "-c", "tests/fixtures/cases/no-such-config.yaml");
    cr_assert_eq(res.status, 1);
    cr_assert_eq(count_lines(res.err), 1, "stderr: %s", res.err);
    cr_assert(strncmp(res.err, "tests/fixtures/cases/no-such-config.yaml: ", 42) == 0, "%s",
              res.err);
}

Test(cli, explains_an_exact_route_with_its_fan_out_and_default_retry)
{
    RUN(&res, "explain", "-c", FIXTURE_CONFIG, "order.created");
    cr_assert_eq(res.status, 0, "stderr: %s", res.err);
    cr_assert_str_eq(res.out, "order.created\n"
                              "  route     order.created (exact, " FIXTURE_ROUTES ":13)\n"
                              "  -> orders  routing key order.created (the event type)\n"
                              "  -> audit   routing key order.created (the event type)\n"
                              "  retry     up to 3 retries, backoff 1s 30s, then dead-letter "
                              "(default)\n");
    cr_assert_eq(res.err_len, 0);
}

Test(cli, explains_a_pattern_route_with_its_retry_override)
{
    RUN(&res, "explain", "-c", FIXTURE_CONFIG, "order.shipped");
    cr_assert_eq(res.status, 0, "stderr: %s", res.err);
    cr_assert_str_eq(res.out, "order.shipped\n"
                              "  route     order.* (pattern, " FIXTURE_ROUTES ":17)\n"
                              "  -> orders  routing key order.shipped (the event type)\n"
                              "  retry     up to 1 retry, backoff 250ms, then dead-letter "
                              "(route override)\n");
}

Test(cli, explains_the_contract_of_the_route_that_matches)
{
    RUN(&res, "explain", "-c", FIXTURE_CONFIG, "invoice.paid");
    cr_assert_eq(res.status, 0, "stderr: %s", res.err);
    cr_assert_str_eq(res.out, "invoice.paid\n"
                              "  route     invoice.* (pattern, " FIXTURE_ROUTES ":30)\n"
                              "  -> audit  routing key invoice.paid (the event type)\n"
                              "  retry     up to 3 retries, backoff 1s 30s, then dead-letter "
                              "(default)\n"
                              "  contract  require \"/id\", \"/data/invoice_id\" (string); "
                              "versions 1, 2 from header:x-event-version (else dead-letter: "
                              "invalid_event)\n");
}

Test(cli, explains_several_types_including_no_route_and_invalid_ones)
{
    RUN(&res, "explain", "-c", FIXTURE_CONFIG, "payment.card.refunded", "nothing.here", "bad..type",
        "order.cancelled");
    cr_assert_eq(res.status, 0, "stderr: %s", res.err);
    cr_assert_str_eq(res.out,
                     "payment.card.refunded\n"
                     "  route     payment.# (pattern, " FIXTURE_ROUTES ":25)\n"
                     "  -> legacy.payments  routing key payments\n"
                     "  retry     none, dead-letter on the first failure (route override)\n"
                     "nothing.here: no route -> dead-letter (no_route)\n"
                     "bad..type: invalid event type -> dead-letter (invalid_event)\n"
                     "order.cancelled\n"
                     "  route     order.cancelled (exact, " FIXTURE_ROUTES ":21)\n"
                     "  -> audit  routing key cancellations\n"
                     "  retry     up to 3 retries, backoff 1s 30s, then dead-letter (default)\n");
}

Test(cli, explain_escapes_control_bytes_of_an_invalid_type)
{
    RUN(&res, "explain", "-c", FIXTURE_CONFIG, "evil\ntype\x1b[31m");
    cr_assert_eq(res.status, 0);
    cr_assert_str_eq(res.out, "evil\\x0atype\\x1b[31m: invalid event type -> dead-letter "
                              "(invalid_event)\n");
}

Test(cli, explain_exits_1_on_an_invalid_config)
{
    RUN(&res, "explain", "-c", "tests/fixtures/cases/broken-config.yaml", "order.created");
    cr_assert_eq(res.status, 1);
    cr_assert_eq(res.out_len, 0);
    cr_assert(every_line_located(res.err, "tests/fixtures/cases/broken-config.yaml"), "%s",
              res.err);
}

Test(cli, explains_types_of_the_shipped_example)
{
    RUN(&res, "explain", "-c", SHIPPED_CONFIG, "order.created", "no.such.event.type.here");
    cr_assert_eq(res.status, 0, "stderr: %s", res.err);
    const char *head = "order.created\n  route     order.created (exact, ";
    cr_assert(strncmp(res.out, head, strlen(head)) == 0, "%s", res.out);
    cr_assert(strstr(res.out, "no.such.event.type.here: no route -> dead-letter (no_route)\n"),
              "%s", res.out);
}

Test(cli, passes_the_shipped_example_cases)
{
    RUN(&res, "test", "-c", SHIPPED_CONFIG, "routes/example.cases.yaml");
    cr_assert_eq(res.status, 0, "stdout: %s\nstderr: %s", res.out, res.err);
    cr_assert(strstr(res.out, "FAIL") == NULL, "%s", res.out);
    cr_assert(strstr(res.out, " passed, 0 failed\n") != NULL, "%s", res.out);
    cr_assert_eq(res.err_len, 0, "stderr: %s", res.err);
}

Test(cli, passes_cases_and_prints_a_line_per_case)
{
    RUN(&res, "test", "-c", FIXTURE_CONFIG, "tests/fixtures/cases/fixture.cases.yaml");
    cr_assert_eq(res.status, 0, "stdout: %s\nstderr: %s", res.out, res.err);
    cr_assert_str_eq(res.out, "PASS order created fans out to orders and audit\n"
                              "PASS order.shipped\n"
                              "PASS exact beats pattern\n"
                              "PASS payments go to the legacy exchange\n"
                              "PASS nothing.here\n"
                              "PASS a type with an empty word is invalid\n"
                              "PASS an invoice that keeps its contract\n"
                              "PASS an invoice without its id is dead-lettered\n"
                              "8 passed, 0 failed\n");
}

Test(cli, fails_cases_with_a_diff_and_exits_1)
{
    RUN(&res, "test", "-c", FIXTURE_CONFIG, "tests/fixtures/cases/failing.cases.yaml");
    cr_assert_eq(res.status, 1, "stderr: %s", res.err);
    cr_assert_str_eq(res.out,
                     "PASS order.created\n"
                     "FAIL shipped also goes to audit: expected orders/order.shipped + "
                     "audit/order.shipped, got orders/order.shipped (missing "
                     "audit/order.shipped)\n"
                     "FAIL order.cancelled: expected route order.*, got route order.cancelled\n"
                     "FAIL order.paid: expected dead-letter (no_route), got route order.* -> "
                     "orders/order.paid\n"
                     "1 passed, 3 failed\n");
    cr_assert_eq(res.err_len, 0, "stderr: %s", res.err);
}

Test(cli, rejects_an_invalid_case_file_before_running_any_case)
{
    RUN(&res, "test", "-c", FIXTURE_CONFIG, "tests/fixtures/cases/invalid.cases.yaml");
    cr_assert_eq(res.status, 1);
    cr_assert_eq(res.out_len, 0, "no case may run: %s", res.out);
    cr_assert_str_eq(res.err,
                     "tests/fixtures/cases/invalid.cases.yaml:6:5: case \"order.created\": "
                     "unknown key \"expected\" (did you mean \"expect\"?)\n"
                     "tests/fixtures/cases/invalid.cases.yaml:5:5: case "
                     "\"order.created\": needs expect: (destinations, no_route or "
                     "invalid_event) or route: (the route that must match)\n"
                     "tests/fixtures/cases/invalid.cases.yaml:7:5: case \"no event\": "
                     "missing required key \"event\"\n"
                     "tests/fixtures/cases/invalid.cases.yaml:11:9: case \"order.paid\": "
                     "expect[0]: missing required key \"exchange\"\n");
}

Test(cli, test_reports_a_missing_case_file_and_exits_1)
{
    RUN(&res, "test", "-c", FIXTURE_CONFIG, "tests/fixtures/cases/none.cases.yaml");
    cr_assert_eq(res.status, 1);
    cr_assert_eq(res.out_len, 0);
    cr_assert(strncmp(res.err, "tests/fixtures/cases/none.cases.yaml: cannot open: ", 51) == 0,
              "%s", res.err);
}

Test(cli, check_and_run_refuse_a_broker_url_with_a_bad_port_in_one_line)
{
    const char *env = "AMQP_GW_URL=amqp://localhost:notaport/";
    const char *want = "AMQP_GW_URL: URL 1 has a bad port: what follows \"localhost:\" is not a "
                       "number from 1 to 65535 (a password goes in user:password@host)\n";
    const char *cmds[] = {"check", "run"};
    for (size_t i = 0; i < sizeof cmds / sizeof cmds[0]; i++) {
        run_env(&res, env, (const char *const[]){cmds[i], "-c", FIXTURE_CONFIG, NULL});
        cr_assert_eq(res.status, 1, "%s exited %d: %s", cmds[i], res.status, res.err);
        cr_assert_str_eq(res.err, want, "%s", cmds[i]);
    }
}

Test(cli, check_warns_about_a_table_with_no_routes_and_still_passes)
{
    RUN(&res, "check", "-c", "tests/fixtures/cases/no-routes-gw.yaml");
    cr_assert_eq(res.status, 0, "stderr: %s", res.err);
    cr_assert_str_eq(res.err, "tests/fixtures/cases/no-routes.yaml: warning: the routing table has "
                              "no routes: every event will be dead-lettered (no_route)\n");
}

Test(cli, replay_help_gives_each_option_a_default_and_lists_the_exit_codes)
{
    RUN(&res, "replay", "--help");
    cr_assert_eq(res.status, 0);
    static const char *const opts[] = {"-c, --config", "--queue",      "--type",  "--reason",
                                       "--route",      "--since",      "--limit", "--rate",
                                       "--to",         "--max-replays"};
    for (size_t i = 0; i < sizeof opts / sizeof opts[0]; i++) {
        char at[32];
        snprintf(at, sizeof at, "\n  %s ", opts[i]);
        const char *start = strstr(res.out, at);
        cr_assert_not_null(start, "%s is not listed:\n%s", opts[i], res.out);
        const char *end = strstr(start + 1, "\n  -");
        cr_assert_not_null(end);
        const char *def = strstr(start, "(default: ");
        cr_assert(def && def < end, "%s has no default:\n%s", opts[i], res.out);
    }
    static const char *const want[] = {"ms s m h",      "per second",
                                       "exit codes: 0", "1 failure",
                                       "2 usage error", "O over --limit, F failed), failed F"};
    for (size_t i = 0; i < sizeof want / sizeof want[0]; i++)
        cr_assert_not_null(strstr(res.out, want[i]), "no \"%s\" in:\n%s", want[i], res.out);
}
