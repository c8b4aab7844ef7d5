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
	/* a disabled client's tokens stop working at once, not at their expiry */
	r = db_q(rq->db, "SELECT t.client_id, t.scope, t.expires_at > now() AND c.enabled AS live"
			 "  FROM access_tokens t JOIN clients c ON c.id = t.client_id WHERE t.token_sha256 = $1",
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

int auth_scope_can_write(const char *scope)
{
	const char *p = scope;

	while (p && *p) {
		size_t n = strcspn(p, " ");
		const char *dot = memchr(p, '.', n);

		if (n > 7 && !strncmp(p, "system/", 7) && dot) {
			const char *perm = dot + 1;
			size_t pl = n - (size_t)(perm - p);
			if ((pl == 5 && !strncmp(perm, "write", 5)) || (pl == 1 && *perm == '*') ||
			    (pl <= 5 && memchr(perm, 'c', pl) && strspn(perm, "cruds") >= pl))
				return 1;
		}
		p += n;
		while (*p == ' ')
			p++;
	}
	return 0;
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
