#include "import_params.h"
#include "buf.h"
#include <ctype.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#define MAX_URL 4096
#define MAX_VALUE 8192

enum check { C_URL, C_EXPORT_TYPE, C_TYPES, C_INSTANT, C_TEXT, C_REFERENCE, C_BOOL };

struct pdef {
	const char *name;
	const char *types[4];   /* accepted value[x] member names, NULL-terminated */
	const char *out_type;   /* stored as; NULL: not passed through */
	int repeatable;
	enum check check;
};

static const struct pdef PDEFS[] = {
	{ "exportUrl", { "valueUrl", "valueUri", "valueString", NULL }, NULL, 0, C_URL },
	{ "exportType", { "valueCode", "valueString", NULL }, NULL, 0, C_EXPORT_TYPE },
	{ "_type", { "valueString", "valueCode", NULL }, "valueString", 1, C_TYPES },
	{ "_since", { "valueInstant", "valueDateTime", "valueString", NULL }, "valueInstant", 0, C_INSTANT },
	{ "_until", { "valueInstant", "valueDateTime", "valueString", NULL }, "valueInstant", 0, C_INSTANT },
	{ "_outputFormat", { "valueString", "valueCode", NULL }, "valueString", 0, C_TEXT },
	{ "_elements", { "valueString", NULL }, "valueString", 1, C_TEXT },
	{ "_typeFilter", { "valueString", NULL }, "valueString", 1, C_TEXT },
	{ "includeAssociatedData", { "valueCode", "valueString", NULL }, "valueCode", 1, C_TEXT },
	{ "patient", { "valueReference", NULL }, "valueReference", 1, C_REFERENCE },
	{ "organizeOutputBy", { "valueString", "valueCode", NULL }, "valueString", 0, C_TEXT },
	{ "allowPartialManifests", { "valueBoolean", NULL }, "valueBoolean", 0, C_BOOL },
};
#define NPDEFS (sizeof PDEFS / sizeof PDEFS[0])

