/* The export engine behind export.h: kick-off (or attach to a status URL,
 * or read a static manifest), status polling, manifest paging, then the
 * parallel downloads on one libcurl multi handle.
 *
 * Waits never go longer than 200 ms without asking should_stop, and the
 * bearer token only ever goes to the provider FHIR base's origin. */
#include "export.h"
#include "buf.h"
#include "b64.h"
#include "dest.h"
#include "http.h"
#include "log.h"
#include "ndjson.h"
#include "smart_client.h"
#include "url.h"
#include <errno.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <unistd.h>
#include <openssl/evp.h>

/* State of one export_run(). */
struct run {
	const struct export_opts *o;
	const struct export_events *ev;
	struct export_result *res;
	struct http_conf conf;
	struct smart_client *smart;   /* NULL when the provider is open */
	char *auth_origin;            /* origin of fhir_base: the only place for the token */
	char *status_url;
	char *manifest_url;           /* where the (first) manifest page came from */
	json_object *manifest;
	char *last_auth_err;          /* transient token failure, for retry messages */
	int stopped;
	long long last_stop_check;
	int retries;
	long max_wait_ms, default_wait_ms;
	unsigned seed;                /* jitter */
};

static int download_all(struct run *r);

#define MANIFEST_MAX_BODY (64u << 20)
#define MAX_MANIFEST_PAGES 1000
#define SLICE_MS 200

static long long xp_now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* Asks should_stop at most every 50 ms: the download loop spins faster. */
static int xp_stop(struct run *r)
{
	long long now;

	if (r->stopped || !r->ev || !r->ev->should_stop)
		return r->stopped;
	now = xp_now_ms();
	if (now - r->last_stop_check < 50)
		return 0;
	r->last_stop_check = now;
	r->stopped = r->ev->should_stop(r->o->ctx);   /* EXPORT_STOP_CANCEL or _ABANDON */
	return r->stopped;
}

static int xp_past_deadline(const struct run *r)
{
	return r->o->deadline > 0 && time(NULL) >= r->o->deadline;
}

static void xp_fail(struct run *r, int http_status, const char *code, const char *fmt, ...)
	__attribute__((format(printf, 4, 5)));

static void xp_fail(struct run *r, int http_status, const char *code, const char *fmt, ...)
{
	va_list ap;

	if (r->res->error_message)
		return;   /* the first reason is the real one */
	r->res->http_status = http_status;
	free(r->res->error_code);
	r->res->error_code = strdup(code);
	va_start(ap, fmt);
	if (vasprintf(&r->res->error_message, fmt, ap) < 0)
		r->res->error_message = NULL;
	va_end(ap);
}

static void xp_fail_deadline(struct run *r)
{
	char when[32] = "";
	time_t d = r->o->deadline;
	struct tm tm;

	if (gmtime_r(&d, &tm))
		strftime(when, sizeof when, "%Y-%m-%dT%H:%M:%SZ", &tm);
	xp_fail(r, 504, "transient", "the export did not complete before its deadline (%s)", when);
}

/* Uniform in [ms*0.8, ms*1.2]. */
static long jitter(struct run *r, long ms)
{
	unsigned x = (unsigned)rand_r(&r->seed);

	return ms - ms / 5 + (long)((unsigned long long)x % (unsigned long long)(ms / 5 * 2 + 1));
}

static long xp_clamp_ms(const struct run *r, long ms)
{
	if (ms < 1000)
		ms = 1000;   /* never a zero wait */
	if (ms > r->max_wait_ms)
		ms = r->max_wait_ms;
	return ms;
}

static long xp_retry_ms(struct run *r, const char *retry_after, int attempt)
{
	long ra = http_retry_after(retry_after, time(NULL)), ms = 1000;
	int i;

	if (ra >= 0)
		return xp_clamp_ms(r, ra * 1000);
	for (i = 0; i < attempt && ms < r->max_wait_ms; i++)
		ms *= 2;
	return xp_clamp_ms(r, jitter(r, ms));
}

static int xp_pause(struct run *r, long ms)
{
	long long end = xp_now_ms() + ms, now;
	struct timespec ts;
	long slice;

	for (;;) {
		if (xp_stop(r))
			return -1;
		if (xp_past_deadline(r))
			return -2;
		now = xp_now_ms();
		if (now >= end)
			return 0;
		slice = end - now < SLICE_MS ? (long)(end - now) : SLICE_MS;
		ts.tv_sec = slice / 1000;
		ts.tv_nsec = (slice % 1000) * 1000000L;
		while (nanosleep(&ts, &ts) < 0 && errno == EINTR)
			;
	}
}

/* Pause and turn stop/deadline into the run's outcome.  0 or -1. */
static int pause_or_fail(struct run *r, long ms)
{
	int rc = xp_pause(r, ms);

	if (rc == -2)
		xp_fail_deadline(r);
	return rc ? -1 : 0;
}

/* Printable, bounded, valid-UTF-8 copy of provider text (malloc'd). */
static char *xp_clip(const char *s, size_t max)
{
	size_t n, i;
	char *out;

	if (!s)
		return strdup("");
	n = strnlen(s, max);
	if (n == max && s[n]) {
		/* do not cut inside a UTF-8 sequence */
		while (n && ((unsigned char)s[n] & 0xc0) == 0x80)
			n--;
	}
	n = utf8_valid_prefix((const unsigned char *)s, n);
	out = malloc(n + 4);
	if (!out)
		return NULL;
	for (i = 0; i < n; i++)
		out[i] = (unsigned char)s[i] < 0x20 ? ' ' : s[i];
	if (s[n])
		memcpy(out + n, "...", 4);
	else
		out[n] = '\0';
	return out;
}

/* Diagnostics of an OperationOutcome body: "issue text; issue text" (or
 * NULL when the body is not one).  *code gets the first issue's code
 * (borrowed from *doc, which the caller frees) when code is non-NULL. */
