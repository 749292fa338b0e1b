/* test_metrics.c — unit tests of the metrics table and its HTTP listener (metrics.h).
 *
 * Rendering is checked line by line without HTTP; the listener is checked over real
 * HTTP on a free loopback port with a small socket client, so no curl is needed.
 */
#include "metrics.h"

#include <criterion/criterion.h>
#include <criterion/parameterized.h>

#include <arpa/inet.h>
#include <netdb.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

/* A hung listener kills the worker (Criterion reports a crash) instead of the run.
 * Used instead of .timeout, whose runner leaks under LeakSanitizer in Criterion 2.4.1
 * when timed tests run in parallel. */
static void watchdog(void)
{
    alarm(30);
}

/* True when text holds line as one whole line. */
static bool has_line(const char *text, const char *line)
{
    size_t n = strlen(line);
    for (const char *p = text; (p = strstr(p, line)) != NULL; p++) {
        if ((p == text || p[-1] == '\n') && p[n] == '\n')
            return true;
    }
    return false;
}

#define assert_line(text, line)                                                                    \
    cr_assert(has_line((text), (line)), "missing line: %s\n--- got ---\n%s", (line), (text))

static gw_metrics *new_quiet(void)
{
    char err[256] = "";
    gw_metrics *m = gw_metrics_new("", err, sizeof err);
    cr_assert_not_null(m, "gw_metrics_new(\"\"): %s", err);
    return m;
}

/* A loopback port nothing listens on right now (family AF_INET or AF_INET6). */
static int free_port(int family)
{
    int fd = socket(family, SOCK_STREAM, 0);
    cr_assert_geq(fd, 0);
    struct sockaddr_storage ss;
    memset(&ss, 0, sizeof ss);
    socklen_t len;
    if (family == AF_INET6) {
        struct sockaddr_in6 *a = (struct sockaddr_in6 *)&ss;
        a->sin6_family = AF_INET6;
        a->sin6_addr = in6addr_loopback;
        len = sizeof *a;
    } else {
        struct sockaddr_in *a = (struct sockaddr_in *)&ss;
        a->sin_family = AF_INET;
        a->sin_addr.s_addr = htonl(INADDR_LOOPBACK);
        len = sizeof *a;
    }
    if (bind(fd, (struct sockaddr *)&ss, len) != 0) {
        close(fd);
        return -1;
    }
    cr_assert_eq(getsockname(fd, (struct sockaddr *)&ss, &len), 0);
    int port = ntohs(family == AF_INET6 ? ((struct sockaddr_in6 *)&ss)->sin6_port
                                        : ((struct sockaddr_in *)&ss)->sin_port);
    close(fd);
    return port;
}

struct reply {
    int status;
    char head[2048];
    char body[16384];
};

/* Sends "METHOD path HTTP/1.0" to host:port and reads the whole reply (the server
 * closes after an HTTP/1.0 request). Returns false when no connection could be made. */
static bool http(const char *host, int port, const char *method, const char *path, struct reply *r)
{
    memset(r, 0, sizeof *r);
    char service[8];
    snprintf(service, sizeof service, "%d", port);
    struct addrinfo hints = {0}, *res = NULL;
    hints.ai_socktype = SOCK_STREAM;
    cr_assert_eq(getaddrinfo(host, service, &hints, &res), 0, "cannot resolve %s", host);
    int fd = -1;
    for (struct addrinfo *ai = res; ai && fd < 0; ai = ai->ai_next) {
        fd = socket(ai->ai_family, ai->ai_socktype, ai->ai_protocol);
        if (fd >= 0 && connect(fd, ai->ai_addr, ai->ai_addrlen) != 0) {
            close(fd);
            fd = -1;
        }
    }
    freeaddrinfo(res);
    if (fd < 0)
        return false;
    struct timeval tv = {5, 0};
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    char req[256];
    int n = snprintf(req, sizeof req, "%s %s HTTP/1.0\r\nHost: test\r\n\r\n", method, path);
    cr_assert_eq(write(fd, req, (size_t)n), n);
    static char raw[sizeof r->head + sizeof r->body];
    size_t len = 0;
    ssize_t got;
    while (len < sizeof raw - 1 && (got = read(fd, raw + len, sizeof raw - 1 - len)) > 0)
        len += (size_t)got;
    raw[len] = '\0';
    close(fd);
    char *sep = strstr(raw, "\r\n\r\n");
    cr_assert_not_null(sep, "no end of headers in reply: %s", raw);
    *sep = '\0';
    cr_assert_lt(strlen(raw), sizeof r->head, "reply headers too long");
    cr_assert_lt(strlen(sep + 4), sizeof r->body, "reply body too long");
    memcpy(r->head, raw, strlen(raw) + 1);
    memcpy(r->body, sep + 4, strlen(sep + 4) + 1);
    cr_assert_eq(sscanf(raw, "HTTP/1.%*d %d", &r->status), 1, "bad status line: %s", raw);
    return true;
}

