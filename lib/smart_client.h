/* Outbound SMART Backend Services for one provider: token endpoint
 * discovery, client-assertion token requests and a cached access token.
 *
 * Discovery: {fhir_base}/.well-known/smart-configuration "token_endpoint",
 * else {fhir_base}/metadata (CapabilityStatement rest[].security.extension
 * oauth-uris / "token").  The token is reused until 30 s before it expires.
 * One client per export run; not thread-safe.  Never logs tokens or keys. */
#ifndef SMART_CLIENT_H
#define SMART_CLIENT_H
#include "export.h"
#include "http.h"

struct smart_client;

/* auth (client_id, key, alg, kid, scope, token_url), fhir_base and conf are
 * borrowed and must outlive the client.  NULL on allocation failure. */
struct smart_client *smart_new(const struct export_auth *auth, const char *fhir_base,
			       const struct http_conf *conf);
void smart_free(struct smart_client *s);

/* A valid access token (borrowed: good until the next smart_* call), or
 * NULL with *err (malloc'd) such as "SMART authorization failed: 401
 * invalid_client: unknown key" or "could not connect to provider at
 * http://...: ...".  *err_transient is set to 1 when the failure may pass
 * (network error, 429, 5xx), else 0.  err_transient may be NULL. */
const char *smart_token(struct smart_client *s, char **err, int *err_transient);

/* Forget the cached token (after a 401) so the next smart_token() asks
 * again.  The discovered token endpoint is kept. */
void smart_invalidate(struct smart_client *s);

/* Changes whenever a new token is obtained: parallel requests that all got
 * 401 with the same token refresh it once (invalidate only while the serial
 * is still the one their token had). */
unsigned smart_token_serial(const struct smart_client *s);

#endif
