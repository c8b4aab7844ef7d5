#include "client_validate.h"
#include "buf.h"
#include "import_params.h"
#include "jose.h"
#include "url.h"
#include "web.h"
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

#define MAX_NAME 200
#define MAX_ID 255
#define MAX_SCOPE 1000

static int bad(char **field, char **msg, const char *f, const char *fmt, ...) __attribute__((format(printf, 4, 5)));
static int bad(char **field, char **msg, const char *f, const char *fmt, ...)
{
	struct buf m = BUF_INIT;
	va_list ap;

	va_start(ap, fmt);
	buf_vprintf(&m, fmt, ap);
	va_end(ap);
	*field = strdup(f);
	*msg = buf_detach(&m);
	if (!*field)
		abort();
	return -1;
}

/* Member `key` of `in`: NULL when absent or JSON null. */
static json_object *member(json_object *in, const char *key)
{
	json_object *v;

	if (!json_object_object_get_ex(in, key, &v) || json_object_is_type(v, json_type_null))
		return NULL;
	return v;
}

static int has_ctl(const char *s)
{
	for (; *s; s++)
		if ((unsigned char)*s < 0x20 || *s == 0x7f)
			return 1;
	return 0;
}

/* Optional string member: 0 ok (*out malloc'd or NULL), -1 error reported. */
static int opt_string(json_object *in, const char *key, size_t max, char **out, char **field, char **msg)
{
	json_object *v = member(in, key);
	const char *s;

	*out = NULL;
	if (!v)
		return 0;
	if (!json_object_is_type(v, json_type_string))
		return bad(field, msg, key, "must be a string");
	s = json_object_get_string(v);
	if (!*s)
		return bad(field, msg, key, "must not be empty");
	if (strlen(s) > max)
		return bad(field, msg, key, "longer than %zu characters", max);
	if (has_ctl(s) || (size_t)json_object_get_string_len(v) != strlen(s))
		return bad(field, msg, key, "contains control characters");
	*out = strdup(s);
	if (!*out)
		abort();
	return 0;
}

static int one_of(const char *s, const char *a, const char *b)
{
	return !strcmp(s, a) || !strcmp(s, b);
}

/* http(s) URL check shared by fhir_base_url and jwks_uri. */
static int check_url(const char *key, const char *u, int allow_query, char **field, char **msg)
{
	char *origin;

	if (!import_params_url_valid(u) || !url_is_http(u))
		return bad(field, msg, key, "must be an absolute http or https URL without user info or fragment");
	if (!allow_query && strchr(u, '?'))
		return bad(field, msg, key, "must not contain a query");
	origin = url_origin(u);
	if (!origin)
		return bad(field, msg, key, "is not a valid URL");
	free(origin);
	return 0;
}

/* Keys decide who may sign in as the client: plain http only to this
 * machine, where nobody sits in between. */
static int check_key_url(const char *u, char **field, char **msg)
{
	char *origin = url_origin(u);
	int ok = origin && (!strncmp(origin, "https://", 8) || !strncmp(origin, "http://127.", 11) ||
			    !strncmp(origin, "http://localhost:", 17) || !strncmp(origin, "http://[::1]:", 13));

	free(origin);
	return ok ? 0 : bad(field, msg, "jwks_uri", "must use https (plain http only on this machine)");
}

/* name and fhir_base_url */
static int check_identity(json_object *in, struct client_input *out, char **field, char **msg)
{
	size_t n;

	/* name (client_name accepted as in RFC 7591) */
	if (opt_string(in, "name", MAX_NAME, &out->name, field, msg) < 0)
		return -1;
	if (!out->name && opt_string(in, "client_name", MAX_NAME, &out->name, field, msg) < 0)
		return -1;
	if (!out->name) {
		bad(field, msg, "name", "is required");
		return -1;
	}

	/* fhir_base_url */
	if (opt_string(in, "fhir_base_url", 2048, &out->fhir_base_url, field, msg) < 0)
		return -1;
	if (!out->fhir_base_url) {
		bad(field, msg, "fhir_base_url", "is required");
		return -1;
	}
	if (check_url("fhir_base_url", out->fhir_base_url, 0, field, msg) < 0)
		return -1;
	n = strlen(out->fhir_base_url);
	while (n > 0 && out->fhir_base_url[n - 1] == '/' &&
	       out->fhir_base_url + n - 1 > strstr(out->fhir_base_url, "://") + 2)
		out->fhir_base_url[--n] = '\0';
	return 0;
}

