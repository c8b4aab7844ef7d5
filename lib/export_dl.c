/* Parallel downloads of the manifest's files on one libcurl multi handle.
 *
 * Every body is streamed: decoded (Content-Encoding by libcurl; a gzip body
 * without the header by its magic bytes 1f 8b, through zlib), validated
 * line by line, hashed and written to the destination as it arrives, so
 * memory stays flat whatever the file size (one line buffer in the
 * validator, one 64 KiB output buffer in line mode).
 *
 * What is stored: with invalid_policy DROP_FILE or FAIL the decoded bytes
 * exactly as received; with SKIP_LINE the same minus the invalid lines
 * (every stored line byte-identical); with o->attach.enabled, output
 * DocumentReference / DiagnosticReport lines as lib/attach.h rewrote them
 * (attachments inline or saved beside the file): the one case where stored
 * lines differ from received ones.
 *
 * Retries: 429 / 408 / 5xx answers (honouring Retry-After), connection
 * failures and bodies cut short are retried up to o->retries times.  When
 * the stored bytes are exactly the received ones, a retry (or a resumed
 * partial file) asks for the rest only (Range: bytes=N-, If-Range); a 200
 * answer restarts the file.  A 429 halves that origin's concurrency (min
 * 1), RAISE_AFTER good files in a row raise it by one. */
#include "export_int.h"
#include "attach.h"
#include "buf.h"
#include "b64.h"
#include "dest.h"
#include "http.h"
#include "log.h"
#include "ndjson.h"
#include "smart_client.h"
#include "url.h"
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#define LINE_ISSUE_CAP 50
#define ERROR_BODY_MAX (64u << 10)
#define PROGRESS_MS 250
#define OBUF_SIZE (64u << 10)
#define ZCHUNK (64u << 10)
#define RAISE_AFTER 3

enum { DL_ABORT_NONE, DL_ABORT_STORE, DL_ABORT_BADRANGE, DL_ABORT_GZIP, DL_ABORT_INVALID };

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

static enum export_invalid_policy policy(const struct dl *d)
{
	return d->r->o->invalid_policy;
}

/* A problem with one line.  Lines already reported by an earlier attempt
 * at the same file are not reported twice. */
static void on_line_issue(void *ctx, long long line, const char *code, const char *msg)
{
	struct dl *d = ctx;
	struct run *r = d->r;

	if (line <= d->reported_line)
		return;
	d->reported_line = line;
	if (policy(d) == EXPORT_INVALID_FAIL && !r->fatal) {
		r->fatal = 1;
		d->abort_why = DL_ABORT_INVALID;
		xp_fail(r, 502, code, "invalid line %lld in %s: %s", line, d->f->url, msg);
	}
	if (d->line_issues++ < LINE_ISSUE_CAP)
		file_issue(d, "error", code, line, policy(d) == EXPORT_INVALID_SKIP_LINE ? "line skipped: %s" : "%s",
			   msg);
}

/* ---- storing ----------------------------------------------------------- */

static int store_failed(struct dl *d)
{
	d->store_failed = 1;
	d->abort_why = DL_ABORT_STORE;
	return -1;
}

/* Bytes that go into the file: hashed and counted as they are written. */
static int store(struct dl *d, const void *p, size_t len)
{
	if (!len)
		return 0;
	if (dest_file_write(d->df, p, len, &d->store_err) < 0)
		return store_failed(d);
	EVP_DigestUpdate(d->sha, p, len);
	d->f->bytes += (long long)len;
	return 0;
}

static int obuf_flush(struct dl *d)
{
	int rc = 0;

	if (d->olen)
		rc = store(d, d->obuf, d->olen);
	d->olen = 0;
	return rc;
}

/* Line mode output, gathered into OBUF_SIZE writes. */
static int out(struct dl *d, const void *p, size_t len)
{
	if (!d->obuf && !(d->obuf = malloc(OBUF_SIZE))) {
		free(d->store_err);
		d->store_err = strdup("out of memory");
		return store_failed(d);
	}
	if (d->olen + len > OBUF_SIZE && obuf_flush(d) < 0)
		return -1;
	if (len >= OBUF_SIZE)
		return store(d, p, len);
	memcpy(d->obuf + d->olen, p, len);
	d->olen += len;
	return 0;
}

static int attach_applies(const struct dl *d)
{
	return d->r->o->attach.enabled && d->karr == XK_OUTPUT &&
	       (!strcmp(d->f->type, "DocumentReference") || !strcmp(d->f->type, "DiagnosticReport"));
}

static void attach_issue(void *ctx, const char *severity, const char *code, const char *message)
{
	struct dl *d = ctx;

	file_issue(d, severity, code, d->cur_line, "attachment: %s", message);
}

/* After a 401 on an attachment: a new token, unless another request got
 * one already. */
static const char *attach_renew(void *ctx)
{
	struct dl *d = ctx;
	int failed;

	if (!d->r->smart)
		return NULL;
	smart_invalidate(d->r->smart);
	return xp_token(d->r, &failed);
}

