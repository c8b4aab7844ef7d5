/* POST /$import (bearer): a data provider pings us with a Parameters
 * resource naming its export.  We validate, queue an import row, notify the
 * worker (same transaction) and answer 202 at once; we never contact the
 * provider here. */
#include "handlers.h"
#include "auth.h"
#include "b64.h"
#include "config.h"
#include "db.h"
#include "import_params.h"
#include "log.h"
#include "url.h"
#include "web.h"
#include <stdlib.h>
#include <string.h>

#define THROTTLE_RETRY_AFTER 60

int h_import(struct request *rq, struct reply *rp)
{
	struct import_params ip;
	json_object *body = NULL;
	char *err = NULL, *id = NULL, *params = NULL;
	char maxbuf[32];
	struct buf loc = BUF_INIT;
	PGresult *r = NULL;
	int rc = -1, in_tx = 0;

	memset(&ip, 0, sizeof ip);
	if (!auth_scope_can_write(rq->scope)) {
		reply_oo(rp, 403, "error", "forbidden", "the access token's scope (%s) does not allow starting imports;"
			 " ask for system/*.write", rq->scope ? rq->scope : "none");
		goto done;
	}
	if (!web_accepts_fhir_json(rq->accept)) {
		reply_oo(rp, 400, "error", "not-supported", "Accept must be application/fhir+json");
		goto done;
	}
	if (rq->prefer && !web_prefer_respond_async(rq->prefer)) {
		reply_oo(rp, 400, "error", "not-supported", "Prefer must be respond-async");
		goto done;
	}
	if (!web_media_type_is(rq->content_type, "application/fhir+json") &&
	    !web_media_type_is(rq->content_type, "application/json")) {
		reply_oo(rp, 415, "error", "not-supported", "Content-Type must be application/fhir+json");
		goto done;
	}
	body = web_parse_json(rq->body, rq->body_len, &err);
	if (!body) {
		reply_oo(rp, 400, "error", "structure", "%s", err);
		goto done;
	}
	if (import_params_parse(body, &ip, &err) < 0) {
		reply_oo(rp, 400, "error", "invalid", "%s", err);
		goto done;
	}

	/* the client row is locked so concurrent pings count running imports correctly */
	if (db_cmd(rq->db, "BEGIN", 0) < 0)
		goto out;
	in_tx = 1;
	r = db_q(rq->db, "SELECT enabled, fhir_base_url FROM clients WHERE id = $1 FOR UPDATE", 1, rq->client_id);
	if (!r)
		goto out;
	if (PQntuples(r) != 1 || strcmp(db_get(r, 0, "enabled"), "t")) {
		reply_oo(rp, 403, "error", "forbidden", "client is disabled");
		goto done;
	}
	if (!url_is_under(ip.export_url, db_get(r, 0, "fhir_base_url"))) {
		reply_oo(rp, 403, "error", "forbidden", "exportUrl is not under the FHIR base URL registered for this client (%s)",
			 db_get(r, 0, "fhir_base_url"));
		goto done;
	}
	PQclear(r);
	r = NULL;
	if (CFG->max_running_imports > 0) {
		snprintf(maxbuf, sizeof maxbuf, "%ld", CFG->max_running_imports);
		r = db_q(rq->db,
			 "SELECT count(*) >= $2::bigint AS full FROM imports"
			 " WHERE client_id = $1 AND state NOT IN ('complete', 'failed', 'cancelled')",
			 2, rq->client_id, maxbuf);
		if (!r)
			goto out;
		if (!strcmp(db_get(r, 0, "full"), "t")) {
			reply_oo(rp, 429, "error", "throttled", "too many running imports (at most %ld); try again later",
				 CFG->max_running_imports);
			reply_header(rp, "Retry-After", "%d", THROTTLE_RETRY_AFTER);
			goto done;
		}
		PQclear(r);
		r = NULL;
	}
	id = random_token(24);
	if (!id)
		goto out;
	params = strdup(json_object_to_json_string_ext(ip.params, JSON_C_TO_STRING_PLAIN | JSON_C_TO_STRING_NOSLASHESCAPE));
	if (!params)
		goto out;
	if (db_cmd(rq->db,
		   "INSERT INTO imports (id, client_id, export_url, export_type, params) VALUES ($1, $2, $3, $4, $5::jsonb)",
		   5, id, rq->client_id, ip.export_url, ip.export_type, params) < 0)
		goto out;
	if (db_cmd(rq->db, "SELECT pg_notify('bulk_import_new', $1)", 1, id) < 0)
		goto out;
	if (db_cmd(rq->db, "COMMIT", 0) < 0)
		goto out;
	in_tx = 0;

	buf_printf(&loc, "%s/imports/%s", web_base(), id);
	reply_oo(rp, 202, "information", "informational", "Import accepted");
	reply_header(rp, "Content-Location", "%s", buf_str(&loc));
	log_info("client %s: import %.6s... queued (%s)", rq->client_id, id, ip.export_type);
done:
	rc = 0;
out:
	if (in_tx)
		db_cmd(rq->db, "ROLLBACK", 0);
	PQclear(r);
	json_object_put(body);
	import_params_free(&ip);
	free(err);
	free(id);
	free(params);
	buf_free(&loc);
	return rc;
}
