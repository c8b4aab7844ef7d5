/* Folder destination.
 *
 * Files are written to ".<leaf>.part" beside their final name (opened with
 * O_EXCL|O_NOFOLLOW relative to the folder's fd, so nothing can redirect the
 * write), fsync'd, renamed to <leaf> and the folder fsync'd: after a crash a
 * final name always holds a complete file.  Safe names never start with '.',
 * so a part file cannot collide with a final one.  Names may have a few
 * '/'-separated levels (attachments/...); each level is opened with
 * O_NOFOLLOW from the one above, so a planted symlink cannot lead outside.
 * The part file of an interrupted run is what resume continues from. */
#include "dest_int.h"
#include "buf.h"
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <sys/stat.h>

#define CHUNK (64 * 1024)

struct fs_dest {
	struct dest base;
	char *dir;
	int dirfd;
};

struct fs_file {
	struct dest_file base;
	int pfd;          /* folder holding the file */
	char *part;       /* ".<leaf>.part", relative to pfd */
	const char *leaf; /* into base.name */
	int fd;
};

#define FS(d) ((struct fs_dest *)(d))
#define FSF(f) ((struct fs_file *)(f))

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

static void fs_close(struct dest *dd)
{
	struct fs_dest *d = FS(dd);

	if (d->dirfd >= 0)
		close(d->dirfd);
	free(d->dir);
	free(d);
}

static struct dest *fs_open(const char *spec, const struct dest_conf *conf, char **err)
{
	struct fs_dest *d = calloc(1, sizeof *d);

