#include "web.h"
#include "buf.h"
#include "b64.h"
#include "config.h"
#include "jose.h"
#include <ctype.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <curl/curl.h>
#include <openssl/sha.h>

#define JWKS_TIMEOUT 5   /* seconds; a token request waits for it */
#define JWKS_MAX_BYTES (256 * 1024)

const char *web_base(void)
{
	static const char *src;
	static char *base;
	size_t n;

	if (src != CFG->base_url || !base) {
		free(base);
		base = strdup(CFG->base_url ? CFG->base_url : "");
		if (!base)
			abort();
		n = strlen(base);
		while (n > 0 && base[n - 1] == '/')
			base[--n] = '\0';
		src = CFG->base_url;
	}
	return base;
}

/* Compare [s, s+n) trimmed against t, case-insensitive. */
static int token_eq(const char *s, size_t n, const char *t)
{
	while (n && isspace((unsigned char)*s)) {
		s++;
		n--;
	}
	while (n && isspace((unsigned char)s[n - 1]))
		n--;
	return n == strlen(t) && !strncasecmp(s, t, n);
}

int web_media_type_is(const char *header, const char *type)
{
	if (!header)
		return 0;
	return token_eq(header, strcspn(header, ";"), type);
}

/* q value of a media range's parameters (";q=0.5"); 1.0 when absent. */
static double qvalue(const char *params, size_t n)
{
	const char *p = params, *end = params + n;

	while (p < end) {
		const char *semi = memchr(p, ';', (size_t)(end - p));
		const char *q = p;
		if (!semi)
			semi = end;
		while (q < semi && isspace((unsigned char)*q))
			q++;
		if (semi - q >= 2 && (q[0] == 'q' || q[0] == 'Q') && q[1] == '=')
			return strtod(q + 2, NULL);
		p = semi + 1;
	}
	return 1.0;
}

int web_accepts_fhir_json(const char *accept)
{
	static const char *ok[] = { "application/fhir+json", "application/json", "application/json+fhir",
				    "application/*", "*/*", NULL };
	const char *p = accept;

	if (!accept)
		return 1;
	for (;;) {
		size_t n = strcspn(p, ","), t = strcspn(p, ";,");
		int i;
		for (i = 0; ok[i]; i++)
			if (token_eq(p, t, ok[i]) && (t >= n || qvalue(p + t + 1, n - t - 1) > 0))
				return 1;
		if (!p[n])
			return 0;
		p += n + 1;
	}
}

int web_prefer_respond_async(const char *prefer)
{
	const char *p = prefer;

	if (!prefer)
		return 0;
	for (;;) {
		size_t n = strcspn(p, ","), t = strcspn(p, ";=,");
		if (token_eq(p, t, "respond-async"))
			return 1;
		if (!p[n])
			return 0;
		p += n + 1;
	}
}

json_object *web_parse_json(const char *s, size_t len, char **err)
{
	struct json_tokener *tok = json_tokener_new_ex(64);
	json_object *o = NULL;
	enum json_tokener_error e;
	size_t end;
	struct buf m = BUF_INIT;

	*err = NULL;
	if (!tok)
		abort();
	if (memchr(s, '\0', len)) {
		buf_puts(&m, "body contains a NUL byte");
		goto out;
	}
	json_tokener_set_flags(tok, JSON_TOKENER_STRICT | JSON_TOKENER_VALIDATE_UTF8);
	o = json_tokener_parse_ex(tok, s, (int)len);
	e = json_tokener_get_error(tok);
	if (!o) {
		if (e == json_tokener_continue || e == json_tokener_success)
			buf_puts(&m, "invalid JSON: unexpected end of input");
		else
			buf_printf(&m, "invalid JSON at offset %lu: %s", (unsigned long)json_tokener_get_parse_end(tok),
				   json_tokener_error_desc(e));
		goto out;
	}
	end = json_tokener_get_parse_end(tok);
	while (end < len && isspace((unsigned char)s[end]))
		end++;
	if (end < len) {
		json_object_put(o);
		o = NULL;
		buf_printf(&m, "invalid JSON: unexpected data after the value at offset %lu", (unsigned long)end);
	}
out:
	json_tokener_free(tok);
	if (!o)
		*err = buf_detach(&m);
	else
		buf_free(&m);
	return o;
}

char *web_sha256_hex(const char *s)
{
	unsigned char md[SHA256_DIGEST_LENGTH];

	SHA256((const unsigned char *)s, strlen(s), md);
	return hex_encode(md, sizeof md);
}

struct sink {
	struct buf b;
	size_t max;
	int too_big;
};

static size_t on_data(char *p, size_t size, size_t n, void *ud)
{
	struct sink *k = ud;

	if (k->b.len + size * n > k->max) {
		k->too_big = 1;
		return 0;
	}
	buf_append(&k->b, p, size * n);
	return size * n;
}