/* A DocumentReference / DiagnosticReport line through lib/attach.h:
 * attachments fetched, put inline or saved beside the file.  The only
 * case where a stored line differs from the received one.  Blocks while it
 * fetches (the other transfers wait). */
static int attach_line(struct dl *d, const char *line, size_t len)
{
	struct run *r = d->r;
	struct attach_env env = { 0 };
	const char *slash = strrchr(d->f->dest_name, '/');
	char *dir = slash ? strndup(d->f->dest_name, (size_t)(slash - d->f->dest_name)) : NULL;
	char *res = NULL, *err = NULL;
	size_t reslen = 0;
	int failed = 0, rc;

	if (!attach_line_may_have(line, len)) {
		free(dir);
		return out(d, line, len);
	}
	env.conf = &r->conf;
	env.fhir_base = r->o->fhir_base;
	env.headers = r->o->extra_headers;
	env.bearer = d->want_token ? xp_token(r, &failed) : NULL;
	env.token_origins = (const char *const *)r->trusted;
	env.dest = r->o->dest;
	env.file_dir = dir;
	env.retries = r->retries;
	env.on_issue = attach_issue;
	env.renew_bearer = d->want_token ? attach_renew : NULL;
	env.ctx = d;
	env.stats = &r->attach_stats;
	rc = attach_process_line(&r->o->attach, &env, line, len, &res, &reslen, &err);
	if (rc < 0 && !r->stopped)
		file_issue(d, "warning", "processing", d->cur_line, "attachments not processed: %s",
			   err ? err : "error");
	rc = res ? out(d, res, reslen) : out(d, line, len);
	free(res);
	free(err);
	free(dir);
	return rc;
}

/* Line mode: called by the validator for every complete line. */
static void on_line(void *ctx, const char *data, size_t len, int nl, int ok)
{
	struct dl *d = ctx;

	d->cur_line++;
	if (d->store_failed || d->r->fatal)
		return;
	if (!ok && policy(d) == EXPORT_INVALID_SKIP_LINE)
		return;               /* left out; the issue says which line and why */
	if (!data)
		return;               /* over the limit, never kept: the file fails */
	if (ok && len && attach_applies(d)) {
		if (attach_line(d, data, len) < 0)
			return;
	} else if (out(d, data, len) < 0) {
		return;
	}
	if (nl)
		out(d, "\n", 1);
}

static int consume(struct dl *d, const void *p, size_t len)
{
	if (d->line_mode) {
		ndjson_feed(d->nd, p, len);
		return d->store_failed ? -1 : 0;
	}
	if (store(d, p, len) < 0)
		return -1;
	ndjson_feed(d->nd, p, len);
	return 0;
}

/* A gzip body without Content-Encoding: inflate as it streams in, gzip
 * members one after the other. */
static int inflate_feed(struct dl *d, const void *p, size_t len)
{
	z_stream *z = d->z;
	size_t produced;
	int rc;

	if (!d->zout && !(d->zout = malloc(ZCHUNK))) {
		d->abort_why = DL_ABORT_GZIP;
		return -1;
	}
	z->next_in = (Bytef *)p;
	z->avail_in = (uInt)len;
	do {
		if (d->zdone) {
			if (!z->avail_in)
				break;
			if (inflateReset(z) != Z_OK)
				goto bad;
			d->zdone = 0;
		}
		z->next_out = d->zout;
		z->avail_out = ZCHUNK;
		rc = inflate(z, Z_NO_FLUSH);
		if (rc != Z_OK && rc != Z_STREAM_END && rc != Z_BUF_ERROR)
			goto bad;
		produced = ZCHUNK - z->avail_out;
		if (produced && consume(d, d->zout, produced) < 0)
			return -1;
		if (rc == Z_STREAM_END)
			d->zdone = 1;
		if (rc == Z_BUF_ERROR)
			break;
	} while (z->avail_in > 0 || z->avail_out == 0);
	return 0;
bad:
	d->abort_why = DL_ABORT_GZIP;
	return -1;
}

static int feed(struct dl *d, const void *p, size_t len)
{
	d->wire += (long long)len;
	if (d->sniffed == 2)
		return inflate_feed(d, p, len);
	return consume(d, p, len);
}

/* First two bytes of a representation: gzip or not. */
static int sniff(struct dl *d)
{
	d->sniffed = d->nmagic == 2 && d->magic[0] == 0x1f && d->magic[1] == 0x8b ? 2 : 1;
	if (d->sniffed == 2) {
		d->z = calloc(1, sizeof *d->z);
		if (!d->z || inflateInit2(d->z, 16 + MAX_WBITS) != Z_OK) {
			free(d->z);
			d->z = NULL;
			d->abort_why = DL_ABORT_GZIP;
			return -1;
		}
		/* stored bytes are the decoded ones: offsets no longer match the
		 * server's; a resume must know before any byte is on disk */
		d->exact = 0;
		d->xst = XF_PARTIAL;
		xst_save(d->r, 1);
	}
	return feed(d, d->magic, (size_t)d->nmagic);
}

