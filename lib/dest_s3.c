/* s3://bucket/prefix destination: AWS SigV4 by libcurl's built-in signer.
 *
 * libcurl (7.88 as well as 8.x) signs every header we pass and takes the
 * payload hash from our x-amz-content-sha256 header, so each request sends
 * the real SHA-256 of its body (S3 then checks the bytes too).  It uses the
 * URL's path and query string as given for the canonical request, so URLs
 * are built already canonical: path segments RFC 3986-encoded, query
 * parameters sorted and "name=" for empty values (?uploads=).
 *
 * A file is buffered in memory up to one part.  When the buffer fills, a
 * multipart upload is created and the part sent at once; commit sends the
 * rest and completes the upload (or does one PutObject if the file never
 * filled a part).  Any failure is sticky: the file is failed, later writes
 * and the commit return the same error, abort releases the upload.
 * Credentials are never put in messages. */
#include "dest_int.h"
#include "buf.h"
#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <openssl/evp.h>

#define MIN_PART (5L << 20)
#define DEFAULT_PART (8L << 20)
#define MAX_PARTS 10000
#define LIST_MAX (16L << 20)

struct s3_dest {
	struct dest base;
	struct dest_net net;
	char *bucket, *prefix;      /* prefix without leading/trailing '/', may be "" */
	char *base_url;             /* bucket URL without trailing '/' */
	int path_style;
	char *region, *sigv4, *access, *secret, *token;
	long part_size;
};

struct s3_file {
	struct dest_file base;
	char *key;
	char *buf;                  /* current part, up to part_size */
	size_t len, cap;
	char *upload_id;            /* multipart upload in progress */
	char **etags;
	int nparts;
	char *failed;               /* sticky error */
};

#define S3(d) ((struct s3_dest *)(d))
#define S3F(f) ((struct s3_file *)(f))

static const char EMPTY_SHA256[] = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";

static void sha256_hex(const void *p, size_t len, char out[65])
{
	unsigned char md[32];
	unsigned int mdlen = 0;
	int i;

	EVP_Digest(p, len, md, &mdlen, EVP_sha256(), NULL);
	for (i = 0; i < 32; i++)
		snprintf(out + 2 * i, 3, "%02x", md[i]);
}

/* ---- tiny XML reading: S3 answers are flat and machine-made ---- */

/* Unescaped text of the first <tag>...</tag> at or after *pos, malloc'd;
 * *pos moves past it.  NULL when absent. */
static char *xml_take(const char *xml, const char **pos, const char *tag)
{
	char open[64], close[64];
	const char *s, *e, *p;
	struct buf b = BUF_INIT;

	snprintf(open, sizeof open, "<%s>", tag);
	snprintf(close, sizeof close, "</%s>", tag);
	if (!xml || !(s = strstr(pos && *pos ? *pos : xml, open)))
		return NULL;
	s += strlen(open);
	if (!(e = strstr(s, close)))
		return NULL;
	if (pos)
		*pos = e + strlen(close);
	for (p = s; p < e; p++) {
		static const struct { const char *ent; char c; } ents[] = {
			{ "&amp;", '&' }, { "&lt;", '<' }, { "&gt;", '>' }, { "&quot;", '"' }, { "&apos;", '\'' },
		};
		size_t i;

		if (*p != '&') {
			buf_putc(&b, *p);
			continue;
		}
		for (i = 0; i < sizeof ents / sizeof ents[0]; i++)
			if (!strncmp(p, ents[i].ent, strlen(ents[i].ent)))
				break;
		if (i < sizeof ents / sizeof ents[0]) {
			buf_putc(&b, ents[i].c);
			p += strlen(ents[i].ent) - 1;
		} else if (p[1] == '#') {
			char *end;
			long v = p[2] == 'x' ? strtol(p + 3, &end, 16) : strtol(p + 2, &end, 10);

			if (*end == ';' && v > 0 && v < 0x80) {
				buf_putc(&b, (char)v);
				p = end;
			} else {
				buf_putc(&b, '&');
			}
		} else {
			buf_putc(&b, '&');
		}
	}
	return buf_detach(&b);
}

