/* Destinations: dispatch to a backend (dest_fs.c folder, dest_none.c,
 * dest_s3.c, dest_http.c) plus what they share: name checks, content types,
 * the generic dest_put.  See dest.h and dest_int.h. */
#include "dest_int.h"
#include "buf.h"
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <errno.h>
#include <unistd.h>

#define SAFE_NAME_MAX 200   /* leaves room for ".part" and the '.' under NAME_MAX */

int dest_file_init(struct dest_file *f, struct dest *d, const char *name, char **err)
{
	f->d = d;
	f->size = 0;
	f->content_type = NULL;
	f->name = strdup(name);
	if (!f->name) {
		err_set(err, "out of memory");
		return -1;
	}
	return 0;
}

void dest_file_fini(struct dest_file *f)
{
	free(f->name);
	free(f->content_type);
	f->name = f->content_type = NULL;
}

static int ends_with(const char *s, const char *suffix)
{
	size_t n = strlen(s), m = strlen(suffix);

	return n >= m && !strcasecmp(s + n - m, suffix);
}

const char *dest_content_type(const char *name)
{
	if (ends_with(name, ".ndjson"))
		return "application/fhir+ndjson";
	if (ends_with(name, ".json"))
		return "application/json";
	if (ends_with(name, ".pdf"))
		return "application/pdf";
	if (ends_with(name, ".txt"))
		return "text/plain";
	return "application/octet-stream";
}

const char *dest_file_content_type(const struct dest_file *f)
{
	return f->content_type ? f->content_type : dest_content_type(f->name);
}