static char *xp_oo_text(const struct http_resp *resp, json_object **doc, const char **code)
{
	json_object *issues, *rt, *v, *d;
	struct buf b = BUF_INIT;
	char *out;
	size_t i;

	*doc = NULL;
	if (code)
		*code = NULL;
	if (!resp->body.len || resp->body_truncated)
		return NULL;
	*doc = json_tokener_parse(resp->body.data);
	if (!*doc || !json_object_object_get_ex(*doc, "resourceType", &rt) ||
	    strcmp(json_object_get_string(rt), "OperationOutcome") ||
	    !json_object_object_get_ex(*doc, "issue", &issues) || !json_object_is_type(issues, json_type_array))
		return NULL;
	for (i = 0; i < json_object_array_length(issues) && i < 5; i++) {
		json_object *is = json_object_array_get_idx(issues, i);
		const char *text = NULL;

		if (json_object_object_get_ex(is, "code", &v) && code && !*code)
			*code = json_object_get_string(v);
		if (json_object_object_get_ex(is, "diagnostics", &v))
			text = json_object_get_string(v);
		else if (json_object_object_get_ex(is, "details", &d) && json_object_object_get_ex(d, "text", &v))
			text = json_object_get_string(v);
		else if (json_object_object_get_ex(is, "code", &v))
			text = json_object_get_string(v);
		if (text && *text) {
			if (b.len)
				buf_puts(&b, "; ");
			buf_puts(&b, text);
		}
	}
	if (!b.len)
		return NULL;
	out = xp_clip(b.data, 500);
	buf_free(&b);
	return out;
}

/* "HTTP 400: diagnostics" or "HTTP 400" (malloc'd). */
static char *status_text(const struct http_resp *resp, const char **code, json_object **doc)
{
	char *oo = xp_oo_text(resp, doc, code), *out = NULL;

	if (oo) {
		if (asprintf(&out, "HTTP %ld: %s", resp->status, oo) < 0)
			out = NULL;
	} else if (asprintf(&out, "HTTP %ld", resp->status) < 0) {
		out = NULL;
	}
	free(oo);
	return out;
}

static int connect_error(int cc)
{
	return cc == CURLE_COULDNT_CONNECT || cc == CURLE_COULDNT_RESOLVE_HOST ||
	       cc == CURLE_COULDNT_RESOLVE_PROXY || cc == CURLE_SSL_CONNECT_ERROR ||
	       cc == CURLE_PEER_FAILED_VERIFICATION;
}

static void xp_fail_transport(struct run *r, const char *url, const struct http_resp *resp)
{
	if (connect_error(resp->curl_code))
		xp_fail(r, 502, "transient", "could not connect to provider at %s: %s", url,
			resp->error ? resp->error : "unknown error");
	else
		xp_fail(r, 502, "transient", "request to %s failed: %s", url,
			resp->error ? resp->error : "unknown error");
}

/* Token for a request, or NULL when the provider is open.  On failure
 * returns NULL with *failed set: 1 transient (retry), 2 fatal (recorded). */
static const char *xp_token(struct run *r, int *failed)
{
	const char *t;
	char *err = NULL;
	int transient = 0;

	*failed = 0;
	if (!r->smart)
		return NULL;
	t = smart_token(r->smart, &err, &transient);
	if (t)
		return t;
	if (transient && !xp_stop(r)) {
		log_warn("export: %s (will retry)", err ? err : "token request failed");
		free(r->last_auth_err);
		r->last_auth_err = err;
		*failed = 1;
		return NULL;
	}
	xp_fail(r, 502, "exception", "%s", err ? err : "SMART authorization failed");
	free(err);
	*failed = 2;
	return NULL;
}

/* One request to the provider's API with the token (when the URL is on the
 * FHIR base's origin), refreshing the token once after a 401.
 * 0: response in resp; -1: transport failure (retryable; resp->error or
 * r->last_auth_err); -2: fatal, recorded; -3: stopped. */
static int api_call(struct run *r, struct http_req *rq, struct http_resp *resp)
{
	int refreshed = 0, failed;

	for (;;) {
		rq->bearer = xp_token(r, &failed);
		if (failed == 2)
			return -2;
		if (failed == 1) {
			http_resp_reset(resp);
			resp->error = strdup(r->last_auth_err ? r->last_auth_err : "token request failed");
			return -1;
		}
		rq->auth_origin = r->auth_origin;
		rq->extra_headers = r->o->extra_headers;
		if (http_request(&r->conf, rq, resp) < 0)
			return resp->stopped || xp_stop(r) ? -3 : -1;
		if (resp->status == 401 && resp->sent_bearer && !refreshed && r->smart) {
			smart_invalidate(r->smart);
			refreshed = 1;
			continue;
		}
		return 0;
	}
}

/* Outcome of one failed attempt in a retry loop.  Returns 0 to retry (after
 * the wait), -1 when the run is over (recorded, or stopped). */
static int retry_or_fail(struct run *r, int *attempt, const char *url, int rc,
			 const struct http_resp *resp, const char *what)
{
	const char *code = NULL;
	json_object *doc = NULL;
	char *text;

	if (rc == -3 || rc == -2)
		return -1;
	if (*attempt < r->retries) {
		long ms = xp_retry_ms(r, rc == 0 ? resp->retry_after : NULL, *attempt);

		(*attempt)++;
		log_info("export: %s %s: %s; retry %d/%d in %ld ms", what, url,
			 rc == -1 ? (resp->error ? resp->error : "transport error") : "busy",
			 *attempt, r->retries, ms);
		return pause_or_fail(r, ms);
	}
	if (rc == -1 && !resp->curl_code && resp->error) {
		xp_fail(r, 502, "transient", "%s", resp->error);   /* token request kept failing */
		return -1;
	}
	if (rc == -1) {
		xp_fail_transport(r, url, resp);
		return -1;
	}
	text = status_text(resp, &code, &doc);
	xp_fail(r, 502, "transient", "%s %s kept failing after %d retries: %s", what, url, r->retries,
		text ? text : "error");
	free(text);
	json_object_put(doc);
	return -1;
}

static int busy_status(long s)
{
	return s == 429 || s == 408 || s >= 500;
}

/* ---- kick-off ---------------------------------------------------------- */

/* Kick-off URL with the Parameters as query parameters (malloc'd), or NULL
 * with the run failed. */