/* A listener on 127.0.0.1 at a free port; *port receives the port. */
static gw_metrics *new_listening(int *port)
{
    char listen[64], err[256] = "";
    *port = free_port(AF_INET);
    snprintf(listen, sizeof listen, "127.0.0.1:%d", *port);
    gw_metrics *m = gw_metrics_new(listen, err, sizeof err);
    cr_assert_not_null(m, "gw_metrics_new(%s): %s", listen, err);
    return m;
}

Test(metrics, fresh_table_renders_zeros_with_help_and_type)
{
    gw_metrics *m = new_quiet();
    char *t = gw_metrics_render(m);
    assert_line(t,
                "# HELP amqp_gw_events_received_total New events consumed from the inbound queue "
                "(not retries, deferrals or rejections coming back).");
    assert_line(t, "# TYPE amqp_gw_events_received_total counter");
    assert_line(t, "amqp_gw_events_received_total 0");
    assert_line(t, "# TYPE amqp_gw_events_routed_total counter");
    assert_line(t, "# TYPE amqp_gw_events_retried_total counter");
    assert_line(t, "# TYPE amqp_gw_events_dead_lettered_total counter");
    assert_line(t, "# TYPE amqp_gw_events_deferred_total counter");
    assert_line(t, "# TYPE amqp_gw_confirm_latency_seconds histogram");
    assert_line(t, "amqp_gw_confirm_latency_seconds_bucket{le=\"+Inf\"} 0");
    assert_line(t, "amqp_gw_confirm_latency_seconds_sum 0.000");
    assert_line(t, "amqp_gw_confirm_latency_seconds_count 0");
    assert_line(t, "# TYPE amqp_gw_in_flight gauge");
    assert_line(t, "amqp_gw_in_flight 0");
    assert_line(t, "# TYPE amqp_gw_circuit_state gauge");
    assert_line(t, "# TYPE amqp_gw_connected gauge");
    assert_line(t, "amqp_gw_connected 0");
    assert_line(t, "amqp_gw_reconnects_total 0");
    assert_line(t, "amqp_gw_reloads_total{result=\"ok\"} 0");
    assert_line(t, "amqp_gw_reloads_total{result=\"failed\"} 0");
    cr_assert_null(strstr(t, "amqp_gw_events_routed_total{"), "no routed sample before any");
    cr_assert_eq(t[strlen(t) - 1], '\n');
    free(t);
    gw_metrics_free(m);
}