static char *xml_get(const char *xml, const char *tag)
{
	return xml_take(xml, NULL, tag);
}

/* "S3 <what> s3://bucket/key: HTTP 403 AccessDenied: message" (or the
 * transport error), into *err. */
static void s3_fail(char **err, struct s3_dest *d, const char *what, const char *key, const struct dest_xfer *x)
{
	struct buf b = BUF_INIT;
	char *code = NULL, *msg = NULL;

	buf_printf(&b, "S3 %s s3://%s/%s: ", what, d->bucket, key ? key : "");
	if (!x->status) {
		buf_puts(&b, x->error ? x->error : "transfer failed");
	} else {
		const char *xml = buf_str(&x->resp);

		code = xml_get(xml, "Code");
		msg = xml_get(xml, "Message");
		buf_printf(&b, "HTTP %ld", x->status);
		if (code)
			buf_printf(&b, " %s", code);
		if (msg) {
			buf_puts(&b, ": ");
			dest_excerpt(&b, msg, strlen(msg), 200);
		} else if (!code && x->resp.len) {
			buf_puts(&b, ": ");
			dest_excerpt(&b, x->resp.data, x->resp.len, 200);
		}
	}
	free(*err);
	*err = buf_detach(&b);
	free(code);
	free(msg);
}

/* ---- requests ---- */

/* URL of an object (key) or of the bucket (key NULL) with an optional
 * canonical query string. */
static char *s3_url(struct s3_dest *d, const char *key, const char *query)
{
	struct buf b = BUF_INIT;

	buf_puts(&b, d->base_url);
	if (key) {
		buf_putc(&b, '/');
		dest_uri_encode(&b, key, 1);
	} else if (!d->path_style) {
		buf_putc(&b, '/');
	}
	if (query)
		buf_printf(&b, "?%s", query);
	return buf_detach(&b);
}

/* Sends one signed request with retries; 0 when a response arrived (the
 * caller checks x->status), -1 on transport failure.  x->method/url/body
 * set by the caller. */
static int s3_send(struct s3_dest *d, struct dest_xfer *x, const char *content_type)
{
	struct curl_slist *h = NULL;
	struct buf line = BUF_INIT;
	char hash[65];
	int rc;

	if (x->body && x->body->len)
		sha256_hex(x->body->mem, (size_t)x->body->len, hash);
	else
		memcpy(hash, EMPTY_SHA256, sizeof hash);
	buf_printf(&line, "x-amz-content-sha256: %s", hash);
	h = curl_slist_append(h, buf_str(&line));
	if (content_type) {
		buf_reset(&line);
		buf_printf(&line, "Content-Type: %s", content_type);
		h = curl_slist_append(h, buf_str(&line));
	}
	if (d->token) {
		buf_reset(&line);
		buf_printf(&line, "x-amz-security-token: %s", d->token);
		h = curl_slist_append(h, buf_str(&line));
	}
	buf_free(&line);   /* held the token: freed at once */
	x->headers = h;
	x->aws_sigv4 = d->sigv4;
	x->user = d->access;
	x->password = d->secret;
	rc = dest_xfer(&d->net, x);
	curl_slist_free_all(h);
	x->headers = NULL;
	return rc;
}

static int ok2xx(const struct dest_xfer *x)
{
	return x->status >= 200 && x->status < 300;
}

/* PUT of a whole object from memory. */
static int s3_put_object(struct s3_dest *d, const char *key, const void *data, size_t len,
			 const char *content_type, char **err)
{
	struct dest_body body = { data, -1, (long long)len };
	struct dest_xfer x = { 0 };
	int rc = -1;

	x.method = "PUT";
	x.url = s3_url(d, key, NULL);
	x.body = &body;
	if (!x.url) {
		err_set(err, "out of memory");
		return -1;
	}
	if (s3_send(d, &x, content_type) < 0 || !ok2xx(&x)) {
		s3_fail(err, d, "PutObject", key, &x);
		goto out;
	}
	rc = 0;
out:
	free((char *)x.url);
	dest_xfer_free(&x);
	return rc;
}

