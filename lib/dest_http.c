/* http(s):// destination: one PUT (or POST) per file to <base>/<name>.
 *
 * A file is spooled to an unlinked temp file in $TMPDIR while it is written
 * and sent on commit, so memory stays flat whatever the size and a retry can
 * send the same bytes again.  2xx is success; 5xx and transport errors are
 * retried (dest_xfer); anything else fails the file with the status and a
 * short excerpt of the answer.  Messages show the URL without its query
 * string and never the configured headers: either may carry credentials. */
#include "dest_int.h"
#include "buf.h"
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

struct hd_dest {
	struct dest base;
	struct dest_net net;
	char *path;        /* base URL up to (not including) '?', no trailing '/' */
	char *query;       /* "?..." or "" */
	char *method;      /* PUT or POST */
	struct curl_slist *headers;   /* configured extra headers */
	int has_ctype;     /* the configuration sets Content-Type itself */
};

struct hd_file {
	struct dest_file base;
	int fd;            /* spool */
};

#define HD(d) ((struct hd_dest *)(d))
#define HDF(f) ((struct hd_file *)(f))

static void hd_close(struct dest *dd)
{
	struct hd_dest *d = HD(dd);

	dest_net_free(&d->net);
	curl_slist_free_all(d->headers);
	free(d->path);
	free(d->query);
	free(d->method);
	free(d);
}

static struct dest *hd_open(const char *spec, const struct dest_conf *c, char **err)
{
	struct hd_dest *d = calloc(1, sizeof *d);
	const char *q, *host, *const *h;
	size_t n;

	if (!d) {
		err_set(err, "out of memory");
		return NULL;
	}
	d->base.ops = &dest_http_ops;
	if (dest_net_init(&d->net, c, err) < 0)
		goto fail;
	if (strpbrk(spec, " \t\r\n#")) {
		err_set(err, "bad HTTP destination URL \"%.200s\"", spec);
		goto fail;
	}
	host = spec + (strncasecmp(spec, "https://", 8) ? 7 : 8);
	q = strchr(spec, '?');
	n = q ? (size_t)(q - spec) : strlen(spec);
	while (n && spec[n - 1] == '/')
		n--;
	if (!*host || *host == '/' || *host == '?') {
		err_set(err, "bad HTTP destination URL \"%.200s\": no host", spec);
		goto fail;
	}
	d->path = strndup(spec, n);
	d->query = strdup(q ? q : "");
	if (!c->http_method || !strcasecmp(c->http_method, "PUT"))
		d->method = strdup("PUT");
	else if (!strcasecmp(c->http_method, "POST"))
		d->method = strdup("POST");
	else {
		err_set(err, "HTTP destination method must be PUT or POST, not \"%.20s\"", c->http_method);
		goto fail;
	}
	for (h = c->http_headers; h && *h; h++) {
		const char *colon = strchr(*h, ':');
		struct curl_slist *l;

		if (!colon || colon == *h || strpbrk(*h, "\r\n")) {
			err_set(err, "bad HTTP destination header (want \"Name: value\")");
			goto fail;
		}
		if ((size_t)(colon - *h) == strlen("Content-Type") && !strncasecmp(*h, "Content-Type", 12))
			d->has_ctype = 1;
		if (!(l = curl_slist_append(d->headers, *h))) {
			err_set(err, "out of memory");
			goto fail;
		}
		d->headers = l;
	}
	if (!d->path || !d->query || !d->method) {
		err_set(err, "out of memory");
		goto fail;
	}
	return &d->base;
fail:
	hd_close(&d->base);
	return NULL;
}

