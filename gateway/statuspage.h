/* statuspage.h — the status page served at / on the metrics listener.
 *
 * gateway/statuspage.html is the page as it is served: self-contained HTML with inline CSS
 * and JavaScript (no CDN, no build step) that fetches /status.json (metrics.h,
 * gw_metrics_status_json) every 3 s and renders it. CMake embeds the file as this string
 * (cmake/embed.cmake); metrics.c serves it. Only names and numbers reach the page.
 */
#ifndef GW_STATUSPAGE_H
#define GW_STATUSPAGE_H

/* The page, NUL-terminated UTF-8. Static. */
extern const char gw_status_page_html[];

#endif
