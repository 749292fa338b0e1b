/* test_setup.c — the set-up every subcommand shares (setup.c): the config path, --help and
 * --version, usage errors, loading with diagnostics, signal flags, the one-line connect error.
 *
 * Criterion runs each test in its own process, so the signal tests may install handlers and
 * raise signals freely. tests/unit/test_cli.c drives the same paths through the binary.
 */
#include "setup.h"

#include <criterion/criterion.h>
#include <criterion/redirect.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* The stream a test hands to setup.c, and what it received so far. */
static char *out_buf;
static size_t out_len;
static FILE *out;

static void open_out(void)
{
    out = open_memstream(&out_buf, &out_len);
    cr_assert_not_null(out);
}

static void close_out(void)
{
    fclose(out);
    free(out_buf);
}

static const char *out_text(void)
{
    fflush(out);
    return out_buf;
}

TestSuite(setup, .init = open_out, .fini = close_out);

/* --- the config path --- */

Test(setup, the_given_config_wins_over_AMQP_GW_CONFIG)
{
    setenv("AMQP_GW_CONFIG", "env.yaml", 1);
    const char *path = NULL;
    char err[128];
    cr_assert_eq(gw_setup_config_path("given.yaml", &path, err, sizeof err), GW_OK);
    cr_assert_str_eq(path, "given.yaml");
}

Test(setup, without_a_given_config_AMQP_GW_CONFIG_is_used)
{
    setenv("AMQP_GW_CONFIG", "env.yaml", 1);
    const char *path = NULL;
    char err[128];
    cr_assert_eq(gw_setup_config_path(NULL, &path, err, sizeof err), GW_OK);
    cr_assert_str_eq(path, "env.yaml");
}

Test(setup, an_empty_given_config_is_a_usage_error)
{
    setenv("AMQP_GW_CONFIG", "env.yaml", 1);
    const char *path = NULL;
    char err[128];
    cr_assert_eq(gw_setup_config_path("", &path, err, sizeof err), GW_ERR_USAGE);
    cr_assert_str_eq(err, "empty config path");
    cr_assert_null(path);
}

Test(setup, no_config_or_an_empty_AMQP_GW_CONFIG_is_a_usage_error_naming_both)
{
    const char *path = NULL;
    char err[128];
    unsetenv("AMQP_GW_CONFIG");
    cr_assert_eq(gw_setup_config_path(NULL, &path, err, sizeof err), GW_ERR_USAGE);
    cr_assert_str_eq(err, "missing -c FILE (or AMQP_GW_CONFIG)");
    setenv("AMQP_GW_CONFIG", "", 1);
    err[0] = '\0';
    cr_assert_eq(gw_setup_config_path(NULL, &path, err, sizeof err), GW_ERR_USAGE);
    cr_assert_str_eq(err, "missing -c FILE (or AMQP_GW_CONFIG)");
    cr_assert_null(path);
}

/* --- --help, --version --- */

Test(setup, help_prints_the_usage_and_wins_over_version)
{
    cr_assert(gw_setup_answer(true, true, "usage: amqp-gw x\n", out));
    cr_assert_str_eq(out_text(), "usage: amqp-gw x\n");
}

Test(setup, version_prints_the_version_line)
{
    cr_assert(gw_setup_answer(false, true, "usage: amqp-gw x\n", out));
    cr_assert_str_eq(out_text(), "amqp-gw " GW_VERSION "\n");
}

Test(setup, neither_help_nor_version_prints_nothing)
{
    cr_assert_not(gw_setup_answer(false, false, "usage: amqp-gw x\n", out));
    cr_assert_str_eq(out_text(), "");
}

/* --- usage errors --- */

Test(setup, a_usage_error_is_one_line_naming_the_help_to_read, .init = cr_redirect_stderr)
{
    cr_assert_eq(gw_setup_usage_error("amqp-gw replay", "replay", "unknown option '%s'", "--x"),
                 GW_EXIT_USAGE);
    cr_assert_eq(gw_setup_usage_error("amqp-gw", NULL, "missing command"), 2);
    fflush(stderr);
    cr_assert_stderr_eq_str("amqp-gw replay: unknown option '--x' (try 'amqp-gw replay --help')\n"
                            "amqp-gw: missing command (try 'amqp-gw --help')\n");
}

/* --- loading --- */

Test(setup, a_valid_config_loads_as_a_set_and_prints_nothing)
{
    unsetenv("AMQP_GW_URL");
    gw_settings *set = gw_setup_load("tests/fixtures/cases/gw.yaml", out);
    cr_assert_not_null(set);
    cr_assert_str_eq(out_text(), "");
    gw_settings_release(set);
}

Test(setup, an_invalid_config_prints_its_diagnostics_and_loads_nothing)
{
    cr_assert_null(gw_setup_load("tests/fixtures/cases/no-such-config.yaml", out));
    cr_assert_str_eq(out_text(), "tests/fixtures/cases/no-such-config.yaml: cannot open: "
                                 "No such file or directory\n");
}

/* --- signals --- */

static volatile sig_atomic_t stop_flag, reload_flag;

Test(setup, sigterm_and_sigint_set_the_stop_flag)
{
    gw_setup_signals(&stop_flag, &reload_flag);
    raise(SIGTERM);
    cr_assert_eq(stop_flag, 1);
    stop_flag = 0;
    raise(SIGINT);
    cr_assert_eq(stop_flag, 1);
    cr_assert_eq(reload_flag, 0);
}

Test(setup, sighup_sets_the_reload_flag)
{
    gw_setup_signals(&stop_flag, &reload_flag);
    raise(SIGHUP);
    cr_assert_eq(reload_flag, 1);
    cr_assert_eq(stop_flag, 0);
}

Test(setup, without_a_reload_flag_sighup_keeps_its_default_action)
{
    gw_setup_signals(&stop_flag, NULL);
    struct sigaction sa;
    cr_assert_eq(sigaction(SIGHUP, NULL, &sa), 0);
    cr_assert_eq(sa.sa_handler, SIG_DFL);
}

/* --- connecting --- */

Test(setup, an_unreachable_broker_is_one_line_without_the_password)
{
    unsetenv("AMQP_GW_URL");
    static const char yaml[] = "broker:\n"
                               "  urls: [\"amqp://guest:s3cret@127.0.0.1:1/%2f\"]\n"
                               "routes_file: r.yaml\n";
    gw_config *cfg = NULL;
    gw_diags d = {0};
    cr_assert_eq(gw_config_parse("gw.yaml", yaml, strlen(yaml), &cfg, &d), GW_OK);
    gw_diags_cleanup(&d);
    char url[256];
    cr_assert_null(gw_setup_connect(cfg, "amqp-gw", "amqp-gw test", url, sizeof url, out));
    const char *line = out_text();
    const char *head = "amqp-gw: cannot connect to the broker (amqp://guest:***@127.0.0.1:1/%2f): ";
    cr_assert(strncmp(line, head, strlen(head)) == 0, "%s", line);
    cr_assert_null(strstr(line, "s3cret"), "%s", line);
    cr_assert_eq(strchr(line, '\n'), line + strlen(line) - 1, "not one line: %s", line);
    gw_config_free(cfg);
}
