/* Writes of `clients` rows from a validated client_input, shared by
 * POST /auth/register and the admin UI (ui_clients.c). */
#ifndef CLIENT_STORE_H
#define CLIENT_STORE_H
#include "client_validate.h"
#include <libpq-fe.h>

/* Insert a new client with a fresh random id.  0 and *id_out (malloc'd),
 * *issued_at (unix seconds); -1 on a database error. */
int client_insert(PGconn *db, const struct client_input *ci, char **id_out, long long *issued_at);
/* Update name, fhir_base_url, provider settings, scope and kickoff method
 * (a CV_META input).  The cached provider token URL is dropped when the
 * base URL or the provider auth changes.  1 updated, 0 no such client, -1 error. */
int client_update_meta(PGconn *db, const char *id, const struct client_input *ci);
/* Replace the keys (a CV_KEYS input: jwks, or jwks_uri with its fetched
 * JWKS) and revoke the client's access tokens, in one transaction.
 * 1 replaced, 0 no such client, -1 error. */
int client_replace_keys(PGconn *db, const char *id, const struct client_input *ci);

#endif
