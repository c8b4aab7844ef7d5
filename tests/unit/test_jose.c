/* Unit tests for lib/jose.c: keys, JWKs, thumbprints, JWKS validation,
 * client assertion signing and verification (including the negatives that
 * matter for security) and interoperability with Node's r||s ES tokens. */
#include "t.h"
#include "jose.h"
#include "b64.h"
#include "buf.h"
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <openssl/ec.h>
#include <openssl/hmac.h>
#include <openssl/pem.h>

static const char *const ALGS[] = { "RS256", "RS384", "RS512", "ES256", "ES384", "ES512" };
#define NALGS 6

#define CLIENT "client-1"
#define AUD "https://consumer.example/auth/token"
#define NOW 1700000000L

/* RFC 7638 section 3.1 example key and its thumbprint. */
static const char RFC7638_JWK[] =
	"{\"kty\":\"RSA\",\"n\":\"0vx7agoebGcQSuuPiLJXZptN9nndrQmbXEps2aiAFbWhM78LhWx4cbbfAAtVT86zwu1RK7aPFFxuhDR1L6tSoc_BJECPebWKRXjBZCiFV4n3oknjhMstn64tZ_2W-5JsGY4Hc5n9yBXArwl93lqt7_RN5w6Cf0h4QyQ5v-65YGjQR0_FDW2QvzqY368QQMicAtaSqzs8KJZgnYb9c7d0zgdAZHzu6qMQvRL5hajrn1n91CbOpbISD08qNLyrdkt-bFTWhAI4vMQFh6WeZu0fM4lFd2NcRwr3XPksINHaQ-G_xBniIqbw0Ls1jF44-csFCur-kEgU8awapJzKnqDKgw\","
	"\"e\":\"AQAB\",\"alg\":\"RS256\",\"kid\":\"2011-04-29\"}";
static const char RFC7638_THUMB[] = "NzbLsXh8uDCcd-6MNwXF4W_7noWXFZAfHkxZsRGC9Xs";

/* Generated once with Node 20 (crypto.generateKeyPairSync("ec", P-384),
 * crypto.sign("sha384", ..., {dsaEncoding: "ieee-p1363"})); kid computed by
 * Node as the RFC 7638 thumbprint.  exp 1700000300. */
static const char NODE_JWKS[] =
	"{\"keys\":[{\"kty\":\"EC\",\"crv\":\"P-384\",\"x\":\"aTp7O4YjczDFVHRBxi1ZqtkO78lqUqp1rgOwUJetUi901JVgapZp-JJqXkNG97xY\","
	"\"y\":\"0RppGgvOUD89okS5fE4TQXpBGn9NzsBwbSoYmnmVVIhkmVR8SkKPnRxa3wKqJmtL\","
	"\"kid\":\"SZgUJtqtvDmfjS720_YUE-jI3RWKjp6Xm2KWZgd_dF0\",\"alg\":\"ES384\",\"use\":\"sig\"}]}";
static const char NODE_TOKEN[] =
	"eyJhbGciOiJFUzM4NCIsImtpZCI6IlNaZ1VKdHF0dkRtZmpTNzIwX1lVRS1qSTNSV0tqcDZYbTJLV1pnZF9kRjAiLCJ0eXAiOiJKV1QifQ"
	".eyJpc3MiOiJmaXh0dXJlLWNsaWVudCIsInN1YiI6ImZpeHR1cmUtY2xpZW50IiwiYXVkIjoiaHR0cHM6Ly9jb25zdW1lci5leGFtcGxlL2F1dGgvdG9rZW4iLCJleHAiOjE3MDAwMDAzMDAsImlhdCI6MTcwMDAwMDAwMCwianRpIjoiNnpmLUFZMkpVRHA0UG1uRFJ4MFJudyJ9"
	".Y5lxLqpHiZk16IqKwSqkRcGQz5o-Gl1KqBf_jXGGGZuvL6jCxjOtBZvYKHbmqWMwJl8EQtWYvOZy_RosQS7e2l2BdXQCSEQAVE44sQEKzsIHzePlzL4039GyPF1CKEn3";
static const char NODE_KID[] = "SZgUJtqtvDmfjS720_YUE-jI3RWKjp6Xm2KWZgd_dF0";

/* Node-generated public JWKs we must refuse. */
static const char RSA1024_JWK[] =
	"{\"kty\":\"RSA\",\"kid\":\"small\",\"n\":\"wltkLU2mL1QfyKGkYybBEzRXJ8zdBgIinnE5EnVAv-c_x1Q6hqn-Y6HDN0Ijsw6R1rCRqEOJUgz5ExWu3uqzAdRp2Hjf3HKFc3rHJTVPDlPJ1sYWZK8ERe7eNjuLV0EJ7bE0aiROngW2ZaYQGruM6-WCno7Oey2cHl8rzSwP7Rk\",\"e\":\"AQAB\"}";
static const char K1_JWK[] =
	"{\"kty\":\"EC\",\"kid\":\"k1\",\"crv\":\"secp256k1\",\"x\":\"m447pw1NRk0_qUPH8OwNunPhGd-vm7zOL4kkarykaXQ\",\"y\":\"P4xEknZW6VBuQ-SYy1Skcnf--tN6l6oLgVOhckWOMXY\"}";

static EVP_PKEY *keys[NALGS];
static json_object *pubjwk[NALGS];   /* public JWK of keys[i], alg ALGS[i] */

static int contains(const char *s, const char *needle)
{
	return s && strstr(s, needle) != NULL;
}

static const EVP_MD *md_for(const char *alg)
{
	return !strcmp(alg + 2, "256") ? EVP_sha256() : !strcmp(alg + 2, "384") ? EVP_sha384() : EVP_sha512();
}

static int coord_size(const char *alg)
{
	return !strcmp(alg, "ES256") ? 32 : !strcmp(alg, "ES384") ? 48 : 66;
}

/* Independent signer for crafted tokens: OpenSSL directly, ES converted
 * from DER to r||s here, HS with an arbitrary secret, "none" unsigned. */
