#include "b64.h"
#include <stdlib.h>
#include <string.h>
#include <openssl/rand.h>

static const char STD[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
static const char URL[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";

static char *encode(const unsigned char *p, size_t len, const char *alpha, int pad)
{
	char *out = malloc(len / 3 * 4 + 5), *o = out;
	size_t i;

	if (!out)
		return NULL;
	for (i = 0; i + 2 < len; i += 3) {
		*o++ = alpha[p[i] >> 2];
		*o++ = alpha[((p[i] & 3) << 4) | (p[i + 1] >> 4)];
		*o++ = alpha[((p[i + 1] & 15) << 2) | (p[i + 2] >> 6)];
		*o++ = alpha[p[i + 2] & 63];
	}
	if (len - i == 1) {
		*o++ = alpha[p[i] >> 2];
		*o++ = alpha[(p[i] & 3) << 4];
		if (pad) { *o++ = '='; *o++ = '='; }
	} else if (len - i == 2) {
		*o++ = alpha[p[i] >> 2];
		*o++ = alpha[((p[i] & 3) << 4) | (p[i + 1] >> 4)];
		*o++ = alpha[(p[i + 1] & 15) << 2];
		if (pad) *o++ = '=';
	}
	*o = '\0';
	return out;
}

char *b64url_encode(const void *data, size_t len)
{
	return encode(data, len, URL, 0);
}

char *b64_encode(const void *data, size_t len)
{
	return encode(data, len, STD, 1);
}

static int val(int c)
{
	if (c >= 'A' && c <= 'Z') return c - 'A';
	if (c >= 'a' && c <= 'z') return c - 'a' + 26;
	if (c >= '0' && c <= '9') return c - '0' + 52;
	if (c == '+' || c == '-') return 62;
	if (c == '/' || c == '_') return 63;
	return -1;
}

unsigned char *b64_decode(const char *s, size_t slen, size_t *outlen)
{
	unsigned char *out = malloc(slen / 4 * 3 + 4);
	size_t n = 0, i;
	unsigned acc = 0;
	int bits = 0;

	if (!out)
		return NULL;
	while (slen && s[slen - 1] == '=')
		slen--;
	for (i = 0; i < slen; i++) {
		int v = val((unsigned char)s[i]);
		if (v < 0)
			goto bad;
		acc = (acc << 6) | (unsigned)v;
		bits += 6;
		if (bits >= 8) {
			bits -= 8;
			out[n++] = (unsigned char)(acc >> bits);
			acc &= (1u << bits) - 1;
		}
	}
	if (bits >= 6 || acc != 0)   /* dangling bits must be zero padding */
		goto bad;
	out[n] = '\0';
	*outlen = n;
	return out;
bad:
	free(out);
	return NULL;
}

char *hex_encode(const void *data, size_t len)
{
	static const char H[] = "0123456789abcdef";
	const unsigned char *p = data;
	char *out = malloc(len * 2 + 1);
	size_t i;

	if (!out)
		return NULL;
	for (i = 0; i < len; i++) {
		out[2 * i] = H[p[i] >> 4];
		out[2 * i + 1] = H[p[i] & 15];
	}
	out[2 * len] = '\0';
	return out;
}

char *random_token(size_t nbytes)
{
	unsigned char raw[128];

	if (nbytes > sizeof raw || RAND_bytes(raw, (int)nbytes) != 1)
		return NULL;
	return b64url_encode(raw, nbytes);
}
