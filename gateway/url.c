/* url.c — the syntax of a broker URL, and which part of one is wrong. Pure.
 *
 * Walks the URL the way rabbitmq-c 0.11's amqp_parse_url does (segments between the
 * delimiters : @ / ? # [ ], ':' and '@' being plain characters inside brackets), so
 * what passes here also parses there; tests/unit/test_url.c holds the two side by
 * side. Only the messages are ours: they name the part, and quote it only when it
 * cannot be a password.
 */
#include "url.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

/* One segment of the URL: [start, end), then the delimiter that ended it ('\0' at the
 * end of the URL, '%' for a bad escape, which then starts at end). */
typedef struct seg {
    const char *start, *end;
    char delim;
    const char *next; /* just past the delimiter */
} seg;

static bool is_hex(char c)
{
    return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F');
}

static seg next_seg(const char *p, bool colon_and_at_delimit)
{
    seg s = {p, p, '\0', p};
    for (;;) {
        char c = *p;
        switch (c) {
        case ':':
        case '@':
            if (!colon_and_at_delimit)
                break;
            /* fall through */
        case '\0':
        case '/':
        case '?':
        case '#':
        case '[':
        case ']':
            s.end = p;
            s.delim = c;
            s.next = c ? p + 1 : p;
            return s;
        case '%':
            /* the library decodes into a (signed) char: %80 and above are refused */
            if (!is_hex(p[1]) || !is_hex(p[2]) || !(p[1] >= '0' && p[1] <= '7')) {
                s.end = p;
                s.delim = '%';
                s.next = p;
                return s;
            }
            p += 2;
            break;
        default:
            break;
        }
        p++;
    }
}

static bool fail(char *why, size_t len, const char *fmt, ...) __attribute__((format(printf, 3, 4)));

static bool fail(char *why, size_t len, const char *fmt, ...)
{
    if (why && len) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(why, len, fmt, ap);
        va_end(ap);
    }
    return false;
}

/* Explains a delimiter no URL may have where it stands. */
static bool bad_delim(const char *url, seg s, char *why, size_t len)
{
    size_t at = (size_t)(s.end - url) + 1;
    switch (s.delim) {
    case '%':
        return fail(why, len,
                    "has a bad %%-escape at character %zu: write %%XX with two hex digits, "
                    "from %%00 to %%7f",
                    at);
    case '?':
    case '#':
        return fail(why, len,
                    "has a '%c' at character %zu: AMQP URLs take no query or fragment; "
                    "write it as %%%02x if it belongs to a name",
                    s.delim, at, (unsigned)s.delim);
    default:
        return fail(why, len,
                    "has a stray '%c' at character %zu: the form is "
                    "amqp[s]://[user[:password]@]host[:port][/vhost], with %%XX for "
                    "special characters in names",
                    s.delim, at);
    }
}

/* port follows host; after a user[:password]@ it is surely a port and may be quoted, else
 * it may be a password whose '@host' is missing: then only the host is quoted. */
static bool check_port(seg host, seg port, bool after_userinfo, int default_port, char *why,
                       size_t len)
{
    size_t n = (size_t)(port.end - port.start);
    if (n == 0)
        return fail(why, len, "has an empty port after ':' (leave the ':' out for the default, %d)",
                    default_port);
    long v = 0;
    bool digits = n <= 5;
    for (size_t i = 0; digits && i < n; i++) {
        digits = port.start[i] >= '0' && port.start[i] <= '9';
        v = v * 10 + (port.start[i] - '0');
    }
    if (digits && v >= 1 && v <= 65535)
        return true;
    if (after_userinfo)
        return fail(why, len, "has a bad port: \"%.*s\" is not a number from 1 to 65535", (int)n,
                    port.start);
    return fail(why, len,
                "has a bad port: what follows \"%.*s:\" is not a number from 1 to 65535 (a "
                "password goes in user:password@host)",
                (int)(host.end - host.start), host.start);
}

bool gw_url_check(const char *url, char *why, size_t why_len)
{
    const char *p;
    int default_port;
    if (strncmp(url, "amqp://", 7) == 0) {
        p = url + 7;
        default_port = 5672;
    } else if (strncmp(url, "amqps://", 8) == 0) {
        p = url + 8;
        default_port = 5671;
    } else {
        return fail(why, why_len, "must start with amqp:// or amqps://");
    }
    seg host = next_seg(p, true), s = host, port = {0};
    bool have_port = false, port_after_userinfo = false;
    if (s.delim == ':') {
        port = next_seg(s.next, true); /* a port, or the password */
        have_port = true;
        s = port;
    }
    if (s.delim == '@') {
        have_port = false; /* that was user[:password] */
        port_after_userinfo = true;
        host = next_seg(s.next, true);
        s = host;
    }
    if (s.delim == '[') {
        if (have_port || host.end != host.start)
            return fail(why, why_len,
                        "has a bad host: an IPv6 address must be the whole host, in brackets, "
                        "e.g. amqp://[::1]:5672/");
        seg v6 = next_seg(s.next, false);
        if (v6.delim == '%')
            return bad_delim(url, v6, why, why_len);
        if (v6.delim != ']')
            return fail(why, why_len, "has a bad host: '[' without a closing ']'");
        s = next_seg(v6.next, true);
        if (s.end != s.start)
            return fail(why, why_len,
                        "has a bad host: only :port or /vhost may follow the ']' of an IPv6 "
                        "address");
    }
    if (s.delim == ':') {
        port = next_seg(s.next, true);
        have_port = true;
        s = port;
    }
    if (s.delim == '%')
        return bad_delim(url, s, why, why_len);
    if (have_port && !check_port(host, port, port_after_userinfo, default_port, why, why_len))
        return false;
    if (s.delim == '\0')
        return true;
    if (s.delim != '/')
        return bad_delim(url, s, why, why_len);
    seg vhost = next_seg(s.next, true);
    if (vhost.delim == '\0')
        return true;
    if (vhost.delim == '/' || vhost.delim == ':' || vhost.delim == '@')
        return fail(why, why_len,
                    "has a bad vhost: it is one path segment; write '/' as %%2f, ':' as %%3a and "
                    "'@' as %%40 (the vhost \"/\" is amqp://host/%%2f)");
    return bad_delim(url, vhost, why, why_len);
}
