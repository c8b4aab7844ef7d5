/* POST /auth/token: SMART Backend Services client_credentials grant with a
 * private_key_jwt client assertion (RFC 7523).  Issues an opaque access
 * token; only its SHA-256 is stored.  Errors per RFC 6749 5.2. */
#include "handlers.h"
#include "b64.h"
#include "config.h"
#include "db.h"
#include "form.h"
#include "jose.h"
#include "log.h"
#include "web.h"
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define ASSERTION_TYPE "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"
#define MAX_ASSERTION 16384
#define REFETCH_MIN_AGE 10.0   /* seconds: unknown kid refetches a cached JWKS at most this often */
#define HOUSEKEEPING_EVERY 50

static unsigned long requests;

/* The unverified JOSE header's "kid" (malloc'd) or NULL. */
static char *header_kid(const char *jwt)
{
	const char *dot = strchr(jwt, '.');
	unsigned char *raw;
	size_t n;
	json_object *h, *k;
	char *kid = NULL;

	if (!dot)
		return NULL;
	raw = b64_decode(jwt, (size_t)(dot - jwt), &n);
	if (!raw)
		return NULL;
	h = json_tokener_parse((const char *)raw);
	if (h && json_object_object_get_ex(h, "kid", &k) && json_object_is_type(k, json_type_string))
		kid = strdup(json_object_get_string(k));
	json_object_put(h);
	free(raw);
	return kid;
}

static int jwks_has_kid(json_object *jwks, const char *kid)
{
	json_object *keys, *k, *v;
	size_t i, n;

	if (!jwks || !json_object_object_get_ex(jwks, "keys", &keys) || !json_object_is_type(keys, json_type_array))
		return 0;
	n = json_object_array_length(keys);
	for (i = 0; i < n; i++) {
		k = json_object_array_get_idx(keys, i);
		if (json_object_object_get_ex(k, "kid", &v) && json_object_is_type(v, json_type_string) &&
		    !strcmp(json_object_get_string(v), kid))
			return 1;
	}
	return 0;
}

/* RFC 6749 scope: tokens of %x21 / %x23-5B / %x5D-7E separated by single
 * spaces; we only grant system-level scopes. */
static int scope_ok(const char *s)
{
	const char *p = s;

	if (!*s || strlen(s) > 1000)
		return 0;
	for (;;) {
		const char *t = p;
		if (strncmp(p, "system/", 7))
			return 0;
		while (*p && *p != ' ') {
			if (*p < 0x21 || *p > 0x7e || *p == '"' || *p == '\\')
				return 0;
			p++;
		}
		if (p - t <= 7)
			return 0;
		if (!*p)
			return 1;
		p++;   /* single space */
	}
}

/* The JWKS to verify against (caller puts it), fetching/caching jwks_uri.
 * NULL + *err when none can be had. */
static json_object *client_jwks(struct request *rq, const PGresult *cr, const char *kid, char **err)
{
	const char *stored = db_get(cr, 0, "jwks"), *uri = db_get(cr, 0, "jwks_uri");
	const char *cache_txt = db_get(cr, 0, "jwks_cache"), *age_txt = db_get(cr, 0, "cache_age");
	json_object *cache = NULL, *fresh;
	double age = age_txt ? atof(age_txt) : 1e18;
	char *e = NULL;
	int need;

	*err = NULL;
	if (stored)
		return json_tokener_parse(stored);
	if (!uri) {
		*err = strdup("client has no JWKS");
		return NULL;
	}
	if (cache_txt)
		cache = json_tokener_parse(cache_txt);
	need = !cache || age >= (double)CFG->jwks_cache_seconds ||
	       (kid && !jwks_has_kid(cache, kid) && age >= REFETCH_MIN_AGE);
	if (!need)
		return cache;
	if (age < REFETCH_MIN_AGE) {
		/* tried moments ago (and failed, or the kid is still unknown):
		 * unauthenticated requests must not make us block on it again */
		if (cache)
			return cache;
		*err = strdup("jwks_uri was unreachable moments ago");
		return NULL;
	}
	fresh = web_fetch_jwks(uri, &e);
	if (!fresh) {
		/* remember the attempt: the cache age throttles the next one */
		db_cmd(rq->db, "UPDATE clients SET jwks_fetched_at = now() WHERE id = $1", 1, db_get(cr, 0, "id"));
		if (cache) {
			log_warn("client %s: jwks_uri refresh failed (%s); using cached JWKS", db_get(cr, 0, "id"), e);
			free(e);
			return cache;
		}
		*err = e;
		return NULL;
	}
	json_object_put(cache);
	if (db_cmd(rq->db, "UPDATE clients SET jwks_cache = $2::jsonb, jwks_fetched_at = now() WHERE id = $1", 2,
		   db_get(cr, 0, "id"),
		   json_object_to_json_string_ext(fresh, JSON_C_TO_STRING_PLAIN | JSON_C_TO_STRING_NOSLASHESCAPE)) < 0)
		log_warn("client %s: could not cache JWKS", db_get(cr, 0, "id"));
	return fresh;
}

