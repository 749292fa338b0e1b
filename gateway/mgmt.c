/* mgmt.c — the management HTTP API, for the bindings check --live cannot see over AMQP. */
#include "mgmt.h"

#include "alloc.h"

#include <amqp.h>
#include <cjson/cJSON.h>
#include <curl/curl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define BODY_MAX (4u << 20) /* the bindings between one exchange and one queue: small */

struct gw_mgmt {
    char base[512];
    char *vhost;
    char *user;
    char *password;
    char *ca_file;
    bool verify_peer;
    bool verify_hostname;
    CURL *curl;
    int amqp_port;         /* > 0: the base was derived; check it is this node's API first */
    int amqp_port_derived; /* amqp_port as it was made: to check again after a failure */
    char failed[300];      /* non-empty once the API did not answer at all */
};

static void set_why(char *why, size_t len, const char *msg)
{
    if (why && len)
        snprintf(why, len, "%s", msg);
}

/* The API's address for a parsed AMQP URL: override when given, else derived. */
static void base_of(const struct amqp_connection_info *ci, const char *override, char *buf,
                    size_t len)
{
    if (override && override[0]) {
        size_t n = strlen(override);
        while (n > 0 && override[n - 1] == '/')
            n--;
        snprintf(buf, len, "%.*s", (int)n, override);
        return;
    }
    /* an IPv6 literal keeps its brackets in a URL */
    bool v6 = strchr(ci->host, ':') != NULL;
    snprintf(buf, len, "%s://%s%s%s:%d", ci->ssl ? "https" : "http", v6 ? "[" : "", ci->host,
             v6 ? "]" : "", ci->ssl ? 15671 : 15672);
}

bool gw_mgmt_base_url(const char *amqp_url, const char *override, char *buf, size_t len)
{
    char *copy = gw_xstrdup(amqp_url);
    struct amqp_connection_info ci;
    bool ok = amqp_parse_url(copy, &ci) == AMQP_STATUS_OK;
    if (ok)
        base_of(&ci, override, buf, len);
    free(copy);
    return ok;
}

gw_mgmt *gw_mgmt_new(const gw_config *cfg, const char *amqp_url, char *err, size_t err_len)
{
    char *copy = gw_xstrdup(amqp_url);
    struct amqp_connection_info ci;
    if (amqp_parse_url(copy, &ci) != AMQP_STATUS_OK) {
        snprintf(err, err_len, "the broker URL does not parse");
        free(copy);
        return NULL;
    }
    gw_mgmt *m = gw_xcalloc(1, sizeof *m);
    const char *override = getenv("AMQP_GW_MANAGEMENT_URL");
    base_of(&ci, override, m->base, sizeof m->base);
    m->vhost = gw_xstrdup(ci.vhost && ci.vhost[0] ? ci.vhost : "/");
    m->amqp_port = override && override[0] ? 0 : ci.port;
    m->amqp_port_derived = m->amqp_port;
    m->user = gw_xstrdup(cfg->user ? cfg->user : ci.user);
    m->password = gw_xstrdup(cfg->password ? cfg->password : ci.password);
    free(copy);
    m->ca_file = cfg->tls.ca_file ? gw_xstrdup(cfg->tls.ca_file) : NULL;
    m->verify_peer = cfg->tls.verify_peer;
    m->verify_hostname = cfg->tls.verify_hostname;
    curl_global_init(CURL_GLOBAL_DEFAULT);
    m->curl = curl_easy_init();
    if (!m->curl)
        snprintf(m->failed, sizeof m->failed, "libcurl could not start");
    return m;
}

void gw_mgmt_free(gw_mgmt *m)
{
    if (!m)
        return;
    if (m->curl)
        curl_easy_cleanup(m->curl);
    curl_global_cleanup();
    free(m->vhost);
    free(m->user);
    free(m->password);
    free(m->ca_file);
    free(m);
}

const char *gw_mgmt_base(const gw_mgmt *m)
{
    return m->base;
}

static bool arg_equal(const gw_arg *a, const cJSON *v)
{
    switch (a->kind) {
    case GW_ARG_STR:
        return cJSON_IsString(v) && strcmp(v->valuestring, a->s) == 0;
    case GW_ARG_INT:
        return cJSON_IsNumber(v) && v->valuedouble == (double)a->i;
    case GW_ARG_BOOL:
        return cJSON_IsBool(v) && cJSON_IsTrue(v) == a->b;
    }
    return false;
}

static bool args_equal(const cJSON *obj, const gw_arg *args, size_t n)
{
    if (obj == NULL || cJSON_IsNull(obj))
        return n == 0;
    if (!cJSON_IsObject(obj) || (size_t)cJSON_GetArraySize(obj) != n)
        return false;
    for (size_t i = 0; i < n; i++) {
        const cJSON *v = cJSON_GetObjectItemCaseSensitive(obj, args[i].key);
        if (!v || !arg_equal(&args[i], v))
            return false;
    }
    return true;
}