static char *craft(const char *hdr, const char *payload, const char *alg, EVP_PKEY *key,
		   const char *hmac_secret)
{
	struct buf b = BUF_INIT;
	unsigned char sig[1024], raw[132];
	unsigned int hlen;
	size_t slen = sizeof sig;
	char *h = b64url_encode(hdr, strlen(hdr)), *p = b64url_encode(payload, strlen(payload)), *s = NULL;
	EVP_MD_CTX *ctx = NULL;

	buf_printf(&b, "%s.%s", h, p);
	if (!strcmp(alg, "none")) {
		s = strdup("");
	} else if (alg[0] == 'H') {
		HMAC(EVP_sha256(), hmac_secret, (int)strlen(hmac_secret), (unsigned char *)b.data, b.len,
		     sig, &hlen);
		s = b64url_encode(sig, hlen);
	} else {
		ctx = EVP_MD_CTX_new();
		if (EVP_DigestSignInit(ctx, NULL, md_for(alg), NULL, key) != 1 ||
		    EVP_DigestSign(ctx, sig, &slen, (unsigned char *)b.data, b.len) != 1)
			abort();
		if (alg[0] == 'E') {
			const unsigned char *q = sig;
			ECDSA_SIG *es = d2i_ECDSA_SIG(NULL, &q, (long)slen);
			int n = coord_size(alg);
			BN_bn2binpad(ECDSA_SIG_get0_r(es), raw, n);
			BN_bn2binpad(ECDSA_SIG_get0_s(es), raw + n, n);
			ECDSA_SIG_free(es);
			s = b64url_encode(raw, 2 * (size_t)n);
		} else {
			s = b64url_encode(sig, slen);
		}
	}
	buf_printf(&b, ".%s", s);
	EVP_MD_CTX_free(ctx);
	free(h);
	free(p);
	free(s);
	return buf_detach(&b);
}

/* Independent check that an ES token carries a valid JOSE r||s signature. */
static int es_verify_openssl(EVP_PKEY *key, const char *alg, const char *token)
{
	const char *dot = strrchr(token, '.');
	size_t len, dlen;
	unsigned char *raw = b64_decode(dot + 1, strlen(dot + 1), &len), *der = NULL;
	int n = coord_size(alg), ok = 0;
	ECDSA_SIG *es = ECDSA_SIG_new();
	EVP_MD_CTX *ctx = EVP_MD_CTX_new();

	if (raw && len == 2 * (size_t)n) {
		ECDSA_SIG_set0(es, BN_bin2bn(raw, n, NULL), BN_bin2bn(raw + n, n, NULL));
		dlen = (size_t)i2d_ECDSA_SIG(es, &der);
		ok = EVP_DigestVerifyInit(ctx, NULL, md_for(alg), NULL, key) == 1 &&
		     EVP_DigestVerify(ctx, der, dlen, (const unsigned char *)token,
				      (size_t)(dot - token)) == 1;
	}
	OPENSSL_free(der);
	ECDSA_SIG_free(es);
	EVP_MD_CTX_free(ctx);
	free(raw);
	return ok;
}

static json_object *jwks_of(int n, ...)
{
	json_object *jwks = json_object_new_object(), *arr = json_object_new_array();
	va_list ap;
	int i;

	va_start(ap, n);
	for (i = 0; i < n; i++)
		json_object_array_add(arr, json_object_get(va_arg(ap, json_object *)));
	va_end(ap);
	json_object_object_add(jwks, "keys", arr);
	return jwks;
}

static const char *kid_of(int i)
{
	return json_object_get_string(json_object_object_get(pubjwk[i], "kid"));
}

/* Runs verification; returns 0 ok or -1, with code/desc copied for checks. */
static int verify(const char *token, json_object *jwks, long now, const char **code, char **desc)
{
	struct jose_expect ex = { CLIENT, AUD, now, 300 };
	json_object *claims = NULL;
	int rc;

	free(*desc);
	*desc = NULL;
	rc = jose_verify_assertion(token, jwks, &ex, &claims, code, desc);
	if ((rc == 0) != (claims != NULL))
		rc = -2;   /* contract broken: shows up as a failed check */
	json_object_put(claims);
	return rc;
}

static void test_basics(void)
{
	char *err = NULL;
	EVP_PKEY *k;

	T_CHECK(jose_alg_supported("RS256") && jose_alg_supported("ES512"), "alg_supported: RS256, ES512");
	T_CHECK(!jose_alg_supported("none") && !jose_alg_supported("HS256") &&
		!jose_alg_supported("PS256") && !jose_alg_supported("rs256") &&
		!jose_alg_supported(NULL), "alg_supported: none, HS256, PS256, rs256, NULL refused");
	k = jose_keygen("RS256", 1024, &err);
	T_CHECK(!k && contains(err, "2048"), "keygen: RSA 1024 refused");
	free(err);
	err = NULL;
	k = jose_keygen("HS256", 0, &err);
	T_CHECK(!k && contains(err, "HS256"), "keygen: HS256 refused");
	free(err);
}

static void test_keygen(void)
{
	char name[96], *err;
	int i;

	for (i = 0; i < NALGS; i++) {
		err = NULL;
		keys[i] = jose_keygen(ALGS[i], 0, &err);
		snprintf(name, sizeof name, "keygen %s", ALGS[i]);
		T_CHECK(keys[i] && !err, name);
		free(err);
		pubjwk[i] = keys[i] ? jose_pkey_to_jwk(keys[i], ALGS[i], 0) : NULL;
		snprintf(name, sizeof name, "jwk %s: kty/alg/kid set, no d", ALGS[i]);
		T_CHECK(pubjwk[i] &&
			!strcmp(json_object_get_string(json_object_object_get(pubjwk[i], "kty")),
				ALGS[i][0] == 'R' ? "RSA" : "EC") &&
			!strcmp(json_object_get_string(json_object_object_get(pubjwk[i], "alg")), ALGS[i]) &&
			strlen(kid_of(i)) == 43 && !json_object_object_get_ex(pubjwk[i], "d", NULL), name);
	}
	T_CHECK(EVP_PKEY_get_bits(keys[0]) == 2048, "keygen: RSA default 2048 bits");
}

