/* Key generator (GET/POST /admin/keys): a key pair for a Data Provider,
 * shown once as JWK and PEM.  The private key is never stored or logged;
 * like every /admin page the answer is Cache-Control: no-store, and the
 * page's "use this public key" button sends only the public JWKS to the
 * registration form. */
#include "handlers.h"
#include "jose.h"
#include "log.h"
#include "ui.h"
#include <openssl/crypto.h>
#include <stdlib.h>
#include <string.h>

static const char *const ALGS[] = { "ES384", "ES256", "ES512", "RS384", "RS256", "RS512", NULL };
static const char *const BITS[] = { "2048", "3072", "4096", NULL };

static void choices(HDF *h, const char *alg, const char *bits)
{
	int i;

	for (i = 0; ALGS[i]; i++) {
		ui_set(h, ALGS[i], "Algs.%d.Name", i);
		if (!strcmp(ALGS[i], alg))
			ui_set(h, "1", "Algs.%d.Selected", i);
	}
	for (i = 0; BITS[i]; i++) {
		ui_set(h, BITS[i], "Bits.%d.Name", i);
		if (!strcmp(BITS[i], bits))
			ui_set(h, "1", "Bits.%d.Selected", i);
	}
}

int ui_keys(struct request *rq, struct reply *rp)
{
	HDF *h = ui_hdf(rq, "Key generator", "keys");

	choices(h, "ES384", "2048");
	return ui_render(rp, h, 200, "keys");
}

static char *pretty(json_object *o)
{
	char *s = strdup(json_object_to_json_string_ext(o, JSON_C_TO_STRING_PRETTY | JSON_C_TO_STRING_NOSLASHESCAPE));

	if (!s)
		abort();
	return s;
}

/* Free a string that held key material, wiping it first. */
static void wipe(char *s)
{
	if (s) {
		OPENSSL_cleanse(s, strlen(s));
		free(s);
	}
}

int ui_keys_generate(struct request *rq, struct reply *rp)
{
	const char *alg = form_get(&rq->form, "alg"), *bits = form_get(&rq->form, "bits");
	char *err = NULL, *pub_pem = NULL, *priv_pem = NULL, *pub_jwk = NULL, *priv_jwk = NULL, *jwks_s = NULL;
	json_object *pub = NULL, *priv = NULL, *jwks = NULL, *keys, *kid;
	EVP_PKEY *key = NULL;
	HDF *h;
	int rc = -1;

	if (ui_one_of(alg, ALGS) < 0 || (bits && ui_one_of(bits, BITS) < 0))
		return ui_error(rq, rp, 400, "Choose one of the offered algorithms and key sizes.");
	if (!bits)
		bits = "2048";
	h = ui_hdf(rq, "Key generator", "keys");
	choices(h, alg, bits);
	key = jose_keygen(alg, atoi(bits), &err);
	pub = key ? jose_pkey_to_jwk(key, alg, 0) : NULL;
	priv = key ? jose_pkey_to_jwk(key, alg, 1) : NULL;
	pub_pem = key ? jose_pkey_to_pem(key, 0) : NULL;
	priv_pem = key ? jose_pkey_to_pem(key, 1) : NULL;
	if (!pub || !priv || !pub_pem || !priv_pem) {
		log_error("key generation (%s) failed: %s", alg, err ? err : "conversion failed");
		goto out;
	}
	/* the registration form wants a public JWKS */
	json_object_object_add(pub, "use", json_object_new_string("sig"));
	jwks = json_object_new_object();
	keys = json_object_new_array();
	json_object_array_add(keys, json_object_get(pub));
	json_object_object_add(jwks, "keys", keys);
	pub_jwk = pretty(pub);
	priv_jwk = pretty(priv);
	jwks_s = strdup(json_object_to_json_string_ext(jwks, JSON_C_TO_STRING_PLAIN | JSON_C_TO_STRING_NOSLASHESCAPE));
	if (!jwks_s)
		abort();
	json_object_object_get_ex(pub, "kid", &kid);
	ui_set(h, alg, "Key.Alg");
	if (alg[0] == 'R')
		ui_set(h, bits, "Key.Bits");
	ui_set(h, json_object_get_string(kid), "Key.Kid");
	ui_set(h, pub_jwk, "Key.PublicJwk");
	ui_set(h, jwks_s, "Key.PublicJwks");
	ui_set(h, pub_pem, "Key.PublicPem");
	/* shown once, on purpose; never stored, never logged */
	ui_set(h, priv_jwk, "Key.PrivateJwk");
	ui_set(h, priv_pem, "Key.PrivatePem");
	rc = ui_render(rp, h, 200, "keys");
	h = NULL;
	log_info("administrator %s generated a %s key pair (kid %s); it was not stored", rq->remote_user, alg,
		 json_object_get_string(kid));
out:
	if (h)
		hdf_destroy(&h);
	EVP_PKEY_free(key);
	json_object_put(pub);
	json_object_put(priv);
	json_object_put(jwks);
	wipe(priv_jwk);
	wipe(priv_pem);
	free(pub_pem);
	free(pub_jwk);
	free(jwks_s);
	free(err);
	return rc;
}