/* ---- open / close ---- */

static void s3_close(struct dest *dd)
{
	struct s3_dest *d = S3(dd);

	dest_net_free(&d->net);
	free(d->bucket);
	free(d->prefix);
	free(d->base_url);
	free(d->region);
	free(d->sigv4);
	free(d->access);
	free(d->secret);
	free(d->token);
	free(d);
}

static const char *first_env(const char *a, const char *b)
{
	const char *v = getenv(a);

	if ((!v || !*v) && b)
		v = getenv(b);
	return v && *v ? v : NULL;
}

static int bucket_ok(const char *b, size_t n)
{
	size_t i;

	if (n < 1 || n > 63)
		return 0;
	for (i = 0; i < n; i++)
		if (!(isalnum((unsigned char)b[i]) || b[i] == '.' || b[i] == '-' || b[i] == '_'))
			return 0;
	return 1;
}

static struct dest *s3_open(const char *spec, const struct dest_conf *c, char **err)
{
	struct s3_dest *d = calloc(1, sizeof *d);
	const char *b = spec + 5, *slash, *p, *region, *endpoint, *access, *secret, *token;
	struct buf pre = BUF_INIT;
	size_t blen;

	if (!d) {
		err_set(err, "out of memory");
		return NULL;
	}
	d->base.ops = &dest_s3_ops;
	if (dest_net_init(&d->net, c, err) < 0)
		goto fail;

	/* bucket and prefix: "//" collapsed, no leading/trailing '/' */
	slash = strchr(b, '/');
	blen = slash ? (size_t)(slash - b) : strlen(b);
	if (!bucket_ok(b, blen)) {
		err_set(err, "bad S3 destination \"%.200s\": expected s3://bucket/prefix", spec);
		goto fail;
	}
	d->bucket = strndup(b, blen);
	for (p = slash ? slash : ""; *p; p++) {
		if (*p == '/' && (!pre.len || pre.data[pre.len - 1] == '/'))
			continue;
		if ((unsigned char)*p < 0x20 || *p == '?' || *p == '#' || *p == '\\') {
			buf_free(&pre);
			err_set(err, "bad S3 prefix in \"%.200s\"", spec);
			goto fail;
		}
		buf_putc(&pre, *p);
	}
	if (pre.len && pre.data[pre.len - 1] == '/')
		pre.data[--pre.len] = '\0';
	d->prefix = buf_detach(&pre);

	region = c->s3_region ? c->s3_region : first_env("AWS_REGION", "AWS_DEFAULT_REGION");
	if (!region)
		region = "us-east-1";
	if (!*region || strspn(region, "abcdefghijklmnopqrstuvwxyz0123456789-") != strlen(region) || strlen(region) > 40) {
		err_set(err, "bad S3 region \"%.60s\"", region);
		goto fail;
	}
	d->region = strdup(region);
	if (asprintf(&d->sigv4, "aws:amz:%s:s3", region) < 0)
		d->sigv4 = NULL;

	access = c->s3_access_key ? c->s3_access_key : first_env("AWS_ACCESS_KEY_ID", NULL);
	secret = c->s3_secret_key ? c->s3_secret_key : first_env("AWS_SECRET_ACCESS_KEY", NULL);
	token = c->s3_session_token ? c->s3_session_token : first_env("AWS_SESSION_TOKEN", NULL);
	if (!access || !secret) {
		err_set(err, "S3 destination s3://%s: no credentials (set AWS_ACCESS_KEY_ID and "
			     "AWS_SECRET_ACCESS_KEY or configure them)", d->bucket);
		goto fail;
	}
	if (strpbrk(access, ":\r\n") || strpbrk(token ? token : "", "\r\n")) {
		err_set(err, "S3 destination s3://%s: malformed credentials", d->bucket);
		goto fail;
	}
	d->access = strdup(access);
	d->secret = strdup(secret);
	d->token = token && *token ? strdup(token) : NULL;

