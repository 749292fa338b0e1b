/* dlqage.c — the DLQ's oldest age from the management API, on its own thread (dlqage.h). */
#include "dlqage.h"

#include "alloc.h"
#include "clock.h"
#include "lag.h"
#include "mgmt.h"

#include <errno.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

struct gw_dlqage {
    const gw_config *cfg;
    gw_metrics *metrics;
    uint64_t interval_ms;
    pthread_t thread;
    pthread_mutex_t mu;
    pthread_cond_t cv; /* CLOCK_MONOTONIC */
    char *url;         /* owned; NULL while disconnected (under mu) */
    bool stop;         /* under mu */
};

/* One measurement against url. */
static void measure(gw_dlqage *a, const char *url)
{
    char why[400] = "", err[300] = "";
    gw_mgmt *m = gw_mgmt_new(a->cfg, url, err, sizeof err);
    if (!m) {
        snprintf(why, sizeof why, "the management API: %s", err);
        gw_metrics_dlq_age(a->metrics, -1, why);
        return;
    }
    int64_t messages = 0, head_ts = -1;
    char api_why[300] = "";
    if (!gw_mgmt_queue_head(m, a->cfg->dlq_queue, &messages, &head_ts, api_why, sizeof api_why)) {
        snprintf(why, sizeof why, "the management API at %s: %s", gw_mgmt_base(m), api_why);
        gw_metrics_dlq_age(a->metrics, -1, why);
    } else {
        int64_t age = gw_lag_dlq_age(messages, head_ts, gw_clock_wall_ms(), why, sizeof why);
        gw_metrics_dlq_age(a->metrics, age, why);
    }
    gw_mgmt_free(m);
}

static void *run(void *arg)
{
    gw_dlqage *a = arg;
    pthread_mutex_lock(&a->mu);
    while (!a->stop) {
        char *url = a->url ? gw_xstrdup(a->url) : NULL;
        pthread_mutex_unlock(&a->mu);
        if (url)
            measure(a, url);
        else
            gw_metrics_dlq_age(a->metrics, -1, "not connected to the broker");
        free(url);
        pthread_mutex_lock(&a->mu);
        struct timespec until;
        clock_gettime(CLOCK_MONOTONIC, &until);
        until.tv_sec += (time_t)(a->interval_ms / 1000);
        until.tv_nsec += (long)(a->interval_ms % 1000) * 1000000L;
        if (until.tv_nsec >= 1000000000L) {
            until.tv_sec++;
            until.tv_nsec -= 1000000000L;
        }
        while (!a->stop && pthread_cond_timedwait(&a->cv, &a->mu, &until) != ETIMEDOUT)
            ;
    }
    pthread_mutex_unlock(&a->mu);
    return NULL;
}

gw_dlqage *gw_dlqage_start(const gw_config *cfg, gw_metrics *metrics, uint64_t interval_ms)
{
    if (cfg->queue_type == GW_QUEUE_QUORUM) {
        gw_metrics_dlq_age(metrics, -1,
                           "RabbitMQ does not report the head message's timestamp of a quorum "
                           "queue (queue_type: quorum)");
        return NULL;
    }
    gw_dlqage *a = gw_xcalloc(1, sizeof *a);
    a->cfg = cfg;
    a->metrics = metrics;
    a->interval_ms = interval_ms ? interval_ms : 1000;
    pthread_condattr_t ca;
    bool ok = pthread_mutex_init(&a->mu, NULL) == 0;
    if (ok && pthread_condattr_init(&ca) == 0) {
        ok = pthread_condattr_setclock(&ca, CLOCK_MONOTONIC) == 0 &&
             pthread_cond_init(&a->cv, &ca) == 0;
        pthread_condattr_destroy(&ca);
        if (ok && pthread_create(&a->thread, NULL, run, a) != 0) {
            pthread_cond_destroy(&a->cv);
            ok = false;
        }
        if (!ok)
            pthread_mutex_destroy(&a->mu);
    } else if (ok) {
        pthread_mutex_destroy(&a->mu);
        ok = false;
    }
    if (!ok) {
        gw_metrics_dlq_age(metrics, -1, "the measuring thread could not start");
        free(a);
        return NULL;
    }
    return a;
}

void gw_dlqage_set_url(gw_dlqage *a, const char *amqp_url)
{
    if (!a)
        return;
    char *url = amqp_url ? gw_xstrdup(amqp_url) : NULL;
    pthread_mutex_lock(&a->mu);
    char *old = a->url;
    a->url = url;
    pthread_mutex_unlock(&a->mu);
    free(old);
}

void gw_dlqage_stop(gw_dlqage *a)
{
    if (!a)
        return;
    pthread_mutex_lock(&a->mu);
    a->stop = true;
    pthread_cond_signal(&a->cv);
    pthread_mutex_unlock(&a->mu);
    pthread_join(a->thread, NULL);
    pthread_cond_destroy(&a->cv);
    pthread_mutex_destroy(&a->mu);
    free(a->url);
    free(a);
}
