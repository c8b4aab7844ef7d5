/* Attachments: fetch, put inline or save, rewrite the resource; see attach.h.
 *
 * One transfer per attachment.  The body goes to memory only while it can
 * still end up inline (at most inline_max bytes) or when it is Binary JSON
 * (capped by max_json); anything else, or an inline candidate that turns
 * out larger, is streamed into the destination file as it arrives. */
#include "attach.h"
#include "b64.h"
#include "buf.h"
#include "dest.h"
#include "pdftotext.h"
#include "url.h"
#include <ctype.h>
#include <limits.h>
#include <poll.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <json-c/json.h>
#include <openssl/evp.h>

#define DEFAULT_DIR       "attachments"
#define DEFAULT_MAX_JSON  ((size_t)64 << 20)
#define RETRY_WAIT_MAX_MS 30000
#define JSON_DEPTH        64

/* Per line. */
struct run {
	const struct export_attach_opts *o;
	const struct attach_env *env;
	char *base;              /* fhir_base with a trailing '/', for relative URLs */
	char *server_origin;     /* origin of fhir_base */
	CURL *e;                 /* reused for every attachment of the line */
	EVP_MD_CTX *sha1;
	char **err;              /* line-level failure */
};

enum mode { M_NONE, M_SKIP, M_MEM, M_FILE, M_JSON };

/* Per attachment. */
struct fetch {
	struct run *r;
	const char *url;         /* absolute; names the saved file */
	const char *decl;        /* attachment.contentType (base, lower case) or NULL */
	char *accept;            /* "Accept: ..." header line */
	struct http_resp resp;   /* headers of the current response */
	enum mode mode;
	struct buf mem;          /* M_MEM content, M_JSON body */
	size_t cap;              /* M_MEM / M_JSON limit */
	char *mime;              /* type chosen in decide() (malloc'd) or NULL */
	struct dest_file *df;    /* M_FILE */
	char *path;              /* name of df in the destination: [file_dir/]dir/name */
	char *rel;               /* dir/name: the url, relative to the NDJSON file */
	long long total;         /* content bytes of M_MEM / M_FILE */
	char *fail_msg;          /* failure inside the write callback */
	const char *fail_code;
};

/* ---- small helpers ----------------------------------------------------- */

/* The URL for messages: no userinfo, query or fragment (signed URLs carry
 * credentials there).  malloc'd. */
static char *msg_url(const char *url)
{
	const char *s = strstr(url, "://"), *at, *end;
	size_t n = strcspn(url, "?#");
	struct buf b = BUF_INIT;

	if (s) {
		s += 3;
		end = s + strcspn(s, "/?#");
		at = memchr(s, '@', (size_t)(end - s));
		if (at) {
			buf_append(&b, url, (size_t)(s - url));
			buf_append(&b, at + 1, n - (size_t)(at + 1 - url));
			return buf_detach(&b);
		}
	}
	buf_append(&b, url, n);
	return buf_detach(&b);
}

static void issue(struct run *r, const char *code, const char *fmt, ...) __attribute__((format(printf, 3, 4)));

static void issue(struct run *r, const char *code, const char *fmt, ...)
{
	va_list ap;
	char *msg = NULL;

	if (!r->env->on_issue)
		return;
	va_start(ap, fmt);
	if (vasprintf(&msg, fmt, ap) < 0)
		msg = NULL;
	va_end(ap);
	if (msg)
		r->env->on_issue(r->env->ctx, "warning", code, msg);
	free(msg);
}

static int is_tchar(int c)
{
	return isalnum(c) || (c && strchr("!#$%&'*+-.^_`|~", c));
}

/* "Type/Subtype; charset=x" -> "type/subtype" (malloc'd), NULL when absent
 * or not a well-formed media type (it also goes into an Accept header). */
static char *mime_base(const char *ct)
{
	const char *p, *slash = NULL;
	size_t n, i;
	char *out;

	if (!ct)
		return NULL;
	while (*ct == ' ' || *ct == '\t')
		ct++;
	for (p = ct; *p && *p != ';' && *p != ' ' && *p != '\t'; p++) {
		if (*p == '/' && !slash)
			slash = p;
		else if (!is_tchar((unsigned char)*p))
			return NULL;
	}
	n = (size_t)(p - ct);
	if (!slash || slash == ct || slash == p - 1 || n > 127)
		return NULL;
	out = malloc(n + 1);
	if (!out)
		return NULL;
	for (i = 0; i < n; i++)
		out[i] = (char)tolower((unsigned char)ct[i]);
	out[n] = '\0';
	return out;
}

