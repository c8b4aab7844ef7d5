/* OperationOutcome helpers (lib/oo.c). */
#include "t.h"
#include "oo.h"
#include <stdlib.h>
#include <string.h>

static const char *issue_str(json_object *oo, size_t i, const char *key)
{
	json_object *arr, *is, *v;

	if (!json_object_object_get_ex(oo, "issue", &arr) || !(is = json_object_array_get_idx(arr, i)) ||
	    !json_object_object_get_ex(is, key, &v))
		return NULL;
	return json_object_get_string(v);
}

int main(void)
{
	json_object *oo, *rt, *arr;
	char *s;

	oo = oo_new("error", "not-found", "no such import");
	T_CHECK(oo != NULL, "oo_new returns an object");
	T_CHECK(json_object_object_get_ex(oo, "resourceType", &rt) &&
		!strcmp(json_object_get_string(rt), "OperationOutcome"), "resourceType is OperationOutcome");
	T_CHECK(json_object_object_get_ex(oo, "issue", &arr) && json_object_array_length(arr) == 1, "one issue");
	T_CHECK(!strcmp(issue_str(oo, 0, "severity"), "error"), "severity kept");
	T_CHECK(!strcmp(issue_str(oo, 0, "code"), "not-found"), "code kept");
	T_CHECK(!strcmp(issue_str(oo, 0, "diagnostics"), "no such import"), "diagnostics kept");
	T_CHECK(oo_add_issue(oo, "warning", "throttled", NULL) == 0, "oo_add_issue ok");
	T_CHECK(json_object_array_length(arr) == 2, "two issues");
	T_CHECK(issue_str(oo, 1, "diagnostics") == NULL, "NULL diagnostics left out");
	T_CHECK(oo_add_issue(NULL, "error", "invalid", "x") == -1, "oo_add_issue rejects NULL");
	json_object_put(oo);

	oo = oo_new("bogus", "not-a-code", "");
	T_CHECK(!strcmp(issue_str(oo, 0, "severity"), "error"), "invalid severity becomes error");
	T_CHECK(!strcmp(issue_str(oo, 0, "code"), "exception"), "invalid code becomes exception");
	T_CHECK(issue_str(oo, 0, "diagnostics") == NULL, "empty diagnostics left out");
	json_object_put(oo);

	oo = oo_new(NULL, NULL, NULL);
	T_CHECK(oo && !strcmp(issue_str(oo, 0, "code"), "exception"), "NULL arguments tolerated");
	json_object_put(oo);

	T_CHECK(oo_code_valid("throttled") && oo_code_valid("transient") && oo_code_valid("forbidden") &&
		oo_code_valid("informational"), "known codes valid");
	T_CHECK(!oo_code_valid("Throttled") && !oo_code_valid("") && !oo_code_valid(NULL), "unknown codes invalid");
	T_CHECK(oo_severity_valid("information") && oo_severity_valid("fatal") && !oo_severity_valid("info"),
		"severities");

	s = oo_string("information", "informational", "Import accepted \"quoted\" </script> \n");
	T_CHECK(s && !strcmp(s, "{\"resourceType\":\"OperationOutcome\",\"issue\":[{\"severity\":\"information\","
			     "\"code\":\"informational\",\"diagnostics\":\"Import accepted \\\"quoted\\\" </script> \\n\"}]}"),
		"oo_string is compact JSON with escaping");
	free(s);

	oo = oo_for_line("error", "invalid", "http://p/1.Patient.ndjson", 3, "invalid JSON");
	T_CHECK(!strcmp(issue_str(oo, 0, "diagnostics"), "http://p/1.Patient.ndjson line 3: invalid JSON"),
		"oo_for_line with line");
	json_object_put(oo);
	oo = oo_for_line("warning", "processing", "http://p/x", 0, "count mismatch");
	T_CHECK(!strcmp(issue_str(oo, 0, "diagnostics"), "http://p/x: count mismatch"), "oo_for_line without line");
	json_object_put(oo);
	oo = oo_for_line("information", "informational", NULL, 5, "done");
	T_CHECK(!strcmp(issue_str(oo, 0, "diagnostics"), "done"), "oo_for_line without file");
	json_object_put(oo);
	return t_done();
}
