/* Destinations: a filesystem folder, or "none" (discard).  See dest.h.
 *
 * Filesystem files are written to ".<name>.part" in the folder (opened with
 * O_EXCL|O_NOFOLLOW relative to the folder's fd, so nothing can redirect the
 * write), fsync'd, renamed to <name> and the folder fsync'd: after a crash a
 * final name always holds a complete file.  Safe names never start with '.',
 * so a part file cannot collide with a final one. */
#include "dest.h"
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <sys/stat.h>

#define SAFE_NAME_MAX 200   /* leaves room for ".part" and the '.' under NAME_MAX */

enum dest_kind { DEST_DIR, DEST_NONE };

struct dest {
	enum dest_kind kind;
	char *dir;
	int dirfd;
};

struct dest_file {
	struct dest *d;
	char *name;
	char *part;
	int fd;
};

static void set_err(char **err, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static void set_err(char **err, const char *fmt, ...)
{
	va_list ap;

	if (!err)
		return;
	free(*err);
	*err = NULL;
	va_start(ap, fmt);
	if (vasprintf(err, fmt, ap) < 0)
		*err = NULL;
	va_end(ap);
}

/* mkdir -p with mode 0750 for the parts we create. */
static int mkdirs(const char *path)
{
	char *p = strdup(path), *s;
	int rc = -1;

	if (!p)
		return -1;
	for (s = p + 1; *s; s++) {
		if (*s != '/')
			continue;
		*s = '\0';
		if (mkdir(p, 0750) < 0 && errno != EEXIST)
			goto out;
		*s = '/';
	}
	if (mkdir(p, 0750) < 0 && errno != EEXIST)
		goto out;
	rc = 0;
out:
	free(p);
	return rc;
}

struct dest *dest_open(const char *spec, char **err)
{
	struct dest *d = NULL;

	if (!spec || !*spec) {
		set_err(err, "empty destination");
		return NULL;
	}
	d = calloc(1, sizeof *d);
	if (!d) {
		set_err(err, "out of memory");
		return NULL;
	}
	d->dirfd = -1;
	if (!strcmp(spec, "none")) {
		d->kind = DEST_NONE;
		return d;
	}
	if (strstr(spec, "://")) {
		set_err(err, "unsupported destination \"%s\" (only a folder path or \"none\")", spec);
		goto fail;
	}
	d->kind = DEST_DIR;
	d->dir = strdup(spec);
	if (!d->dir) {
		set_err(err, "out of memory");
		goto fail;
	}
	if (mkdirs(spec) < 0) {
		set_err(err, "cannot create folder %s: %s", spec, strerror(errno));
		goto fail;
	}
	d->dirfd = open(spec, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (d->dirfd < 0) {
		set_err(err, "cannot open folder %s: %s", spec, strerror(errno));
		goto fail;
	}
	return d;
fail:
	dest_close(d);
	return NULL;
}

void dest_close(struct dest *d)
{
	if (!d)
		return;
	if (d->dirfd >= 0)
		close(d->dirfd);
	free(d->dir);
	free(d);
}

/* What dest_safe_name() can return: guards against callers that skip it. */
static int name_is_safe(const char *name)
{
	const char *p;

	if (!name || !*name || name[0] == '.' || strlen(name) > SAFE_NAME_MAX)
		return 0;
	for (p = name; *p; p++)
		if (!((*p >= 'A' && *p <= 'Z') || (*p >= 'a' && *p <= 'z') || (*p >= '0' && *p <= '9') ||
		      *p == '.' || *p == '_' || *p == '-'))
			return 0;
	return 1;
}

struct dest_file *dest_file_open(struct dest *d, const char *name, char **err)
{
	struct dest_file *f;

	if (!name_is_safe(name)) {
		set_err(err, "unsafe file name");
		return NULL;
	}
	f = calloc(1, sizeof *f);
	if (!f || !(f->name = strdup(name))) {
		set_err(err, "out of memory");
		goto fail;
	}
	f->d = d;
	f->fd = -1;
	if (d->kind == DEST_NONE)
		return f;
	if (asprintf(&f->part, ".%s.part", name) < 0) {
		f->part = NULL;
		set_err(err, "out of memory");
		goto fail;
	}
	f->fd = openat(d->dirfd, f->part, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0640);
	if (f->fd < 0 && errno == EEXIST) {
		/* left over by a crashed run: never complete, safe to replace */
		unlinkat(d->dirfd, f->part, 0);
		f->fd = openat(d->dirfd, f->part, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0640);
	}
	if (f->fd < 0) {
		set_err(err, "cannot create %s/%s: %s", d->dir, f->part, strerror(errno));
		goto fail;
	}
	return f;
fail:
	if (f) {
		free(f->name);
		free(f->part);
		free(f);
	}
	return NULL;
}

int dest_file_write(struct dest_file *f, const void *data, size_t len, char **err)
{
	const char *p = data;
	ssize_t n;

	if (f->d->kind == DEST_NONE)
		return 0;
	while (len) {
		n = write(f->fd, p, len);
		if (n < 0) {
			if (errno == EINTR)
				continue;
			set_err(err, "cannot write %s/%s: %s", f->d->dir, f->part, strerror(errno));
			return -1;
		}
		p += n;
		len -= (size_t)n;
	}
	return 0;
}

static void file_free(struct dest_file *f)
{
	if (f->fd >= 0)
		close(f->fd);
	free(f->name);
	free(f->part);
	free(f);
}

int dest_file_commit(struct dest_file *f, char **err)
{
	struct dest *d = f->d;
	int rc = -1;

	if (d->kind == DEST_NONE) {
		rc = 0;
		goto out;
	}
	if (fsync(f->fd) < 0) {
		set_err(err, "cannot sync %s/%s: %s", d->dir, f->part, strerror(errno));
		goto fail;
	}
	if (close(f->fd) < 0) {
		f->fd = -1;
		set_err(err, "cannot close %s/%s: %s", d->dir, f->part, strerror(errno));
		goto fail;
	}
	f->fd = -1;
	if (renameat(d->dirfd, f->part, d->dirfd, f->name) < 0) {
		set_err(err, "cannot rename %s/%s: %s", d->dir, f->part, strerror(errno));
		goto fail;
	}
	if (fsync(d->dirfd) < 0) {
		set_err(err, "cannot sync folder %s: %s", d->dir, strerror(errno));
		goto out;   /* renamed already; nothing to undo */
	}
	rc = 0;
	goto out;
fail:
	unlinkat(d->dirfd, f->part, 0);
out:
	file_free(f);
	return rc;
}

void dest_file_abort(struct dest_file *f)
{
	if (!f)
		return;
	if (f->d->kind == DEST_DIR && f->part)
		unlinkat(f->d->dirfd, f->part, 0);
	file_free(f);
}

int dest_remove_all(struct dest *d, char **err)
{
	struct dirent *de;
	struct stat st;
	DIR *dir = NULL;
	int fd, rc = -1;

	if (d->kind == DEST_NONE)
		return 0;
	fd = dup(d->dirfd);
	if (fd < 0 || !(dir = fdopendir(fd))) {
		if (fd >= 0)
			close(fd);
		set_err(err, "cannot list %s: %s", d->dir, strerror(errno));
		return -1;
	}
	rewinddir(dir);
	while ((de = readdir(dir))) {
		if (!strcmp(de->d_name, ".") || !strcmp(de->d_name, ".."))
			continue;
		if (fstatat(d->dirfd, de->d_name, &st, AT_SYMLINK_NOFOLLOW) < 0)
			continue;
		if (!S_ISREG(st.st_mode) && !S_ISLNK(st.st_mode))
			continue;   /* not ours: leave it, rmdir below reports it */
		if (unlinkat(d->dirfd, de->d_name, 0) < 0 && errno != ENOENT) {
			set_err(err, "cannot remove %s/%s: %s", d->dir, de->d_name, strerror(errno));
			goto out;
		}
	}
	if (rmdir(d->dir) < 0 && errno != ENOENT) {
		set_err(err, "cannot remove folder %s: %s", d->dir, strerror(errno));
		goto out;
	}
	rc = 0;
out:
	closedir(dir);
	return rc;
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