Test(metrics, counters_with_labels_render_one_line_per_label_set)
{
    gw_metrics *m = new_quiet();
    gw_metrics_received(m, "new");
    gw_metrics_received(m, "new");
    gw_metrics_received(m, "new");
    gw_metrics_routed(m, "order.*", "orders");
    gw_metrics_routed(m, "order.*", "orders");
    gw_metrics_routed(m, "order.*", "audit");
    gw_metrics_routed(m, "user.created", "orders");
    gw_metrics_retried(m, "nack");
    gw_metrics_retried(m, "nack");
    gw_metrics_retried(m, "timeout");
    gw_metrics_dead_lettered(m, "no_route", "", 1000);
    gw_metrics_deferred(m, "orders");
    gw_metrics_deferred(m, "orders");
    gw_metrics_reconnect(m);
    gw_metrics_reload(m, true);
    gw_metrics_reload(m, false);
    gw_metrics_reload(m, false);
    char *t = gw_metrics_render(m);
    assert_line(t, "amqp_gw_events_received_total 3");
    assert_line(t, "amqp_gw_events_routed_total{route=\"order.*\",exchange=\"orders\"} 2");
    assert_line(t, "amqp_gw_events_routed_total{route=\"order.*\",exchange=\"audit\"} 1");
    assert_line(t, "amqp_gw_events_routed_total{route=\"user.created\",exchange=\"orders\"} 1");
    assert_line(t, "amqp_gw_events_retried_total{reason=\"nack\"} 2");
    assert_line(t, "amqp_gw_events_retried_total{reason=\"timeout\"} 1");
    assert_line(t, "amqp_gw_events_dead_lettered_total{reason=\"no_route\"} 1");
    assert_line(t, "amqp_gw_events_deferred_total{exchange=\"orders\"} 2");
    assert_line(t, "amqp_gw_reconnects_total 1");
    assert_line(t, "amqp_gw_reloads_total{result=\"ok\"} 1");
    assert_line(t, "amqp_gw_reloads_total{result=\"failed\"} 2");
    free(t);
    gw_metrics_free(m);
}

Test(metrics, contract_violations_count_per_route_and_rule)
{
    gw_metrics *m = new_quiet();
    gw_metrics_contract_violation(m, "order.*", "/data/order_id");
    gw_metrics_contract_violation(m, "order.*", "/data/order_id");
    gw_metrics_contract_violation(m, "order.*", "version");
    gw_metrics_contract_violation(m, "user.created", "body");
    char *t = gw_metrics_render(m);
    assert_line(t, "# TYPE amqp_gw_contract_violations_total counter");
    assert_line(t,
                "amqp_gw_contract_violations_total{route=\"order.*\",rule=\"/data/order_id\"} 2");
    assert_line(t, "amqp_gw_contract_violations_total{route=\"order.*\",rule=\"version\"} 1");
    assert_line(t, "amqp_gw_contract_violations_total{route=\"user.created\",rule=\"body\"} 1");
    free(t);
    gw_metrics_free(m);
}

Test(metrics, deliveries_count_per_origin_and_only_new_ones_count_as_events_received)
{
    gw_metrics *m = new_quiet();
    gw_metrics_received(m, "new");
    gw_metrics_received(m, "new");
    gw_metrics_received(m, "retry");
    gw_metrics_received(m, "retry");
    gw_metrics_received(m, "retry");
    gw_metrics_received(m, "rejected");
    char *t = gw_metrics_render(m);
    assert_line(t, "# TYPE amqp_gw_deliveries_total counter");
    assert_line(t, "amqp_gw_events_received_total 2");
    assert_line(t, "amqp_gw_deliveries_total{origin=\"new\"} 2");
    assert_line(t, "amqp_gw_deliveries_total{origin=\"retry\"} 3");
    assert_line(t, "amqp_gw_deliveries_total{origin=\"rejected\"} 1");
    free(t);
    gw_metrics_free(m);
}

Test(metrics, gauges_hold_the_last_value_set)
{
    gw_metrics *m = new_quiet();
    gw_metrics_set_in_flight(m, 7);
    gw_metrics_set_in_flight(m, 42);
    gw_metrics_set_connected(m, true);
    gw_metrics_breaker_state(m, "orders", 1, 1000);
    gw_metrics_breaker_state(m, "audit", 0, 1000);
    gw_metrics_breaker_state(m, "orders", 2, 1000);
    char *t = gw_metrics_render(m);
    assert_line(t, "amqp_gw_in_flight 42");
    assert_line(t, "amqp_gw_connected 1");
    assert_line(t, "amqp_gw_circuit_state{exchange=\"orders\"} 2");
    assert_line(t, "amqp_gw_circuit_state{exchange=\"audit\"} 0");
    cr_assert_null(strstr(t, "amqp_gw_circuit_state{exchange=\"orders\"} 1"));
    free(t);
    gw_metrics_free(m);
}

Test(metrics, a_known_destination_is_closed_until_its_breaker_says_otherwise)
{
    gw_metrics *m = new_quiet();
    gw_metrics_breaker_known(m, "billing");
    gw_metrics_breaker_state(m, "orders", 1, 1000);
    gw_metrics_breaker_known(m, "orders"); /* does not reset a state already set */
    char *t = gw_metrics_render(m);
    assert_line(t, "amqp_gw_circuit_state{exchange=\"billing\"} 0");
    assert_line(t, "amqp_gw_circuit_state{exchange=\"orders\"} 1");
    free(t);
    gw_metrics_free(m);
}

