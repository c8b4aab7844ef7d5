/* Destinations for downloaded files.  A file is written through a handle and
 * only becomes visible on dest_commit (filesystem: `.part`, fsync, rename), so
 * a crash never leaves a half file under a final name. */
#ifndef DEST_H
#define DEST_H
#include <stddef.h>

struct dest;
struct dest_file;

/* "dir" for a filesystem folder (created if missing); "none" discards.
 * Later: s3://bucket/prefix, http(s)://...  NULL + *err on bad spec. */
struct dest *dest_open(const char *spec, char **err);
void dest_close(struct dest *d);

/* `name` must be a safe relative name produced by dest_safe_name(). */
struct dest_file *dest_file_open(struct dest *d, const char *name, char **err);
int dest_file_write(struct dest_file *f, const void *data, size_t len, char **err);
/* Make the file visible under its name; frees f. */
int dest_file_commit(struct dest_file *f, char **err);
/* Drop a partial file; frees f. */
void dest_file_abort(struct dest_file *f);
/* Remove everything stored under this destination (cancel clean-up). */
int dest_remove_all(struct dest *d, char **err);

/* A file name that cannot escape the destination: keeps [A-Za-z0-9._-],
 * replaces the rest with '_', no leading '.', bounded length.  malloc'd. */
char *dest_safe_name(const char *s);
#endif
