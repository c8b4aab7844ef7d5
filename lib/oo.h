/* FHIR OperationOutcome helpers.
 *
 *   {"resourceType":"OperationOutcome",
 *    "issue":[{"severity":..., "code":..., "diagnostics":...}]}
 *
 * Ownership: returned json_object * belongs to the caller (json_object_put),
 * returned char * to the caller (free).  String arguments are copied. */
#ifndef OO_H
#define OO_H
#include <json-c/json.h>

/* 1 if `s` is a FHIR issue severity (fatal, error, warning, information). */
int oo_severity_valid(const char *s);
/* 1 if `c` is a FHIR R4 issue type code (invalid, not-found, throttled, ...). */
int oo_code_valid(const char *c);

/* New OperationOutcome with one issue.  An invalid or NULL severity becomes
 * "error", an invalid or NULL code "exception"; NULL or empty diagnostics
 * are left out.  NULL only on allocation failure. */
json_object *oo_new(const char *severity, const char *code, const char *diagnostics);

/* Append one more issue (same rules as oo_new).  0 ok, -1 on bad `oo`. */
int oo_add_issue(json_object *oo, const char *severity, const char *code, const char *diagnostics);

/* One outcome-file entry: like oo_new, with the diagnostics prefixed by the
 * file and line it is about: "<file_url> line <line>: <diagnostics>"
 * (line <= 0: "<file_url>: <diagnostics>"; file_url NULL: unchanged). */
json_object *oo_for_line(const char *severity, const char *code, const char *file_url,
			 long long line, const char *diagnostics);

/* Compact JSON text (no pretty printing, '/' not escaped) of oo_new(...).
 * Never NULL (aborts on allocation failure). */
char *oo_string(const char *severity, const char *code, const char *diagnostics);

#endif
