/* SMART Backend Services client for one provider; see smart_client.h. */
#include "smart_client.h"
#include "buf.h"
#include "jose.h"
#include "url.h"
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#define OAUTH_URIS "http://fhir-registry.smarthealthit.org/StructureDefinition/oauth-uris"
#define ASSERTION_LIFETIME 300
#define REFRESH_MARGIN 30

struct smart_client {
	const struct export_auth *auth;
	const struct http_conf *conf;
	char *base;          /* fhir_base without trailing '/' */
	char *token_url;     /* configured or discovered */
	char *token;
	time_t renew_at;     /* reuse the token until then */
	unsigned serial;     /* bumped per new token */
};

static void wipe_free(char *s)
{
	if (s) {
		memset(s, 0, strlen(s));
		free(s);
	}
}

struct smart_client *smart_new(const struct export_auth *auth, const char *fhir_base,
			       const struct http_conf *conf)
{
	struct smart_client *s = calloc(1, sizeof *s);
	size_t n;

	if (!s)
		return NULL;
	s->auth = auth;
	s->conf = conf;
	s->base = strdup(fhir_base ? fhir_base : "");
	if (!s->base) {
		free(s);
		return NULL;
	}
	n = strlen(s->base);
	while (n && s->base[n - 1] == '/')
		s->base[--n] = '\0';
	if (auth->token_url && *auth->token_url)
		s->token_url = strdup(auth->token_url);
	return s;
}

void smart_free(struct smart_client *s)
{
	if (!s)
		return;
	wipe_free(s->token);
	free(s->token_url);
	free(s->base);
	free(s);
}

void smart_invalidate(struct smart_client *s)
{
	wipe_free(s->token);
	s->token = NULL;
	s->renew_at = 0;
}

/* Transport failure text shared with the export engine's wording. */
static void conn_err(char **err, const char *url, const struct http_resp *r)
{
	err_set(err, "could not connect to provider at %s: %s", url, r->error ? r->error : "unknown error");
}

static json_object *parse_body(const struct http_resp *r)
{
	if (!r->body.len || r->body_truncated)
		return NULL;
	return json_tokener_parse(r->body.data);
}

static const char *get_str(json_object *o, const char *key)
{
	json_object *v;

	if (o && json_object_object_get_ex(o, key, &v) && json_object_is_type(v, json_type_string))
		return json_object_get_string(v);
	return NULL;
}

/* CapabilityStatement rest[].security.extension[oauth-uris].extension[token] */
static const char *token_from_metadata(json_object *cs)
{
	json_object *rest, *sec, *exts, *subs;
	size_t i, j, k;

	if (!cs || !json_object_object_get_ex(cs, "rest", &rest) || !json_object_is_type(rest, json_type_array))
		return NULL;
	for (i = 0; i < json_object_array_length(rest); i++) {
		json_object *r = json_object_array_get_idx(rest, i);

		if (!json_object_object_get_ex(r, "security", &sec) ||
		    !json_object_object_get_ex(sec, "extension", &exts) ||
		    !json_object_is_type(exts, json_type_array))
			continue;
		for (j = 0; j < json_object_array_length(exts); j++) {
			json_object *x = json_object_array_get_idx(exts, j);
			const char *u = get_str(x, "url");

			if (!u || strcmp(u, OAUTH_URIS) || !json_object_object_get_ex(x, "extension", &subs) ||
			    !json_object_is_type(subs, json_type_array))
				continue;
			for (k = 0; k < json_object_array_length(subs); k++) {
				json_object *y = json_object_array_get_idx(subs, k);
				const char *v = get_str(y, "valueUri");

				if (!v)
					v = get_str(y, "valueUrl");
				u = get_str(y, "url");
				if (u && !strcmp(u, "token") && v)
					return v;
			}
		}
	}
	return NULL;
}

