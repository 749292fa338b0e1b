/* test_inequiv.c — RabbitMQ's "inequivalent arg" refusals (inequiv.c), and the probe that
 * learns an existing queue's type from them. The refusal texts are RabbitMQ 3.10.8's, as
 * the session reports them. */
#include "inequiv.h"

#include <criterion/criterion.h>
#include <string.h>

#define REFUSED "declare queue \"q\": 406 PRECONDITION_FAILED - inequivalent arg "
#define IN_Q    " for queue 'q' in vhost '/': "
/* The refusal of a declaration with MINE for KEY, where the queue has THEIRS. */
#define REFUSAL(key, mine, theirs)                                                                 \
    REFUSED "'" key "'" IN_Q "received " mine " but current is " theirs
#define VALUE(v, type) "the value '" v "' of type '" type "'"

static gw_inequiv parsed(const char *text)
{
    gw_inequiv iq;
    cr_assert(gw_inequiv_parse(text, &iq), "%s", text);
    return iq;
}

Test(inequiv, a_queue_without_the_argument_is_current_none)
{
    gw_inequiv iq =
        parsed(REFUSED "'x-queue-type'" IN_Q
                       "received the value 'quorum' of type 'longstr' but current is none");
    cr_assert_str_eq(iq.key, "x-queue-type");
    cr_assert_eq(iq.current, GW_INEQUIV_NONE);
}

Test(inequiv, a_value_the_declaration_lacks_comes_with_its_type)
{
    gw_inequiv iq = parsed(REFUSED "'x-dead-letter-strategy'" IN_Q "received none but current is "
                                   "the value 'at-least-once' of type 'longstr'");
    cr_assert_str_eq(iq.key, "x-dead-letter-strategy");
    cr_assert_eq(iq.current, GW_INEQUIV_VALUE);
    cr_assert_str_eq(iq.value, "at-least-once");
    cr_assert_str_eq(iq.type, "longstr");
}

Test(inequiv, two_values_come_without_a_type)
{
    gw_inequiv iq =
        parsed(REFUSED "'x-queue-type'" IN_Q "received 'classic' but current is 'quorum'");
    cr_assert_eq(iq.current, GW_INEQUIV_VALUE);
    cr_assert_str_eq(iq.value, "quorum");
    cr_assert_str_eq(iq.type, "");
}

Test(inequiv, a_text_cut_at_255_bytes_names_the_key_but_not_the_value)
{
    gw_inequiv iq = parsed("declare queue \"q\": 406 PRECONDITION_FAILED - inequivalent arg "
                           "'x-dead-letter-strategy' for queue 'p.xxxxxxxxxxxxxxxxxxxxxxxx...");
    cr_assert_str_eq(iq.key, "x-dead-letter-strategy");
    cr_assert_eq(iq.current, GW_INEQUIV_CUT);
    iq = parsed(REFUSED "'x-overflow'" IN_Q "received none but current is the value 'reje...");
    cr_assert_eq(iq.current, GW_INEQUIV_CUT);
}

Test(inequiv, other_refusals_are_not_read)
{
    gw_inequiv iq;
    cr_assert_not(gw_inequiv_parse("declare queue \"q\": 405 RESOURCE_LOCKED - cannot obtain "
                                   "exclusive access to locked queue 'q' in vhost '/'",
                                   &iq));
    cr_assert_not(gw_inequiv_parse("declare queue \"q\": 406 PRECONDITION_FAILED - invalid arg "
                                   "'x-dead-letter-routing-key' for queue 'q' in vhost '/': "
                                   "routing_key_but_no_dlx_defined",
                                   &iq));
    cr_assert_not(gw_inequiv_parse("session is down: connection refused", &iq));
    cr_assert_not(gw_inequiv_parse(NULL, &iq));
}

/* ---------------------------------------------------------------- the probe */

static gw_arg classic_tier_args[] = {
    {.key = "x-message-ttl", .kind = GW_ARG_INT, .i = 1000},
    {.key = "x-dead-letter-exchange", .kind = GW_ARG_STR, .s = ""},
    {.key = "x-dead-letter-routing-key", .kind = GW_ARG_STR, .s = "gw.inbound"},
};
static gw_arg quorum_tier_args[] = {
    {.key = "x-message-ttl", .kind = GW_ARG_INT, .i = 1000},
    {.key = "x-dead-letter-exchange", .kind = GW_ARG_STR, .s = ""},
    {.key = "x-dead-letter-routing-key", .kind = GW_ARG_STR, .s = "gw.inbound"},
    {.key = "x-dead-letter-strategy", .kind = GW_ARG_STR, .s = "at-least-once"},
    {.key = "x-overflow", .kind = GW_ARG_STR, .s = "reject-publish"},
};

