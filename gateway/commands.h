/* commands.h — the offline subcommands of amqp-gw: check, explain, test (SPEC §3).
 *
 * Each command loads the config (and its routing table) itself, writes its report to
 * out and its diagnostics to err, and returns the process exit code; main.c only parses
 * argv and calls them. None of them touches a broker, except check with live = true,
 * which hands over to gw_live_check (live.h). Taking FILE* keeps them unit-testable
 * (open_memstream).
 */
#ifndef GW_COMMANDS_H
#define GW_COMMANDS_H

#include "settings.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>

/* `amqp-gw check [--live] -c FILE`. Invalid: every diagnostic as FILE:LINE:COL: message
 * on err, returns 1. Valid: one summary line on out, e.g.
 *   config/amqp-gw.yaml: ok (routes/example.yaml: 5 exchanges, 5 queues, 6 routes)
 * then one "note:" line per destination exchange the table does not declare (it must
 * already exist on the broker); returns 0, or with live the result of
 * gw_live_check (0 in sync, 1 drift, GW_EXIT_UNREACHABLE). */
int gw_commands_check(const char *config_path, bool live, FILE *out, FILE *err);

/* `amqp-gw explain -c FILE TYPE...`: per type, the route matched, each destination
 * exchange and routing key, the retry policy and the route's contract, if any; or "no route ->
 * dead-letter (no_route)" / "invalid event type -> dead-letter (invalid_event)". Returns 0, or 1
 * when the config is invalid (diagnostics on err). */
int gw_commands_explain(const char *config_path, char *const *types, size_t n_types, FILE *out,
                        FILE *err);

/* Writes the explanation of one type against a loaded set (used by explain). */
void gw_commands_explain_type(const gw_settings *set, const char *type, FILE *out);

/* `amqp-gw test -c FILE CASES.yaml`: one "PASS name" / "FAIL name: why" line per case
 * and a summary "N passed, N failed" on out. Returns 0 when all pass, 1 when any fails
 * or the config or the case file is invalid (diagnostics on err, no case is run). */
int gw_commands_test(const char *config_path, const char *cases_path, FILE *out, FILE *err);

#endif