static char *kickoff_query_url(struct run *r)
{
	static const char *const scalar[] = {
		"valueString", "valueCode", "valueUrl", "valueUri", "valueCanonical", "valueId",
		"valueDateTime", "valueInstant", "valueDate", "valueBoolean", "valueInteger",
		"valuePositiveInt", "valueUnsignedInt", "valueDecimal", NULL
	};
	json_object *params = r->o->params, *list, *p, *v, *ref;
	CURLU *u = curl_url();
	char *out = NULL, *pair = NULL, *got = NULL;
	const char *name, *value;
	size_t i, k;

	if (!u || curl_url_set(u, CURLUPART_URL, r->o->url, 0) != CURLUE_OK) {
		xp_fail(r, 400, "invalid", "invalid kick-off URL %s", r->o->url);
		goto out;
	}
	if (params && json_object_object_get_ex(params, "parameter", &list) &&
	    json_object_is_type(list, json_type_array)) {
		for (i = 0; i < json_object_array_length(list); i++) {
			p = json_object_array_get_idx(list, i);
			name = json_object_object_get_ex(p, "name", &v) ? json_object_get_string(v) : NULL;
			value = NULL;
			for (k = 0; scalar[k] && !value; k++)
				if (json_object_object_get_ex(p, scalar[k], &v))
					value = json_object_get_string(v);
			if (!value && json_object_object_get_ex(p, "valueReference", &v) &&
			    json_object_object_get_ex(v, "reference", &ref))
				value = json_object_get_string(ref);
			if (!name || !*name || !value) {
				xp_fail(r, 400, "invalid", "kick-off parameter %s cannot be sent as a query parameter",
					name ? name : "(unnamed)");
				goto out;
			}
			free(pair);
			if (asprintf(&pair, "%s=%s", name, value) < 0) {
				pair = NULL;
				goto out;
			}
			/* repeated names stay repeated; libcurl encodes the value */
			if (curl_url_set(u, CURLUPART_QUERY, pair, CURLU_APPENDQUERY | CURLU_URLENCODE) != CURLUE_OK) {
				xp_fail(r, 400, "invalid", "cannot add kick-off parameter %s", name);
				goto out;
			}
		}
	}
	if (curl_url_get(u, CURLUPART_URL, &got, 0) == CURLUE_OK)
		out = strdup(got);
out:
	curl_free(got);
	free(pair);
	curl_url_cleanup(u);
	return out;
}

static int kickoff(struct run *r)
{
	static const char *const post_hdrs[] = { "Accept: application/fhir+json", "Prefer: respond-async",
						 "Content-Type: application/fhir+json", NULL };
	static const char *const get_hdrs[] = { "Accept: application/fhir+json", "Prefer: respond-async", NULL };
	struct http_req rq = { 0 };
	struct http_resp resp = { 0 };
	json_object *doc = NULL;
	const char *code = NULL;
	char *url = NULL, *text = NULL;
	int attempt = 0, rc, ret = -1;

	if (r->o->kickoff_get) {
		url = kickoff_query_url(r);
		if (!url)
			goto out;
		rq.method = "GET";
		rq.headers = get_hdrs;
	} else {
		url = strdup(r->o->url);
		rq.method = "POST";
		rq.headers = post_hdrs;
		rq.body = r->o->params ? json_object_to_json_string_ext(r->o->params, JSON_C_TO_STRING_PLAIN |
									 JSON_C_TO_STRING_NOSLASHESCAPE)
				       : "{\"resourceType\":\"Parameters\"}";
		rq.body_len = strlen(rq.body);
	}
	rq.url = url;
	for (;;) {
		if (xp_stop(r))
			goto out;
		rc = api_call(r, &rq, &resp);
		if (rc == 0 && resp.status == 202)
			break;
		if (rc != 0 || busy_status(resp.status)) {
			if (retry_or_fail(r, &attempt, r->o->url, rc, &resp, "export kick-off at") < 0)
				goto out;
			continue;
		}
		text = status_text(&resp, &code, &doc);
		if (resp.status == 401 || resp.status == 403)
			xp_fail(r, 502, "exception", "the provider refused access to %s: %s", r->o->url,
				text ? text : "error");
		else
			xp_fail(r, 502, "exception", "the provider refused the export kick-off at %s: %s", r->o->url,
				text ? text : "error");
		goto out;
	}
	if (!resp.content_location || !*resp.content_location) {
		xp_fail(r, 502, "exception", "the provider accepted the export kick-off at %s but sent no Content-Location",
			r->o->url);
		goto out;
	}
	r->status_url = url_resolve(resp.url, resp.content_location);
	if (!r->status_url || !url_is_http(r->status_url)) {
		xp_fail(r, 502, "exception", "the provider's status URL \"%s\" is not a usable http(s) URL",
			resp.content_location);
		goto out;
	}
	log_info("export: kick-off accepted, status URL %s", r->status_url);
	if (r->ev && r->ev->on_kickoff)
		r->ev->on_kickoff(r->o->ctx, r->status_url);
	ret = 0;
out:
	json_object_put(doc);
	free(text);
	free(url);
	http_resp_free(&resp);
	return ret;
}

/* ---- status polling ---------------------------------------------------- */

static json_object *parse_manifest(struct run *r, const struct http_resp *resp, const char *url)
{
	json_object *m = NULL, *out;

	if (resp->body_truncated) {
		xp_fail(r, 502, "exception", "the manifest at %s is larger than %u bytes", url, MANIFEST_MAX_BODY);
		return NULL;
	}
	if (resp->body.len)
		m = json_tokener_parse(resp->body.data);
	if (!m || !json_object_is_type(m, json_type_object)) {
		xp_fail(r, 502, "exception", "the manifest at %s is not a JSON object", url);
		json_object_put(m);
		return NULL;
	}
	if (json_object_object_get_ex(m, "output", &out) && !json_object_is_type(out, json_type_array)) {
		xp_fail(r, 502, "exception", "the manifest at %s has an \"output\" that is not an array", url);
		json_object_put(m);
		return NULL;
	}
	return m;
}