static void test_jwk_roundtrip(void)
{
	char name[96], *err = NULL, *t1, *t2;
	json_object *priv, *priv2, *pub_default;
	EVP_PKEY *pub, *back;
	int i;

	for (i = 0; i < NALGS; i++) {
		pub = jose_jwk_to_pkey(pubjwk[i], 0, &err);
		snprintf(name, sizeof name, "jwk round trip public %s", ALGS[i]);
		T_CHECK(pub && EVP_PKEY_eq(pub, keys[i]) == 1, name);
		EVP_PKEY_free(pub);

		priv = jose_pkey_to_jwk(keys[i], ALGS[i], 1);
		back = priv ? jose_jwk_to_pkey(priv, 1, &err) : NULL;
		priv2 = back ? jose_pkey_to_jwk(back, ALGS[i], 1) : NULL;
		snprintf(name, sizeof name, "jwk round trip private %s (d kept, identical JWK)", ALGS[i]);
		T_CHECK(back && EVP_PKEY_eq(back, keys[i]) == 1 && json_object_object_get_ex(priv, "d", NULL) &&
			(ALGS[i][0] == 'E' || json_object_object_get_ex(priv, "qi", NULL)) &&
			priv2 && json_object_equal(priv, priv2), name);
		snprintf(name, sizeof name, "private JWK %s needs d when want_private", ALGS[i]);
		free(err);
		err = NULL;
		T_CHECK(!jose_jwk_to_pkey(pubjwk[i], 1, &err) && contains(err, "\"d\""), name);
		free(err);
		err = NULL;
		json_object_put(priv);
		json_object_put(priv2);
		EVP_PKEY_free(back);

		/* kid is the thumbprint of the public members. */
		t1 = jose_jwk_thumbprint(pubjwk[i], NULL);
		snprintf(name, sizeof name, "kid is RFC 7638 thumbprint %s", ALGS[i]);
		T_CHECK(t1 && !strcmp(t1, kid_of(i)), name);
		free(t1);
	}
	pub_default = jose_pkey_to_jwk(keys[0], NULL, 0);
	T_CHECK(pub_default && !strcmp(json_object_get_string(json_object_object_get(pub_default, "alg")), "RS384"),
		"jwk: RSA default alg RS384");
	json_object_put(pub_default);
	pub_default = jose_pkey_to_jwk(keys[5], NULL, 0);
	T_CHECK(pub_default && !strcmp(json_object_get_string(json_object_object_get(pub_default, "alg")), "ES512"),
		"jwk: P-521 default alg ES512");
	json_object_put(pub_default);
	T_CHECK(!jose_pkey_to_jwk(keys[3], "ES384", 0) && !jose_pkey_to_jwk(keys[0], "ES256", 0),
		"jwk: alg that does not fit the key refused");

	priv = json_tokener_parse(RFC7638_JWK);
	t1 = jose_jwk_thumbprint(priv, NULL);
	T_CHECK(t1 && !strcmp(t1, RFC7638_THUMB), "thumbprint equals RFC 7638 3.1 example");
	pub = jose_jwk_to_pkey(priv, 0, NULL);
	pub_default = pub ? jose_pkey_to_jwk(pub, NULL, 0) : NULL;
	T_CHECK(pub_default && !strcmp(json_object_get_string(json_object_object_get(pub_default, "kid")), RFC7638_THUMB),
		"RFC 7638 key -> pkey -> jwk kid equals thumbprint");
	json_object_put(pub_default);
	EVP_PKEY_free(pub);
	json_object_put(priv);
	free(t1);

	/* Thumbprint computed by Node for the fixture key. */
	priv = json_tokener_parse(NODE_JWKS);
	t2 = jose_jwk_thumbprint(json_object_array_get_idx(json_object_object_get(priv, "keys"), 0), NULL);
	T_CHECK(t2 && !strcmp(t2, NODE_KID), "EC thumbprint equals Node's");
	free(t2);
	json_object_put(priv);
}

static void test_jwk_bad(void)
{
	char *err = NULL;
	json_object *j;
	EVP_PKEY *k;
	char *s;
	size_t n;

	j = json_tokener_parse(RSA1024_JWK);
	k = jose_jwk_to_pkey(j, 0, &err);
	T_CHECK(!k && err && !strcmp(err, "RSA key is 1024 bits; at least 2048 required"), "jwk: RSA 1024 refused");
	json_object_put(j);
	free(err);
	err = NULL;

	j = json_tokener_parse(K1_JWK);
	k = jose_jwk_to_pkey(j, 0, &err);
	T_CHECK(!k && contains(err, "secp256k1"), "jwk: secp256k1 refused");
	json_object_put(j);
	free(err);
	err = NULL;

	/* Point off the curve: nudge y of a valid P-256 key. */
	j = json_tokener_parse(json_object_to_json_string(pubjwk[3]));
	s = strdup(json_object_get_string(json_object_object_get(j, "y")));
	n = strlen(s);
	s[n / 2] = s[n / 2] == 'A' ? 'B' : 'A';
	json_object_object_add(j, "y", json_object_new_string(s));
	k = jose_jwk_to_pkey(j, 0, &err);
	T_CHECK(!k && contains(err, "not a valid point"), "jwk: EC point off the curve refused");
	free(s);
	json_object_put(j);
	free(err);
	err = NULL;

	/* Private RSA: the full CRT set is required and must be consistent. */
	j = jose_pkey_to_jwk(keys[0], "RS256", 1);
	json_object_object_add(j, "qi", json_object_new_string(
		json_object_get_string(json_object_object_get(j, "dq"))));
	k = jose_jwk_to_pkey(j, 1, &err);
	T_CHECK(!k && contains(err, "inconsistent"), "jwk: inconsistent RSA CRT (qi) refused");
	EVP_PKEY_free(k);
	free(err);
	err = NULL;
	json_object_object_del(j, "qi");
	k = jose_jwk_to_pkey(j, 1, &err);
	T_CHECK(!k && contains(err, "\"qi\" missing"), "jwk: partial RSA CRT set refused");
	EVP_PKEY_free(k);
	free(err);
	err = NULL;
	json_object_object_del(j, "p");
	json_object_object_del(j, "q");
	json_object_object_del(j, "dp");
	json_object_object_del(j, "dq");
	k = jose_jwk_to_pkey(j, 1, &err);
	T_CHECK(!k && contains(err, "p, q, dp, dq, qi"), "jwk: RSA d-only private key refused");
	EVP_PKEY_free(k);
	free(err);
	err = NULL;
	k = jose_jwk_to_pkey(j, 0, &err);
	T_CHECK(k && EVP_PKEY_eq(k, keys[0]) == 1, "jwk: same JWK still usable as public key");
	EVP_PKEY_free(k);
	json_object_put(j);

	/* Private EC: d must match x/y. */
	j = jose_pkey_to_jwk(keys[3], "ES256", 1);
	json_object_object_add(j, "d", json_object_new_string(
		json_object_get_string(json_object_object_get(j, "x"))));
	k = jose_jwk_to_pkey(j, 1, &err);
	T_CHECK(!k && contains(err, "does not match"), "jwk: EC d not matching x/y refused");
	EVP_PKEY_free(k);
	free(err);
	err = NULL;
	json_object_put(j);

	j = json_tokener_parse("{\"kty\":\"oct\",\"k\":\"c2VjcmV0\"}");
	T_CHECK(!jose_jwk_to_pkey(j, 0, &err) && contains(err, "oct"), "jwk: kty oct refused");
	json_object_put(j);
	free(err);
	err = NULL;

	j = json_tokener_parse("{\"kty\":\"RSA\",\"n\":\"AQAB+/==\",\"e\":\"AQAB\"}");
	T_CHECK(!jose_jwk_to_pkey(j, 0, &err) && err, "jwk: non-base64url n refused");
	json_object_put(j);
	free(err);
}