/* Sets s->token_url.  0, or -1 with *err. */
static int discover(struct smart_client *s, char **err, int *transient)
{
	static const char *const accept_json[] = { "Accept: application/json", NULL };
	static const char *const accept_fhir[] = { "Accept: application/fhir+json", NULL };
	struct http_req rq = { 0 };
	struct http_resp r = { 0 };
	json_object *doc = NULL;
	const char *t;
	char *wk = NULL, *md = NULL;
	long wk_status;
	int rc = -1;

	if (asprintf(&wk, "%s/.well-known/smart-configuration", s->base) < 0 ||
	    asprintf(&md, "%s/metadata", s->base) < 0) {
		err_set(err, "out of memory");
		goto out;
	}
	rq.url = wk;
	rq.headers = accept_json;
	if (http_request(s->conf, &rq, &r) < 0) {
		*transient = !r.stopped;
		conn_err(err, wk, &r);
		goto out;
	}
	wk_status = r.status;
	if (r.status == 200 && (doc = parse_body(&r)) && (t = get_str(doc, "token_endpoint"))) {
		s->token_url = url_resolve(r.url, t);
		goto found;
	}
	json_object_put(doc);
	doc = NULL;
	rq.url = md;
	rq.headers = accept_fhir;
	if (http_request(s->conf, &rq, &r) < 0) {
		*transient = !r.stopped;
		conn_err(err, md, &r);
		goto out;
	}
	if (r.status == 200 && (doc = parse_body(&r)) && (t = token_from_metadata(doc))) {
		s->token_url = url_resolve(r.url, t);
		goto found;
	}
	*transient = wk_status >= 500 || r.status >= 500 || r.status == 429;
	err_set(err, "SMART authorization failed: no token endpoint found at %s (HTTP %ld) or in %s (HTTP %ld)",
		wk, wk_status, md, r.status);
	goto out;
found:
	if (!s->token_url || !url_is_http(s->token_url)) {
		err_set(err, "SMART authorization failed: the provider's token endpoint \"%s\" is not an http(s) URL", t);
		free(s->token_url);
		s->token_url = NULL;
		goto out;
	}
	rc = 0;
out:
	json_object_put(doc);
	http_resp_free(&r);
	free(wk);
	free(md);
	return rc;
}

static void form_add(struct buf *b, const char *name, const char *value)
{
	static const char hex[] = "0123456789ABCDEF";
	const unsigned char *p;

	if (b->len)
		buf_putc(b, '&');
	buf_puts(b, name);
	buf_putc(b, '=');
	for (p = (const unsigned char *)value; *p; p++) {
		if ((*p >= 'A' && *p <= 'Z') || (*p >= 'a' && *p <= 'z') || (*p >= '0' && *p <= '9') ||
		    *p == '-' || *p == '.' || *p == '_' || *p == '~') {
			buf_putc(b, (char)*p);
		} else {
			buf_putc(b, '%');
			buf_putc(b, hex[*p >> 4]);
			buf_putc(b, hex[*p & 15]);
		}
	}
}

/* Provider text for a message: bounded, printable. */
static void clip(const char *s, char *out, size_t outsz)
{
	size_t i, o = 0;

	for (i = 0; s && s[i] && o + 1 < outsz; i++)
		out[o++] = (unsigned char)s[i] < 0x20 ? ' ' : s[i];
	/* never end inside a UTF-8 sequence */
	while (o && ((unsigned char)out[o - 1] & 0xc0) == 0x80)
		o--;
	if (o && (unsigned char)out[o - 1] >= 0xc0)
		o--;
	out[o] = '\0';
}