static int is_json_type(const char *m)
{
	return m && (!strcmp(m, "application/fhir+json") || !strcmp(m, "application/json"));
}

int attach_type_listed(const char *const *types, const char *mime)
{
	char *m = mime_base(mime), *t;
	size_t n;
	int hit = 0;

	for (; m && !hit && types && *types; types++) {
		t = mime_base(*types);
		if (t) {
			n = strlen(t);
			if (!strcmp(t, m) || !strcmp(t, "*/*") ||
			    (n >= 2 && !strcmp(t + n - 2, "/*") && !strncmp(t, m, n - 1)))
				hit = 1;
		}
		free(t);
	}
	free(m);
	return hit;
}

static const char *ext_for(const char *mime)
{
	static const struct { const char *type, *ext; } map[] = {
		{ "application/pdf", "pdf" },   { "image/jpeg", "jpg" },      { "image/png", "png" },
		{ "image/gif", "gif" },         { "image/tiff", "tif" },      { "image/bmp", "bmp" },
		{ "image/webp", "webp" },       { "image/svg+xml", "svg" },   { "application/dicom", "dcm" },
		{ "text/plain", "txt" },        { "text/html", "html" },      { "text/xml", "xml" },
		{ "application/xml", "xml" },   { "text/csv", "csv" },        { "text/rtf", "rtf" },
		{ "application/rtf", "rtf" },   { "application/json", "json" }, { "application/fhir+json", "json" },
		{ "application/fhir+xml", "xml" }, { "application/hl7-v2", "hl7" }, { "text/markdown", "md" },
		{ "application/msword", "doc" },
		{ "application/vnd.openxmlformats-officedocument.wordprocessingml.document", "docx" },
		{ "application/zip", "zip" },   { "application/gzip", "gz" }, { "audio/mpeg", "mp3" },
		{ "audio/wav", "wav" },         { "video/mp4", "mp4" },       { "video/mpeg", "mpeg" },
	};
	size_t i;

	for (i = 0; mime && i < sizeof map / sizeof map[0]; i++)
		if (!strcmp(map[i].type, mime))
			return map[i].ext;
	return "bin";
}

char *attach_file_name(const char *url, const char *content_type)
{
	unsigned char md[EVP_MAX_MD_SIZE];
	unsigned int mdlen = 0;
	char *hex = NULL, *m = mime_base(content_type), *out = NULL;

	if (!url || !EVP_Digest(url, strlen(url), md, &mdlen, EVP_sha256(), NULL))
		goto out;
	hex = hex_encode(md, mdlen);
	if (hex && asprintf(&out, "%s.%s", hex, ext_for(m)) < 0)
		out = NULL;
out:
	free(hex);
	free(m);
	return out;
}

int attach_line_may_have(const char *line, size_t len)
{
	return line && memmem(line, len, "\"url\"", 5) &&
	       (memmem(line, len, "DocumentReference", 17) || memmem(line, len, "DiagnosticReport", 16));
}

static const char *str_member(json_object *o, const char *key)
{
	json_object *v;

	return json_object_object_get_ex(o, key, &v) && json_object_is_type(v, json_type_string)
		       ? json_object_get_string(v) : NULL;
}

/* ---- the transfer ------------------------------------------------------- */

static void fetch_fail(struct fetch *f, const char *code, const char *fmt, ...) __attribute__((format(printf, 3, 4)));

static void fetch_fail(struct fetch *f, const char *code, const char *fmt, ...)
{
	va_list ap;

	if (f->fail_msg)
		return;   /* the first cause is the one worth telling */
	va_start(ap, fmt);
	if (vasprintf(&f->fail_msg, fmt, ap) < 0)
		f->fail_msg = NULL;
	va_end(ap);
	f->fail_code = code;
}

