#include "t.h"
#include <stdio.h>
#include "url.h"
#include <stdlib.h>
#include <string.h>

static int str_is(char *got, const char *want)
{
	int ok = got && want ? !strcmp(got, want) : got == NULL && want == NULL;

	if (!ok)
		printf("# got %s, want %s\n", got ? got : "(null)", want ? want : "(null)");
	free(got);
	return ok;
}

int main(void)
{
	/* url_resolve */
	T_CHECK(str_is(url_resolve("http://h/fhir/$export", "/status/1"), "http://h/status/1"), "resolve absolute path");
	T_CHECK(str_is(url_resolve("http://h/fhir/$export", "status/1"), "http://h/fhir/status/1"), "resolve relative path");
	T_CHECK(str_is(url_resolve("http://h/fhir/", "../x"), "http://h/x"), "resolve dot dot");
	T_CHECK(str_is(url_resolve("http://h/fhir/$export", "https://o:8443/s?a=1"), "https://o:8443/s?a=1"), "resolve absolute URL");
	T_CHECK(str_is(url_resolve("http://h/a/b", "?q=1"), "http://h/a/b?q=1"), "resolve query only");
	T_CHECK(str_is(url_resolve("not a url", "x"), NULL), "resolve bad base");
	T_CHECK(str_is(url_resolve("http://h/fhir/a/../b/./c", "d"), "http://h/fhir/b/d"), "resolve normalises base");

	/* url_origin */
	T_CHECK(str_is(url_origin("http://Example.COM/fhir"), "http://example.com:80"), "origin default http port");
	T_CHECK(str_is(url_origin("HTTPS://example.com/fhir"), "https://example.com:443"), "origin default https port");
	T_CHECK(str_is(url_origin("http://example.com:8080/x?y#z"), "http://example.com:8080"), "origin explicit port");
	T_CHECK(str_is(url_origin("http://[::1]:9/x"), "http://[::1]:9"), "origin ipv6");
	T_CHECK(str_is(url_origin("/relative"), NULL), "origin relative fails");
	T_CHECK(str_is(url_origin(NULL), NULL), "origin NULL");

	/* url_same_origin */
	T_CHECK(url_same_origin("http://h/a", "http://H:80/b"), "same origin default port");
	T_CHECK(!url_same_origin("http://h/a", "https://h/a"), "scheme differs");
	T_CHECK(!url_same_origin("http://h/a", "http://h:81/a"), "port differs");
	T_CHECK(!url_same_origin("http://h/a", "http://g/a"), "host differs");
	T_CHECK(!url_same_origin("bad", "bad"), "unparseable never same");

	{
		char lu[64];
		T_CHECK(!strcmp(url_for_log("https://s3.example/b/f.ndjson?X-Amz-Signature=abc", lu, sizeof lu),
				"https://s3.example/b/f.ndjson?..."), "for_log: query string dropped");
		T_CHECK(!strcmp(url_for_log("http://h/a\nb", lu, sizeof lu), "http://h/a_b"), "for_log: control characters replaced");
		T_CHECK(strlen(url_for_log("http://h/aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa", lu, sizeof lu)) == 63,
			"for_log: bounded by the buffer");
	}
	/* url_is_under */
	T_CHECK(url_is_under("http://h/fhir/$export", "http://h/fhir"), "under: child");
	T_CHECK(url_is_under("http://h/fhir?x", "http://h/fhir"), "under: query");
	T_CHECK(url_is_under("http://h/fhir", "http://h/fhir"), "under: itself");
	{
		/* encodings a server may decode before resolving dots */
		static const char *const escapes[] = {
			"https://e/fhir/..%2fadmin", "https://e/fhir/%2e%2e%2fadmin", "https://e/fhir/x%2f..%2f..%2fadmin",
			"https://e/fhir/..%5cadmin", "https://e/fhir/%2E%2E%5Cadmin", "https://e/fhir/..;/admin",
			"https://e/fhir/%252e%252e/admin", "https://e/fhir/a/..%2F..%2Fb", "https://e/fhir/.;x/../../y",
		};
		for (size_t i = 0; i < sizeof escapes / sizeof *escapes; i++) {
			char name[160];
			snprintf(name, sizeof name, "under: refuses %s", escapes[i]);
			T_CHECK(!url_is_under(escapes[i], "https://e/fhir"), name);
		}
		T_CHECK(url_is_under("https://e/fhir/Group/a%20b/$export?_type=Patient", "https://e/fhir"),
			"under: ordinary escapes still fine");
	}
	T_CHECK(url_is_under("http://h/fhir/Patient/$export", "http://h/fhir/"), "under: base with slash");
	T_CHECK(url_is_under("http://h:80/fhir/x", "http://H/fhir"), "under: normalised origin");
	T_CHECK(!url_is_under("http://h/fhirx/$export", "http://h/fhir"), "not under: prefix without boundary");
	T_CHECK(!url_is_under("http://h/fhir/../admin", "http://h/fhir"), "not under: dot dot");
	T_CHECK(!url_is_under("http://h/fhir/%2e%2e/admin", "http://h/fhir"), "not under: encoded dot dot");
	T_CHECK(!url_is_under("http://h/fhir/%2E./admin", "http://h/fhir"), "not under: mixed encoded dot dot");
	T_CHECK(!url_is_under("http://h/fhir/a\\..\\b", "http://h/fhir"), "not under: backslash");
	T_CHECK(!url_is_under("http://u:p@h/fhir/x", "http://h/fhir"), "not under: userinfo");
	T_CHECK(!url_is_under("http://h/fhir/x", "http://u@h/fhir"), "not under: userinfo in base");
	T_CHECK(!url_is_under("ftp://h/fhir/x", "ftp://h/fhir"), "not under: ftp");
	T_CHECK(!url_is_under("https://h/fhir/x", "http://h/fhir"), "not under: other scheme");
	T_CHECK(!url_is_under("http://h:8080/fhir/x", "http://h/fhir"), "not under: other port");
	T_CHECK(!url_is_under("http://evil/fhir/x", "http://h/fhir"), "not under: other host");
	T_CHECK(url_is_under("http://h/anything", "http://h/"), "under: root base");
	T_CHECK(url_is_under("http://h/fhir/a..b", "http://h/fhir"), "under: dots inside a name");
	T_CHECK(!url_is_under("/fhir/x", "http://h/fhir"), "not under: relative");

	/* url_is_http */
	T_CHECK(url_is_http("https://h/x"), "is_http https");
	T_CHECK(url_is_http("http://h"), "is_http http");
	T_CHECK(!url_is_http("file:///etc/passwd"), "is_http file");
	T_CHECK(!url_is_http("h/x"), "is_http relative");
	return t_done();
}