static int request_token(struct smart_client *s, char **err, int *transient)
{
	static const char *const hdrs[] = { "Content-Type: application/x-www-form-urlencoded",
					    "Accept: application/json", NULL };
	const struct export_auth *a = s->auth;
	struct http_req rq = { 0 };
	struct http_resp r = { 0 };
	struct buf form = BUF_INIT;
	json_object *doc = NULL, *v;
	char *assertion = NULL, *jerr = NULL, e1[128], e2[400];
	const char *tok, *code, *desc;
	time_t now = time(NULL);
	long expires_in = 300;
	int rc = -1;

	assertion = jose_sign_assertion(a->key, a->alg, a->kid, a->client_id, s->token_url, (long)now,
					ASSERTION_LIFETIME, &jerr);
	if (!assertion) {
		err_set(err, "SMART authorization failed: cannot sign the client assertion: %s",
			jerr ? jerr : "unknown error");
		goto out;
	}
	form_add(&form, "grant_type", "client_credentials");
	form_add(&form, "client_assertion_type", "urn:ietf:params:oauth:client-assertion-type:jwt-bearer");
	form_add(&form, "client_assertion", assertion);
	form_add(&form, "scope", a->scope && *a->scope ? a->scope : "system/*.read");
	rq.method = "POST";
	rq.url = s->token_url;
	rq.headers = hdrs;
	rq.body = form.data;
	rq.body_len = form.len;
	if (http_request(s->conf, &rq, &r) < 0) {
		*transient = !r.stopped;
		err_set(err, "SMART authorization failed: could not connect to the token endpoint %s: %s",
			s->token_url, r.error ? r.error : "unknown error");
		goto out;
	}
	doc = parse_body(&r);
	if (r.status != 200) {
		*transient = r.status == 429 || r.status >= 500;
		code = get_str(doc, "error");
		desc = get_str(doc, "error_description");
		clip(code, e1, sizeof e1);
		clip(desc, e2, sizeof e2);
		if (code && desc)
			err_set(err, "SMART authorization failed: %ld %s: %s", r.status, e1, e2);
		else if (code)
			err_set(err, "SMART authorization failed: %ld %s", r.status, e1);
		else
			err_set(err, "SMART authorization failed: HTTP %ld from the token endpoint %s",
				r.status, s->token_url);
		goto out;
	}
	tok = get_str(doc, "access_token");
	if (!tok || !*tok) {
		err_set(err, "SMART authorization failed: the token endpoint %s answered without an access_token",
			s->token_url);
		goto out;
	}
	if (json_object_object_get_ex(doc, "expires_in", &v) &&
	    (json_object_is_type(v, json_type_int) || json_object_is_type(v, json_type_double)) &&
	    json_object_get_int64(v) > 0)
		expires_in = (long)json_object_get_int64(v);
	wipe_free(s->token);
	s->token = strdup(tok);
	s->serial++;
	/* short-lived tokens: still reuse them for half their life */
	s->renew_at = now + (expires_in > 2 * REFRESH_MARGIN ? expires_in - REFRESH_MARGIN : expires_in / 2);
	rc = s->token ? 0 : -1;
out:
	if (doc) {
		/* scrub the token from the parsed copy and the raw body */
		json_object_put(doc);
	}
	if (r.body.data)
		memset(r.body.data, 0, r.body.len);
	http_resp_free(&r);
	if (form.data)
		memset(form.data, 0, form.len);
	buf_free(&form);
	wipe_free(assertion);
	free(jerr);
	return rc;
}

unsigned smart_token_serial(const struct smart_client *s)
{
	return s->serial;
}

const char *smart_token(struct smart_client *s, char **err, int *err_transient)
{
	int transient = 0;

	if (s->token && time(NULL) < s->renew_at)
		return s->token;
	smart_invalidate(s);
	if (!s->auth->key || !s->auth->client_id || !*s->auth->client_id) {
		err_set(err, "SMART authorization failed: no client_id or private key configured for this provider");
		goto fail;
	}
	if (!s->token_url && discover(s, err, &transient) < 0)
		goto fail;
	if (request_token(s, err, &transient) < 0)
		goto fail;
	return s->token;
fail:
	if (err_transient)
		*err_transient = transient;
	return NULL;
}