/* Opens the destination file for f->mime. */
static int open_file(struct fetch *f)
{
	const struct attach_env *env = f->r->env;
	char *name = NULL, *err = NULL;
	int rc = -1;

	if (!env->dest) {
		fetch_fail(f, "exception", "no destination to save attachments to");
		goto out;
	}
	name = attach_file_name(f->url, f->mime);
	free(f->path);
	free(f->rel);
	f->path = f->rel = NULL;
	if (!name || asprintf(&f->rel, "%s/%s", env->dir ? env->dir : DEFAULT_DIR, name) < 0) {
		f->rel = NULL;
		fetch_fail(f, "exception", "out of memory");
		goto out;
	}
	if (asprintf(&f->path, "%s%s%s", env->file_dir ? env->file_dir : "",
		     env->file_dir && *env->file_dir ? "/" : "", f->rel) < 0) {
		f->path = NULL;
		fetch_fail(f, "exception", "out of memory");
		goto out;
	}
	f->df = dest_file_open(env->dest, f->path, &err);
	if (!f->df) {
		fetch_fail(f, "exception", "cannot save %s: %s", f->path, err ? err : "error");
		goto out;
	}
	rc = 0;
out:
	free(name);
	free(err);
	return rc;
}

static int file_write(struct fetch *f, const void *p, size_t n)
{
	char *err = NULL;

	if (dest_file_write(f->df, p, n, &err) == 0)
		return 0;
	fetch_fail(f, "exception", "cannot save %s: %s", f->path, err ? err : "error");
	free(err);
	return -1;
}

/* First body bytes (or the end of an empty body) of a response: where do
 * they go? */
static int decide(struct fetch *f, CURL *e)
{
	const struct export_attach_opts *o = f->r->o;
	long code = 0;
	char *rtype;

	curl_easy_getinfo(e, CURLINFO_RESPONSE_CODE, &code);
	if (code < 200 || code > 299) {
		f->mode = M_SKIP;   /* redirect or error body: drained, not kept */
		return 0;
	}
	rtype = mime_base(f->resp.content_type);
	if (is_json_type(rtype)) {
		/* maybe a Binary resource: it must be parsed whole */
		f->mode = M_JSON;
		f->cap = f->r->env->max_json ? f->r->env->max_json : DEFAULT_MAX_JSON;
		free(f->mime);
		f->mime = rtype;
		return 0;
	}
	free(f->mime);
	f->mime = f->decl ? strdup(f->decl) : rtype;
	if (f->decl)
		free(rtype);
	if (o->inline_max > 0 && attach_type_listed(o->inline_types, f->mime)) {
		f->mode = M_MEM;
		f->cap = (size_t)o->inline_max;
		return 0;
	}
	f->mode = M_FILE;
	return open_file(f);
}

static size_t on_body(char *p, size_t size, size_t nmemb, void *userdata)
{
	struct fetch *f = userdata;
	const struct attach_env *env = f->r->env;
	size_t n = size * nmemb;

	if (f->mode == M_NONE && decide(f, f->r->e) < 0)
		return 0;
	switch (f->mode) {
	case M_SKIP:
		return n;
	case M_JSON:
		if (f->mem.len + n > f->cap) {
			fetch_fail(f, "too-costly", "the JSON answer is larger than %zu bytes", f->cap);
			return 0;
		}
		buf_append(&f->mem, p, n);
		return n;
	case M_MEM:
	case M_FILE:
		if (env->max_bytes > 0 && f->total + (long long)n > env->max_bytes) {
			fetch_fail(f, "too-costly", "larger than the limit of %lld bytes", env->max_bytes);
			return 0;
		}
		if (f->mode == M_MEM && f->mem.len + n > f->cap) {
			/* too big to go inline after all: continue into a file */
			f->mode = M_FILE;
			if (open_file(f) < 0 || file_write(f, f->mem.data, f->mem.len) < 0)
				return 0;
			buf_free(&f->mem);
		}
		EVP_DigestUpdate(f->r->sha1, p, n);
		f->total += (long long)n;
		if (f->mode == M_MEM)
			buf_append(&f->mem, p, n);
		else if (file_write(f, p, n) < 0)
			return 0;
		return n;
	case M_NONE:
		break;
	}
	return 0;
}

