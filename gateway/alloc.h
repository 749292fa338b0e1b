/* alloc.h — allocation that aborts on out-of-memory.
 *
 * A gateway cannot recover from OOM; a supervisor restarts it. These are the only
 * callers of malloc & co. Everything returned is freed with free().
 */
#ifndef GW_ALLOC_H
#define GW_ALLOC_H

#include <stdarg.h>
#include <stddef.h>

void *gw_xmalloc(size_t n);
void *gw_xcalloc(size_t n, size_t size);
void *gw_xrealloc(void *p, size_t n);
char *gw_xstrdup(const char *s);
/* Copies len bytes and adds a NUL. */
char *gw_xstrndup(const char *s, size_t len);
void *gw_xmemdup(const void *p, size_t len);
char *gw_xasprintf(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
char *gw_xvasprintf(const char *fmt, va_list ap);

#endif