static int body(struct dl *d, const char *p, size_t len)
{
	if (!d->sniffed) {
		if (d->wire > 0) {
			d->sniffed = 1;   /* a continuation of a plain body */
		} else {
			while (d->nmagic < 2 && len) {
				d->magic[d->nmagic++] = (unsigned char)*p++;
				len--;
			}
			if (d->nmagic < 2)
				return 0;
			if (sniff(d) < 0)
				return -1;
		}
	}
	return len ? feed(d, p, len) : 0;
}

/* Forget the content so far and start the file again (new part file). */
static int reset_content(struct dl *d)
{
	struct run *r = d->r;

	if (d->df)
		dest_file_abort(d->df);
	free(d->store_err);
	d->store_err = NULL;
	d->df = dest_file_open(r->o->dest, d->f->dest_name, &d->store_err);
	if (!d->df)
		return store_failed(d);
	EVP_DigestInit_ex(d->sha, EVP_sha256(), NULL);
	ndjson_reset(d->nd);
	d->f->bytes = d->f->lines = 0;
	d->wire = 0;
	d->olen = 0;
	d->cur_line = 0;
	d->sniffed = d->nmagic = 0;
	if (d->z) {
		inflateEnd(d->z);
		free(d->z);
		d->z = NULL;
	}
	d->zdone = 0;
	d->exact = 1;
	d->resumed = 0;
	free(d->etag);
	d->etag = NULL;
	return 0;
}

/* "bytes A-B/C" (C may be "*") from `from` to the end. */
static int range_matches(const char *cr, long long from)
{
	long long a, b, total;
	const char *slash;

	if (!cr || sscanf(cr, "bytes %lld-%lld/", &a, &b) != 2 || a != from || b < a)
		return 0;
	slash = strchr(cr, '/');
	if (!slash || slash[1] == '*')
		return 1;
	return sscanf(slash + 1, "%lld", &total) == 1 && b == total - 1;
}

/* The first body byte of a 200/206 (or its end when it has none). */
static int begin(struct dl *d)
{
	const char *ce = d->resp.content_encoding;
	int encoded = ce && *ce && strcasecmp(ce, "identity");

	d->begun = 1;
	if (d->status == 206) {
		if (!d->range_from || encoded || !range_matches(d->resp.content_range, d->range_from)) {
			/* not the part we asked for: start over, no ranges */
			d->abort_why = DL_ABORT_BADRANGE;
			return -1;
		}
		log_info("export: file %d continues at byte %lld", d->f->seq, d->range_from);
		return 0;
	}
	/* 200: the whole representation, whatever we asked for */
	if ((d->wire > 0 || d->f->bytes > 0) && reset_content(d) < 0)
		return -1;
	d->ranges_none = d->resp.accept_ranges && !strcasecmp(d->resp.accept_ranges, "none");
	free(d->etag);
	d->etag = NULL;
	/* an encoded answer's ETag names the encoded bytes: no use for ranges
	 * of the identity bytes we store */
	if (d->resp.etag && !encoded && strncmp(d->resp.etag, "W/", 2))
		d->etag = strdup(d->resp.etag);
	return 0;
}

static size_t dl_write(char *p, size_t size, size_t n, void *ud)
{
	struct dl *d = ud;
	size_t len = size * n;
	long long now;

	if (!d->status)
		curl_easy_getinfo(d->e, CURLINFO_RESPONSE_CODE, &d->status);
	if (d->status != 200 && d->status != 206) {
		/* an error or redirect body: keep a little for the message */
		if (d->resp.body.len < ERROR_BODY_MAX)
			buf_append(&d->resp.body, p, len < ERROR_BODY_MAX - d->resp.body.len ? len
							: ERROR_BODY_MAX - d->resp.body.len);
		else
			d->resp.body_truncated = 1;
		return len;
	}
	if (!d->begun && begin(d) < 0)
		return 0;
	if (d->xst == XF_PENDING)
		d->xst = XF_PARTIAL;
	if (body(d, p, len) < 0 || d->r->fatal)
		return 0;
	now = xp_now_ms();
	if (now - d->last_progress >= PROGRESS_MS) {
		d->last_progress = now;
		d->f->lines = ndjson_lines(d->nd);
		if (d->r->ev && d->r->ev->on_file_progress)
			d->r->ev->on_file_progress(d->r->o->ctx, d->f);
	}
	return len;
}

/* ---- resume of a partial file ------------------------------------------ */

struct scan {
	long long total, last_nl;     /* pass 1: bytes, offset after the last '\n' */
	long long fed, upto;          /* pass 2 */
	struct dl *d;
};

static int scan_nl(void *ctx, const void *data, size_t len)
{
	struct scan *s = ctx;
	const char *p = data, *nl = memrchr(p, '\n', len);

	if (nl)
		s->last_nl = s->total + (nl - p) + 1;
	s->total += (long long)len;
	return 0;
}

