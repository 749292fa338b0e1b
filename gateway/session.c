/* session.c — all rabbitmq-c use: connect, channels, topology, publish, frames, acks.
 *
 * Owns two connections (consumer and publisher) on one thread. Frames are read by
 * a raw dispatcher over amqp_simple_wait_frame_noblock and handed to the caller's
 * gw_session_handler; nothing here decides what a message means. rabbitmq-c errors
 * stop here: they become gw_err plus a one-line text. Any connection-level problem
 * (socket error, heartbeat timeout, connection.close, a failed send) marks the
 * session dead; the caller destroys it and reconnects.
 */
#include "session.h"

#include "access.h"
#include "alloc.h"
#include "clock.h"
#include "log.h"
#include "url.h"

#include <amqp.h>
#include <amqp_framing.h>
#include <amqp_ssl_socket.h>
#include <amqp_tcp_socket.h>
#include <openssl/ssl.h>

#include <errno.h>
#include <netdb.h>
#include <poll.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <stddef.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#define CONSUMER_CH             1
#define DEPTH_CH                2 /* consumer connection: passive declares, never waited for */
#define SCRATCH_CH              (GW_CH_MAX + 1)
#define RPC_TIMEOUT_S           15
#define CONSUMER_READ_FRAME_MAX (1 << 20) /* see gw_session_connect */
#define CONNECT_TIMEOUT_S       5

typedef struct gw_conn {
    amqp_connection_state_t st;
    bool alive;
    bool blocked; /* connection.blocked: the broker reads nothing more from it */
    uint64_t last_service_ms;
} gw_conn;

struct gw_session {
    gw_conn cons;
    gw_conn pub;
    bool chan_open[SCRATCH_CH + 1];   /* publisher connection channels */
    bool chan_closing[GW_CH_MAX + 1]; /* retired: channel.close sent, close-ok awaited */
    uint64_t seq[GW_CH_MAX + 1];      /* last confirm sequence number used per channel */
    bool depth_open;                  /* DEPTH_CH opened (its channel.open sent) */
    bool blocked;
    bool dead;
    char error[512];
    size_t frame_max;
    int heartbeat_s;
};

struct gw_msg {
    amqp_message_t msg;
    uint64_t delivery_tag;
    amqp_bytes_t consumer_tag;
    amqp_bytes_t exchange;
    amqp_bytes_t routing_key;
    gw_delivery *view;          /* filled once by view_fill, right after the message is read
                                   (owned; its own block: with it a gw_msg would be too big
                                   for malloc's per-thread cache, ~500 instructions more per
                                   delivery) */
    gw_delivery_entry *entries; /* view->headers (owned) */
};

static void view_fill(gw_msg *m);

static gw_str str_of(amqp_bytes_t b)
{
    return (gw_str){b.bytes ? (const char *)b.bytes : "", b.len};
}

static amqp_bytes_t bytes_of(gw_str s)
{
    amqp_bytes_t b;
    b.len = s.len;
    b.bytes = (void *)s.ptr;
    return b;
}

static void set_err(char *err, size_t len, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static void set_err(char *err, size_t len, const char *fmt, ...)
{
    if (!err || !len)
        return;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err, len, fmt, ap);
    va_end(ap);
}