gw_mgmt_answer gw_mgmt_bindings_match(const char *json, size_t len, const char *key,
                                      const gw_arg *args, size_t n_args, char *why, size_t why_len)
{
    cJSON *doc = cJSON_ParseWithLength(json, len);
    if (!cJSON_IsArray(doc)) {
        cJSON_Delete(doc);
        set_why(why, why_len, "the answer is not a JSON array of bindings");
        return GW_MGMT_UNKNOWN;
    }
    gw_mgmt_answer found = GW_MGMT_NOT_BOUND;
    const cJSON *b;
    cJSON_ArrayForEach(b, doc)
    {
        const cJSON *rk = cJSON_GetObjectItemCaseSensitive(b, "routing_key");
        if (!cJSON_IsString(rk) || strcmp(rk->valuestring, key) != 0)
            continue;
        if (args_equal(cJSON_GetObjectItemCaseSensitive(b, "arguments"), args, n_args)) {
            found = GW_MGMT_BOUND;
            break;
        }
    }
    cJSON_Delete(doc);
    return found;
}

bool gw_mgmt_overview_has_port(const char *json, size_t len, int port)
{
    cJSON *doc = cJSON_ParseWithLength(json, len);
    const cJSON *ls = cJSON_GetObjectItemCaseSensitive(doc, "listeners");
    bool found = false;
    const cJSON *l;
    cJSON_ArrayForEach(l, ls)
    {
        const cJSON *proto = cJSON_GetObjectItemCaseSensitive(l, "protocol");
        const cJSON *p = cJSON_GetObjectItemCaseSensitive(l, "port");
        if (cJSON_IsString(proto) && cJSON_IsNumber(p) && p->valuedouble == (double)port &&
            (strcmp(proto->valuestring, "amqp") == 0 ||
             strcmp(proto->valuestring, "amqp/ssl") == 0)) {
            found = true;
            break;
        }
    }
    cJSON_Delete(doc);
    return found;
}

bool gw_mgmt_queue_head_parse(const char *json, size_t len, int64_t *messages, int64_t *head_ts_s,
                              char *why, size_t why_len)
{
    cJSON *doc = cJSON_ParseWithLength(json, len);
    const cJSON *n = cJSON_GetObjectItemCaseSensitive(doc, "messages");
    const cJSON *ts = cJSON_GetObjectItemCaseSensitive(doc, "head_message_timestamp");
    bool ok = cJSON_IsObject(doc) && cJSON_IsNumber(n) && n->valuedouble >= 0;
    if (ok) {
        *messages = (int64_t)n->valuedouble;
        /* "" (or absent) when the broker does not know it */
        *head_ts_s = cJSON_IsNumber(ts) && ts->valuedouble > 0 ? (int64_t)ts->valuedouble : -1;
    } else {
        set_why(why, why_len, "the API's answer has no message count (statistics not ready yet?)");
    }
    cJSON_Delete(doc);
    return ok;
}

typedef struct body {
    char *p;
    size_t n;
    bool too_big;
} body;

static size_t on_data(char *ptr, size_t size, size_t nmemb, void *ud)
{
    body *b = ud;
    size_t n = size * nmemb;
    if (b->n + n > BODY_MAX) {
        b->too_big = true;
        return 0; /* aborts the transfer */
    }
    b->p = gw_xrealloc(b->p, b->n + n + 1);
    memcpy(b->p + b->n, ptr, n);
    b->n += n;
    b->p[b->n] = '\0';
    return n;
}

/* "/api/bindings/{vhost}/e/{exchange}/q/{queue}", each part percent-encoded. */
static char *bindings_url(gw_mgmt *m, const char *exchange, const char *queue)
{
    char *v = curl_easy_escape(m->curl, m->vhost, 0);
    char *e = curl_easy_escape(m->curl, exchange, 0);
    char *q = curl_easy_escape(m->curl, queue, 0);
    char *url = NULL;
    if (v && e && q)
        url = gw_xasprintf("%s/api/bindings/%s/e/%s/q/%s", m->base, v, e, q);
    curl_free(v);
    curl_free(e);
    curl_free(q);
    return url;
}

/* GET url into b; returns the HTTP status, or 0 with m->failed set when there was no
 * answer at all. */
