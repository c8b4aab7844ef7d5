/* Shared transfer code of the S3 and HTTP destinations: one reused easy
 * handle, bodies from memory or a spool file, bounded retries of 5xx and
 * transport errors with a short backoff.  Never logs headers (they carry
 * credentials) or the secret. */
#include "dest_int.h"
#include "buf.h"
#include "http.h"
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <unistd.h>

#define DEFAULT_RETRIES 3
#define BACKOFF_FIRST_MS 200
#define BACKOFF_MAX_MS 5000

static char *dup_or_null(const char *s, int *oom)
{
	char *r;

	if (!s)
		return NULL;
	if (!(r = strdup(s)))
		*oom = 1;
	return r;
}

int dest_net_init(struct dest_net *n, const struct dest_conf *c, char **err)
{
	int oom = 0;

	memset(n, 0, sizeof *n);
	n->retries = c->retries == 0 ? DEFAULT_RETRIES : c->retries < 0 ? 0 : c->retries;
	n->ca_file = dup_or_null(c->ca_file, &oom);
	n->user_agent = dup_or_null(c->user_agent ? c->user_agent : "bulk-data", &oom);
	n->insecure = c->insecure;
	n->connect_timeout = c->connect_timeout > 0 ? c->connect_timeout : 10;
	n->idle_timeout = c->idle_timeout > 0 ? c->idle_timeout : 60;
	n->should_stop = c->should_stop;
	n->stop_ctx = c->stop_ctx;
	if (oom) {
		err_set(err, "out of memory");
		return -1;
	}
	http_global_init();
	if (!(n->curl = curl_easy_init())) {
		err_set(err, "cannot initialise libcurl");
		return -1;
	}
	return 0;
}

void dest_net_free(struct dest_net *n)
{
	if (n->curl)
		curl_easy_cleanup(n->curl);
	free(n->ca_file);
	free(n->user_agent);
	memset(n, 0, sizeof *n);
}

void dest_xfer_free(struct dest_xfer *x)
{
	buf_free(&x->resp);
	free(x->etag);
	free(x->error);
	x->etag = x->error = NULL;
	x->resp_truncated = 0;
	x->status = 0;
	x->stopped = 0;
}

struct body_reader {
	const struct dest_body *b;
	long long off;
};

static size_t read_cb(char *out, size_t size, size_t nitems, void *ud)
{
	struct body_reader *r = ud;
	long long left = r->b->len - r->off;
	size_t want = size * nitems;
	ssize_t got;

	if (left <= 0)
		return 0;
	if ((long long)want > left)
		want = (size_t)left;
	if (r->b->fd < 0) {
		memcpy(out, (const char *)r->b->mem + r->off, want);
		got = (ssize_t)want;
	} else {
		do
			got = pread(r->b->fd, out, want, (off_t)r->off);
		while (got < 0 && errno == EINTR);
		if (got <= 0)
			return CURL_READFUNC_ABORT;   /* the spool file shrank or failed */
	}
	r->off += got;
	return (size_t)got;
}

/* Rewinds for a resend (after a redirect or auth round) */
static int seek_cb(void *ud, curl_off_t offset, int origin)
{
	struct body_reader *r = ud;

	if (origin != SEEK_SET || offset < 0 || offset > r->b->len)
		return CURL_SEEKFUNC_CANTSEEK;
	r->off = offset;
	return CURL_SEEKFUNC_OK;
}

static size_t write_cb(char *p, size_t size, size_t n, void *ud)
{
	struct dest_xfer *x = ud;
	size_t len = size * n, cap = x->max_resp ? x->max_resp : 64 * 1024, room;

	room = x->resp.len < cap ? cap - x->resp.len : 0;
	if (len > room)
		x->resp_truncated = 1;
	buf_append(&x->resp, p, len < room ? len : room);
	return len;
}

