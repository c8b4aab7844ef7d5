/* POST /auth/register (admin): register a data provider as a client
 * (RFC 7591 style).  Errors: 400 {error:"invalid_client_metadata",
 * error_description:"<field>: <problem>"}. */
#include "handlers.h"
#include "b64.h"
#include "client_validate.h"
#include "db.h"
#include "log.h"
#include "web.h"
#include <stdlib.h>
#include <string.h>

static const char *json_text(json_object *o)
{
	return o ? json_object_to_json_string_ext(o, JSON_C_TO_STRING_PLAIN | JSON_C_TO_STRING_NOSLASHESCAPE) : NULL;
}

int h_register(struct request *rq, struct reply *rp)
{
	struct client_input ci;
	json_object *in = NULL, *res = NULL, *arr;
	char *err = NULL, *field = NULL, *msg = NULL, *id = NULL, *jwks = NULL, *cache = NULL;
	struct buf tokurl = BUF_INIT;
	PGresult *r = NULL;
	int rc = -1;

	memset(&ci, 0, sizeof ci);
	if (rq->content_type && !web_media_type_is(rq->content_type, "application/json") &&
	    !web_media_type_is(rq->content_type, "application/fhir+json")) {
		reply_oauth_error(rp, 400, "invalid_client_metadata", "Content-Type must be application/json");
		rc = 0;
		goto out;
	}
	in = web_parse_json(rq->body, rq->body_len, &err);
	if (!in) {
		reply_oauth_error(rp, 400, "invalid_client_metadata", "body: %s", err);
		rc = 0;
		goto out;
	}
	if (client_validate(in, &ci, &field, &msg) < 0) {
		reply_oauth_error(rp, 400, "invalid_client_metadata", "%s: %s", field, msg);
		rc = 0;
		goto out;
	}
	id = random_token(16);
	if (!id)
		goto out;
	/* json_text results are borrowed from the objects; copy before the next call */
	jwks = ci.jwks ? strdup(json_text(ci.jwks)) : NULL;
	cache = ci.jwks_fetched ? strdup(json_text(ci.jwks_fetched)) : NULL;
	r = db_q(rq->db,
		 "INSERT INTO clients (id, name, jwks, jwks_uri, jwks_cache, jwks_fetched_at, fhir_base_url,"
		 " provider_client_id, provider_auth, scope, kickoff_method)"
		 " VALUES ($1, $2, $3::jsonb, $4, $5::jsonb, CASE WHEN $5::jsonb IS NULL THEN NULL ELSE now() END,"
		 " $6, $7, $8, $9, $10)"
		 " RETURNING extract(epoch FROM created_at)::bigint AS issued_at",
		 10, id, ci.name, jwks, ci.jwks_uri, cache, ci.fhir_base_url, ci.provider_client_id,
		 ci.provider_auth, ci.scope, ci.kickoff_method);
	if (!r || PQntuples(r) != 1)
		goto out;
	buf_printf(&tokurl, "%s/auth/token", web_base());
	res = json_object_new_object();
	json_object_object_add(res, "client_id", json_object_new_string(id));
	json_object_object_add(res, "client_id_issued_at", json_object_new_int64(atoll(db_get(r, 0, "issued_at"))));
	json_object_object_add(res, "token_endpoint", json_object_new_string(buf_str(&tokurl)));
	json_object_object_add(res, "token_endpoint_auth_method", json_object_new_string("private_key_jwt"));
	arr = json_object_new_array();
	json_object_array_add(arr, json_object_new_string("client_credentials"));
	json_object_object_add(res, "grant_types", arr);
	json_object_object_add(res, "name", json_object_new_string(ci.name));
	json_object_object_add(res, "fhir_base_url", json_object_new_string(ci.fhir_base_url));
	if (ci.jwks_uri)
		json_object_object_add(res, "jwks_uri", json_object_new_string(ci.jwks_uri));
	json_object_object_add(res, "provider_auth", json_object_new_string(ci.provider_auth));
	if (ci.provider_client_id)
		json_object_object_add(res, "provider_client_id", json_object_new_string(ci.provider_client_id));
	if (ci.scope)
		json_object_object_add(res, "scope", json_object_new_string(ci.scope));
	json_object_object_add(res, "kickoff_method", json_object_new_string(ci.kickoff_method));
	reply_json(rp, 201, "application/json", res);
	reply_header(rp, "Cache-Control", "no-store");
	log_info("client %s registered by %s for %s", id, rq->remote_user, ci.fhir_base_url);
	rc = 0;
out:
	PQclear(r);
	json_object_put(in);
	json_object_put(res);
	client_input_free(&ci);
	free(err);
	free(field);
	free(msg);
	free(id);
	free(jwks);
	free(cache);
	buf_free(&tokurl);
	return rc;
}
