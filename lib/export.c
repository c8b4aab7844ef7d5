/* The export engine behind export.h: kick-off (or attach to a status URL,
 * or read a static manifest), status polling, manifest paging, then the
 * downloads (export_dl.c), the resume state and manifest.json
 * (export_state.c) and the on_log events (export_log.c).
 *
 * Paging is a step function (xp_pages_step) that never sleeps: without
 * on_files_added every page is fetched before the downloads; with it the
 * download loop calls it between transfers, so the files of early pages
 * download while later pages are still answered 202.
 *
 * Waits never go longer than 200 ms without asking should_stop, and the
 * bearer token only ever goes to the provider FHIR base's origin and the
 * configured token_origins. */
#include "export_int.h"
#include "buf.h"
#include "b64.h"
#include "dest.h"
#include "http.h"
#include "log.h"
#include "naming.h"
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
#include <openssl/rand.h>

const char *const xkind_key[XK_N] = { "output", "deleted", "error", "outcome" };

#define MANIFEST_MAX_BODY (64u << 20)
#define MAX_MANIFEST_PAGES 1000
#define SLICE_MS 200

long long xp_now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* Asks should_stop at most every 50 ms: the download loop spins faster.
 * r->stopped may also have been set by a transfer that should_stop aborted
 * (http_conf.stop_value): that value is the one that counts. */
int xp_stop(struct run *r)
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

/* After a transfer ended early: ask now, the throttle must not hide a stop. */
static int xp_stop_now(struct run *r)
{
	r->last_stop_check = 0;
	return xp_stop(r);
}

int xp_past_deadline(const struct run *r)
{
	return r->o->deadline > 0 && time(NULL) >= r->o->deadline;
}

void xp_fail(struct run *r, int http_status, const char *code, const char *fmt, ...)
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

void xp_fail_deadline(struct run *r)
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

long xp_retry_ms(struct run *r, const char *retry_after, int attempt)
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

char *xp_clip(const char *s, size_t max)
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