static size_t header_cb(char *p, size_t size, size_t n, void *ud)
{
	struct dest_xfer *x = ud;
	size_t len = size * n;

	if (len > 5 && !strncasecmp(p, "ETag:", 5)) {
		const char *v = p + 5, *e = p + len;

		while (v < e && (*v == ' ' || *v == '\t'))
			v++;
		while (e > v && (e[-1] == '\r' || e[-1] == '\n' || e[-1] == ' '))
			e--;
		free(x->etag);
		x->etag = strndup(v, (size_t)(e - v));
	}
	return len;
}

static int progress_cb(void *ud, curl_off_t dt, curl_off_t dn, curl_off_t ut, curl_off_t un)
{
	struct dest_net *n = ud;

	return n->should_stop && n->should_stop(n->stop_ctx) ? 1 : 0;
}

int dest_xfer_once(struct dest_net *n, struct dest_xfer *x)
{
	struct body_reader rd = { x->body, 0 };
	char errbuf[CURL_ERROR_SIZE] = "";
	CURL *e = n->curl;
	CURLcode cc;

	dest_xfer_free(x);
	if (n->should_stop && n->should_stop(n->stop_ctx)) {
		x->stopped = 1;
		x->error = strdup("stopped");
		return -1;
	}
	curl_easy_reset(e);   /* keeps the connection cache */
	curl_easy_setopt(e, CURLOPT_URL, x->url);
#if LIBCURL_VERSION_NUM >= 0x075500
	curl_easy_setopt(e, CURLOPT_PROTOCOLS_STR, "http,https");
#else
	curl_easy_setopt(e, CURLOPT_PROTOCOLS, (long)(CURLPROTO_HTTP | CURLPROTO_HTTPS));
#endif
	curl_easy_setopt(e, CURLOPT_NOSIGNAL, 1L);
	curl_easy_setopt(e, CURLOPT_FOLLOWLOCATION, 0L);
	curl_easy_setopt(e, CURLOPT_CONNECTTIMEOUT, n->connect_timeout);
	curl_easy_setopt(e, CURLOPT_LOW_SPEED_LIMIT, 1L);
	curl_easy_setopt(e, CURLOPT_LOW_SPEED_TIME, n->idle_timeout);
	curl_easy_setopt(e, CURLOPT_USERAGENT, n->user_agent);
	curl_easy_setopt(e, CURLOPT_ERRORBUFFER, errbuf);
	if (n->ca_file)
		curl_easy_setopt(e, CURLOPT_CAINFO, n->ca_file);
	if (n->insecure) {
		curl_easy_setopt(e, CURLOPT_SSL_VERIFYPEER, 0L);
		curl_easy_setopt(e, CURLOPT_SSL_VERIFYHOST, 0L);
	}
	curl_easy_setopt(e, CURLOPT_NOPROGRESS, 0L);
	curl_easy_setopt(e, CURLOPT_XFERINFOFUNCTION, progress_cb);
	curl_easy_setopt(e, CURLOPT_XFERINFODATA, n);
	curl_easy_setopt(e, CURLOPT_WRITEFUNCTION, write_cb);
	curl_easy_setopt(e, CURLOPT_WRITEDATA, x);
	curl_easy_setopt(e, CURLOPT_HEADERFUNCTION, header_cb);
	curl_easy_setopt(e, CURLOPT_HEADERDATA, x);
	if (x->headers)
		curl_easy_setopt(e, CURLOPT_HTTPHEADER, x->headers);
	if (x->aws_sigv4) {
		curl_easy_setopt(e, CURLOPT_AWS_SIGV4, x->aws_sigv4);
		curl_easy_setopt(e, CURLOPT_USERNAME, x->user ? x->user : "");
		curl_easy_setopt(e, CURLOPT_PASSWORD, x->password ? x->password : "");
	}
	if (x->body) {
		curl_easy_setopt(e, CURLOPT_READFUNCTION, read_cb);
		curl_easy_setopt(e, CURLOPT_READDATA, &rd);
		curl_easy_setopt(e, CURLOPT_SEEKFUNCTION, seek_cb);
		curl_easy_setopt(e, CURLOPT_SEEKDATA, &rd);
		if (!strcmp(x->method, "POST")) {
			curl_easy_setopt(e, CURLOPT_POST, 1L);
			curl_easy_setopt(e, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)x->body->len);
		} else {
			curl_easy_setopt(e, CURLOPT_UPLOAD, 1L);
			curl_easy_setopt(e, CURLOPT_INFILESIZE_LARGE, (curl_off_t)x->body->len);
			if (strcmp(x->method, "PUT"))
				curl_easy_setopt(e, CURLOPT_CUSTOMREQUEST, x->method);
		}
	} else if (!strcmp(x->method, "POST")) {
		curl_easy_setopt(e, CURLOPT_POST, 1L);
		curl_easy_setopt(e, CURLOPT_POSTFIELDS, "");
		curl_easy_setopt(e, CURLOPT_POSTFIELDSIZE, 0L);
	} else if (strcmp(x->method, "GET")) {
		curl_easy_setopt(e, CURLOPT_CUSTOMREQUEST, x->method);
	}
	cc = curl_easy_perform(e);
	curl_easy_setopt(e, CURLOPT_ERRORBUFFER, NULL);   /* errbuf goes out of scope */
	if (cc != CURLE_OK) {
		x->stopped = cc == CURLE_ABORTED_BY_CALLBACK;
		x->error = strdup(x->stopped ? "stopped" : errbuf[0] ? errbuf : curl_easy_strerror(cc));
		return -1;
	}
	curl_easy_getinfo(e, CURLINFO_RESPONSE_CODE, &x->status);
	return 0;
}