static int poll_status(struct run *r)
{
	static const char *const hdrs[] = { "Accept: application/json", NULL };
	struct http_req rq = { 0 };
	struct http_resp resp = { 0 };
	json_object *doc = NULL;
	const char *code;
	char *text = NULL;
	long backoff = r->default_wait_ms, ms, ra;
	int attempt = 0, rc, ret = -1;

	rq.method = "GET";
	rq.url = r->status_url;
	rq.headers = hdrs;
	rq.max_body = MANIFEST_MAX_BODY;
	for (;;) {
		if (xp_stop(r))
			goto out;
		if (xp_past_deadline(r)) {
			xp_fail_deadline(r);
			goto out;
		}
		rc = api_call(r, &rq, &resp);
		if (rc == 0 && resp.status == 202) {
			attempt = 0;
			if (r->ev && r->ev->on_status)
				r->ev->on_status(r->o->ctx, resp.x_progress);
			ra = http_retry_after(resp.retry_after, time(NULL));
			if (ra >= 0) {
				ms = xp_clamp_ms(r, ra * 1000);
			} else {
				ms = xp_clamp_ms(r, jitter(r, backoff));
				backoff = backoff + backoff / 2 < r->max_wait_ms ? backoff + backoff / 2 : r->max_wait_ms;
			}
			if (pause_or_fail(r, ms) < 0)
				goto out;
			continue;
		}
		if (rc == 0 && resp.status == 200) {
			r->manifest = parse_manifest(r, &resp, r->status_url);
			if (!r->manifest)
				goto out;
			free(r->manifest_url);
			r->manifest_url = strdup(resp.url);
			break;
		}
		if (rc == 0 && !busy_status(resp.status)) {
			free(text);
			json_object_put(doc);
			text = status_text(&resp, &code, &doc);
			if (resp.status == 404 || resp.status == 410)
				xp_fail(r, 502, "exception", "the provider no longer knows the export at %s: %s",
					r->status_url, text ? text : "error");
			else if (resp.status == 401 || resp.status == 403)
				xp_fail(r, 502, "exception", "the provider refused access to %s: %s",
					r->status_url, text ? text : "error");
			else
				xp_fail(r, 502, code && !strcmp(code, "transient") ? "transient" : "exception",
					"the provider reported that the export failed: %s", text ? text : "error");
			goto out;
		}
		if (rc == 0) {
			/* 5xx: an OperationOutcome that is not "transient" means the
			 * export itself failed; a transient one means polling did */
			free(text);
			json_object_put(doc);
			doc = NULL;
			text = status_text(&resp, &code, &doc);
			if (resp.status >= 500 && resp.status != 503 && code && strcmp(code, "transient")) {
				xp_fail(r, 502, "exception", "the provider reported that the export failed: %s",
					text ? text : "error");
				goto out;
			}
		}
		if (retry_or_fail(r, &attempt, r->status_url, rc, &resp, "status request to") < 0)
			goto out;
	}
	ret = 0;
out:
	json_object_put(doc);
	free(text);
	http_resp_free(&resp);
	return ret;
}

/* GET a manifest (static, or a `next` page) with retries. */
static json_object *fetch_manifest(struct run *r, const char *url, char **final_url)
{
	static const char *const hdrs[] = { "Accept: application/json", NULL };
	struct http_req rq = { 0 };
	struct http_resp resp = { 0 };
	json_object *m = NULL, *doc = NULL;
	const char *code;
	char *text = NULL;
	long backoff = r->default_wait_ms, ra, ms;
	int attempt = 0, rc;

	rq.method = "GET";
	rq.url = url;
	rq.headers = hdrs;
	rq.max_body = MANIFEST_MAX_BODY;
	for (;;) {
		if (xp_stop(r))
			goto out;
		if (xp_past_deadline(r)) {
			xp_fail_deadline(r);
			goto out;
		}
		rc = api_call(r, &rq, &resp);
		if (rc == 0 && resp.status == 200)
			break;
		if (rc == 0 && resp.status == 202) {
			/* a later page of a partial manifest that is not ready yet */
			if (r->ev && r->ev->on_status)
				r->ev->on_status(r->o->ctx, resp.x_progress);
			ra = http_retry_after(resp.retry_after, time(NULL));
			if (ra >= 0) {
				ms = xp_clamp_ms(r, ra * 1000);
			} else {
				ms = xp_clamp_ms(r, jitter(r, backoff));
				backoff = backoff + backoff / 2 < r->max_wait_ms ? backoff + backoff / 2 : r->max_wait_ms;
			}
			if (pause_or_fail(r, ms) < 0)
				goto out;
			continue;
		}
		if (rc != 0 || busy_status(resp.status)) {
			if (retry_or_fail(r, &attempt, url, rc, &resp, "manifest request to") < 0)
				goto out;
			continue;
		}
		text = status_text(&resp, &code, &doc);
		xp_fail(r, 502, "exception", "could not get the manifest at %s: %s", url, text ? text : "error");
		goto out;
	}
	m = parse_manifest(r, &resp, url);
	if (m && final_url)
		*final_url = strdup(resp.url);
out:
	json_object_put(doc);
	free(text);
	http_resp_free(&resp);
	return m;
}

/* ---- manifest paging --------------------------------------------------- */

static const char *next_link(json_object *m)
{
	json_object *links, *l, *v;
	size_t i;

	if (!json_object_object_get_ex(m, "link", &links) || !json_object_is_type(links, json_type_array))
		return NULL;
	for (i = 0; i < json_object_array_length(links); i++) {
		l = json_object_array_get_idx(links, i);
		if (json_object_object_get_ex(l, "relation", &v) && !strcmp(json_object_get_string(v), "next") &&
		    json_object_object_get_ex(l, "url", &v) && json_object_is_type(v, json_type_string))
			return json_object_get_string(v);
	}
	return NULL;
}

static void merge_array(json_object *into, json_object *from, const char *key)
{
	json_object *src, *dst;
	size_t i;

	if (!json_object_object_get_ex(from, key, &src) || !json_object_is_type(src, json_type_array))
		return;
	if (!json_object_object_get_ex(into, key, &dst) || !json_object_is_type(dst, json_type_array)) {
		dst = json_object_new_array();
		json_object_object_add(into, key, dst);
	}
	for (i = 0; i < json_object_array_length(src); i++)
		json_object_array_add(dst, json_object_get(json_object_array_get_idx(src, i)));
}

/* Follows `link` relation "next" and merges output/deleted/error into the
 * first page, which then has no `link` left. */
static int follow_pages(struct run *r)
{
	char **seen = NULL, *next = NULL, *page_url = NULL;
	const char *link;
	json_object *page = NULL, *cur = r->manifest;
	int n = 0, i, ret = -1;

	while ((link = next_link(cur))) {
		if (!page_url) {
			page_url = strdup(r->manifest_url ? r->manifest_url : r->o->url ? r->o->url : "");
			if (!page_url)
				goto out;
		}
		next = url_resolve(page_url, link);
		if (!next || !url_is_http(next)) {
			xp_fail(r, 502, "exception", "the manifest's next link \"%s\" is not a usable URL", link);
			goto out;
		}
		for (i = 0; i < n; i++)
			if (!strcmp(seen[i], next))
				break;
		if (i < n || n >= MAX_MANIFEST_PAGES) {
			xp_fail(r, 502, "exception", "the manifest's next links loop or exceed %d pages", MAX_MANIFEST_PAGES);
			goto out;
		}
		seen = realloc(seen, sizeof *seen * (size_t)(n + 1));
		seen[n++] = next;
		json_object_put(page);
		free(page_url);
		page_url = NULL;
		page = fetch_manifest(r, next, &page_url);
		next = NULL;
		if (!page)
			goto out;
		merge_array(r->manifest, page, "output");
		merge_array(r->manifest, page, "deleted");
		merge_array(r->manifest, page, "error");
		cur = page;
	}
	json_object_object_del(r->manifest, "link");
	ret = 0;
out:
	json_object_put(page);
	for (i = 0; i < n; i++)
		free(seen[i]);
	free(seen);
	free(next);
	free(page_url);
	return ret;
}

