/* Streaming NDJSON validator; see ndjson.h. */
#include "ndjson.h"
#include "buf.h"
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <json-c/json.h>

#define DEFAULT_MAX_LINE (16u * 1024 * 1024)
#define JSON_DEPTH 128    /* FHIR nests deeper than json-c's default 32 */

struct ndjson {
	char *type;
	size_t max;
	ndjson_issue_fn cb;
	void *ctx;
	ndjson_line_fn line_fn;
	void *line_ctx;
	struct buf line;      /* current line while it fits */
	int overlong;         /* current line passed max: not buffered */
	long long phys;       /* physical number of the current line */
	long long lines, errors;
	json_tokener *tok;
};

struct ndjson *ndjson_new(const char *expected_type, size_t max_line_bytes,
			  ndjson_issue_fn cb, void *ctx)
{
	struct ndjson *v = calloc(1, sizeof *v);

	if (!v)
		return NULL;
	v->type = expected_type ? strdup(expected_type) : NULL;
	v->tok = json_tokener_new_ex(JSON_DEPTH);
	if ((expected_type && !v->type) || !v->tok) {
		ndjson_free(v);
		return NULL;
	}
	json_tokener_set_flags(v->tok, JSON_TOKENER_STRICT);
	v->max = max_line_bytes ? max_line_bytes : DEFAULT_MAX_LINE;
	v->cb = cb;
	v->ctx = ctx;
	v->phys = 1;
	return v;
}

void ndjson_reset(struct ndjson *v)
{
	buf_reset(&v->line);
	v->overlong = 0;
	v->phys = 1;
	v->lines = v->errors = 0;
}

void ndjson_free(struct ndjson *v)
{
	if (!v)
		return;
	buf_free(&v->line);
	if (v->tok)
		json_tokener_free(v->tok);
	free(v->type);
	free(v);
}

void ndjson_set_line_fn(struct ndjson *v, ndjson_line_fn fn, void *ctx)
{
	v->line_fn = fn;
	v->line_ctx = ctx;
}

long long ndjson_lines(const struct ndjson *v)
{
	return v->lines;
}

long long ndjson_errors(const struct ndjson *v)
{
	return v->errors;
}

size_t utf8_valid_prefix(const unsigned char *s, size_t n)
{
	size_t i = 0;

	while (i < n) {
		unsigned c = s[i], need, cp, min;
		size_t k;

		if (c < 0x80) {
			i++;
			continue;
		}
		if (c >= 0xc2 && c <= 0xdf) {
			need = 1; cp = c & 0x1f; min = 0x80;
		} else if (c >= 0xe0 && c <= 0xef) {
			need = 2; cp = c & 0x0f; min = 0x800;
		} else if (c >= 0xf0 && c <= 0xf4) {
			need = 3; cp = c & 0x07; min = 0x10000;
		} else {
			return i;   /* continuation byte, 0xc0/0xc1 overlong, > 0xf4 */
		}
		if (n - i <= need)
			return i;
		for (k = 1; k <= need; k++) {
			unsigned cc = s[i + k];

			if ((cc & 0xc0) != 0x80)
				return i;
			cp = (cp << 6) | (cc & 0x3f);
		}
		if (cp < min || cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff))
			return i;
		i += need + 1;
	}
	return n;
}

static int is_ws(unsigned char c)
{
	return c == ' ' || c == '\t' || c == '\r' || c == '\n';
}

static void issue(struct ndjson *v, const char *code, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

static void issue(struct ndjson *v, const char *code, const char *fmt, ...)
{
	char msg[512];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof msg, fmt, ap);
	va_end(ap);
	if (v->cb)
		v->cb(v->ctx, v->phys, code, msg);
}

/* A short, printable, valid UTF-8 excerpt of provider data for messages. */
static void excerpt(const char *s, char *out, size_t outsz)
{
	size_t n = strlen(s), i, o = 0;

	n = utf8_valid_prefix((const unsigned char *)s, n < 60 ? n : 60);
	/* do not end inside a multi-byte sequence cut by the 60-byte limit */
	for (i = 0; i < n && o + 4 < outsz; i++)
		out[o++] = (unsigned char)s[i] < 0x20 ? '?' : s[i];
	if (strlen(s) > n && o + 4 < outsz) {
		memcpy(out + o, "...", 3);
		o += 3;
	}
	out[o] = '\0';
}

/* What json-c's "strict" mode still lets through: single quotes, NaN and
 * other bare words, raw control characters in strings, "1." numbers.
 * Returns NULL when fine, else a description; *at gets the byte offset. */