static int refeed(void *ctx, const void *data, size_t len)
{
	struct scan *s = ctx;
	size_t n = s->upto - s->fed < (long long)len ? (size_t)(s->upto - s->fed) : len;

	EVP_DigestUpdate(s->d->sha, data, n);
	ndjson_feed(s->d->nd, data, n);
	s->fed += (long long)n;
	return s->fed >= s->upto ? 1 : 0;
}

/* First start of a file in a resumed run: continue the part file an
 * earlier run left, from its last complete line, when its bytes are the
 * server's bytes; else start it over. */
static int resume_partial(struct dl *d, int idx)
{
	struct run *r = d->r;
	json_object *st = xst_file_state(r, idx), *v;
	struct scan s = { 0 };
	long long have = 0;
	char *err = NULL;
	int exact = !d->line_mode, rc;

	if (st && json_object_object_get_ex(st, "exact", &v) && !json_object_get_boolean(v))
		exact = 0;
	if (r->state && json_object_object_get_ex(r->state, "filtered", &v) && json_object_get_boolean(v))
		exact = 0;   /* the earlier run stored filtered lines */
	d->df = dest_file_reopen(r->o->dest, d->f->dest_name, &have, &d->store_err);
	if (!d->df)
		return store_failed(d);
	EVP_DigestInit_ex(d->sha, EVP_sha256(), NULL);
	ndjson_reset(d->nd);
	d->f->bytes = d->f->lines = d->wire = 0;
	d->exact = 1;
	if (have <= 0)
		return 0;
	if (exact && (rc = dest_file_read_partial(r->o->dest, d->f->dest_name, scan_nl, &s, &err)) < 0) {
		log_warn("export: file %d: cannot read the partial file (%s); starting it over", d->f->seq,
			 err ? err : "error");
		exact = 0;
	}
	free(err);
	err = NULL;
	if (!exact || s.last_nl == 0) {
		if (dest_file_truncate(d->df, 0, &d->store_err) < 0)
			return store_failed(d);
		return 0;
	}
	if (s.last_nl < have && dest_file_truncate(d->df, s.last_nl, &d->store_err) < 0)
		return store_failed(d);
	s.d = d;
	s.upto = s.last_nl;
	rc = dest_file_read_partial(r->o->dest, d->f->dest_name, refeed, &s, &err);
	if (rc < 0 || s.fed != s.upto) {
		log_warn("export: file %d: cannot read the partial file (%s); starting it over", d->f->seq,
			 err ? err : "short read");
		free(err);
		return reset_content(d);
	}
	free(err);
	d->f->bytes = d->wire = s.upto;
	d->sniffed = 1;
	d->resumed = 1;
	d->xst = XF_PARTIAL;
	if (st && (v = NULL, json_object_object_get_ex(st, "etag", &v)) && json_object_is_type(v, json_type_string))
		d->etag = strdup(json_object_get_string(v));
	log_info("export: file %d: %lld bytes from an earlier run", d->f->seq, s.upto);
	return 0;
}

/* ---- one file ---------------------------------------------------------- */

/* Never called while the handle is in the multi handle. */
static void dl_release(struct dl *d)
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
	if (d->z) {
		inflateEnd(d->z);
		free(d->z);
		d->z = NULL;
	}
	free(d->zout);
	d->zout = NULL;
	free(d->obuf);
	d->obuf = NULL;
	http_resp_free(&d->resp);
}

static void dl_finish(struct dl *d, int ok)
{
	struct run *r = d->r;

	dl_release(d);
	d->st = DL_DONE;
	d->xst = ok ? XF_DONE : XF_FAILED;
	if (ok) {
		r->done_files++;
		r->done_lines += d->f->lines;
		r->done_bytes += d->f->bytes;
	} else {
		r->res->files_failed++;
	}
	if (r->ev && r->ev->on_file_done)
		r->ev->on_file_done(r->o->ctx, d->f, ok);
}

static void dl_fail(struct dl *d, const char *code, const char *fmt, ...) __attribute__((format(printf, 3, 4)));

static void dl_fail(struct dl *d, const char *code, const char *fmt, ...)
{
	struct run *r = d->r;
	char *msg = NULL;
	va_list ap;

	va_start(ap, fmt);
	if (vasprintf(&msg, fmt, ap) < 0)
		msg = NULL;
	va_end(ap);
	file_issue(d, "error", code, 0, "%s", msg ? msg : "download failed");
	log_warn("export: file %d: %s", d->f->seq, msg ? msg : "download failed");
	if (xlog_on(r)) {
		json_object *dt = json_object_new_object();

		json_object_object_add(dt, "fileUrl", xlog_str(d->f->url));
		json_object_object_add(dt, "itemType", xlog_str(d->f->kind));
		json_object_object_add(dt, "code", d->status ? json_object_new_int64(d->status) : NULL);
		json_object_object_add(dt, "message", xlog_str(msg ? msg : "download failed"));
		json_object_object_add(dt, "issueCode", xlog_str(code));
		xlog(r, "download_error", dt);
	}
	free(msg);
	dl_finish(d, 0);
}