/* Back to the state before any response. */
static void fetch_reset(struct fetch *f)
{
	f->mode = M_NONE;
	buf_free(&f->mem);
	free(f->mime);
	f->mime = NULL;
	if (f->df)
		dest_file_abort(f->df);
	f->df = NULL;
	f->total = 0;
	EVP_DigestInit_ex(f->r->sha1, EVP_sha1(), NULL);
}

static int origin_listed(const char *const *list, const char *origin)
{
	for (; list && *list; list++)
		if (!strcmp(*list, origin))
			return 1;
	return 0;
}

/* Headers for one hop: the user's extra headers only to the server's
 * origin, the token only to it and the configured token origins. */
static struct curl_slist *hop_headers(struct fetch *f, const char *url, const char *bearer, int *sent)
{
	const struct attach_env *env = f->r->env;
	struct curl_slist *l = NULL, *t;
	const char *const *h;
	char *origin = url_origin(url), *auth = NULL;
	int server = origin && f->r->server_origin && !strcmp(origin, f->r->server_origin);

	*sent = 0;
	if ((t = curl_slist_append(l, f->accept)))
		l = t;
	for (h = env->headers; server && h && *h; h++)
		if ((t = curl_slist_append(l, *h)))
			l = t;
	if (bearer && *bearer && origin && (server || origin_listed(env->token_origins, origin)) &&
	    asprintf(&auth, "Authorization: Bearer %s", bearer) >= 0) {
		if ((t = curl_slist_append(l, auth))) {
			l = t;
			*sent = 1;
		}
		memset(auth, 0, strlen(auth));   /* no token left in freed memory */
		free(auth);
	}
	free(origin);
	return l;
}

enum { F_DONE, F_FAIL, F_RETRY, F_STOP };

/* One attempt: follows redirects.  F_DONE with *status (any status), F_FAIL
 * or F_RETRY with f->fail_msg set, F_STOP when should_stop aborted it. */
static int fetch_once(struct fetch *f, const char *bearer, long *status, int *sent)
{
	char errbuf[CURL_ERROR_SIZE], *url = strdup(f->url), *next, *loc;
	struct curl_slist *hdrs = NULL;
	CURL *e = f->r->e;
	CURLcode cc;
	int hop, rc = F_FAIL;

	*status = 0;
	*sent = 0;
	if (!url) {
		fetch_fail(f, "exception", "out of memory");
		goto out;
	}
	for (hop = 0;; hop++) {
		const struct http_conf *c = f->r->env->conf;

		/* no new request once the caller wants to stop */
		if (c && c->should_stop && c->should_stop(c->stop_ctx)) {
			rc = F_STOP;
			goto out;
		}
		fetch_reset(f);
		http_resp_reset(&f->resp);
		curl_easy_reset(e);
		http_apply_conf(e, f->r->env->conf);
		errbuf[0] = '\0';
		curl_easy_setopt(e, CURLOPT_ERRORBUFFER, errbuf);
		curl_easy_setopt(e, CURLOPT_URL, url);
		curl_easy_setopt(e, CURLOPT_HTTPGET, 1L);
		curl_slist_free_all(hdrs);
		hdrs = hop_headers(f, url, bearer, sent);
		curl_easy_setopt(e, CURLOPT_HTTPHEADER, hdrs);
		curl_easy_setopt(e, CURLOPT_HEADERFUNCTION, http_header_cb);
		curl_easy_setopt(e, CURLOPT_HEADERDATA, &f->resp);
		curl_easy_setopt(e, CURLOPT_WRITEFUNCTION, on_body);
		curl_easy_setopt(e, CURLOPT_WRITEDATA, f);
		cc = curl_easy_perform(e);
		if (f->fail_msg)
			goto out;   /* our own abort: a cap or the destination */
		if (cc == CURLE_ABORTED_BY_CALLBACK) {
			rc = F_STOP;
			goto out;
		}
		if (cc != CURLE_OK) {
			fetch_fail(f, "transient", "%s", errbuf[0] ? errbuf : curl_easy_strerror(cc));
			rc = F_RETRY;
			goto out;
		}
		curl_easy_getinfo(e, CURLINFO_RESPONSE_CODE, status);
		if (!http_is_redirect(*status))
			break;
		loc = NULL;
		curl_easy_getinfo(e, CURLINFO_REDIRECT_URL, &loc);
		if (!loc)
			break;   /* a 3xx without Location is the final answer */
		if (hop >= HTTP_MAX_REDIRECTS) {
			fetch_fail(f, "exception", "more than %d redirects", HTTP_MAX_REDIRECTS);
			goto out;
		}
		next = strdup(loc);
		if (!next) {
			fetch_fail(f, "exception", "out of memory");
			goto out;
		}
		free(url);
		url = next;
	}
	/* an empty 2xx body never reached on_body */
	if (*status >= 200 && *status <= 299 && f->mode == M_NONE && decide(f, e) < 0)
		goto out;
	rc = F_DONE;
out:
	curl_slist_free_all(hdrs);
	free(url);
	return rc;
}