static void test_pem_and_load(void)
{
	char name[96], *pem, *err = NULL, *text;
	json_object *jwk_out = NULL, *priv, *jwks;
	EVP_PKEY *k;
	int i;

	for (i = 0; i < NALGS; i++) {
		pem = jose_pkey_to_pem(keys[i], 0);
		k = pem ? jose_load_key(pem, 0, &jwk_out, &err) : NULL;
		snprintf(name, sizeof name, "PEM public %s parses back (+ jwk_out kid)", ALGS[i]);
		T_CHECK(pem && !strncmp(pem, "-----BEGIN PUBLIC KEY-----", 26) && k &&
			EVP_PKEY_eq(k, keys[i]) == 1 && jwk_out &&
			!json_object_object_get_ex(jwk_out, "d", NULL) &&
			!strcmp(json_object_get_string(json_object_object_get(jwk_out, "kid")), kid_of(i)), name);
		json_object_put(jwk_out);
		jwk_out = NULL;
		EVP_PKEY_free(k);
		snprintf(name, sizeof name, "PEM public %s: want_private refused", ALGS[i]);
		T_CHECK(!jose_load_key(pem, 1, NULL, &err) && err, name);
		free(err);
		err = NULL;
		free(pem);

		pem = jose_pkey_to_pem(keys[i], 1);
		k = pem ? jose_load_key(pem, 1, NULL, &err) : NULL;
		snprintf(name, sizeof name, "PEM PKCS#8 private %s parses back", ALGS[i]);
		T_CHECK(pem && !strncmp(pem, "-----BEGIN PRIVATE KEY-----", 27) && k &&
			EVP_PKEY_eq(k, keys[i]) == 1, name);
		EVP_PKEY_free(k);
		/* A public load of a private PEM gives the public key only. */
		k = pem ? jose_load_key(pem, 0, NULL, &err) : NULL;
		priv = k ? jose_pkey_to_jwk(k, ALGS[i], 1) : NULL;
		snprintf(name, sizeof name, "PEM private %s loaded as public has no private part", ALGS[i]);
		T_CHECK(priv && !json_object_object_get_ex(priv, "d", NULL), name);
		json_object_put(priv);
		EVP_PKEY_free(k);
		free(pem);
	}

	/* JWKS file: public key first, private second; want_private takes the
	 * one with "d" and keeps its kid/alg. */
	priv = jose_pkey_to_jwk(keys[4], "ES384", 1);
	json_object_object_add(priv, "kid", json_object_new_string("my-registered-kid"));
	jwks = jwks_of(2, pubjwk[0], priv);
	text = strdup(json_object_to_json_string_ext(jwks, JSON_C_TO_STRING_PRETTY));
	k = jose_load_key(text, 1, &jwk_out, &err);
	T_CHECK(k && EVP_PKEY_eq(k, keys[4]) == 1 && jwk_out &&
		!strcmp(json_object_get_string(json_object_object_get(jwk_out, "kid")), "my-registered-kid") &&
		!strcmp(json_object_get_string(json_object_object_get(jwk_out, "alg")), "ES384") &&
		!json_object_object_get_ex(jwk_out, "d", NULL), "load JWKS: private key picked, kid kept, jwk_out public");
	json_object_put(jwk_out);
	jwk_out = NULL;
	EVP_PKEY_free(k);
	k = jose_load_key(text, 0, NULL, &err);
	T_CHECK(k && EVP_PKEY_eq(k, keys[0]) == 1, "load JWKS public: first key");
	EVP_PKEY_free(k);
	free(text);
	json_object_put(jwks);

	text = strdup(json_object_to_json_string(priv));
	k = jose_load_key(text, 1, NULL, &err);
	T_CHECK(k && EVP_PKEY_eq(k, keys[4]) == 1, "load single private JWK");
	EVP_PKEY_free(k);
	free(text);
	json_object_put(priv);

	jwks = jwks_of(1, pubjwk[0]);
	text = strdup(json_object_to_json_string(jwks));
	T_CHECK(!jose_load_key(text, 1, NULL, &err) && contains(err, "no private key"),
		"load JWKS without private key refused for want_private");
	free(err);
	err = NULL;
	free(text);
	json_object_put(jwks);

	T_CHECK(!jose_load_key("hello", 0, NULL, &err) && err, "load garbage refused");
	free(err);
	err = NULL;
	T_CHECK(!jose_load_key("{\"kty\":\"RSA\"", 0, NULL, &err) && err, "load truncated JSON refused");
	free(err);
}

