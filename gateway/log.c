/* log.c — JSON-lines logger on stderr.
 *
 * One fprintf-free buffer per line, written with a single write(2) so lines from
 * several processes sharing a terminal never interleave mid-line.
 */
#include "log.h"

#include <stdio.h>
#include <string.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

gw_log_level gw_log_min_level = GW_LOG_INFO;
static int log_text;

void gw_log_set_text(int text)
{
    log_text = text;
}

int gw_log_level_parse(const char *s)
{
    static const char *names[] = {"debug", "info", "warn", "error", "off"};
    for (int i = 0; i < 5; i++)
        if (strcmp(s, names[i]) == 0)
            return i;
    return -1;
}

const char *gw_log_level_name(gw_log_level lvl)
{
    static const char *names[] = {"debug", "info", "warn", "error", "off"};
    return (unsigned)lvl < 5 ? names[lvl] : "?";
}

typedef struct {
    char buf[8192];
    size_t n;
} line_buf;

static void put(line_buf *b, const char *s, size_t len)
{
    if (b->n + len >= sizeof b->buf - 2)
        len = sizeof b->buf - 2 - b->n;
    memcpy(b->buf + b->n, s, len);
    b->n += len;
}

static void puts_(line_buf *b, const char *s)
{
    put(b, s, strlen(s));
}

static void put_escaped(line_buf *b, const char *s)
{
    static const char hex[] = "0123456789abcdef";
    for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
        char esc[7];
        if (*p == '"' || *p == '\\') {
            esc[0] = '\\';
            esc[1] = (char)*p;
            put(b, esc, 2);
        } else if (*p < 0x20 || *p == 0x7f) {
            memcpy(esc, "\\u00", 4);
            esc[4] = hex[*p >> 4];
            esc[5] = hex[*p & 15];
            put(b, esc, 6);
        } else {
            put(b, (const char *)p, 1);
        }
    }
}

void gw_log_emit(gw_log_level lvl, const char *msg, const gw_log_field *f, size_t n)
{
    line_buf b;
    b.n = 0;
    struct timeval tv;
    gettimeofday(&tv, NULL);
    struct tm tm;
    gmtime_r(&tv.tv_sec, &tm);
    char ts[96];
    snprintf(ts, sizeof ts, "%04d-%02d-%02dT%02d:%02d:%02d.%03dZ", tm.tm_year + 1900, tm.tm_mon + 1,
             tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec, (int)(tv.tv_usec / 1000));
    char num[32];
    if (log_text) {
        puts_(&b, ts);
        puts_(&b, " ");
        puts_(&b, gw_log_level_name(lvl));
        puts_(&b, " ");
        put_escaped(&b, msg);
        for (size_t i = 0; i < n; i++) {
            puts_(&b, " ");
            puts_(&b, f[i].key);
            puts_(&b, "=");
            if (f[i].kind == 'i') {
                snprintf(num, sizeof num, "%lld", f[i].i);
                puts_(&b, num);
            } else {
                put_escaped(&b, f[i].s ? f[i].s : "");
            }
        }
    } else {
        puts_(&b, "{\"ts\":\"");
        puts_(&b, ts);
        puts_(&b, "\",\"level\":\"");
        puts_(&b, gw_log_level_name(lvl));
        puts_(&b, "\",\"msg\":\"");
        put_escaped(&b, msg);
        puts_(&b, "\"");
        for (size_t i = 0; i < n; i++) {
            puts_(&b, ",\"");
            put_escaped(&b, f[i].key);
            puts_(&b, "\":");
            if (f[i].kind == 'i') {
                snprintf(num, sizeof num, "%lld", f[i].i);
                puts_(&b, num);
            } else if (f[i].s) {
                puts_(&b, "\"");
                put_escaped(&b, f[i].s);
                puts_(&b, "\"");
            } else {
                puts_(&b, "null");
            }
        }
        puts_(&b, "}");
    }
    b.buf[b.n++] = '\n';
    ssize_t w = write(STDERR_FILENO, b.buf, b.n);
    (void)w;
}

void gw_log_redact_url(const char *url, char *out, size_t len)
{
    /* amqp[s]://user:pass@host -> amqp[s]://user:***@host */
    const char *scheme = strstr(url, "://");
    const char *start = scheme ? scheme + 3 : url;
    const char *at = strchr(start, '@');
    const char *slash = strchr(start, '/');
    if (!at || (slash && slash < at)) {
        snprintf(out, len, "%s", url);
        return;
    }
    const char *colon = memchr(start, ':', (size_t)(at - start));
    if (!colon) {
        snprintf(out, len, "%s", url);
        return;
    }
    snprintf(out, len, "%.*s:***%s", (int)(colon - url), url, at);
}