static void housekeeping(PGconn *db)
{
	if (++requests % HOUSEKEEPING_EVERY != 1)
		return;
	db_cmd(db, "DELETE FROM used_jtis WHERE expires_at < now()", 0);
	db_cmd(db, "DELETE FROM access_tokens WHERE expires_at < now() - interval '1 day'", 0);
}

int h_token(struct request *rq, struct reply *rp)
{
	static const char *const single[] = { "grant_type", "scope", "client_assertion_type", "client_assertion",
					      "client_id", NULL };
	struct form f = { NULL, 0 };
	const char *grant, *atype, *assertion, *scope, *cid_param, *iss, *jti, *code = NULL;
	json_object *peek = NULL, *jwks = NULL, *claims = NULL, *v, *res = NULL;
	char *err = NULL, *desc = NULL, *kid = NULL, *token = NULL, *hash = NULL, *aud = NULL;
	char expbuf[32], lifebuf[32];
	struct buf m = BUF_INIT;
	struct jose_expect ex;
	PGresult *cr = NULL, *r = NULL;
	int rc = -1, i;

	housekeeping(rq->db);
	if (!web_media_type_is(rq->content_type, "application/x-www-form-urlencoded")) {
		reply_oauth_error(rp, 400, "invalid_request", "Content-Type must be application/x-www-form-urlencoded");
		goto done;
	}
	if (form_parse(rq->body, rq->body_len, &f, &err) < 0) {
		reply_oauth_error(rp, 400, "invalid_request", "%s", err);
		goto done;
	}
	for (i = 0; single[i]; i++)
		if (form_count(&f, single[i]) > 1) {
			reply_oauth_error(rp, 400, "invalid_request", "parameter %s repeated", single[i]);
			goto done;
		}
	grant = form_get(&f, "grant_type");
	atype = form_get(&f, "client_assertion_type");
	assertion = form_get(&f, "client_assertion");
	scope = form_get(&f, "scope");
	cid_param = form_get(&f, "client_id");
	if (!grant || !*grant) {
		reply_oauth_error(rp, 400, "invalid_request", "grant_type is required");
		goto done;
	}
	if (strcmp(grant, "client_credentials")) {
		reply_oauth_error(rp, 400, "unsupported_grant_type", "only client_credentials is supported");
		goto done;
	}
	if (!atype || strcmp(atype, ASSERTION_TYPE)) {
		reply_oauth_error(rp, 400, "invalid_request", "client_assertion_type must be %s", ASSERTION_TYPE);
		goto done;
	}
	if (!assertion || !*assertion) {
		reply_oauth_error(rp, 400, "invalid_request", "client_assertion is required");
		goto done;
	}
	if (strlen(assertion) > MAX_ASSERTION) {
		reply_oauth_error(rp, 400, "invalid_request", "client_assertion is too long");
		goto done;
	}
	if (!scope || !*scope)
		scope = CFG->token_default_scope;
	if (!scope_ok(scope)) {
		reply_oauth_error(rp, 400, "invalid_scope", "scope must be space-separated system/... scopes");
		goto done;
	}

	/* unverified iss: only to choose the client whose keys verify it */
	peek = jose_peek_claims(assertion, &err);
	if (!peek) {
		reply_oauth_error(rp, 401, "invalid_client", "client_assertion is not a well-formed JWT");
		goto done;
	}
	if (!json_object_object_get_ex(peek, "iss", &v) || !json_object_is_type(v, json_type_string) ||
	    !*(iss = json_object_get_string(v))) {
		reply_oauth_error(rp, 401, "invalid_client", "client_assertion has no iss");
		goto done;
	}
	if (cid_param && strcmp(cid_param, iss)) {
		reply_oauth_error(rp, 401, "invalid_client", "client_id does not match the assertion's iss");
		goto done;
	}
	cr = db_q(rq->db,
		  "SELECT id, enabled, jwks::text AS jwks, jwks_uri, jwks_cache::text AS jwks_cache,"
		  " extract(epoch FROM now() - jwks_fetched_at) AS cache_age FROM clients WHERE id = $1",
		  1, iss);
	if (!cr)
		goto out;
	if (PQntuples(cr) != 1) {
		reply_oauth_error(rp, 401, "invalid_client", "unknown client");
		goto done;
	}
	if (strcmp(db_get(cr, 0, "enabled"), "t")) {
		reply_oauth_error(rp, 401, "invalid_client", "client is disabled");
		goto done;
	}
	kid = header_kid(assertion);
	jwks = client_jwks(rq, cr, kid, &err);
	if (!jwks) {
		log_warn("client %s: no usable JWKS: %s", iss, err ? err : "?");
		/* the detail (resolver and TLS errors of the client's jwks_uri) goes to
		 * the log only: unauthenticated callers learn nothing about our network */
		reply_oauth_error(rp, 401, "invalid_client", "the client's JWKS could not be obtained");
		goto done;
	}

	buf_printf(&m, "%s/auth/token", web_base());
	aud = buf_detach(&m);
	memset(&ex, 0, sizeof ex);
	ex.client_id = db_get(cr, 0, "id");
	ex.aud = aud;
	if (jose_verify_assertion(assertion, jwks, &ex, &claims, &code, &desc) < 0) {
		const char *c = code ? code : "invalid_client";
		log_info("client %s: assertion rejected: %s", ex.client_id, desc ? desc : c);
		reply_oauth_error(rp, strcmp(c, "invalid_client") ? 400 : 401, c, "%s",
				  desc ? desc : "client assertion rejected");
		goto done;
	}

	/* replay guard: a jti is accepted once until the assertion expires */
	if (!json_object_object_get_ex(claims, "jti", &v) || !json_object_is_type(v, json_type_string) ||
	    !*(jti = json_object_get_string(v))) {
		reply_oauth_error(rp, 401, "invalid_client", "client_assertion has no jti");
		goto done;
	}
	if (json_object_object_get_ex(claims, "exp", &v) &&
	    (json_object_is_type(v, json_type_int) || json_object_is_type(v, json_type_double)))
		snprintf(expbuf, sizeof expbuf, "%lld", (long long)json_object_get_int64(v));
	else
		snprintf(expbuf, sizeof expbuf, "%lld", (long long)time(NULL) + JOSE_MAX_EXP_AHEAD);
	r = db_q(rq->db,
		 "INSERT INTO used_jtis (client_id, jti, expires_at) VALUES ($1, $2, to_timestamp($3::bigint))"
		 " ON CONFLICT DO NOTHING",
		 3, ex.client_id, jti, expbuf);
	if (!r)
		goto out;
	if (strcmp(PQcmdTuples(r), "1")) {
		log_warn("client %s: replayed client assertion", ex.client_id);
		reply_oauth_error(rp, 401, "invalid_client", "client_assertion was already used (jti replay)");
		goto done;
	}
	PQclear(r);
	r = NULL;

	token = random_token(32);
	if (!token)
		goto out;
	hash = web_sha256_hex(token);
	snprintf(lifebuf, sizeof lifebuf, "%ld", CFG->access_token_lifetime > 0 ? CFG->access_token_lifetime : 300);
	if (db_cmd(rq->db,
		   "INSERT INTO access_tokens (token_sha256, client_id, scope, expires_at)"
		   " VALUES ($1, $2, $3, now() + make_interval(secs => $4::double precision))",
		   4, hash, ex.client_id, scope, lifebuf) < 0)
		goto out;
	res = json_object_new_object();
	json_object_object_add(res, "access_token", json_object_new_string(token));
	json_object_object_add(res, "token_type", json_object_new_string("bearer"));
	json_object_object_add(res, "expires_in", json_object_new_int64(atol(lifebuf)));
	json_object_object_add(res, "scope", json_object_new_string(scope));
	reply_json(rp, 200, "application/json", res);
	reply_header(rp, "Cache-Control", "no-store");
	reply_header(rp, "Pragma", "no-cache");
	log_info("access token issued to client %s (scope %.200s)", ex.client_id, scope);
done:
	rc = 0;
out:
	PQclear(r);
	PQclear(cr);
	form_free(&f);
	json_object_put(peek);
	json_object_put(jwks);
	json_object_put(claims);
	json_object_put(res);
	free(err);
	free(desc);
	free(kid);
	free(token);
	free(hash);
	free(aud);
	buf_free(&m);
	return rc;
}