Test(metrics, latency_histogram_buckets_are_cumulative_with_sum_and_count)
{
    gw_metrics *m = new_quiet();
    /* 0 and 1 ms land in le=0.001 (upper bounds are inclusive), 7 in 0.01, 100 in 0.1,
     * 2500 in 2.5, and 60000 only in +Inf. */
    uint64_t samples[] = {0, 1, 7, 100, 2500, 60000};
    for (size_t i = 0; i < sizeof samples / sizeof samples[0]; i++)
        gw_metrics_confirm_latency(m, samples[i]);
    char *t = gw_metrics_render(m);
    assert_line(t, "amqp_gw_confirm_latency_seconds_bucket{le=\"0.001\"} 2");
    assert_line(t, "amqp_gw_confirm_latency_seconds_bucket{le=\"0.005\"} 2");
    assert_line(t, "amqp_gw_confirm_latency_seconds_bucket{le=\"0.01\"} 3");
    assert_line(t, "amqp_gw_confirm_latency_seconds_bucket{le=\"0.025\"} 3");
    assert_line(t, "amqp_gw_confirm_latency_seconds_bucket{le=\"0.05\"} 3");
    assert_line(t, "amqp_gw_confirm_latency_seconds_bucket{le=\"0.1\"} 4");
    assert_line(t, "amqp_gw_confirm_latency_seconds_bucket{le=\"0.25\"} 4");
    assert_line(t, "amqp_gw_confirm_latency_seconds_bucket{le=\"0.5\"} 4");
    assert_line(t, "amqp_gw_confirm_latency_seconds_bucket{le=\"1\"} 4");
    assert_line(t, "amqp_gw_confirm_latency_seconds_bucket{le=\"2.5\"} 5");
    assert_line(t, "amqp_gw_confirm_latency_seconds_bucket{le=\"5\"} 5");
    assert_line(t, "amqp_gw_confirm_latency_seconds_bucket{le=\"10\"} 5");
    assert_line(t, "amqp_gw_confirm_latency_seconds_bucket{le=\"+Inf\"} 6");
    assert_line(t, "amqp_gw_confirm_latency_seconds_sum 62.608");
    assert_line(t, "amqp_gw_confirm_latency_seconds_count 6");
    free(t);
    gw_metrics_free(m);
}

Test(metrics, label_values_escape_backslash_quote_and_newline)
{
    gw_metrics *m = new_quiet();
    gw_metrics_dead_lettered(m, "a\\b\"c\nd", "", 1000);
    gw_metrics_routed(m, NULL, "x\"y");
    char *t = gw_metrics_render(m);
    assert_line(t, "amqp_gw_events_dead_lettered_total{reason=\"a\\\\b\\\"c\\nd\"} 1");
    assert_line(t, "amqp_gw_events_routed_total{route=\"\",exchange=\"x\\\"y\"} 1");
    free(t);
    gw_metrics_free(m);
}

Test(metrics, label_values_are_copied_not_borrowed)
{
    gw_metrics *m = new_quiet();
    char reason[16] = "nack";
    gw_metrics_retried(m, reason);
    strcpy(reason, "zzzz");
    char *t = gw_metrics_render(m);
    assert_line(t, "amqp_gw_events_retried_total{reason=\"nack\"} 1");
    free(t);
    gw_metrics_free(m);
}

Test(metrics, null_handle_updates_are_no_ops)
{
    gw_metrics_received(NULL, "new");
    gw_metrics_routed(NULL, "r", "e");
    gw_metrics_retried(NULL, "nack");
    gw_metrics_dead_lettered(NULL, "no_route", NULL, 0);
    gw_metrics_deferred(NULL, "e");
    gw_metrics_breaker_state(NULL, "e", 1, 0);
    gw_metrics_set_in_flight(NULL, 3);
    gw_metrics_set_connected(NULL, true);
    gw_metrics_reconnect(NULL);
    gw_metrics_confirm_latency(NULL, 5);
    gw_metrics_reload(NULL, true);
    cr_assert_null(gw_metrics_render(NULL));
    gw_metrics_free(NULL);
}