static gw_queue_decl tier(gw_queue_type type)
{
    bool q = type == GW_QUEUE_QUORUM;
    return (gw_queue_decl){.name = "q",
                           .durable = true,
                           .type = type,
                           .args = q ? quorum_tier_args : classic_tier_args,
                           .n_args = q ? 5 : 3};
}

static const gw_arg *probe_arg(const gw_inequiv_probe *p, const char *key)
{
    for (size_t i = 0; i < p->decl.n_args; i++)
        if (strcmp(p->decl.args[i].key, key) == 0)
            return &p->decl.args[i];
    return NULL;
}

/* Each test runs in its own process: one probe, started afresh by each. */
static gw_inequiv_probe the_probe;

static gw_inequiv_probe *start(const gw_queue_decl *planned)
{
    gw_inequiv_probe_init(&the_probe, planned);
    return &the_probe;
}

/* The probe's next step on refusal is want. */
static void expect(gw_inequiv_probe *p, const char *refusal, gw_inequiv_step want)
{
    char why[512] = "";
    gw_inequiv_step s = gw_inequiv_probe_next(p, refusal, why, sizeof why);
    cr_assert_eq(s, want, "%s: step %d, expected %d (%s)", refusal, (int)s, (int)want, why);
}

Test(inequiv, a_classic_tier_is_found_when_the_config_asks_for_quorum)
{
    gw_queue_decl planned = tier(GW_QUEUE_QUORUM);
    gw_inequiv_probe *p = start(&planned);
    expect(p, REFUSAL("x-overflow", VALUE("reject-publish", "longstr"), "none"), GW_INEQUIV_AGAIN);
    cr_assert_null(probe_arg(p, "x-overflow"));
    cr_assert_eq(p->decl.n_args, 4);
    expect(p, REFUSAL("x-dead-letter-strategy", VALUE("at-least-once", "longstr"), "none"),
           GW_INEQUIV_AGAIN);
    cr_assert_eq(p->decl.n_args, 3);
    cr_assert_eq(p->decl.type, GW_QUEUE_QUORUM, "the type is never adopted: it is what is asked");
    expect(p, REFUSAL("x-queue-type", VALUE("quorum", "longstr"), "none"), GW_INEQUIV_TYPE);
    cr_assert_str_eq(p->existing, "classic");
    cr_assert_eq(planned.n_args, 5, "the planned declaration is left as it was");
}

Test(inequiv, a_quorum_tier_is_found_when_the_config_asks_for_classic)
{
    gw_queue_decl planned = tier(GW_QUEUE_CLASSIC);
    gw_inequiv_probe *p = start(&planned);
    expect(p, REFUSAL("x-overflow", "none", VALUE("reject-publish", "longstr")), GW_INEQUIV_AGAIN);
    const gw_arg *a = probe_arg(p, "x-overflow");
    cr_assert_not_null(a);
    cr_assert_eq(a->kind, GW_ARG_STR);
    cr_assert_str_eq(a->s, "reject-publish");
    expect(p, REFUSAL("x-dead-letter-strategy", "none", VALUE("at-least-once", "longstr")),
           GW_INEQUIV_AGAIN);
    cr_assert_eq(p->decl.n_args, 5);
    cr_assert_str_eq(probe_arg(p, "x-overflow")->s, "reject-publish", "kept while adding");
    expect(p, REFUSAL("x-queue-type", "none", VALUE("quorum", "longstr")), GW_INEQUIV_TYPE);
    cr_assert_str_eq(p->existing, "quorum");
}

Test(inequiv, a_value_of_the_same_kind_is_taken_as_the_broker_says_it)
{
    gw_queue_decl planned = tier(GW_QUEUE_CLASSIC);
    gw_inequiv_probe *p = start(&planned);
    expect(p, REFUSED "'x-message-ttl'" IN_Q "received '1000' but current is '2000'",
           GW_INEQUIV_AGAIN);
    const gw_arg *a = probe_arg(p, "x-message-ttl");
    cr_assert_eq(a->kind, GW_ARG_INT);
    cr_assert_eq(a->i, 2000);
    expect(p,
           REFUSED "'x-dead-letter-routing-key'" IN_Q
                   "received 'gw.inbound' but current is 'other in'",
           GW_INEQUIV_AGAIN);
    cr_assert_str_eq(probe_arg(p, "x-dead-letter-routing-key")->s, "other in");
}

