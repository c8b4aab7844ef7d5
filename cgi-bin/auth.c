#include "auth.h"
#include "db.h"
#include "log.h"
#include "web.h"
#include <ctype.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#define MAX_TOKEN 512

static int deny(struct reply *rp, const char *error, const char *code, const char *msg)
{
	reply_oo(rp, 401, "error", code, "%s", msg);
	if (error)
		reply_header(rp, "WWW-Authenticate", "Bearer realm=\"bulk-import\", error=\"%s\", error_description=\"%s\"",
			     error, msg);
	else
		reply_header(rp, "WWW-Authenticate", "Bearer realm=\"bulk-import\"");
	return 1;
}

/* RFC 6750 b64token: 1*( ALPHA / DIGIT / "-" / "." / "_" / "~" / "+" / "/" ) *"=" */
static int b64token(const char *t)
{
	const char *p = t;

	while (isalnum((unsigned char)*p) || (*p && strchr("-._~+/", *p)))
		p++;
	if (p == t)
		return 0;
	while (*p == '=')
		p++;
	return *p == '\0' && p - t <= MAX_TOKEN;
}

int auth_bearer(struct request *rq, struct reply *rp, int allow_none)
{
	const char *h = rq->authorization, *tok;
	char *hash = NULL;
	PGresult *r = NULL;
	int rc = -1;

	if (!h) {
		if (allow_none)
			return 0;
		return deny(rp, NULL, "login", "an access token is required (Authorization: Bearer)");
	}
	if (strncasecmp(h, "Bearer ", 7))
		return deny(rp, "invalid_request", "login", "Authorization must use the Bearer scheme");
	for (tok = h + 7; *tok == ' '; tok++)
		;
	if (!b64token(tok))
		return deny(rp, "invalid_token", "login", "malformed access token");
	hash = web_sha256_hex(tok);
	r = db_q(rq->db, "SELECT client_id, scope, expires_at > now() AS live FROM access_tokens WHERE token_sha256 = $1",
		 1, hash);
	if (!r)
		goto out;
	if (PQntuples(r) != 1) {
		rc = deny(rp, "invalid_token", "login", "unknown access token");
		goto out;
	}
	if (strcmp(db_get(r, 0, "live"), "t")) {
		rc = deny(rp, "invalid_token", "expired", "access token expired");
		goto out;
	}
	rq->client_id = strdup(db_get(r, 0, "client_id"));
	rq->scope = strdup(db_get(r, 0, "scope"));
	if (!rq->client_id || !rq->scope)
		abort();
	rc = 0;
out:
	PQclear(r);
	free(hash);
	return rc;
}

int auth_import_visible(struct request *rq, const char *id)
{
	PGresult *r = db_q(rq->db,
			   "SELECT 1 FROM imports WHERE id = $1 AND ($2::text IS NULL OR client_id = $2)"
			   " AND state <> 'cancelled' AND NOT cancel_requested",
			   2, id, rq->client_id);
	int n;

	if (!r)
		return -1;
	n = PQntuples(r);
	PQclear(r);
	return n == 1;
}

int auth_admin(struct request *rq, struct reply *rp)
{
	if (rq->remote_user)
		return 0;
	reply_oo(rp, 401, "error", "login", "administrator authentication required");
	reply_header(rp, "WWW-Authenticate", "Basic realm=\"bulk-import admin\"");
	return 1;
}