struct hammer {
    gw_metrics *m;
    const char *exchange;
    pthread_barrier_t *start;
};

static void *hammer_run(void *arg)
{
    struct hammer *h = arg;
    pthread_barrier_wait(h->start); /* both threads begin together, to overlap */
    /* Separate loops, so each family is hammered by both threads at once. */
    for (int i = 0; i < 100000; i++)
        gw_metrics_received(h->m, "new");
    for (int i = 0; i < 100000; i++) {
        gw_metrics_routed(h->m, "order.*", h->exchange);
        gw_metrics_routed(h->m, "order.*", "shared");
    }
    return NULL;
}

Test(metrics, two_threads_incrementing_lose_no_updates, .init = watchdog)
{
    gw_metrics *m = new_quiet();
    pthread_barrier_t start;
    cr_assert_eq(pthread_barrier_init(&start, NULL, 2), 0);
    struct hammer a = {m, "left", &start}, b = {m, "right", &start};
    pthread_t ta, tb;
    cr_assert_eq(pthread_create(&ta, NULL, hammer_run, &a), 0);
    cr_assert_eq(pthread_create(&tb, NULL, hammer_run, &b), 0);
    pthread_join(ta, NULL);
    pthread_join(tb, NULL);
    pthread_barrier_destroy(&start);
    char *t = gw_metrics_render(m);
    assert_line(t, "amqp_gw_events_received_total 200000");
    assert_line(t, "amqp_gw_events_routed_total{route=\"order.*\",exchange=\"shared\"} 200000");
    assert_line(t, "amqp_gw_events_routed_total{route=\"order.*\",exchange=\"left\"} 100000");
    assert_line(t, "amqp_gw_events_routed_total{route=\"order.*\",exchange=\"right\"} 100000");
    free(t);
    gw_metrics_free(m);
}

Test(metrics, metrics_endpoint_serves_prometheus_text_over_http, .init = watchdog)
{
    int port;
    gw_metrics *m = new_listening(&port);
    gw_metrics_received(m, "new");
    gw_metrics_routed(m, "order.created", "orders");
    struct reply r;
    cr_assert(http("127.0.0.1", port, "GET", "/metrics", &r), "cannot connect to port %d", port);
    cr_assert_eq(r.status, 200, "%s", r.head);
    cr_assert_not_null(strstr(r.head, "Content-Type: text/plain; version=0.0.4"), "%s", r.head);
    char *want = gw_metrics_render(m);
    cr_assert_str_eq(r.body, want);
    free(want);
    assert_line(r.body, "amqp_gw_events_received_total 1");
    gw_metrics_free(m);
}

Test(metrics, healthz_is_503_until_connected_then_200, .init = watchdog)
{
    int port;
    gw_metrics *m = new_listening(&port);
    struct reply r;
    cr_assert(http("127.0.0.1", port, "GET", "/healthz", &r));
    cr_assert_eq(r.status, 503, "%s", r.head);
    cr_assert_str_eq(r.body, "not connected\n");
    gw_metrics_set_connected(m, true);
    cr_assert(http("127.0.0.1", port, "GET", "/healthz", &r));
    cr_assert_eq(r.status, 200, "%s", r.head);
    cr_assert_str_eq(r.body, "ok\n");
    gw_metrics_set_connected(m, false);
    cr_assert(http("127.0.0.1", port, "GET", "/healthz", &r));
    cr_assert_eq(r.status, 503, "%s", r.head);
    gw_metrics_free(m);
}

Test(metrics, unknown_path_is_404_and_post_is_405, .init = watchdog)
{
    int port;
    gw_metrics *m = new_listening(&port);
    struct reply r;
    cr_assert(http("127.0.0.1", port, "GET", "/index.html", &r));
    cr_assert_eq(r.status, 404, "%s", r.head);
    cr_assert(http("127.0.0.1", port, "GET", "/metricsx", &r));
    cr_assert_eq(r.status, 404, "%s", r.head);
    cr_assert(http("127.0.0.1", port, "POST", "/metrics", &r));
    cr_assert_eq(r.status, 405, "%s", r.head);
    cr_assert_not_null(strstr(r.head, "Allow: GET, HEAD"), "%s", r.head);
    gw_metrics_free(m);
}