char *web_fetch(const char *url, long timeout_s, size_t max_bytes, char **err)
{
	struct sink k = { BUF_INIT, max_bytes, 0 };
	char ebuf[CURL_ERROR_SIZE] = "";
	struct buf m = BUF_INIT;
	CURL *h = curl_easy_init();
	CURLcode rc;
	long status = 0;

	*err = NULL;
	if (!h) {
		*err = strdup("cannot create HTTP handle");
		return NULL;
	}
	curl_easy_setopt(h, CURLOPT_URL, url);
	curl_easy_setopt(h, CURLOPT_PROTOCOLS_STR, "http,https");
	curl_easy_setopt(h, CURLOPT_FOLLOWLOCATION, 0L);
	curl_easy_setopt(h, CURLOPT_TIMEOUT, timeout_s);
	curl_easy_setopt(h, CURLOPT_CONNECTTIMEOUT, timeout_s);
	curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L);
	curl_easy_setopt(h, CURLOPT_ERRORBUFFER, ebuf);
	curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, on_data);
	curl_easy_setopt(h, CURLOPT_WRITEDATA, &k);
	curl_easy_setopt(h, CURLOPT_USERAGENT, CFG->user_agent);
	curl_easy_setopt(h, CURLOPT_HTTPHEADER, NULL);
	rc = curl_easy_perform(h);
	curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, &status);
	curl_easy_cleanup(h);
	if (k.too_big)
		buf_printf(&m, "response larger than %lu bytes", (unsigned long)max_bytes);
	else if (rc != CURLE_OK)
		buf_printf(&m, "%s", ebuf[0] ? ebuf : curl_easy_strerror(rc));
	else if (status != 200)
		buf_printf(&m, "HTTP status %ld", status);
	if (m.len) {
		buf_free(&k.b);
		*err = buf_detach(&m);
		return NULL;
	}
	return buf_detach(&k.b);
}

json_object *web_fetch_jwks(const char *url, char **err)
{
	char *body, *e = NULL;
	json_object *jwks = NULL;
	struct buf m = BUF_INIT;

	*err = NULL;
	body = web_fetch(url, JWKS_TIMEOUT, JWKS_MAX_BYTES, &e);
	if (!body) {
		buf_printf(&m, "fetch failed: %s", e);
		goto out;
	}
	jwks = web_parse_json(body, strlen(body), &e);
	if (!jwks) {
		buf_printf(&m, "response is not JSON: %s", e);
		goto out;
	}
	if (jose_jwks_validate(jwks, &e) < 0) {
		buf_printf(&m, "%s", e ? e : "invalid JWKS");
		json_object_put(jwks);
		jwks = NULL;
	}
out:
	free(body);
	free(e);
	if (!jwks)
		*err = buf_detach(&m);
	else
		buf_free(&m);
	return jwks;
}

char *web_printable(const char *s, size_t max)
{
	struct buf b = BUF_INIT;

	for (; s && *s && b.len < max; s++)
		buf_putc(&b, ((unsigned char)*s < 0x20 || *s == 0x7f) ? '?' : *s);
	return buf_detach(&b);
}

int web_id_ok(const char *id)
{
	size_t n = 0;

	for (; id && *id; id++, n++)
		if (!isalnum((unsigned char)*id) && *id != '-' && *id != '_')
			return 0;
	return n >= 1 && n <= 64;
}

#define MAX_JWKS_FILE (1024 * 1024)

static const char *const PRIVATE_MEMBERS[] = { "d", "p", "q", "dp", "dq", "qi", "oth", "k", NULL };

static int has_private(json_object *key)
{
	int i;

	for (i = 0; PRIVATE_MEMBERS[i]; i++)
		if (json_object_object_get_ex(key, PRIVATE_MEMBERS[i], NULL))
			return 1;
	return 0;
}

json_object *web_consumer_jwks(char **err)
{
	const char *path = CFG->consumer_jwks_file;
	struct buf text = BUF_INIT, m = BUF_INIT;
	json_object *o = NULL, *keys, *wrap;
	char chunk[8192], *e = NULL;
	size_t n, i;
	FILE *f = NULL;

	*err = NULL;
	if (!path || !*path)
		return NULL;
	f = fopen(path, "r");
	if (!f) {
		buf_printf(&m, "consumer_jwks_file %s: %s", path, strerror(errno));
		goto out;
	}
	while ((n = fread(chunk, 1, sizeof chunk, f)) > 0 && text.len <= MAX_JWKS_FILE)
		buf_append(&text, chunk, n);
	o = web_parse_json(text.data ? text.data : "", text.len, &e);
	if (!o || !json_object_is_type(o, json_type_object)) {
		buf_printf(&m, "consumer_jwks_file %s: not a JSON object%s%s", path, e ? ": " : "", e ? e : "");
		goto out;
	}
	if (!json_object_object_get_ex(o, "keys", &keys)) {
		/* a single JWK: serve it as a set */
		wrap = json_object_new_object();
		keys = json_object_new_array();
		json_object_array_add(keys, o);
		json_object_object_add(wrap, "keys", keys);
		o = wrap;
	}
	if (!json_object_is_type(keys, json_type_array)) {
		buf_printf(&m, "consumer_jwks_file %s: \"keys\" is not an array", path);
		goto out;
	}
	for (i = 0; i < json_object_array_length(keys); i++) {
		json_object *k = json_object_array_get_idx(keys, i);
		if (!json_object_is_type(k, json_type_object) || has_private(k)) {
			buf_printf(&m, "consumer_jwks_file %s: keys[%zu] is not a public JWK; refusing to serve it", path, i);
			goto out;
		}
	}
out:
	if (f)
		fclose(f);
	buf_free(&text);
	free(e);
	if (m.len) {
		json_object_put(o);
		*err = buf_detach(&m);
		return NULL;
	}
	buf_free(&m);
	return o;
}