static struct xhost *host_for(struct run *r, const char *url)
{
	char *origin = url_origin(url);
	int i, par = r->o->parallelism > 0 ? r->o->parallelism : 4;
	struct xhost **grown, *h;

	if (!origin)
		origin = strdup("");
	if (!origin)
		return NULL;
	for (i = 0; i < r->nhosts; i++)
		if (!strcmp(r->hosts[i]->origin, origin)) {
			free(origin);
			return r->hosts[i];
		}
	grown = realloc(r->hosts, sizeof *r->hosts * (size_t)(r->nhosts + 1));
	h = calloc(1, sizeof *h);
	if (grown)
		r->hosts = grown;
	if (!grown || !h) {
		free(h);
		free(origin);
		return NULL;
	}
	h->origin = origin;
	h->limit = h->max = h->min_limit = par;
	r->hosts[r->nhosts++] = h;
	return h;
}

static void host_throttled(struct xhost *h)
{
	h->throttled++;
	h->streak = 0;
	if (h->limit > 1) {
		h->limit /= 2;
		log_info("export: %s answers 429; %d parallel downloads now", h->origin, h->limit);
	}
	if (h->limit < h->min_limit)
		h->min_limit = h->limit;
}

static void host_ok(struct xhost *h)
{
	if (h->limit < h->max && ++h->streak >= RAISE_AFTER) {
		h->limit++;
		h->streak = 0;
		log_info("export: %s: %d parallel downloads now", h->origin, h->limit);
	}
}

/* Starts the next transfer of d: a first try, a retry (Range when the
 * stored bytes allow it), or a redirect hop.  0, or -1 when the file
 * failed already. */
