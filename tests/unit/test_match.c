/* test_match.c — event-type and pattern syntax, and the reference matcher (match.c). */
#include "match.h"

#include <criterion/criterion.h>
#include <criterion/parameterized.h>
#include <string.h>

/* Parameter structs hold arrays, not pointers: Criterion 2.4.1 copies them into
 * worker processes and pointers would dangle. */

typedef struct type_case {
    char type[64];
    bool valid;
} type_case;

static type_case type_cases[] = {
    {"order", true},
    {"order.created", true},
    {"a.b.c.d.e.f", true},
    {"x", true},
    {"billing-v2.invoice_paid", true},
    {"urn:acme/orders.created", true},
    {"!\"$%&'()+,-/:;<=>?@[\\]^_`{|}~", true},
    {"", false},
    {".", false},
    {".order", false},
    {"order.", false},
    {"order..created", false},
    {"order.*", false},
    {"order.#", false},
    {"order*", false},
    {"ord#er", false},
    {"order created", false},
    {"order\tcreated", false},
    {"order\x7f", false},
    /* UTF-8: well-formed, printable, no spaces */
    {"caf\xc3\xa9", true},
    {"commande.cr\xc3\xa9\xc3\xa9"
     "e",
     true},
    {"\xe6\xb3\xa8\xe6\x96\x87.\xe4\xbd\x9c\xe6\x88\x90", true}, /* 注文.作成 */
    {"parcel.\xf0\x9f\x93\xa6", true},                           /* U+1F4E6 */
    {"caf\xc3", false},                                          /* truncated */
    {"caf\xa9", false},                                          /* lone continuation */
    {"\xc0\xaf", false},                                         /* overlong '/' */
    {"\xe0\x80\xaf", false},                                     /* overlong, 3 bytes */
    {"\xed\xa0\x80", false},                                     /* surrogate */
    {"\xf4\x90\x80\x80", false},                                 /* above U+10FFFF */
    {"\xff", false},
    {"order\xc2\x85"
     "created",
     false}, /* C1 control NEL */
    {"order\xc2\xa0"
     "created",
     false}, /* no-break space */
    {"order\xe2\x80\xa8"
     "created",
     false}, /* line separator */
    {"order\xe3\x80\x80"
     "created",
     false}, /* ideographic space */
};

ParameterizedTestParameters(match, type_validity_follows_the_word_rules)
{
    return cr_make_param_array(type_case, type_cases, sizeof type_cases / sizeof type_cases[0]);
}

ParameterizedTest(type_case *c, match, type_validity_follows_the_word_rules)
{
    cr_assert_eq(gw_match_type_valid(c->type, strlen(c->type)), c->valid,
                 "type \"%s\": expected %s", c->type, c->valid ? "valid" : "invalid");
}

Test(match, type_of_255_bytes_is_valid_and_256_is_not)
{
    char buf[257];
    memset(buf, 'a', sizeof buf);
    for (size_t i = 1; i < 256; i += 2)
        buf[i] = '.';
    buf[254] = 'z';
    cr_assert(gw_match_type_valid(buf, 255));
    buf[255] = 'z';
    cr_assert_not(gw_match_type_valid(buf, 256));
}

Test(match, type_validity_uses_the_length_not_a_terminator)
{
    cr_assert(gw_match_type_valid("order.created.extra", 13));
    cr_assert_not(gw_match_type_valid("order.created", 6));
    cr_assert_not(gw_match_type_valid("a\0b", 3));
}

typedef struct pattern_case {
    char pattern[64];
    bool valid;
    char why[64]; /* expected reason when invalid */
} pattern_case;

static pattern_case pattern_cases[] = {
    {"order.created", true, ""},
    {"order.*", true, ""},
    {"order.#", true, ""},
    {"#", true, ""},
    {"*", true, ""},
    {"#.#", true, ""},
    {"*.#.*", true, ""},
    {"a.#.b", true, ""},
    {"urn:acme/orders.*", true, ""},
    {"", false, "empty pattern"},
    {"order..created", false, "empty word"},
    {".order", false, "empty word"},
    {"order.", false, "empty word"},
    {"order*", false, "'*' must be a whole word"},
    {"order.cre*ted", false, "'*' must be a whole word"},
    {"**", false, "'*' must be a whole word"},
    {"a.#b", false, "'#' must be a whole word"},
    {"##", false, "'#' must be a whole word"},
    {"*#", false, "'*' must be a whole word"},
    {"order created", false, "characters must be printable (ASCII or UTF-8) without spaces"},
    {"order.\xc3", false, "characters must be printable (ASCII or UTF-8) without spaces"},
    {"commande.*.cr\xc3\xa9\xc3\xa9"
     "e",
     true, ""},
};

ParameterizedTestParameters(match, pattern_validity_gives_a_short_reason)
{
    return cr_make_param_array(pattern_case, pattern_cases,
                               sizeof pattern_cases / sizeof pattern_cases[0]);
}

ParameterizedTest(pattern_case *c, match, pattern_validity_gives_a_short_reason)
{
    char why[64] = "";
    cr_assert_eq(gw_match_pattern_valid(c->pattern, why, sizeof why), c->valid,
                 "pattern \"%s\": expected %s (why: %s)", c->pattern,
                 c->valid ? "valid" : "invalid", why);
    if (!c->valid)
        cr_assert_str_eq(why, c->why, "pattern \"%s\"", c->pattern);
}

