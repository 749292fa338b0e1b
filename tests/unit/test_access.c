/* test_access.c — what a 403 ACCESS_REFUSED means per operation (access.h): each hint names
 * the permission RabbitMQ's access control table gives for that operation, and what to do. */
#include "access.h"

#include <criterion/criterion.h>

#include <string.h>

static void names(gw_access_op op, const char *const *words, size_t n)
{
    const char *h = gw_access_hint(op);
    for (size_t i = 0; i < n; i++)
        cr_expect(strstr(h, words[i]) != NULL, "hint for op %d lacks \"%s\": %s", (int)op, words[i],
                  h);
    cr_expect(strstr(h, "set_permissions") && strstr(h, "README \"Broker permissions\""),
              "hint for op %d does not say what to do: %s", (int)op, h);
}

Test(access, publish_needs_write_on_the_exchange)
{
    const char *w[] = {"write permission on the exchange"};
    names(GW_ACCESS_PUBLISH, w, 1);
}

Test(access, declaring_an_exchange_needs_configure)
{
    const char *w[] = {"configure permission"};
    names(GW_ACCESS_DECLARE_EXCHANGE, w, 1);
    cr_expect(strstr(gw_access_hint(GW_ACCESS_DECLARE_EXCHANGE), "write") == NULL);
}

Test(access, declaring_a_queue_needs_configure_and_with_a_dlx_read_and_write)
{
    const char *w[] = {"configure permission", "read permission on the queue",
                       "write permission on that exchange"};
    names(GW_ACCESS_DECLARE_QUEUE, w, 3);
}

Test(access, binding_needs_write_on_the_queue_and_read_on_the_exchange)
{
    const char *w[] = {"write permission on the queue", "read permission on the exchange"};
    names(GW_ACCESS_BIND, w, 2);
}

Test(access, consuming_needs_read_on_the_queue)
{
    const char *w[] = {"read permission on the queue"};
    names(GW_ACCESS_CONSUME, w, 1);
}

Test(access, only_403_is_a_refusal)
{
    cr_expect(gw_access_refused(403));
    cr_expect(!gw_access_refused(404));
    cr_expect(!gw_access_refused(406));
    cr_expect(!gw_access_refused(530));
    cr_expect(!gw_access_refused(0));
}