	d->part_size = c->s3_part_size ? c->s3_part_size : DEFAULT_PART;
	if (d->part_size < MIN_PART) {
		err_set(err, "S3 part size %ld is below the S3 minimum of 5 MiB", d->part_size);
		goto fail;
	}

	endpoint = c->s3_endpoint ? c->s3_endpoint : first_env("AWS_ENDPOINT_URL_S3", "AWS_ENDPOINT_URL");
	if (endpoint) {
		size_t n = strlen(endpoint);

		if (strncasecmp(endpoint, "http://", 7) && strncasecmp(endpoint, "https://", 8)) {
			err_set(err, "bad S3 endpoint \"%.200s\": expected an http(s) URL", endpoint);
			goto fail;
		}
		while (n && endpoint[n - 1] == '/')
			n--;
		d->path_style = 1;
		if (asprintf(&d->base_url, "%.*s/%s", (int)n, endpoint, d->bucket) < 0)
			d->base_url = NULL;
	} else if (strchr(d->bucket, '.')) {
		/* dots break the wildcard certificate of virtual-hosted names */
		d->path_style = 1;
		if (asprintf(&d->base_url, "https://s3.%s.amazonaws.com/%s", region, d->bucket) < 0)
			d->base_url = NULL;
	} else if (asprintf(&d->base_url, "https://%s.s3.%s.amazonaws.com", d->bucket, region) < 0) {
		d->base_url = NULL;
	}
	if (!d->bucket || !d->region || !d->sigv4 || !d->access || !d->secret || (token && *token && !d->token) ||
	    !d->base_url) {
		err_set(err, "out of memory");
		goto fail;
	}
	return &d->base;
fail:
	s3_close(&d->base);
	return NULL;
}

/* ---- files ---- */

static char *make_key(struct s3_dest *d, const char *name)
{
	char *k;

	if (asprintf(&k, "%s%s%s", d->prefix, *d->prefix ? "/" : "", name) < 0)
		return NULL;
	return k;
}

static void s3_file_free(struct s3_file *f)
{
	int i;

	for (i = 0; i < f->nparts; i++)
		free(f->etags[i]);
	free(f->etags);
	free(f->upload_id);
	free(f->buf);
	free(f->key);
	free(f->failed);
	dest_file_fini(&f->base);
	free(f);
}

static struct dest_file *s3_file_open(struct dest *dd, const char *name, char **err)
{
	struct s3_file *f = calloc(1, sizeof *f);

	if (!f) {
		err_set(err, "out of memory");
		return NULL;
	}
	if (dest_file_init(&f->base, dd, name, err) < 0)
		goto fail;
	if (!(f->key = make_key(S3(dd), name))) {
		err_set(err, "out of memory");
		goto fail;
	}
	return &f->base;
fail:
	s3_file_free(f);
	return NULL;
}

/* Marks the file failed with the message in *err (copied). */
static int file_failed(struct s3_file *f, char **err)
{
	if (!f->failed)
		f->failed = strdup(err && *err ? *err : "S3 upload failed");
	return -1;
}

static int create_upload(struct s3_dest *d, struct s3_file *f, char **err)
{
	struct dest_xfer x = { 0 };
	int rc = -1;

	x.method = "POST";
	x.url = s3_url(d, f->key, "uploads=");
	if (!x.url) {
		err_set(err, "out of memory");
		return -1;
	}
	if (s3_send(d, &x, dest_file_content_type(&f->base)) < 0 || !ok2xx(&x)) {
		s3_fail(err, d, "CreateMultipartUpload", f->key, &x);
		goto out;
	}
	if (!(f->upload_id = xml_get(buf_str(&x.resp), "UploadId")) || !*f->upload_id) {
		free(f->upload_id);
		f->upload_id = NULL;
		err_set(err, "S3 CreateMultipartUpload s3://%s/%s: no UploadId in the answer", d->bucket, f->key);
		goto out;
	}
	rc = 0;
out:
	free((char *)x.url);
	dest_xfer_free(&x);
	return rc;
}

