/* test_mgmt.c — the pure parts of the management API client (mgmt.c): where the API is, and
 * reading its list of bindings. The HTTP side is covered by tests/integration (check --live
 * against the private broker's management plugin). */
#include "mgmt.h"

#include <criterion/criterion.h>
#include <string.h>

struct base_case {
    const char *amqp;
    const char *override;
    const char *want; /* NULL: the URL does not parse */
};

Test(mgmt, base_url_follows_the_amqp_url_unless_overridden)
{
    static const struct base_case cases[] = {
        {"amqp://guest:guest@localhost:5672/%2f", NULL, "http://localhost:15672"},
        {"amqp://rabbit-1/prod", NULL, "http://rabbit-1:15672"},
        {"amqps://gw:secret@rabbit.example.com:5671/prod", NULL,
         "https://rabbit.example.com:15671"},
        {"amqp://u:p@127.0.0.1:27261/%2f", "", "http://127.0.0.1:15672"},
        {"amqp://u:p@127.0.0.1:27261/%2f", "http://127.0.0.1:28000/", "http://127.0.0.1:28000"},
        {"amqp://u:p@127.0.0.1:27261/%2f", "https://mgmt.internal", "https://mgmt.internal"},
        {"http://not-amqp/", NULL, NULL},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        char buf[256] = "";
        bool ok = gw_mgmt_base_url(cases[i].amqp, cases[i].override, buf, sizeof buf);
        if (!cases[i].want) {
            cr_expect_not(ok, "%s", cases[i].amqp);
            continue;
        }
        cr_expect(ok, "%s", cases[i].amqp);
        cr_expect_str_eq(buf, cases[i].want, "%s", cases[i].amqp);
    }
}

static gw_mgmt_answer match(const char *json, const char *key, const gw_arg *args, size_t n)
{
    char why[200] = "";
    gw_mgmt_answer a = gw_mgmt_bindings_match(json, strlen(json), key, args, n, why, sizeof why);
    if (a == GW_MGMT_UNKNOWN)
        cr_expect_neq(why[0], '\0', "UNKNOWN without a reason");
    return a;
}

/* What RabbitMQ 3.10 answers for GET /api/bindings/%2f/e/orders/q/billing. */
static const char two_bindings[] =
    "[{\"source\":\"orders\",\"vhost\":\"/\",\"destination\":\"billing\","
    "\"destination_type\":\"queue\",\"routing_key\":\"order.*\",\"arguments\":{},"
    "\"properties_key\":\"order.*\"},"
    "{\"source\":\"orders\",\"vhost\":\"/\",\"destination\":\"billing\","
    "\"destination_type\":\"queue\",\"routing_key\":\"\",\"arguments\":{\"x-match\":\"all\","
    "\"region\":\"eu\",\"tier\":2,\"vip\":true},\"properties_key\":\"~abc\"}]";

Test(mgmt, a_binding_is_found_by_routing_key_and_exact_arguments)
{
    cr_expect_eq(match(two_bindings, "order.*", NULL, 0), GW_MGMT_BOUND);
    cr_expect_eq(match(two_bindings, "order.#", NULL, 0), GW_MGMT_NOT_BOUND);
    cr_expect_eq(match("[]", "order.*", NULL, 0), GW_MGMT_NOT_BOUND);

    gw_arg args[] = {
        {.key = "x-match", .kind = GW_ARG_STR, .s = "all"},
        {.key = "region", .kind = GW_ARG_STR, .s = "eu"},
        {.key = "tier", .kind = GW_ARG_INT, .i = 2},
        {.key = "vip", .kind = GW_ARG_BOOL, .b = true},
    };
    cr_expect_eq(match(two_bindings, "", args, 4), GW_MGMT_BOUND);
    /* a binding's identity includes its arguments: fewer, more or other values differ */
    cr_expect_eq(match(two_bindings, "", args, 3), GW_MGMT_NOT_BOUND);
    cr_expect_eq(match(two_bindings, "", NULL, 0), GW_MGMT_NOT_BOUND);
    gw_arg other = args[2];
    other.i = 3;
    gw_arg changed[] = {args[0], args[1], other, args[3]};
    cr_expect_eq(match(two_bindings, "", changed, 4), GW_MGMT_NOT_BOUND);
    gw_arg as_string[] = {args[0], args[1], {.key = "tier", .kind = GW_ARG_STR, .s = "2"}, args[3]};
    cr_expect_eq(match(two_bindings, "", as_string, 4), GW_MGMT_NOT_BOUND);
    /* no arguments object at all counts as none */
    cr_expect_eq(match("[{\"routing_key\":\"k\"}]", "k", NULL, 0), GW_MGMT_BOUND);
}