const char *xp_get_str(json_object *o, const char *key)
{
	json_object *v;

	if (o && json_object_object_get_ex(o, key, &v) && json_object_is_type(v, json_type_string))
		return json_object_get_string(v);
	return NULL;
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

char *xp_status_text(const struct http_resp *resp, const char **code, json_object **doc)
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
 * returns NULL with *failed set: 1 transient (retry), 2 fatal (recorded,
 * or the run was stopped while asking). */
const char *xp_token(struct run *r, int *failed)
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
	if (r->stopped || xp_stop_now(r)) {
		free(err);
		*failed = 2;
		return NULL;
	}
	if (transient) {
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

/* One request to the provider's API with the token (when the URL is on a
 * trusted origin), refreshing the token once after a 401.
 * 0: response in resp; -1: transport failure (retryable; resp->error or
 * r->last_auth_err); -2: fatal, recorded; -3: stopped. */
static int api_call(struct run *r, struct http_req *rq, struct http_resp *resp)
{
	int refreshed = 0, failed;

	for (;;) {
		rq->bearer = xp_token(r, &failed);
		if (failed == 2)
			return r->stopped ? -3 : -2;
		if (failed == 1) {
			http_resp_reset(resp);
			resp->error = strdup(r->last_auth_err ? r->last_auth_err : "token request failed");
			return -1;
		}
		rq->auth_origin = r->auth_origin;
		rq->trusted_origins = (const char *const *)r->trusted;
		rq->extra_headers = r->o->extra_headers;
		if (http_request(&r->conf, rq, resp) < 0) {
			if (resp->stopped && !r->stopped)
				r->stopped = resp->stopped;
			return r->stopped || xp_stop_now(r) ? -3 : -1;
		}
		if (resp->status == 401 && resp->sent_bearer && !refreshed && r->smart) {
			smart_invalidate(r->smart);
			refreshed = 1;
			continue;
		}
		return 0;
	}
}

/* Outcome of one failed attempt in a retry loop, without waiting: the ms
 * to wait before the retry, or -1 when the run is over (recorded, or
 * stopped). */
static long retry_wait_or_fail(struct run *r, int *attempt, const char *url, int rc,
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
		char lu[512];

		log_info("export: %s %s: %s; retry %d/%d in %ld ms", what, url_for_log(url, lu, sizeof lu),
			 rc == -1 ? (resp->error ? resp->error : "transport error") : "busy",
			 *attempt, r->retries, ms);
		return ms;
	}
	if (rc == -1 && !resp->curl_code && resp->error) {
		xp_fail(r, 502, "transient", "%s", resp->error);   /* token request kept failing */
		return -1;
	}
	if (rc == -1) {
		xp_fail_transport(r, url, resp);
		return -1;
	}
	text = xp_status_text(resp, &code, &doc);
	xp_fail(r, 502, "transient", "%s %s kept failing after %d retries: %s", what, url, r->retries,
		text ? text : "error");
	free(text);
	json_object_put(doc);
	return -1;
}

/* The same, waiting: 0 to retry now, -1 when the run is over. */
static int retry_or_fail(struct run *r, int *attempt, const char *url, int rc,
			 const struct http_resp *resp, const char *what)
{
	long ms = retry_wait_or_fail(r, attempt, url, rc, resp, what);

	return ms < 0 ? -1 : pause_or_fail(r, ms);
}

/* Wait after a 202 ("not ready yet"): Retry-After, else a growing backoff. */
static long busy_wait_ms(struct run *r, const struct http_resp *resp, long *backoff)
{
	long ra = http_retry_after(resp->retry_after, time(NULL)), ms;

	if (ra >= 0)
		return xp_clamp_ms(r, ra * 1000);
	ms = xp_clamp_ms(r, jitter(r, *backoff));
	*backoff = *backoff + *backoff / 2 < r->max_wait_ms ? *backoff + *backoff / 2 : r->max_wait_ms;
	return ms;
}

int xp_busy_status(long s)
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
	const char *post_hdrs[] = { "Accept: application/fhir+json", "Prefer: respond-async",
				    "Content-Type: application/fhir+json", NULL };
	const char *get_hdrs[] = { "Accept: application/fhir+json", "Prefer: respond-async", NULL };
	struct http_req rq = { 0 };
	struct http_resp resp = { 0 };
	json_object *doc = NULL;
	const char *code = NULL;
	char *url = NULL, *text = NULL;
	int attempt = 0, rc, ret = -1;

	if (r->o->lenient)
		post_hdrs[1] = get_hdrs[1] = "Prefer: respond-async, handling=lenient";
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
		if (rc != 0 || xp_busy_status(resp.status)) {
			if (retry_or_fail(r, &attempt, r->o->url, rc, &resp, "export kick-off at") < 0) {
				if (!r->stopped)
					xlog_kickoff(r, url, rc == 0 ? &resp : NULL, r->res->error_message);
				goto out;
			}
			continue;
		}
		text = xp_status_text(&resp, &code, &doc);
		if (resp.status == 401 || resp.status == 403)
			xp_fail(r, 502, "exception", "the provider refused access to %s: %s", r->o->url,
				text ? text : "error");
		else
			xp_fail(r, 502, "exception", "the provider refused the export kick-off at %s: %s", r->o->url,
				text ? text : "error");
		xlog_kickoff(r, url, &resp, r->res->error_message);
		goto out;
	}
	if (!resp.content_location || !*resp.content_location) {
		xp_fail(r, 502, "exception", "the provider accepted the export kick-off at %s but sent no Content-Location",
			r->o->url);
		xlog_kickoff(r, url, &resp, r->res->error_message);
		goto out;
	}
	r->status_url = url_resolve(resp.url, resp.content_location);
	if (!r->status_url || !url_is_http(r->status_url)) {
		xp_fail(r, 502, "exception", "the provider's status URL \"%s\" is not a usable http(s) URL",
			resp.content_location);
		xlog_kickoff(r, url, &resp, r->res->error_message);
		goto out;
	}
	xlog_kickoff(r, url, &resp, NULL);
	{
		char lu[512];
		log_info("export: kick-off accepted, status URL %s", url_for_log(r->status_url, lu, sizeof lu));
	}
	if (r->ev && r->ev->on_kickoff)
		r->ev->on_kickoff(r->o->ctx, r->status_url);
	xst_save(r, 1);   /* from now on a resume polls instead of kicking off again */
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
	json_object *m = NULL, *arr;
	int k;

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
	for (k = 0; k < XK_N; k++)
		if (json_object_object_get_ex(m, xkind_key[k], &arr) && !json_object_is_type(arr, json_type_array) &&
		    !json_object_is_type(arr, json_type_null)) {
			xp_fail(r, 502, "exception", "the manifest at %s has an \"%s\" that is not an array", url,
				xkind_key[k]);
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
			xlog_status_progress(r, &resp);
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
			if (!r->manifest) {
				xlog_status_error(r, &resp, r->res->error_message);
				goto out;
			}
			free(r->manifest_url);
			r->manifest_url = strdup(resp.url);
			xlog_status_complete(r, r->manifest);
			break;
		}
		if (rc == 0 && !xp_busy_status(resp.status)) {
			free(text);
			json_object_put(doc);
			text = xp_status_text(&resp, &code, &doc);
			if (resp.status == 404 || resp.status == 410)
				xp_fail(r, 502, "exception", "the provider no longer knows the export at %s: %s",
					r->status_url, text ? text : "error");
			else if (resp.status == 401 || resp.status == 403)
				xp_fail(r, 502, "exception", "the provider refused access to %s: %s",
					r->status_url, text ? text : "error");
			else
				xp_fail(r, 502, code && !strcmp(code, "transient") ? "transient" : "exception",
					"the provider reported that the export failed: %s", text ? text : "error");
			xlog_status_error(r, &resp, r->res->error_message);
			goto out;
		}
		if (rc == 0) {
			/* 5xx: an OperationOutcome that is not "transient" means the
			 * export itself failed; a transient one means polling did */
			free(text);
			json_object_put(doc);
			doc = NULL;
			text = xp_status_text(&resp, &code, &doc);
			if (resp.status >= 500 && resp.status != 503 && code && strcmp(code, "transient")) {
				xp_fail(r, 502, "exception", "the provider reported that the export failed: %s",
					text ? text : "error");
				xlog_status_error(r, &resp, r->res->error_message);
				goto out;
			}
		}
		if (retry_or_fail(r, &attempt, r->status_url, rc, &resp, "status request to") < 0) {
			if (!r->stopped)
				xlog_status_error(r, rc == 0 ? &resp : NULL, r->res->error_message);
			goto out;
		}
	}
	ret = 0;
