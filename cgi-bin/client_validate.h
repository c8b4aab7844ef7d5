/* Validation of a client registration (POST /auth/register JSON, and
 * the admin HTML forms in ui_clients.c, which build the same JSON object). */
#ifndef CLIENT_VALIDATE_H
#define CLIENT_VALIDATE_H
#include <json-c/json.h>

struct client_input {
	char *name;                 /* 1..200 characters */
	char *fhir_base_url;        /* absolute http(s), no userinfo/query/fragment, no trailing '/' */
	json_object *jwks;          /* inline public JWKS (validated), or NULL */
	char *jwks_uri;             /* or this http(s) URL ... */
	json_object *jwks_fetched;  /* ... whose JWKS was fetched and validated now */
	char *provider_client_id;   /* our client_id at the provider; NULL when provider_auth is open */
	char *provider_auth;        /* "smart" or "open" */
	char *scope;                /* NULL: config default_scope */
	char *kickoff_method;       /* "post" or "get" */
};

/* Validate `in` (borrowed; a JSON object).  Fetches jwks_uri (10 s
 * timeout).  Returns 0 with *out filled (release with client_input_free), or
 * -1 with *field (the offending member, e.g. "jwks") and *msg (what is wrong,
 * e.g. "keys[0]: RSA key is 1024 bits; at least 2048 required"), both
 * malloc'd; *out is then empty. */
int client_validate(json_object *in, struct client_input *out, char **field, char **msg);

/* The same checks restricted to a part, for the admin UI's separate edit
 * and replace-keys forms: CV_META (name, fhir_base_url, provider_auth,
 * provider_client_id, scope, kickoff_method, RFC 7591 metadata) and/or
 * CV_KEYS (jwks or jwks_uri).  client_validate is CV_ALL. */
#define CV_META 1u
#define CV_KEYS 2u
#define CV_ALL (CV_META | CV_KEYS)
int client_validate_parts(json_object *in, unsigned parts, struct client_input *out, char **field, char **msg);
void client_input_free(struct client_input *c);

#endif
