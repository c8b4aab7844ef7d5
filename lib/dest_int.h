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
	void (*file_suspend)(struct dest_file *f);             /* optional: keep the part; frees f */
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

/* ---- network backends (dest_net.c): S3 and HTTP ---- */
#include <curl/curl.h>
#include "buf.h"

/* Owned copy of the transfer settings of a struct dest_conf plus one easy
 * handle reused for every request (keeps the connection alive).  A
 * destination is used by one thread at a time. */
struct dest_net {
	int retries;
	char *ca_file, *user_agent;
	int insecure;
	long connect_timeout, idle_timeout;
	int (*should_stop)(void *ctx);
	void *stop_ctx;
	CURL *curl;
};
int dest_net_init(struct dest_net *n, const struct dest_conf *c, char **err);
void dest_net_free(struct dest_net *n);

/* A request body: from memory, or from fd (pread from offset 0) when fd >= 0. */
struct dest_body {
	const void *mem;
	int fd;
	long long len;
};

/* One request.  Inputs borrowed; outputs owned, released by dest_xfer_free. */
struct dest_xfer {
	const char *method;            /* GET PUT POST DELETE */
	const char *url;
	const struct curl_slist *headers;
	const struct dest_body *body;  /* NULL: none */
	size_t max_resp;               /* response body cap; 0: 64 KiB */
	const char *aws_sigv4;         /* CURLOPT_AWS_SIGV4 or NULL */
	const char *user, *password;   /* with aws_sigv4: access key, secret */
	/* outputs of the last attempt */
	long status;                   /* 0: no response */
	struct buf resp;
	int resp_truncated;
	char *etag;                    /* ETag response header, NULL when absent */
	int stopped;                   /* should_stop said so */
	char *error;                   /* transport error text when status == 0 */
};
/* One attempt: 0 when a response arrived (any status), -1 on a transport
 * error or stop.  Resets the outputs first. */
int dest_xfer_once(struct dest_net *n, struct dest_xfer *x);
/* Attempts until a non-retryable answer: a response below 500, a stop, or
 * n->retries retries used up (5xx and transport errors are retried after a
 * short backoff).  Returns like dest_xfer_once. */
int dest_xfer(struct dest_net *n, struct dest_xfer *x);
void dest_xfer_free(struct dest_xfer *x);
/* Appends s percent-encoded as RFC 3986 wants (SigV4 canonical form);
 * '/' kept when keep_slash. */
void dest_uri_encode(struct buf *b, const char *s, int keep_slash);
/* A printable one-line excerpt of a response body (at most max bytes) into
 * b; control characters become spaces. */
void dest_excerpt(struct buf *b, const char *s, size_t len, size_t max);

/* write(2) until all of buf is written (EINTR retried); 0, or -1 with errno. */
int dest_write_all(int fd, const void *buf, size_t len);

#endif