/* Sleeps up to ms, in slices so that should_stop is heard.  -1 when stopped. */
static int pause_ms(const struct http_conf *c, long ms)
{
	while (ms > 0) {
		long slice = ms < 100 ? ms : 100;

		if (c && c->should_stop && c->should_stop(c->stop_ctx))
			return -1;
		poll(NULL, 0, (int)slice);
		ms -= slice;
	}
	return c && c->should_stop && c->should_stop(c->stop_ctx) ? -1 : 0;
}

static const char *status_code(long s)
{
	if (s == 404 || s == 410)
		return "not-found";
	if (s == 401 || s == 403)
		return "security";
	if (s == 429 || s >= 500)
		return "transient";
	return "exception";
}

/* The whole fetch with retries.  F_DONE: 2xx and the content is in f
 * (M_MEM / M_JSON in memory, M_FILE open and written); F_FAIL with
 * f->fail_msg; F_STOP. */
static int fetch(struct fetch *f)
{
	const struct attach_env *env = f->r->env;
	const char *bearer = env->bearer;
	long status, wait;
	int attempt = 0, renewed = 0, sent, rc;

	for (;;) {
		rc = fetch_once(f, bearer, &status, &sent);
		if (rc == F_STOP)
			return F_STOP;
		if (rc == F_DONE && status >= 200 && status <= 299)
			return F_DONE;
		if (rc == F_DONE && status == 401 && sent && env->renew_bearer && !renewed) {
			/* expired token: one fresh try that does not count as a retry */
			renewed = 1;
			if ((bearer = env->renew_bearer(env->ctx)))
				continue;
		}
		if (rc == F_DONE) {
			fetch_fail(f, status_code(status), "HTTP %ld", status);
			rc = status == 429 || status >= 500 ? F_RETRY : F_FAIL;
		}
		if (rc != F_RETRY || attempt >= env->retries)
			break;
		wait = rc == F_RETRY && f->resp.retry_after ? http_retry_after(f->resp.retry_after, time(NULL)) : -1;
		wait = wait >= 0 ? wait * 1000 : 1000L << (attempt < 5 ? attempt : 5);
		if (wait < 100)
			wait = 100;
		if (wait > RETRY_WAIT_MAX_MS)
			wait = RETRY_WAIT_MAX_MS;
		attempt++;
		free(f->fail_msg);
		f->fail_msg = NULL;
		if (pause_ms(env->conf, wait) < 0)
			return F_STOP;
	}
	fetch_reset(f);
	return F_FAIL;
}

/* ---- rewriting one attachment ------------------------------------------ */

/* Writes in-memory content to the destination under the name for mime. */
static int save_bytes(struct fetch *f, const char *mime, const void *data, size_t len)
{
	free(f->mime);
	f->mime = mime ? strdup(mime) : NULL;
	if (open_file(f) < 0 || file_write(f, data, len) < 0)
		return -1;
	return 0;
}

static int commit_file(struct fetch *f)
{
	char *err = NULL;
	int rc;

	rc = dest_file_commit(f->df, &err);
	f->df = NULL;
	if (rc < 0)
		fetch_fail(f, "exception", "cannot save %s: %s", f->path, err ? err : "error");
	free(err);
	return rc;
}

/* Only text that says something replaces a PDF (a scan has none). */
static int has_words(const char *s, size_t n)
{
	size_t i;

	for (i = 0; i < n; i++)
		if (!isspace((unsigned char)s[i]))
			return 1;
	return 0;
}

static void set_str(json_object *o, const char *key, const char *v, size_t n)
{
	json_object_object_add(o, key, json_object_new_string_len(v, (int)n));
}

