#include "ui_util.h"
#include <math.h>
#include <stdio.h>
#include <string.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>

static const char CSRF_LABEL[] = "bulk-import csrf v1";

/* base64url without padding of 32 bytes: exactly UI_CSRF_LEN characters. */
static void b64url32(const unsigned char *in, char *out)
{
	static const char A[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
	size_t i, o = 0;

	for (i = 0; i + 3 <= 32; i += 3) {
		unsigned v = (unsigned)in[i] << 16 | (unsigned)in[i + 1] << 8 | in[i + 2];
		out[o++] = A[v >> 18 & 63];
		out[o++] = A[v >> 12 & 63];
		out[o++] = A[v >> 6 & 63];
		out[o++] = A[v & 63];
	}
	/* 32 = 30 + 2: two bytes left, three characters */
	{
		unsigned v = (unsigned)in[30] << 16 | (unsigned)in[31] << 8;
		out[o++] = A[v >> 18 & 63];
		out[o++] = A[v >> 12 & 63];
		out[o++] = A[v >> 6 & 63];
	}
	out[o] = '\0';
}

int ui_csrf_token(const unsigned char *secret, size_t secret_len, const char *user, char *out)
{
	unsigned char msg[sizeof CSRF_LABEL + 256], md[EVP_MAX_MD_SIZE];
	unsigned int mdlen = 0;
	size_t ulen;

	out[0] = '\0';
	if (!secret || secret_len == 0 || !user || !*user)
		return -1;
	ulen = strlen(user);
	if (ulen > 255)   /* REMOTE_USER is short; a longer one gets no token */
		return -1;
	memcpy(msg, CSRF_LABEL, sizeof CSRF_LABEL);   /* includes the NUL separator */
	memcpy(msg + sizeof CSRF_LABEL, user, ulen);
	if (!HMAC(EVP_sha256(), secret, (int)secret_len, msg, sizeof CSRF_LABEL + ulen, md, &mdlen) || mdlen != 32)
		return -1;
	b64url32(md, out);
	OPENSSL_cleanse(md, sizeof md);
	return 0;
}

int ui_csrf_check(const unsigned char *secret, size_t secret_len, const char *user, const char *token)
{
	char want[UI_CSRF_LEN + 1];
	int ok;

	if (!token || strlen(token) != UI_CSRF_LEN || ui_csrf_token(secret, secret_len, user, want) < 0)
		return 0;
	ok = CRYPTO_memcmp(want, token, UI_CSRF_LEN) == 0;
	OPENSSL_cleanse(want, sizeof want);
	return ok;
}

char *ui_fmt_bytes(long long bytes, char *out)
{
	static const char *const unit[] = { "kB", "MB", "GB", "TB", "PB" };
	double v;
	int u = 0;

	if (bytes < 0)
		bytes = 0;
	if (bytes < 1000) {
		snprintf(out, UI_FMT_MAX, "%lld B", bytes);
		return out;
	}
	v = (double)bytes / 1000.0;
	/* move up while the printed number would reach 1000 */
	while (v >= 999.5 && u < 4) {
		v /= 1000.0;
		u++;
	}
	if (v < 99.95)
		snprintf(out, UI_FMT_MAX, "%.1f %s", v, unit[u]);
	else
		snprintf(out, UI_FMT_MAX, "%.0f %s", v, unit[u]);
	return out;
}

char *ui_fmt_duration(double seconds, char *out)
{
	long long s;

	if (!(seconds >= 0) || seconds > 1e12) {   /* also catches NaN */
		snprintf(out, UI_FMT_MAX, "\xe2\x80\x93");
		return out;
	}
	s = (long long)floor(seconds + 0.5);
	if (s < 60)
		snprintf(out, UI_FMT_MAX, "%lld s", s);
	else if (s < 3600)
		snprintf(out, UI_FMT_MAX, "%lld min %02lld s", s / 60, s % 60);
	else if (s < 86400)
		snprintf(out, UI_FMT_MAX, "%lld h %02lld min", s / 3600, s % 3600 / 60);
	else
		snprintf(out, UI_FMT_MAX, "%lld d %lld h", s / 86400, s % 86400 / 3600);
	return out;
}

char *ui_fmt_rate(long long bytes, double seconds, char *out)
{
	char b[UI_FMT_MAX];

	if (!(seconds > 0)) {
		snprintf(out, UI_FMT_MAX, "\xe2\x80\x93");
		return out;
	}
	ui_fmt_bytes((long long)((double)(bytes < 0 ? 0 : bytes) / seconds), b);
	snprintf(out, UI_FMT_MAX, "%.20s/s", b);   /* "9223 PB" is the longest */
	return out;
}

int ui_state_running(const char *state)
{
	return state && (!strcmp(state, "queued") || !strcmp(state, "kickoff") || !strcmp(state, "exporting") ||
			 !strcmp(state, "downloading"));
}

int ui_progress_pct(const char *state, long long files_done, long long files_total, long long resources,
		    long long expected_resources)
{
	double frac;

	if (!state || !strcmp(state, "queued"))
		return 0;
	if (!strcmp(state, "complete"))
		return 100;
	if (!strcmp(state, "kickoff"))
		return 2;
	if (!strcmp(state, "exporting"))
		return 5;
	/* downloading, failed, cancelled: what the files reached */
	if (expected_resources > 0)
		frac = (double)resources / (double)expected_resources;
	else if (files_total > 0)
		frac = (double)files_done / (double)files_total;
	else
		return strcmp(state, "downloading") ? 0 : 10;
	if (frac < 0)
		frac = 0;
	if (frac > 1)
		frac = 1;
	return 10 + (int)(89.0 * frac);
}
