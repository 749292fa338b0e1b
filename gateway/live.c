/* live.c — `amqp-gw check --live`: the routing table compared with what the broker has.
 *
 * Takes the plan from settings.c (the same the daemon declares and check cross-checks),
 * the comparison from topology.c and the binding probe from mgmt.c; connects through
 * setup.c like every subcommand. Declares nothing, routes nothing, logs nothing.
 */
#include "live.h"

#include "mgmt.h"
#include "session.h"
#include "setup.h"
#include "topology.h"

static int probe_binding(void *ctx, const char *exchange, const char *queue, const char *key,
                         const gw_arg *args, size_t n_args, char *why, size_t why_len)
{
    return (int)gw_mgmt_binding(ctx, exchange, queue, key, args, n_args, why, why_len);
}

int gw_live_check(const gw_settings *set, FILE *out, FILE *err)
{
    const gw_config *cfg = set->cfg;
    char safe[512];
    gw_session *s = gw_setup_connect(cfg, "amqp-gw", "amqp-gw check", safe, sizeof safe, err);
    if (!s)
        return GW_EXIT_UNREACHABLE;
    gw_topology *plan = gw_settings_plan(cfg, set->routes);
    char merr[512];
    gw_mgmt *mgmt = gw_mgmt_new(cfg, cfg->broker_urls[0], merr, sizeof merr);
    int unchecked = 0;
    int drift = gw_topology_check(s, plan, mgmt ? probe_binding : NULL, mgmt, &unchecked, out);
    if (unchecked > 0 && !mgmt)
        fprintf(out, "%d binding%s unchecked: %s\n", unchecked, unchecked > 1 ? "s" : "", merr);
    else if (unchecked > 0)
        fprintf(out,
                "%d binding%s unchecked: the management API at %s did not answer; enable the "
                "rabbitmq_management plugin, or set AMQP_GW_MANAGEMENT_URL\n",
                unchecked, unchecked > 1 ? "s" : "", gw_mgmt_base(mgmt));
    gw_mgmt_free(mgmt);
    if (drift > 0)
        fprintf(out, "%d object%s missing or different\n", drift, drift > 1 ? "s" : "");
    else if (drift == 0)
        fprintf(out, "in sync with %s\n", safe);
    gw_session_free(s);
    gw_topology_free(plan);
    return drift == 0 ? 0 : drift > 0 ? 1 : GW_EXIT_UNREACHABLE;
}
