/* JOSE: JWK <-> EVP_PKEY (OpenSSL 3 params API), RFC 7638 thumbprints,
 * JWKS validation and SMART Backend Services client assertions.
 *
 * libjwt 1.10.2 (Debian 12) trusts the token's own "alg" header, so
 * jose_verify_assertion decodes and pins alg, kid and key type itself before
 * libjwt sees the token.  For ES* libjwt's OpenSSL backend does the JOSE
 * conversion correctly in both directions: jwt_encode_str emits fixed-length
 * r||s (64/96/132 bytes, zero-padded) and jwt_decode accepts only r||s of
 * exactly that length (DER is rejected).  Checked against Node's
 * crypto.sign(..., {dsaEncoding: "ieee-p1363"}) for 3000 tokens per curve in
 * both directions; tests/unit/test_jose.c keeps a Node ES384 fixture and an
 * independent OpenSSL check of our r||s output.  So libjwt both signs and
 * verifies all six algorithms here. */
#include "jose.h"
#include "b64.h"
#include "buf.h"
#include <jwt.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <openssl/bn.h>
#include <openssl/core_names.h>
#include <openssl/crypto.h>
#include <openssl/err.h>
#include <openssl/param_build.h>
#include <openssl/pem.h>
#include <openssl/sha.h>

#define RSA_MAX_BITS 16384        /* bounds verification cost of hostile keys */
#define RSA_KEYGEN_MAX_BITS 8192
#define JWKS_MAX_KEYS 100
#define TOKEN_MAX_LEN 16384
#define JTI_MAX_LEN 255
#define NBF_LEEWAY 60             /* nbf is optional; tolerate small clock skew */

struct curve {
	const char *crv;    /* JOSE name */
	const char *ossl;   /* OpenSSL group name */
	const char *alg;    /* the one ES alg for this curve */
	int size;           /* coordinate / scalar bytes; r||s is twice this */
};

static const struct curve CURVES[] = {
	{ "P-256", "prime256v1", "ES256", 32 },
	{ "P-384", "secp384r1", "ES384", 48 },
	{ "P-521", "secp521r1", "ES512", 66 },
};

struct alg {
	const char *name;
	jwt_alg_t jalg;
	const char *crv;    /* NULL for RSA */
};

static const struct alg ALGS[] = {
	{ "RS256", JWT_ALG_RS256, NULL },
	{ "RS384", JWT_ALG_RS384, NULL },
	{ "RS512", JWT_ALG_RS512, NULL },
	{ "ES256", JWT_ALG_ES256, "P-256" },
	{ "ES384", JWT_ALG_ES384, "P-384" },
	{ "ES512", JWT_ALG_ES512, "P-521" },
};

#define NELEM(a) (sizeof(a) / sizeof((a)[0]))

static const char *const PRIVATE_MEMBERS[] = { "d", "p", "q", "dp", "dq", "qi", "oth", "k" };