Test(mgmt, an_answer_that_is_not_a_list_of_bindings_is_unknown)
{
    cr_expect_eq(match("", "k", NULL, 0), GW_MGMT_UNKNOWN);
    cr_expect_eq(match("{\"error\":\"Object Not Found\"}", "k", NULL, 0), GW_MGMT_UNKNOWN);
    cr_expect_eq(match("<html>login</html>", "k", NULL, 0), GW_MGMT_UNKNOWN);
    cr_expect_eq(match("[{\"routing_key\":\"k\"}", "k", NULL, 0), GW_MGMT_UNKNOWN);
    /* entries without a string routing key are skipped, not trusted */
    cr_expect_eq(match("[1, null, {\"routing_key\":5}]", "k", NULL, 0), GW_MGMT_NOT_BOUND);
}

Test(mgmt, an_unreachable_api_is_unknown_once_and_then_at_once)
{
    gw_config cfg = {0};
    cfg.tls.verify_peer = true;
    cfg.tls.verify_hostname = true;
    setenv("AMQP_GW_MANAGEMENT_URL", "http://127.0.0.1:1", 1); /* nothing listens on port 1 */
    char err[200];
    gw_mgmt *m = gw_mgmt_new(&cfg, "amqp://u:p@127.0.0.1:5672/%2f", err, sizeof err);
    unsetenv("AMQP_GW_MANAGEMENT_URL");
    cr_assert_not_null(m, "%s", err);
    cr_expect_str_eq(gw_mgmt_base(m), "http://127.0.0.1:1");
    char why[300] = "";
    cr_expect_eq(gw_mgmt_binding(m, "orders", "billing", "k", NULL, 0, why, sizeof why),
                 GW_MGMT_UNKNOWN);
    cr_expect_neq(why[0], '\0');
    char why2[300] = "";
    cr_expect_eq(gw_mgmt_binding(m, "orders", "other", "k", NULL, 0, why2, sizeof why2),
                 GW_MGMT_UNKNOWN);
    cr_expect_str_eq(why2, why);
    gw_mgmt_free(m);
}

Test(mgmt, overview_tells_whether_the_api_serves_this_amqp_port)
{
    static const char ov[] =
        "{\"management_version\":\"3.10.8\",\"listeners\":["
        "{\"node\":\"n@h\",\"protocol\":\"amqp\",\"ip_address\":\"127.0.0.1\",\"port\":28591},"
        "{\"node\":\"n@h\",\"protocol\":\"amqp/ssl\",\"ip_address\":\"::\",\"port\":5671},"
        "{\"node\":\"n@h\",\"protocol\":\"clustering\",\"ip_address\":\"::\",\"port\":25672},"
        "{\"node\":\"n@h\",\"protocol\":\"http\",\"ip_address\":\"::\",\"port\":15672}]}";
    cr_expect(gw_mgmt_overview_has_port(ov, strlen(ov), 28591));
    cr_expect(gw_mgmt_overview_has_port(ov, strlen(ov), 5671));
    cr_expect_not(gw_mgmt_overview_has_port(ov, strlen(ov), 5672));
    cr_expect_not(gw_mgmt_overview_has_port(ov, strlen(ov), 25672)); /* not an AMQP listener */
    cr_expect_not(gw_mgmt_overview_has_port(ov, strlen(ov), 15672));
    cr_expect_not(gw_mgmt_overview_has_port("{}", 2, 5672));
    cr_expect_not(gw_mgmt_overview_has_port("not json", 8, 5672));
}

Test(mgmt, a_queue_head_is_read_from_the_apis_answer)
{
    int64_t n = -2, ts = -2;
    char why[200] = "";
    const char *with = "{\"head_message_timestamp\":1796459964,\"messages\":2}";
    cr_assert(gw_mgmt_queue_head_parse(with, strlen(with), &n, &ts, why, sizeof why));
    cr_assert_eq(n, 2);
    cr_assert_eq(ts, 1796459964);
    const char *empty = "{\"head_message_timestamp\":\"\",\"messages\":0}";
    cr_assert(gw_mgmt_queue_head_parse(empty, strlen(empty), &n, &ts, why, sizeof why));
    cr_assert_eq(n, 0);
    cr_assert_eq(ts, -1);
    const char *quorum = "{\"messages\":5}";
    cr_assert(gw_mgmt_queue_head_parse(quorum, strlen(quorum), &n, &ts, why, sizeof why));
    cr_assert_eq(ts, -1);
    const char *none = "{\"name\":\"gw.dlq\"}";
    cr_assert_not(gw_mgmt_queue_head_parse(none, strlen(none), &n, &ts, why, sizeof why));
    cr_assert_not_null(strstr(why, "no message count"), "%s", why);
    cr_assert_not(gw_mgmt_queue_head_parse("[]", 2, &n, &ts, why, sizeof why));
}