out:
	json_object_put(doc);
	free(text);
	http_resp_free(&resp);
	return ret;
}

/* GET a static manifest's first page with retries. */
static json_object *fetch_manifest(struct run *r, const char *url, char **final_url)
{
	static const char *const hdrs[] = { "Accept: application/json", NULL };
	struct http_req rq = { 0 };
	struct http_resp resp = { 0 };
	json_object *m = NULL, *doc = NULL;
	const char *code;
	char *text = NULL;
	long backoff = r->default_wait_ms;
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
			xlog_status_progress(r, &resp);
			if (r->ev && r->ev->on_status)
				r->ev->on_status(r->o->ctx, resp.x_progress);
			if (pause_or_fail(r, busy_wait_ms(r, &resp, &backoff)) < 0)
				goto out;
			continue;
		}
		if (rc != 0 || xp_busy_status(resp.status)) {
			if (retry_or_fail(r, &attempt, url, rc, &resp, "manifest request to") < 0) {
				if (!r->stopped)
					xlog_status_error(r, rc == 0 ? &resp : NULL, r->res->error_message);
				goto out;
			}
			continue;
		}
		text = xp_status_text(&resp, &code, &doc);
		xp_fail(r, 502, "exception", "could not get the manifest at %s: %s", url, text ? text : "error");
		xlog_status_error(r, &resp, r->res->error_message);
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

