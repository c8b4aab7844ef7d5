/* bulk-import-keygen: create a key pair for SMART Backend Services.
 * Writes the private JWK (mode 0600) and the public JWKS, or prints both. */
#include "jose.h"
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static void usage(FILE *f)
{
	fprintf(f,
		"usage: bulk-import-keygen [--alg ALG] [--bits N] [--private FILE] [--jwks FILE] [--pem]\n"
		"  --alg ALG      RS256 RS384 RS512 ES256 ES384 ES512 (default ES384)\n"
		"  --bits N       RSA modulus size, at least 2048 (default 2048)\n"
		"  --private FILE write the private key as JWK here (created 0600, never overwritten)\n"
		"  --jwks FILE    write the public key as JWKS here\n"
		"  --pem          also print the keys as PEM\n");
}

/* Creates `path` exclusively with `mode`; refuses to overwrite a key. */
static int write_new(const char *path, const char *text, mode_t mode)
{
	int fd = open(path, O_WRONLY | O_CREAT | O_EXCL, mode);
	size_t n = strlen(text);

	if (fd < 0) {
		fprintf(stderr, "bulk-import-keygen: %s: %s\n", path, strerror(errno));
		return -1;
	}
	if (write(fd, text, n) != (ssize_t)n || write(fd, "\n", 1) != 1 || close(fd) < 0) {
		fprintf(stderr, "bulk-import-keygen: %s: write failed\n", path);
		return -1;
	}
	return 0;
}

int main(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "alg", required_argument, 0, 'a' }, { "bits", required_argument, 0, 'b' },
		{ "private", required_argument, 0, 'p' }, { "jwks", required_argument, 0, 'j' },
		{ "pem", no_argument, 0, 'P' }, { "help", no_argument, 0, 'h' }, { 0, 0, 0, 0 }
	};
	const char *alg = "ES384", *priv_path = NULL, *jwks_path = NULL;
	int bits = 0, pem = 0, c, rc = 1;
	json_object *priv = NULL, *pub = NULL, *jwks = NULL;
	char *err = NULL, *ppem = NULL, *upem = NULL;
	EVP_PKEY *key = NULL;

	while ((c = getopt_long(argc, argv, "", opts, NULL)) != -1) {
		switch (c) {
		case 'a': alg = optarg; break;
		case 'b': bits = atoi(optarg); break;
		case 'p': priv_path = optarg; break;
		case 'j': jwks_path = optarg; break;
		case 'P': pem = 1; break;
		case 'h': usage(stdout); return 0;
		default: usage(stderr); return 2;
		}
	}
	if (optind != argc || !jose_alg_supported(alg)) {
		usage(stderr);
		return 2;
	}
	key = jose_keygen(alg, bits, &err);
	if (!key) {
		fprintf(stderr, "bulk-import-keygen: %s\n", err ? err : "key generation failed");
		goto out;
	}
	priv = jose_pkey_to_jwk(key, alg, 1);
	pub = jose_pkey_to_jwk(key, alg, 0);
	jwks = json_object_new_object();
	json_object_object_add(jwks, "keys", json_object_new_array());
	json_object_array_add(json_object_object_get(jwks, "keys"), json_object_get(pub));
	if (priv_path) {
		if (write_new(priv_path, json_object_to_json_string_ext(priv, JSON_C_TO_STRING_PRETTY), 0600) < 0)
			goto out;
	} else {
		printf("private JWK:\n%s\n", json_object_to_json_string_ext(priv, JSON_C_TO_STRING_PRETTY));
	}
	if (jwks_path) {
		if (write_new(jwks_path, json_object_to_json_string_ext(jwks, JSON_C_TO_STRING_PRETTY), 0644) < 0)
			goto out;
	} else {
		printf("public JWKS:\n%s\n", json_object_to_json_string_ext(jwks, JSON_C_TO_STRING_PRETTY));
	}
	if (pem) {
		ppem = jose_pkey_to_pem(key, 1);
		upem = jose_pkey_to_pem(key, 0);
		if (!priv_path)
			printf("%s", ppem ? ppem : "");
		printf("%s", upem ? upem : "");
	}
	rc = 0;
out:
	free(err);
	free(ppem);
	free(upem);
	json_object_put(priv);
	json_object_put(pub);
	json_object_put(jwks);
	EVP_PKEY_free(key);
	return rc;
}
