/* log.h — structured logger: one JSON object a line on stderr.
 *
 * GW_LOG checks the level before evaluating its fields. Fields are typed
 * (GW_S string, GW_I integer); strings are JSON-escaped and control characters
 * from message data never reach the terminal raw. Never log a message body or a
 * password (use gw_log_redact_url for URLs).
 *
 *   GW_LOG(GW_LOG_INFO, "connected", GW_S("url", safe), GW_I("heartbeat", hb));
 */
#ifndef GW_LOG_H
#define GW_LOG_H

#include <stddef.h>

typedef enum gw_log_level {
    GW_LOG_DEBUG = 0,
    GW_LOG_INFO,
    GW_LOG_WARN,
    GW_LOG_ERROR,
    GW_LOG_OFF,
} gw_log_level;

typedef struct gw_log_field {
    const char *key;
    char kind; /* 's' string, 'i' integer, 0 = unused */
    const char *s;
    long long i;
} gw_log_field;

#define GW_S(k, v) ((gw_log_field){(k), 's', (v), 0})
#define GW_I(k, v) ((gw_log_field){(k), 'i', NULL, (long long)(v)})

extern gw_log_level gw_log_min_level;

#define GW_LOG(lvl, msg, ...)                                                                      \
    do {                                                                                           \
        if ((lvl) >= gw_log_min_level) {                                                           \
            const gw_log_field gw_f_[] = {{NULL, 0, NULL, 0}, __VA_ARGS__};                        \
            gw_log_emit((lvl), (msg), gw_f_ + 1, sizeof gw_f_ / sizeof gw_f_[0] - 1);              \
        }                                                                                          \
    } while (0)

/* Writes one JSON line {"ts":..., "level":..., "msg":..., fields...} to the sink. */
void gw_log_emit(gw_log_level lvl, const char *msg, const gw_log_field *f, size_t n);

/* Parses "debug|info|warn|error|off"; returns -1 if unknown. */
int gw_log_level_parse(const char *s);
const char *gw_log_level_name(gw_log_level lvl);

/* "json" (default) or "text" (one human line: ts level msg key=value...). */
void gw_log_set_text(int text);

/* Copies url into out with any password replaced by "***". */
void gw_log_redact_url(const char *url, char *out, size_t len);

#endif
