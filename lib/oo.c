#include "oo.h"
#include "buf.h"
#include <stdlib.h>
#include <string.h>

static const char *const SEVERITIES[] = { "fatal", "error", "warning", "information", NULL };

/* http://hl7.org/fhir/R4/valueset-issue-type.html */
static const char *const CODES[] = {
	"invalid", "structure", "required", "value", "invariant",
	"security", "login", "unknown", "expired", "forbidden", "suppressed",
	"processing", "not-supported", "duplicate", "multiple-matches", "not-found",
	"deleted", "too-long", "code-invalid", "extension", "too-costly",
	"business-rule", "conflict",
	"transient", "lock-error", "no-store", "exception", "timeout", "incomplete", "throttled",
	"informational", NULL
};

static int in_list(const char *const *list, const char *s)
{
	if (!s)
		return 0;
	for (; *list; list++)
		if (!strcmp(*list, s))
			return 1;
	return 0;
}

int oo_severity_valid(const char *s)
{
	return in_list(SEVERITIES, s);
}

int oo_code_valid(const char *c)
{
	return in_list(CODES, c);
}

static json_object *issue(const char *severity, const char *code, const char *diagnostics)
{
	json_object *i = json_object_new_object();

	if (!i)
		return NULL;
	json_object_object_add(i, "severity",
			       json_object_new_string(oo_severity_valid(severity) ? severity : "error"));
	json_object_object_add(i, "code", json_object_new_string(oo_code_valid(code) ? code : "exception"));
	if (diagnostics && *diagnostics)
		json_object_object_add(i, "diagnostics", json_object_new_string(diagnostics));
	return i;
}

json_object *oo_new(const char *severity, const char *code, const char *diagnostics)
{
	json_object *oo = json_object_new_object(), *arr = json_object_new_array(), *i;

	i = issue(severity, code, diagnostics);
	if (!oo || !arr || !i) {
		json_object_put(oo);
		json_object_put(arr);
		json_object_put(i);
		return NULL;
	}
	json_object_object_add(oo, "resourceType", json_object_new_string("OperationOutcome"));
	json_object_array_add(arr, i);
	json_object_object_add(oo, "issue", arr);
	return oo;
}

int oo_add_issue(json_object *oo, const char *severity, const char *code, const char *diagnostics)
{
	json_object *arr, *i;

	if (!oo || !json_object_object_get_ex(oo, "issue", &arr) || !json_object_is_type(arr, json_type_array))
		return -1;
	i = issue(severity, code, diagnostics);
	if (!i)
		return -1;
	json_object_array_add(arr, i);
	return 0;
}

json_object *oo_for_line(const char *severity, const char *code, const char *file_url,
			 long long line, const char *diagnostics)
{
	struct buf d = BUF_INIT;
	json_object *oo;

	if (!diagnostics)
		diagnostics = "";
	if (file_url && line > 0)
		buf_printf(&d, "%s line %lld: %s", file_url, line, diagnostics);
	else if (file_url)
		buf_printf(&d, "%s: %s", file_url, diagnostics);
	else
		buf_puts(&d, diagnostics);
	oo = oo_new(severity, code, buf_str(&d));
	buf_free(&d);
	return oo;
}

char *oo_string(const char *severity, const char *code, const char *diagnostics)
{
	json_object *oo = oo_new(severity, code, diagnostics);
	char *s;

	if (!oo)
		abort();
	s = strdup(json_object_to_json_string_ext(oo, JSON_C_TO_STRING_PLAIN | JSON_C_TO_STRING_NOSLASHESCAPE));
	json_object_put(oo);
	if (!s)
		abort();
	return s;
}