/* ---- DELETE on stop ---------------------------------------------------- */

static void delete_status(struct run *r)
{
	static const char *const hdrs[] = { "Accept: application/json", NULL };
	struct http_conf c = r->conf;
	struct http_req rq = { 0 };
	struct http_resp resp = { 0 };
	char *err = NULL;

	if (!r->status_url)
		return;
	/* we are stopping: this request, and the token fetch for it (the SMART
	 * client shares r->conf), must go out */
	r->conf.should_stop = NULL;
	c.should_stop = NULL;
	c.idle_timeout = c.idle_timeout > 0 && c.idle_timeout < 15 ? c.idle_timeout : 15;
	rq.method = "DELETE";
	rq.url = r->status_url;
	rq.headers = hdrs;
	rq.extra_headers = r->o->extra_headers;
	rq.auth_origin = r->auth_origin;
	if (r->smart)
		rq.bearer = smart_token(r->smart, &err, NULL);
	if (http_request(&c, &rq, &resp) < 0)
		log_warn("export: DELETE %s failed: %s", r->status_url, resp.error ? resp.error : "error");
	else
		log_info("export: DELETE %s: HTTP %ld", r->status_url, resp.status);
	free(err);
	http_resp_free(&resp);
}

/* ---- downloads --------------------------------------------------------- */

#define LINE_ISSUE_CAP 50
#define ERROR_BODY_MAX (64u << 10)
#define PROGRESS_MS 250

enum dl_state { DL_WAITING, DL_ACTIVE, DL_DONE };

/* One manifest file on its way into the destination. */
struct dl {
	struct run *r;
	struct export_file *f;
	const char *expect;           /* resourceType every line must have */
	int want_token;               /* requiresAccessToken */
	enum dl_state st;
	long long not_before;         /* monotonic ms; retry back-off */
	char *first_url;              /* the manifest's URL, resolved */
	char *url;                    /* current hop */
	int redirects, attempt, refreshed, started;
	CURL *e;
	struct curl_slist *hdrs;
	struct http_resp resp;        /* headers; body only for non-200 answers */
	long status;
	struct dest_file *df;
	struct ndjson *nd;
	EVP_MD_CTX *sha;
	int sent_bearer;
	unsigned token_serial;        /* which token went out */
	int store_failed;
	char *store_err;
	long long line_issues;        /* reported so far */
	long long last_progress;
	char errbuf[CURL_ERROR_SIZE];
};

static void file_issue(struct dl *d, const char *sev, const char *code, long long line, const char *fmt, ...)
	__attribute__((format(printf, 5, 6)));

static void file_issue(struct dl *d, const char *sev, const char *code, long long line, const char *fmt, ...)
{
	struct export_issue iss = { sev, code, d->f, line, NULL };
	char *msg = NULL;
	va_list ap;

	va_start(ap, fmt);
	if (vasprintf(&msg, fmt, ap) < 0)
		msg = NULL;
	va_end(ap);
	iss.message = msg ? msg : "error";
	if (d->r->ev && d->r->ev->on_issue)
		d->r->ev->on_issue(d->r->o->ctx, &iss);
	free(msg);
}

static void on_line_issue(void *ctx, long long line, const char *code, const char *msg)
{
	struct dl *d = ctx;

	if (d->line_issues++ < LINE_ISSUE_CAP)
		file_issue(d, "error", code, line, "%s", msg);
}

static size_t dl_write(char *p, size_t size, size_t n, void *ud)
{
	struct dl *d = ud;
	size_t len = size * n;
	long long now;

	if (!d->status)
		curl_easy_getinfo(d->e, CURLINFO_RESPONSE_CODE, &d->status);
	if (d->status != 200) {
		/* an error or redirect body: keep a little for the message */
		if (d->resp.body.len < ERROR_BODY_MAX)
			buf_append(&d->resp.body, p, len < ERROR_BODY_MAX - d->resp.body.len ? len
							: ERROR_BODY_MAX - d->resp.body.len);
		else
			d->resp.body_truncated = 1;
		return len;
	}
	/* stored exactly as received, then validated and hashed */
	if (dest_file_write(d->df, p, len, &d->store_err) < 0) {
		d->store_failed = 1;
		return 0;
	}
	EVP_DigestUpdate(d->sha, p, len);
	ndjson_feed(d->nd, p, len);
	d->f->bytes += (long long)len;
	now = xp_now_ms();
	if (now - d->last_progress >= PROGRESS_MS) {
		d->last_progress = now;
		d->f->lines = ndjson_lines(d->nd);
		if (d->r->ev && d->r->ev->on_file_progress)
			d->r->ev->on_file_progress(d->r->o->ctx, d->f);
	}
	return len;
}

/* Never called while the handle is in the multi handle. */
static void dl_finish(struct dl *d, int ok)
{
	if (d->df) {
		dest_file_abort(d->df);
		d->df = NULL;
	}
	if (d->e) {
		curl_easy_cleanup(d->e);
		d->e = NULL;
	}
	curl_slist_free_all(d->hdrs);
	d->hdrs = NULL;
	ndjson_free(d->nd);
	d->nd = NULL;
	if (d->sha)
		EVP_MD_CTX_free(d->sha);
	d->sha = NULL;
	http_resp_free(&d->resp);
	d->st = DL_DONE;
	if (!ok)
		d->r->res->files_failed++;
	if (d->r->ev && d->r->ev->on_file_done)
		d->r->ev->on_file_done(d->r->o->ctx, d->f, ok);
}

static void dl_fail(struct dl *d, const char *code, const char *fmt, ...) __attribute__((format(printf, 3, 4)));

static void dl_fail(struct dl *d, const char *code, const char *fmt, ...)
{
	char *msg = NULL;
	va_list ap;

	va_start(ap, fmt);
	if (vasprintf(&msg, fmt, ap) < 0)
		msg = NULL;
	va_end(ap);
	file_issue(d, "error", code, 0, "%s", msg ? msg : "download failed");
	log_warn("export: file %d: %s", d->f->seq, msg ? msg : "download failed");
	free(msg);
	dl_finish(d, 0);
}