static void test_jwks_validate(void)
{
	char *err = NULL;
	json_object *jwks, *bad, *priv;

	jwks = jwks_of(6, pubjwk[0], pubjwk[1], pubjwk[2], pubjwk[3], pubjwk[4], pubjwk[5]);
	T_CHECK(jose_jwks_validate(jwks, &err) == 0 && !err, "jwks_validate: six generated keys ok");
	json_object_put(jwks);

	bad = json_tokener_parse(RSA1024_JWK);
	jwks = jwks_of(2, pubjwk[0], bad);
	T_CHECK(jose_jwks_validate(jwks, &err) == -1 && err &&
		!strcmp(err, "keys[1]: RSA key is 1024 bits; at least 2048 required"), "jwks_validate: 1024-bit RSA");
	free(err);
	err = NULL;
	json_object_put(jwks);
	json_object_put(bad);

	priv = jose_pkey_to_jwk(keys[3], "ES256", 1);
	jwks = jwks_of(1, priv);
	T_CHECK(jose_jwks_validate(jwks, &err) == -1 && contains(err, "keys[0]: private key member \"d\""),
		"jwks_validate: private key material refused");
	free(err);
	err = NULL;
	json_object_put(jwks);
	json_object_put(priv);

	priv = jose_pkey_to_jwk(keys[0], "RS256", 1);
	json_object_object_del(priv, "d");   /* CRT members alone are private too */
	jwks = jwks_of(1, priv);
	T_CHECK(jose_jwks_validate(jwks, &err) == -1 && contains(err, "private key member \"p\""),
		"jwks_validate: RSA p without d refused");
	free(err);
	err = NULL;
	json_object_put(jwks);
	json_object_put(priv);

	bad = json_tokener_parse(K1_JWK);
	jwks = jwks_of(1, bad);
	T_CHECK(jose_jwks_validate(jwks, &err) == -1 && contains(err, "keys[0]: unsupported EC curve 'secp256k1'"),
		"jwks_validate: secp256k1 refused");
	free(err);
	err = NULL;
	json_object_put(jwks);
	json_object_put(bad);

	jwks = json_tokener_parse("{\"keys\":[]}");
	T_CHECK(jose_jwks_validate(jwks, &err) == -1 && contains(err, "empty"), "jwks_validate: empty keys");
	free(err);
	err = NULL;
	json_object_put(jwks);

	jwks = json_tokener_parse("{\"key\":[]}");
	T_CHECK(jose_jwks_validate(jwks, &err) == -1 && contains(err, "\"keys\""), "jwks_validate: no keys array");
	free(err);
	err = NULL;
	json_object_put(jwks);

	jwks = json_tokener_parse("[]");
	T_CHECK(jose_jwks_validate(jwks, &err) == -1 && err, "jwks_validate: not an object");
	free(err);
	err = NULL;
	json_object_put(jwks);

	bad = json_tokener_parse(json_object_to_json_string(pubjwk[4]));
	json_object_object_del(bad, "kid");
	jwks = jwks_of(2, pubjwk[3], bad);
	T_CHECK(jose_jwks_validate(jwks, &err) == -1 && err && !strcmp(err, "keys[1]: missing \"kid\""),
		"jwks_validate: missing kid reported");
	free(err);
	err = NULL;
	json_object_put(jwks);

	json_object_object_add(bad, "kid", json_object_new_string(kid_of(3)));
	jwks = jwks_of(2, pubjwk[3], bad);
	T_CHECK(jose_jwks_validate(jwks, &err) == -1 && contains(err, "duplicate kid"),
		"jwks_validate: duplicate kid refused");
	free(err);
	err = NULL;
	json_object_put(jwks);

	json_object_object_add(bad, "kid", json_object_new_string("x"));
	json_object_object_add(bad, "alg", json_object_new_string("ES256"));
	jwks = jwks_of(1, bad);
	T_CHECK(jose_jwks_validate(jwks, &err) == -1 && err && !strcmp(err, "keys[0]: key is EC P-384, but alg ES256 needs an EC P-256 key"),
		"jwks_validate: alg not fitting the curve refused");
	free(err);
	err = NULL;
	json_object_put(jwks);

	json_object_object_add(bad, "alg", json_object_new_string("HS256"));
	jwks = jwks_of(1, bad);
	T_CHECK(jose_jwks_validate(jwks, &err) == -1 && contains(err, "alg 'HS256' is not supported"),
		"jwks_validate: alg HS256 refused");
	free(err);
	err = NULL;
	json_object_put(jwks);

	json_object_object_add(bad, "alg", json_object_new_string("ES384"));
	json_object_object_add(bad, "use", json_object_new_string("enc"));
	jwks = jwks_of(1, bad);
	T_CHECK(jose_jwks_validate(jwks, &err) == -1 && contains(err, "use"), "jwks_validate: use enc refused");
	free(err);
	json_object_put(jwks);
	json_object_put(bad);
}