/* One segment as dest_safe_name() returns it. */
static int segment_ok(const char *s, size_t n)
{
	size_t i;

	if (!n || n > SAFE_NAME_MAX || s[0] == '.')
		return 0;
	for (i = 0; i < n; i++) {
		char c = s[i];

		if (!((c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
		      c == '.' || c == '_' || c == '-'))
			return 0;
	}
	return 1;
}

int dest_name_ok(const char *name)
{
	const char *p, *slash;
	int depth = 0;

	if (!name || !*name)
		return 0;
	for (p = name;; p = slash + 1) {
		slash = strchr(p, '/');
		if (!segment_ok(p, slash ? (size_t)(slash - p) : strlen(p)) || ++depth > DEST_MAX_DEPTH)
			return 0;
		if (!slash)
			return 1;
	}
}

static const struct dest_ops *ops_for(const char *spec)
{
	if (!strcmp(spec, "none"))
		return &dest_none_ops;
	if (!strncmp(spec, "s3://", 5))
		return &dest_s3_ops;
	if (!strncasecmp(spec, "http://", 7) || !strncasecmp(spec, "https://", 8))
		return &dest_http_ops;
	if (strstr(spec, "://"))
		return NULL;
	return &dest_fs_ops;
}

struct dest *dest_open_conf(const char *spec, const struct dest_conf *conf, char **err)
{
	static const struct dest_conf defaults;
	const struct dest_ops *ops;

	if (!spec || !*spec) {
		err_set(err, "empty destination");
		return NULL;
	}
	ops = ops_for(spec);
	if (!ops || !ops->open) {
		err_set(err, "unsupported destination \"%.200s\" (a folder path, \"none\", "
			     "s3://bucket/prefix or an http(s) URL)", spec);
		return NULL;
	}
	return ops->open(spec, conf ? conf : &defaults, err);
}

struct dest *dest_open(const char *spec, char **err)
{
	return dest_open_conf(spec, NULL, err);
}

void dest_close(struct dest *d)
{
	if (d)
		d->ops->close(d);
}

struct dest_file *dest_file_open(struct dest *d, const char *name, char **err)
{
	if (!dest_name_ok(name)) {
		err_set(err, "unsafe file name");
		return NULL;
	}
	return d->ops->file_open(d, name, err);
}

int dest_file_write(struct dest_file *f, const void *data, size_t len, char **err)
{
	if (!len)
		return 0;
	if (f->d->ops->file_write(f, data, len, err) < 0)
		return -1;
	f->size += (long long)len;
	return 0;
}

int dest_file_commit(struct dest_file *f, char **err)
{
	return f->d->ops->file_commit(f, err);
}

void dest_file_abort(struct dest_file *f)
{
	if (f)
		f->d->ops->file_abort(f);
}

void dest_file_suspend(struct dest_file *f)
{
	if (!f)
		return;
	if (f->d->ops->file_suspend)
		f->d->ops->file_suspend(f);
	else
		f->d->ops->file_abort(f);
}

int dest_remove_all(struct dest *d, char **err)
{
	return d->ops->remove_all(d, err);
}

int dest_put(struct dest *d, const char *name, const void *data, size_t len, const char *content_type, char **err)
{
	struct dest_file *f;

	if (!dest_name_ok(name)) {
		err_set(err, "unsafe file name");
		return -1;
	}
	if (d->ops->put)
		return d->ops->put(d, name, data, len, content_type, err);
	if (!(f = d->ops->file_open(d, name, err)))
		return -1;
	if (content_type && !(f->content_type = strdup(content_type))) {
		err_set(err, "out of memory");
		goto fail;
	}
	if (dest_file_write(f, data, len, err) < 0)
		goto fail;
	return d->ops->file_commit(f, err);
fail:
	d->ops->file_abort(f);
	return -1;
}

int dest_get(struct dest *d, const char *name, struct buf *out, char **err)
{
	if (err) {
		free(*err);
		*err = NULL;
	}
	if (!dest_name_ok(name)) {
		err_set(err, "unsafe file name");
		return -1;
	}
	if (!d->ops->get)
		return -1;   /* nothing can be read back: absent */
	return d->ops->get(d, name, out, err);
}

int dest_can_resume(struct dest *d)
{
	return d && d->ops->file_reopen != NULL;
}

struct dest_file *dest_file_reopen(struct dest *d, const char *name, long long *have, char **err)
{
	*have = 0;
	if (!dest_name_ok(name)) {
		err_set(err, "unsafe file name");
		return NULL;
	}
	if (!d->ops->file_reopen)
		return d->ops->file_open(d, name, err);
	return d->ops->file_reopen(d, name, have, err);
}

int dest_file_read_partial(struct dest *d, const char *name,
			   int (*fn)(void *ctx, const void *data, size_t len), void *ctx, char **err)
{
	if (!dest_name_ok(name)) {
		err_set(err, "unsafe file name");
		return -1;
	}
	if (!d->ops->read_partial)
		return 0;    /* never anything partial */
	return d->ops->read_partial(d, name, fn, ctx, err);
}

int dest_file_truncate(struct dest_file *f, long long len, char **err)
{
	if (len < 0 || len > f->size) {
		err_set(err, "cannot truncate %s to %lld bytes (has %lld)", f->name, len, f->size);
		return -1;
	}
	if (len == f->size)
		return 0;
	if (!f->d->ops->file_truncate) {
		err_set(err, "cannot truncate %s: the %s destination does not support it", f->name, f->d->ops->kind);
		return -1;
	}
	if (f->d->ops->file_truncate(f, len, err) < 0)
		return -1;
	f->size = len;
	return 0;
}

/* FNV-1a: only to keep truncated long names distinct, not for security. */
static uint64_t fnv1a(const char *s)
{
	uint64_t h = 1469598103934665603ULL;

	for (; *s; s++) {
		h ^= (unsigned char)*s;
		h *= 1099511628211ULL;
	}
	return h;
}

char *dest_safe_name(const char *s)
{
	size_t n, i;
	char *out;

	if (!s)
		s = "";
	n = strlen(s);
	out = malloc((n > SAFE_NAME_MAX ? SAFE_NAME_MAX : n) + 2);
	if (!out)
		return NULL;
	if (!n) {
		strcpy(out, "_");
		return out;
	}
	if (n > SAFE_NAME_MAX) {
		/* head + hash of the whole + tail, so the extension survives */
		char tmp[SAFE_NAME_MAX + 1];
		size_t tail = 40, head = SAFE_NAME_MAX - tail - 18;

		memcpy(tmp, s, head);
		snprintf(tmp + head, 19, "_%016llx_", (unsigned long long)fnv1a(s));
		memcpy(tmp + head + 18, s + n - tail, tail);
		tmp[SAFE_NAME_MAX] = '\0';
		memcpy(out, tmp, SAFE_NAME_MAX + 1);
		n = SAFE_NAME_MAX;
	} else {
		memcpy(out, s, n + 1);
	}
	for (i = 0; i < n; i++) {
		char c = out[i];

		if (!((c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
		      c == '.' || c == '_' || c == '-'))
			out[i] = '_';
	}
	for (i = 0; i < n && out[i] == '.'; i++)
		out[i] = '_';       /* no hidden files, no "." or ".." */
	return out;
}

int dest_write_all(int fd, const void *buf, size_t len)
{
	const char *p = buf;
	ssize_t n;

	while (len) {
		n = write(fd, p, len);
		if (n < 0) {
			if (errno == EINTR)
				continue;
			return -1;
		}
		p += n;
		len -= (size_t)n;
	}
	return 0;
}
