/* URL helpers on top of libcurl's CURLU parser (no hand-written parsing).
 * Returned strings are malloc'd (caller frees with free()); NULL on bad
 * input. */
#ifndef URL_H
#define URL_H
#include <stddef.h>

/* `ref` (absolute or relative) resolved against `base`, dot segments
 * removed.  NULL when either does not parse. */
char *url_resolve(const char *base, const char *ref);

/* "scheme://host:port" with lower-case scheme and host and the port always
 * spelled out (80/443 filled in), e.g. "https://ehr.example:443".  NULL for
 * URLs that do not parse or have no host. */
char *url_origin(const char *url);

/* 1 when both URLs parse and have the same origin, else 0. */
int url_same_origin(const char *a, const char *b);

/* 1 when `url` is `base` or below it: both http(s), no userinfo, same
 * origin, and after dot-segment removal the path of `url` equals the path
 * of `base` or continues it at a '/' ("http://h/fhir" contains
 * "http://h/fhir/$export" and "http://h/fhir?x", not "http://h/fhirx" nor
 * "http://h/fhir/../admin").  Encoded dot segments ("%2e%2e") and
 * backslashes below the base are refused.  Else 0. */
int url_is_under(const char *url, const char *base);

/* 1 for an absolute http:// or https:// URL with a host, else 0. */
int url_is_http(const char *url);
/* For log lines: the URL without its query string (pre-signed URLs carry
 * credentials there) and with control characters replaced.  Writes into
 * out (size n) and returns it. */
const char *url_for_log(const char *url, char *out, size_t n);

#endif