/* 1 when arr already lists an entry with this url. */
static int has_url(json_object *arr, const char *url, size_t upto)
{
	size_t i;

	for (i = 0; url && i < upto; i++)
		if (!strcmp(xp_get_str(json_object_array_get_idx(arr, i), "url") ?: "", url))
			return 1;
	return 0;
}

/* Appends the entries of page[key] to into[key] that it does not list yet
 * (servers repeat the error file on every page) and notes their page. */
static int merge_array(struct run *r, json_object *into, json_object *from, enum xkind k, int page)
{
	json_object *src, *dst;
	size_t i, before;

	if (!json_object_object_get_ex(from, xkind_key[k], &src) || !json_object_is_type(src, json_type_array))
		return 0;
	if (!json_object_object_get_ex(into, xkind_key[k], &dst) || !json_object_is_type(dst, json_type_array)) {
		dst = json_object_new_array();
		json_object_object_add(into, xkind_key[k], dst);
	}
	before = json_object_array_length(dst);
	for (i = 0; i < json_object_array_length(src); i++) {
		json_object *it = json_object_array_get_idx(src, i);

		if (has_url(dst, xp_get_str(it, "url"), before))
			continue;
		json_object_array_add(dst, json_object_get(it));
		if (xst_page_add(r, k, page) < 0)
			return -1;
	}
	return 0;
}

/* The first page's own entries, deduplicated in place the same way. */
static int first_page(struct run *r)
{
	json_object *arr, *clean;
	size_t i;
	int k;

	for (k = 0; k < XK_N; k++) {
		if (!json_object_object_get_ex(r->manifest, xkind_key[k], &arr) ||
		    !json_object_is_type(arr, json_type_array))
			continue;
		clean = json_object_new_array();
		for (i = 0; i < json_object_array_length(arr); i++) {
			json_object *it = json_object_array_get_idx(arr, i);

			if (has_url(clean, xp_get_str(it, "url"), json_object_array_length(clean)))
				continue;
			json_object_array_add(clean, json_object_get(it));
			if (xst_page_add(r, (enum xkind)k, 1) < 0) {
				json_object_put(clean);
				return -1;
			}
		}
		json_object_object_add(r->manifest, xkind_key[k], clean);
	}
	return 0;
}

static void pager_done(struct run *r)
{
	struct xpager *pg = &r->pg;
	int i;

	for (i = 0; i < pg->nseen; i++)
		free(pg->seen[i]);
	free(pg->seen);
	free(pg->next);
	free(pg->base);
	pg->seen = NULL;
	pg->next = pg->base = NULL;
	pg->nseen = 0;
}

void xp_pages_free(struct run *r)
{
	pager_done(r);
}

/* Notes the page after the one that came from pg->base (`link`, NULL:
 * none, the manifest is complete).  0 or -1 (recorded). */
static int pager_next(struct run *r, const char *link)
{
	struct xpager *pg = &r->pg;
	char *next, **grown;
	int i;

	free(pg->next);
	pg->next = NULL;
	if (!link) {
		pager_done(r);
		json_object_object_del(r->manifest, "link");
		xlog_manifest_complete(r);
		return 0;
	}
	next = url_resolve(pg->base ? pg->base : "", link);
	if (!next || !url_is_http(next)) {
		free(next);
		xp_fail(r, 502, "exception", "the manifest's next link \"%s\" is not a usable URL", link);
		return -1;
	}
	for (i = 0; i < pg->nseen; i++)
		if (!strcmp(pg->seen[i], next))
			break;
	if (i < pg->nseen || pg->nseen >= MAX_MANIFEST_PAGES) {
		free(next);
		xp_fail(r, 502, "exception", "the manifest's next links loop or exceed %d pages", MAX_MANIFEST_PAGES);
		return -1;
	}
	grown = realloc(pg->seen, sizeof *pg->seen * (size_t)(pg->nseen + 1));
	if (!grown || !(grown[pg->nseen] = strdup(next))) {
		pg->seen = grown ? grown : pg->seen;
		free(next);
		xp_fail(r, 500, "exception", "out of memory");
		return -1;
	}
	pg->seen = grown;
	pg->nseen++;
	pg->next = next;
	pg->not_before = 0;
	pg->attempt = 0;
	pg->backoff = r->default_wait_ms;
	return 0;
}

