/* benchamqp.c — see benchamqp.h. */
#include "benchamqp.h"

#include "alloc.h"

#include <amqp_tcp_socket.h>

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>

const char *bench_prog = "bench";

void bench_die(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    fprintf(stderr, "%s: ", bench_prog);
    vfprintf(stderr, fmt, ap);
    fputc('\n', stderr);
    va_end(ap);
    exit(1);
}

const char *bench_reply_text(amqp_rpc_reply_t r, char *buf, size_t len)
{
    switch (r.reply_type) {
    case AMQP_RESPONSE_NORMAL:
        return "ok";
    case AMQP_RESPONSE_NONE:
        return "no reply";
    case AMQP_RESPONSE_LIBRARY_EXCEPTION:
        return amqp_error_string2(r.library_error);
    case AMQP_RESPONSE_SERVER_EXCEPTION:
        if (r.reply.id == AMQP_CONNECTION_CLOSE_METHOD) {
            amqp_connection_close_t *c = r.reply.decoded;
            snprintf(buf, len, "connection closed by broker: %u %.*s", c->reply_code,
                     (int)c->reply_text.len, (const char *)c->reply_text.bytes);
        } else if (r.reply.id == AMQP_CHANNEL_CLOSE_METHOD) {
            amqp_channel_close_t *c = r.reply.decoded;
            snprintf(buf, len, "channel closed by broker: %u %.*s", c->reply_code,
                     (int)c->reply_text.len, (const char *)c->reply_text.bytes);
        } else {
            snprintf(buf, len, "unexpected broker method 0x%08x", r.reply.id);
        }
        return buf;
    }
    return "unknown reply";
}

void bench_check_rpc(amqp_connection_state_t c, const char *what)
{
    amqp_rpc_reply_t r = amqp_get_rpc_reply(c);
    if (r.reply_type != AMQP_RESPONSE_NORMAL) {
        char buf[512];
        bench_die("%s: %s", what, bench_reply_text(r, buf, sizeof buf));
    }
}

amqp_connection_state_t bench_open(const char *url_in, const char *name)
{
    struct amqp_connection_info ci;
    char *url = gw_xstrdup(url_in);
    if (amqp_parse_url(url, &ci) != AMQP_STATUS_OK)
        bench_die("cannot parse broker URL \"%s\"", url_in);
    if (ci.ssl)
        bench_die("amqps:// is not supported by the benchmark's clients");
    amqp_connection_state_t c = amqp_new_connection();
    amqp_socket_t *sock = amqp_tcp_socket_new(c);
    if (!sock)
        bench_die("cannot create a TCP socket");
    int rc = amqp_socket_open(sock, ci.host, ci.port);
    if (rc != AMQP_STATUS_OK)
        bench_die("cannot connect to %s:%d: %s", ci.host, ci.port, amqp_error_string2(rc));
    amqp_table_entry_t prop = {
        .key = amqp_cstring_bytes("connection_name"),
        .value = {.kind = AMQP_FIELD_KIND_UTF8, .value.bytes = amqp_cstring_bytes(name)}};
    amqp_table_t props = {.num_entries = 1, .entries = &prop};
    amqp_rpc_reply_t r = amqp_login_with_properties(c, ci.vhost, 0, 131072, 0, &props,
                                                    AMQP_SASL_METHOD_PLAIN, ci.user, ci.password);
    if (r.reply_type != AMQP_RESPONSE_NORMAL) {
        char buf[512];
        bench_die("login to %s:%d failed: %s", ci.host, ci.port,
                  bench_reply_text(r, buf, sizeof buf));
    }
    amqp_channel_open(c, BENCH_CHANNEL);
    bench_check_rpc(c, "channel.open");
    free(url);
    return c;
}

void bench_close(amqp_connection_state_t c)
{
    amqp_channel_close(c, BENCH_CHANNEL, AMQP_REPLY_SUCCESS);
    amqp_connection_close(c, AMQP_REPLY_SUCCESS);
    amqp_destroy_connection(c);
}