	if (!d) {
		err_set(err, "out of memory");
		return NULL;
	}
	d->base.ops = &dest_fs_ops;
	d->dirfd = -1;
	if (!(d->dir = strdup(spec))) {
		err_set(err, "out of memory");
		goto fail;
	}
	if (mkdirs(spec) < 0) {
		err_set(err, "cannot create folder %s: %s", spec, strerror(errno));
		goto fail;
	}
	d->dirfd = open(spec, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (d->dirfd < 0) {
		err_set(err, "cannot open folder %s: %s", spec, strerror(errno));
		goto fail;
	}
	return &d->base;
fail:
	fs_close(&d->base);
	return NULL;
}

/* The folder holding `name` as a new fd (caller closes), creating missing
 * levels when `create`; *leaf points at the last segment.  -1 with errno. */
static int open_parent(struct fs_dest *d, const char *name, int create, const char **leaf)
{
	const char *p = name, *slash;
	char seg[256];
	int fd, nfd;

	fd = fcntl(d->dirfd, F_DUPFD_CLOEXEC, 0);
	if (fd < 0)
		return -1;
	while ((slash = strchr(p, '/'))) {
		size_t n = (size_t)(slash - p);

		if (n >= sizeof seg) {
			close(fd);
			errno = ENAMETOOLONG;
			return -1;
		}
		memcpy(seg, p, n);
		seg[n] = '\0';
		if (create && mkdirat(fd, seg, 0750) < 0 && errno != EEXIST)
			goto fail;
		nfd = openat(fd, seg, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
		if (nfd < 0)
			goto fail;
		close(fd);
		fd = nfd;
		p = slash + 1;
	}
	*leaf = p;
	return fd;
fail:
	{
		int e = errno;

		close(fd);
		errno = e;
	}
	return -1;
}

static void fs_file_free(struct fs_file *f)
{
	if (f->fd >= 0)
		close(f->fd);
	if (f->pfd >= 0)
		close(f->pfd);
	free(f->part);
	dest_file_fini(&f->base);
	free(f);
}

/* A handle for `name` with its folder open and part name set; no fd yet. */
static struct fs_file *fs_file_new(struct fs_dest *d, const char *name, char **err)
{
	struct fs_file *f = calloc(1, sizeof *f);

	if (!f) {
		err_set(err, "out of memory");
		return NULL;
	}
	f->fd = f->pfd = -1;
	if (dest_file_init(&f->base, &d->base, name, err) < 0)
		goto fail;
	if ((f->pfd = open_parent(d, f->base.name, 1, &f->leaf)) < 0) {
		err_set(err, "cannot create the folder of %s/%s: %s", d->dir, name, strerror(errno));
		goto fail;
	}
	if (asprintf(&f->part, ".%s.part", f->leaf) < 0) {
		f->part = NULL;
		err_set(err, "out of memory");
		goto fail;
	}
	return f;
fail:
	fs_file_free(f);
	return NULL;
}

static int create_part(struct fs_file *f, char **err)
{
	const int flags = O_WRONLY | O_APPEND | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC;

	f->fd = openat(f->pfd, f->part, flags, 0640);
	if (f->fd < 0 && errno == EEXIST) {
		/* left over by a crashed run (or not a regular file): replace it */
		unlinkat(f->pfd, f->part, 0);
		f->fd = openat(f->pfd, f->part, flags, 0640);
	}
	if (f->fd < 0) {
		err_set(err, "cannot create %s/%s.part: %s", FS(f->base.d)->dir, f->base.name, strerror(errno));
		return -1;
	}
	return 0;
}

static struct dest_file *fs_file_open(struct dest *dd, const char *name, char **err)
{
	struct fs_file *f = fs_file_new(FS(dd), name, err);

	if (!f)
		return NULL;
	if (create_part(f, err) < 0) {
		fs_file_free(f);
		return NULL;
	}
	return &f->base;
}

static struct dest_file *fs_file_reopen(struct dest *dd, const char *name, long long *have, char **err)
{
	struct fs_file *f = fs_file_new(FS(dd), name, err);
	struct stat st;

	if (!f)
		return NULL;
	f->fd = openat(f->pfd, f->part, O_WRONLY | O_APPEND | O_NOFOLLOW | O_CLOEXEC);
	if (f->fd >= 0 && (fstat(f->fd, &st) < 0 || !S_ISREG(st.st_mode))) {
		close(f->fd);   /* not something we wrote: start over */
		f->fd = -1;
	}
	if (f->fd >= 0) {
		f->base.size = *have = (long long)st.st_size;
		return &f->base;
	}
	if (create_part(f, err) < 0) {
		fs_file_free(f);
		return NULL;
	}
	return &f->base;
}

static int fs_file_write(struct dest_file *ff, const void *data, size_t len, char **err)
{
	if (dest_write_all(FSF(ff)->fd, data, len) < 0) {
		err_set(err, "cannot write %s/%s.part: %s", FS(ff->d)->dir, ff->name, strerror(errno));
		return -1;
	}
	return 0;
}

static int fs_file_truncate(struct dest_file *ff, long long len, char **err)
{
	struct fs_file *f = FSF(ff);

	/* O_APPEND: later writes continue at the new end */
	if (ftruncate(f->fd, (off_t)len) < 0) {
		err_set(err, "cannot truncate %s/%s.part: %s", FS(ff->d)->dir, ff->name, strerror(errno));
		return -1;
	}
	return 0;
}

/* 1 when the part file under our name is still the one we wrote: a worker
 * that lost its lease must not rename or unlink the new owner's file. */
static int part_is_ours(const struct fs_file *f, const struct stat *mine)
{
	struct stat st;

	return fstatat(f->pfd, f->part, &st, AT_SYMLINK_NOFOLLOW) == 0 &&
	       st.st_ino == mine->st_ino && st.st_dev == mine->st_dev;
}

static int fs_file_commit(struct dest_file *ff, char **err)
{
	struct fs_file *f = FSF(ff);
	const char *dir = FS(ff->d)->dir;
	struct stat mine;
	int rc = -1, ours = 1;

	if (fstat(f->fd, &mine) < 0) {
		err_set(err, "cannot stat %s/%s.part: %s", dir, ff->name, strerror(errno));
		goto fail;
	}
	if (fsync(f->fd) < 0) {
		err_set(err, "cannot sync %s/%s.part: %s", dir, ff->name, strerror(errno));
		goto fail;
	}
	if (close(f->fd) < 0) {
		f->fd = -1;
		err_set(err, "cannot close %s/%s.part: %s", dir, ff->name, strerror(errno));
		goto fail;
	}
	f->fd = -1;
	if (!part_is_ours(f, &mine)) {
		ours = 0;
		err_set(err, "%s/%s.part was replaced by another writer; not storing it", dir, ff->name);
		goto fail;
	}
	if (renameat(f->pfd, f->part, f->pfd, f->leaf) < 0) {
		err_set(err, "cannot rename %s/%s.part: %s", dir, ff->name, strerror(errno));
		goto fail;
	}
	if (fsync(f->pfd) < 0) {
		err_set(err, "cannot sync the folder of %s/%s: %s", dir, ff->name, strerror(errno));
		goto out;   /* renamed already; nothing to undo */
	}
	rc = 0;
	goto out;
fail:
	if (ours)
		unlinkat(f->pfd, f->part, 0);
out:
	fs_file_free(f);
	return rc;
}

static void fs_file_abort(struct dest_file *ff)
{
	struct fs_file *f = FSF(ff);
	struct stat mine;

	if (f->fd >= 0 && fstat(f->fd, &mine) == 0 && part_is_ours(f, &mine))
		unlinkat(f->pfd, f->part, 0);
	fs_file_free(f);
}

/* Keeps the part file, on disk, for the next run's fs_file_reopen. */
static void fs_file_suspend(struct dest_file *ff)
{
	struct fs_file *f = FSF(ff);

	if (f->fd >= 0)
		fsync(f->fd);
	fs_file_free(f);
}

/* Feeds the part file of `name` in CHUNK pieces (constant memory). */
static int fs_read_partial(struct dest *dd, const char *name,
			   int (*fn)(void *ctx, const void *data, size_t len), void *ctx, char **err)
{
	struct fs_dest *d = FS(dd);
	const char *leaf;
	char *part = NULL, *chunk = NULL;
	int pfd, fd = -1, rc = -1;
	ssize_t n;

	if ((pfd = open_parent(d, name, 0, &leaf)) < 0) {
		if (errno == ENOENT)
			return 0;
		err_set(err, "cannot open the folder of %s/%s: %s", d->dir, name, strerror(errno));
		return -1;
	}
	if (asprintf(&part, ".%s.part", leaf) < 0) {
		part = NULL;
		err_set(err, "out of memory");
		goto out;
	}
	fd = openat(pfd, part, O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
	if (fd < 0) {
		if (errno == ENOENT || errno == ELOOP)
			rc = 0;   /* nothing partial (a symlink is not ours either) */
		else
			err_set(err, "cannot open %s/%s.part: %s", d->dir, name, strerror(errno));
		goto out;
	}
	if (!(chunk = malloc(CHUNK))) {
		err_set(err, "out of memory");
		goto out;
	}
	for (;;) {
		n = read(fd, chunk, CHUNK);
		if (n < 0) {
			if (errno == EINTR)
				continue;
			err_set(err, "cannot read %s/%s.part: %s", d->dir, name, strerror(errno));
			goto out;
		}
		if (!n)
			break;
		if ((rc = fn(ctx, chunk, (size_t)n)) != 0)
			goto out;   /* the caller's verdict, returned as is */
	}
	rc = 0;
out:
	free(chunk);
	free(part);
	if (fd >= 0)
		close(fd);
	close(pfd);
	return rc;
}

static int fs_get(struct dest *dd, const char *name, struct buf *out, char **err)
{
	struct fs_dest *d = FS(dd);
	const char *leaf;
	char *chunk = NULL;
	struct stat st;
	int pfd, fd = -1, rc = -1;
	ssize_t n;

	if ((pfd = open_parent(d, name, 0, &leaf)) < 0) {
		if (errno != ENOENT)
			err_set(err, "cannot open the folder of %s/%s: %s", d->dir, name, strerror(errno));
		return -1;
	}
	fd = openat(pfd, leaf, O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
	if (fd < 0) {
		if (errno != ENOENT)
			err_set(err, "cannot open %s/%s: %s", d->dir, name, strerror(errno));
		goto out;
	}
	if (fstat(fd, &st) < 0 || !S_ISREG(st.st_mode) || st.st_size > DEST_GET_MAX) {
		err_set(err, "%s/%s is not a regular file of at most %ld bytes", d->dir, name, DEST_GET_MAX);
		goto out;
	}
	if (!(chunk = malloc(CHUNK))) {
		err_set(err, "out of memory");
		goto out;
	}
	while ((n = read(fd, chunk, CHUNK)) != 0) {
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0) {
			err_set(err, "cannot read %s/%s: %s", d->dir, name, strerror(errno));
			goto out;
		}
		buf_append(out, chunk, (size_t)n);
	}
	rc = 0;
out:
	free(chunk);
	if (fd >= 0)
		close(fd);
	close(pfd);
	return rc;
}

/* Removes files (and, below the top, folders up to DEST_MAX_DEPTH levels)
 * in the folder dfd; `path` only for messages. */
static int remove_tree(int dfd, const char *path, int depth, char **err)
{
	struct dirent *de;
	struct stat st;
	DIR *dir = NULL;
	int fd, sub, rc = -1;

	fd = fcntl(dfd, F_DUPFD_CLOEXEC, 0);
	if (fd < 0 || !(dir = fdopendir(fd))) {
		if (fd >= 0)
			close(fd);
		err_set(err, "cannot list %s: %s", path, strerror(errno));
		return -1;
	}
	rewinddir(dir);
	while ((de = readdir(dir))) {
		if (!strcmp(de->d_name, ".") || !strcmp(de->d_name, ".."))
			continue;
		if (fstatat(dfd, de->d_name, &st, AT_SYMLINK_NOFOLLOW) < 0)
			continue;
		if (S_ISDIR(st.st_mode) && depth < DEST_MAX_DEPTH) {
			char *subpath = NULL;

			sub = openat(dfd, de->d_name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
			if (sub < 0)
				continue;   /* left for the rmdir below to report */
			if (asprintf(&subpath, "%s/%s", path, de->d_name) < 0)
				subpath = NULL;
			rc = remove_tree(sub, subpath ? subpath : path, depth + 1, err);
			free(subpath);
			close(sub);
			if (rc < 0)
				goto out;
			rc = -1;
			if (unlinkat(dfd, de->d_name, AT_REMOVEDIR) < 0 && errno != ENOENT) {
				err_set(err, "cannot remove folder %s/%s: %s", path, de->d_name, strerror(errno));
				goto out;
			}
			continue;
		}
		if (!S_ISREG(st.st_mode) && !S_ISLNK(st.st_mode))
			continue;   /* not ours: leave it, rmdir reports it */
		if (unlinkat(dfd, de->d_name, 0) < 0 && errno != ENOENT) {
			err_set(err, "cannot remove %s/%s: %s", path, de->d_name, strerror(errno));
			goto out;
		}
	}
	rc = 0;
out:
	closedir(dir);
	return rc;
}

static int fs_remove_all(struct dest *dd, char **err)
{
	struct fs_dest *d = FS(dd);

	if (remove_tree(d->dirfd, d->dir, 1, err) < 0)
		return -1;
	if (rmdir(d->dir) < 0 && errno != ENOENT) {
		err_set(err, "cannot remove folder %s: %s", d->dir, strerror(errno));
		return -1;
	}
	return 0;
}

const struct dest_ops dest_fs_ops = {
	.kind = "folder",
	.open = fs_open,
	.close = fs_close,
	.file_open = fs_file_open,
	.file_write = fs_file_write,
	.file_commit = fs_file_commit,
	.file_abort = fs_file_abort,
	.file_suspend = fs_file_suspend,
	.remove_all = fs_remove_all,
	.get = fs_get,
	.file_reopen = fs_file_reopen,
	.read_partial = fs_read_partial,
	.file_truncate = fs_file_truncate,
};
