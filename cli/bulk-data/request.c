/* The kick-off request of `bulk-data`: the export URL for the level and the
 * Parameters resource built from the options.  The engine sends the same
 * Parameters as a POST body or, for GET, as query parameters. */
#include "bulk_data.h"
#include "buf.h"
#include "url.h"
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* FHIR id: [A-Za-z0-9-.]{1,64} (also keeps the URL path safe). */
static int fhir_id_ok(const char *s)
{
	size_t n = strlen(s);

	if (!n || n > 64)
		return 0;
	return strspn(s, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-.") == n;
}

char *req_kickoff_url(const char *base, const char *group, int patient_level, char **err)
{
	size_t n = strlen(base);
	char *out = NULL;
	int rc;

	if (!url_is_http(base)) {
		err_set(err, "--fhir-url must be an absolute http(s) URL, not \"%s\"", base);
		return NULL;
	}
	while (n && base[n - 1] == '/')
		n--;
	if (group) {
		if (!fhir_id_ok(group)) {
			err_set(err, "--group \"%s\" is not a FHIR id ([A-Za-z0-9-.], at most 64)", group);
			return NULL;
		}
		rc = asprintf(&out, "%.*s/Group/%s/$export", (int)n, base, group);
	} else if (patient_level) {
		rc = asprintf(&out, "%.*s/Patient/$export", (int)n, base);
	} else {
		rc = asprintf(&out, "%.*s/$export", (int)n, base);
	}
	return rc < 0 ? NULL : out;
}

static void add_param(json_object *list, const char *name, const char *vtype, json_object *value)
{
	json_object *p = json_object_new_object();

	json_object_object_add(p, "name", json_object_new_string(name));
	json_object_object_add(p, vtype, value);
	json_object_array_add(list, p);
}

/* "a,b,c" from a list (malloc'd). */
static char *join(const char *const *l)
{
	size_t n = 1;
	char *out;

	for (size_t i = 0; l[i]; i++)
		n += strlen(l[i]) + 1;
	out = calloc(1, n);
	if (!out)
		return NULL;
	for (size_t i = 0; l[i]; i++) {
		if (i)
			strcat(out, ",");
		strcat(out, l[i]);
	}
	return out;
}

static void add_joined(json_object *list, const struct opt_store *st, enum opt_id id, const char *name)
{
	const char *const *l = opt_list(st, id);
	char *s;

	if (!l)
		return;
	s = join(l);
	if (s)
		add_param(list, name, "valueString", json_object_new_string(s));
	free(s);
}

static void add_each(json_object *list, const struct opt_store *st, enum opt_id id, const char *name,
		     const char *vtype)
{
	const char *const *l = opt_list(st, id);

	for (size_t i = 0; l && l[i]; i++)
		add_param(list, name, vtype, json_object_new_string(l[i]));
}

json_object *req_parameters(const struct opt_store *st, char **err)
{
	json_object *params = json_object_new_object(), *list = json_object_new_array();
	const char *const *l;
	const char *s;

	json_object_object_add(params, "resourceType", json_object_new_string("Parameters"));
	json_object_object_add(params, "parameter", list);
	/* one comma list, as most servers expect for GET */
	add_joined(list, st, O_TYPE, "_type");
	if ((s = opt_str(st, O_SINCE)))
		add_param(list, "_since", "valueInstant", json_object_new_string(s));
	if ((s = opt_str(st, O_UNTIL)))
		add_param(list, "_until", "valueInstant", json_object_new_string(s));
	if ((s = opt_str(st, O_OUTPUT_FORMAT)))
		add_param(list, "_outputFormat", "valueString", json_object_new_string(s));
	add_joined(list, st, O_ELEMENTS, "_elements");
	add_each(list, st, O_TYPE_FILTER, "_typeFilter", "valueString");
	add_each(list, st, O_INCLUDE_ASSOCIATED, "includeAssociatedData", "valueCode");
	l = opt_list(st, O_PATIENT);
	for (size_t i = 0; l && l[i]; i++) {
		json_object *ref = json_object_new_object();
		char *r = NULL;

		if (strchr(l[i], '/'))
			r = strdup(l[i]);   /* already "Patient/x" */
		else if (asprintf(&r, "Patient/%s", l[i]) < 0)
			r = NULL;
		json_object_object_add(ref, "reference", json_object_new_string(r ? r : l[i]));
		free(r);
		add_param(list, "patient", "valueReference", ref);
	}
	l = opt_list(st, O_CUSTOM);
	for (size_t i = 0; l && l[i]; i++) {
		const char *eq = strchr(l[i], '=');   /* the value may hold more '=' */
		char *name;

		if (!eq || eq == l[i]) {
			err_set(err, "--custom \"%s\" must look like NAME=VALUE", l[i]);
			json_object_put(params);
			return NULL;
		}
		name = strndup(l[i], (size_t)(eq - l[i]));
		if (name)
			add_param(list, name, "valueString", json_object_new_string(eq + 1));
		free(name);
	}
	return params;
}

int req_check_header(const char *h, char **err)
{
	static const char tchar[] = "!#$%&'*+-.^_`|~0123456789"
				    "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";
	size_t n = strspn(h, tchar);

	if (!n || h[n] != ':') {
		/* not echoed: it may be a mistyped credential */
		err_set(err, "--header values must look like \"Name: value\"");
		return -1;
	}
	for (const char *p = h + n + 1; *p; p++) {
		if (*p == '\r' || *p == '\n') {
			err_set(err, "--header \"%.*s\" has a line break in its value", (int)n, h);
			return -1;
		}
	}
	return 0;
}
