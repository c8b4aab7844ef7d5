#include "client_store.h"
#include "b64.h"
#include "db.h"
#include <stdlib.h>
#include <string.h>

/* Compact JSON text of `o` (malloc'd) or NULL for NULL. */
static char *json_text(json_object *o)
{
	char *s;

	if (!o)
		return NULL;
	s = strdup(json_object_to_json_string_ext(o, JSON_C_TO_STRING_PLAIN | JSON_C_TO_STRING_NOSLASHESCAPE));
	if (!s)
		abort();
	return s;
}

int client_insert(PGconn *db, const struct client_input *ci, char **id_out, long long *issued_at)
{
	char *id = random_token(16), *jwks = json_text(ci->jwks), *cache = json_text(ci->jwks_fetched);
	PGresult *r = NULL;
	int rc = -1;

	*id_out = NULL;
	if (!id)
		goto out;
	r = db_q(db,
		 "INSERT INTO clients (id, name, jwks, jwks_uri, jwks_cache, jwks_fetched_at, fhir_base_url,"
		 " provider_client_id, provider_auth, scope, kickoff_method)"
		 " VALUES ($1, $2, $3::jsonb, $4, $5::jsonb, CASE WHEN $5::jsonb IS NULL THEN NULL ELSE now() END,"
		 " $6, $7, $8, $9, $10)"
		 " RETURNING extract(epoch FROM created_at)::bigint AS issued_at",
		 10, id, ci->name, jwks, ci->jwks_uri, cache, ci->fhir_base_url, ci->provider_client_id,
		 ci->provider_auth, ci->scope, ci->kickoff_method);
	if (!r || PQntuples(r) != 1)
		goto out;
	*issued_at = atoll(db_get(r, 0, "issued_at"));
	*id_out = id;
	id = NULL;
	rc = 0;
out:
	PQclear(r);
	free(id);
	free(jwks);
	free(cache);
	return rc;
}

int client_update_meta(PGconn *db, const char *id, const struct client_input *ci)
{
	PGresult *r = db_q(db,
			   "UPDATE clients SET name = $2, fhir_base_url = $3, provider_client_id = $4, provider_auth = $5,"
			   "       scope = $6, kickoff_method = $7, updated_at = now(),"
			   "       provider_token_url = CASE WHEN fhir_base_url = $3 AND provider_auth = $5"
			   "                                 THEN provider_token_url END"
			   " WHERE id = $1 RETURNING id",
			   7, id, ci->name, ci->fhir_base_url, ci->provider_client_id, ci->provider_auth, ci->scope,
			   ci->kickoff_method);
	int n;

	if (!r)
		return -1;
	n = PQntuples(r);
	PQclear(r);
	return n == 1;
}

int client_replace_keys(PGconn *db, const char *id, const struct client_input *ci)
{
	char *jwks = json_text(ci->jwks), *cache = json_text(ci->jwks_fetched);
	PGresult *r;
	int rc = -1;

	/* one statement, so the new keys and the revocation commit together */
	r = db_q(db,
		 "WITH u AS (UPDATE clients SET jwks = $2::jsonb, jwks_uri = $3, jwks_cache = $4::jsonb,"
		 "                  jwks_fetched_at = CASE WHEN $4::jsonb IS NULL THEN NULL ELSE now() END,"
		 "                  updated_at = now()"
		 "            WHERE id = $1 RETURNING id),"
		 "     t AS (DELETE FROM access_tokens WHERE client_id IN (SELECT id FROM u))"
		 " SELECT id FROM u",
		 4, id, jwks, ci->jwks_uri, cache);
	if (r) {
		rc = PQntuples(r) == 1;
		PQclear(r);
	}
	free(jwks);
	free(cache);
	return rc;
}