static void test_sign_verify(void)
{
	char name[128], *tok, *err = NULL, *desc = NULL;
	const char *code;
	const char *dot;
	json_object *jwks, *claims = NULL, *hdr;
	struct jose_expect ex = { CLIENT, AUD, NOW, 300 };
	unsigned char *raw;
	size_t len;
	int i, rc;

	jwks = jwks_of(6, pubjwk[0], pubjwk[1], pubjwk[2], pubjwk[3], pubjwk[4], pubjwk[5]);
	for (i = 0; i < NALGS; i++) {
		tok = jose_sign_assertion(keys[i], ALGS[i], NULL, CLIENT, AUD, NOW, 300, &err);
		snprintf(name, sizeof name, "sign %s", ALGS[i]);
		T_CHECK(tok && !err, name);
		if (!tok)
			continue;
		rc = jose_verify_assertion(tok, jwks, &ex, &claims, &code, &desc);
		snprintf(name, sizeof name, "verify own %s (%s)", ALGS[i], desc ? desc : "ok");
		T_CHECK(rc == 0 && claims && !code && !desc, name);
		snprintf(name, sizeof name, "claims %s: iss/sub/aud/exp/jti", ALGS[i]);
		T_CHECK(claims && !strcmp(json_object_get_string(json_object_object_get(claims, "iss")), CLIENT) &&
			!strcmp(json_object_get_string(json_object_object_get(claims, "sub")), CLIENT) &&
			!strcmp(json_object_get_string(json_object_object_get(claims, "aud")), AUD) &&
			json_object_get_int64(json_object_object_get(claims, "exp")) == NOW + 300 &&
			strlen(json_object_get_string(json_object_object_get(claims, "jti"))) >= 22, name);
		json_object_put(claims);
		claims = NULL;
		free(desc);
		desc = NULL;

		raw = b64_decode(tok, (size_t)(strchr(tok, '.') - tok), &len);
		hdr = raw ? json_tokener_parse((char *)raw) : NULL;
		snprintf(name, sizeof name, "header %s: alg, kid, typ JWT", ALGS[i]);
		T_CHECK(hdr && !strcmp(json_object_get_string(json_object_object_get(hdr, "alg")), ALGS[i]) &&
			!strcmp(json_object_get_string(json_object_object_get(hdr, "kid")), kid_of(i)) &&
			!strcmp(json_object_get_string(json_object_object_get(hdr, "typ")), "JWT"), name);
		json_object_put(hdr);
		free(raw);

		if (ALGS[i][0] == 'E') {
			dot = strrchr(tok, '.');
			raw = b64_decode(dot + 1, strlen(dot + 1), &len);
			snprintf(name, sizeof name, "%s signature is r||s of %d bytes", ALGS[i], 2 * coord_size(ALGS[i]));
			T_CHECK(raw && len == 2 * (size_t)coord_size(ALGS[i]), name);
			free(raw);
			snprintf(name, sizeof name, "%s r||s verifies with plain OpenSSL", ALGS[i]);
			T_CHECK(es_verify_openssl(keys[i], ALGS[i], tok), name);
		}
		free(tok);
	}
	tok = jose_sign_assertion(keys[3], "ES256", "given-kid", CLIENT, AUD, NOW, 0, &err);
	raw = tok ? b64_decode(tok, (size_t)(strchr(tok, '.') - tok), &len) : NULL;
	T_CHECK(contains((char *)raw, "\"given-kid\""), "sign: explicit kid used, lifetime 0 allowed");
	free(raw);
	free(tok);
	T_CHECK(!jose_sign_assertion(keys[3], "ES256", NULL, CLIENT, AUD, NOW, 301, &err) && err,
		"sign: lifetime > 300 refused");
	free(err);
	err = NULL;
	T_CHECK(!jose_sign_assertion(keys[3], "ES384", NULL, CLIENT, AUD, NOW, 300, &err) && err,
		"sign: P-256 key with ES384 refused");
	free(err);
	err = NULL;
	T_CHECK(!jose_sign_assertion(keys[0], "ES256", NULL, CLIENT, AUD, NOW, 300, &err) && err,
		"sign: RSA key with ES256 refused");
	free(err);
	err = NULL;
	T_CHECK(!jose_sign_assertion(keys[0], "HS256", NULL, CLIENT, AUD, NOW, 300, &err) && err,
		"sign: HS256 refused");
	free(err);
	json_object_put(jwks);
}

static void test_node_fixture(void)
{
	json_object *jwks = json_tokener_parse(NODE_JWKS), *claims = NULL;
	struct jose_expect ex = { "fixture-client", "https://consumer.example/auth/token", 1700000100, 300 };
	const char *code;
	char *desc = NULL, *tok;
	char name[256];
	int rc;

	T_CHECK(jose_jwks_validate(jwks, &desc) == 0, "node fixture JWKS validates");
	free(desc);
	desc = NULL;
	rc = jose_verify_assertion(NODE_TOKEN, jwks, &ex, &claims, &code, &desc);
	snprintf(name, sizeof name, "node ES384 r||s token verifies (%s)", desc ? desc : "ok");
	T_CHECK(rc == 0 && claims &&
		!strcmp(json_object_get_string(json_object_object_get(claims, "jti")), "6zf-AY2JUDp4PmnDRx0Rnw"), name);
	json_object_put(claims);
	claims = NULL;
	free(desc);
	desc = NULL;

	/* Same token one second after exp: only the clock differs. */
	ex.now = 1700000300;
	rc = jose_verify_assertion(NODE_TOKEN, jwks, &ex, &claims, &code, &desc);
	T_CHECK(rc == -1 && !claims && contains(desc, "expired"), "node token rejected once expired");
	free(desc);
	desc = NULL;

	/* Tamper with the last signature character. */
	ex.now = 1700000100;
	tok = strdup(NODE_TOKEN);
	tok[strlen(tok) - 2] = tok[strlen(tok) - 2] == 'A' ? 'B' : 'A';
	rc = jose_verify_assertion(tok, jwks, &ex, &claims, &code, &desc);
	T_CHECK(rc == -1 && !strcmp(code, "invalid_client") && contains(desc, "signature verification failed"),
		"node token with flipped signature rejected");
	free(desc);
	free(tok);
	json_object_put(jwks);
}

/* Header/payload builders for crafted tokens. */
static char *hdr_json(const char *alg, const char *kid)
{
	struct buf b = BUF_INIT;

	buf_printf(&b, "{\"alg\":\"%s\"", alg);
	if (kid)
		buf_printf(&b, ",\"kid\":\"%s\"", kid);
	buf_puts(&b, ",\"typ\":\"JWT\"}");
	return buf_detach(&b);
}

static char *payload_json(const char *iss, const char *sub, const char *aud, long exp, const char *jti)
{
	struct buf b = BUF_INIT;

	buf_printf(&b, "{\"iss\":\"%s\",\"sub\":\"%s\",\"aud\":%s", iss, sub, aud);
	if (exp)
		buf_printf(&b, ",\"exp\":%ld", exp);
	if (jti)
		buf_printf(&b, ",\"jti\":\"%s\"", jti);
	buf_puts(&b, "}");
	return buf_detach(&b);
}

#define AUDJ "\"" AUD "\""

