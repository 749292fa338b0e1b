/* url.h — the syntax of a broker URL, and which part of one is wrong. Pure.
 *
 * An AMQP URL is amqp[s]://[user[:password]@]host[:port][/vhost], with %XX escapes
 * (e.g. amqp://guest:guest@localhost:5672/%2f). The grammar is the one rabbitmq-c
 * 0.11's amqp_parse_url reads, a little stricter: the port is digits only, 1..65535.
 * config.c checks every URL with it at load time, so `check` rejects what `run` could
 * never connect with; session.c uses it to explain a URL the library refused.
 * Never writes the user or the password into a message.
 */
#ifndef GW_URL_H
#define GW_URL_H

#include <stdbool.h>
#include <stddef.h>

/* True when url is a well-formed amqp:// or amqps:// URL. Otherwise false, and why
 * receives what is wrong and how to write it, as a phrase to follow "URL ", e.g.
 *   has a bad port: "notaport" is not a number from 1 to 65535
 *   must start with amqp:// or amqps://
 * A part that might be a password is named, never quoted. */
bool gw_url_check(const char *url, char *why, size_t why_len);

#endif
