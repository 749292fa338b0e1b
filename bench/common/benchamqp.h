/* benchamqp.h — what the benchmark's C clients (bench_load, bench_mover) share: one-line
 * fatal errors and an AMQP connection opened the same way (no TLS, heartbeats off, frame_max
 * 128 KiB, a connection_name, channel BENCH_CHANNEL open).
 */
#ifndef BENCH_AMQP_H
#define BENCH_AMQP_H

#include <amqp.h>

#include <stddef.h>

#define BENCH_CHANNEL 1

/* The program's name in messages; main sets it. */
extern const char *bench_prog;

/* Prints "PROG: message" on stderr and exits 1. */
__attribute__((format(printf, 1, 2), noreturn)) void bench_die(const char *fmt, ...);

/* Why an RPC failed, in one line (in buf when it needs formatting). */
const char *bench_reply_text(amqp_rpc_reply_t r, char *buf, size_t len);

/* Dies with what and the reason unless the last RPC on c succeeded. */
void bench_check_rpc(amqp_connection_state_t c, const char *what);

/* A logged-in connection to url (amqp:// only) named name, with BENCH_CHANNEL open; dies on
 * failure. */
amqp_connection_state_t bench_open(const char *url, const char *name);

/* Closes BENCH_CHANNEL and the connection, and frees it. */
void bench_close(amqp_connection_state_t c);

#endif
