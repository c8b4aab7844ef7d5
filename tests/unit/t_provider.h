/* Test helpers for suites that talk to tests/provider/server.mjs. */
#ifndef T_PROVIDER_H
#define T_PROVIDER_H
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <json-c/json.h>
#include <openssl/evp.h>
#include "buf.h"
#include "http.h"
#include "jose.h"

/* Registers the public half of key at the provider on `port` (POST
 * /register with a JWKS); returns the client_id (malloc'd) or NULL. */
static __attribute__((unused)) char *t_register_client(int port, EVP_PKEY *key, const char *alg)
{
	json_object *jwk = jose_pkey_to_jwk(key, alg, 0), *body = json_object_new_object(), *keys, *jwks, *res, *v;
	static const char *const hdrs[] = { "Content-Type: application/json", NULL };
	struct http_req rq = { 0 };
	struct http_resp rs = { 0 };
	char url[128], *cid = NULL;

	jwks = json_object_new_object();
	keys = json_object_new_array();
	json_object_array_add(keys, jwk);
	json_object_object_add(jwks, "keys", keys);
	json_object_object_add(body, "jwks", jwks);
	snprintf(url, sizeof url, "http://127.0.0.1:%d/register", port);
	rq.url = url;
	rq.method = "POST";
	rq.headers = hdrs;
	rq.body = json_object_to_json_string(body);
	rq.body_len = strlen(rq.body);
	if (http_request(NULL, &rq, &rs) == 0 && rs.status == 201 && (res = json_tokener_parse(buf_str(&rs.body)))) {
		if (json_object_object_get_ex(res, "client_id", &v))
			cid = strdup(json_object_get_string(v));
		json_object_put(res);
	}
	http_resp_free(&rs);
	json_object_put(body);
	return cid;
}
#endif
