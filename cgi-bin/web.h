/* Small helpers shared by the handlers: base URL, header parsing, strict
 * JSON bodies, hashing, outbound fetch of client JWKS.
 * Returned char * / json_object * belong to the caller unless marked borrowed. */
#ifndef WEB_H
#define WEB_H
#include <stddef.h>
#include <json-c/json.h>

/* CFG->base_url without trailing '/' (borrowed, valid for the process). */
const char *web_base(void);

/* 1 when the media type of a Content-Type value (parameters ignored,
 * case-insensitive) equals `type`. */
int web_media_type_is(const char *header, const char *type);
/* 1 when an Accept header is absent or allows FHIR JSON
 * (application/fhir+json, application/json or a wildcard range, with q > 0). */
int web_accepts_fhir_json(const char *accept);
/* 1 when a Prefer header contains the respond-async preference. */
int web_prefer_respond_async(const char *prefer);

/* Strict parse of a whole JSON text (valid UTF-8, nothing after the value).
 * NULL + *err (malloc'd) on failure. */
json_object *web_parse_json(const char *s, size_t len, char **err);

/* Lower-case hex SHA-256 of a string (malloc'd). */
char *web_sha256_hex(const char *s);

/* GET an http(s) URL: no redirects, `timeout_s` overall, at most max_bytes.
 * Returns the body (malloc'd, NUL-terminated) for status 200, else NULL and
 * *err (malloc'd) describing the failure. */
char *web_fetch(const char *url, long timeout_s, size_t max_bytes, char **err);

/* Fetch a JWKS document and validate it with jose_jwks_validate.  Returns
 * the JWKS or NULL + *err (malloc'd). */
json_object *web_fetch_jwks(const char *url, char **err);

/* The consumer's public JWKS from config consumer_jwks_file (a single JWK
 * is wrapped into a set).  NULL with *err NULL when none is configured; NULL
 * with *err (malloc'd) when the file is unreadable, malformed or holds
 * private key members (never returned). */
json_object *web_consumer_jwks(char **err);

/* Printable copy of untrusted text for messages: control characters become
 * '?', at most `max` bytes (malloc'd). */
char *web_printable(const char *s, size_t max);

/* 1 when `id` looks like one of our random ids (1..64 base64url characters). */
int web_id_ok(const char *id);

/* SQL fragment: a timestamptz column as a FHIR instant in UTC. */
#define SQL_INSTANT(col) "to_char(" col " AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS.MS\"Z\"')"

#endif