static void set_err(char **err, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void set_err(char **err, const char *fmt, ...)
{
	struct buf b = BUF_INIT;
	va_list ap;

	if (!err)
		return;
	va_start(ap, fmt);
	buf_vprintf(&b, fmt, ap);
	va_end(ap);
	*err = buf_detach(&b);
}

/* Untrusted strings end up in error texts, responses and logs: keep them
 * short and printable. */
static const char *safe(char *dst, size_t size, const char *s)
{
	size_t i = 0;

	for (; s && *s && i + 4 < size; s++)
		dst[i++] = (*s >= 0x20 && *s < 0x7f) ? *s : '?';
	if (s && *s)
		dst[i++] = '.', dst[i++] = '.', dst[i++] = '.';
	dst[i] = '\0';
	return dst;
}

static const struct alg *find_alg(const char *name)
{
	size_t i;

	for (i = 0; name && i < NELEM(ALGS); i++)
		if (!strcmp(ALGS[i].name, name))
			return &ALGS[i];
	return NULL;
}

static const struct curve *find_curve(const char *crv)
{
	size_t i;

	for (i = 0; crv && i < NELEM(CURVES); i++)
		if (!strcmp(CURVES[i].crv, crv) || !strcmp(CURVES[i].ossl, crv))
			return &CURVES[i];
	return NULL;
}

int jose_alg_supported(const char *alg)
{
	return find_alg(alg) != NULL;
}

static const char *get_str(json_object *o, const char *name)
{
	json_object *v;

	if (!json_object_object_get_ex(o, name, &v) || !json_object_is_type(v, json_type_string))
		return NULL;
	return json_object_get_string(v);
}

static int is_b64url(const char *s, size_t n)
{
	size_t i;

	for (i = 0; i < n; i++) {
		char c = s[i];
		if (!((c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') ||
		      (c >= '0' && c <= '9') || c == '-' || c == '_'))
			return 0;
	}
	return 1;
}

/* Decoded base64url member; NULL when missing, empty, not a string or not
 * strictly base64url (no padding, no standard alphabet). */
static unsigned char *member_bytes(json_object *o, const char *name, size_t *len)
{
	json_object *v;
	const char *s;
	size_t n;

	if (!json_object_object_get_ex(o, name, &v) || !json_object_is_type(v, json_type_string))
		return NULL;
	s = json_object_get_string(v);
	n = (size_t)json_object_get_string_len(v);
	if (!n || !is_b64url(s, n))
		return NULL;
	return b64_decode(s, n, len);
}

static BIGNUM *member_bn(json_object *o, const char *name)
{
	unsigned char *raw;
	size_t len;
	BIGNUM *bn;

	raw = member_bytes(o, name, &len);
	if (!raw)
		return NULL;
	bn = BN_bin2bn(raw, (int)len, NULL);
	OPENSSL_clear_free(raw, len);   /* may be private material */
	return bn;
}

static EVP_PKEY *from_params(const char *type, OSSL_PARAM_BLD *bld, int selection)
{
	EVP_PKEY_CTX *ctx = NULL;
	OSSL_PARAM *params = NULL;
	EVP_PKEY *pkey = NULL;

	params = OSSL_PARAM_BLD_to_param(bld);
	ctx = EVP_PKEY_CTX_new_from_name(NULL, type, NULL);
	if (!params || !ctx || EVP_PKEY_fromdata_init(ctx) != 1 ||
	    EVP_PKEY_fromdata(ctx, &pkey, selection, params) != 1)
		pkey = NULL;
	EVP_PKEY_CTX_free(ctx);
	OSSL_PARAM_free(params);
	return pkey;
}

static EVP_PKEY *rsa_from_jwk(json_object *jwk, int want_private, char **err)
{
	static const char *const crt_names[5] = { "p", "q", "dp", "dq", "qi" };
	static const char *const crt_params[5] = {
		OSSL_PKEY_PARAM_RSA_FACTOR1, OSSL_PKEY_PARAM_RSA_FACTOR2,
		OSSL_PKEY_PARAM_RSA_EXPONENT1, OSSL_PKEY_PARAM_RSA_EXPONENT2,
		OSSL_PKEY_PARAM_RSA_COEFFICIENT1,
	};
	BIGNUM *n = NULL, *e = NULL, *d = NULL, *crt[5] = { NULL };
	OSSL_PARAM_BLD *bld = NULL;
	EVP_PKEY_CTX *ctx = NULL;
	EVP_PKEY *pkey = NULL;
	int bits, i;

	n = member_bn(jwk, "n");
	e = member_bn(jwk, "e");
	if (!n || !e) {
		set_err(err, "RSA JWK needs base64url members \"n\" and \"e\"");
		goto out;
	}
	bits = BN_num_bits(n);
	if (bits < JOSE_RSA_MIN_BITS) {
		set_err(err, "RSA key is %d bits; at least %d required", bits, JOSE_RSA_MIN_BITS);
		goto out;
	}
	if (bits > RSA_MAX_BITS) {
		set_err(err, "RSA key is %d bits; at most %d supported", bits, RSA_MAX_BITS);
		goto out;
	}
	if (!BN_is_odd(n) || !BN_is_odd(e) || BN_num_bits(e) < 2 || BN_num_bits(e) > 256) {
		set_err(err, "RSA JWK has an invalid modulus or exponent");
		goto out;
	}
	if (want_private) {
		d = member_bn(jwk, "d");
		if (!d) {
			set_err(err, "JWK has no private key (\"d\")");
			goto out;
		}
		/* The CRT set is required: libjwt signs from PKCS#8 PEM, which
		 * cannot carry a d-only key, and every real producer emits it. */
		for (i = 0; i < 5; i++) {
			if (!(crt[i] = member_bn(jwk, crt_names[i]))) {
				set_err(err, "RSA private JWK needs base64url members p, q, dp, dq, qi (\"%s\" missing or invalid)",
					crt_names[i]);
				goto out;
			}
		}
	}
	bld = OSSL_PARAM_BLD_new();
	if (!bld || !OSSL_PARAM_BLD_push_BN(bld, OSSL_PKEY_PARAM_RSA_N, n) ||
	    !OSSL_PARAM_BLD_push_BN(bld, OSSL_PKEY_PARAM_RSA_E, e) ||
	    (d && !OSSL_PARAM_BLD_push_BN(bld, OSSL_PKEY_PARAM_RSA_D, d))) {
		set_err(err, "out of memory");
		goto out;
	}
	for (i = 0; i < 5 && d; i++) {
		if (!OSSL_PARAM_BLD_push_BN(bld, crt_params[i], crt[i])) {
			set_err(err, "out of memory");
			goto out;
		}
	}
	pkey = from_params("RSA", bld, d ? EVP_PKEY_KEYPAIR : EVP_PKEY_PUBLIC_KEY);
	if (!pkey) {
		set_err(err, "RSA JWK rejected by OpenSSL");
		goto out;
	}
	/* Private keys are loaded rarely (our own key files), so afford
	 * OpenSSL's full consistency check of p, q, d and the CRT values. */
	if (d) {
		ctx = EVP_PKEY_CTX_new_from_pkey(NULL, pkey, NULL);
		if (!ctx || EVP_PKEY_pairwise_check(ctx) != 1) {
			set_err(err, "RSA private JWK is inconsistent (p, q, d, dp, dq, qi do not match n, e)");
			EVP_PKEY_free(pkey);
			pkey = NULL;
		}
	}
out:
	BN_free(n);
	BN_free(e);
	BN_clear_free(d);
	for (i = 0; i < 5; i++)
		BN_clear_free(crt[i]);
	EVP_PKEY_CTX_free(ctx);
	OSSL_PARAM_BLD_free(bld);
	ERR_clear_error();
	return pkey;
}

/* Coordinate into out[size], left-padded: full length is required by
 * RFC 7518 but some encoders strip leading zeros, which is harmless. */
static int coord(json_object *jwk, const char *name, unsigned char *out, int size)
{
	unsigned char *raw;
	size_t len;
	int ok = 0;

	raw = member_bytes(jwk, name, &len);
	if (raw && len <= (size_t)size) {
		memset(out, 0, (size_t)size - len);
		memcpy(out + size - len, raw, len);
		ok = 1;
	}
	if (raw)
		OPENSSL_clear_free(raw, len);
	return ok;
}

static EVP_PKEY *ec_from_jwk(json_object *jwk, int want_private, char **err)
{
	const struct curve *c;
	const char *crv = get_str(jwk, "crv");
	unsigned char pub[1 + 2 * 66], priv[66];
	OSSL_PARAM_BLD *bld = NULL;
	EVP_PKEY_CTX *ctx = NULL;
	EVP_PKEY *pkey = NULL;
	BIGNUM *d = NULL;
	char tmp[80];

	c = crv ? find_curve(crv) : NULL;
	if (!c || strcmp(c->crv, crv)) {
		set_err(err, "unsupported EC curve '%s' (P-256, P-384 or P-521 required)",
			safe(tmp, sizeof tmp, crv ? crv : "(none)"));
		goto out;
	}
	pub[0] = 0x04;   /* uncompressed point */
	if (!coord(jwk, "x", pub + 1, c->size) || !coord(jwk, "y", pub + 1 + c->size, c->size)) {
		set_err(err, "EC JWK needs base64url \"x\" and \"y\" of %d bytes for %s",
			c->size, c->crv);
		goto out;
	}
	if (want_private) {
		if (!json_object_object_get_ex(jwk, "d", NULL)) {
			set_err(err, "JWK has no private key (\"d\")");
			goto out;
		}
		if (!coord(jwk, "d", priv, c->size) || !(d = BN_bin2bn(priv, c->size, NULL))) {
			set_err(err, "EC JWK \"d\" must be base64url of %d bytes", c->size);
			goto out;
		}
	}
	bld = OSSL_PARAM_BLD_new();
	if (!bld || !OSSL_PARAM_BLD_push_utf8_string(bld, OSSL_PKEY_PARAM_GROUP_NAME, c->ossl, 0) ||
	    !OSSL_PARAM_BLD_push_octet_string(bld, OSSL_PKEY_PARAM_PUB_KEY, pub, 1 + 2 * (size_t)c->size) ||
	    (d && !OSSL_PARAM_BLD_push_BN(bld, OSSL_PKEY_PARAM_PRIV_KEY, d))) {
		set_err(err, "out of memory");
		goto out;
	}
	pkey = from_params("EC", bld, d ? EVP_PKEY_KEYPAIR : EVP_PKEY_PUBLIC_KEY);
	if (!pkey) {
		set_err(err, "EC public key is not a valid point on %s", c->crv);
		goto out;
	}
	/* Invalid-curve attacks: OpenSSL 3.0's import already refuses points
	 * off the curve; check explicitly so that never depends on the
	 * provider.  For private keys d must also match the point. */
	ctx = EVP_PKEY_CTX_new_from_pkey(NULL, pkey, NULL);
	if (!ctx || EVP_PKEY_public_check(ctx) != 1) {
		set_err(err, "EC public key is not a valid point on %s", c->crv);
		goto fail;
	}
	if (d && EVP_PKEY_pairwise_check(ctx) != 1) {
		set_err(err, "EC private key \"d\" does not match \"x\"/\"y\"");
		goto fail;
	}
	goto out;
fail:
	EVP_PKEY_free(pkey);
	pkey = NULL;
out:
	OPENSSL_cleanse(priv, sizeof priv);
	BN_clear_free(d);
	OSSL_PARAM_BLD_free(bld);
	EVP_PKEY_CTX_free(ctx);
	ERR_clear_error();
	return pkey;
}

EVP_PKEY *jose_jwk_to_pkey(json_object *jwk, int want_private, char **err)
{
	const char *kty;
	char tmp[80];

	if (!jwk || !json_object_is_type(jwk, json_type_object)) {
		set_err(err, "JWK is not a JSON object");
		return NULL;
	}
	kty = get_str(jwk, "kty");
	if (!kty) {
		set_err(err, "JWK has no \"kty\"");
		return NULL;
	}
	if (!strcmp(kty, "RSA"))
		return rsa_from_jwk(jwk, want_private, err);
	if (!strcmp(kty, "EC"))
		return ec_from_jwk(jwk, want_private, err);
	set_err(err, "unsupported kty '%s' (RSA or EC required)", safe(tmp, sizeof tmp, kty));
	return NULL;
}

/* RFC 7638 required members per kty, already in lexicographic order. */
static const struct {
	const char *kty;
	const char *members[4];
} THUMB[] = {
	{ "RSA", { "e", "kty", "n", NULL } },
	{ "EC", { "crv", "kty", "x", "y" } },
	{ "OKP", { "crv", "kty", "x", NULL } },
	{ "oct", { "k", "kty", NULL, NULL } },
};

/* JSON string as RFC 7638 wants it: minimal escaping, UTF-8 as is. */
static void put_json_str(struct buf *b, const char *s)
{
	buf_putc(b, '"');
	for (; *s; s++) {
		unsigned char c = (unsigned char)*s;
		if (c == '"' || c == '\\')
			buf_printf(b, "\\%c", c);
		else if (c < 0x20)
			buf_printf(b, "\\u%04x", c);
		else
			buf_putc(b, (char)c);
	}
	buf_putc(b, '"');
}

char *jose_jwk_thumbprint(json_object *jwk, char **err)
{
	struct buf b = BUF_INIT;
	unsigned char md[SHA256_DIGEST_LENGTH];
	const char *kty, *v;
	char *out = NULL, tmp[80];
	size_t i, m;

	if (!jwk || !json_object_is_type(jwk, json_type_object) || !(kty = get_str(jwk, "kty"))) {
		set_err(err, "JWK has no \"kty\"");
		goto out;
	}
	for (i = 0; i < NELEM(THUMB) && strcmp(THUMB[i].kty, kty); i++)
		;
	if (i == NELEM(THUMB)) {
		set_err(err, "unsupported kty '%s'", safe(tmp, sizeof tmp, kty));
		goto out;
	}
	buf_putc(&b, '{');
	for (m = 0; m < 4 && THUMB[i].members[m]; m++) {
		v = get_str(jwk, THUMB[i].members[m]);
		if (!v) {
			set_err(err, "JWK member \"%s\" is missing or not a string", THUMB[i].members[m]);
			goto out;
		}
		if (m)
			buf_putc(&b, ',');
		put_json_str(&b, THUMB[i].members[m]);
		buf_putc(&b, ':');
		put_json_str(&b, v);
	}
	buf_putc(&b, '}');
	SHA256((const unsigned char *)b.data, b.len, md);
	out = b64url_encode(md, sizeof md);
	if (!out)
		set_err(err, "out of memory");
out:
	buf_free(&b);
	return out;
}

/* base64url of a BIGNUM parameter, left-padded to pad bytes (0: minimal). */
static char *bn_param_b64(EVP_PKEY *key, const char *name, int pad)
{
	BIGNUM *bn = NULL;
	unsigned char *raw = NULL;
	char *out = NULL;
	int len;

	if (EVP_PKEY_get_bn_param(key, name, &bn) != 1)
		goto out;
	len = pad ? pad : BN_num_bytes(bn);
	if (len <= 0 || BN_num_bytes(bn) > len)
		goto out;
	raw = OPENSSL_malloc((size_t)len);
	if (raw && BN_bn2binpad(bn, raw, len) == len)
		out = b64url_encode(raw, (size_t)len);
out:
	if (raw)
		OPENSSL_clear_free(raw, (size_t)len);
	BN_clear_free(bn);
	return out;
}

/* Adds a BIGNUM parameter as a JWK member; 0 ok, -1 when absent. */
static int add_bn(json_object *o, const char *member, EVP_PKEY *key, const char *param, int pad)
{
	char *s = bn_param_b64(key, param, pad);

	if (!s)
		return -1;
	json_object_object_add(o, member, json_object_new_string(s));
	OPENSSL_cleanse(s, strlen(s));
	free(s);
	return 0;
}

static const struct curve *pkey_curve(EVP_PKEY *key)
{
	char group[64];

	if (EVP_PKEY_get_base_id(key) != EVP_PKEY_EC ||
	    EVP_PKEY_get_group_name(key, group, sizeof group, NULL) != 1)
		return NULL;
	return find_curve(group);
}

/* Whether key can sign/verify alg; 1/0.  Also enforces the RSA size floor. */
static int pkey_fits_alg(EVP_PKEY *key, const struct alg *a)
{
	const struct curve *c;

	if (!a->crv)
		return EVP_PKEY_get_base_id(key) == EVP_PKEY_RSA &&
		       EVP_PKEY_get_bits(key) >= JOSE_RSA_MIN_BITS;
	c = pkey_curve(key);
	return c && !strcmp(c->crv, a->crv);
}

json_object *jose_pkey_to_jwk(EVP_PKEY *key, const char *alg, int include_private)
{
	static const char *const rsa_priv[][2] = {
		{ "d", OSSL_PKEY_PARAM_RSA_D },
		{ "p", OSSL_PKEY_PARAM_RSA_FACTOR1 },
		{ "q", OSSL_PKEY_PARAM_RSA_FACTOR2 },
		{ "dp", OSSL_PKEY_PARAM_RSA_EXPONENT1 },
		{ "dq", OSSL_PKEY_PARAM_RSA_EXPONENT2 },
		{ "qi", OSSL_PKEY_PARAM_RSA_COEFFICIENT1 },
	};
	json_object *members = NULL, *jwk = NULL;
	const struct curve *c = NULL;
	const struct alg *a = NULL;
	char *kid = NULL;
	size_t i;

	if (!key)
		return NULL;
	members = json_object_new_object();
	if (EVP_PKEY_get_base_id(key) == EVP_PKEY_RSA) {
		json_object_object_add(members, "kty", json_object_new_string("RSA"));
		if (add_bn(members, "n", key, OSSL_PKEY_PARAM_RSA_N, 0) ||
		    add_bn(members, "e", key, OSSL_PKEY_PARAM_RSA_E, 0))
			goto out;
		/* A public-only key just yields the public JWK; a private one
		 * needs the full CRT set, as jose_jwk_to_pkey does. */
		if (include_private && !add_bn(members, "d", key, OSSL_PKEY_PARAM_RSA_D, 0)) {
			for (i = 1; i < NELEM(rsa_priv); i++)
				if (add_bn(members, rsa_priv[i][0], key, rsa_priv[i][1], 0))
					goto out;
		}
		a = find_alg(alg ? alg : "RS384");
	} else if ((c = pkey_curve(key))) {
		json_object_object_add(members, "kty", json_object_new_string("EC"));
		json_object_object_add(members, "crv", json_object_new_string(c->crv));
		if (add_bn(members, "x", key, OSSL_PKEY_PARAM_EC_PUB_X, c->size) ||
		    add_bn(members, "y", key, OSSL_PKEY_PARAM_EC_PUB_Y, c->size))
			goto out;
		if (include_private)
			add_bn(members, "d", key, OSSL_PKEY_PARAM_PRIV_KEY, c->size);
		a = find_alg(alg ? alg : c->alg);
	} else {
		goto out;
	}
	if (!a || !pkey_fits_alg(key, a))
		goto out;
	kid = jose_jwk_thumbprint(members, NULL);
	if (!kid)
		goto out;
	/* Rebuild so the output reads kty, kid, alg, key members. */
	jwk = json_object_new_object();
	json_object_object_add(jwk, "kty", json_object_get(json_object_object_get(members, "kty")));
	json_object_object_add(jwk, "kid", json_object_new_string(kid));
	json_object_object_add(jwk, "alg", json_object_new_string(a->name));
	json_object_object_foreach(members, k, v) {
		if (strcmp(k, "kty"))
			json_object_object_add(jwk, k, json_object_get(v));
	}
out:
	free(kid);
	json_object_put(members);
	ERR_clear_error();
	return jwk;
}

char *jose_pkey_to_pem(EVP_PKEY *key, int private_)
{
	BIO *bio;
	char *data, *out = NULL;
	long n;
	int ok;

	if (!key)
		return NULL;
	/* secmem: the BIO's buffer is wiped when freed. */
	bio = BIO_new(private_ ? BIO_s_secmem() : BIO_s_mem());
	if (!bio)
		return NULL;
	ok = private_ ? PEM_write_bio_PrivateKey(bio, key, NULL, NULL, 0, NULL, NULL)
		      : PEM_write_bio_PUBKEY(bio, key);
	n = BIO_get_mem_data(bio, &data);
	if (ok == 1 && n > 0 && (out = malloc((size_t)n + 1))) {
		memcpy(out, data, (size_t)n);
		out[n] = '\0';
	}
	BIO_free(bio);
	ERR_clear_error();
	return out;
}

/* Never prompt on a terminal for a passphrase: encrypted PEM just fails. */
static int no_passphrase(char *buf, int size, int rwflag, void *u)
{
	(void)buf; (void)size; (void)rwflag; (void)u;
	return -1;
}

static EVP_PKEY *public_only(EVP_PKEY *key)
{
	unsigned char *der = NULL;
	const unsigned char *p;
	EVP_PKEY *pub = NULL;
	int n;

	n = i2d_PUBKEY(key, &der);
	p = der;
	if (n > 0)
		pub = d2i_PUBKEY(NULL, &p, n);
	OPENSSL_free(der);
	return pub;
}

/* Same acceptance rules for PEM keys as for JWKs. */
static int check_pkey(EVP_PKEY *key, char **err)
{
	int bits;

	if (EVP_PKEY_get_base_id(key) == EVP_PKEY_RSA) {
		bits = EVP_PKEY_get_bits(key);
		if (bits < JOSE_RSA_MIN_BITS) {
			set_err(err, "RSA key is %d bits; at least %d required", bits, JOSE_RSA_MIN_BITS);
			return -1;
		}
		if (bits > RSA_MAX_BITS) {
			set_err(err, "RSA key is %d bits; at most %d supported", bits, RSA_MAX_BITS);
			return -1;
		}
		return 0;
	}
	if (EVP_PKEY_get_base_id(key) == EVP_PKEY_EC) {
		if (pkey_curve(key))
			return 0;
		set_err(err, "unsupported EC curve (P-256, P-384 or P-521 required)");
		return -1;
	}
	set_err(err, "unsupported key type (RSA or EC required)");
	return -1;
}

static EVP_PKEY *pem_load(const char *text, int want_private, char **err)
{
	EVP_PKEY *key = NULL, *priv = NULL;
	BIO *bio;

	if (!want_private) {
		bio = BIO_new_mem_buf(text, -1);
		key = bio ? PEM_read_bio_PUBKEY(bio, NULL, no_passphrase, NULL) : NULL;
		BIO_free(bio);
		if (key)
			goto out;
	}
	bio = BIO_new_mem_buf(text, -1);
	priv = bio ? PEM_read_bio_PrivateKey(bio, NULL, no_passphrase, NULL) : NULL;
	BIO_free(bio);
	if (!priv) {
		set_err(err, want_private ? "PEM holds no usable private key (encrypted keys are not supported)"
					  : "PEM holds no usable public or private key");
		goto out;
	}
	if (want_private) {
		key = priv;
		priv = NULL;
	} else if (!(key = public_only(priv))) {
		set_err(err, "cannot extract the public key from PEM");
	}
out:
	EVP_PKEY_free(priv);
	ERR_clear_error();
	return key;
}

/* Whole-input strict JSON parse: trailing garbage (other than whitespace),
 * a NUL inside or invalid UTF-8 is an error. */
static json_object *parse_json_exact(const char *s, size_t len)
{
	json_tokener *tok = json_tokener_new();
	json_object *o = NULL;

	if (!tok || len > INT32_MAX)
		goto out;
	json_tokener_set_flags(tok, JSON_TOKENER_STRICT | JSON_TOKENER_VALIDATE_UTF8);
	o = json_tokener_parse_ex(tok, s, (int)len);
	if (o && (json_tokener_get_error(tok) != json_tokener_success ||
		  json_tokener_get_parse_end(tok) != len)) {
		json_object_put(o);
		o = NULL;
	}
out:
	if (tok)
		json_tokener_free(tok);
	return o;
}

EVP_PKEY *jose_load_key(const char *text, int want_private, json_object **jwk_out, char **err)
{
	json_object *root = NULL, *src = NULL, *keys, *k, *jwk = NULL;
	const char *p = text, *alg = NULL, *kid = NULL;
	EVP_PKEY *key = NULL;
	char tmp[80];
	size_t i, n;

	if (!text) {
		set_err(err, "no key text");
		goto out;
	}
	while (*p == ' ' || *p == '\t' || *p == '\r' || *p == '\n')
		p++;
	if (*p == '{') {
		root = parse_json_exact(p, strlen(p));
		if (!root || !json_object_is_type(root, json_type_object)) {
			set_err(err, "key file is not a valid JSON object");
			goto out;
		}
		src = root;
		if (json_object_object_get_ex(root, "keys", &keys)) {
			if (!json_object_is_type(keys, json_type_array) ||
			    !(n = json_object_array_length(keys))) {
				set_err(err, "JWKS has no keys");
				goto out;
			}
			src = json_object_array_get_idx(keys, 0);
			for (i = 0; want_private && i < n; i++) {
				k = json_object_array_get_idx(keys, i);
				if (json_object_is_type(k, json_type_object) &&
				    json_object_object_get_ex(k, "d", NULL))
					break;
			}
			if (want_private && i == n) {
				set_err(err, "JWKS has no private key (no key with \"d\")");
				goto out;
			}
			if (want_private)
				src = json_object_array_get_idx(keys, i);
		}
		key = jose_jwk_to_pkey(src, want_private, err);
		if (!key)
			goto out;
		alg = get_str(src, "alg");
		kid = get_str(src, "kid");
	} else if (!strncmp(p, "-----BEGIN ", 11)) {
		key = pem_load(p, want_private, err);
		if (key && check_pkey(key, err)) {
			EVP_PKEY_free(key);
			key = NULL;
		}
		if (!key)
			goto out;
	} else {
		set_err(err, "key file holds neither a JWK/JWKS nor PEM");
		goto out;
	}
	if (!jwk_out)
		goto out;
	/* Keep the file's own alg/kid: a provider registered that kid. */
	if (alg && (!find_alg(alg) || !pkey_fits_alg(key, find_alg(alg)))) {
		set_err(err, "JWK alg '%s' does not fit the key", safe(tmp, sizeof tmp, alg));
		goto fail;
	}
	jwk = jose_pkey_to_jwk(key, alg, 0);
	if (!jwk) {
		set_err(err, "cannot build a JWK for the key");
		goto fail;
	}
	if (kid && *kid)
		json_object_object_add(jwk, "kid", json_object_new_string(kid));
	*jwk_out = jwk;
	goto out;
fail:
	EVP_PKEY_free(key);
	key = NULL;
out:
	json_object_put(root);
	return key;
}

EVP_PKEY *jose_keygen(const char *alg, int bits, char **err)
{
	const struct alg *a = find_alg(alg);
	EVP_PKEY *key = NULL;
	char tmp[80];

	if (!a) {
		set_err(err, "unsupported alg '%s' (RS256, RS384, RS512, ES256, ES384 or ES512)",
			safe(tmp, sizeof tmp, alg ? alg : "(none)"));
		return NULL;
	}
	if (a->crv) {
		key = EVP_PKEY_Q_keygen(NULL, NULL, "EC", find_curve(a->crv)->ossl);
	} else {
		if (!bits)
			bits = JOSE_RSA_MIN_BITS;
		if (bits < JOSE_RSA_MIN_BITS || bits > RSA_KEYGEN_MAX_BITS) {
			set_err(err, "RSA key size %d out of range (%d..%d)", bits,
				JOSE_RSA_MIN_BITS, RSA_KEYGEN_MAX_BITS);
			return NULL;
		}
		key = EVP_PKEY_Q_keygen(NULL, NULL, "RSA", (size_t)bits);
	}
	if (!key)
		set_err(err, "key generation for %s failed", a->name);
	ERR_clear_error();
	return key;
}

/* Whether a JWK (kty/crv/alg/use members) may be used with alg.  0 yes;
 * -1 with why[] filled in. */
static int jwk_fits_alg(json_object *jwk, const struct alg *a, char *why, size_t size)
{
	const char *kty = get_str(jwk, "kty"), *crv = get_str(jwk, "crv");
	const char *jalg = get_str(jwk, "alg"), *use = get_str(jwk, "use");
	char t1[80], t2[80];

	if (!a->crv && (!kty || strcmp(kty, "RSA"))) {
		snprintf(why, size, "is %s, but alg %s needs an RSA key",
			 safe(t1, sizeof t1, kty ? kty : "(no kty)"), a->name);
		return -1;
	}
	if (a->crv && (!kty || strcmp(kty, "EC") || !crv || strcmp(crv, a->crv))) {
		snprintf(why, size, "is %s%s%s, but alg %s needs an EC %s key",
			 safe(t1, sizeof t1, kty ? kty : "(no kty)"), crv ? " " : "",
			 safe(t2, sizeof t2, crv ? crv : ""), a->name, a->crv);
		return -1;
	}
	if (json_object_object_get_ex(jwk, "alg", NULL) && (!jalg || strcmp(jalg, a->name))) {
		snprintf(why, size, "is for alg '%s', not %s",
			 safe(t1, sizeof t1, jalg ? jalg : "(not a string)"), a->name);
		return -1;
	}
	if (json_object_object_get_ex(jwk, "use", NULL) && (!use || strcmp(use, "sig"))) {
		snprintf(why, size, "has \"use\" other than \"sig\"");
		return -1;
	}
	return 0;
}

int jose_jwks_validate(json_object *jwks, char **err)
{
	json_object *keys, *k, *ops, *o;
	const char *kid, *alg;
	char *perr = NULL, why[256], tmp[80];
	EVP_PKEY *key;
	size_t i, j, n, m;
	int rc = -1;

	if (!jwks || !json_object_is_type(jwks, json_type_object)) {
		set_err(err, "JWKS must be a JSON object");
		return -1;
	}
	if (!json_object_object_get_ex(jwks, "keys", &keys) ||
	    !json_object_is_type(keys, json_type_array)) {
		set_err(err, "JWKS has no \"keys\" array");
		return -1;
	}
	n = json_object_array_length(keys);
	if (!n) {
		set_err(err, "JWKS \"keys\" array is empty");
		return -1;
	}
	if (n > JWKS_MAX_KEYS) {
		set_err(err, "JWKS has %zu keys; at most %d allowed", n, JWKS_MAX_KEYS);
		return -1;
	}
	for (i = 0; i < n; i++) {
		k = json_object_array_get_idx(keys, i);
		if (!json_object_is_type(k, json_type_object)) {
			set_err(err, "keys[%zu]: not a JSON object", i);
			goto out;
		}
		for (j = 0; j < NELEM(PRIVATE_MEMBERS); j++) {
			if (json_object_object_get_ex(k, PRIVATE_MEMBERS[j], NULL)) {
				set_err(err, "keys[%zu]: private key member \"%s\" must not appear in a public JWKS",
					i, PRIVATE_MEMBERS[j]);
				goto out;
			}
		}
		key = jose_jwk_to_pkey(k, 0, &perr);
		if (!key) {
			set_err(err, "keys[%zu]: %s", i, perr);
			goto out;
		}
		EVP_PKEY_free(key);
		kid = get_str(k, "kid");
		if (!json_object_object_get_ex(k, "kid", NULL)) {
			set_err(err, "keys[%zu]: missing \"kid\"", i);
			goto out;
		}
		if (!kid || !*kid) {
			set_err(err, "keys[%zu]: \"kid\" must be a non-empty string", i);
			goto out;
		}
		/* Assertions pick their key by kid; duplicates would be ambiguous. */
		for (j = 0; j < i; j++) {
			const char *other = get_str(json_object_array_get_idx(keys, j), "kid");
			if (other && !strcmp(other, kid)) {
				set_err(err, "keys[%zu]: duplicate kid '%s' (also keys[%zu])",
					i, safe(tmp, sizeof tmp, kid), j);
				goto out;
			}
		}
		if (json_object_object_get_ex(k, "alg", &o)) {
			alg = get_str(k, "alg");
			if (!alg || !find_alg(alg)) {
				set_err(err, "keys[%zu]: alg '%s' is not supported (RS256, RS384, RS512, ES256, ES384, ES512)",
					i, safe(tmp, sizeof tmp, alg ? alg : json_object_to_json_string(o)));
				goto out;
			}
			if (jwk_fits_alg(k, find_alg(alg), why, sizeof why)) {
				set_err(err, "keys[%zu]: key %s", i, why);
				goto out;
			}
		}
		if (json_object_object_get_ex(k, "use", &o) && (!get_str(k, "use") ||
								strcmp(get_str(k, "use"), "sig"))) {
			set_err(err, "keys[%zu]: \"use\" must be \"sig\"", i);
			goto out;
		}
		if (json_object_object_get_ex(k, "key_ops", &ops)) {
			m = json_object_is_type(ops, json_type_array) ? json_object_array_length(ops) : 0;
			for (j = 0; j < m; j++) {
				o = json_object_array_get_idx(ops, j);
				if (json_object_is_type(o, json_type_string) &&
				    !strcmp(json_object_get_string(o), "verify"))
					break;
			}
			if (j == m) {
				set_err(err, "keys[%zu]: \"key_ops\" does not include \"verify\"", i);
				goto out;
			}
		}
	}
	rc = 0;
out:
	free(perr);
	return rc;
}

/* ---- compact JWS ---- */

struct jws {
	const char *seg[3];
	size_t len[3];
	json_object *hdr, *payload;
};

/* Splits and decodes header and payload; 0 ok, -1 + *desc (malloc'd). */
static int jws_parse(const char *token, struct jws *j, char **desc)
{
	const char *d1, *d2;
	unsigned char *raw;
	size_t len, i;

	memset(j, 0, sizeof *j);
	if (!token || !*token) {
		set_err(desc, "malformed JWT: empty");
		return -1;
	}
	if (strlen(token) > TOKEN_MAX_LEN) {
		set_err(desc, "malformed JWT: longer than %d bytes", TOKEN_MAX_LEN);
		return -1;
	}
	d1 = strchr(token, '.');
	d2 = d1 ? strchr(d1 + 1, '.') : NULL;
	if (!d2 || strchr(d2 + 1, '.')) {
		set_err(desc, "malformed JWT: expected three dot-separated parts");
		return -1;
	}
	j->seg[0] = token;
	j->len[0] = (size_t)(d1 - token);
	j->seg[1] = d1 + 1;
	j->len[1] = (size_t)(d2 - d1 - 1);
	j->seg[2] = d2 + 1;
	j->len[2] = strlen(d2 + 1);
	for (i = 0; i < 3; i++) {
		if (!is_b64url(j->seg[i], j->len[i])) {
			set_err(desc, "malformed JWT: %s is not base64url",
				i == 0 ? "header" : i == 1 ? "payload" : "signature");
			return -1;
		}
	}
	for (i = 0; i < 2; i++) {
		raw = b64_decode(j->seg[i], j->len[i], &len);
		json_object *o = raw ? parse_json_exact((const char *)raw, len) : NULL;
		free(raw);
		if (!o || !json_object_is_type(o, json_type_object)) {
			json_object_put(o);
			set_err(desc, "malformed JWT: %s is not a base64url JSON object",
				i == 0 ? "header" : "payload");
			return -1;
		}
		if (i == 0)
			j->hdr = o;
		else
			j->payload = o;
	}
	return 0;
}

static void jws_free(struct jws *j)
{
	json_object_put(j->hdr);
	json_object_put(j->payload);
	j->hdr = j->payload = NULL;
}

json_object *jose_peek_claims(const char *token, char **err)
{
	struct jws j;
	json_object *claims = NULL;

	if (jws_parse(token, &j, err) == 0) {
		claims = j.payload;
		j.payload = NULL;
	}
	jws_free(&j);
	return claims;
}

/* Integer claim: 1 present and integral, 0 absent, -1 wrong type. */
static int claim_int(json_object *c, const char *name, int64_t *v)
{
	json_object *o;

	if (!json_object_object_get_ex(c, name, &o))
		return 0;
	if (!json_object_is_type(o, json_type_int))
		return -1;
	*v = json_object_get_int64(o);
	return 1;
}

static int aud_matches(json_object *c, const char *want)
{
	json_object *aud, *o;
	size_t i, n;

	if (!json_object_object_get_ex(c, "aud", &aud))
		return 0;
	if (json_object_is_type(aud, json_type_string))
		return !strcmp(json_object_get_string(aud), want);
	if (!json_object_is_type(aud, json_type_array))
		return 0;
	n = json_object_array_length(aud);
	for (i = 0; i < n; i++) {
		o = json_object_array_get_idx(aud, i);
		if (json_object_is_type(o, json_type_string) && !strcmp(json_object_get_string(o), want))
			return 1;
	}
	return 0;
}

/* 0 ok; -1 + *desc. */
static int check_claims(json_object *c, const struct jose_expect *ex, long now, char **desc)
{
	const char *iss = get_str(c, "iss"), *sub = get_str(c, "sub"), *jti = get_str(c, "jti");
	long ahead = ex->max_exp_ahead > 0 ? ex->max_exp_ahead : JOSE_MAX_EXP_AHEAD;
	char t1[80], t2[80];
	int64_t expv = 0, nbf = 0;
	int r;

	if (!iss || !sub) {
		set_err(desc, "%s claim is missing or not a string", !iss ? "iss" : "sub");
		return -1;
	}
	if (strcmp(iss, sub)) {
		set_err(desc, "iss '%s' and sub '%s' differ; both must be the client_id",
			safe(t1, sizeof t1, iss), safe(t2, sizeof t2, sub));
		return -1;
	}
	if (strcmp(iss, ex->client_id)) {
		set_err(desc, "iss/sub '%s' is not the client_id '%s'",
			safe(t1, sizeof t1, iss), safe(t2, sizeof t2, ex->client_id));
		return -1;
	}
	if (!aud_matches(c, ex->aud)) {
		set_err(desc, "aud must be %s", ex->aud);
		return -1;
	}
	r = claim_int(c, "exp", &expv);
	if (r <= 0) {
		set_err(desc, r ? "exp claim must be an integer" : "exp claim is missing");
		return -1;
	}
	if (expv <= now) {
		set_err(desc, "JWT has expired (exp %lld, now %ld)", (long long)expv, now);
		return -1;
	}
	if (expv > now + ahead) {
		if (ahead % 60)
			set_err(desc, "exp is more than %ld seconds in the future", ahead);
		else
			set_err(desc, "exp is more than %ld minutes in the future", ahead / 60);
		return -1;
	}
	r = claim_int(c, "nbf", &nbf);
	if (r < 0 || (r > 0 && nbf > now + NBF_LEEWAY)) {
		set_err(desc, r < 0 ? "nbf claim must be an integer" : "JWT is not valid yet (nbf)");
		return -1;
	}
	if (!jti || !*jti) {
		set_err(desc, "jti claim is missing or empty");
		return -1;
	}
	if (strlen(jti) > JTI_MAX_LEN) {
		set_err(desc, "jti is longer than %d characters", JTI_MAX_LEN);
		return -1;
	}
	return 0;
}

int jose_verify_assertion(const char *token, json_object *jwks, const struct jose_expect *ex,
			  json_object **claims_out, const char **err_code, char **err_desc)
{
	const char *code = "invalid_client";
	const struct alg *a = NULL;
	json_object *keys, *k, *jwk = NULL;
	const char *alg, *kid;
	struct jws j;
	EVP_PKEY *key = NULL;
	jwt_t *jwt = NULL;
	char *desc = NULL, *perr = NULL, *pem = NULL, why[256] = "", w[256], t1[80];
	unsigned char *sig = NULL;
	size_t siglen, i, n;
	long now;
	int rc = -1;

	memset(&j, 0, sizeof j);
	*claims_out = NULL;
	*err_code = NULL;
	*err_desc = NULL;
	if (!ex || !ex->client_id || !ex->aud) {
		set_err(&desc, "server error: expected client_id/aud not set");
		goto out;
	}
	now = ex->now > 0 ? ex->now : (long)time(NULL);

	/* 1) our own split/decode: libjwt must never pick the algorithm. */
	if (jws_parse(token, &j, &desc)) {
		code = "invalid_request";
		goto out;
	}
	if (json_object_object_get_ex(j.hdr, "crit", NULL)) {
		code = "invalid_request";
		set_err(&desc, "JWT header \"crit\" is not supported");
		goto out;
	}
	/* 2) alg pinned to the supported list ("none", HS*, ... rejected). */
	alg = get_str(j.hdr, "alg");
	if (!alg) {
		code = "invalid_request";
		set_err(&desc, "JWT header has no \"alg\"");
		goto out;
	}
	a = find_alg(alg);
	if (!a) {
		set_err(&desc, "JWT alg '%s' is not allowed", safe(t1, sizeof t1, alg));
		goto out;
	}
	if (!j.len[2]) {
		set_err(&desc, "JWT has no signature");
		goto out;
	}
	/* 3) key by kid only: without kid no key is used, even if the JWKS
	 * holds a single key (SMART requires kid). */
	kid = get_str(j.hdr, "kid");
	if (!kid || !*kid) {
		set_err(&desc, "JWT header has no \"kid\"");
		goto out;
	}
	if (!jwks || !json_object_object_get_ex(jwks, "keys", &keys) ||
	    !json_object_is_type(keys, json_type_array)) {
		set_err(&desc, "client JWKS has no \"keys\" array");
		goto out;
	}
	/* 4) key type must fit alg; among keys sharing the kid take the first
	 * that fits, else report why the first one does not. */
	n = json_object_array_length(keys);
	for (i = 0; i < n; i++) {
		k = json_object_array_get_idx(keys, i);
		if (!json_object_is_type(k, json_type_object) || !get_str(k, "kid") ||
		    strcmp(get_str(k, "kid"), kid))
			continue;
		if (!jwk_fits_alg(k, a, w, sizeof w)) {
			jwk = k;
			break;
		}
		if (!why[0])
			memcpy(why, w, sizeof why);
	}
	if (!jwk) {
		if (why[0])
			set_err(&desc, "key '%s' %s", safe(t1, sizeof t1, kid), why);
		else
			set_err(&desc, "no key with kid '%s' in client JWKS", safe(t1, sizeof t1, kid));
		goto out;
	}
	key = jose_jwk_to_pkey(jwk, 0, &perr);
	if (!key) {
		set_err(&desc, "key '%s' in client JWKS is unusable: %s", safe(t1, sizeof t1, kid), perr);
		goto out;
	}
	/* 5) signature.  JOSE ES signatures are r||s of fixed length; say so
	 * plainly for DER or truncated ones (libjwt would reject them too). */
	if (a->crv) {
		sig = b64_decode(j.seg[2], j.len[2], &siglen);
		if (!sig || siglen != 2 * (size_t)find_curve(a->crv)->size) {
			set_err(&desc, "signature verification failed: %s signature must be %d bytes (r||s), got %zu",
				a->name, 2 * find_curve(a->crv)->size, sig ? siglen : 0);
			goto out;
		}
	}
	pem = jose_pkey_to_pem(key, 0);
	if (!pem) {
		set_err(&desc, "server error: cannot encode key");
		goto out;
	}
	if (jwt_decode(&jwt, token, (const unsigned char *)pem, (int)strlen(pem)) || !jwt) {
		set_err(&desc, "signature verification failed");
		goto out;
	}
	/* Belt and braces: libjwt must have used the alg we pinned. */
	if (jwt_get_alg(jwt) != a->jalg) {
		set_err(&desc, "signature verification failed (alg mismatch)");
		goto out;
	}
	/* 6) claims, from our parse of the same payload bytes libjwt verified. */
	if (check_claims(j.payload, ex, now, &desc))
		goto out;
	*claims_out = j.payload;
	j.payload = NULL;
	code = NULL;
	rc = 0;
out:
	if (rc) {
		*err_code = code;
		*err_desc = desc ? desc : strdup("invalid client assertion");
	}
	if (jwt)
		jwt_free(jwt);
	jws_free(&j);
	EVP_PKEY_free(key);
	free(pem);
	free(sig);
	free(perr);
	ERR_clear_error();
	return rc;
}

/* Signed with libjwt: 1.10.2 emits correct fixed-length JOSE r||s for ES*
 * (see top of file), so no DER conversion is needed. */
char *jose_sign_assertion(EVP_PKEY *key, const char *alg, const char *kid, const char *client_id,
			  const char *aud, long now, int lifetime, char **err)
{
	const struct alg *a = find_alg(alg);
	json_object *jwk = NULL;
	jwt_t *jwt = NULL;
	char *pem = NULL, *jti = NULL, *tok, *out = NULL, tmp[80];

	if (!a) {
		set_err(err, "unsupported alg '%s'", safe(tmp, sizeof tmp, alg ? alg : "(none)"));
		goto out;
	}
	if (!key || !pkey_fits_alg(key, a)) {
		set_err(err, "key does not fit alg %s", a->name);
		goto out;
	}
	if (!client_id || !*client_id || !aud || !*aud) {
		set_err(err, "client_id and aud are required");
		goto out;
	}
	if (!lifetime)
		lifetime = JOSE_MAX_EXP_AHEAD;
	if (lifetime < 0 || lifetime > JOSE_MAX_EXP_AHEAD) {
		set_err(err, "assertion lifetime %d out of range (1..%d s)", lifetime, JOSE_MAX_EXP_AHEAD);
		goto out;
	}
	if (now <= 0)
		now = (long)time(NULL);
	if (!kid) {
		jwk = jose_pkey_to_jwk(key, a->name, 0);
		kid = jwk ? get_str(jwk, "kid") : NULL;
		if (!kid) {
			set_err(err, "cannot compute key thumbprint");
			goto out;
		}
	}
	jti = random_token(16);
	pem = jose_pkey_to_pem(key, 1);
	if (!jti || !pem) {
		set_err(err, !jti ? "random generator failed" : "cannot encode private key");
		goto out;
	}
	if (jwt_new(&jwt) || jwt_add_header(jwt, "kid", kid) ||
	    jwt_add_grant(jwt, "iss", client_id) || jwt_add_grant(jwt, "sub", client_id) ||
	    jwt_add_grant(jwt, "aud", aud) || jwt_add_grant_int(jwt, "exp", now + lifetime) ||
	    jwt_add_grant_int(jwt, "iat", now) || jwt_add_grant(jwt, "jti", jti) ||
	    jwt_set_alg(jwt, a->jalg, (const unsigned char *)pem, (int)strlen(pem))) {
		set_err(err, "cannot build JWT");
		goto out;
	}
	tok = jwt_encode_str(jwt);
	if (!tok) {
		set_err(err, "JWT signing failed");
		goto out;
	}
	out = tok;   /* libjwt 1.10 allocates with plain malloc */
out:
	if (jwt)
		jwt_free(jwt);
	if (pem) {
		OPENSSL_cleanse(pem, strlen(pem));
		free(pem);
	}
	free(jti);
	json_object_put(jwk);
	ERR_clear_error();
	return out;
}