/* Sets data, size, hash (and contentType when converted or missing) and
 * removes url.  -1 on allocation failure. */
static int put_inline(struct run *r, json_object *att, const char *mime, const unsigned char *data, size_t len,
		      const char *url_m)
{
	const struct export_attach_opts *o = r->o;
	struct pdftotext_opts po = { 0 };
	unsigned char md[EVP_MAX_MD_SIZE];
	unsigned int mdlen = 0;
	char *text = NULL, *err = NULL, *b64 = NULL, *hash = NULL;
	size_t tlen = 0;
	int rc = -1, converted = 0;

	if (o->pdf_to_text && mime && !strcmp(mime, "application/pdf")) {
		po.program = r->env->pdftotext;
		po.timeout = o->pdftotext_timeout;
		po.max_mem = o->pdftotext_max_mem;
		if (pdftotext_convert(&po, data, len, &text, &tlen, &err) < 0) {
			issue(r, "processing", "attachment %s: kept as PDF, text conversion failed: %s", url_m,
			      err ? err : "error");
		} else if (!has_words(text, tlen)) {
			issue(r, "processing", "attachment %s: kept as PDF, it has no text layer", url_m);
		} else {
			data = (const unsigned char *)text;
			len = tlen;
			converted = 1;
		}
	}
	if (!EVP_Digest(data, len, md, &mdlen, EVP_sha1(), NULL) || !(b64 = b64_encode(data, len)) ||
	    !(hash = b64_encode(md, mdlen)) || strlen(b64) > INT_MAX)
		goto out;
	set_str(att, "data", b64, strlen(b64));
	json_object_object_add(att, "size", json_object_new_int64((int64_t)len));
	set_str(att, "hash", hash, strlen(hash));
	json_object_object_del(att, "url");
	if (converted) {
		set_str(att, "contentType", "text/plain", 10);
		if (r->env->stats)
			r->env->stats->converted++;
	} else if (mime && !str_member(att, "contentType")) {
		set_str(att, "contentType", mime, strlen(mime));
	}
	if (r->env->stats)
		r->env->stats->inlined++;
	rc = 0;
out:
	free(text);
	free(err);
	free(b64);
	free(hash);
	return rc;
}

/* The attachment's own size and hash against what arrived. */
static void check_claims(struct run *r, json_object *att, const unsigned char sha1[20], long long size,
			 const char *url_m)
{
	json_object *v;
	const char *h = str_member(att, "hash");
	char *got = b64_encode(sha1, 20);

	if (h && got && strcmp(h, got))
		issue(r, "value", "attachment %s: its hash %s does not match the content received (%s)", url_m, h, got);
	if (json_object_object_get_ex(att, "size", &v) && json_object_is_type(v, json_type_int) &&
	    json_object_get_int64(v) != size)
		issue(r, "value", "attachment %s: its size %lld does not match the %lld bytes received", url_m,
		      (long long)json_object_get_int64(v), size);
	free(got);
}

/* Returns 1 when att changed, 0 when not (an issue may say why), -1 for a
 * line-level failure (*r->err set). */
