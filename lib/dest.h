/* Destinations for downloaded files.  A file is written through a handle and
 * only becomes visible on dest_commit (filesystem: `.part`, fsync, rename;
 * S3: the object appears on commit; HTTP: it is sent on commit), so a crash
 * never leaves a half file under a final name.
 *
 * A destination and its files are used by one thread at a time.  S3 and
 * HTTP calls block while they upload (dest_file_write when an S3 part is
 * full, dest_file_commit, dest_put).  Errors through char **err are
 * malloc'd (replacing what *err held); they never contain credentials. */
#ifndef DEST_H
#define DEST_H
#include <stddef.h>
#include "buf.h"

struct dest;
struct dest_file;

/* A folder path (created if missing), "none" (discards), s3://bucket/prefix
 * or http(s)://base (see dest_open_conf).  NULL + *err on a bad spec. */
struct dest *dest_open(const char *spec, char **err);
void dest_close(struct dest *d);

/* `name` must be a safe relative name produced by dest_safe_name(), or up
 * to 3 of them joined by '/' (e.g. "attachments/x.pdf"; a folder creates the
 * sub-folders).  Anything else is refused. */
struct dest_file *dest_file_open(struct dest *d, const char *name, char **err);
int dest_file_write(struct dest_file *f, const void *data, size_t len, char **err);
/* Make the file visible under its name; frees f. */
int dest_file_commit(struct dest_file *f, char **err);
/* Drop a partial file; frees f. */
void dest_file_abort(struct dest_file *f);
/* Remove everything stored under this destination (cancel clean-up). */
int dest_remove_all(struct dest *d, char **err);

/* ---- additions for the bulk-data client (issue 3) ---- */

/* Spec forms: a folder path, "none", "s3://bucket/prefix" (AWS SigV4 via
 * libcurl; region/endpoint/credentials from struct dest_conf or the usual
 * AWS_* environment variables), "http(s)://..." (one PUT or POST per file).
 * All fields are optional (zero = default) and borrowed during dest_open_conf
 * only: the destination keeps copies.
 *
 * S3: the key of a file is prefix + "/" + name.  Small files are one
 * PutObject on commit; once s3_part_size bytes are buffered a multipart
 * upload starts and each full part is sent from dest_file_write, so memory
 * stays bounded by one part.  Upload errors fail the file (write/commit -1
 * with the S3 error code).  dest_remove_all deletes every key under prefix/.
 * HTTP: each file is spooled to an unlinked temp file in $TMPDIR and sent on
 * commit to <base URL>/<name> (query string of the base kept); 2xx required,
 * 5xx and connection errors retried.  dest_get says absent and
 * dest_remove_all does nothing (what the receiver got is its own). */
struct dest_conf {
	const char *s3_region;        /* NULL: $AWS_REGION, $AWS_DEFAULT_REGION, "us-east-1" */
	const char *s3_endpoint;      /* NULL: $AWS_ENDPOINT_URL_S3, $AWS_ENDPOINT_URL, else
	                               * https://<bucket>.s3.<region>.amazonaws.com; path-style when set */
	const char *s3_access_key;    /* NULL: $AWS_ACCESS_KEY_ID */
	const char *s3_secret_key;    /* NULL: $AWS_SECRET_ACCESS_KEY */
	const char *s3_session_token; /* NULL: $AWS_SESSION_TOKEN */
	long s3_part_size;            /* multipart part size in bytes (>= 5 MiB), default 8 MiB */
	const char *http_method;      /* "PUT" (default) or "POST" */
	const char *const *http_headers; /* extra "Name: value" for uploads, NULL-terminated */
	int retries;                  /* upload retries, 0: default 3, < 0: none */
	const char *ca_file;
	int insecure;
	long connect_timeout, idle_timeout; /* seconds; <= 0: 10 and 60 */
	/* additions (optional): */
	const char *user_agent;       /* NULL: "bulk-data" */
	int (*should_stop)(void *ctx); /* polled during uploads and retry waits; 1 aborts */
	void *stop_ctx;
};
/* Like dest_open with settings; conf may be NULL (defaults). */
struct dest *dest_open_conf(const char *spec, const struct dest_conf *conf, char **err);

/* Whole small objects (state file, manifest): stored atomically.
 * content_type may be NULL (guessed from the name). */
int dest_put(struct dest *d, const char *name, const void *data, size_t len, const char *content_type, char **err);
/* Read a small object back (resume state), appending it to out: 0, or -1
 * with *err = NULL when absent (always so for "none" and http destinations,
 * which cannot read back), -1 with *err set on a real failure. */
int dest_get(struct dest *d, const char *name, struct buf *out, char **err);

/* Resume support (folders only; dest_can_resume() says).  Reopen a partial
 * file left by an interrupted run: *have = bytes already written (0 when
 * there is none; elsewhere always 0, just like dest_file_open); writes
 * append.  dest_file_read_partial feeds those bytes to fn in chunks of at
 * most 64 KiB so the caller can rebuild its hash and validator state: it
 * returns 0 (also when there is no partial file), -1 with *err on a read
 * error, or the first non-zero value fn returned (which stops it). */
int dest_can_resume(struct dest *d);
struct dest_file *dest_file_reopen(struct dest *d, const char *name, long long *have, char **err);
int dest_file_read_partial(struct dest *d, const char *name,
			   int (*fn)(void *ctx, const void *data, size_t len), void *ctx, char **err);
/* Truncate a reopened file back to `len` bytes (drop a partial last line);
 * len may not exceed what the file has.  -1 + *err elsewhere than folders
 * unless len is the current size. */
int dest_file_truncate(struct dest_file *f, long long len, char **err);
/* Stop writing but keep what was written for a later dest_file_reopen
 * (folders: the part file stays, synced); elsewhere the same as abort.
 * Frees f. */
void dest_file_suspend(struct dest_file *f);

/* A file name that cannot escape the destination: keeps [A-Za-z0-9._-],
 * replaces the rest with '_', no leading '.', bounded length.  malloc'd. */
char *dest_safe_name(const char *s);
#endif