static long get(gw_mgmt *m, const char *url, body *b)
{
    CURL *c = m->curl;
    curl_easy_reset(c);
    curl_easy_setopt(c, CURLOPT_URL, url);
    curl_easy_setopt(c, CURLOPT_PROTOCOLS_STR, "http,https");
    curl_easy_setopt(c, CURLOPT_HTTPAUTH, (long)CURLAUTH_BASIC);
    curl_easy_setopt(c, CURLOPT_USERNAME, m->user);
    curl_easy_setopt(c, CURLOPT_PASSWORD, m->password);
    curl_easy_setopt(c, CURLOPT_CONNECTTIMEOUT_MS, 3000L);
    curl_easy_setopt(c, CURLOPT_TIMEOUT_MS, 10000L);
    curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, on_data);
    curl_easy_setopt(c, CURLOPT_WRITEDATA, b);
    if (m->ca_file)
        curl_easy_setopt(c, CURLOPT_CAINFO, m->ca_file);
    curl_easy_setopt(c, CURLOPT_SSL_VERIFYPEER, m->verify_peer ? 1L : 0L);
    curl_easy_setopt(c, CURLOPT_SSL_VERIFYHOST, m->verify_hostname ? 2L : 0L);
    CURLcode rc = curl_easy_perform(c);
    long status = 0;
    curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &status);
    if (rc != CURLE_OK) {
        snprintf(m->failed, sizeof m->failed, "%s",
                 b->too_big ? "the answer is over 4 MiB" : curl_easy_strerror(rc));
        return 0;
    }
    if (status == 401 || status == 403)
        snprintf(m->failed, sizeof m->failed,
                 "HTTP %ld: the user may not use the management API (needs the monitoring or "
                 "management tag)",
                 status);
    return status;
}

/* A derived address must be this node's API: one of its AMQP listeners is on our port.
 * Asked once; a "no" is recorded in m->failed. */
static void check_same_node(gw_mgmt *m)
{
    if (m->amqp_port <= 0)
        return;
    char *url = gw_xasprintf("%s/api/overview", m->base);
    body b = {0};
    long status = get(m, url, &b);
    free(url);
    if (!m->failed[0]) { /* else get() said why already */
        if (status != 200)
            snprintf(m->failed, sizeof m->failed, "HTTP %ld from /api/overview", status);
        else if (!gw_mgmt_overview_has_port(b.p ? b.p : "", b.n, m->amqp_port))
            snprintf(m->failed, sizeof m->failed,
                     "it serves another node (no AMQP listener on port %d there); set "
                     "AMQP_GW_MANAGEMENT_URL",
                     m->amqp_port);
    }
    free(b.p);
    m->amqp_port = 0;
}

bool gw_mgmt_queue_head(gw_mgmt *m, const char *queue, int64_t *messages, int64_t *head_ts_s,
                        char *why, size_t why_len)
{
    if (!m->failed[0])
        check_same_node(m);
    if (m->failed[0]) {
        set_why(why, why_len, m->failed);
        m->failed[0] = '\0'; /* asked again next time: the API may come back */
        m->amqp_port = m->amqp_port_derived;
        return false;
    }
    char *v = curl_easy_escape(m->curl, m->vhost, 0);
    char *q = curl_easy_escape(m->curl, queue, 0);
    char *url = v && q ? gw_xasprintf("%s/api/queues/%s/%s?columns=messages,head_message_timestamp",
                                      m->base, v, q)
                       : NULL;
    curl_free(v);
    curl_free(q);
    if (!url) {
        set_why(why, why_len, "cannot encode the request");
        return false;
    }
    body b = {0};
    long status = get(m, url, &b);
    free(url);
    bool ok = false;
    if (status == 0 || status == 401 || status == 403) {
        set_why(why, why_len, m->failed);
        m->failed[0] = '\0';
    } else if (status == 200) {
        ok = gw_mgmt_queue_head_parse(b.p ? b.p : "", b.n, messages, head_ts_s, why, why_len);
    } else {
        char t[96];
        snprintf(t, sizeof t, "HTTP %ld from the management API%s", status,
                 status == 404 ? ": no such queue" : "");
        set_why(why, why_len, t);
    }
    free(b.p);
    return ok;
}

gw_mgmt_answer gw_mgmt_binding(gw_mgmt *m, const char *exchange, const char *queue, const char *key,
                               const gw_arg *args, size_t n_args, char *why, size_t why_len)
{
    if (!m->failed[0])
        check_same_node(m);
    if (m->failed[0]) {
        set_why(why, why_len, m->failed);
        return GW_MGMT_UNKNOWN;
    }
    char *url = bindings_url(m, exchange, queue);
    if (!url) {
        set_why(why, why_len, "cannot encode the request");
        return GW_MGMT_UNKNOWN;
    }
    body b = {0};
    long status = get(m, url, &b);
    free(url);
    gw_mgmt_answer a = GW_MGMT_UNKNOWN;
    if (status == 0 || status == 401 || status == 403) {
        set_why(why, why_len, m->failed);
    } else if (status == 200) {
        a = gw_mgmt_bindings_match(b.p ? b.p : "", b.n, key, args, n_args, why, why_len);
    } else if (status == 404) {
        set_why(why, why_len, "HTTP 404: no such exchange, queue or API path");
    } else {
        char t[64];
        snprintf(t, sizeof t, "HTTP %ld", status);
        set_why(why, why_len, t);
    }
    free(b.p);
    return a;
}