static const char *strict_scan(const unsigned char *s, size_t n, size_t *at)
{
	int in_str = 0, esc = 0;
	size_t i;

	for (i = 0; i < n; i++) {
		unsigned char c = s[i];

		*at = i;
		if (in_str) {
			if (esc)
				esc = 0;
			else if (c == '\\')
				esc = 1;
			else if (c == '"')
				in_str = 0;
			else if (c < 0x20)
				return "control character inside a string";
			continue;
		}
		if (c == '"') {
			in_str = 1;
		} else if (c == '\'') {
			return "single-quoted string";
		} else if (c == '.') {
			if (i + 1 >= n || s[i + 1] < '0' || s[i + 1] > '9')
				return "number without digits after '.'";
		} else if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z')) {
			size_t j = i;

			if ((c == 'e' || c == 'E') && i > 0 && s[i - 1] >= '0' && s[i - 1] <= '9')
				continue;    /* exponent */
			while (j < n && ((s[j] >= 'a' && s[j] <= 'z') || (s[j] >= 'A' && s[j] <= 'Z')))
				j++;
			if (!((j - i == 4 && (!memcmp(s + i, "true", 4) || !memcmp(s + i, "null", 4))) ||
			      (j - i == 5 && !memcmp(s + i, "false", 5))))
				return "bare word (only true, false and null are allowed)";
			i = j - 1;
		}
	}
	return NULL;
}

static void check_line(struct ndjson *v, const char *s, size_t n)
{
	json_object *obj = NULL, *rt;
	enum json_tokener_error err;
	const char *why, *type;
	char ex[80];
	size_t i, bad;

	for (i = 0; i < n && is_ws((unsigned char)s[i]); i++)
		;
	if (i == n)
		return;              /* blank: skipped, not counted */
	v->lines++;
	bad = utf8_valid_prefix((const unsigned char *)s, n);
	if (bad < n) {
		issue(v, "structure", "invalid UTF-8 at byte %zu of the line", bad + 1);
		goto bad;
	}
	if ((why = strict_scan((const unsigned char *)s, n, &bad))) {
		issue(v, "structure", "invalid JSON: %s at byte %zu", why, bad + 1);
		goto bad;
	}
	json_tokener_reset(v->tok);
	obj = json_tokener_parse_ex(v->tok, s, (int)n);
	err = json_tokener_get_error(v->tok);
	if (!obj) {
		if (err == json_tokener_continue)
			issue(v, "structure", "invalid JSON: the line ends inside a value");
		else
			issue(v, "structure", "invalid JSON: %s at byte %zu", json_tokener_error_desc(err),
			      json_tokener_get_parse_end(v->tok) + 1);
		goto bad;
	}
	for (i = json_tokener_get_parse_end(v->tok); i < n && is_ws((unsigned char)s[i]); i++)
		;
	if (i < n) {
		issue(v, "structure", "invalid JSON: unexpected data after the object at byte %zu", i + 1);
		goto bad;
	}
	if (!json_object_is_type(obj, json_type_object)) {
		issue(v, "structure", "line is a JSON %s, not an object",
		      json_type_to_name(json_object_get_type(obj)));
		goto bad;
	}
	if (!json_object_object_get_ex(obj, "resourceType", &rt)) {
		issue(v, "structure", "resource has no resourceType");
		goto bad;
	}
	if (!json_object_is_type(rt, json_type_string)) {
		issue(v, "structure", "resourceType is not a string");
		goto bad;
	}
	type = json_object_get_string(rt);
	if (v->type && strcmp(type, v->type)) {
		excerpt(type, ex, sizeof ex);
		issue(v, "value", "resourceType is \"%s\", expected \"%s\"", ex, v->type);
		goto bad;
	}
	json_object_put(obj);
	return;
bad:
	v->errors++;
	json_object_put(obj);
}

static void end_line(struct ndjson *v, int nl)
{
	long long errors = v->errors;

	if (v->overlong) {
		v->lines++;
		v->errors++;           /* reported when it went over */
	} else {
		check_line(v, v->line.data ? v->line.data : "", v->line.len);
	}
	if (v->line_fn)
		v->line_fn(v->line_ctx, v->overlong ? NULL : v->line.data ? v->line.data : "",
			   v->overlong ? 0 : v->line.len, nl, v->errors == errors);
	buf_reset(&v->line);
	v->overlong = 0;
}

/* Bytes of the current line (no '\n'): buffered while the line fits. */
static void add_bytes(struct ndjson *v, const char *p, size_t n)
{
	if (!n || v->overlong)
		return;
	if (v->line.len + n <= v->max) {
		buf_append(&v->line, p, n);
		return;
	}
	/* Over the limit: report now, keep nothing more of it. */
	v->overlong = 1;
	buf_free(&v->line);
	issue(v, "too-long", "line is longer than the limit of %zu bytes; skipped", v->max);
}

void ndjson_feed(struct ndjson *v, const void *data, size_t len)
{
	const char *p = data, *end = p + len, *nl;

	while (p < end) {
		nl = memchr(p, '\n', (size_t)(end - p));
		if (!nl) {
			add_bytes(v, p, (size_t)(end - p));
			return;
		}
		add_bytes(v, p, (size_t)(nl - p));
		end_line(v, 1);
		v->phys++;
		p = nl + 1;
	}
}

void ndjson_finish(struct ndjson *v)
{
	if (v->overlong || v->line.len)
		end_line(v, 0);
}