/* Starts (or restarts from scratch) the transfer of d->url. 0, or -1 when
 * the file failed already. */
static int dl_start(struct dl *d, CURLM *m)
{
	static const char *const hdrs[] = { "Accept: application/fhir+ndjson", NULL };
	struct run *r = d->r;
	const char *token = NULL;
	char *origin, *err = NULL;
	int failed = 0, same;

	if (!url_is_http(d->url)) {
		dl_fail(d, "exception", "the file URL \"%s\" is not an http(s) URL", d->url);
		return -1;
	}
	origin = url_origin(d->url);
	same = origin && r->auth_origin && !strcmp(origin, r->auth_origin);
	free(origin);
	if (d->want_token && same) {
		token = xp_token(r, &failed);
		if (failed == 2) {
			dl_fail(d, "exception", "%s", r->res->error_message ? r->res->error_message : "authorization failed");
			/* a failed token is a per-file problem here, not the export's */
			free(r->res->error_message);
			free(r->res->error_code);
			r->res->error_message = r->res->error_code = NULL;
			r->res->http_status = 0;
			return -1;
		}
		if (failed == 1) {
			/* try again later like any transient failure */
			d->st = DL_WAITING;
			d->not_before = xp_now_ms() + xp_retry_ms(r, NULL, d->attempt);
			if (d->attempt++ >= r->retries) {
				dl_fail(d, "transient", "%s", r->last_auth_err ? r->last_auth_err : "token request failed");
				return -1;
			}
			return 0;
		}
	}
	/* allocated when needed: a manifest may list thousands of files */
	if (!d->nd)
		d->nd = ndjson_new(d->expect, r->o->max_line_bytes, on_line_issue, d);
	if (!d->sha)
		d->sha = EVP_MD_CTX_new();
	if (!d->nd || !d->sha) {
		dl_fail(d, "exception", "out of memory");
		return -1;
	}
	if (d->df)
		dest_file_abort(d->df);
	d->df = dest_file_open(r->o->dest, d->f->dest_name, &err);
	if (!d->df) {
		dl_fail(d, "exception", "cannot store %s: %s", d->f->dest_name, err ? err : "error");
		free(err);
		return -1;
	}
	ndjson_reset(d->nd);
	EVP_DigestInit_ex(d->sha, EVP_sha256(), NULL);
	d->f->bytes = d->f->lines = 0;
	d->status = 0;
	d->line_issues = 0;
	http_resp_reset(&d->resp);
	if (!d->e)
		d->e = curl_easy_init();
	else
		curl_easy_reset(d->e);
	if (!d->e) {
		dl_fail(d, "exception", "out of memory");
		return -1;
	}
	curl_slist_free_all(d->hdrs);
	/* extra headers belong to the provider: never to storage elsewhere */
	d->hdrs = http_hop_headers(d->url, hdrs, r->o->extra_headers, same, token, r->auth_origin, &d->sent_bearer);
	if (r->smart)
		d->token_serial = smart_token_serial(r->smart);
	{
		struct http_conf c = r->conf;

		c.should_stop = NULL;   /* the loop asks; per-transfer calls would be many */
		http_apply_conf(d->e, &c);
	}
	d->errbuf[0] = '\0';
	curl_easy_setopt(d->e, CURLOPT_ERRORBUFFER, d->errbuf);
	curl_easy_setopt(d->e, CURLOPT_URL, d->url);
	curl_easy_setopt(d->e, CURLOPT_HTTPGET, 1L);
	curl_easy_setopt(d->e, CURLOPT_HTTPHEADER, d->hdrs);
	curl_easy_setopt(d->e, CURLOPT_HEADERFUNCTION, http_header_cb);
	curl_easy_setopt(d->e, CURLOPT_HEADERDATA, &d->resp);
	curl_easy_setopt(d->e, CURLOPT_WRITEFUNCTION, dl_write);
	curl_easy_setopt(d->e, CURLOPT_WRITEDATA, d);
	curl_easy_setopt(d->e, CURLOPT_PRIVATE, d);
	if (!d->started) {
		d->started = 1;
		if (r->ev && r->ev->on_file_start)
			r->ev->on_file_start(r->o->ctx, d->f);
	}
	if (curl_multi_add_handle(m, d->e) != CURLM_OK) {
		dl_fail(d, "exception", "cannot start the transfer");
		return -1;
	}
	d->st = DL_ACTIVE;
	d->last_progress = xp_now_ms();
	return 0;
}

/* Schedule a retry from scratch, or fail the file when retries are used. */
static void dl_retry(struct dl *d, const char *why, const char *retry_after)
{
	struct run *r = d->r;
	long ms;

	if (ndjson_errors(d->nd)) {
		/* the content is already known to be bad: no point in fetching it again */
		dl_fail(d, "structure", "file has invalid lines and then failed: %s", why);
		return;
	}
	if (d->attempt >= r->retries) {
		dl_fail(d, "transient", "download failed after %d attempts: %s", d->attempt + 1, why);
		return;
	}
	ms = xp_retry_ms(r, retry_after, d->attempt);
	d->attempt++;
	log_info("export: file %d: %s; retry %d/%d in %ld ms", d->f->seq, why, d->attempt, r->retries, ms);
	dest_file_abort(d->df);
	d->df = NULL;
	free(d->url);
	d->url = strdup(d->first_url);   /* redirect targets may have expired */
	d->redirects = 0;
	d->st = DL_WAITING;
	d->not_before = xp_now_ms() + ms;
}

static void dl_complete(struct dl *d)
{
	unsigned char md[EVP_MAX_MD_SIZE];
	unsigned mdlen = 0;
	char *err = NULL, *hex;
	long long errors;

	ndjson_finish(d->nd);
	d->f->lines = ndjson_lines(d->nd);
	errors = ndjson_errors(d->nd);
	if (d->line_issues > LINE_ISSUE_CAP)
		file_issue(d, "error", "structure", 0, "%lld lines with problems, only the first %d reported",
			   errors, LINE_ISSUE_CAP);
	if (d->f->manifest_count >= 0 && d->f->lines != d->f->manifest_count) {
		file_issue(d, "error", "value", 0, "line count %lld does not match the manifest count %lld",
			   d->f->lines, d->f->manifest_count);
		errors++;
	}
	if (errors) {
		log_warn("export: file %d (%s) is invalid; not stored", d->f->seq, d->f->url);
		dl_finish(d, 0);
		return;
	}
	EVP_DigestFinal_ex(d->sha, md, &mdlen);
	hex = hex_encode(md, mdlen);
	if (hex) {
		snprintf(d->f->sha256, sizeof d->f->sha256, "%s", hex);
		free(hex);
	}
	if (dest_file_commit(d->df, &err) < 0) {
		d->df = NULL;
		dl_fail(d, "exception", "cannot store %s: %s", d->f->dest_name, err ? err : "error");
		free(err);
		return;
	}
	d->df = NULL;
	dl_finish(d, 1);
}