Test(match, pattern_of_256_bytes_is_too_long)
{
    char buf[257];
    memset(buf, '#', sizeof buf);
    for (size_t i = 1; i < 256; i += 2)
        buf[i] = '.';
    buf[255] = '\0';
    char why[64] = "";
    cr_assert(gw_match_pattern_valid(buf, why, sizeof why), "255 bytes: %s", why);
    buf[255] = '*';
    buf[256] = '\0';
    cr_assert_not(gw_match_pattern_valid(buf, why, sizeof why));
    cr_assert_str_eq(why, "longer than 255 bytes");
}

Test(match, pattern_validity_tolerates_a_null_reason_buffer)
{
    cr_assert_not(gw_match_pattern_valid("a..b", NULL, 0));
    cr_assert(gw_match_pattern_valid("a.*", NULL, 0));
}

Test(match, pattern_with_a_wildcard_word_is_a_pattern)
{
    cr_assert(gw_match_is_pattern("order.*"));
    cr_assert(gw_match_is_pattern("#"));
    cr_assert(gw_match_is_pattern("a.#.b"));
    cr_assert_not(gw_match_is_pattern("order.created"));
    cr_assert_not(gw_match_is_pattern("x"));
}

Test(match, literal_words_counts_words_that_are_not_wildcards)
{
    cr_assert_eq(gw_match_literal_words("order.created"), 2);
    cr_assert_eq(gw_match_literal_words("order.*.eu"), 2);
    cr_assert_eq(gw_match_literal_words("order.#"), 1);
    cr_assert_eq(gw_match_literal_words("#"), 0);
    cr_assert_eq(gw_match_literal_words("*.#.*"), 0);
}

typedef struct match_case {
    char pattern[64];
    char type[64];
    bool match;
} match_case;

static match_case match_cases[] = {
    /* exact */
    {"order.created", "order.created", true},
    {"order.created", "order.create", false},
    {"order.created", "order.created.eu", false},
    {"order", "order", true},
    /* '#' first, middle, last */
    {"#.created", "created", true},
    {"#.created", "order.created", true},
    {"#.created", "a.b.c.created", true},
    {"#.created", "order.created.eu", false},
    {"a.#.b", "a.b", true},
    {"a.#.b", "a.x.b", true},
    {"a.#.b", "a.x.y.b", true},
    {"a.#.b", "a.x.y", false},
    {"a.#.b", "b.a.b", false},
    {"a.#", "a", true},
    {"a.#", "a.b.c", true},
    {"a.#", "b.a", false},
    {"#.a", "a", true},
    {"#.a", "x.a", true},
    {"#.a", "a.x", false},
    /* '#' alone and repeated */
    {"#", "a", true},
    {"#", "a.b.c.d", true},
    {"#.#", "a", true},
    {"#.#", "a.b.c", true},
    {"#.a.#", "a", true},
    {"#.a.#", "x.a.y.z", true},
    {"#.a.#", "x.y", false},
    /* '*' */
    {"*", "a", true},
    {"*", "a.b", false},
    {"order.*", "order.created", true},
    {"order.*", "order", false},
    {"order.*", "order.created.eu", false},
    {"*.created", "order.created", true},
    {"order.*.eu", "order.created.eu", true},
    {"order.*.eu", "order.eu", false},
    /* mixed */
    {"*.#.*", "a.b", true},
    {"*.#.*", "a.b.c.d", true},
    {"*.#.*", "a", false},
    {"a.*.#", "a.b", true},
    {"a.*.#", "a.b.c.d", true},
    {"a.*.#", "a", false},
    {"#.*", "a", true},
    {"*.#", "a", true},
    {"#.*.*", "a", false},
    {"#.*.*", "a.b", true},
    /* word characters */
    {"urn:acme/orders.*", "urn:acme/orders.created", true},
    {"billing-v2.*", "billing-v2.invoice_paid", true},
    {"billing-v2.*", "billing_v2.invoice_paid", false},
    /* invalid types never match */
    {"#", "a..b", false},
    {"*.*", "a.", false},
    {"#", "", false},
};

ParameterizedTestParameters(match, matcher_follows_topic_exchange_semantics)
{
    return cr_make_param_array(match_case, match_cases, sizeof match_cases / sizeof match_cases[0]);
}

ParameterizedTest(match_case *c, match, matcher_follows_topic_exchange_semantics)
{
    cr_assert_eq(gw_match(c->pattern, c->type, strlen(c->type)), c->match,
                 "pattern \"%s\" vs type \"%s\": expected %s", c->pattern, c->type,
                 c->match ? "match" : "no match");
}

Test(match, matcher_handles_the_longest_type)
{
    char type[256];
    memset(type, 'a', 255);
    for (size_t i = 1; i < 255; i += 2)
        type[i] = '.';
    type[255] = '\0';
    cr_assert(gw_match("#", type, 255));
    cr_assert(gw_match("a.#.a", type, 255));
    cr_assert(gw_match("#.#.#.#.#.#.#.#.a", type, 255));
    cr_assert_not(gw_match("#.b", type, 255));
}

Test(match, matcher_reads_only_the_given_length_of_the_type)
{
    cr_assert(gw_match("order.created", "order.created.eu", 13));
    cr_assert_not(gw_match("order.created.eu", "order.created.eu", 13));
}