/* Waits before retry number `attempt` (1-based), in short slices so a stop
 * is noticed; -1 when stopped. */
static int backoff(struct dest_net *n, int attempt)
{
	long ms = BACKOFF_FIRST_MS;
	int i;

	for (i = 1; i < attempt && ms < BACKOFF_MAX_MS; i++)
		ms *= 2;
	if (ms > BACKOFF_MAX_MS)
		ms = BACKOFF_MAX_MS;
	while (ms > 0) {
		long slice = ms < 100 ? ms : 100;
		struct timespec ts = { 0, slice * 1000000L };

		if (n->should_stop && n->should_stop(n->stop_ctx))
			return -1;
		nanosleep(&ts, NULL);
		ms -= slice;
	}
	return 0;
}

int dest_xfer(struct dest_net *n, struct dest_xfer *x)
{
	int attempt, rc = -1;

	for (attempt = 0; attempt <= n->retries; attempt++) {
		if (attempt && backoff(n, attempt) < 0) {
			dest_xfer_free(x);
			x->stopped = 1;
			x->error = strdup("stopped");
			return -1;
		}
		rc = dest_xfer_once(n, x);
		if (x->stopped)
			return -1;
		if (rc == 0 && x->status < 500)
			return 0;
	}
	return rc;
}

void dest_uri_encode(struct buf *b, const char *s, int keep_slash)
{
	static const char hex[] = "0123456789ABCDEF";

	for (; *s; s++) {
		unsigned char c = (unsigned char)*s;

		if ((c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
		    c == '-' || c == '_' || c == '.' || c == '~' || (keep_slash && c == '/')) {
			buf_putc(b, (char)c);
		} else {
			buf_putc(b, '%');
			buf_putc(b, hex[c >> 4]);
			buf_putc(b, hex[c & 15]);
		}
	}
}

void dest_excerpt(struct buf *b, const char *s, size_t len, size_t max)
{
	size_t i;

	while (len && (*s == ' ' || *s == '\n' || *s == '\r' || *s == '\t')) {
		s++;
		len--;
	}
	while (len && (s[len - 1] == ' ' || s[len - 1] == '\n' || s[len - 1] == '\r' || s[len - 1] == '\t'))
		len--;
	for (i = 0; i < len && i < max; i++)
		buf_putc(b, (unsigned char)s[i] < 0x20 || s[i] == 0x7f ? ' ' : s[i]);
	if (len > max)
		buf_puts(b, "...");
}
