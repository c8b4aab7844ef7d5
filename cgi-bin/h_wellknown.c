/* GET /.well-known/smart-configuration: SMART discovery for clients of the
 * consumer's token endpoint. */
#include "handlers.h"
#include "buf.h"
#include "web.h"

static json_object *strings(const char *const *v)
{
	json_object *a = json_object_new_array();

	for (; *v; v++)
		json_object_array_add(a, json_object_new_string(*v));
	return a;
}

static void add_url(json_object *o, const char *key, const char *path)
{
	struct buf b = BUF_INIT;

	buf_printf(&b, "%s%s", web_base(), path);
	json_object_object_add(o, key, json_object_new_string(buf_str(&b)));
	buf_free(&b);
}

int h_wellknown(struct request *rq, struct reply *rp)
{
	static const char *const methods[] = { "private_key_jwt", NULL };
	static const char *const algs[] = { "RS256", "RS384", "RS512", "ES256", "ES384", "ES512", NULL };
	static const char *const grants[] = { "client_credentials", NULL };
	static const char *const scopes[] = { "system/*.write", "system/*.read", "system/*.*", "system/*.rs",
					      "system/*.cruds", NULL };
	static const char *const caps[] = { "client-confidential-asymmetric", NULL };
	json_object *o = json_object_new_object();

	json_object_object_add(o, "issuer", json_object_new_string(web_base()));
	add_url(o, "token_endpoint", "/auth/token");
	add_url(o, "registration_endpoint", "/auth/register");
	add_url(o, "jwks_uri", "/jwks");
	json_object_object_add(o, "token_endpoint_auth_methods_supported", strings(methods));
	json_object_object_add(o, "token_endpoint_auth_signing_alg_values_supported", strings(algs));
	json_object_object_add(o, "grant_types_supported", strings(grants));
	json_object_object_add(o, "scopes_supported", strings(scopes));
	json_object_object_add(o, "capabilities", strings(caps));
	reply_json(rp, 200, "application/json", o);
	json_object_put(o);
	return 0;
}