static int dl_start(struct dl *d, CURLM *m, int idx)
{
	static const char *const accept = "Accept: application/fhir+ndjson";
	struct run *r = d->r;
	const char *token = NULL, *hdrs[4] = { accept, NULL, NULL, NULL };
	char range[64], *ifrange = NULL;
	int failed = 0, trusted, own;

	if (!url_is_http(d->url)) {
		dl_fail(d, "exception", "the file URL \"%s\" is not an http(s) URL", d->url);
		return -1;
	}
	trusted = http_origin_trusted(d->url, r->auth_origin, (const char *const *)r->trusted);
	own = http_origin_trusted(d->url, r->auth_origin, NULL);
	if (d->want_token && trusted) {
		token = xp_token(r, &failed);
		if (failed == 2) {
			if (r->stopped)
				return 0;   /* the loop sees it */
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
	if (!d->nd) {
		d->nd = ndjson_new(d->expect, r->o->max_line_bytes, on_line_issue, d);
		if (d->nd && d->line_mode)
			ndjson_set_line_fn(d->nd, on_line, d);
	}
	if (!d->sha)
		d->sha = EVP_MD_CTX_new();
	if (!d->nd || !d->sha) {
		dl_fail(d, "exception", "out of memory");
		return -1;
	}
	if (!d->df) {
		int rc;

		if (r->resume && !d->resume_tried) {
			d->resume_tried = 1;
			rc = resume_partial(d, idx);
		} else {
			rc = reset_content(d);
		}
		if (rc < 0) {
			dl_fail(d, "exception", "cannot store %s: %s", d->f->dest_name,
				d->store_err ? d->store_err : "error");
			return -1;
		}
	}
	/* what an earlier attempt left: continued with a Range, or dropped
	 * (including a first byte kept back for the gzip check) */
	d->range_from = 0;
	if (d->wire > 0 && d->exact && !d->line_mode && d->sniffed != 2 && !d->no_range && !d->ranges_none) {
		d->range_from = d->wire;
	} else if ((d->wire > 0 || d->f->bytes > 0 || d->nmagic || d->sniffed) && reset_content(d) < 0) {
		dl_fail(d, "exception", "cannot store %s: %s", d->f->dest_name, d->store_err ? d->store_err : "error");
		return -1;
	}
	if (d->range_from) {
		snprintf(range, sizeof range, "Range: bytes=%lld-", d->range_from);
		hdrs[1] = range;
		if (d->etag && asprintf(&ifrange, "If-Range: %s", d->etag) >= 0)
			hdrs[2] = ifrange;
	}
	d->status = 0;
	d->begun = 0;
	d->abort_why = DL_ABORT_NONE;
	http_resp_reset(&d->resp);
	if (!d->e)
		d->e = curl_easy_init();
	else
		curl_easy_reset(d->e);
	if (!d->e) {
		free(ifrange);
		dl_fail(d, "exception", "out of memory");
		return -1;
	}
	curl_slist_free_all(d->hdrs);
	/* extra headers belong to the FHIR server: never to storage elsewhere */
	d->hdrs = http_hop_headers(d->url, hdrs, r->o->extra_headers, own, token, r->auth_origin,
				   (const char *const *)r->trusted, &d->sent_bearer);
	free(ifrange);
	if (r->smart)
		d->token_serial = smart_token_serial(r->smart);
	{
		struct http_conf c = r->conf;

		c.should_stop = NULL;   /* the loop asks; per-transfer calls would be many */
		http_apply_conf(d->e, &c);
	}
	/* a range is of the identity bytes, which are the ones we stored */
	if (d->range_from)
		curl_easy_setopt(d->e, CURLOPT_ACCEPT_ENCODING, "identity");
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
	if (!d->redirects && xlog_on(r)) {
		json_object *dt = json_object_new_object();

		json_object_object_add(dt, "fileUrl", xlog_str(d->f->url));
		json_object_object_add(dt, "itemType", xlog_str(d->f->kind));
		json_object_object_add(dt, "resourceType", xlog_str(d->f->type));
		json_object_object_add(dt, "attempt", json_object_new_int(d->attempt + 1));
		json_object_object_add(dt, "concurrency", json_object_new_int(d->host ? d->host->limit : 1));
		if (d->range_from)
			json_object_object_add(dt, "rangeFrom", json_object_new_int64(d->range_from));
		xlog(r, "download_request", dt);
	}
	if (curl_multi_add_handle(m, d->e) != CURLM_OK) {
		dl_fail(d, "exception", "cannot start the transfer");
		return -1;
	}
	d->st = DL_ACTIVE;
	d->last_progress = xp_now_ms();
	return 0;
}

/* Schedule another try (the content is kept: dl_start continues it with
 * a Range when it can), or fail the file when retries are used up. */
static void dl_retry(struct dl *d, const char *why, const char *retry_after)
{
	struct run *r = d->r;
	long ms;

	if (ndjson_errors(d->nd) && policy(d) == EXPORT_INVALID_DROP_FILE) {
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
	free(d->url);
	d->url = strdup(d->first_url);   /* redirect targets may have expired */
	d->redirects = 0;
	d->st = DL_WAITING;
	d->not_before = xp_now_ms() + ms;
}

/* Try again without ranges (the server's partial answer was not the part
 * asked for): at once the first time, as a counted retry after that. */
static void dl_restart_now(struct dl *d)
{
	if (d->no_range) {
		dl_retry(d, "unexpected partial answer", NULL);
		return;
	}
	d->no_range = 1;
	free(d->url);
	d->url = strdup(d->first_url);
	d->redirects = 0;
	d->st = DL_WAITING;
	d->not_before = 0;
}

static void dl_complete(struct dl *d)
{
	struct run *r = d->r;
	unsigned char md[EVP_MAX_MD_SIZE];
	unsigned mdlen = 0;
	char *err = NULL, *hex;
	long long errors, lines;
	int mismatch = 0;

	if (!d->sniffed && d->nmagic && sniff(d) < 0) {
		dl_retry(d, "the gzip body is corrupt", NULL);
		return;
	}
	if (d->sniffed == 2 && !d->zdone) {
		dl_retry(d, "the gzip body ended early", NULL);
		return;
	}
	ndjson_finish(d->nd);
	obuf_flush(d);
	if (d->store_failed) {
		dl_fail(d, "exception", "cannot store %s: %s", d->f->dest_name, d->store_err ? d->store_err : "write error");
		return;
	}
	if (r->fatal) {
		dl_finish(d, 0);
		return;
	}
	lines = ndjson_lines(d->nd);
	errors = ndjson_errors(d->nd);
	if (d->line_issues > LINE_ISSUE_CAP)
		file_issue(d, "error", "structure", 0, "%lld lines with problems, only the first %d reported",
			   errors, LINE_ISSUE_CAP);
	if (d->f->manifest_count >= 0 && lines != d->f->manifest_count) {
		mismatch = 1;
		file_issue(d, "error", "value", 0, "line count %lld does not match the manifest count %lld",
			   lines, d->f->manifest_count);
	}
	d->f->lines = policy(d) == EXPORT_INVALID_SKIP_LINE ? lines - errors : lines;
	if (policy(d) == EXPORT_INVALID_FAIL && (errors || mismatch)) {
		r->fatal = 1;
		xp_fail(r, 502, "value", "%s: line count %lld does not match the manifest count %lld", d->f->url,
			lines, d->f->manifest_count);
		dl_finish(d, 0);
		return;
	}
	if (policy(d) == EXPORT_INVALID_DROP_FILE && (errors || mismatch)) {
		char lu[512];

		log_warn("export: file %d (%s) is invalid; not stored", d->f->seq, url_for_log(d->f->url, lu, sizeof lu));
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
	if (d->host)
		host_ok(d->host);
	if (xlog_on(r)) {
		json_object *dt = json_object_new_object();

		json_object_object_add(dt, "fileUrl", xlog_str(d->f->url));
		json_object_object_add(dt, "itemType", xlog_str(d->f->kind));
		json_object_object_add(dt, "resourceCount", json_object_new_int64(d->f->lines));
		json_object_object_add(dt, "fileSize", json_object_new_int64(d->f->bytes));
		json_object_object_add(dt, "destination", xlog_str(d->f->dest_name));
		if (errors)
			json_object_object_add(dt, "skippedLines", json_object_new_int64(errors));
		xlog(r, "download_complete", dt);
	}
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

	if (d->abort_why == DL_ABORT_INVALID || (r->fatal && cc != CURLE_OK)) {
		dl_finish(d, 0);   /* invalid_policy FAIL: the run records why */
		return;
	}
	if (d->abort_why == DL_ABORT_STORE || d->store_failed) {
		dl_fail(d, "exception", "cannot store %s: %s", d->f->dest_name, d->store_err ? d->store_err : "write error");
		return;
	}
	if (d->abort_why == DL_ABORT_BADRANGE) {
		log_info("export: file %d: the server did not send the range asked for; starting over", d->f->seq);
		dl_restart_now(d);
		return;
	}
	if (d->abort_why == DL_ABORT_GZIP) {
		dl_retry(d, "the gzip body is corrupt", NULL);
		return;
	}
	if (cc != CURLE_OK) {
		char why[CURL_ERROR_SIZE + 32];

		snprintf(why, sizeof why, "%s", d->errbuf[0] ? d->errbuf : curl_easy_strerror(cc));
		dl_retry(d, why, NULL);
		return;
	}
	curl_easy_getinfo(d->e, CURLINFO_RESPONSE_CODE, &status);
	d->status = status;
	if (status == 200 || status == 206) {
		if (!d->begun && begin(d) < 0) {
			if (d->abort_why == DL_ABORT_BADRANGE)
				dl_restart_now(d);
			else
				dl_fail(d, "exception", "cannot store %s: %s", d->f->dest_name,
					d->store_err ? d->store_err : "write error");
			return;
		}
		dl_complete(d);
		return;
	}
	if (http_is_redirect(status)) {
		curl_easy_getinfo(d->e, CURLINFO_REDIRECT_URL, &loc);
		if (loc) {
			if (d->redirects >= HTTP_MAX_REDIRECTS) {
				dl_fail(d, "exception", "more than %d redirects", HTTP_MAX_REDIRECTS);
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
	if (status == 416 && d->range_from) {
		dl_restart_now(d);
		return;
	}
	d->resp.status = status;
	text = xp_status_text(&d->resp, &code, &doc);
	if (status == 429 && d->host)
		host_throttled(d->host);
	if (xp_busy_status(status))
		dl_retry(d, text ? text : "server busy", d->resp.retry_after);
	else
		dl_fail(d, "exception", "download failed: %s", text ? text : "error");
	free(text);
	json_object_put(doc);
}

/* ---- all files --------------------------------------------------------- */

/* A file left unfinished.  When the run was abandoned (not cancelled) with
 * resume on, its part file stays for the next run's dest_file_reopen and
 * Range request; otherwise it is dropped. */
static void leave_unfinished(struct dl *d)
{
	int keep = d->r->o->resume && d->r->stopped == EXPORT_STOP_ABANDON &&
		   d->xst == XF_PARTIAL && dest_can_resume(d->r->o->dest);

	if (d->df) {
		if (keep)
			dest_file_suspend(d->df);
		else
			dest_file_abort(d->df);
		d->df = NULL;
	}
	if (d->xst == XF_PARTIAL && !keep)
		d->xst = XF_PENDING;
}

static int setup(struct run *r, int i, int want_token)
{
	struct dl *d = r->dls[i];
	struct export_file *f = &r->files[i];

	d->r = r;
	d->f = f;
	if (d->st == DL_DONE)
		return 0;
	d->expect = d->karr == XK_DELETED ? "Bundle" :
		    d->karr == XK_ERROR || d->karr == XK_OUTCOME ? "OperationOutcome" :
		    *f->type ? f->type : NULL;
	d->want_token = want_token;
	d->exact = 1;
	d->line_mode = r->o->invalid_policy == EXPORT_INVALID_SKIP_LINE || attach_applies(d);
	/* the spec wants absolute URLs; resolve relative ones anyway */
	d->first_url = r->manifest_url && *f->url ? url_resolve(r->manifest_url, f->url) : NULL;
	if (!d->first_url)
		d->first_url = strdup(f->url);
	d->url = d->first_url ? strdup(d->first_url) : NULL;
	if (!d->first_url || !d->url)
		return -1;
	d->host = host_for(r, d->first_url);
	return d->host ? 0 : -1;
}

/* Once the manifest is complete: on_manifest with every file.  Without
 * streaming it decides skip, and files done by an earlier run are
 * reported right after it. */
static void announce_manifest(struct run *r, int first)
{
	int i;

	if (r->ev && r->ev->on_manifest)
		r->ev->on_manifest(r->o->ctx, r->manifest, r->files, r->nfiles);
	for (i = first; !r->streaming && i < r->nfiles; i++)
		if (r->files[i].skip) {
			r->dls[i]->st = DL_DONE;
			r->dls[i]->xst = XF_DONE;
		}
}

/* Files for the manifest entries that have none yet (the first page, or
 * one more page): numbered, announced (on_files_added when streaming, else
 * on_manifest), set up to download.  0 or -1 (recorded). */
static int add_files(struct run *r, int want_token)
{
	int first = r->nfiles, i;

	if (xst_build_files(r) < 0)
		return -1;
	if (r->streaming && r->nfiles > first)
		r->ev->on_files_added(r->o->ctx, r->files, first, r->nfiles - first);
	for (i = first; r->streaming && i < r->nfiles; i++)
		if (r->files[i].skip) {
			/* the caller stored it earlier (and gave its bytes, lines and
			 * sha256): the state file and manifest.json must say so */
			r->dls[i]->st = DL_DONE;
			r->dls[i]->xst = XF_DONE;
		}
	if (!r->pg.next)
		announce_manifest(r, first);
	for (i = first; i < r->nfiles; i++) {
		struct dl *d = r->dls[i];

		d->r = r;
		d->f = &r->files[i];
		if (d->from_state) {
			/* stored by an earlier run: counted as done */
			r->done_files++;
			r->done_lines += d->f->lines;
			r->done_bytes += d->f->bytes;
			if (r->ev && r->ev->on_file_done)
				r->ev->on_file_done(r->o->ctx, d->f, 1);
		}
	}
	for (i = first; i < r->nfiles; i++)
		if (setup(r, i, want_token) < 0) {
			xp_fail(r, 500, "exception", "out of memory");
			return -1;
		}
	xst_save(r, 1);
	return 0;
}

int xdl_all(struct run *r)
{
	CURLM *m = NULL;
	CURLMsg *msg;
	json_object *v;
	int n, i, total, left, running, want_token = 0, ret = -1, rc;
	int par = r->o->parallelism > 0 ? r->o->parallelism : 4;
	long long now;
	long wait;
	int ended;

	if (json_object_object_get_ex(r->manifest, "requiresAccessToken", &v))
		want_token = json_object_get_boolean(v);
	m = curl_multi_init();
	if (!m) {
		xp_fail(r, 500, "exception", "out of memory");
		goto out;
	}
	if (add_files(r, want_token) < 0)
		goto out;
	for (;;) {
		if (xp_stop(r) || r->fatal)
			goto out;
		if (xp_past_deadline(r)) {
			xp_fail_deadline(r);
			goto out;
		}
		now = xp_now_ms();
		n = r->nfiles;
		total = left = 0;
		for (i = 0; i < r->nhosts; i++)
			r->hosts[i]->active = 0;
		for (i = 0; i < n; i++)
			if (r->dls[i]->st == DL_ACTIVE) {
				total++;
				r->dls[i]->host->active++;
			}
		for (i = 0; i < n; i++) {
			struct dl *d = r->dls[i];

			if (d->st == DL_WAITING && total < par && d->not_before <= now &&
			    d->host->active < d->host->limit && dl_start(d, m, i) == 0 && d->st == DL_ACTIVE) {
				total++;
				d->host->active++;
			}
			if (d->st != DL_DONE)
				left++;
			if (r->stopped)
				goto out;
		}
		if (!left && !r->pg.next)
			break;
		curl_multi_perform(m, &running);
		ended = 0;
		while ((msg = curl_multi_info_read(m, &running))) {
			struct dl *d = NULL;

			if (msg->msg != CURLMSG_DONE)
				continue;
			curl_easy_getinfo(msg->easy_handle, CURLINFO_PRIVATE, (char **)&d);
			curl_multi_remove_handle(m, msg->easy_handle);
			d->st = DL_WAITING;   /* dl_ended moves it on */
			dl_ended(d, msg->data.result);
			ended++;
		}
		if (r->fatal)
			goto out;
		/* streaming: the next manifest page when its time has come (the
		 * request is short; waits for it never block the transfers) */
		if (r->pg.next) {
			rc = xp_pages_step(r);
			if (rc < 0)
				goto out;
			if (rc > 0 && add_files(r, want_token) < 0)
				goto out;
			if (rc > 0)
				continue;   /* start the new files at once */
		}
		xst_save(r, 0);
		if (ended)
			continue;   /* a slot came free: start the next file now, not after a poll */
		wait = 200;
		if (r->pg.next && r->pg.not_before - xp_now_ms() < wait)
			wait = r->pg.not_before - xp_now_ms() > 0 ? (long)(r->pg.not_before - xp_now_ms()) : 0;
		curl_multi_poll(m, NULL, 0, (int)wait, NULL);
	}
	ret = 0;
out:
	for (i = 0; r->dls && i < r->nfiles; i++) {
		struct dl *d = r->dls[i];

		if (d->e && d->st == DL_ACTIVE && m)
			curl_multi_remove_handle(m, d->e);
		if (d->st != DL_DONE)
			leave_unfinished(d);
		dl_release(d);
	}
	if (m)
		curl_multi_cleanup(m);
	return ret;
}