static void die(gw_session *s, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void die(gw_session *s, const char *fmt, ...)
{
    if (s->dead)
        return;
    s->dead = true;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(s->error, sizeof s->error, fmt, ap);
    va_end(ap);
}

/* Describes an RPC reply in one line. */
static void reply_text(amqp_rpc_reply_t r, char *buf, size_t len, int *code)
{
    if (code)
        *code = 0;
    switch (r.reply_type) {
    case AMQP_RESPONSE_NORMAL:
        snprintf(buf, len, "ok");
        return;
    case AMQP_RESPONSE_NONE:
        snprintf(buf, len, "missing RPC reply");
        return;
    case AMQP_RESPONSE_LIBRARY_EXCEPTION:
        snprintf(buf, len, "%s", amqp_error_string2(r.library_error));
        return;
    case AMQP_RESPONSE_SERVER_EXCEPTION:
        if (r.reply.id == AMQP_CONNECTION_CLOSE_METHOD) {
            amqp_connection_close_t *c = r.reply.decoded;
            if (code)
                *code = c->reply_code;
            snprintf(buf, len, "connection closed: %d %.*s", c->reply_code, (int)c->reply_text.len,
                     (char *)c->reply_text.bytes);
        } else if (r.reply.id == AMQP_CHANNEL_CLOSE_METHOD) {
            amqp_channel_close_t *c = r.reply.decoded;
            if (code)
                *code = c->reply_code;
            snprintf(buf, len, "%d %.*s", c->reply_code, (int)c->reply_text.len,
                     (char *)c->reply_text.bytes);
        } else {
            snprintf(buf, len, "unexpected server method %s", amqp_method_name(r.reply.id));
        }
        return;
    }
    snprintf(buf, len, "unknown reply");
}

/* After a 403 ACCESS_REFUSED on op: the broker's words, then the permission op needs. */
static void name_permission(char *err, size_t err_len, int code, gw_access_op op)
{
    size_t n = err ? strlen(err) : 0;
    if (gw_access_refused(code) && n < err_len)
        snprintf(err + n, err_len - n, ": %s", gw_access_hint(op));
}

/* After a failed RPC on the publisher connection: acknowledge a channel close so the
 * channel can be reopened, or mark the session dead on anything worse. Returns the
 * broker's reply code (0 when not a channel close). */
static int rpc_failed(gw_session *s, gw_conn *c, int ch, amqp_rpc_reply_t r, char *err,
                      size_t err_len, const char *what)
{
    char text[300];
    int code = 0;
    reply_text(r, text, sizeof text, &code);
    set_err(err, err_len, "%s: %s", what, text);
    if (r.reply_type == AMQP_RESPONSE_SERVER_EXCEPTION && r.reply.id == AMQP_CHANNEL_CLOSE_METHOD) {
        amqp_channel_close_ok_t ok = {0};
        if (amqp_send_method(c->st, (amqp_channel_t)ch, AMQP_CHANNEL_CLOSE_OK_METHOD, &ok) !=
            AMQP_STATUS_OK)
            die(s, "%s: sending channel.close-ok failed", what);
        if (c == &s->pub)
            s->chan_open[ch] = false;
        else
            die(s, "consumer channel closed: %s", text);
        return code;
    }
    if (r.reply_type == AMQP_RESPONSE_SERVER_EXCEPTION &&
        r.reply.id == AMQP_CONNECTION_CLOSE_METHOD) {
        amqp_connection_close_ok_t ok = {0};
        amqp_send_method(c->st, 0, AMQP_CONNECTION_CLOSE_OK_METHOD, &ok);
    }
    die(s, "%s: %s", what, text);
    return code;
}

static amqp_table_t login_properties(const char *name, amqp_table_entry_t *caps,
                                     amqp_table_entry_t *props)
{
    caps[0].key = amqp_cstring_bytes("connection.blocked");
    caps[0].value.kind = AMQP_FIELD_KIND_BOOLEAN;
    caps[0].value.value.boolean = 1;
    caps[1].key = amqp_cstring_bytes("consumer_cancel_notify");
    caps[1].value.kind = AMQP_FIELD_KIND_BOOLEAN;
    caps[1].value.value.boolean = 1;
    caps[2].key = amqp_cstring_bytes("authentication_failure_close");
    caps[2].value.kind = AMQP_FIELD_KIND_BOOLEAN;
    caps[2].value.value.boolean = 1;
    props[0].key = amqp_cstring_bytes("capabilities");
    props[0].value.kind = AMQP_FIELD_KIND_TABLE;
    props[0].value.value.table.num_entries = 3;
    props[0].value.value.table.entries = caps;
    props[1].key = amqp_cstring_bytes("connection_name");
    props[1].value.kind = AMQP_FIELD_KIND_UTF8;
    props[1].value.value.bytes = amqp_cstring_bytes(name);
    props[2].key = amqp_cstring_bytes("product");
    props[2].value.kind = AMQP_FIELD_KIND_UTF8;
    props[2].value.value.bytes = amqp_cstring_bytes("amqp-gw " GW_VERSION);
    amqp_table_t t = {3, props};
    return t;
}

/* Why a TCP connect to host:port fails now: 0 when it succeeds, else an errno
 * (ETIMEDOUT after timeout_ms). rabbitmq-c 0.11 reports every refused, unreachable or
 * reset connect as "a socket error occurred" and the errno is gone by the time it
 * returns, so a failed connect is tried once more here to learn what happened. */
static int tcp_probe(const char *host, int port, int timeout_ms)
{
    struct addrinfo hints, *res = NULL;
    memset(&hints, 0, sizeof hints);
    hints.ai_family = AF_UNSPEC;
    hints.ai_socktype = SOCK_STREAM;
    char service[16];
    snprintf(service, sizeof service, "%d", port);
    if (getaddrinfo(host, service, &hints, &res) != 0)
        return EHOSTUNREACH;
    int e = EHOSTUNREACH;
    for (const struct addrinfo *ai = res; ai; ai = ai->ai_next) {
        int fd =
            socket(ai->ai_family, ai->ai_socktype | SOCK_NONBLOCK | SOCK_CLOEXEC, ai->ai_protocol);
        if (fd < 0) {
            e = errno;
            continue;
        }
        if (connect(fd, ai->ai_addr, ai->ai_addrlen) == 0) {
            e = 0;
        } else if (errno != EINPROGRESS) {
            e = errno;
        } else {
            struct pollfd p = {fd, POLLOUT, 0};
            int r = poll(&p, 1, timeout_ms);
            socklen_t len = sizeof e;
            if (r == 0)
                e = ETIMEDOUT;
            else if (r < 0 || getsockopt(fd, SOL_SOCKET, SO_ERROR, &e, &len) != 0)
                e = errno;
        }
        close(fd);
        if (e == 0)
            break;
    }
    freeaddrinfo(res);
    return e;
}

/* A failed amqp_socket_open_noblock as what happened and what to do. */
static void explain_open_failure(const struct amqp_connection_info *ci, int rc, char *err,
                                 size_t err_len)
{
    const char *host = ci->host;
    int port = ci->port;
    int e = 0;
    if (rc == AMQP_STATUS_SOCKET_ERROR || rc == AMQP_STATUS_TCP_ERROR)
        e = tcp_probe(host, port, 2000);
    if (rc == AMQP_STATUS_HOSTNAME_RESOLUTION_FAILED)
        set_err(err, err_len,
                "cannot connect to %s:%d: the host name does not resolve: check the host in the "
                "broker URL",
                host, port);
    else if (e == ECONNREFUSED)
        set_err(err, err_len,
                "cannot connect to %s:%d: connection refused, nothing is listening at %s:%d: is "
                "the broker running, and is %d its AMQP port?",
                host, port, host, port, port);
    else if (rc == AMQP_STATUS_TIMEOUT || e == ETIMEDOUT)
        set_err(err, err_len,
                "cannot connect to %s:%d: no answer within %d s: check the host and port in the "
                "broker URL, and any firewall in between",
                host, port, CONNECT_TIMEOUT_S);
    else if (e == EHOSTUNREACH || e == ENETUNREACH)
        set_err(err, err_len, "cannot connect to %s:%d: %s: check the host and the network", host,
                port, strerror(e));
    else if (rc == AMQP_STATUS_SSL_PEER_VERIFY_FAILED)
        set_err(err, err_len,
                "cannot connect to %s:%d: %s: the broker's certificate is not signed by "
                "broker.tls.ca_file (or, without one, by a CA the system trusts)",
                host, port, amqp_error_string2(rc));
    else if (rc == AMQP_STATUS_SSL_HOSTNAME_VERIFY_FAILED)
        set_err(err, err_len,
                "cannot connect to %s:%d: %s: the broker's certificate does not name \"%s\": use "
                "a host name it has in the URL (or broker.tls.verify_hostname: false)",
                host, port, amqp_error_string2(rc), host);
    else if (rc == AMQP_STATUS_SSL_CONNECTION_FAILED || rc == AMQP_STATUS_SSL_ERROR)
        set_err(err, err_len,
                "cannot connect to %s:%d: %s: is %d the broker's TLS port (amqps://), and does "
                "it accept TLS 1.2 or later?",
                host, port, amqp_error_string2(rc), port);
    else if (e != 0)
        set_err(err, err_len, "cannot connect to %s:%d: %s", host, port, strerror(e));
    else
        set_err(err, err_len, "cannot connect to %s:%d: %s", host, port, amqp_error_string2(rc));
}

/* A failed login as what happened and what to do. Returns GW_ERR_PERMANENT when the
 * broker refused the user or the vhost (only the operator can change that), else
 * GW_ERR_BROKER. */
static gw_err explain_login_failure(const struct amqp_connection_info *ci, const char *user,
                                    amqp_rpc_reply_t r, char *err, size_t err_len)
{
    char text[300];
    int code = 0;
    reply_text(r, text, sizeof text, &code);
    const char *vhost = ci->vhost && ci->vhost[0] ? ci->vhost : "/";
    if (code == AMQP_ACCESS_REFUSED) {
        set_err(err, err_len,
                "login to %s:%d as \"%s\" refused (%s): wrong user name or password: check "
                "AMQP_GW_USER and AMQP_GW_PASSWORD, or the user:password in the broker URL",
                ci->host, ci->port, user, text);
        return GW_ERR_PERMANENT;
    }
    if (code == AMQP_NOT_ALLOWED) {
        set_err(err, err_len,
                "login to %s:%d as \"%s\" refused for vhost \"%s\" (%s): check the vhost in the "
                "broker URL (%%2f is \"/\") and the user's permissions on it",
                ci->host, ci->port, user, vhost, text);
        return GW_ERR_PERMANENT;
    }
    if (r.reply_type == AMQP_RESPONSE_LIBRARY_EXCEPTION)
        set_err(err, err_len,
                "login to %s:%d as \"%s\" failed: %s during the AMQP handshake: is %d the "
                "broker's AMQP port%s?",
                ci->host, ci->port, user, text, ci->port,
                ci->ssl ? "" : " (a TLS port needs amqps://)");
    else
        set_err(err, err_len, "login to %s:%d as \"%s\" failed: %s", ci->host, ci->port, user,
                text);
    return GW_ERR_BROKER;
}

static gw_err open_conn(const gw_config *cfg, const struct amqp_connection_info *ci,
                        const char *name, gw_conn *c, char *err, size_t err_len)
{
    c->st = amqp_new_connection();
    amqp_socket_t *sock;
    if (ci->ssl) {
        sock = amqp_ssl_socket_new(c->st);
        if (!sock) {
            set_err(err, err_len, "cannot create TLS socket");
            return GW_ERR_BROKER;
        }
        amqp_ssl_socket_set_ssl_versions(sock, AMQP_TLSv1_2, AMQP_TLSvLATEST);
        amqp_ssl_socket_set_verify_peer(sock, cfg->tls.verify_peer);
        amqp_ssl_socket_set_verify_hostname(sock, cfg->tls.verify_hostname);
        if (cfg->tls.ca_file) {
            if (amqp_ssl_socket_set_cacert(sock, cfg->tls.ca_file) != AMQP_STATUS_OK) {
                set_err(err, err_len, "tls.ca_file %s: cannot load", cfg->tls.ca_file);
                return GW_ERR_BROKER;
            }
        } else {
            SSL_CTX *ctx = amqp_ssl_socket_get_context(sock);
            if (ctx)
                SSL_CTX_set_default_verify_paths(ctx);
        }
        if (cfg->tls.cert_file && cfg->tls.key_file &&
            amqp_ssl_socket_set_key(sock, cfg->tls.cert_file, cfg->tls.key_file) !=
                AMQP_STATUS_OK) {
            set_err(err, err_len, "tls.cert_file/key_file: cannot load %s / %s", cfg->tls.cert_file,
                    cfg->tls.key_file);
            return GW_ERR_BROKER;
        }
    } else {
        sock = amqp_tcp_socket_new(c->st);
        if (!sock) {
            set_err(err, err_len, "cannot create socket");
            return GW_ERR_BROKER;
        }
    }
    struct timeval tv = {CONNECT_TIMEOUT_S, 0};
    int rc = amqp_socket_open_noblock(sock, ci->host, ci->port, &tv);
    if (rc != AMQP_STATUS_OK) {
        explain_open_failure(ci, rc, err, err_len);
        return GW_ERR_BROKER;
    }
    struct timeval rpc = {RPC_TIMEOUT_S, 0};
    amqp_set_rpc_timeout(c->st, &rpc);
    amqp_table_entry_t caps[3], props[3];
    amqp_table_t t = login_properties(name, caps, props);
    const char *user = cfg->user ? cfg->user : ci->user;
    const char *password = cfg->password ? cfg->password : ci->password;
    amqp_rpc_reply_t r = amqp_login_with_properties(c->st, ci->vhost, 0, AMQP_DEFAULT_FRAME_SIZE,
                                                    (int)cfg->heartbeat_s, &t,
                                                    AMQP_SASL_METHOD_PLAIN, user, password);
    if (r.reply_type != AMQP_RESPONSE_NORMAL)
        return explain_login_failure(ci, user, r, err, err_len);
    c->alive = true;
    c->last_service_ms = gw_clock_mono_ms();
    return GW_OK;
}

static gw_err open_channel(gw_session *s, gw_conn *c, int ch, bool confirm, char *err,
                           size_t err_len)
{
    if (!amqp_channel_open(c->st, (amqp_channel_t)ch)) {
        rpc_failed(s, c, ch, amqp_get_rpc_reply(c->st), err, err_len, "channel.open");
        return GW_ERR_BROKER;
    }
    if (confirm && !amqp_confirm_select(c->st, (amqp_channel_t)ch)) {
        rpc_failed(s, c, ch, amqp_get_rpc_reply(c->st), err, err_len, "confirm.select");
        return GW_ERR_BROKER;
    }
    if (c == &s->pub) {
        s->chan_open[ch] = true;
        if (ch <= GW_CH_MAX)
            s->seq[ch] = 0;
    }
    return GW_OK;
}

gw_err gw_session_connect(const gw_config *cfg, const char *url, const char *name, gw_session **out,
                          char *err, size_t err_len)
{
    gw_err rc = GW_ERR_BROKER;
    char *url_copy = gw_xstrdup(url);
    struct amqp_connection_info ci;
    amqp_default_connection_info(&ci);
    gw_session *s = gw_xcalloc(1, sizeof *s);
    char why[256] = "does not parse";
    if (!gw_url_check(url, why, sizeof why) || amqp_parse_url(url_copy, &ci) != AMQP_STATUS_OK) {
        set_err(err, err_len, "broker URL %s", why);
        goto out;
    }
    /* The URL's scheme decides: amqps:// speaks TLS with the tls: settings. */
    char cname[160];
    snprintf(cname, sizeof cname, "%s consumer", name);
    if ((rc = open_conn(cfg, &ci, cname, &s->cons, err, err_len)) != GW_OK)
        goto out;
    rc = GW_ERR_BROKER;
    /* RabbitMQ accepts a content header of up to frame_max bytes of payload from a
     * publisher (and its own x-death can make one bigger still), but rabbitmq-c 0.11
     * refuses any frame over frame_max bytes including its 8 bytes of framing, and one
     * such delivery wedged the consumer connection at every reconnect. The consumer
     * connection sends no content, so its frame_max only bounds what it reads: give the
     * reader room. */
    if (amqp_tune_connection(s->cons.st, amqp_get_channel_max(s->cons.st), CONSUMER_READ_FRAME_MAX,
                             amqp_get_heartbeat(s->cons.st)) != AMQP_STATUS_OK) {
        set_err(err, err_len, "out of memory");
        goto out;
    }
    snprintf(cname, sizeof cname, "%s publisher", name);
    if (open_conn(cfg, &ci, cname, &s->pub, err, err_len) != GW_OK)
        goto out;
    s->frame_max = (size_t)amqp_get_frame_max(s->pub.st);
    s->heartbeat_s = amqp_get_heartbeat(s->pub.st);
    if (open_channel(s, &s->cons, CONSUMER_CH, false, err, err_len) != GW_OK)
        goto out;
    if (open_channel(s, &s->pub, GW_CH_OWN, true, err, err_len) != GW_OK)
        goto out;
    *out = s;
    s = NULL;
    rc = GW_OK;
out:
    free(url_copy);
    if (s) {
        s->dead = true;
        gw_session_free(s);
    }
    return rc;
}

gw_err gw_session_connect_any(const gw_config *cfg, const char *name, gw_session **out,
                              char *url_out, size_t url_len, char *err, size_t err_len)
{
    set_err(err, err_len, "no broker URL configured");
    if (url_len)
        url_out[0] = '\0';
    for (size_t u = 0; u < cfg->n_broker_urls; u++) {
        gw_log_redact_url(cfg->broker_urls[u], url_out, url_len);
        if (gw_session_connect(cfg, cfg->broker_urls[u], name, out, err, err_len) == GW_OK)
            return GW_OK;
    }
    return GW_ERR_BROKER;
}

static void conn_free(gw_conn *c, bool graceful)
{
    if (!c->st)
        return;
    /* A blocked connection is not read by the broker until the alarm clears, so a
     * connection.close on it would wait out the RPC timeout: just close the socket
     * (what it had not confirmed is redelivered from the inbound queue). */
    if (graceful && c->alive && !c->blocked)
        amqp_connection_close(c->st, AMQP_REPLY_SUCCESS);
    amqp_destroy_connection(c->st);
    c->st = NULL;
}

void gw_session_free(gw_session *s)
{
    if (!s)
        return;
    conn_free(&s->pub, !s->dead);
    conn_free(&s->cons, !s->dead);
    free(s);
}

bool gw_session_alive(const gw_session *s)
{
    return s && !s->dead;
}

const char *gw_session_error(const gw_session *s)
{
    return s->error;
}

size_t gw_session_frame_max(const gw_session *s)
{
    return s->frame_max;
}

bool gw_session_blocked(const gw_session *s)
{
    return s->blocked;
}

bool gw_session_channel_is_open(const gw_session *s, int ch)
{
    return ch > 0 && ch <= SCRATCH_CH && s->chan_open[ch];
}

gw_err gw_session_channel_open(gw_session *s, int ch, char *err, size_t err_len)
{
    if (s->dead) {
        set_err(err, err_len, "session is down");
        return GW_ERR_BROKER;
    }
    if (ch < 1 || ch > GW_CH_MAX) {
        set_err(err, err_len, "channel %d out of range", ch);
        return GW_ERR_INVALID;
    }
    if (s->chan_closing[ch]) {
        set_err(err, err_len, "channel %d is still closing", ch);
        return GW_ERR_INVALID;
    }
    return open_channel(s, &s->pub, ch, true, err, err_len);
}

gw_err gw_session_channel_retire(gw_session *s, int ch)
{
    if (s->dead)
        return GW_ERR_BROKER;
    if (ch < 1 || ch > GW_CH_MAX || !s->chan_open[ch])
        return GW_ERR_INVALID;
    amqp_channel_close_t cl = {
        .reply_code = AMQP_REPLY_SUCCESS,
        .reply_text = amqp_cstring_bytes("replaced: the broker nacked every publish on it"),
    };
    if (amqp_send_method(s->pub.st, (amqp_channel_t)ch, AMQP_CHANNEL_CLOSE_METHOD, &cl) !=
        AMQP_STATUS_OK) {
        die(s, "sending channel.close failed");
        return GW_ERR_BROKER;
    }
    s->chan_open[ch] = false;
    s->chan_closing[ch] = true;
    return GW_OK;
}

/* ---------------------------------------------------------------- topology */

static amqp_table_t args_table(const gw_arg *a, size_t n, const gw_arg *b, size_t nb,
                               amqp_table_entry_t *e, size_t cap)
{
    size_t k = 0;
    for (size_t pass = 0; pass < 2; pass++) {
        const gw_arg *src = pass ? b : a;
        size_t cnt = pass ? nb : n;
        for (size_t i = 0; i < cnt && k < cap; i++, k++) {
            e[k].key = amqp_cstring_bytes(src[i].key);
            switch (src[i].kind) {
            case GW_ARG_INT:
                e[k].value.kind = AMQP_FIELD_KIND_I64;
                e[k].value.value.i64 = src[i].i;
                break;
            case GW_ARG_BOOL:
                e[k].value.kind = AMQP_FIELD_KIND_BOOLEAN;
                e[k].value.value.boolean = src[i].b;
                break;
            case GW_ARG_STR:
                e[k].value.kind = AMQP_FIELD_KIND_UTF8;
                e[k].value.value.bytes = amqp_cstring_bytes(src[i].s);
                break;
            }
        }
    }
    amqp_table_t t = {(int)k, e};
    return t;
}

static gw_err scratch(gw_session *s, char *err, size_t err_len)
{
    if (s->dead) {
        set_err(err, err_len, "session is down: %s", s->error);
        return GW_ERR_BROKER;
    }
    if (s->chan_open[SCRATCH_CH])
        return GW_OK;
    return open_channel(s, &s->pub, SCRATCH_CH, false, err, err_len);
}

gw_err gw_session_declare_exchange(gw_session *s, const gw_exchange_decl *x, char *err,
                                   size_t err_len)
{
    if (scratch(s, err, err_len) != GW_OK)
        return GW_ERR_BROKER;
    amqp_table_entry_t e[64];
    amqp_table_t args = args_table(x->args, x->n_args, NULL, 0, e, 64);
    if (!amqp_exchange_declare(s->pub.st, SCRATCH_CH, amqp_cstring_bytes(x->name),
                               amqp_cstring_bytes(gw_exchange_type_name(x->type)), 0, x->durable,
                               x->auto_delete, x->internal, args)) {
        char what[320];
        snprintf(what, sizeof what, "declare exchange \"%s\"", x->name);
        int code =
            rpc_failed(s, &s->pub, SCRATCH_CH, amqp_get_rpc_reply(s->pub.st), err, err_len, what);
        name_permission(err, err_len, code, GW_ACCESS_DECLARE_EXCHANGE);
        return GW_ERR_BROKER;
    }
    return GW_OK;
}

gw_err gw_session_declare_queue(gw_session *s, const gw_queue_decl *q, const gw_arg *extra,
                                size_t n_extra, bool accept_existing, char *err, size_t err_len)
{
    if (scratch(s, err, err_len) != GW_OK)
        return GW_ERR_BROKER;
    amqp_table_entry_t e[64];
    gw_arg qt = {.key = "x-queue-type", .kind = GW_ARG_STR, .s = "quorum"};
    gw_arg all_extra[32];
    size_t ne = 0;
    for (size_t i = 0; i < n_extra && ne < 31; i++)
        all_extra[ne++] = extra[i];
    if (q->type == GW_QUEUE_QUORUM)
        all_extra[ne++] = qt;
    amqp_table_t args = args_table(q->args, q->n_args, all_extra, ne, e, 64);
    char what[320];
    snprintf(what, sizeof what, "declare queue \"%s\"", q->name);
    if (amqp_queue_declare(s->pub.st, SCRATCH_CH, amqp_cstring_bytes(q->name), 0, q->durable, 0,
                           q->auto_delete, args))
        return GW_OK;
    int code =
        rpc_failed(s, &s->pub, SCRATCH_CH, amqp_get_rpc_reply(s->pub.st), err, err_len, what);
    name_permission(err, err_len, code, GW_ACCESS_DECLARE_QUEUE);
    if (code != AMQP_PRECONDITION_FAILED || !accept_existing || s->dead)
        return GW_ERR_BROKER;
    /* It exists with other arguments: use it as it is, say so. */
    char first[400];
    snprintf(first, sizeof first, "%s", err ? err : "");
    if (scratch(s, err, err_len) != GW_OK)
        return GW_ERR_BROKER;
    if (!amqp_queue_declare(s->pub.st, SCRATCH_CH, amqp_cstring_bytes(q->name), 1, 0, 0, 0,
                            amqp_empty_table)) {
        rpc_failed(s, &s->pub, SCRATCH_CH, amqp_get_rpc_reply(s->pub.st), err, err_len, what);
        return GW_ERR_BROKER;
    }
    set_err(err, err_len, "%s", first);
    return GW_ERR_INVALID; /* exists, usable, arguments differ */
}

gw_err gw_session_bind(gw_session *s, const char *queue, const char *exchange,
                       const char *routing_key, const gw_arg *a, size_t n, char *err,
                       size_t err_len)
{
    if (scratch(s, err, err_len) != GW_OK)
        return GW_ERR_BROKER;
    amqp_table_entry_t e[64];
    amqp_table_t args = args_table(a, n, NULL, 0, e, 64);
    if (!amqp_queue_bind(s->pub.st, SCRATCH_CH, amqp_cstring_bytes(queue),
                         amqp_cstring_bytes(exchange), amqp_cstring_bytes(routing_key), args)) {
        char what[600];
        snprintf(what, sizeof what, "bind queue \"%s\" to exchange \"%s\" (%s)", queue, exchange,
                 routing_key);
        int code =
            rpc_failed(s, &s->pub, SCRATCH_CH, amqp_get_rpc_reply(s->pub.st), err, err_len, what);
        name_permission(err, err_len, code, GW_ACCESS_BIND);
        return GW_ERR_BROKER;
    }
    return GW_OK;
}

gw_err gw_session_exchange_exists(gw_session *s, const char *name, char *err, size_t err_len)
{
    if (scratch(s, err, err_len) != GW_OK)
        return GW_ERR_BROKER;
    if (amqp_exchange_declare(s->pub.st, SCRATCH_CH, amqp_cstring_bytes(name),
                              amqp_cstring_bytes("direct"), 1, 0, 0, 0, amqp_empty_table))
        return GW_OK;
    char what[320];
    snprintf(what, sizeof what, "exchange \"%s\"", name);
    int code =
        rpc_failed(s, &s->pub, SCRATCH_CH, amqp_get_rpc_reply(s->pub.st), err, err_len, what);
    return code == AMQP_NOT_FOUND && !s->dead ? GW_ERR_NOT_FOUND : GW_ERR_BROKER;
}

gw_err gw_session_queue_inspect(gw_session *s, const char *name, uint32_t *messages,
                                uint32_t *consumers, char *err, size_t err_len)
{
    if (scratch(s, err, err_len) != GW_OK)
        return GW_ERR_BROKER;
    amqp_queue_declare_ok_t *ok = amqp_queue_declare(
        s->pub.st, SCRATCH_CH, amqp_cstring_bytes(name), 1, 0, 0, 0, amqp_empty_table);
    if (ok) {
        if (messages)
            *messages = ok->message_count;
        if (consumers)
            *consumers = ok->consumer_count;
        return GW_OK;
    }
    char what[320];
    snprintf(what, sizeof what, "queue \"%s\"", name);
    int code =
        rpc_failed(s, &s->pub, SCRATCH_CH, amqp_get_rpc_reply(s->pub.st), err, err_len, what);
    return code == AMQP_NOT_FOUND && !s->dead ? GW_ERR_NOT_FOUND : GW_ERR_BROKER;
}

/* ---------------------------------------------------------------- queue depths */

gw_err gw_session_queue_depths(gw_session *s, const char *const *names, size_t n)
{
    if (s->dead)
        return GW_ERR_BROKER;
    /* The broker handles a channel's methods in order: the declarations may follow the
     * channel.open at once, and its open-ok is read and ignored like any late reply. */
    if (!s->depth_open) {
        amqp_channel_open_t op = {.out_of_band = amqp_empty_bytes};
        if (amqp_send_method(s->cons.st, DEPTH_CH, AMQP_CHANNEL_OPEN_METHOD, &op) !=
            AMQP_STATUS_OK) {
            die(s, "consumer connection: sending channel.open failed");
            return GW_ERR_BROKER;
        }
        s->depth_open = true;
    }
    for (size_t i = 0; i < n; i++) {
        amqp_queue_declare_t d = {
            .queue = amqp_cstring_bytes(names[i]),
            .passive = 1,
            .arguments = amqp_empty_table,
        };
        if (amqp_send_method(s->cons.st, DEPTH_CH, AMQP_QUEUE_DECLARE_METHOD, &d) !=
            AMQP_STATUS_OK) {
            die(s, "consumer connection: sending queue.declare failed");
            return GW_ERR_BROKER;
        }
    }
    return GW_OK;
}

/* ---------------------------------------------------------------- consuming */

gw_err gw_session_consume(gw_session *s, const char *queue, const char *tag, uint16_t prefetch,
                          char *err, size_t err_len)
{
    if (s->dead) {
        set_err(err, err_len, "session is down: %s", s->error);
        return GW_ERR_BROKER;
    }
    /* global 0: in RabbitMQ the limit is this consumer's (global 1 would share one limit
     * across the channel, but quorum queues refuse that with 540, closing the connection). */
    if (!amqp_basic_qos(s->cons.st, CONSUMER_CH, 0, prefetch, 0)) {
        rpc_failed(s, &s->cons, CONSUMER_CH, amqp_get_rpc_reply(s->cons.st), err, err_len,
                   "basic.qos");
        return GW_ERR_BROKER;
    }
    if (!amqp_basic_consume(s->cons.st, CONSUMER_CH, amqp_cstring_bytes(queue),
                            amqp_cstring_bytes(tag), 0, 0, 0, amqp_empty_table)) {
        char what[320];
        snprintf(what, sizeof what, "consume queue \"%s\"", queue);
        int code = rpc_failed(s, &s->cons, CONSUMER_CH, amqp_get_rpc_reply(s->cons.st), err,
                              err_len, what);
        name_permission(err, err_len, code, GW_ACCESS_CONSUME);
        return GW_ERR_BROKER;
    }
    return GW_OK;
}

gw_err gw_session_cancel(gw_session *s, const char *tag)
{
    if (s->dead)
        return GW_ERR_BROKER;
    if (!amqp_basic_cancel(s->cons.st, CONSUMER_CH, amqp_cstring_bytes(tag))) {
        rpc_failed(s, &s->cons, CONSUMER_CH, amqp_get_rpc_reply(s->cons.st), NULL, 0,
                   "basic.cancel");
        return GW_ERR_BROKER;
    }
    return GW_OK;
}

gw_err gw_session_ack(gw_session *s, uint64_t tag, bool multiple)
{
    if (s->dead)
        return GW_ERR_BROKER;
    int rc = amqp_basic_ack(s->cons.st, CONSUMER_CH, tag, multiple);
    if (rc != AMQP_STATUS_OK) {
        die(s, "basic.ack failed: %s", amqp_error_string2(rc));
        return GW_ERR_BROKER;
    }
    return GW_OK;
}

gw_err gw_session_nack(gw_session *s, uint64_t tag, bool multiple, bool requeue)
{
    if (s->dead)
        return GW_ERR_BROKER;
    int rc = amqp_basic_nack(s->cons.st, CONSUMER_CH, tag, multiple, requeue);
    if (rc != AMQP_STATUS_OK) {
        die(s, "basic.nack failed: %s", amqp_error_string2(rc));
        return GW_ERR_BROKER;
    }
    return GW_OK;
}

static gw_msg *msg_new(void)
{
    return gw_xcalloc(1, sizeof(gw_msg));
}

/* ---------------------------------------------------------------- publishing */

static size_t field_size(const amqp_field_value_t *v);

static size_t table_size(const amqp_table_t *t)
{
    size_t n = 4;
    for (int i = 0; i < t->num_entries; i++)
        n += 1 + t->entries[i].key.len + field_size(&t->entries[i].value);
    return n;
}

static size_t field_size(const amqp_field_value_t *v)
{
    size_t n = 1;
    switch (v->kind) {
    case AMQP_FIELD_KIND_BOOLEAN:
    case AMQP_FIELD_KIND_I8:
    case AMQP_FIELD_KIND_U8:
        return n + 1;
    case AMQP_FIELD_KIND_I16:
    case AMQP_FIELD_KIND_U16:
        return n + 2;
    case AMQP_FIELD_KIND_I32:
    case AMQP_FIELD_KIND_U32:
    case AMQP_FIELD_KIND_F32:
        return n + 4;
    case AMQP_FIELD_KIND_I64:
    case AMQP_FIELD_KIND_U64:
    case AMQP_FIELD_KIND_F64:
    case AMQP_FIELD_KIND_TIMESTAMP:
        return n + 8;
    case AMQP_FIELD_KIND_DECIMAL:
        return n + 5;
    case AMQP_FIELD_KIND_UTF8:
    case AMQP_FIELD_KIND_BYTES:
        return n + 4 + v->value.bytes.len;
    case AMQP_FIELD_KIND_TABLE:
        return n + table_size(&v->value.table);
    case AMQP_FIELD_KIND_ARRAY: {
        size_t a = 4;
        for (int i = 0; i < v->value.array.num_entries; i++)
            a += field_size(&v->value.array.entries[i]);
        return n + a;
    }
    default:
        return n;
    }
}

static bool key_eq(amqp_bytes_t k, const char *s)
{
    size_t n = strlen(s);
    return k.len == n && memcmp(k.bytes, s, n) == 0;
}

/* Length byte and bytes of a short-string property, when set. */
static size_t shortstr_bytes(amqp_flags_t f, amqp_flags_t flag, amqp_bytes_t b)
{
    return (f & flag) ? 1 + b.len : 0;
}

static void set_shortstr(amqp_basic_properties_t *props, amqp_flags_t flag, amqp_bytes_t *field,
                         gw_str v)
{
    if (!v.ptr)
        return;
    props->_flags |= flag;
    *field = bytes_of(v);
}

/* Encodes m's properties with c's changes into *props; entries has room for every header
 * of m and of c. */
static void build_props(const gw_msg *m, const gw_copy *c, amqp_basic_properties_t *props,
                        amqp_table_entry_t *entries)
{
    *props = m->msg.properties;
    set_shortstr(props, AMQP_BASIC_CORRELATION_ID_FLAG, &props->correlation_id, c->correlation_id);
    set_shortstr(props, AMQP_BASIC_MESSAGE_ID_FLAG, &props->message_id, c->message_id);
    set_shortstr(props, AMQP_BASIC_EXPIRATION_FLAG, &props->expiration, c->expiration);
    set_shortstr(props, AMQP_BASIC_TYPE_FLAG, &props->type, c->type);
    if (c->persistent) {
        props->_flags |= AMQP_BASIC_DELIVERY_MODE_FLAG;
        props->delivery_mode = AMQP_DELIVERY_PERSISTENT;
    }
    if (c->timestamp_s) {
        props->_flags |= AMQP_BASIC_TIMESTAMP_FLAG;
        props->timestamp = c->timestamp_s;
    }
    size_t k = 0;
    if (m->msg.properties._flags & AMQP_BASIC_HEADERS_FLAG) {
        const amqp_table_t *h = &m->msg.properties.headers;
        for (int i = 0; i < h->num_entries; i++)
            if (!c->drop || !c->drop[i])
                entries[k++] = h->entries[i];
    }
    for (size_t j = 0; j < c->n_hdrs; j++) {
        amqp_table_entry_t *e = &entries[k++];
        e->key = amqp_cstring_bytes(c->hdrs[j].key);
        if (c->hdrs[j].kind == 'l') {
            e->value.kind = AMQP_FIELD_KIND_I64;
            e->value.value.i64 = c->hdrs[j].i;
        } else {
            e->value.kind = AMQP_FIELD_KIND_UTF8;
            e->value.value.bytes = bytes_of(c->hdrs[j].s);
        }
    }
    props->headers.num_entries = (int)k;
    props->headers.entries = entries;
    if (k)
        props->_flags |= AMQP_BASIC_HEADERS_FLAG;
    else
        props->_flags &= ~AMQP_BASIC_HEADERS_FLAG;
}

gw_err gw_session_publish(gw_session *s, int ch, const char *exchange, const char *routing_key,
                          const gw_msg *m, const gw_copy *c, uint64_t *seq)
{
    if (s->dead)
        return GW_ERR_BROKER;
    if (strlen(routing_key) > 255 || strlen(exchange) > 255 || !gw_copy_fits(c, s->frame_max))
        return GW_ERR_PERMANENT;
    /* the header entries live on the stack when there are few (the common case) */
    amqp_table_entry_t stack[64], *heap = NULL;
    size_t cap = c->n_hdrs;
    if (m->msg.properties._flags & AMQP_BASIC_HEADERS_FLAG)
        cap += (size_t)m->msg.properties.headers.num_entries;
    if (cap > 64)
        heap = gw_xmalloc(cap * sizeof *heap);
    amqp_basic_properties_t props;
    build_props(m, c, &props, heap ? heap : stack);
    gw_err rc = GW_OK;
    int st = amqp_basic_publish(s->pub.st, (amqp_channel_t)ch, amqp_cstring_bytes(exchange),
                                amqp_cstring_bytes(routing_key), 1, 0, &props, m->msg.body);
    if (st != AMQP_STATUS_OK) {
        /* The method frame may be on the wire already: the stream is unusable. */
        die(s, "publish failed: %s", amqp_error_string2(st));
        rc = GW_ERR_BROKER;
    } else {
        *seq = ++s->seq[ch];
    }
    free(heap);
    return rc;
}

/* ---------------------------------------------------------------- frames */

static void handle_method(gw_session *s, gw_conn *c, amqp_frame_t *f, const gw_session_handler *h)
{
    int ch = f->channel;
    switch (f->payload.method.id) {
    case AMQP_BASIC_DELIVER_METHOD: {
        amqp_basic_deliver_t *d = f->payload.method.decoded;
        gw_msg *m = msg_new();
        m->delivery_tag = d->delivery_tag;
        m->consumer_tag = amqp_bytes_malloc_dup(d->consumer_tag);
        m->exchange = amqp_bytes_malloc_dup(d->exchange);
        m->routing_key = amqp_bytes_malloc_dup(d->routing_key);
        amqp_rpc_reply_t r = amqp_read_message(c->st, (amqp_channel_t)ch, &m->msg, 0);
        if (r.reply_type != AMQP_RESPONSE_NORMAL) {
            char text[300];
            reply_text(r, text, sizeof text, NULL);
            die(s, "reading delivery: %s", text);
            gw_msg_free(m);
            return;
        }
        view_fill(m);
        h->on_deliver(h->ctx, m);
        return;
    }
    case AMQP_BASIC_ACK_METHOD: {
        amqp_basic_ack_t *a = f->payload.method.decoded;
        h->on_confirm(h->ctx, ch, a->delivery_tag, a->multiple, true);
        return;
    }
    case AMQP_BASIC_NACK_METHOD: {
        amqp_basic_nack_t *a = f->payload.method.decoded;
        h->on_confirm(h->ctx, ch, a->delivery_tag, a->multiple, false);
        return;
    }
    case AMQP_BASIC_RETURN_METHOD: {
        amqp_basic_return_t *rt = f->payload.method.decoded;
        int code = rt->reply_code;
        amqp_bytes_t text = amqp_bytes_malloc_dup(rt->reply_text);
        amqp_bytes_t ex = amqp_bytes_malloc_dup(rt->exchange);
        amqp_bytes_t rk = amqp_bytes_malloc_dup(rt->routing_key);
        amqp_message_t msg;
        amqp_rpc_reply_t r = amqp_read_message(c->st, (amqp_channel_t)ch, &msg, 0);
        if (r.reply_type != AMQP_RESPONSE_NORMAL) {
            char t[300];
            reply_text(r, t, sizeof t, NULL);
            die(s, "reading returned message: %s", t);
        } else {
            gw_str mid = GW_STR_NULL;
            if (msg.properties._flags & AMQP_BASIC_MESSAGE_ID_FLAG)
                mid = str_of(msg.properties.message_id);
            h->on_return(h->ctx, ch, code, str_of(text), str_of(ex), str_of(rk), mid,
                         str_of(msg.body));
            amqp_destroy_message(&msg);
        }
        amqp_bytes_free(text);
        amqp_bytes_free(ex);
        amqp_bytes_free(rk);
        return;
    }
    case AMQP_CHANNEL_CLOSE_METHOD: {
        amqp_channel_close_t *cl = f->payload.method.decoded;
        int code = cl->reply_code;
        char text[300];
        snprintf(text, sizeof text, "%.*s", (int)cl->reply_text.len, (char *)cl->reply_text.bytes);
        amqp_channel_close_ok_t ok = {0};
        if (amqp_send_method(c->st, (amqp_channel_t)ch, AMQP_CHANNEL_CLOSE_OK_METHOD, &ok) !=
            AMQP_STATUS_OK) {
            die(s, "sending channel.close-ok failed");
            return;
        }
        if (c == &s->cons && ch == DEPTH_CH) {
            s->depth_open = false;
            char why[320];
            snprintf(why, sizeof why, "%d %s", code, text);
            if (h->on_queue_depth)
                h->on_queue_depth(h->ctx, GW_STR_NULL, -1, gw_str_from_cstr(why));
            return;
        }
        if (c == &s->cons) {
            die(s, "consumer channel closed by broker: %d %s", code, text);
            return;
        }
        s->chan_open[ch] = false;
        /* A retired channel the broker closed before our close arrived stays closing:
         * the broker still answers our close with a close-ok, which frees the number. */
        if (ch <= GW_CH_MAX)
            h->on_channel_closed(h->ctx, ch, code, gw_str_from_cstr(text));
        return;
    }
    case AMQP_CHANNEL_CLOSE_OK_METHOD:
        /* the close-ok of a channel we retired (gw_session_channel_retire) */
        if (c == &s->pub && ch <= GW_CH_MAX && s->chan_closing[ch]) {
            s->chan_closing[ch] = false;
            h->on_channel_closed(h->ctx, ch, AMQP_REPLY_SUCCESS,
                                 gw_str_from_cstr("closed by the gateway"));
        }
        return;
    case AMQP_QUEUE_DECLARE_OK_METHOD:
        if (c == &s->cons && ch == DEPTH_CH && h->on_queue_depth) {
            amqp_queue_declare_ok_t *ok = f->payload.method.decoded;
            h->on_queue_depth(h->ctx, str_of(ok->queue), (int64_t)ok->message_count, GW_STR_NULL);
        }
        return;
    case AMQP_CONNECTION_CLOSE_METHOD: {
        amqp_connection_close_t *cl = f->payload.method.decoded;
        char text[300];
        snprintf(text, sizeof text, "%.*s", (int)cl->reply_text.len, (char *)cl->reply_text.bytes);
        int code = cl->reply_code;
        amqp_connection_close_ok_t ok = {0};
        amqp_send_method(c->st, 0, AMQP_CONNECTION_CLOSE_OK_METHOD, &ok);
        c->alive = false;
        die(s, "%s connection closed by broker: %d %s", c == &s->cons ? "consumer" : "publisher",
            code, text);
        return;
    }
    case AMQP_BASIC_CANCEL_METHOD: {
        amqp_basic_cancel_t *cn = f->payload.method.decoded;
        char tag[256];
        snprintf(tag, sizeof tag, "%.*s", (int)cn->consumer_tag.len,
                 (char *)cn->consumer_tag.bytes);
        h->on_cancelled(h->ctx, gw_str_from_cstr(tag));
        return;
    }
    case AMQP_CONNECTION_BLOCKED_METHOD: {
        amqp_connection_blocked_t *b = f->payload.method.decoded;
        char reason[256];
        snprintf(reason, sizeof reason, "%.*s", (int)b->reason.len, (char *)b->reason.bytes);
        s->blocked = true;
        c->blocked = true;
        h->on_blocked(h->ctx, true, gw_str_from_cstr(reason));
        return;
    }
    case AMQP_CONNECTION_UNBLOCKED_METHOD:
        s->blocked = false;
        c->blocked = false;
        h->on_blocked(h->ctx, false, gw_str_from_cstr(""));
        return;
    default:
        return; /* cancel-ok, qos-ok and the like arriving late: nothing to do */
    }
}

/* Frames read from one connection per visit. The consumer connection of a
 * consumer with a large prefetch always has more to read; were it drained dry,
 * the publisher connection's confirms, and so every ack, would wait behind the
 * whole backlog (a replay acked nothing until it had read all of its DLQ). */
#define DRAIN_BATCH 256

/* Reads and dispatches the frames already available on c, at most DRAIN_BATCH;
 * the caller comes back for the rest after a look at the other connection. */
static void drain(gw_session *s, gw_conn *c, const gw_session_handler *h)
{
    static const struct timeval zero = {0, 0};
    for (int i = 0; i < DRAIN_BATCH && !s->dead; i++) {
        amqp_frame_t f;
        int rc = amqp_simple_wait_frame_noblock(c->st, &f, &zero);
        if (rc == AMQP_STATUS_TIMEOUT)
            break;
        if (rc != AMQP_STATUS_OK) {
            c->alive = false;
            die(s, "%s connection lost: %s", c == &s->cons ? "consumer" : "publisher",
                amqp_error_string2(rc));
            return;
        }
        if (f.frame_type == AMQP_FRAME_METHOD)
            handle_method(s, c, &f, h);
    }
    c->last_service_ms = gw_clock_mono_ms();
    if (!s->dead && !amqp_frames_enqueued(c->st) && !amqp_data_in_buffer(c->st))
        amqp_maybe_release_buffers(c->st);
}

static bool pending_input(gw_conn *c)
{
    return amqp_frames_enqueued(c->st) || amqp_data_in_buffer(c->st);
}

gw_err gw_session_poll(gw_session *s, int timeout_ms, const gw_session_handler *h)
{
    if (s->dead)
        return GW_ERR_BROKER;
    gw_conn *conns[2] = {&s->cons, &s->pub};
    struct pollfd pfd[2];
    bool buffered = false;
    for (int i = 0; i < 2; i++) {
        pfd[i].fd = amqp_get_sockfd(conns[i]->st);
        pfd[i].events = POLLIN;
        pfd[i].revents = 0;
        buffered = buffered || pending_input(conns[i]);
    }
    if (buffered)
        timeout_ms = 0;
    int n = poll(pfd, 2, timeout_ms);
    if (n < 0 && errno != EINTR) {
        die(s, "poll: %s", strerror(errno));
        return GW_ERR_BROKER;
    }
    uint64_t now = gw_clock_mono_ms();
    /* Heartbeats are sent and checked only inside library calls: visit each
     * connection at least once a second even when it is quiet. */
    for (int i = 0; i < 2 && !s->dead; i++) {
        if ((n > 0 && pfd[i].revents) || pending_input(conns[i]) ||
            now - conns[i]->last_service_ms >= 1000)
            drain(s, conns[i], h);
    }
    return s->dead ? GW_ERR_BROKER : GW_OK;
}

/* ---------------------------------------------------------------- messages */

void gw_msg_free(gw_msg *m)
{
    if (!m)
        return;
    amqp_destroy_message(&m->msg);
    amqp_bytes_free(m->consumer_tag);
    amqp_bytes_free(m->exchange);
    amqp_bytes_free(m->routing_key);
    free(m->entries);
    free(m->view);
    free(m);
}

static const amqp_field_value_t *table_get(const amqp_table_t *t, const char *key)
{
    for (int i = 0; i < t->num_entries; i++)
        if (key_eq(t->entries[i].key, key))
            return &t->entries[i].value;
    return NULL;
}

static bool field_is_str(const amqp_field_value_t *v)
{
    return v->kind == AMQP_FIELD_KIND_UTF8 || v->kind == AMQP_FIELD_KIND_BYTES;
}

static bool field_int(const amqp_field_value_t *v, int64_t *out)
{
    switch (v->kind) {
    case AMQP_FIELD_KIND_I8:
        *out = v->value.i8;
        return true;
    case AMQP_FIELD_KIND_U8:
        *out = v->value.u8;
        return true;
    case AMQP_FIELD_KIND_I16:
        *out = v->value.i16;
        return true;
    case AMQP_FIELD_KIND_U16:
        *out = v->value.u16;
        return true;
    case AMQP_FIELD_KIND_I32:
        *out = v->value.i32;
        return true;
    case AMQP_FIELD_KIND_U32:
        *out = v->value.u32;
        return true;
    case AMQP_FIELD_KIND_I64:
        *out = v->value.i64;
        return true;
    case AMQP_FIELD_KIND_U64:
    case AMQP_FIELD_KIND_TIMESTAMP:
        *out = v->value.u64 > INT64_MAX ? INT64_MAX : (int64_t)v->value.u64;
        return true;
    default:
        return false;
    }
}

/* ---------------------------------------------------------------- the delivery view */

const gw_delivery *gw_msg_delivery(const gw_msg *m)
{
    return m->view;
}

static gw_str prop_str(const amqp_basic_properties_t *p, amqp_flags_t flag, amqp_bytes_t v)
{
    return (p->_flags & flag) ? str_of(v) : GW_STR_NULL;
}

static void header_value(const amqp_field_value_t *v, gw_header_value *out)
{
    out->present = true;
    out->str = field_is_str(v) ? str_of(v->value.bytes) : GW_STR_NULL;
    out->has_int = field_int(v, &out->i);
}

/* The latest x-death entry, and the most recent one of reason "rejected". An entry that
 * is not a table with a string queue and reason is skipped; when it is the first, the
 * delivery has no latest entry at all (the broker always writes both). */
static void xdeath_fill(const amqp_field_value_t *xd, gw_delivery *d)
{
    if (xd->kind != AMQP_FIELD_KIND_ARRAY)
        return;
    for (int i = 0; i < xd->value.array.num_entries && !d->xdeath_rejected_queue.ptr; i++) {
        const amqp_field_value_t *e = &xd->value.array.entries[i];
        if (e->kind != AMQP_FIELD_KIND_TABLE)
            continue;
        const amqp_field_value_t *r = table_get(&e->value.table, "reason");
        const amqp_field_value_t *q = table_get(&e->value.table, "queue");
        if (!r || !q || !field_is_str(r) || !field_is_str(q))
            continue;
        if (i == 0) {
            const amqp_field_value_t *x = table_get(&e->value.table, "original-expiration");
            d->has_xdeath_latest = true;
            d->xdeath_latest.queue = str_of(q->value.bytes);
            d->xdeath_latest.reason = str_of(r->value.bytes);
            d->xdeath_latest.original_expiration =
                x && field_is_str(x) ? str_of(x->value.bytes) : GW_STR_NULL;
        }
        if (key_eq(r->value.bytes, "rejected"))
            d->xdeath_rejected_queue = str_of(q->value.bytes);
    }
}

/* Fills m->view (allocated here): the envelope, the properties and, in one pass over the header
 * table, every entry with its encoded size and every header the view keeps (the first occurrence of
 * a key counts). */
static void view_fill(gw_msg *m)
{
    if (!m->view)
        m->view = gw_xmalloc(sizeof *m->view);
    gw_delivery *d = m->view;
    const amqp_basic_properties_t *p = &m->msg.properties;
    memset(d, 0, sizeof *d);
    d->delivery_tag = m->delivery_tag;
    d->consumer_tag = str_of(m->consumer_tag);
    d->exchange = str_of(m->exchange);
    d->routing_key = str_of(m->routing_key);
    d->type = prop_str(p, AMQP_BASIC_TYPE_FLAG, p->type);
    d->message_id = prop_str(p, AMQP_BASIC_MESSAGE_ID_FLAG, p->message_id);
    d->correlation_id = prop_str(p, AMQP_BASIC_CORRELATION_ID_FLAG, p->correlation_id);
    d->expiration = prop_str(p, AMQP_BASIC_EXPIRATION_FLAG, p->expiration);
    d->has_timestamp = (p->_flags & AMQP_BASIC_TIMESTAMP_FLAG) != 0;
    d->body = str_of(m->msg.body);
    amqp_flags_t f = p->_flags;
    /* class, weight, body size, flags; delivery mode, priority, timestamp (upper bound) */
    d->other_bytes = GW_HEADERS_CONTENT_FIXED + 1 + 1 + 8 +
                     shortstr_bytes(f, AMQP_BASIC_CONTENT_TYPE_FLAG, p->content_type) +
                     shortstr_bytes(f, AMQP_BASIC_CONTENT_ENCODING_FLAG, p->content_encoding) +
                     shortstr_bytes(f, AMQP_BASIC_REPLY_TO_FLAG, p->reply_to) +
                     shortstr_bytes(f, AMQP_BASIC_USER_ID_FLAG, p->user_id) +
                     shortstr_bytes(f, AMQP_BASIC_APP_ID_FLAG, p->app_id) +
                     shortstr_bytes(f, AMQP_BASIC_CLUSTER_ID_FLAG, p->cluster_id);
    if (!(f & AMQP_BASIC_HEADERS_FLAG) || p->headers.num_entries <= 0)
        return;
    const amqp_table_t *t = &p->headers;
    d->n_headers = (size_t)t->num_entries;
    m->entries = gw_xmalloc(d->n_headers * sizeof *m->entries);
    d->headers = m->entries;
    bool xdeath_seen = false;
    for (size_t i = 0; i < d->n_headers; i++) {
        const amqp_table_entry_t *e = &t->entries[i];
        gw_delivery_entry *de = &m->entries[i];
        de->key = str_of(e->key);
        de->bytes = 1 + e->key.len + field_size(&e->value);
        de->str = field_is_str(&e->value) ? str_of(e->value.value.bytes) : GW_STR_NULL;
        de->has_int = field_int(&e->value, &de->i);
        de->slot = gw_delivery_header_find(de->key);
        if (de->slot != GW_DH_COUNT) {
            if (!d->h[de->slot].present)
                header_value(&e->value, &d->h[de->slot]);
        } else if (!xdeath_seen && key_eq(e->key, "x-death")) {
            xdeath_seen = true;
            xdeath_fill(&e->value, d);
        }
    }
}