/* One negative (or positive) case: crafted token, expected code and text. */
static void expect(const char *name, char *token, json_object *jwks, long now,
		   const char *want_code, const char *want_text)
{
	const char *code = NULL;
	char *desc = NULL, label[512];
	int rc = verify(token, jwks, now, &code, &desc);

	if (!want_code) {
		snprintf(label, sizeof label, "%s (%s)", name, desc ? desc : "ok");
		T_CHECK(rc == 0 && !desc, label);
	} else {
		snprintf(label, sizeof label, "%s -> %s: %s", name, code ? code : "?", desc ? desc : "?");
		T_CHECK(rc == -1 && code && !strcmp(code, want_code) && contains(desc, want_text), label);
	}
	free(desc);
	free(token);
}

static void test_negatives(void)
{
	json_object *jwks, *one, *jwk_alg;
	char *h, *p, *pem, *tok;
	const char *rs = kid_of(0), *es = kid_of(3);
	size_t n;

	jwks = jwks_of(6, pubjwk[0], pubjwk[1], pubjwk[2], pubjwk[3], pubjwk[4], pubjwk[5]);
	p = payload_json(CLIENT, CLIENT, AUDJ, NOW + 60, "jti-1");

	/* Positive controls for the crafting helper, so negatives mean something. */
	h = hdr_json("RS256", rs);
	expect("crafted RS256 accepted", craft(h, p, "RS256", keys[0], NULL), jwks, NOW, NULL, NULL);
	free(h);
	h = hdr_json("ES256", es);
	expect("crafted ES256 accepted", craft(h, p, "ES256", keys[3], NULL), jwks, NOW, NULL, NULL);
	free(h);

	h = hdr_json("none", rs);
	expect("alg none (unsigned)", craft(h, p, "none", NULL, NULL), jwks, NOW, "invalid_client",
	       "JWT alg 'none' is not allowed");
	free(h);

	pem = jose_pkey_to_pem(keys[0], 0);
	h = hdr_json("HS256", rs);
	expect("HS256 with RSA public PEM as secret", craft(h, p, "HS256", NULL, pem), jwks, NOW,
	       "invalid_client", "JWT alg 'HS256' is not allowed");
	free(h);
	free(pem);

	/* Key type check on its own: the EC JWK here has no "alg" member. */
	jwk_alg = json_tokener_parse(json_object_to_json_string(pubjwk[3]));
	json_object_object_del(jwk_alg, "alg");
	one = jwks_of(2, pubjwk[0], jwk_alg);
	h = hdr_json("RS256", es);
	expect("RS256 header with EC key's kid", craft(h, p, "RS256", keys[0], NULL), one, NOW,
	       "invalid_client", "needs an RSA key");
	free(h);
	h = hdr_json("ES384", es);
	expect("ES384 header with P-256 key's kid (no JWK alg)", craft(h, p, "ES384", keys[4], NULL), one, NOW,
	       "invalid_client", "needs an EC P-384 key");
	free(h);
	json_object_put(one);
	json_object_put(jwk_alg);

	h = hdr_json("ES384", es);
	expect("ES384 header with P-256 key's kid", craft(h, p, "ES384", keys[4], NULL), jwks, NOW,
	       "invalid_client", "needs an EC P-384 key");
	free(h);

	/* JWK pinned to RS256 but token says RS512 with the same RSA key. */
	jwk_alg = json_tokener_parse(json_object_to_json_string(pubjwk[0]));
	one = jwks_of(1, jwk_alg);
	h = hdr_json("RS512", rs);
	expect("JWK alg RS256 vs header RS512", craft(h, p, "RS512", keys[0], NULL), one, NOW,
	       "invalid_client", "is for alg 'RS256'");
	free(h);
	json_object_put(one);
	json_object_put(jwk_alg);

	h = hdr_json("RS256", "no-such-kid");
	expect("wrong kid", craft(h, p, "RS256", keys[0], NULL), jwks, NOW, "invalid_client",
	       "no key with kid 'no-such-kid' in client JWKS");
	free(h);

	/* Single-key JWKS and no kid: the key must NOT be used. */
	one = jwks_of(1, pubjwk[0]);
	h = hdr_json("RS256", NULL);
	expect("missing kid with one-key JWKS", craft(h, p, "RS256", keys[0], NULL), one, NOW,
	       "invalid_client", "no \"kid\"");
	free(h);
	json_object_put(one);

	h = hdr_json("RS256", rs);
	tok = craft(h, p, "RS256", keys[0], NULL);
	n = strlen(tok);
	tok[n - 10] = tok[n - 10] == 'A' ? 'B' : 'A';
	expect("RS256 bad signature (flipped byte)", tok, jwks, NOW, "invalid_client", "signature verification failed");
	tok = craft(h, p, "RS256", keys[1], NULL);   /* right kid, other key */
	expect("RS256 signed by another key", tok, jwks, NOW, "invalid_client", "signature verification failed");
	free(h);

	h = hdr_json("ES512", kid_of(5));
	tok = craft(h, p, "ES512", keys[5], NULL);
	n = strlen(tok);
	tok[n - 30] = tok[n - 30] == 'A' ? 'B' : 'A';
	expect("ES512 bad signature (flipped byte)", tok, jwks, NOW, "invalid_client", "signature verification failed");
	free(h);

	/* Payload swapped under a valid signature. */
	h = hdr_json("ES256", es);
	tok = craft(h, p, "ES256", keys[3], NULL);
	{
		char *p2 = payload_json("other", "other", AUDJ, NOW + 60, "jti-1");
		char *forged = craft(h, p2, "ES256", keys[3], NULL);
		struct buf b = BUF_INIT;
		buf_append(&b, forged, (size_t)(strrchr(forged, '.') - forged));
		buf_puts(&b, strrchr(tok, '.'));
		expect("payload swapped under valid signature", buf_detach(&b), jwks, NOW, "invalid_client",
		       "signature verification failed");
		free(forged);
		free(p2);
	}
	/* DER instead of r||s. */
	{
		EVP_MD_CTX *ctx = EVP_MD_CTX_new();
		unsigned char der[128];
		size_t dlen = sizeof der;
		const char *dot = strrchr(tok, '.');
		struct buf b = BUF_INIT;
		char *s;
		EVP_DigestSignInit(ctx, NULL, EVP_sha256(), NULL, keys[3]);
		EVP_DigestSign(ctx, der, &dlen, (const unsigned char *)tok, (size_t)(dot - tok));
		s = b64url_encode(der, dlen);
		buf_append(&b, tok, (size_t)(dot - tok) + 1);
		buf_puts(&b, s);
		expect("ES256 DER signature", buf_detach(&b), jwks, NOW, "invalid_client", "must be 64 bytes (r||s)");
		free(s);
		EVP_MD_CTX_free(ctx);
	}
	free(tok);
	free(h);
	free(p);

	h = hdr_json("ES256", es);
	p = payload_json(CLIENT, CLIENT, AUDJ, NOW, "j");
	expect("expired (exp == now)", craft(h, p, "ES256", keys[3], NULL), jwks, NOW, "invalid_client", "expired");
	free(p);
	p = payload_json(CLIENT, CLIENT, AUDJ, NOW - 1000, "j");
	expect("expired long ago", craft(h, p, "ES256", keys[3], NULL), jwks, NOW, "invalid_client", "expired");
	free(p);
	p = payload_json(CLIENT, CLIENT, AUDJ, NOW + 301, "j");
	expect("exp 301 s ahead", craft(h, p, "ES256", keys[3], NULL), jwks, NOW, "invalid_client",
	       "exp is more than 5 minutes in the future");
	free(p);
	p = payload_json(CLIENT, CLIENT, AUDJ, NOW + 300, "j");
	expect("exp exactly 300 s ahead accepted", craft(h, p, "ES256", keys[3], NULL), jwks, NOW, NULL, NULL);
	free(p);
	p = payload_json(CLIENT, CLIENT, AUDJ, 0, "j");
	expect("missing exp", craft(h, p, "ES256", keys[3], NULL), jwks, NOW, "invalid_client", "exp claim is missing");
	free(p);
	p = strdup("{\"iss\":\"" CLIENT "\",\"sub\":\"" CLIENT "\",\"aud\":" AUDJ ",\"exp\":\"1700000060\",\"jti\":\"j\"}");
	expect("exp as string", craft(h, p, "ES256", keys[3], NULL), jwks, NOW, "invalid_client", "integer");
	free(p);
	p = payload_json(CLIENT, CLIENT, "\"https://evil.example/auth/token\"", NOW + 60, "j");
	expect("wrong aud", craft(h, p, "ES256", keys[3], NULL), jwks, NOW, "invalid_client", "aud must be " AUD);
	free(p);
	p = payload_json(CLIENT, CLIENT, "[\"https://x.example\",\"" AUD "\"]", NOW + 60, "j");
	expect("aud array containing ours accepted", craft(h, p, "ES256", keys[3], NULL), jwks, NOW, NULL, NULL);
	free(p);
	p = payload_json(CLIENT, CLIENT, "[\"https://x.example\"]", NOW + 60, "j");
	expect("aud array without ours", craft(h, p, "ES256", keys[3], NULL), jwks, NOW, "invalid_client", "aud must be");
	free(p);
	p = payload_json(CLIENT, "someone-else", AUDJ, NOW + 60, "j");
	expect("iss != sub", craft(h, p, "ES256", keys[3], NULL), jwks, NOW, "invalid_client", "differ");
	free(p);
	p = payload_json("client-2", "client-2", AUDJ, NOW + 60, "j");
	expect("iss/sub not the client", craft(h, p, "ES256", keys[3], NULL), jwks, NOW, "invalid_client",
	       "is not the client_id");
	free(p);
	p = payload_json(CLIENT, CLIENT, AUDJ, NOW + 60, NULL);
	expect("missing jti", craft(h, p, "ES256", keys[3], NULL), jwks, NOW, "invalid_client", "jti");
	free(p);
	p = payload_json(CLIENT, CLIENT, AUDJ, NOW + 60, "");
	expect("empty jti", craft(h, p, "ES256", keys[3], NULL), jwks, NOW, "invalid_client", "jti");
	free(p);
	free(h);

	/* Malformed tokens. */
	expect("two segments", strdup("eyJhbGciOiJSUzI1NiJ9.eyJpc3MiOiJ4In0"), jwks, NOW, "invalid_request",
	       "three dot-separated parts");
	expect("four segments", strdup("a.b.c.d"), jwks, NOW, "invalid_request", "three dot-separated parts");
	expect("bad base64 header", strdup("eyJhbGci*iJSUzI1NiJ9.eyJpc3MiOiJ4In0.c2ln"), jwks, NOW,
	       "invalid_request", "header is not base64url");
	expect("standard-alphabet base64 signature", strdup("eyJhbGciOiJSUzI1NiJ9.eyJpc3MiOiJ4In0.c2l+/w"), jwks, NOW,
	       "invalid_request", "signature is not base64url");
	expect("header not JSON", strdup("bm90IGpzb24.eyJpc3MiOiJ4In0.c2ln"), jwks, NOW, "invalid_request",
	       "header is not a base64url JSON object");
	expect("empty token", strdup(""), jwks, NOW, "invalid_request", "malformed");
	json_object_put(jwks);
}

static void test_peek(void)
{
	char *tok = jose_sign_assertion(keys[3], "ES256", NULL, CLIENT, AUD, NOW, 60, NULL), *err = NULL;
	json_object *c = tok ? jose_peek_claims(tok, &err) : NULL;

	T_CHECK(c && !strcmp(json_object_get_string(json_object_object_get(c, "iss")), CLIENT),
		"peek_claims returns unverified iss");
	json_object_put(c);
	T_CHECK(!jose_peek_claims("x.y", &err) && err, "peek_claims refuses malformed token");
	free(err);
	free(tok);
}

int main(void)
{
	int i;

	test_basics();
	test_keygen();
	for (i = 0; i < NALGS; i++)
		if (!keys[i] || !pubjwk[i])
			return t_done();
	test_jwk_roundtrip();
	test_jwk_bad();
	test_pem_and_load();
	test_jwks_validate();
	test_sign_verify();
	test_node_fixture();
	test_negatives();
	test_peek();
	for (i = 0; i < NALGS; i++) {
		EVP_PKEY_free(keys[i]);
		json_object_put(pubjwk[i]);
	}
	return t_done();
}