Test(metrics, free_stops_the_listener_and_releases_the_port, .init = watchdog)
{
    int port;
    gw_metrics *m = new_listening(&port);
    gw_metrics_free(m);
    struct reply r;
    cr_assert_not(http("127.0.0.1", port, "GET", "/healthz", &r), "still listening");
    char listen[64], err[256] = "";
    snprintf(listen, sizeof listen, "127.0.0.1:%d", port);
    m = gw_metrics_new(listen, err, sizeof err);
    cr_assert_not_null(m, "rebinding %s: %s", listen, err);
    gw_metrics_free(m);
}

Test(metrics, listens_on_localhost_and_all_interfaces, .init = watchdog)
{
    const char *hosts[] = {"localhost", "0.0.0.0"};
    for (size_t i = 0; i < 2; i++) {
        int port = free_port(AF_INET);
        char listen[64], err[256] = "";
        snprintf(listen, sizeof listen, "%s:%d", hosts[i], port);
        gw_metrics *m = gw_metrics_new(listen, err, sizeof err);
        cr_assert_not_null(m, "gw_metrics_new(%s): %s", listen, err);
        struct reply r;
        cr_assert(http("localhost", port, "GET", "/healthz", &r), "%s: no connection", listen);
        cr_assert_eq(r.status, 503);
        gw_metrics_free(m);
    }
}

Test(metrics, listens_on_a_bracketed_ipv6_address, .init = watchdog)
{
    int port = free_port(AF_INET6);
    if (port < 0)
        cr_skip_test("no IPv6 loopback on this machine");
    char listen[64], err[256] = "";
    snprintf(listen, sizeof listen, "[::1]:%d", port);
    gw_metrics *m = gw_metrics_new(listen, err, sizeof err);
    cr_assert_not_null(m, "gw_metrics_new(%s): %s", listen, err);
    gw_metrics_set_connected(m, true);
    struct reply r;
    cr_assert(http("::1", port, "GET", "/healthz", &r), "no connection on [::1]:%d", port);
    cr_assert_eq(r.status, 200, "%s", r.head);
    gw_metrics_free(m);
}

Test(metrics, port_in_use_returns_null_with_the_reason)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {0};
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    socklen_t len = sizeof a;
    cr_assert_eq(bind(fd, (struct sockaddr *)&a, len), 0);
    cr_assert_eq(listen(fd, 1), 0);
    cr_assert_eq(getsockname(fd, (struct sockaddr *)&a, &len), 0);
    char listen_at[64], err[256] = "", want[128];
    snprintf(listen_at, sizeof listen_at, "127.0.0.1:%d", ntohs(a.sin_port));
    snprintf(want, sizeof want, "cannot listen on %s: Address already in use", listen_at);
    cr_assert_null(gw_metrics_new(listen_at, err, sizeof err));
    cr_assert_str_eq(err, want);
    close(fd);
}

struct bad_listen {
    char listen[32];
    char err[96];
};

ParameterizedTestParameters(metrics, malformed_addresses_return_null_with_the_reason)
{
    static struct bad_listen cases[] = {
        {"nonsense", "cannot listen on nonsense: expected \"host:port\""},
        {":9464", "cannot listen on :9464: expected \"host:port\""},
        {"127.0.0.1:", "cannot listen on 127.0.0.1:: port must be 1..65535"},
        {"127.0.0.1:0", "cannot listen on 127.0.0.1:0: port must be 1..65535"},
        {"127.0.0.1:65536", "cannot listen on 127.0.0.1:65536: port must be 1..65535"},
        {"127.0.0.1:94x4", "cannot listen on 127.0.0.1:94x4: port must be 1..65535"},
        {"::1:9464", "cannot listen on ::1:9464: an IPv6 host must be in brackets"},
        {"[]:9464", "cannot listen on []:9464: expected \"[ipv6]:port\""},
        {"[::1:9464", "cannot listen on [::1:9464: expected \"[ipv6]:port\""},
    };
    return cr_make_param_array(struct bad_listen, cases, sizeof cases / sizeof cases[0]);
}