/* A transfer ended: decide between done, redirect, retry and failure. */
static void dl_ended(struct dl *d, CURLcode cc)
{
	struct run *r = d->r;
	const char *code = NULL;
	json_object *doc = NULL;
	char *text = NULL, *loc = NULL, *next;
	long status = 0;

	if (d->store_failed) {
		dl_fail(d, "exception", "cannot store %s: %s", d->f->dest_name, d->store_err ? d->store_err : "write error");
		return;
	}
	if (cc != CURLE_OK) {
		char why[CURL_ERROR_SIZE + 32];

		snprintf(why, sizeof why, "%s", d->errbuf[0] ? d->errbuf : curl_easy_strerror(cc));
		dl_retry(d, why, NULL);
		return;
	}
	curl_easy_getinfo(d->e, CURLINFO_RESPONSE_CODE, &status);
	if (status == 200) {
		dl_complete(d);
		return;
	}
	if (http_is_redirect(status)) {
		curl_easy_getinfo(d->e, CURLINFO_REDIRECT_URL, &loc);
		if (loc) {
			if (d->redirects >= HTTP_MAX_REDIRECTS) {
				dl_fail(d, "exception", "more than %d redirects",
					HTTP_MAX_REDIRECTS);
				return;
			}
			next = strdup(loc);
			free(d->url);
			d->url = next;
			d->redirects++;
			d->st = DL_WAITING;
			d->not_before = 0;
			return;
		}
	}
	if (status == 401 && d->sent_bearer && !d->refreshed && r->smart) {
		/* parallel downloads that got 401 with the same token refresh it once */
		if (smart_token_serial(r->smart) == d->token_serial)
			smart_invalidate(r->smart);
		d->refreshed = 1;
		d->st = DL_WAITING;
		d->not_before = 0;
		return;
	}
	d->resp.status = status;
	text = status_text(&d->resp, &code, &doc);
	if (busy_status(status))
		dl_retry(d, text ? text : "server busy", d->resp.retry_after);
	else
		dl_fail(d, "exception", "download failed: %s", text ? text : "error");
	free(text);
	json_object_put(doc);
}

static void dl_free(struct dl *d, CURLM *m)
{
	if (d->e) {
		if (d->st == DL_ACTIVE)
			curl_multi_remove_handle(m, d->e);
		curl_easy_cleanup(d->e);
	}
	curl_slist_free_all(d->hdrs);
	http_resp_free(&d->resp);
	if (d->df)
		dest_file_abort(d->df);
	ndjson_free(d->nd);
	if (d->sha)
		EVP_MD_CTX_free(d->sha);
	free(d->url);
	free(d->first_url);
	free(d->store_err);
}

static const char *get_str(json_object *o, const char *key)
{
	json_object *v;

	if (o && json_object_object_get_ex(o, key, &v) && json_object_is_type(v, json_type_string))
		return json_object_get_string(v);
	return NULL;
}

/* files[] from output, deleted and error, numbered across all three.
 * Strings borrow from the manifest; dest names go to names[]. */
static int build_files(struct run *r, struct export_file **files_out, char ***names_out)
{
	static const char *const kinds[] = { "output", "deleted", "error" };
	struct export_file *files = NULL;
	char **names = NULL, *raw = NULL;
	json_object *arr, *it, *cnt;
	size_t k, i, total = 0;
	int n = 0;

	for (k = 0; k < 3; k++)
		if (json_object_object_get_ex(r->manifest, kinds[k], &arr) && json_object_is_type(arr, json_type_array))
			total += json_object_array_length(arr);
	files = calloc(total ? total : 1, sizeof *files);
	names = calloc(total ? total : 1, sizeof *names);
	if (!files || !names)
		goto fail;
	for (k = 0; k < 3; k++) {
		if (!json_object_object_get_ex(r->manifest, kinds[k], &arr) || !json_object_is_type(arr, json_type_array))
			continue;
		for (i = 0; i < json_object_array_length(arr); i++) {
			struct export_file *f = &files[n];
			const char *type, *u;

			it = json_object_array_get_idx(arr, i);
			type = get_str(it, "type");
			u = get_str(it, "url");
			f->seq = n + 1;
			f->kind = kinds[k];
			f->type = type ? type : "";
			f->url = u ? u : "";
			f->manifest_count = json_object_object_get_ex(it, "count", &cnt) &&
					    json_object_is_type(cnt, json_type_int) ? json_object_get_int64(cnt) : -1;
			if (asprintf(&raw, "%d.%s.ndjson", f->seq, type && *type ? type : "unknown") < 0)
				goto fail;
			names[n] = dest_safe_name(raw);
			free(raw);
			raw = NULL;
			if (!names[n])
				goto fail;
			f->dest_name = names[n];
			n++;
		}
	}
	*files_out = files;
	*names_out = names;
	return n;
fail:
	for (i = 0; names && i < (size_t)n; i++)
		free(names[i]);
	free(names);
	free(files);
	xp_fail(r, 500, "exception", "out of memory");
	return -1;
}