Test(inequiv, a_value_of_another_kind_is_tried_in_the_next_reading)
{
    static gw_arg args[] = {{.key = "x-max-length", .kind = GW_ARG_STR, .s = "7"}};
    gw_queue_decl planned = {.name = "q", .durable = true, .args = args, .n_args = 1};
    gw_inequiv_probe *p = start(&planned);
    /* the string "7" against the integer 7: the broker prints both the same */
    const char *refusal = REFUSED "'x-max-length'" IN_Q "received '7' but current is '7'";
    expect(p, refusal, GW_INEQUIV_AGAIN);
    cr_assert_eq(probe_arg(p, "x-max-length")->kind, GW_ARG_INT);
    cr_assert_eq(probe_arg(p, "x-max-length")->i, 7);
    char why[256];
    cr_assert_eq(gw_inequiv_probe_next(p, refusal, why, sizeof why), GW_INEQUIV_UNKNOWN,
                 "no reading left: neither a boolean nor another string");
}

Test(inequiv, flags_are_taken_as_the_queue_has_them)
{
    gw_queue_decl planned = {.name = "q", .durable = true};
    gw_inequiv_probe *p = start(&planned);
    expect(p, REFUSED "'durable'" IN_Q "received 'true' but current is 'false'", GW_INEQUIV_AGAIN);
    cr_assert_not(p->decl.durable);
    expect(p, REFUSED "'auto_delete'" IN_Q "received 'false' but current is 'true'",
           GW_INEQUIV_AGAIN);
    cr_assert(p->decl.auto_delete);
    cr_assert(planned.durable);
}

Test(inequiv, an_answer_cut_short_ends_the_probe_and_says_why)
{
    gw_queue_decl planned = tier(GW_QUEUE_QUORUM);
    gw_inequiv_probe *p = start(&planned);
    char why[256] = "";
    cr_assert_eq(gw_inequiv_probe_next(p,
                                       REFUSED "'x-overflow'" IN_Q "received the value "
                                               "'reject-publish' of type 'longstr' but curr...",
                                       why, sizeof why),
                 GW_INEQUIV_UNKNOWN);
    cr_assert(strstr(why, "cut short") != NULL, "%s", why);
}

Test(inequiv, a_type_cut_short_still_differs)
{
    gw_queue_decl planned = {.name = "q", .durable = true, .type = GW_QUEUE_QUORUM};
    gw_inequiv_probe *p = start(&planned);
    expect(p, REFUSED "'x-queue-type' for queue 'qqqqqqqqqqqqqqqqqqqqq...", GW_INEQUIV_TYPE);
    cr_assert_str_eq(p->existing, "");
}

Test(inequiv, another_refusal_on_the_way_ends_the_probe)
{
    gw_queue_decl planned = tier(GW_QUEUE_QUORUM);
    gw_inequiv_probe *p = start(&planned);
    char why[256] = "";
    cr_assert_eq(gw_inequiv_probe_next(p, "session is down: connection reset", why, sizeof why),
                 GW_INEQUIV_UNKNOWN);
    cr_assert(strstr(why, "connection reset") != NULL, "%s", why);
}

Test(inequiv, a_probe_that_does_not_converge_gives_up)
{
    gw_queue_decl planned = tier(GW_QUEUE_QUORUM);
    gw_inequiv_probe *p = start(&planned);
    /* a broker that keeps moving the goal: each refusal names a new argument */
    char why[256] = "", refusal[256];
    gw_inequiv_step s = GW_INEQUIV_AGAIN;
    for (int i = 0; i < 1000 && s == GW_INEQUIV_AGAIN; i++) {
        snprintf(refusal, sizeof refusal,
                 REFUSED "'x-k%d'" IN_Q "received none but current is the value '%d' of type "
                         "'long'",
                 i, i);
        s = gw_inequiv_probe_next(p, refusal, why, sizeof why);
    }
    cr_assert_eq(s, GW_INEQUIV_UNKNOWN);
}