ParameterizedTest(struct bad_listen *c, metrics, malformed_addresses_return_null_with_the_reason)
{
    char err[256] = "";
    cr_assert_null(gw_metrics_new(c->listen, err, sizeof err), "%s accepted", c->listen);
    cr_assert_str_eq(err, c->err);
}

Test(metrics, unresolvable_host_returns_null_with_the_resolver_reason)
{
    char err[256] = "";
    cr_assert_null(gw_metrics_new("no-such-host.invalid:9464", err, sizeof err));
    cr_assert(strncmp(err, "cannot listen on no-such-host.invalid:9464: ", 44) == 0, "%s", err);
    cr_assert_null(strchr(err, '\n'), "one line: %s", err);
}

Test(metrics, address_not_on_this_machine_returns_null_with_the_reason)
{
    char err[256] = "";
    cr_assert_null(gw_metrics_new("192.0.2.1:9464", err, sizeof err));
    cr_assert_str_eq(err, "cannot listen on 192.0.2.1:9464: Cannot assign requested address");
}

Test(metrics, queue_depths_and_the_dlq_age_render_and_unknown_ones_are_left_out)
{
    gw_metrics *m = new_quiet();
    char *t = gw_metrics_render(m);
    assert_line(t, "# TYPE amqp_gw_queue_messages gauge");
    assert_line(t, "# TYPE amqp_gw_dlq_oldest_age_seconds gauge");
    cr_assert_null(strstr(t, "\namqp_gw_dlq_oldest_age_seconds "), "no age before it is measured");
    free(t);
    gw_metrics_queue_depth(m, "gw.inbound", "inbound", 12, NULL);
    gw_metrics_queue_depth(m, "gw.dlq", "dlq", 3, NULL);
    gw_metrics_queue_depth(m, "gw.retry.1000", "retry", 0, NULL);
    gw_metrics_queue_depth(m, "gw.rejected", "rejected", -1, "404 NOT_FOUND");
    gw_metrics_dlq_age(m, 42, NULL);
    t = gw_metrics_render(m);
    assert_line(t, "amqp_gw_queue_messages{queue=\"gw.inbound\",role=\"inbound\"} 12");
    assert_line(t, "amqp_gw_queue_messages{queue=\"gw.dlq\",role=\"dlq\"} 3");
    assert_line(t, "amqp_gw_queue_messages{queue=\"gw.retry.1000\",role=\"retry\"} 0");
    cr_assert_null(strstr(t, "queue=\"gw.rejected\""), "an unknown depth is left out:\n%s", t);
    assert_line(t, "amqp_gw_dlq_oldest_age_seconds 42");
    free(t);
    gw_metrics_queue_depth(m, "gw.inbound", "inbound", 5, NULL);
    gw_metrics_dlq_age(m, -1, "the management API did not answer");
    t = gw_metrics_render(m);
    assert_line(t, "amqp_gw_queue_messages{queue=\"gw.inbound\",role=\"inbound\"} 5");
    cr_assert_null(strstr(t, "\namqp_gw_dlq_oldest_age_seconds "), "an unknown age is left out");
    free(t);
    gw_metrics_free(m);
}

