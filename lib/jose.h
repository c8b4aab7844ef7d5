/* JOSE: JWK <-> EVP_PKEY, JWKS validation, SMART Backend Services client
 * assertions (sign and verify).
 *
 * Ownership: returned char * / json_object * / EVP_PKEY * belong to the
 * caller (free / json_object_put / EVP_PKEY_free).  Errors returned through
 * `char **err` are malloc'd strings the caller frees; *err is only written on
 * failure (err may be NULL).  json_object and EVP_PKEY arguments are borrowed.
 *
 * Algorithms accepted anywhere: RS256 RS384 RS512 ES256 ES384 ES512.
 * RSA keys must be at least 2048 bits; EC keys on P-256, P-384 or P-521. */
#ifndef JOSE_H
#define JOSE_H
#include <openssl/evp.h>
#include <json-c/json.h>

#define JOSE_RSA_MIN_BITS 2048
#define JOSE_MAX_EXP_AHEAD 300   /* SMART: assertion lifetime <= 5 minutes */

/* 1 if alg is one of the six supported algorithms, else 0. */
int jose_alg_supported(const char *alg);

/* Key from a JWK: RSA "n","e"[,"d","p","q","dp","dq","qi"] or EC "crv"
 * (P-256/P-384/P-521) "x","y"[,"d"].  With want_private the private members
 * must be present (RSA: all of them) and consistent; without it only the
 * public members are used.  NULL + *err on bad input (including RSA < 2048
 * bits or an EC point not on the curve). */
EVP_PKEY *jose_jwk_to_pkey(json_object *jwk, int want_private, char **err);

/* JWK for a key: public members only unless include_private.  Sets "kty",
 * "kid" (RFC 7638 thumbprint), "alg" (alg if given, else RS384 for RSA,
 * ES256/ES384/ES512 by curve).  NULL on unsupported keys or an alg that
 * does not fit the key. */
json_object *jose_pkey_to_jwk(EVP_PKEY *key, const char *alg, int include_private);

/* RFC 7638 thumbprint: base64url(SHA-256) of the required members in
 * lexicographic order, no whitespace.  NULL + *err on bad input. */
char *jose_jwk_thumbprint(json_object *jwk, char **err);

/* PEM: SubjectPublicKeyInfo "PUBLIC KEY", or with private_ unencrypted
 * PKCS#8 "PRIVATE KEY".  NULL on failure. */
char *jose_pkey_to_pem(EVP_PKEY *key, int private_);

/* Read key text that holds a JWK, a JWKS (want_private: first key with "d";
 * else first key) or PEM (public or private; encrypted PEM is refused).
 * Without want_private the returned key is public only.  If jwk_out is
 * non-NULL it receives the public JWK with "kid"/"alg" (taken from the
 * source JWK when it has them, else computed). */
EVP_PKEY *jose_load_key(const char *text, int want_private, json_object **jwk_out, char **err);

/* Generate a key for alg: RS256/RS384/RS512 (bits >= 2048, 0 means 2048)
 * or ES256/ES384/ES512 (P-256/P-384/P-521; bits ignored). */
EVP_PKEY *jose_keygen(const char *alg, int bits, char **err);

/* Validate a public JWKS given by a client: object with a non-empty "keys"
 * array; every key parses, has a non-empty string "kid" (unique), carries no
 * private members; optional "alg" must be supported and fit the key, "use"
 * must be "sig".  0 ok; -1 and *err like "keys[1]: RSA key is 1024 bits; at
 * least 2048 required". */
int jose_jwks_validate(json_object *jwks, char **err);

struct jose_expect {
	const char *client_id;   /* iss and sub must equal this */
	const char *aud;         /* token endpoint URL */
	long now;                /* unix seconds; <= 0 means time(NULL) */
	long max_exp_ahead;      /* <= 0 means JOSE_MAX_EXP_AHEAD */
};

/* Verify a SMART Backend Services client assertion against the client's
 * JWKS (borrowed).  The header is decoded and alg, kid (required) and key
 * type pinned by us before libjwt sees the token.  Claims: iss == sub ==
 * client_id; aud a string equal to expect->aud or an array containing it;
 * exp an integer with now < exp <= now + max_exp_ahead; nbf, if present,
 * not after now + 60 s; jti a non-empty string of at most 255 chars (replay
 * checking of jti is the caller's job).  On success returns 0 and
 * *claims_out (owned by the caller) holds the payload.  On failure returns
 * -1, *err_code is a static RFC 6749 code ("invalid_request" for malformed
 * tokens, "invalid_client" for everything else) and *err_desc a malloc'd
 * description. */
int jose_verify_assertion(const char *token, json_object *jwks, const struct jose_expect *expect,
			  json_object **claims_out, const char **err_code, char **err_desc);

/* UNVERIFIED payload of a compact JWT, only for picking which client's JWKS
 * to verify against (the token request carries no client_id).  Never trust
 * anything else in it.  NULL + *err on malformed tokens. */
json_object *jose_peek_claims(const char *token, char **err);

/* Sign a client assertion: header {alg, typ:"JWT", kid}; payload {iss=sub=
 * client_id, aud, exp=now+lifetime, iat=now, jti (16 random bytes)}.
 * now <= 0 means time(NULL); lifetime 0 means 300, more than 300 is
 * refused.  kid NULL means the key's
 * thumbprint.  ES signatures are JOSE r||s.  Returns the compact JWT or
 * NULL + *err. */
char *jose_sign_assertion(EVP_PKEY *key, const char *alg, const char *kid, const char *client_id,
			  const char *aud, long now, int lifetime, char **err);

#endif
