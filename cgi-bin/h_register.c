/* POST /auth/register (admin): register a data provider as a client
 * (RFC 7591 style).  Errors: 400 {error:"invalid_client_metadata",
 * error_description:"<field>: <problem>"}.  main.c's dispatch has already
 * required Content-Type application/json (an admin write that is not an
 * HTML form with a CSRF token must be JSON). */
#include "handlers.h"
#include "client_store.h"
#include "log.h"
#include "web.h"
#include <stdlib.h>
#include <string.h>

int h_register(struct request *rq, struct reply *rp)
{
	struct client_input ci;
	json_object *in = NULL, *res = NULL, *arr;
	char *err = NULL, *field = NULL, *msg = NULL, *id = NULL;
	struct buf tokurl = BUF_INIT;
	long long issued_at = 0;
	int rc = -1;

	memset(&ci, 0, sizeof ci);
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
	if (client_insert(rq->db, &ci, &id, &issued_at) < 0)
		goto out;
	buf_printf(&tokurl, "%s/auth/token", web_base());
	res = json_object_new_object();
	json_object_object_add(res, "client_id", json_object_new_string(id));
	json_object_object_add(res, "client_id_issued_at", json_object_new_int64(issued_at));
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
	json_object_put(in);
	json_object_put(res);
	client_input_free(&ci);
	free(err);
	free(field);
	free(msg);
	free(id);
	buf_free(&tokurl);
	return rc;
}