static char *part_query(struct s3_file *f, int part)
{
	struct buf q = BUF_INIT;

	if (part)
		buf_printf(&q, "partNumber=%d&", part);   /* sorted: 'p' < 'u' */
	buf_puts(&q, "uploadId=");
	dest_uri_encode(&q, f->upload_id, 0);
	return buf_detach(&q);
}

/* Sends the buffered bytes as the next part. */
static int upload_part(struct s3_dest *d, struct s3_file *f, char **err)
{
	struct dest_body body = { f->buf, -1, (long long)f->len };
	struct dest_xfer x = { 0 };
	char *q = NULL, **grown;
	int rc = -1;

	if (f->nparts >= MAX_PARTS) {
		err_set(err, "S3 UploadPart s3://%s/%s: more than %d parts (raise the part size)",
			     d->bucket, f->key, MAX_PARTS);
		return -1;
	}
	if (!(grown = realloc(f->etags, sizeof *f->etags * (size_t)(f->nparts + 1)))) {
		err_set(err, "out of memory");
		return -1;
	}
	f->etags = grown;
	q = part_query(f, f->nparts + 1);
	x.method = "PUT";
	x.url = s3_url(d, f->key, q);
	x.body = &body;
	if (s3_send(d, &x, NULL) < 0 || !ok2xx(&x)) {
		s3_fail(err, d, "UploadPart", f->key, &x);
		goto out;
	}
	if (!x.etag || !*x.etag) {
		err_set(err, "S3 UploadPart s3://%s/%s: no ETag in the answer", d->bucket, f->key);
		goto out;
	}
	f->etags[f->nparts++] = x.etag;
	x.etag = NULL;
	f->len = 0;
	rc = 0;
out:
	free(q);
	free((char *)x.url);
	dest_xfer_free(&x);
	return rc;
}

static void xml_escape(struct buf *b, const char *s)
{
	for (; *s; s++) {
		switch (*s) {
		case '&': buf_puts(b, "&amp;"); break;
		case '<': buf_puts(b, "&lt;"); break;
		case '>': buf_puts(b, "&gt;"); break;
		case '"': buf_puts(b, "&quot;"); break;
		default: buf_putc(b, *s);
		}
	}
}

static int complete_upload(struct s3_dest *d, struct s3_file *f, char **err)
{
	struct buf xml = BUF_INIT;
	struct dest_body body = { NULL, -1, 0 };
	struct dest_xfer x = { 0 };
	char *q = part_query(f, 0), *code = NULL;
	int i, rc = -1;

	buf_puts(&xml, "<CompleteMultipartUpload xmlns=\"http://s3.amazonaws.com/doc/2006-03-01/\">");
	for (i = 0; i < f->nparts; i++) {
		buf_printf(&xml, "<Part><PartNumber>%d</PartNumber><ETag>", i + 1);
		xml_escape(&xml, f->etags[i]);
		buf_puts(&xml, "</ETag></Part>");
	}
	buf_puts(&xml, "</CompleteMultipartUpload>");
	body.mem = xml.data;
	body.len = (long long)xml.len;
	x.method = "POST";
	x.url = s3_url(d, f->key, q);
	x.body = &body;
	if (s3_send(d, &x, "application/xml") < 0 || !ok2xx(&x)) {
		s3_fail(err, d, "CompleteMultipartUpload", f->key, &x);
		goto out;
	}
	/* S3 may report a failure inside a 200 answer */
	if ((code = xml_get(buf_str(&x.resp), "Code")) && strstr(buf_str(&x.resp), "<Error>")) {
		s3_fail(err, d, "CompleteMultipartUpload", f->key, &x);
		goto out;
	}
	rc = 0;
out:
	free(code);
	free(q);
	free((char *)x.url);
	dest_xfer_free(&x);
	buf_free(&xml);
	return rc;
}