static int process_attachment(struct run *r, json_object *att)
{
	const struct export_attach_opts *o = r->o;
	const char *url = str_member(att, "url");
	struct fetch f = { 0 };
	json_object *bin = NULL, *v;
	unsigned char sha1[EVP_MAX_MD_SIZE], *decoded = NULL;
	const unsigned char *data = NULL;
	unsigned int shalen = 0;
	char *abs = NULL, *url_m = NULL, *decl = NULL, *mime = NULL, *hash = NULL;
	size_t len = 0, dlen = 0;
	int rc = 0, st;

	if (!url || json_object_object_get_ex(att, "data", &v))
		return 0;   /* nothing to fetch, or already inline */
	url_m = msg_url(url);
	if (*url == '#') {
		issue(r, "not-supported", "attachment %s: points into the resource; not fetched", url_m);
		goto failed;
	}
	abs = url_is_http(url) ? strdup(url) : r->base ? url_resolve(r->base, url) : NULL;
	if (!abs || !url_is_http(abs)) {
		issue(r, "not-supported", "attachment %s: not an http(s) URL%s; not fetched", url_m,
		      r->base ? "" : " and no FHIR base to resolve it against");
		goto failed;
	}
	free(url_m);
	url_m = msg_url(abs);
	decl = mime_base(str_member(att, "contentType"));
	f.r = r;
	f.url = abs;
	f.decl = decl;
	if (r->env->accept)
		st = asprintf(&f.accept, "Accept: %s", r->env->accept);
	else
		st = asprintf(&f.accept, "Accept: %s%s", decl ? decl : "*/*", decl ? ", */*;q=0.1" : "");
	if (st < 0) {
		f.accept = NULL;
		err_set(r->err, "out of memory");
		rc = -1;
		goto out;
	}

	st = fetch(&f);
	if (st == F_STOP) {
		err_set(r->err, "stopped");
		rc = -1;
		goto out;
	}
	if (st != F_DONE) {
		issue(r, f.fail_code ? f.fail_code : "exception", "attachment %s: %s", url_m,
		      f.fail_msg ? f.fail_msg : "download failed");
		goto failed;
	}

	if (f.mode == M_FILE) {
		EVP_DigestFinal_ex(r->sha1, sha1, &shalen);
		if (commit_file(&f) < 0)
			goto fetch_failed;
		check_claims(r, att, sha1, f.total, url_m);
		hash = b64_encode(sha1, shalen);
		if (!hash) {
			err_set(r->err, "out of memory");
			rc = -1;
			goto out;
		}
		set_str(att, "url", f.rel, strlen(f.rel));
		json_object_object_add(att, "size", json_object_new_int64(f.total));
		set_str(att, "hash", hash, strlen(hash));
		if (f.mime && !str_member(att, "contentType"))
			set_str(att, "contentType", f.mime, strlen(f.mime));
		if (r->env->stats) {
			r->env->stats->saved++;
			r->env->stats->fetched++;
			r->env->stats->bytes += f.total;
		}
		rc = 1;
		goto out;
	}

	/* in memory: inline content, or a JSON answer that may be a Binary */
	data = (const unsigned char *)f.mem.data;
	len = f.mem.len;
	mime = f.mime ? strdup(f.mime) : NULL;
	if (f.mode == M_JSON) {
		bin = json_tokener_parse(buf_str(&f.mem));
		if (bin && json_object_is_type(bin, json_type_object) && str_member(bin, "resourceType") &&
		    !strcmp(str_member(bin, "resourceType"), "Binary")) {
			const char *d = str_member(bin, "data");

			if (!d) {
				issue(r, "not-found", "attachment %s: the Binary has no data", url_m);
				goto failed;
			}
			decoded = b64_decode(d, strlen(d), &dlen);
			if (!decoded) {
				issue(r, "value", "attachment %s: the Binary's data is not valid base64", url_m);
				goto failed;
			}
			data = decoded;
			len = dlen;
			free(mime);
			mime = mime_base(decl ? decl : str_member(bin, "contentType"));
		} else {
			/* JSON content itself (say an application/json document) */
			free(mime);
			mime = decl ? strdup(decl) : mime_base(f.resp.content_type);
		}
		if (r->env->max_bytes > 0 && (long long)len > r->env->max_bytes) {
			issue(r, "too-costly", "attachment %s: larger than the limit of %lld bytes", url_m,
			      r->env->max_bytes);
			goto failed;
		}
	}
	if (!EVP_Digest(data, len, sha1, &shalen, EVP_sha1(), NULL)) {
		err_set(r->err, "SHA-1 failed");
		rc = -1;
		goto out;
	}
	check_claims(r, att, sha1, (long long)len, url_m);
	if (r->env->stats) {
		r->env->stats->fetched++;
		r->env->stats->bytes += (long long)len;
	}
	if (o->inline_max > 0 && (long long)len <= o->inline_max && attach_type_listed(o->inline_types, mime)) {
		if (put_inline(r, att, mime, data, len, url_m) < 0) {
			err_set(r->err, "out of memory");
			rc = -1;
			goto out;
		}
		rc = 1;
		goto out;
	}
	if (save_bytes(&f, mime, data, len) < 0 || commit_file(&f) < 0)
		goto fetch_failed;
	hash = b64_encode(sha1, shalen);
	if (!hash) {
		err_set(r->err, "out of memory");
		rc = -1;
		goto out;
	}
	set_str(att, "url", f.rel, strlen(f.rel));
	json_object_object_add(att, "size", json_object_new_int64((int64_t)len));
	set_str(att, "hash", hash, strlen(hash));
	if (mime && !str_member(att, "contentType"))
		set_str(att, "contentType", mime, strlen(mime));
	if (r->env->stats)
		r->env->stats->saved++;
	rc = 1;
	goto out;

fetch_failed:
	issue(r, f.fail_code ? f.fail_code : "exception", "attachment %s: %s", url_m,
	      f.fail_msg ? f.fail_msg : "cannot save");
failed:
	if (r->env->stats)
		r->env->stats->failed++;
	rc = 0;
out:
	if (f.df)
		dest_file_abort(f.df);
	buf_free(&f.mem);
	http_resp_free(&f.resp);
	free(f.mime);
	free(f.path);
	free(f.rel);
	free(f.accept);
	free(f.fail_msg);
	json_object_put(bin);
	free(decoded);
	free(abs);
	free(url_m);
	free(decl);
	free(mime);
	free(hash);
	return rc;
}

