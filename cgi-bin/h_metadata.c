/* GET /metadata: FHIR R4 CapabilityStatement advertising $import and the
 * SMART token/registration endpoints. */
#include "handlers.h"
#include "buf.h"
#include "web.h"
#include <time.h>

#define IMPORT_OPDEF "http://hl7.org/fhir/uv/bulkdata/OperationDefinition/import"

static json_object *str(const char *s)
{
	return json_object_new_string(s);
}

static json_object *uri_ext(const char *name, const char *path)
{
	struct buf b = BUF_INIT;
	json_object *e = json_object_new_object();

	buf_printf(&b, "%s%s", web_base(), path);
	json_object_object_add(e, "url", str(name));
	json_object_object_add(e, "valueUri", str(buf_str(&b)));
	buf_free(&b);
	return e;
}

int h_metadata(struct request *rq, struct reply *rp)
{
	static char started[32];
	json_object *cs = json_object_new_object(), *a, *rest, *sec, *ext, *oauth, *svc, *coding, *op, *sw, *impl;

	if (!started[0]) {   /* date: when this process started serving */
		time_t t = time(NULL);
		struct tm tm;
		gmtime_r(&t, &tm);
		strftime(started, sizeof started, "%Y-%m-%dT%H:%M:%SZ", &tm);
	}
	json_object_object_add(cs, "resourceType", str("CapabilityStatement"));
	json_object_object_add(cs, "status", str("active"));
	json_object_object_add(cs, "date", str(started));
	json_object_object_add(cs, "kind", str("instance"));
	sw = json_object_new_object();
	json_object_object_add(sw, "name", str("bulk-import"));
	json_object_object_add(cs, "software", sw);
	impl = json_object_new_object();
	json_object_object_add(impl, "description", str("FHIR Bulk Data Import (ping and pull) consumer"));
	json_object_object_add(impl, "url", str(web_base()));
	json_object_object_add(cs, "implementation", impl);
	json_object_object_add(cs, "fhirVersion", str("4.0.1"));
	a = json_object_new_array();
	json_object_array_add(a, str("json"));
	json_object_array_add(a, str("application/fhir+json"));
	json_object_object_add(cs, "format", a);

	rest = json_object_new_object();
	json_object_object_add(rest, "mode", str("server"));
	sec = json_object_new_object();
	oauth = json_object_new_object();
	json_object_object_add(oauth, "url", str("http://fhir-registry.smarthealthit.org/StructureDefinition/oauth-uris"));
	a = json_object_new_array();
	json_object_array_add(a, uri_ext("token", "/auth/token"));
	json_object_array_add(a, uri_ext("register", "/auth/register"));
	json_object_object_add(oauth, "extension", a);
	ext = json_object_new_array();
	json_object_array_add(ext, oauth);
	json_object_object_add(sec, "extension", ext);
	coding = json_object_new_object();
	json_object_object_add(coding, "system", str("http://terminology.hl7.org/CodeSystem/restful-security-service"));
	json_object_object_add(coding, "code", str("SMART-on-FHIR"));
	a = json_object_new_array();
	json_object_array_add(a, coding);
	svc = json_object_new_object();
	json_object_object_add(svc, "coding", a);
	a = json_object_new_array();
	json_object_array_add(a, svc);
	json_object_object_add(sec, "service", a);
	json_object_object_add(rest, "security", sec);
	op = json_object_new_object();
	json_object_object_add(op, "name", str("import"));
	json_object_object_add(op, "definition", str(IMPORT_OPDEF));
	a = json_object_new_array();
	json_object_array_add(a, op);
	json_object_object_add(rest, "operation", a);
	a = json_object_new_array();
	json_object_array_add(a, rest);
	json_object_object_add(cs, "rest", a);

	reply_json(rp, 200, "application/fhir+json", cs);
	json_object_put(cs);
	return 0;
}