int xp_pages_begin(struct run *r)
{
	if (first_page(r) < 0) {
		xp_fail(r, 500, "exception", "out of memory");
		return -1;
	}
	r->npages = 1;
	xlog_page_complete(r, r->manifest);
	free(r->pg.base);
	r->pg.base = strdup(r->manifest_url ? r->manifest_url : r->o->url ? r->o->url : "");
	if (!r->pg.base) {
		xp_fail(r, 500, "exception", "out of memory");
		return -1;
	}
	return pager_next(r, next_link(r->manifest));
}

/* Follows `link` relation "next" one request at a time and merges
 * output/deleted/error/outcome into the first page, which has no `link`
 * left after the last page.  A page that is not ready (202), a busy answer
 * or a transport error only schedules the next try: the caller's loop goes
 * on (downloads) meanwhile. */
int xp_pages_step(struct run *r)
{
	static const char *const hdrs[] = { "Accept: application/json", NULL };
	struct xpager *pg = &r->pg;
	struct http_req rq = { 0 };
	struct http_resp resp = { 0 };
	json_object *page = NULL, *doc = NULL;
	const char *code;
	char *text = NULL;
	long ms;
	int rc, k, ret = -1;

	if (!pg->next || xp_now_ms() < pg->not_before)
		return 0;
	if (xp_stop(r))
		return -1;
	if (xp_past_deadline(r)) {
		xp_fail_deadline(r);
		return -1;
	}
	rq.method = "GET";
	rq.url = pg->next;
	rq.headers = hdrs;
	rq.max_body = MANIFEST_MAX_BODY;
	rc = api_call(r, &rq, &resp);
	if (rc == 0 && resp.status == 200) {
		page = parse_manifest(r, &resp, pg->next);
		if (!page) {
			xlog_status_error(r, &resp, r->res->error_message);
			goto out;
		}
		r->npages++;
		for (k = 0; k < XK_N; k++)
			if (merge_array(r, r->manifest, page, (enum xkind)k, r->npages) < 0) {
				xp_fail(r, 500, "exception", "out of memory");
				goto out;
			}
		xlog_page_complete(r, page);
		free(pg->base);
		pg->base = strdup(resp.url ? resp.url : pg->next);
		if (!pg->base) {
			xp_fail(r, 500, "exception", "out of memory");
			goto out;
		}
		if (pager_next(r, next_link(page)) < 0)
			goto out;
		ret = 1;
		goto out;
	}
	if (rc == 0 && resp.status == 202) {
		/* a later page of a partial manifest that is not ready yet */
		pg->attempt = 0;
		xlog_status_progress(r, &resp);
		if (r->ev && r->ev->on_status)
			r->ev->on_status(r->o->ctx, resp.x_progress);
		pg->not_before = xp_now_ms() + busy_wait_ms(r, &resp, &pg->backoff);
		ret = 0;
		goto out;
	}
	if (rc != 0 || xp_busy_status(resp.status)) {
		ms = retry_wait_or_fail(r, &pg->attempt, pg->next, rc, &resp, "manifest request to");
		if (ms < 0) {
			if (!r->stopped)
				xlog_status_error(r, rc == 0 ? &resp : NULL, r->res->error_message);
			goto out;
		}
		pg->not_before = xp_now_ms() + ms;
		ret = 0;
		goto out;
	}
	text = xp_status_text(&resp, &code, &doc);
	xp_fail(r, 502, "exception", "could not get the manifest at %s: %s", pg->next, text ? text : "error");
	xlog_status_error(r, &resp, r->res->error_message);
out:
	json_object_put(page);
	json_object_put(doc);
	free(text);
	http_resp_free(&resp);
	return ret;
}

