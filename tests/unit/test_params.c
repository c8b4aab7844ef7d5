/* $import Parameters parsing and validation (lib/import_params.c). */
#include "t.h"
#include "import_params.h"
#include <stdlib.h>
#include <string.h>

static int parse(const char *json, struct import_params *p, char **err)
{
	json_object *o = json_tokener_parse(json);
	int rc;

	*err = NULL;
	rc = import_params_parse(o, p, err);
	json_object_put(o);
	return rc;
}

/* expect failure whose message contains `needle` */
static int fails_with(const char *json, const char *needle)
{
	struct import_params p;
	char *err;
	int ok;

	ok = parse(json, &p, &err) == -1 && err && strstr(err, needle) && !p.export_url && !p.params;
	if (!ok)
		printf("# got: %s\n", err ? err : "(no error)");
	free(err);
	import_params_free(&p);
	return ok;
}

#define P(body) "{\"resourceType\":\"Parameters\",\"parameter\":[" body "]}"
#define URL "{\"name\":\"exportUrl\",\"valueUrl\":\"https://ehr.example/fhir/$export\"}"

int main(void)
{
	struct import_params p;
	char *err;
	json_object *arr, *e, *v;
	const char *s;

	/* minimal */
	T_CHECK(parse(P(URL), &p, &err) == 0 && !err, "minimal body accepted");
	T_CHECK(p.export_url && !strcmp(p.export_url, "https://ehr.example/fhir/$export"), "exportUrl kept");
	T_CHECK(p.export_type && !strcmp(p.export_type, "dynamic"), "exportType defaults to dynamic");
	s = json_object_to_json_string_ext(p.params, JSON_C_TO_STRING_PLAIN);
	T_CHECK(!strcmp(s, "{\"resourceType\":\"Parameters\"}"), "no pass-through parameters");
	import_params_free(&p);

	/* everything */
	T_CHECK(parse(P("{\"name\":\"exportUrl\",\"valueString\":\"http://127.0.0.1:9/fhir/Group/1/$export?x=1\"},"
			"{\"name\":\"exportType\",\"valueCode\":\"static\"},"
			"{\"name\":\"_type\",\"valueString\":\"Patient,Observation\"},"
			"{\"name\":\"_type\",\"valueCode\":\"Condition\"},"
			"{\"name\":\"_since\",\"valueDateTime\":\"2020-01-02T03:04:05.123+01:00\"},"
			"{\"name\":\"_until\",\"valueInstant\":\"2021-01-02T03:04:05Z\"},"
			"{\"name\":\"_outputFormat\",\"valueString\":\"application/fhir+ndjson\"},"
			"{\"name\":\"_elements\",\"valueString\":\"id,meta\"},"
			"{\"name\":\"_typeFilter\",\"valueString\":\"Observation?status=final\"},"
			"{\"name\":\"_typeFilter\",\"valueString\":\"Patient?active=true\"},"
			"{\"name\":\"includeAssociatedData\",\"valueString\":\"LatestProvenanceResources\"},"
			"{\"name\":\"patient\",\"valueReference\":{\"reference\":\"Patient/1\"}},"
			"{\"name\":\"patient\",\"valueReference\":{\"reference\":\"Patient/2\"}},"
			"{\"name\":\"organizeOutputBy\",\"valueString\":\"Patient\"},"
			"{\"name\":\"allowPartialManifests\",\"valueBoolean\":true}"), &p, &err) == 0,
		"all parameters accepted");
	T_CHECK(p.export_type && !strcmp(p.export_type, "static"), "exportType static");
	T_CHECK(json_object_object_get_ex(p.params, "parameter", &arr) && json_object_array_length(arr) == 13,
		"13 pass-through parameters");
	e = json_object_array_get_idx(arr, 2);
	T_CHECK(json_object_object_get_ex(e, "valueInstant", &v) &&
		!strcmp(json_object_get_string(v), "2020-01-02T03:04:05.123+01:00"), "_since normalised to valueInstant");
	e = json_object_array_get_idx(arr, 1);
	T_CHECK(json_object_object_get_ex(e, "valueString", &v) && !strcmp(json_object_get_string(v), "Condition"),
		"_type valueCode stored as valueString");
	e = json_object_array_get_idx(arr, 8);
	T_CHECK(json_object_object_get_ex(e, "valueCode", &v), "includeAssociatedData stored as valueCode");
	e = json_object_array_get_idx(arr, 12);
	T_CHECK(json_object_object_get_ex(e, "valueBoolean", &v) && json_object_get_boolean(v),
		"allowPartialManifests boolean");
	T_CHECK(strstr(json_object_to_json_string(p.params), "exportUrl") == NULL, "exportUrl not passed through");
	import_params_free(&p);

	/* extension/id tolerated; valueUri */
	T_CHECK(parse(P("{\"id\":\"a\",\"extension\":[],\"name\":\"exportUrl\",\"valueUri\":\"HTTPS://x.example\"}"),
		      &p, &err) == 0, "valueUri, id and extension accepted");
	import_params_free(&p);

	/* errors */
	T_CHECK(fails_with("[]", "Parameters resource"), "array body rejected");
	T_CHECK(fails_with("{\"resourceType\":\"Patient\"}", "Parameters"), "wrong resourceType rejected");
	T_CHECK(fails_with("{\"resourceType\":\"Parameters\"}", "exportUrl is required"), "no parameters");
	T_CHECK(fails_with("{\"resourceType\":\"Parameters\",\"parameter\":{}}", "must be an array"), "parameter not array");
	T_CHECK(fails_with(P("{\"name\":\"exportType\",\"valueCode\":\"static\"}"), "exportUrl is required"),
		"missing exportUrl");
	T_CHECK(fails_with(P(URL ",{\"name\":\"bogus\",\"valueString\":\"x\"}"), "unknown parameter 'bogus'"),
		"unknown parameter named");
	T_CHECK(fails_with(P(URL "," URL), "(exportUrl): may appear only once"), "duplicate exportUrl");
	T_CHECK(fails_with(P("{\"name\":\"exportUrl\",\"valueUrl\":\"ftp://x/y\"}"), "not an absolute http"),
		"ftp URL rejected");
	T_CHECK(fails_with(P("{\"name\":\"exportUrl\",\"valueUrl\":\"/fhir/$export\"}"), "not an absolute http"),
		"relative URL rejected");
	T_CHECK(fails_with(P("{\"name\":\"exportUrl\",\"valueUrl\":\"https://u:p@x/fhir\"}"), "not an absolute http"),
		"userinfo rejected");
	T_CHECK(fails_with(P("{\"name\":\"exportUrl\",\"valueUrl\":\"https://x/fhir#f\"}"), "not an absolute http"),
		"fragment rejected");
	T_CHECK(fails_with(P("{\"name\":\"exportUrl\",\"valueCode\":\"https://x/fhir\"}"),
			   "valueCode is not allowed; expected valueUrl, valueUri or valueString"), "wrong value type");
	T_CHECK(fails_with(P("{\"name\":\"exportUrl\"}"), "missing value"), "missing value");
	T_CHECK(fails_with(P("{\"name\":\"exportUrl\",\"valueUrl\":\"https://x\",\"valueString\":\"https://x\"}"),
			   "more than one value"), "two values");
	T_CHECK(fails_with(P("{\"name\":\"exportUrl\",\"valueUrl\":42}"), "must be a string"), "non-string URL");
	T_CHECK(fails_with(P(URL ",{\"name\":\"exportType\",\"valueCode\":\"hybrid\"}"), "'hybrid' is not supported"),
		"bad exportType");
	T_CHECK(fails_with(P(URL ",{\"name\":\"_since\",\"valueInstant\":\"2020-01-01\"}"), "(_since): '2020-01-01' is not a FHIR instant"),
		"date-only _since rejected");
	T_CHECK(fails_with(P(URL ",{\"name\":\"_until\",\"valueString\":\"2020-13-01T00:00:00Z\"}"), "not a FHIR instant"),
		"month 13 rejected");
	T_CHECK(fails_with(P(URL ",{\"name\":\"_since\",\"valueInstant\":\"x\"},{\"name\":\"_since\",\"valueInstant\":\"y\"}"),
			   "FHIR instant"), "bad first _since reported");
	T_CHECK(fails_with(P(URL ",{\"name\":\"_type\",\"valueString\":\"Patient, Observation\"}"), "resource types"),
		"bad _type");
	T_CHECK(fails_with(P(URL ",{\"name\":\"patient\",\"valueString\":\"Patient/1\"}"), "valueString is not allowed"),
		"patient as string rejected");
	T_CHECK(fails_with(P(URL ",{\"name\":\"patient\",\"valueReference\":{}}"), "reference"), "patient without reference");
	T_CHECK(fails_with(P(URL ",{\"name\":\"allowPartialManifests\",\"valueBoolean\":\"yes\"}"), "true or false"),
		"non-boolean");
	T_CHECK(fails_with(P(URL ",{\"name\":\"_elements\",\"valueString\":\"\"}"), "is empty"), "empty string");
	T_CHECK(fails_with(P(URL ",{\"name\":\"_elements\",\"valueString\":\"a\\nb\"}"), "control characters"),
		"control characters");
	T_CHECK(fails_with(P(URL ",{\"name\":\"_elements\",\"valueString\":\"a\\u0000b\"}"), "control characters"),
		"embedded NUL in a value");
	T_CHECK(fails_with(P(URL ",{\"name\":\"_type\\u0000x\",\"valueString\":\"Patient\"}"), "NUL character"),
		"embedded NUL in a name");
	T_CHECK(fails_with(P(URL ",{\"name\":\"_outputFormat\",\"valueString\":\"a\",\"part\":[]}"), "unexpected member 'part'"),
		"part rejected");
	T_CHECK(fails_with(P(URL ",7"), "parameter[1]: must be an object"), "non-object entry");
	T_CHECK(fails_with(P("{\"valueString\":\"x\"}"), "\"name\" (a string) is required"), "entry without name");

	/* instant / URL helpers */
	T_CHECK(import_params_instant_valid("2024-02-29T23:59:60Z"), "leap second and Feb 29");
	T_CHECK(import_params_instant_valid("2024-02-29T23:59:59.123456789-05:00"), "nanoseconds and offset");
	T_CHECK(!import_params_instant_valid("2024-02-29T23:59:59"), "time zone required");
	T_CHECK(!import_params_instant_valid("2024-02-29T23:59:59.Z"), "empty fraction");
	T_CHECK(!import_params_instant_valid("2024-04-31T00:00:00Z"), "April 31");
	T_CHECK(!import_params_instant_valid("2024-01-01T24:00:00Z"), "hour 24");
	T_CHECK(!import_params_instant_valid("2024-01-01T00:00:00+0100"), "offset without colon");
	T_CHECK(!import_params_instant_valid(NULL), "NULL instant");
	T_CHECK(import_params_url_valid("http://a"), "http://a");
	T_CHECK(import_params_url_valid("https://a:8443/x?y=z"), "port, path and query");
	T_CHECK(!import_params_url_valid("https://:8443/x"), "no host");
	T_CHECK(!import_params_url_valid("https:///x"), "empty authority");
	T_CHECK(!import_params_url_valid("https://a/x y"), "space");
	T_CHECK(!import_params_url_valid("javascript:alert(1)"), "javascript scheme");
	return t_done();
}
