/* File names for downloaded files from a template.
 *
 * Placeholders: {n} (1-based position across all manifest pages and
 * arrays), {type} (manifest type, "unknown" when empty), {page} (1-based
 * manifest page), {basename} (last path segment of the file URL, query and
 * fragment stripped, not decoded), {exportId}.  Default "{n}.{type}.ndjson".
 *
 * Safety: a substituted value never contributes a '/' (every character
 * outside [A-Za-z0-9._-] becomes '_'); only '/' written in the template
 * makes sub-folders (at most 2, as lib/dest.h allows 3 levels).  Every
 * segment of the result then goes through dest_safe_name(), so nothing a
 * server sends ("..%2F..", "../x", "/abs", ".hidden") can leave the
 * destination or hide a file.  Returned strings are malloc'd. */
#ifndef NAMING_H
#define NAMING_H

#define NAMING_DEFAULT "{n}.{type}.ndjson"

struct naming_vars {
	int n;
	const char *type;
	int page;
	const char *url;
	const char *export_id;
};

/* 0 when tmpl (NULL: the default) can be used, else -1 with *err such as
 * "unknown placeholder {foo} in the name template". */
int naming_check(const char *tmpl, char **err);

/* The safe relative name for one file, or NULL with *err (bad template or
 * out of memory). */
char *naming_expand(const char *tmpl, const struct naming_vars *v, char **err);

/* Last path segment of url without query/fragment ("" when none). */
char *naming_basename(const char *url);

/* A variant of `name` that differs from it for a given seq: "-<seq>" is
 * inserted before the first '.' of the last segment (appended when there
 * is none).  For names that are taken already. */
char *naming_uniquify(const char *name, int seq);

#endif