/* ---- the line ------------------------------------------------------------ */

int attach_process_line(const struct export_attach_opts *o, const struct attach_env *env,
			const char *line, size_t len, char **out, size_t *outlen, char **err)
{
	struct run r = { 0 };
	struct json_tokener *tok = NULL;
	json_object *res = NULL, *arr, *el, *att;
	const char *type, *key, *s;
	size_t i, n;
	int rc = -1, changed = 0, st;

	*out = NULL;
	*outlen = 0;
	if (!attach_line_may_have(line, len))
		return 0;
	if (len > INT_MAX) {
		err_set(err, "line too long");
		return -1;
	}
	tok = json_tokener_new_ex(JSON_DEPTH);
	if (!tok) {
		err_set(err, "out of memory");
		goto out;
	}
	res = json_tokener_parse_ex(tok, line, (int)len);
	if (!res || json_tokener_get_error(tok) != json_tokener_success || !json_object_is_type(res, json_type_object)) {
		err_set(err, "not a JSON object");
		goto out;
	}
	type = str_member(res, "resourceType");
	if (type && !strcmp(type, "DocumentReference"))
		key = "content";
	else if (type && !strcmp(type, "DiagnosticReport"))
		key = "presentedForm";
	else {
		rc = 0;
		goto out;
	}
	if (!json_object_object_get_ex(res, key, &arr) || !json_object_is_type(arr, json_type_array)) {
		rc = 0;
		goto out;
	}
	r.o = o;
	r.env = env;
	r.err = err;
	if (env->fhir_base && *env->fhir_base) {
		s = env->fhir_base;
		if (asprintf(&r.base, "%s%s", s, s[strlen(s) - 1] == '/' ? "" : "/") < 0) {
			r.base = NULL;
			err_set(err, "out of memory");
			goto out;
		}
		r.server_origin = url_origin(s);
	}
	http_global_init();
	r.e = curl_easy_init();
	r.sha1 = EVP_MD_CTX_new();
	if (!r.e || !r.sha1) {
		err_set(err, "out of memory");
		goto out;
	}
	n = json_object_array_length(arr);
	for (i = 0; i < n; i++) {
		el = json_object_array_get_idx(arr, i);
		if (!json_object_is_type(el, json_type_object))
			continue;
		att = el;
		if (!strcmp(key, "content") &&
		    (!json_object_object_get_ex(el, "attachment", &att) || !json_object_is_type(att, json_type_object)))
			continue;
		st = process_attachment(&r, att);
		if (st < 0)
			goto out;
		changed |= st;
	}
	if (changed) {
		s = json_object_to_json_string_ext(res, JSON_C_TO_STRING_PLAIN | JSON_C_TO_STRING_NOSLASHESCAPE);
		if (!s || !(*out = strdup(s))) {
			err_set(err, "out of memory");
			goto out;
		}
		*outlen = strlen(*out);
	}
	rc = 0;
out:
	if (tok)
		json_tokener_free(tok);
	json_object_put(res);
	if (r.e)
		curl_easy_cleanup(r.e);
	EVP_MD_CTX_free(r.sha1);
	free(r.base);
	free(r.server_origin);
	return rc;
}