/* Best effort: S3 lifecycle rules catch what this misses. */
static void abort_upload(struct s3_dest *d, struct s3_file *f)
{
	struct dest_xfer x = { 0 };
	char *q;

	if (!f->upload_id)
		return;
	q = part_query(f, 0);
	x.method = "DELETE";
	x.url = s3_url(d, f->key, q);
	if (x.url)
		s3_send(d, &x, NULL);
	free(q);
	free((char *)x.url);
	dest_xfer_free(&x);
	free(f->upload_id);
	f->upload_id = NULL;
}

static int s3_file_write(struct dest_file *ff, const void *data, size_t len, char **err)
{
	struct s3_file *f = S3F(ff);
	struct s3_dest *d = S3(ff->d);
	const char *p = data;

	if (f->failed) {
		err_set(err, "%s", f->failed);
		return -1;
	}
	while (len) {
		size_t room, n;

		if (f->len == f->cap) {
			/* grow towards one part; never beyond */
			size_t cap = f->cap ? f->cap * 2 : 64 * 1024;
			char *nb;

			if (cap > (size_t)d->part_size)
				cap = (size_t)d->part_size;
			if (!(nb = realloc(f->buf, cap))) {
				err_set(err, "out of memory");
				return file_failed(f, err);
			}
			f->buf = nb;
			f->cap = cap;
		}
		room = f->cap - f->len;
		n = len < room ? len : room;
		memcpy(f->buf + f->len, p, n);
		f->len += n;
		p += n;
		len -= n;
		if (f->len == (size_t)d->part_size) {
			if (!f->upload_id && create_upload(d, f, err) < 0)
				return file_failed(f, err);
			if (upload_part(d, f, err) < 0)
				return file_failed(f, err);
		}
	}
	return 0;
}

static int s3_file_commit(struct dest_file *ff, char **err)
{
	struct s3_file *f = S3F(ff);
	struct s3_dest *d = S3(ff->d);
	int rc = -1;

	if (f->failed) {
		err_set(err, "%s", f->failed);
		goto out;
	}
	if (!f->upload_id) {
		rc = s3_put_object(d, f->key, f->buf, f->len, dest_file_content_type(ff), err);
		goto out;
	}
	if (f->len && upload_part(d, f, err) < 0)
		goto out;
	rc = complete_upload(d, f, err);
	if (rc == 0) {
		free(f->upload_id);
		f->upload_id = NULL;
	}
out:
	abort_upload(d, f);   /* only when still in progress, i.e. failed */
	s3_file_free(f);
	return rc;
}

static void s3_file_abort(struct dest_file *ff)
{
	struct s3_file *f = S3F(ff);

	abort_upload(S3(ff->d), f);
	s3_file_free(f);
}

static int s3_put(struct dest *dd, const char *name, const void *data, size_t len,
		  const char *content_type, char **err)
{
	struct s3_dest *d = S3(dd);
	char *key = make_key(d, name);
	int rc;

	if (!key) {
		err_set(err, "out of memory");
		return -1;
	}
	rc = s3_put_object(d, key, data, len, content_type ? content_type : dest_content_type(name), err);
	free(key);
	return rc;
}

