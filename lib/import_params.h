/* The body of a Bulk Data Import ping ($import): a FHIR Parameters resource
 * with exportUrl, exportType and the kick-off parameters that are passed
 * through to the provider's $export.  Pure (no I/O), so unit-testable.
 *
 * Accepted parameters (value[x] types accepted -> type stored):
 *   exportUrl        valueUrl|valueUri|valueString, required, absolute http(s)
 *   exportType       valueCode|valueString: "dynamic" (default) | "static"
 *   _type            valueString|valueCode -> valueString, repeatable,
 *                    comma-separated resource type names
 *   _since, _until   valueInstant|valueDateTime|valueString -> valueInstant,
 *                    FHIR instant (YYYY-MM-DDThh:mm:ss[.fff](Z|+hh:mm))
 *   _outputFormat    valueString|valueCode -> valueString
 *   _elements        valueString -> valueString, repeatable
 *   _typeFilter      valueString -> valueString, repeatable
 *   includeAssociatedData valueCode|valueString -> valueCode, repeatable
 *   patient          valueReference (with "reference"), repeatable
 *   organizeOutputBy valueString|valueCode -> valueString
 *   allowPartialManifests valueBoolean
 * Anything else is an error naming the parameter. */
#ifndef IMPORT_PARAMS_H
#define IMPORT_PARAMS_H
#include <json-c/json.h>

struct import_params {
	char *export_url;     /* owned */
	char *export_type;    /* owned: "dynamic" or "static" */
	json_object *params;  /* owned: {"resourceType":"Parameters"[, "parameter":[...]]}
	                       * holding exactly the pass-through kick-off parameters */
};

/* Validate `body` (borrowed).  0 and *out filled (free with
 * import_params_free), or -1 and *err (malloc'd) saying which parameter is
 * wrong and why; *out is then left empty. */
int import_params_parse(json_object *body, struct import_params *out, char **err);
void import_params_free(struct import_params *p);

/* 1 if s is a FHIR instant (seconds required, time zone required). */
int import_params_instant_valid(const char *s);
/* 1 if s is an absolute http:// or https:// URL with a host, without
 * userinfo, fragment, whitespace or control characters. */
int import_params_url_valid(const char *s);

#endif
