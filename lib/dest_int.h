/* Private to lib/dest*.c: the backend vtable behind lib/dest.h.
 *
 * Each backend embeds struct dest / struct dest_file as the FIRST member of
 * its own structs and casts back.  dest.c validates names and arguments
 * before dispatching, so backends can rely on a name that dest_name_ok()
 * accepted and on non-NULL handles. */
#ifndef DEST_INT_H
#define DEST_INT_H
#include <stddef.h>
#include "dest.h"

struct dest_ops;

struct dest {
	const struct dest_ops *ops;
};

struct dest_file {
	struct dest *d;
	char *name;               /* relative name as given (owned) */
	char *content_type;       /* owned; NULL: dest_content_type(name) */
	long long size;           /* bytes in the file so far */
};

struct dest_ops {
	const char *kind;         /* "folder", "none", "s3", "http" */
	/* spec already classified for this backend; conf never NULL */
	struct dest *(*open)(const char *spec, const struct dest_conf *conf, char **err);
	void (*close)(struct dest *d);
	/* returns a file with d and name set (dest_file_init) */
	struct dest_file *(*file_open)(struct dest *d, const char *name, char **err);
	int (*file_write)(struct dest_file *f, const void *data, size_t len, char **err);
	int (*file_commit)(struct dest_file *f, char **err);   /* frees f */
	void (*file_abort)(struct dest_file *f);               /* frees f */
	int (*remove_all)(struct dest *d, char **err);
	/* optional: NULL means the generic fallback in dest.c */
	int (*put)(struct dest *d, const char *name, const void *data, size_t len,
		   const char *content_type, char **err);          /* NULL: open+write+commit */
	int (*get)(struct dest *d, const char *name, struct buf *out, char **err); /* NULL: absent */
	/* resume: all three or none (dest_can_resume) */
	struct dest_file *(*file_reopen)(struct dest *d, const char *name, long long *have, char **err);
	int (*read_partial)(struct dest *d, const char *name,
			    int (*fn)(void *ctx, const void *data, size_t len), void *ctx, char **err);
	int (*file_truncate)(struct dest_file *f, long long len, char **err);
};

extern const struct dest_ops dest_fs_ops, dest_none_ops, dest_s3_ops, dest_http_ops;

/* malloc'd message into *err (replacing one already there); err may be NULL. */
void dest_set_err(char **err, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* Fills the common fields; 0, or -1 with *err (out of memory). */
int dest_file_init(struct dest_file *f, struct dest *d, const char *name, char **err);
/* Frees the common fields (not f itself). */
void dest_file_fini(struct dest_file *f);
/* Content-Type for a name: f->content_type when set, else by extension.
 * Borrowed (static or f's). */
const char *dest_file_content_type(const struct dest_file *f);
const char *dest_content_type(const char *name);
/* 1 for a valid relative name: one or more '/'-separated segments (at most
 * DEST_MAX_DEPTH), each as dest_safe_name() produces. */
int dest_name_ok(const char *name);
#define DEST_MAX_DEPTH 3
#define DEST_GET_MAX (64L << 20)   /* dest_get refuses larger objects */

#endif
