/* bulk-import-token: get a SMART Backend Services access token.  Signs a
 * client assertion with a private key (JWK, JWKS or PEM) and prints the
 * access token on stdout, for scripts and the README walkthrough. */
#include "http.h"
#include "jose.h"
#include "smart_client.h"
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static void usage(FILE *f)
{
	fprintf(f,
		"usage: bulk-import-token (--token-url URL | --fhir-url URL) --client-id ID --private-key FILE\n"
		"                         [--alg ALG] [--scope SCOPE]\n"
		"  --token-url URL    token endpoint (or discover it from --fhir-url)\n"
		"  --fhir-url URL     FHIR base; token endpoint from .well-known/smart-configuration or metadata\n"
		"  --client-id ID     client_id registered at that server\n"
		"  --private-key FILE JWK, JWKS or PEM private key\n"
		"  --alg ALG          RS256..RS512, ES256..ES512 (default: the key's alg)\n"
		"  --scope SCOPE      default system/*.read\n");
}

int main(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "token-url", required_argument, 0, 't' }, { "fhir-url", required_argument, 0, 'f' },
		{ "client-id", required_argument, 0, 'c' }, { "private-key", required_argument, 0, 'k' },
		{ "alg", required_argument, 0, 'a' }, { "scope", required_argument, 0, 's' },
		{ "help", no_argument, 0, 'h' }, { 0, 0, 0, 0 }
	};
	const char *token_url = NULL, *fhir = NULL, *client_id = NULL, *key_path = NULL;
	const char *alg = NULL, *scope = "system/*.read", *tok;
	struct export_auth auth = { 0 };
	struct http_conf conf = { .user_agent = "bulk-import-token" };
	struct smart_client *s = NULL;
	json_object *jwk = NULL;
	EVP_PKEY *key = NULL;
	char *text = NULL, *err = NULL;
	int c, rc = 1;

	while ((c = getopt_long(argc, argv, "", opts, NULL)) != -1) {
		switch (c) {
		case 't': token_url = optarg; break;
		case 'f': fhir = optarg; break;
		case 'c': client_id = optarg; break;
		case 'k': key_path = optarg; break;
		case 'a': alg = optarg; break;
		case 's': scope = optarg; break;
		case 'h': usage(stdout); return 0;
		default: usage(stderr); return 2;
		}
	}
	if (optind != argc || (!token_url && !fhir) || !client_id || !key_path) {
		usage(stderr);
		return 2;
	}
	text = buf_read_file(key_path, &err);
	if (!text) {
		fprintf(stderr, "bulk-import-token: %s\n", err);
		goto out;
	}
	key = jose_load_key(text, 1, &jwk, &err);
	if (!key) {
		fprintf(stderr, "bulk-import-token: %s: %s\n", key_path, err ? err : "unusable key");
		goto out;
	}
	if (!alg)
		alg = json_object_get_string(json_object_object_get(jwk, "alg"));
	if (!alg || !jose_alg_supported(alg)) {
		fprintf(stderr, "bulk-import-token: say --alg (RS256..ES512)\n");
		goto out;
	}
	http_global_init();
	auth.client_id = client_id;
	auth.key = key;
	auth.alg = alg;
	auth.kid = json_object_get_string(json_object_object_get(jwk, "kid"));
	auth.scope = scope;
	auth.token_url = token_url;
	s = smart_new(&auth, fhir ? fhir : token_url, &conf);
	tok = s ? smart_token(s, &err, NULL) : NULL;
	if (!tok) {
		fprintf(stderr, "bulk-import-token: %s\n", err ? err : "failed");
		goto out;
	}
	printf("%s\n", tok);
	rc = 0;
out:
	smart_free(s);
	free(text);
	free(err);
	json_object_put(jwk);
	EVP_PKEY_free(key);
	return rc;
}
