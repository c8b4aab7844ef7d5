/* File name templates; see naming.h. */
#include "naming.h"
#include "buf.h"
#include "dest.h"
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define MAX_SLASHES 2

static const char *const names[] = { "n", "type", "page", "basename", "exportId", NULL };

/* Index of the placeholder starting at p (after '{'), its length in *len;
 * -1 when unknown. */
static int placeholder(const char *p, size_t *len)
{
	const char *close = strchr(p, '}');
	size_t n;
	int i;

	if (!close)
		return -1;
	n = (size_t)(close - p);
	for (i = 0; names[i]; i++)
		if (strlen(names[i]) == n && !strncmp(p, names[i], n)) {
			*len = n;
			return i;
		}
	return -1;
}

int naming_check(const char *tmpl, char **err)
{
	const char *p;
	char word[40];
	size_t len;
	int slashes = 0;

	if (!tmpl)
		tmpl = NAMING_DEFAULT;
	if (!*tmpl) {
		err_set(err, "the name template is empty");
		return -1;
	}
	if (tmpl[0] == '/' || tmpl[strlen(tmpl) - 1] == '/' || strstr(tmpl, "//")) {
		err_set(err, "the name template \"%s\" has an empty path segment", tmpl);
		return -1;
	}
	for (p = tmpl; *p; p++) {
		if (*p == '/' && ++slashes > MAX_SLASHES) {
			err_set(err, "the name template \"%s\" has more than 2 folder levels", tmpl);
			return -1;
		}
		if (*p == '}') {
			err_set(err, "unbalanced '}' in the name template \"%s\"", tmpl);
			return -1;
		}
		if (*p != '{')
			continue;
		if (placeholder(p + 1, &len) < 0) {
			const char *close = strchr(p + 1, '}');

			if (!close) {
				err_set(err, "unbalanced '{' in the name template \"%s\"", tmpl);
				return -1;
			}
			snprintf(word, sizeof word, "%.*s", (int)(close - p - 1 < 30 ? close - p - 1 : 30), p + 1);
			err_set(err, "unknown placeholder {%s} in the name template "
				     "(known: {n} {type} {page} {basename} {exportId})", word);
			return -1;
		}
		p += len + 1;
	}
	return 0;
}

char *naming_basename(const char *url)
{
	const char *end, *start;

	if (!url)
		return strdup("");
	end = url + strcspn(url, "?#");
	start = end;
	while (start > url && start[-1] != '/')
		start--;
	/* "http://host" has no path: the host is not a file name */
	if (start > url + 1 && start[-1] == '/' && start[-2] == '/')
		start = end;
	return strndup(start, (size_t)(end - start));
}

/* A value from the server: no '/' may come out of it. */
static void put_value(struct buf *b, const char *s)
{
	for (; s && *s; s++) {
		char c = *s;

		buf_putc(b, (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
				    c == '.' || c == '_' || c == '-' ? c : '_');
	}
}

char *naming_expand(const char *tmpl, const struct naming_vars *v, char **err)
{
	struct buf raw = BUF_INIT, out = BUF_INIT;
	const char *p, *seg;
	char *base = NULL, *safe;
	size_t len;
	int which;

	if (naming_check(tmpl, err) < 0)
		return NULL;
	if (!tmpl)
		tmpl = NAMING_DEFAULT;
	for (p = tmpl; *p; p++) {
		if (*p != '{') {
			buf_putc(&raw, *p);
			continue;
		}
		which = placeholder(p + 1, &len);
		switch (which) {
		case 0:
			buf_printf(&raw, "%d", v->n);
			break;
		case 1:
			put_value(&raw, v->type && *v->type ? v->type : "unknown");
			break;
		case 2:
			buf_printf(&raw, "%d", v->page > 0 ? v->page : 1);
			break;
		case 3:
			free(base);
			base = naming_basename(v->url);
			put_value(&raw, base && *base ? base : "file");
			break;
		default:
			put_value(&raw, v->export_id ? v->export_id : "");
			break;
		}
		p += len + 1;
	}
	/* each template segment on its own: leading dots, empty values, length */
	seg = buf_str(&raw);
	for (;;) {
		const char *slash = strchr(seg, '/');
		char *part = slash ? strndup(seg, (size_t)(slash - seg)) : strdup(seg);

		safe = part ? dest_safe_name(part) : NULL;
		free(part);
		if (!safe) {
			err_set(err, "out of memory");
			buf_free(&out);
			out.data = NULL;
			break;
		}
		if (out.len)
			buf_putc(&out, '/');
		buf_puts(&out, safe);
		free(safe);
		if (!slash)
			break;
		seg = slash + 1;
	}
	free(base);
	buf_free(&raw);
	return out.data ? buf_detach(&out) : NULL;
}

char *naming_uniquify(const char *name, int seq)
{
	const char *leaf = strrchr(name, '/'), *dot;
	char *tmp = NULL, *safe, *out = NULL;
	size_t at;

	leaf = leaf ? leaf + 1 : name;
	dot = strchr(leaf, '.');
	at = dot ? (size_t)(dot - leaf) : strlen(leaf);
	if (asprintf(&tmp, "%.*s-%d%s", (int)at, leaf, seq, leaf + at) < 0)
		return NULL;
	safe = dest_safe_name(tmp);   /* a long leaf may have grown too long */
	free(tmp);
	if (safe && asprintf(&out, "%.*s%s", (int)(leaf - name), name, safe) < 0)
		out = NULL;
	free(safe);
	return out;
}