/* Sends body to <base>/<name>; 0 on a 2xx answer, else -1 with *err. */
static int upload(struct hd_dest *d, const char *name, const char *content_type,
		  const struct dest_body *body, char **err)
{
	struct buf url = BUF_INIT, msg = BUF_INIT, line = BUF_INIT;
	struct curl_slist *h = NULL, *l;
	struct dest_xfer x = { 0 };
	int rc = -1;

	buf_puts(&url, d->path);
	buf_putc(&url, '/');
	dest_uri_encode(&url, name, 1);
	buf_printf(&msg, "HTTP %s %s/%s: ", d->method, d->path, name);   /* no query string */
	buf_puts(&url, d->query);
	if (!d->has_ctype) {
		buf_printf(&line, "Content-Type: %s", content_type);
		h = curl_slist_append(h, buf_str(&line));
	}
	h = curl_slist_append(h, "Expect:");   /* send at once; no 1 s wait for servers that ignore it */
	for (l = d->headers; l; l = l->next)
		h = curl_slist_append(h, l->data);
	x.method = d->method;
	x.url = buf_str(&url);
	x.headers = h;
	x.body = body;
	x.max_resp = 4096;
	if (dest_xfer(&d->net, &x) < 0) {
		buf_puts(&msg, x.error ? x.error : "transfer failed");
		goto fail;
	}
	if (x.status < 200 || x.status > 299) {
		buf_printf(&msg, "status %ld", x.status);
		if (x.resp.len) {
			buf_puts(&msg, ": ");
			dest_excerpt(&msg, x.resp.data, x.resp.len, 200);
		}
		goto fail;
	}
	rc = 0;
	goto out;
fail:
	free(*err);
	*err = buf_detach(&msg);
out:
	curl_slist_free_all(h);
	dest_xfer_free(&x);
	buf_free(&url);
	buf_free(&msg);
	buf_free(&line);
	return rc;
}

static void hd_file_free(struct hd_file *f)
{
	if (f->fd >= 0)
		close(f->fd);
	dest_file_fini(&f->base);
	free(f);
}

static struct dest_file *hd_file_open(struct dest *dd, const char *name, char **err)
{
	struct hd_file *f = calloc(1, sizeof *f);
	const char *tmp = getenv("TMPDIR");
	char *path = NULL;

	if (!f) {
		err_set(err, "out of memory");
		return NULL;
	}
	f->fd = -1;
	if (dest_file_init(&f->base, dd, name, err) < 0)
		goto fail;
	if (asprintf(&path, "%s/bulk-data-upload-XXXXXX", tmp && *tmp ? tmp : "/tmp") < 0) {
		path = NULL;
		err_set(err, "out of memory");
		goto fail;
	}
	f->fd = mkostemp(path, O_CLOEXEC);
	if (f->fd < 0) {
		err_set(err, "cannot create a spool file in %s: %s", tmp && *tmp ? tmp : "/tmp", strerror(errno));
		goto fail;
	}
	unlink(path);   /* gone with the fd, whatever happens to us */
	free(path);
	return &f->base;
fail:
	free(path);
	hd_file_free(f);
	return NULL;
}

static int hd_file_write(struct dest_file *ff, const void *data, size_t len, char **err)
{
	if (dest_write_all(HDF(ff)->fd, data, len) < 0) {
		err_set(err, "cannot spool %s for upload: %s", ff->name, strerror(errno));
		return -1;
	}
	return 0;
}

static int hd_file_commit(struct dest_file *ff, char **err)
{
	struct hd_file *f = HDF(ff);
	struct dest_body body = { NULL, f->fd, ff->size };
	int rc = upload(HD(ff->d), ff->name, dest_file_content_type(ff), &body, err);

	hd_file_free(f);
	return rc;
}

static void hd_file_abort(struct dest_file *ff)
{
	hd_file_free(HDF(ff));
}

static int hd_put(struct dest *dd, const char *name, const void *data, size_t len,
		  const char *content_type, char **err)
{
	struct dest_body body = { data, -1, (long long)len };

	return upload(HD(dd), name, content_type ? content_type : dest_content_type(name), &body, err);
}

/* What the receiver got is its own: nothing to remove from here. */
static int hd_remove_all(struct dest *dd, char **err)
{
	return 0;
}

const struct dest_ops dest_http_ops = {
	.kind = "http",
	.open = hd_open,
	.close = hd_close,
	.file_open = hd_file_open,
	.file_write = hd_file_write,
	.file_commit = hd_file_commit,
	.file_abort = hd_file_abort,
	.remove_all = hd_remove_all,
	.put = hd_put,
};
