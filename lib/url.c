/* URL helpers: all parsing is libcurl's CURLU; this file only compares. */
#include "url.h"
#include <ctype.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <curl/curl.h>

/* Parse an absolute URL into a fresh handle (dot segments removed by
 * libcurl), NULL when it does not parse. */
static CURLU *parse(const char *url)
{
	CURLU *h;

	if (!url || !*url)
		return NULL;
	h = curl_url();
	if (!h)
		return NULL;
	if (curl_url_set(h, CURLUPART_URL, url, 0) != CURLUE_OK) {
		curl_url_cleanup(h);
		return NULL;
	}
	return h;
}

/* A part as a malloc'd string (curl's allocations are copied so callers
 * only ever free()), NULL when absent. */
static char *get_part(CURLU *h, CURLUPart what, unsigned flags)
{
	char *v = NULL, *out = NULL;

	if (curl_url_get(h, what, &v, flags) == CURLUE_OK && v)
		out = strdup(v);
	curl_free(v);
	return out;
}

static void lower(char *s)
{
	for (; s && *s; s++)
		*s = (char)tolower((unsigned char)*s);
}

char *url_resolve(const char *base, const char *ref)
{
	CURLU *h;
	char *out = NULL;

	if (!ref)
		return NULL;
	h = parse(base);
	if (!h)
		return NULL;
	/* Setting a relative URL on a handle that holds one resolves it. */
	if (curl_url_set(h, CURLUPART_URL, ref, 0) == CURLUE_OK)
		out = get_part(h, CURLUPART_URL, 0);
	curl_url_cleanup(h);
	return out;
}

static char *origin_of(CURLU *h)
{
	char *scheme = get_part(h, CURLUPART_SCHEME, 0);
	char *host = get_part(h, CURLUPART_HOST, 0);
	char *port = get_part(h, CURLUPART_PORT, CURLU_DEFAULT_PORT);
	char *out = NULL;
	size_t n;

	if (!scheme || !host || !*host || !port)
		goto out;
	lower(scheme);
	lower(host);
	n = strlen(scheme) + strlen(host) + strlen(port) + 5;
	out = malloc(n);
	if (out)
		snprintf(out, n, "%s://%s:%s", scheme, host, port);
out:
	free(scheme);
	free(host);
	free(port);
	return out;
}

char *url_origin(const char *url)
{
	CURLU *h = parse(url);
	char *o;

	if (!h)
		return NULL;
	o = origin_of(h);
	curl_url_cleanup(h);
	return o;
}

int url_same_origin(const char *a, const char *b)
{
	char *oa = url_origin(a), *ob = url_origin(b);
	int same = oa && ob && !strcmp(oa, ob);

	free(oa);
	free(ob);
	return same;
}

static int http_scheme(CURLU *h)
{
	char *s = get_part(h, CURLUPART_SCHEME, 0);
	int ok = s && (!strcasecmp(s, "http") || !strcasecmp(s, "https"));

	free(s);
	return ok;
}

static int has_userinfo(CURLU *h)
{
	char *u = get_part(h, CURLUPART_USER, 0);
	char *p = get_part(h, CURLUPART_PASSWORD, 0);
	int has = u || p;

	free(u);
	free(p);
	return has;
}

int url_is_http(const char *url)
{
	CURLU *h = parse(url);
	char *host;
	int ok = 0;

	if (!h)
		return 0;
	host = get_part(h, CURLUPART_HOST, 0);
	ok = http_scheme(h) && host && *host;
	free(host);
	curl_url_cleanup(h);
	return ok;
}

/* A segment that a server might decode into "." or ".." (e.g. "%2e%2E"). */
static int dot_segment(const char *s, size_t n)
{
	size_t dots = 0, i = 0;

	if (!n)
		return 0;
	while (i < n) {
		if (s[i] == '.') {
			i++;
		} else if (i + 3 <= n && s[i] == '%' && s[i + 1] == '2' &&
			   (s[i + 2] == 'e' || s[i + 2] == 'E')) {
			i += 3;
		} else {
			return 0;
		}
		dots++;
	}
	return dots <= 2;
}

/* Escapes a server may decode before it resolves the path: an encoded '/'
 * or '\\' turns "..%2f" into a real parent step, and "%25" hides a second
 * round of encoding.  Below the base none of them has a legitimate use. */
static int risky_escape(const char *s)
{
	for (; *s; s++)
		if (*s == '%' && (!strncasecmp(s, "%2f", 3) || !strncasecmp(s, "%5c", 3) || !strncmp(s, "%25", 3)))
			return 1;
	return 0;
}

int url_is_under(const char *url, const char *base)
{
	CURLU *hu = parse(url), *hb = parse(base);
	char *ou = NULL, *ob = NULL, *pu = NULL, *pb = NULL;
	const char *rest, *seg;
	size_t bl;
	int ok = 0;

	if (!hu || !hb)
		goto out;
	if (!http_scheme(hu) || !http_scheme(hb) || has_userinfo(hu) || has_userinfo(hb))
		goto out;
	ou = origin_of(hu);
	ob = origin_of(hb);
	if (!ou || !ob || strcmp(ou, ob))
		goto out;
	pu = get_part(hu, CURLUPART_PATH, 0);
	pb = get_part(hb, CURLUPART_PATH, 0);
	if (!pu || !pb)
		goto out;
	bl = strlen(pb);
	while (bl && pb[bl - 1] == '/')
		bl--;               /* "/fhir/" and "/fhir" mean the same base */
	if (strncmp(pu, pb, bl))
		goto out;
	rest = pu + bl;
	if (*rest && *rest != '/')
		goto out;           /* "/fhirx" is not below "/fhir" */
	if (strchr(rest, '\\') || risky_escape(rest))
		goto out;
	for (seg = rest; *seg; ) {
		size_t n;

		seg++;              /* skip '/' */
		n = strcspn(seg, "/");
		/* "..;/x": some servers drop ";params" before resolving dots */
		if (dot_segment(seg, strcspn(seg, "/;")) || dot_segment(seg, n))
			goto out;
		seg += n;
	}
	ok = 1;
out:
	free(ou);
	free(ob);
	free(pu);
	free(pb);
	if (hu)
		curl_url_cleanup(hu);
	if (hb)
		curl_url_cleanup(hb);
	return ok;
}

const char *url_for_log(const char *url, char *out, size_t n)
{
	size_t i = 0;

	if (!n)
		return "";
	for (; url && *url && *url != '?' && *url != '#' && i + 1 < n; url++)
		out[i++] = (unsigned char)*url < 0x20 || *url == 0x7f ? '_' : *url;
	if (url && (*url == '?' || *url == '#') && i + 5 < n) {
		memcpy(out + i, "?...", 4);
		i += 4;
	}
	out[i] = '\0';
	return out;
}