/* jwks, or jwks_uri whose JWKS is fetched and validated now */
static int check_keys(json_object *in, struct client_input *out, char **field, char **msg)
{
	json_object *v;
	char *e = NULL;
	int rc = -1;

	/* jwks | jwks_uri */
	v = member(in, "jwks");
	if (v && member(in, "jwks_uri")) {
		bad(field, msg, "jwks", "give either jwks or jwks_uri, not both");
		goto out;
	}
	if (v) {
		if (json_object_is_type(v, json_type_string)) {
			/* an HTML form sends the JWKS as text */
			const char *s = json_object_get_string(v);
			out->jwks = web_parse_json(s, strlen(s), &e);
			if (!out->jwks || !json_object_is_type(out->jwks, json_type_object)) {
				bad(field, msg, "jwks", "must be a JWKS object {\"keys\":[...]} (or its JSON text)%s%s",
				    e ? ": " : "", e ? e : "");
				goto out;
			}
		} else if (json_object_is_type(v, json_type_object)) {
			json_object_deep_copy(v, &out->jwks, NULL);
		} else {
			bad(field, msg, "jwks", "must be a JWKS object {\"keys\":[...]}");
			goto out;
		}
		if (jose_jwks_validate(out->jwks, &e) < 0) {
			bad(field, msg, "jwks", "%s", e ? e : "invalid JWKS");
			goto out;
		}
	} else {
		if (opt_string(in, "jwks_uri", 2048, &out->jwks_uri, field, msg) < 0)
			goto out;
		if (!out->jwks_uri) {
			bad(field, msg, "jwks", "jwks or jwks_uri is required");
			goto out;
		}
		if (check_url("jwks_uri", out->jwks_uri, 1, field, msg) < 0 || check_key_url(out->jwks_uri, field, msg) < 0)
			goto out;
		out->jwks_fetched = web_fetch_jwks(out->jwks_uri, &e);
		if (!out->jwks_fetched) {
			bad(field, msg, "jwks_uri", "%s", e);
			goto out;
		}
	}
	rc = 0;
out:
	free(e);
	return rc;
}

/* how we talk to the provider, and RFC 7591 metadata */
static int check_provider(json_object *in, struct client_input *out, char **field, char **msg)
{
	json_object *v;
	char *tmp = NULL;

	/* provider_auth, provider_client_id */
	if (opt_string(in, "provider_auth", 16, &tmp, field, msg) < 0)
		return -1;
	out->provider_auth = tmp ? tmp : strdup("smart");
	tmp = NULL;
	if (!one_of(out->provider_auth, "smart", "open")) {
		bad(field, msg, "provider_auth", "must be \"smart\" or \"open\"");
		return -1;
	}
	if (opt_string(in, "provider_client_id", MAX_ID, &out->provider_client_id, field, msg) < 0)
		return -1;
	if (!out->provider_client_id && !strcmp(out->provider_auth, "smart")) {
		bad(field, msg, "provider_client_id", "is required unless provider_auth is \"open\"");
		return -1;
	}

	/* scope: RFC 6749 scope-token characters separated by single spaces */
	if (opt_string(in, "scope", MAX_SCOPE, &out->scope, field, msg) < 0)
		return -1;
	if (out->scope) {
		const char *p;
		for (p = out->scope; *p; p++)
			if (*p == '"' || *p == '\\' || (unsigned char)*p > 0x7e || (*p == ' ' && (p[1] == ' ' || !p[1] || p == out->scope))) {
				bad(field, msg, "scope", "must be space-separated scope tokens");
				return -1;
			}
	}

	/* kickoff_method */
	if (opt_string(in, "kickoff_method", 16, &tmp, field, msg) < 0)
		return -1;
	out->kickoff_method = tmp ? tmp : strdup("post");
	tmp = NULL;
	if (!one_of(out->kickoff_method, "post", "get")) {
		bad(field, msg, "kickoff_method", "must be \"post\" or \"get\"");
		return -1;
	}

	/* RFC 7591 metadata we can only honour one way */
	v = member(in, "token_endpoint_auth_method");
	if (v && (!json_object_is_type(v, json_type_string) || strcmp(json_object_get_string(v), "private_key_jwt"))) {
		bad(field, msg, "token_endpoint_auth_method", "only \"private_key_jwt\" is supported");
		return -1;
	}
	v = member(in, "grant_types");
	if (v) {
		size_t i, len;
		if (!json_object_is_type(v, json_type_array) || (len = json_object_array_length(v)) == 0) {
			bad(field, msg, "grant_types", "must be [\"client_credentials\"]");
			return -1;
		}
		for (i = 0; i < len; i++) {
			json_object *g = json_object_array_get_idx(v, i);
			if (!json_object_is_type(g, json_type_string) ||
			    strcmp(json_object_get_string(g), "client_credentials")) {
				bad(field, msg, "grant_types", "only \"client_credentials\" is supported");
				return -1;
			}
		}
	}
	if (!out->provider_auth || !out->kickoff_method)
		abort();
	return 0;
}

int client_validate(json_object *in, struct client_input *out, char **field, char **msg)
{
	return client_validate_parts(in, CV_ALL, out, field, msg);
}

int client_validate_parts(json_object *in, unsigned parts, struct client_input *out, char **field, char **msg)
{
	memset(out, 0, sizeof *out);
	*field = *msg = NULL;
	if (!in || !json_object_is_type(in, json_type_object))
		return bad(field, msg, "body", "must be a JSON object");
	if (((parts & CV_META) && check_identity(in, out, field, msg) < 0) ||
	    ((parts & CV_KEYS) && check_keys(in, out, field, msg) < 0) ||
	    ((parts & CV_META) && check_provider(in, out, field, msg) < 0)) {
		client_input_free(out);
		return -1;
	}
	return 0;
}

void client_input_free(struct client_input *c)
{
	free(c->name);
	free(c->fhir_base_url);
	json_object_put(c->jwks);
	free(c->jwks_uri);
	json_object_put(c->jwks_fetched);
	free(c->provider_client_id);
	free(c->provider_auth);
	free(c->scope);
	free(c->kickoff_method);
	memset(c, 0, sizeof *c);
}
