/* test_duration.c — durations (duration.h): what parses, how values print, and that the
 * two agree. */
#include "duration.h"

#include <criterion/criterion.h>
#include <criterion/parameterized.h>

#include <stdint.h>
#include <string.h>

typedef struct parse_case {
    char text[32];
    bool ok;
    uint64_t ms;
} parse_case;

static parse_case parse_cases[] = {
    {"250ms", true, 250},
    {"5s", true, 5000},
    {"2m", true, 120000},
    {"1h", true, 3600000},
    {"0s", true, 0},
    {"0ms", true, 0},
    {"90s", true, 90000},
    {"007s", true, 7000},
    {"18446744073709551615ms", true, UINT64_MAX},
    {"5", false, 0},
    {"5x", false, 0},
    {"s", false, 0},
    {"ms", false, 0},
    {"", false, 0},
    {"-5s", false, 0},
    {"+5s", false, 0},
    {"1.5s", false, 0},
    {"5 s", false, 0},
    {" 5s", false, 0},
    {"5s ", false, 0},
    {"5S", false, 0},
    {"5sec", false, 0},
    {"5msms", false, 0},
    {"1d", false, 0},
    {"99999999999999999999ms", false, 0},
    {"18446744073709551616ms", false, 0},
    {"9999999999999999h", false, 0},
};

ParameterizedTestParameters(duration, parses_a_non_negative_integer_and_one_unit)
{
    return cr_make_param_array(parse_case, parse_cases, sizeof parse_cases / sizeof parse_cases[0]);
}

ParameterizedTest(parse_case *c, duration, parses_a_non_negative_integer_and_one_unit)
{
    uint64_t ms = 777;
    bool ok = gw_duration_parse(c->text, &ms);
    cr_assert_eq(ok, c->ok, "\"%s\"", c->text);
    cr_assert_eq(ms, c->ok ? c->ms : 777, "\"%s\"", c->text);
}

typedef struct format_case {
    uint64_t ms;
    char text[GW_DURATION_TEXT_CAP];
} format_case;

static format_case format_cases[] = {
    {0, "0s"},
    {1, "1ms"},
    {250, "250ms"},
    {1000, "1s"},
    {1500, "1500ms"},
    {90000, "90s"},
    {120000, "2m"},
    {3601000, "3601s"},
    {5400000, "90m"},
    {3600000, "1h"},
    {7200000, "2h"},
    {86400000, "24h"},
    {UINT64_MAX, "18446744073709551615ms"},
};

ParameterizedTestParameters(duration, formats_in_the_largest_unit_that_divides_exactly)
{
    return cr_make_param_array(format_case, format_cases,
                               sizeof format_cases / sizeof format_cases[0]);
}

ParameterizedTest(format_case *c, duration, formats_in_the_largest_unit_that_divides_exactly)
{
    char buf[GW_DURATION_TEXT_CAP];
    size_t n = gw_duration_format(c->ms, buf, sizeof buf);
    cr_assert_str_eq(buf, c->text);
    cr_assert_eq(n, strlen(c->text));
}

Test(duration, zero_prints_as_0s_the_way_a_config_writes_off)
{
    char buf[8];
    gw_duration_format(0, buf, sizeof buf);
    cr_assert_str_eq(buf, "0s");
}

Test(duration, what_it_formats_parses_back_to_the_same_value)
{
    static const uint64_t values[] = {0,
                                      1,
                                      999,
                                      1000,
                                      59999,
                                      60000,
                                      3599999,
                                      3600000,
                                      86400000,
                                      7 * 86400000ull,
                                      1234567,
                                      UINT64_MAX / 2,
                                      UINT64_MAX - 1,
                                      UINT64_MAX};
    for (size_t i = 0; i < sizeof values / sizeof values[0]; i++) {
        char buf[GW_DURATION_TEXT_CAP];
        uint64_t back = 0;
        gw_duration_format(values[i], buf, sizeof buf);
        cr_expect(gw_duration_parse(buf, &back), "%s", buf);
        cr_expect_eq(back, values[i], "%s", buf);
    }
}

Test(duration, format_truncates_and_reports_the_length_it_needed)
{
    char buf[4];
    size_t n = gw_duration_format(1500, buf, sizeof buf);
    cr_assert_eq(n, strlen("1500ms"));
    cr_assert_str_eq(buf, "150");
}