Test(metrics, status_json_says_what_the_table_holds)
{
    gw_metrics *m = new_quiet();
    gw_metrics_set_started(m, 1700000000000ULL);
    gw_destination to[2] = {{.exchange = "orders"}, {.exchange = "audit", .routing_key = "all"}};
    gw_route r = {.event = "order.*", .to = to, .n_to = 2};
    gw_metrics_set_routes(m, &r, 1);
    gw_metrics_breaker_known(m, "orders");
    gw_metrics_breaker_known(m, "audit");
    gw_metrics_routed(m, "order.*", "orders");
    gw_metrics_routed(m, "order.*", "orders");
    gw_metrics_breaker_state(m, "audit", 1, 1700000005000ULL);
    gw_metrics_set_connected(m, true);
    gw_metrics_set_node(m, "amqp://gw@rabbit-1:5672/%2f");
    gw_metrics_queue_depth(m, "gw.dlq", "dlq", 2, NULL);
    gw_metrics_queue_depth(m, "gw.inbound", "inbound", -1, "channel closed");
    gw_metrics_dlq_age(m, 7, NULL);
    char *j = gw_metrics_status_json(m, 1700000010000ULL);
    cr_assert_not_null(j);
    static const char *const want[] = {
        "\"started_at\":\"2023-11-14T22:13:20.000Z\"",
        "\"connection\":{\"connected\":true,\"node\":\"amqp://gw@rabbit-1:5672/%2f\"",
        "{\"event\":\"order.*\",\"to\":[{\"exchange\":\"orders\",\"routing_key\":null,"
        "\"routed\":2},{\"exchange\":\"audit\",\"routing_key\":\"all\",\"routed\":0}]}",
        "{\"exchange\":\"orders\",\"state\":\"closed\",\"since\":\"2023-11-14T22:13:20.000Z\","
        "\"for_seconds\":10,\"deferred\":0}",
        "{\"exchange\":\"audit\",\"state\":\"open\",\"since\":\"2023-11-14T22:13:25.000Z\","
        "\"for_seconds\":5,\"deferred\":0}",
        "{\"name\":\"gw.dlq\",\"role\":\"dlq\",\"messages\":2}",
        "{\"name\":\"gw.inbound\",\"role\":\"inbound\",\"messages\":null,\"error\":\"channel "
        "closed\"}",
        "\"oldest_age_seconds\":7",
        "\"reloads\":{\"ok\":0,\"failed\":0,\"last_at\":null,\"last_ok\":null}",
    };
    for (size_t i = 0; i < sizeof want / sizeof want[0]; i++)
        cr_assert_not_null(strstr(j, want[i]), "missing %s\n--- got ---\n%s", want[i], j);
    free(j);
    gw_metrics_free(m);
}

Test(metrics, status_json_keeps_the_last_dead_letters_newest_first)
{
    gw_metrics *m = new_quiet();
    for (int i = 0; i < GW_METRICS_RECENT + 3; i++)
        gw_metrics_dead_lettered(m, i % 2 ? "unroutable" : "no_route", i % 2 ? "user.*" : "",
                                 1700000000000ULL + (uint64_t)i * 1000);
    char *j = gw_metrics_status_json(m, 1700000100000ULL);
    cr_assert_not_null(strstr(j, "\"dead_lettered_by_reason\":{\"no_route\":7,\"unroutable\":6}"),
                       "%s", j);
    /* the newest (i = 12, at ...:32) first, the oldest kept is i = 3 (at ...:23) */
    const char *first = strstr(j, "\"recent\":[{\"at\":\"2023-11-14T22:13:32.000Z\","
                                  "\"reason\":\"no_route\",\"route\":\"\"}");
    cr_assert_not_null(first, "%s", j);
    cr_assert_not_null(strstr(j, "{\"at\":\"2023-11-14T22:13:23.000Z\",\"reason\":\"unroutable\","
                                 "\"route\":\"user.*\"}]"),
                       "%s", j);
    cr_assert_null(strstr(j, "22:13:22.000Z"), "only the last %d are kept", GW_METRICS_RECENT);
    free(j);
    gw_metrics_free(m);
}

Test(metrics, the_status_page_and_its_json_are_served, .init = watchdog)
{
    int port;
    gw_metrics *m = new_listening(&port);
    struct reply r;
    cr_assert(http("127.0.0.1", port, "GET", "/", &r));
    cr_assert_eq(r.status, 200);
    cr_assert_not_null(strstr(r.head, "Content-Type: text/html; charset=utf-8"), "%s", r.head);
    cr_assert_not_null(strstr(r.body, "<title>amqp-gw status</title>"));
    cr_assert_not_null(strstr(r.body, "fetch(\"status.json\""));
    cr_assert_null(strstr(r.body, "http://"), "self-contained: no outside resource");
    cr_assert_null(strstr(r.body, "https://"), "self-contained: no outside resource");
    cr_assert(http("127.0.0.1", port, "GET", "/status.json", &r));
    cr_assert_eq(r.status, 200);
    cr_assert_not_null(strstr(r.head, "Content-Type: application/json"), "%s", r.head);
    cr_assert_eq(r.body[0], '{');
    cr_assert_not_null(strstr(r.body, "\"breakers\":[]"), "%s", r.body);
    gw_metrics_free(m);
}