/* Every remaining page, waiting between requests (no downloads yet). */
static int follow_pages(struct run *r)
{
	long long wait;

	if (xp_pages_begin(r) < 0)
		return -1;
	while (r->pg.next) {
		if (xp_pages_step(r) < 0)
			return -1;
		wait = r->pg.next ? r->pg.not_before - xp_now_ms() : 0;
		if (wait > 0 && pause_or_fail(r, (long)wait) < 0)
			return -1;
	}
	return 0;
}

/* ---- DELETE on stop ---------------------------------------------------- */

static void delete_status(struct run *r)
{
	static const char *const hdrs[] = { "Accept: application/json", NULL };
	struct http_conf c = r->conf;
	struct http_req rq = { 0 };
	struct http_resp resp = { 0 };
	char *err = NULL, lu[512];

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
	rq.trusted_origins = (const char *const *)r->trusted;
	if (r->smart)
		rq.bearer = smart_token(r->smart, &err, NULL);
	if (http_request(&c, &rq, &resp) < 0)
		log_warn("export: DELETE %s failed: %s", url_for_log(r->status_url, lu, sizeof lu),
			 resp.error ? resp.error : "error");
	else
		log_info("export: DELETE %s: HTTP %ld", url_for_log(r->status_url, lu, sizeof lu), resp.status);
	free(err);
	http_resp_free(&resp);
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

/* token_origins as url_origin()s. */
static int trusted_origins(struct run *r)
{
	const char *const *t = r->o->token_origins;
	size_t n = 0, i;

	while (t && t[n])
		n++;
	r->trusted = calloc(n + 1, sizeof *r->trusted);
	if (!r->trusted) {
		xp_fail(r, 500, "exception", "out of memory");
		return -1;
	}
	for (i = 0; i < n; i++) {
		r->trusted[i] = url_is_http(t[i]) ? url_origin(t[i]) : NULL;
		if (!r->trusted[i]) {
			xp_fail(r, 400, "invalid", "token origin \"%s\" is not an http(s) origin", t[i]);
			return -1;
		}
	}
	return 0;
}

static char *new_export_id(void)
{
	unsigned char raw[8];

	if (RAND_bytes(raw, sizeof raw) != 1)
		return NULL;
	return hex_encode(raw, sizeof raw);
}

int export_run(const struct export_opts *o, const struct export_events *ev, struct export_result *res)
{
	struct run r;
	json_object *v;
	char *err = NULL;
	int ret = -1, k;

	memset(res, 0, sizeof *res);
	memset(&r, 0, sizeof r);
	r.o = o;
	r.ev = ev;
	r.res = res;
	r.t0_ms = xp_now_ms();
	r.seed = (unsigned)time(NULL) ^ (unsigned)(uintptr_t)&r;
	r.retries = o->retries > 0 ? o->retries : 0;
	r.max_wait_ms = (o->poll_max_wait > 0 ? o->poll_max_wait : 60) * 1000;
	if (r.max_wait_ms < 1000)
		r.max_wait_ms = 1000;
	r.default_wait_ms = (o->poll_default_wait > 0 ? o->poll_default_wait : 2) * 1000;
	r.conf.user_agent = o->user_agent;
	r.conf.connect_timeout = o->connect_timeout;
	r.conf.idle_timeout = o->idle_timeout;
	r.conf.deadline = o->deadline;
	r.conf.should_stop = ev ? ev->should_stop : NULL;
	r.conf.stop_ctx = o->ctx;
	r.conf.stop_value = &r.stopped;
	r.conf.ca_file = o->ca_file;
	r.conf.insecure = o->insecure;
	r.conf.proxy = o->proxy;
	r.streaming = ev && ev->on_files_added;
	http_global_init();

	if (!o->url && !o->status_url && !o->manifest) {
		xp_fail(&r, 400, "invalid", "no export URL given");
		goto out;
	}
	if (!o->dest) {
		xp_fail(&r, 500, "exception", "no destination given");
		goto out;
	}
	if (naming_check(o->name_template, &err) < 0) {
		xp_fail(&r, 400, "invalid", "%s", err ? err : "bad name template");
		goto out;
	}
	if (trusted_origins(&r) < 0)
		goto out;
	r.auth_origin = url_origin(o->fhir_base ? o->fhir_base : o->url ? o->url : o->status_url);
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
	if (xst_load(&r) < 0)
		goto out;
	if (!r.export_id)
		r.export_id = o->export_id ? strdup(o->export_id) : new_export_id();
	if (!r.export_id) {
		xp_fail(&r, 500, "exception", "out of memory");
		goto out;
	}

	if (o->status_url) {
		free(r.status_url);
		r.status_url = strdup(o->status_url);
		free(r.manifest_url);
		r.manifest_url = strdup(o->status_url);
	}
	if (o->manifest) {
		json_object_put(r.manifest);
		r.manifest = json_object_get(o->manifest);
		for (k = 0; k < XK_N; k++)
			r.pages[k].n = 0;   /* pages unknown: all 1 */
	}
	if (!r.manifest) {
		if (o->kind == EXPORT_STATIC) {
			r.manifest = fetch_manifest(&r, o->url, &r.manifest_url);
			if (!r.manifest)
				goto out;
			xlog_status_complete(&r, r.manifest);
		} else {
			if (!r.status_url && kickoff(&r) < 0)
				goto out;
			if (poll_status(&r) < 0)
				goto out;
		}
		/* streaming: the download loop gets the remaining pages */
		if ((r.streaming ? xp_pages_begin(&r) : follow_pages(&r)) < 0)
			goto out;
	} else {
		/* known already (caller or resume): only normalise it */
		json_object_object_del(r.manifest, "link");
	}
	if (json_object_object_get_ex(r.manifest, "transactionTime", &v))
		res->transaction_time = strdup(json_object_get_string(v));
	if (xdl_all(&r) < 0)
		goto out;
	/* the state first: manifest.json is the last thing written */
	r.complete = 1;
	xst_save(&r, 1);
	if (o->save_manifest && !r.res->files_failed && xst_write_manifest(&r) < 0)
		goto out;
	if (o->save_manifest && r.res->files_failed) {
		struct export_issue iss = { "warning", "incomplete", NULL, 0, NULL };
		char *msg = NULL;

		if (asprintf(&msg, "%s not written: %d file%s failed", XMANIFEST_NAME, r.res->files_failed,
			     r.res->files_failed == 1 ? "" : "s") < 0)
			msg = NULL;
		iss.message = msg ? msg : "manifest not written: files failed";
		log_warn("export: %s", iss.message);
		if (ev && ev->on_issue)
			ev->on_issue(o->ctx, &iss);
		free(msg);
	}
	res->ok = 1;
	ret = 0;
	xlog_export_complete(&r);
out:
	if (r.stopped) {
		res->cancelled = 1;
		res->ok = 0;
		ret = -1;
		free(res->error_message);
		free(res->error_code);
		res->error_message = strdup("the export was stopped");
		res->error_code = strdup("transient");
		res->http_status = 0;
		if (r.stopped != EXPORT_STOP_ABANDON)   /* drain / lost lease: another worker continues it */
			delete_status(&r);
	} else if (ret < 0 && res->http_status == 504) {
		delete_status(&r);   /* given up on: let the provider free it */
	}
	if (ret < 0 && !res->error_message)
		xp_fail(&r, 500, "exception", "the export failed");
	if (ret < 0 && !r.stopped)
		xlog_client_error(&r);
	if (ret < 0)
		log_warn("export: %s", res->error_message ? res->error_message : "failed");
	if (!r.complete)
		xst_save(&r, 1);
	xst_free_files(&r);
	xp_pages_free(&r);
	for (k = 0; k < XK_N; k++)
		free(r.pages[k].page);
	json_object_put(r.state);
	json_object_put(r.manifest);
	smart_free(r.smart);
	for (k = 0; r.trusted && r.trusted[k]; k++)
		free(r.trusted[k]);
	free(r.trusted);
	free(err);
	free(r.auth_origin);
	free(r.status_url);
	free(r.manifest_url);
	free(r.last_auth_err);
	free(r.export_id);
	return ret;
}
