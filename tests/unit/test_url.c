/* test_url.c — broker URL syntax (url.c): what is refused, what the message names, and
 * that nothing it accepts is refused by rabbitmq-c's amqp_parse_url, which the session
 * connects with. */
#include "url.h"

#include <amqp.h>
#include <criterion/criterion.h>
#include <stdlib.h>
#include <string.h>

/* Whether rabbitmq-c 0.11 parses url (with a port it can connect to). */
static bool library_parses(const char *url)
{
    char *copy = strdup(url);
    struct amqp_connection_info ci;
    bool ok = amqp_parse_url(copy, &ci) == AMQP_STATUS_OK && ci.port > 0;
    free(copy);
    return ok;
}

static const char *const good[] = {
    "amqp://localhost",
    "amqp://localhost/",
    "amqp://guest:guest@localhost:5672/%2f",
    "amqps://gw:s%40cret@rabbit.example.com:5671/prod",
    "amqp://rabbit-1/prod",
    "amqp://:5672/",
    "amqp:///vhost",
    "amqp://[::1]:5672/%2f",
    "amqp://u:p@[fe80::1]/",
    "amqp://user@host:1/",
    "amqp://u:p@h:65535/v",
};

Test(url, accepts_what_the_library_connects_with)
{
    for (size_t i = 0; i < sizeof good / sizeof good[0]; i++) {
        char why[256] = "";
        cr_expect(gw_url_check(good[i], why, sizeof why), "%s: %s", good[i], why);
        cr_expect(library_parses(good[i]), "rabbitmq-c refuses %s", good[i]);
    }
}

struct bad_case {
    const char *url;
    const char *why; /* a part of the message */
};

static const struct bad_case bad[] = {
    {"http://localhost/", "must start with amqp:// or amqps://"},
    {"amqp://localhost:notaport/",
     "has a bad port: what follows \"localhost:\" is not a number from 1 to 65535"},
    {"amqp://u@localhost:0/", "has a bad port: \"0\" is not a number"},
    {"amqp://u:p@localhost:65536/", "\"65536\" is not a number from 1 to 65535"},
    {"amqp://localhost:/", "has an empty port after ':' (leave the ':' out for the default, 5672)"},
    {"amqps://localhost:", "for the default, 5671"},
    {"amqp://u:p@host:x1/", "has a bad port: \"x1\""},
    {"amqp://guest:secret/%2f", "(a password goes in user:password@host)"},
    {"amqp://host/a/b", "has a bad vhost: it is one path segment; write '/' as %2f"},
    {"amqp://host/a:b", "has a bad vhost"},
    {"amqp://host/?heartbeat=10", "has a '?' at character 13: AMQP URLs take no query"},
    {"amqp://host/v#x", "has a '#' at character 14"},
    {"amqp://ho%zzst/", "has a bad %-escape at character 10"},
    {"amqp://host/%c3%a9", "has a bad %-escape at character 13"},
    {"amqp://x[::1]/", "has a bad host: an IPv6 address must be the whole host"},
    {"amqp://[::1/", "has a bad host: '[' without a closing ']'"},
    {"amqp://[::1]x:5672/", "only :port or /vhost may follow the ']'"},
    {"amqp://a@b@c/", "has a stray '@' at character 11"},
    {"amqp://host]/", "has a stray ']' at character 12"},
};

Test(url, says_which_part_is_wrong)
{
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        char why[256] = "";
        cr_expect_not(gw_url_check(bad[i].url, why, sizeof why), "%s passed", bad[i].url);
        cr_expect(strstr(why, bad[i].why) != NULL, "%s: got \"%s\", want \"%s\"", bad[i].url, why,
                  bad[i].why);
    }
}

Test(url, refuses_everything_the_library_refuses)
{
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
        if (!library_parses(bad[i].url))
            cr_expect_not(gw_url_check(bad[i].url, NULL, 0), "%s", bad[i].url);
    /* and the few it takes but that cannot connect */
    cr_expect_not(gw_url_check("amqp://localhost:0/", NULL, 0));
}

Test(url, never_quotes_what_may_be_a_password)
{
    static const char *const urls[] = {"amqp://guest:s3cret/%2f", "amqp://guest:s3cret/a@b"};
    for (size_t i = 0; i < sizeof urls / sizeof urls[0]; i++) {
        char why[256] = "";
        cr_expect_not(gw_url_check(urls[i], why, sizeof why), "%s", urls[i]);
        cr_expect_null(strstr(why, "s3cret"), "%s: %s", urls[i], why);
    }
}