static int fail(char **err, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static int fail(char **err, const char *fmt, ...)
{
	struct buf m = BUF_INIT;
	va_list ap;

	va_start(ap, fmt);
	buf_vprintf(&m, fmt, ap);
	va_end(ap);
	*err = buf_detach(&m);
	return -1;
}

static int digits(const char *s, int n)
{
	int i;

	for (i = 0; i < n; i++)
		if (!isdigit((unsigned char)s[i]))
			return 0;
	return 1;
}

static int num(const char *s, int n)
{
	int v = 0, i;

	for (i = 0; i < n; i++)
		v = v * 10 + (s[i] - '0');
	return v;
}

int import_params_instant_valid(const char *s)
{
	static const int mdays[] = { 31, 29, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31 };
	int mon, day;

	/* YYYY-MM-DDThh:mm:ss */
	if (!s || strlen(s) < 20)
		return 0;
	if (!digits(s, 4) || s[4] != '-' || !digits(s + 5, 2) || s[7] != '-' || !digits(s + 8, 2) ||
	    s[10] != 'T' || !digits(s + 11, 2) || s[13] != ':' || !digits(s + 14, 2) || s[16] != ':' ||
	    !digits(s + 17, 2))
		return 0;
	mon = num(s + 5, 2);
	day = num(s + 8, 2);
	if (num(s, 4) < 1 || mon < 1 || mon > 12 || day < 1 || day > mdays[mon - 1] ||
	    num(s + 11, 2) > 23 || num(s + 14, 2) > 59 || num(s + 17, 2) > 60)
		return 0;
	s += 19;
	if (*s == '.') {
		int n = 0;
		for (s++; isdigit((unsigned char)*s); s++)
			n++;
		if (n < 1 || n > 9)
			return 0;
	}
	if (!strcmp(s, "Z"))
		return 1;
	if ((*s == '+' || *s == '-') && strlen(s) == 6 && digits(s + 1, 2) && s[3] == ':' && digits(s + 4, 2))
		return num(s + 1, 2) <= 14 && num(s + 4, 2) <= 59;
	return 0;
}

int import_params_url_valid(const char *s)
{
	const char *p, *auth, *end;
	size_t n;

	if (!s || (n = strlen(s)) == 0 || n > MAX_URL)
		return 0;
	for (p = s; *p; p++)
		if ((unsigned char)*p <= 0x20 || *p == 0x7f || *p == '#' || *p == '\\')
			return 0;
	if (!strncasecmp(s, "http://", 7))
		auth = s + 7;
	else if (!strncasecmp(s, "https://", 8))
		auth = s + 8;
	else
		return 0;
	end = auth + strcspn(auth, "/?");
	if (end == auth || memchr(auth, '@', (size_t)(end - auth)))
		return 0;
	if (*auth == ':')   /* port without host */
		return 0;
	return 1;
}

static int types_valid(const char *s)
{
	const char *p = s;

	for (;;) {
		const char *start = p;
		if (!isupper((unsigned char)*p))
			return 0;
		while (isalnum((unsigned char)*p))
			p++;
		if (p - start > 64)
			return 0;
		if (!*p)
			return 1;
		if (*p != ',')
			return 0;
		p++;
	}
}

static int has_ctl(const char *s)
{
	for (; *s; s++)
		if ((unsigned char)*s < 0x20 || *s == 0x7f)
			return 1;
	return 0;
}

static const struct pdef *find_def(const char *name)
{
	size_t i;

	for (i = 0; i < NPDEFS; i++)
		if (!strcmp(PDEFS[i].name, name))
			return &PDEFS[i];
	return NULL;
}

static int accepts(const struct pdef *d, const char *member)
{
	int i;

	for (i = 0; d->types[i]; i++)
		if (!strcmp(d->types[i], member))
			return 1;
	return 0;
}

static void type_list(const struct pdef *d, struct buf *b)
{
	int i;

	for (i = 0; d->types[i]; i++) {
		if (i)
			buf_puts(b, d->types[i + 1] ? ", " : " or ");
		buf_puts(b, d->types[i]);
	}
}

/* Check one entry; on success *vkey and *val are its value[x] member (borrowed). */
static int check_entry(json_object *e, size_t idx, const struct pdef *d, const char **vkey,
		       json_object **val, char **err)
{
	const char *vk = NULL;
	json_object *v = NULL;
	struct buf tl = BUF_INIT;
	int rc = -1;

	json_object_object_foreach(e, key, jv) {
		if (!strcmp(key, "name") || !strcmp(key, "id") || !strcmp(key, "extension"))
			continue;
		if (!strncmp(key, "value", 5)) {
			if (vk) {
				fail(err, "parameter[%zu] (%s): more than one value[x]", idx, d->name);
				goto out;
			}
			vk = key;
			v = jv;
			continue;
		}
		fail(err, "parameter[%zu] (%s): unexpected member '%s'", idx, d->name, key);
		goto out;
	}
	type_list(d, &tl);
	if (!vk) {
		fail(err, "parameter[%zu] (%s): missing value; expected %s", idx, d->name, buf_str(&tl));
		goto out;
	}
	if (!accepts(d, vk)) {
		fail(err, "parameter[%zu] (%s): %s is not allowed; expected %s", idx, d->name, vk, buf_str(&tl));
		goto out;
	}
	if (d->check == C_BOOL) {
		if (!json_object_is_type(v, json_type_boolean)) {
			fail(err, "parameter[%zu] (%s): %s must be true or false", idx, d->name, vk);
			goto out;
		}
	} else if (d->check == C_REFERENCE) {
		json_object *ref;
		const char *r;
		if (!json_object_is_type(v, json_type_object) || !json_object_object_get_ex(v, "reference", &ref) ||
		    !json_object_is_type(ref, json_type_string)) {
			fail(err, "parameter[%zu] (%s): valueReference must have a string \"reference\"", idx, d->name);
			goto out;
		}
		r = json_object_get_string(ref);
		if (!*r || strlen(r) > MAX_VALUE || has_ctl(r) || (size_t)json_object_get_string_len(ref) != strlen(r)) {
			fail(err, "parameter[%zu] (%s): valueReference.reference is empty or malformed", idx, d->name);
			goto out;
		}
	} else {
		const char *s;
		if (!json_object_is_type(v, json_type_string)) {
			fail(err, "parameter[%zu] (%s): %s must be a string", idx, d->name, vk);
			goto out;
		}
		s = json_object_get_string(v);
		if (!*s) {
			fail(err, "parameter[%zu] (%s): %s is empty", idx, d->name, vk);
			goto out;
		}
		if (strlen(s) > MAX_VALUE || has_ctl(s) || (size_t)json_object_get_string_len(v) != strlen(s)) {
			fail(err, "parameter[%zu] (%s): %s is too long or contains control characters", idx, d->name, vk);
			goto out;
		}
		switch (d->check) {
		case C_URL:
			if (!import_params_url_valid(s)) {
				fail(err, "parameter[%zu] (%s): '%s' is not an absolute http or https URL "
				     "(without user info or fragment)", idx, d->name, s);
				goto out;
			}
			break;
		case C_EXPORT_TYPE:
			if (strcmp(s, "dynamic") && strcmp(s, "static")) {
				fail(err, "parameter[%zu] (%s): '%s' is not supported; use 'dynamic' or 'static'",
				     idx, d->name, s);
				goto out;
			}
			break;
		case C_TYPES:
			if (!types_valid(s)) {
				fail(err, "parameter[%zu] (%s): '%s' is not a comma-separated list of resource types",
				     idx, d->name, s);
				goto out;
			}
			break;
		case C_INSTANT:
			if (!import_params_instant_valid(s)) {
				fail(err, "parameter[%zu] (%s): '%s' is not a FHIR instant "
				     "(YYYY-MM-DDThh:mm:ss[.sss] followed by Z or +hh:mm)", idx, d->name, s);
				goto out;
			}
			break;
		default:
			break;
		}
	}
	*vkey = vk;
	*val = v;
	rc = 0;
out:
	buf_free(&tl);
	return rc;
}

int import_params_parse(json_object *body, struct import_params *out, char **err)
{
	json_object *rt, *arr, *params = NULL, *plist = NULL;
	int seen[NPDEFS];
	size_t i, n;

	memset(out, 0, sizeof *out);
	memset(seen, 0, sizeof seen);
	*err = NULL;
	if (!body || !json_object_is_type(body, json_type_object))
		return fail(err, "body must be a FHIR Parameters resource (a JSON object)");
	if (!json_object_object_get_ex(body, "resourceType", &rt) || !json_object_is_type(rt, json_type_string) ||
	    strcmp(json_object_get_string(rt), "Parameters"))
		return fail(err, "body must be a FHIR Parameters resource (resourceType \"Parameters\")");
	if (!json_object_object_get_ex(body, "parameter", &arr))
		return fail(err, "parameter exportUrl is required");
	if (!json_object_is_type(arr, json_type_array))
		return fail(err, "Parameters.parameter must be an array");

	params = json_object_new_object();
	json_object_object_add(params, "resourceType", json_object_new_string("Parameters"));
	plist = json_object_new_array();
	n = json_object_array_length(arr);
	for (i = 0; i < n; i++) {
		json_object *e = json_object_array_get_idx(arr, i), *jn, *val, *copy;
		const struct pdef *d;
		const char *name, *vkey;

		if (!json_object_is_type(e, json_type_object)) {
			fail(err, "parameter[%zu]: must be an object", i);
			goto bad;
		}
		if (!json_object_object_get_ex(e, "name", &jn) || !json_object_is_type(jn, json_type_string)) {
			fail(err, "parameter[%zu]: \"name\" (a string) is required", i);
			goto bad;
		}
		name = json_object_get_string(jn);
		if ((size_t)json_object_get_string_len(jn) != strlen(name)) {
			fail(err, "parameter[%zu]: \"name\" contains a NUL character", i);
			goto bad;
		}
		d = find_def(name);
		if (!d) {
			struct buf nm = BUF_INIT;
			/* quote the unknown name safely: printable ASCII only, bounded */
			for (; *name && nm.len < 64; name++)
				buf_putc(&nm, (*name >= 0x20 && *name < 0x7f) ? *name : '?');
			fail(err, "parameter[%zu]: unknown parameter '%s'", i, buf_str(&nm));
			buf_free(&nm);
			goto bad;
		}
		if (seen[d - PDEFS] && !d->repeatable) {
			fail(err, "parameter[%zu] (%s): may appear only once", i, d->name);
			goto bad;
		}
		seen[d - PDEFS]++;
		if (check_entry(e, i, d, &vkey, &val, err) < 0)
			goto bad;
		if (d->check == C_URL) {
			out->export_url = strdup(json_object_get_string(val));
		} else if (d->check == C_EXPORT_TYPE) {
			out->export_type = strdup(json_object_get_string(val));
		} else {
			json_object *v2 = NULL;
			copy = json_object_new_object();
			json_object_object_add(copy, "name", json_object_new_string(d->name));
			if (d->check == C_REFERENCE || d->check == C_BOOL) {
				json_object_deep_copy(val, &v2, NULL);
			} else {
				v2 = json_object_new_string(json_object_get_string(val));
			}
			json_object_object_add(copy, d->out_type, v2);
			json_object_array_add(plist, copy);
		}
	}
	if (!out->export_url) {
		fail(err, "parameter exportUrl is required");
		goto bad;
	}
	if (!out->export_type)
		out->export_type = strdup("dynamic");
	if (json_object_array_length(plist) > 0)
		json_object_object_add(params, "parameter", plist);
	else
		json_object_put(plist);
	out->params = params;
	if (!out->export_url || !out->export_type)
		abort();
	return 0;
bad:
	json_object_put(plist);
	json_object_put(params);
	import_params_free(out);
	return -1;
}

void import_params_free(struct import_params *p)
{
	free(p->export_url);
	free(p->export_type);
	json_object_put(p->params);
	memset(p, 0, sizeof *p);
}
