/* libcurl helpers; see http.h. */
#include "http.h"
#include "url.h"
#include <ctype.h>
#include <errno.h>
#include <limits.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#define DEFAULT_MAX_BODY (1u << 20)
#define MAX_RETRY_AFTER (7L * 86400)

static pthread_once_t init_once = PTHREAD_ONCE_INIT;

static void do_init(void)
{
	curl_global_init(CURL_GLOBAL_DEFAULT);
}

void http_global_init(void)
{
	pthread_once(&init_once, do_init);
}

int http_is_redirect(long s)
{
	return s == 301 || s == 302 || s == 303 || s == 307 || s == 308;
}

/* libcurl calls this many times a second; ask should_stop at most every
 * 100 ms so a callback that looks at shared state stays cheap.  The value
 * that stopped us is kept: EXPORT_STOP_CANCEL and _ABANDON mean different
 * things to the caller. */
static __thread int last_stop_value;

static int xferinfo(void *p, curl_off_t dt, curl_off_t dn, curl_off_t ut, curl_off_t un)
{
	static __thread long long last_ms;
	const struct http_conf *c = p;
	struct timespec ts;
	long long now;
	int v;

	if (!c || !c->should_stop)
		return 0;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	now = (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
	if (now - last_ms < 100)
		return 0;
	last_ms = now;
	v = c->should_stop(c->stop_ctx);
	last_stop_value = v;
	if (v && c->stop_value)
		*c->stop_value = v;
	return v ? 1 : 0;
}

void http_apply_conf(CURL *e, const struct http_conf *c)
{
	long ct = c && c->connect_timeout > 0 ? c->connect_timeout : 10;
	long idle = c && c->idle_timeout > 0 ? c->idle_timeout : 60;

	curl_easy_setopt(e, CURLOPT_NOSIGNAL, 1L);
	curl_easy_setopt(e, CURLOPT_PROTOCOLS_STR, "http,https");
	curl_easy_setopt(e, CURLOPT_FOLLOWLOCATION, 0L);
	curl_easy_setopt(e, CURLOPT_ACCEPT_ENCODING, "");
	curl_easy_setopt(e, CURLOPT_CONNECTTIMEOUT, ct);
	/* idle, not total: large files may take hours but must keep moving */
	curl_easy_setopt(e, CURLOPT_LOW_SPEED_LIMIT, 1L);
	curl_easy_setopt(e, CURLOPT_LOW_SPEED_TIME, idle);
	if (c && c->user_agent && *c->user_agent)
		curl_easy_setopt(e, CURLOPT_USERAGENT, c->user_agent);
	if (c && c->ca_file && *c->ca_file)
		curl_easy_setopt(e, CURLOPT_CAINFO, c->ca_file);
	if (c && c->insecure) {
		curl_easy_setopt(e, CURLOPT_SSL_VERIFYPEER, 0L);
		curl_easy_setopt(e, CURLOPT_SSL_VERIFYHOST, 0L);
	}
	if (c && c->proxy && *c->proxy)
		curl_easy_setopt(e, CURLOPT_PROXY, c->proxy);
	if (c && c->deadline > 0) {
		/* a server trickling bytes must not keep a request past the
		 * export's deadline (the idle limit alone would let it) */
		time_t left = c->deadline - time(NULL);
		curl_easy_setopt(e, CURLOPT_TIMEOUT, (long)(left > 1 ? left : 1));
	}
	if (c && c->should_stop) {
		curl_easy_setopt(e, CURLOPT_XFERINFOFUNCTION, xferinfo);
		curl_easy_setopt(e, CURLOPT_XFERINFODATA, (void *)c);
		curl_easy_setopt(e, CURLOPT_NOPROGRESS, 0L);
	}
}

int http_origin_trusted(const char *url, const char *auth_origin, const char *const *trusted)
{
	char *origin;
	int ok = 0;

	if (!auth_origin && !(trusted && *trusted))
		return 0;
	origin = url_origin(url);
	if (!origin)
		return 0;
	if (auth_origin && !strcmp(origin, auth_origin))
		ok = 1;
	for (; !ok && trusted && *trusted; trusted++)
		ok = !strcmp(origin, *trusted);
	free(origin);
	return ok;
}

struct curl_slist *http_hop_headers(const char *url, const char *const *headers,
				    const char *const *extra_headers, int extra_ok,
				    const char *bearer, const char *auth_origin,
				    const char *const *trusted, int *sent)
{
	struct curl_slist *l = NULL, *t;
	const char *const *h;
	char *auth = NULL;

	if (sent)
		*sent = 0;
	for (h = headers; h && *h; h++)
		if ((t = curl_slist_append(l, *h)))
			l = t;
	for (h = extra_headers; extra_ok && h && *h; h++)
		if ((t = curl_slist_append(l, *h)))
			l = t;
	if (bearer && *bearer && http_origin_trusted(url, auth_origin, trusted) &&
	    asprintf(&auth, "Authorization: Bearer %s", bearer) >= 0) {
		if ((t = curl_slist_append(l, auth))) {
			l = t;
			if (sent)
				*sent = 1;
		}
		/* do not leave the token lying around in freed memory */
		memset(auth, 0, strlen(auth));
		free(auth);
	}
	return l;
}

void http_resp_reset(struct http_resp *r)
{
	buf_reset(&r->body);
	r->body_truncated = 0;
	r->status = 0;
	free(r->content_location);
	free(r->retry_after);
	free(r->x_progress);
	free(r->content_type);
	free(r->location);
	free(r->expires);
	free(r->etag);
	free(r->content_range);
	free(r->content_encoding);
	free(r->accept_ranges);
	r->content_location = r->retry_after = r->x_progress = NULL;
	r->content_type = r->location = r->expires = NULL;
	r->etag = r->content_range = r->content_encoding = r->accept_ranges = NULL;
	free(r->error);
	r->error = NULL;
	r->curl_code = 0;
	r->stopped = 0;
	r->sent_bearer = 0;
}

void http_resp_free(struct http_resp *r)
{
	if (!r)
		return;
	http_resp_reset(r);
	buf_free(&r->body);
	free(r->url);
	r->url = NULL;
}

static void clear_headers(struct http_resp *r)
{
	char **f[] = { &r->content_location, &r->retry_after, &r->x_progress,
		       &r->content_type, &r->location, &r->expires, &r->etag,
		       &r->content_range, &r->content_encoding, &r->accept_ranges };
	size_t i;

	for (i = 0; i < sizeof f / sizeof f[0]; i++) {
		free(*f[i]);
		*f[i] = NULL;
	}
}

size_t http_header_cb(char *p, size_t size, size_t n, void *userdata)
{
	struct http_resp *r = userdata;
	size_t len = size * n, nl, vl;
	const char *colon, *v;
	char **slot = NULL;

	if (len >= 5 && !memcmp(p, "HTTP/", 5)) {
		clear_headers(r);   /* a new response (after 100 Continue or similar) */
		return len;
	}
	colon = memchr(p, ':', len);
	if (!colon)
		return len;
	nl = (size_t)(colon - p);
#define H(name, field) if (nl == sizeof name - 1 && !strncasecmp(p, name, nl)) slot = &r->field
	H("Content-Location", content_location);
	else H("Retry-After", retry_after);
	else H("X-Progress", x_progress);
	else H("Content-Type", content_type);
	else H("Location", location);
	else H("Expires", expires);
	else H("ETag", etag);
	else H("Content-Range", content_range);
	else H("Content-Encoding", content_encoding);
	else H("Accept-Ranges", accept_ranges);
#undef H
	if (!slot)
		return len;
	v = colon + 1;
	vl = len - nl - 1;
	while (vl && isspace((unsigned char)*v)) {
		v++;
		vl--;
	}
	while (vl && isspace((unsigned char)v[vl - 1]))
		vl--;
	if (vl > 8192)
		vl = 8192;
	free(*slot);
	*slot = strndup(v, vl);
	return len;
}

struct sink {
	struct http_resp *r;
	size_t max;
};

static size_t body_cb(char *p, size_t size, size_t n, void *userdata)
{
	struct sink *s = userdata;
	size_t len = size * n, room;

	room = s->r->body.len < s->max ? s->max - s->r->body.len : 0;
	if (len > room)
		s->r->body_truncated = 1;
	buf_append(&s->r->body, p, len < room ? len : room);
	return len;    /* keep reading: the status and headers still count */
}

static void set_error(struct http_resp *r, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static void set_error(struct http_resp *r, const char *fmt, ...)
{
	va_list ap;

	free(r->error);
	va_start(ap, fmt);
	if (vasprintf(&r->error, fmt, ap) < 0)
		r->error = NULL;
	va_end(ap);
}

int http_request(const struct http_conf *c, const struct http_req *rq, struct http_resp *r)
{
	char errbuf[CURL_ERROR_SIZE], *url = NULL, *first_origin = NULL, *o, *next;
	const char *method = rq->method ? rq->method : rq->body ? "POST" : "GET";
	const char *body = rq->body;
	struct curl_slist *hdrs = NULL;
	struct sink sink = { r, rq->max_body ? rq->max_body : DEFAULT_MAX_BODY };
	CURL *e = NULL;
	CURLcode cc;
	int hop, rc = -1, sent, extra_ok;

	http_global_init();
	http_resp_reset(r);
	free(r->url);
	r->url = NULL;
	url = strdup(rq->url ? rq->url : "");
	first_origin = url_origin(url);
	e = curl_easy_init();
	if (!url || !e) {
		set_error(r, "out of memory");
		goto out;
	}
	for (hop = 0;; hop++) {
		o = url_origin(url);
		curl_easy_reset(e);
		http_apply_conf(e, c);
		errbuf[0] = '\0';
		curl_easy_setopt(e, CURLOPT_ERRORBUFFER, errbuf);
		curl_easy_setopt(e, CURLOPT_URL, url);
		curl_slist_free_all(hdrs);
		/* extra headers belong to the server: its origin, or (no auth
		 * origin given) the origin the request started at */
		extra_ok = o && (rq->auth_origin ? !strcmp(o, rq->auth_origin)
				 : first_origin && !strcmp(o, first_origin));
		hdrs = http_hop_headers(url, rq->headers, rq->extra_headers, extra_ok,
					rq->bearer, rq->auth_origin, rq->trusted_origins, &sent);
		free(o);
		if (body)
			hdrs = curl_slist_append(hdrs, "Expect:");   /* no 100-continue round trip */
		curl_easy_setopt(e, CURLOPT_HTTPHEADER, hdrs);
		if (!strcmp(method, "GET")) {
			curl_easy_setopt(e, CURLOPT_HTTPGET, 1L);
		} else if (!strcmp(method, "POST")) {
			curl_easy_setopt(e, CURLOPT_POST, 1L);
			curl_easy_setopt(e, CURLOPT_POSTFIELDS, body ? body : "");
			curl_easy_setopt(e, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)(body ? rq->body_len : 0));
		} else {
			curl_easy_setopt(e, CURLOPT_CUSTOMREQUEST, method);
			if (body) {
				curl_easy_setopt(e, CURLOPT_POSTFIELDS, body);
				curl_easy_setopt(e, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)rq->body_len);
			}
		}
		curl_easy_setopt(e, CURLOPT_HEADERFUNCTION, http_header_cb);
		curl_easy_setopt(e, CURLOPT_HEADERDATA, r);
		curl_easy_setopt(e, CURLOPT_WRITEFUNCTION, body_cb);
		curl_easy_setopt(e, CURLOPT_WRITEDATA, &sink);
		http_resp_reset(r);
		free(r->url);
		r->url = strdup(url);
		r->sent_bearer = sent;
		last_stop_value = 0;
		cc = curl_easy_perform(e);
		if (cc != CURLE_OK) {
			r->curl_code = (int)cc;
			if (cc == CURLE_ABORTED_BY_CALLBACK) {
				r->stopped = last_stop_value ? last_stop_value : 1;
				set_error(r, "stopped");
			} else {
				set_error(r, "%s", errbuf[0] ? errbuf : curl_easy_strerror(cc));
			}
			goto out;
		}
		curl_easy_getinfo(e, CURLINFO_RESPONSE_CODE, &r->status);
		if (!http_is_redirect(r->status))
			break;
		next = NULL;
		{
			char *loc = NULL;

			curl_easy_getinfo(e, CURLINFO_REDIRECT_URL, &loc);
			if (loc)
				next = strdup(loc);
		}
		if (!next)
			break;   /* a 3xx without Location is the final answer */
		if (hop >= HTTP_MAX_REDIRECTS) {
			free(next);
			set_error(r, "more than %d redirects from %s", HTTP_MAX_REDIRECTS, rq->url);
			r->status = 0;
			goto out;
		}
		if (r->status == 303 || ((r->status == 301 || r->status == 302) && !strcmp(method, "POST"))) {
			method = "GET";
			body = NULL;
		}
		if (body && !url_same_origin(next, url)) {
			/* a 307/308 would replay the body (a client assertion, say)
			 * to an origin it was not meant for */
			free(next);
			set_error(r, "refusing to send the request body on to another origin after HTTP %ld", r->status);
			r->status = 0;
			goto out;
		}
		free(url);
		url = next;
	}
	rc = 0;
out:
	curl_slist_free_all(hdrs);
	if (e)
		curl_easy_cleanup(e);
	free(url);
	free(first_origin);
	return rc;
}

long http_retry_after(const char *value, time_t now)
{
	const char *p;
	char *end;
	long v;
	time_t t;

	if (!value)
		return -1;
	while (isspace((unsigned char)*value))
		value++;
	if (!*value)
		return -1;
	if (isdigit((unsigned char)*value)) {
		for (p = value; isdigit((unsigned char)*p); p++)
			;
		while (isspace((unsigned char)*p))
			p++;
		if (*p)
			return -1;     /* "1.5", "10s", ... */
		errno = 0;
		v = strtol(value, &end, 10);
		if (errno || v > MAX_RETRY_AFTER)
			return -1;
		return v;
	}
	t = curl_getdate(value, NULL);
	if (t == (time_t)-1 || t < now || t - now > MAX_RETRY_AFTER)
		return -1;
	return (long)(t - now);
}