static int s3_get(struct dest *dd, const char *name, struct buf *out, char **err)
{
	struct s3_dest *d = S3(dd);
	struct dest_xfer x = { 0 };
	char *key = make_key(d, name);
	int rc = -1;

	if (!key) {
		err_set(err, "out of memory");
		return -1;
	}
	x.method = "GET";
	x.url = s3_url(d, key, NULL);
	x.max_resp = DEST_GET_MAX + 1;
	if (s3_send(d, &x, NULL) < 0) {
		s3_fail(err, d, "GetObject", key, &x);
		goto out;
	}
	if (x.status == 404)
		goto out;   /* absent: err stays NULL */
	if (!ok2xx(&x)) {
		s3_fail(err, d, "GetObject", key, &x);
		goto out;
	}
	if (x.resp_truncated || x.resp.len > (size_t)DEST_GET_MAX) {
		err_set(err, "S3 GetObject s3://%s/%s: larger than %ld bytes", d->bucket, key, DEST_GET_MAX);
		goto out;
	}
	buf_append(out, x.resp.data ? x.resp.data : "", x.resp.len);
	rc = 0;
out:
	free(key);
	free((char *)x.url);
	dest_xfer_free(&x);
	return rc;
}

static int delete_key(struct s3_dest *d, const char *key, char **err)
{
	struct dest_xfer x = { 0 };
	int rc = -1;

	x.method = "DELETE";
	x.url = s3_url(d, key, NULL);
	if (s3_send(d, &x, NULL) < 0 || (!ok2xx(&x) && x.status != 404)) {
		s3_fail(err, d, "DeleteObject", key, &x);
		goto out;
	}
	rc = 0;
out:
	free((char *)x.url);
	dest_xfer_free(&x);
	return rc;
}

/* ListObjectsV2 over prefix/ page by page, deleting each key listed. */
static int s3_remove_all(struct dest *dd, char **err)
{
	struct s3_dest *d = S3(dd);
	struct buf q = BUF_INIT, pre = BUF_INIT;
	struct dest_xfer x = { 0 };
	char *token = NULL, *key, *trunc = NULL, *url = NULL;
	const char *pos;
	int rc = -1;

	buf_puts(&pre, d->prefix);
	if (pre.len)
		buf_putc(&pre, '/');
	for (;;) {
		buf_reset(&q);
		if (token) {
			buf_puts(&q, "continuation-token=");
			dest_uri_encode(&q, token, 0);
			buf_putc(&q, '&');
		}
		buf_puts(&q, "list-type=2&prefix=");
		dest_uri_encode(&q, buf_str(&pre), 0);
		free(url);
		url = s3_url(d, NULL, buf_str(&q));
		x.method = "GET";
		x.url = url;
		x.max_resp = LIST_MAX;
		if (s3_send(d, &x, NULL) < 0 || !ok2xx(&x)) {
			s3_fail(err, d, "ListObjectsV2", buf_str(&pre), &x);
			goto out;
		}
		if (x.resp_truncated) {
			err_set(err, "S3 ListObjectsV2 s3://%s/%s: answer too large", d->bucket, buf_str(&pre));
			goto out;
		}
		/* the answer is kept while its keys are deleted with the same handle */
		{
			struct buf page = x.resp;

			x.resp = (struct buf)BUF_INIT;
			free(token);
			token = xml_get(buf_str(&page), "NextContinuationToken");
			free(trunc);
			trunc = xml_get(buf_str(&page), "IsTruncated");
			pos = NULL;
			while ((key = xml_take(buf_str(&page), &pos, "Key"))) {
				int r = delete_key(d, key, err);

				free(key);
				if (r < 0) {
					buf_free(&page);
					goto out;
				}
			}
			buf_free(&page);
		}
		if (!trunc || strcmp(trunc, "true") || !token || !*token)
			break;
	}
	rc = 0;
out:
	free(url);
	free(token);
	free(trunc);
	dest_xfer_free(&x);
	buf_free(&q);
	buf_free(&pre);
	return rc;
}

const struct dest_ops dest_s3_ops = {
	.kind = "s3",
	.open = s3_open,
	.close = s3_close,
	.file_open = s3_file_open,
	.file_write = s3_file_write,
	.file_commit = s3_file_commit,
	.file_abort = s3_file_abort,
	.remove_all = s3_remove_all,
	.put = s3_put,
	.get = s3_get,
};