static int download_all(struct run *r)
{
	struct export_file *files = NULL;
	struct dl *dls = NULL;
	char **names = NULL;
	CURLM *m = NULL;
	CURLMsg *msg;
	json_object *v;
	int n, i, active, left, running, want_token = 0, ret = -1;
	int par = r->o->parallelism > 0 ? r->o->parallelism : 4;
	long long now;

	if (json_object_object_get_ex(r->manifest, "requiresAccessToken", &v))
		want_token = json_object_get_boolean(v);
	n = build_files(r, &files, &names);
	if (n < 0)
		return -1;
	if (r->ev && r->ev->on_manifest)
		r->ev->on_manifest(r->o->ctx, r->manifest, files, n);
	dls = calloc(n ? (size_t)n : 1, sizeof *dls);
	m = curl_multi_init();
	if (!dls || !m) {
		xp_fail(r, 500, "exception", "out of memory");
		goto out;
	}
	for (i = 0; i < n; i++) {
		struct dl *d = &dls[i];

		d->r = r;
		d->f = &files[i];
		d->st = files[i].skip ? DL_DONE : DL_WAITING;
		if (d->st == DL_DONE)
			continue;
		d->expect = !strcmp(files[i].kind, "deleted") ? "Bundle" :
			    !strcmp(files[i].kind, "error") ? "OperationOutcome" :
			    *files[i].type ? files[i].type : NULL;
		d->want_token = want_token;
		/* the spec wants absolute URLs; resolve relative ones anyway */
		d->first_url = r->manifest_url && *files[i].url ? url_resolve(r->manifest_url, files[i].url) : NULL;
		if (!d->first_url)
			d->first_url = strdup(files[i].url);
		d->url = d->first_url ? strdup(d->first_url) : NULL;
		if (!d->first_url || !d->url) {
			xp_fail(r, 500, "exception", "out of memory");
			goto out;
		}
	}
	for (;;) {
		if (xp_stop(r))
			goto out;
		if (xp_past_deadline(r)) {
			xp_fail_deadline(r);
			goto out;
		}
		now = xp_now_ms();
		active = left = 0;
		for (i = 0; i < n; i++)
			if (dls[i].st == DL_ACTIVE)
				active++;
		for (i = 0; i < n; i++) {
			if (dls[i].st == DL_WAITING && active < par && dls[i].not_before <= now &&
			    dl_start(&dls[i], m) == 0 && dls[i].st == DL_ACTIVE)
				active++;
			if (dls[i].st != DL_DONE)
				left++;
		}
		if (!left)
			break;
		curl_multi_perform(m, &running);
		while ((msg = curl_multi_info_read(m, &running))) {
			struct dl *d = NULL;

			if (msg->msg != CURLMSG_DONE)
				continue;
			curl_easy_getinfo(msg->easy_handle, CURLINFO_PRIVATE, (char **)&d);
			curl_multi_remove_handle(m, msg->easy_handle);
			d->st = DL_WAITING;   /* dl_ended moves it on */
			dl_ended(d, msg->data.result);
		}
		curl_multi_poll(m, NULL, 0, SLICE_MS, NULL);
	}
	ret = 0;
out:
	for (i = 0; dls && i < n; i++)
		dl_free(&dls[i], m);
	if (m)
		curl_multi_cleanup(m);
	for (i = 0; names && i < n; i++)
		free(names[i]);
	free(names);
	free(files);
	free(dls);
	return ret;
}

/* ---- the run ----------------------------------------------------------- */

void export_result_free(struct export_result *res)
{
	if (!res)
		return;
	free(res->error_code);
	free(res->error_message);
	free(res->transaction_time);
	res->error_code = res->error_message = res->transaction_time = NULL;
}

int export_run(const struct export_opts *o, const struct export_events *ev, struct export_result *res)
{
	struct run r;
	json_object *v;
	int ret = -1;

	memset(res, 0, sizeof *res);
	memset(&r, 0, sizeof r);
	r.o = o;
	r.ev = ev;
	r.res = res;
	r.seed = (unsigned)time(NULL) ^ (unsigned)(uintptr_t)&r;
	r.retries = o->retries > 0 ? o->retries : 0;
	r.max_wait_ms = (o->poll_max_wait > 0 ? o->poll_max_wait : 60) * 1000;
	if (r.max_wait_ms < 1000)
		r.max_wait_ms = 1000;
	r.default_wait_ms = (o->poll_default_wait > 0 ? o->poll_default_wait : 2) * 1000;
	r.conf.user_agent = o->user_agent;
	r.conf.connect_timeout = o->connect_timeout;
	r.conf.idle_timeout = o->idle_timeout;
	r.conf.should_stop = ev ? ev->should_stop : NULL;
	r.conf.stop_ctx = o->ctx;
	http_global_init();

	if (!o->url && !o->status_url && !o->manifest) {
		xp_fail(&r, 400, "invalid", "no export URL given");
		goto out;
	}
	if (!o->dest) {
		xp_fail(&r, 500, "exception", "no destination given");
		goto out;
	}
	r.auth_origin = url_origin(o->fhir_base ? o->fhir_base : o->url);
	if (!o->auth.open) {
		if (!o->fhir_base && !o->auth.token_url) {
			xp_fail(&r, 400, "invalid", "a FHIR base URL is needed to find the provider's token endpoint");
			goto out;
		}
		r.smart = smart_new(&o->auth, o->fhir_base, &r.conf);
		if (!r.smart) {
			xp_fail(&r, 500, "exception", "out of memory");
			goto out;
		}
	}

	if (o->status_url) {
		r.status_url = strdup(o->status_url);
		r.manifest_url = strdup(o->status_url);
	}
	if (o->manifest) {
		r.manifest = json_object_get(o->manifest);
	} else if (o->kind == EXPORT_STATIC) {
		r.manifest = fetch_manifest(&r, o->url, &r.manifest_url);
		if (!r.manifest)
			goto out;
	} else {
		if (!r.status_url && kickoff(&r) < 0)
			goto out;
		if (poll_status(&r) < 0)
			goto out;
	}
	if (follow_pages(&r) < 0)
		goto out;
	if (json_object_object_get_ex(r.manifest, "transactionTime", &v))
		res->transaction_time = strdup(json_object_get_string(v));
	if (download_all(&r) < 0)
		goto out;
	res->ok = 1;
	ret = 0;
out:
	if (r.stopped) {
		res->cancelled = 1;
		res->ok = 0;
		ret = -1;
		free(res->error_message);
		res->error_message = strdup("the export was stopped");
		if (r.stopped != EXPORT_STOP_ABANDON)   /* drain / lost lease: another worker continues it */
			delete_status(&r);
	} else if (ret < 0 && res->http_status == 504) {
		delete_status(&r);   /* given up on: let the provider free it */
	}
	if (ret < 0 && !res->error_message)
		xp_fail(&r, 500, "exception", "the export failed");
	if (ret < 0)
		log_warn("export: %s", res->error_message ? res->error_message : "failed");
	json_object_put(r.manifest);
	smart_free(r.smart);
	free(r.auth_origin);
	free(r.status_url);
	free(r.manifest_url);
	free(r.last_auth_err);
	return ret;
}
