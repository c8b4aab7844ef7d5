/* File name templates (lib/naming.c): placeholders, and that nothing a
 * server sends can make a name leave the destination. */
#include "t.h"
#include "dest.h"
#include "naming.h"
#include <stdlib.h>
#include <string.h>

static int expands_to(const char *tmpl, int n, const char *type, int page, const char *url, const char *want)
{
	struct naming_vars v = { n, type, page, url, "exp-1" };
	char *err = NULL, *got = naming_expand(tmpl, &v, &err);
	int ok = got && !strcmp(got, want);

	if (!ok)
		printf("# %s -> %s (want %s) %s\n", tmpl ? tmpl : "(default)", got ? got : "NULL", want,
		       err ? err : "");
	free(got);
	free(err);
	return ok;
}

/* A name the folder destination accepts and that stays inside it. */
static int contained(const char *name)
{
	const char *seg = name;

	if (!name || !*name || name[0] == '/')
		return 0;
	for (;;) {
		const char *slash = strchr(seg, '/');
		size_t n = slash ? (size_t)(slash - seg) : strlen(seg);

		if (!n || seg[0] == '.')
			return 0;
		if (!slash)
			return 1;
		seg = slash + 1;
	}
}

static int hostile(const char *tmpl, const char *url, const char *type)
{
	struct naming_vars v = { 7, type, 1, url, "../../x" };
	char *err = NULL, *got = naming_expand(tmpl, &v, &err);
	size_t slashes_t = 0, slashes_g = 0;
	const char *p;
	int ok;

	for (p = tmpl; *p; p++)
		slashes_t += *p == '/';
	for (p = got ? got : ""; *p; p++)
		slashes_g += *p == '/';
	/* "..." inside a segment is a harmless name; a segment that starts
	 * with '.', or more levels than the template made, are not */
	ok = contained(got) && slashes_g == slashes_t;

	if (!ok)
		printf("# hostile %s / %s -> %s\n", tmpl, url, got ? got : "NULL");
	free(got);
	free(err);
	return ok;
}

int main(void)
{
	char *err = NULL, *s;

	T_CHECK(expands_to(NULL, 3, "Patient", 1, "http://h/f/3.Patient.ndjson", "3.Patient.ndjson"),
		"default template {n}.{type}.ndjson");
	T_CHECK(expands_to("{page}-{n}-{type}.ndjson", 12, "Observation", 2, "x", "2-12-Observation.ndjson"),
		"{page} {n} {type}");
	T_CHECK(expands_to("{basename}", 1, "Patient", 1, "https://h/files/abc.ndjson?sig=1&x=2", "abc.ndjson"),
		"{basename} strips the query string");
	T_CHECK(expands_to("{basename}", 1, "Patient", 1, "https://h/files/abc.ndjson#frag", "abc.ndjson"),
		"{basename} strips the fragment");
	T_CHECK(expands_to("{exportId}/{n}.ndjson", 4, "Patient", 1, "x", "exp-1/4.ndjson"),
		"{exportId} and a template folder");
	T_CHECK(expands_to("{type}/{n}.ndjson", 4, "", 1, "x", "unknown/4.ndjson"), "empty type is \"unknown\"");
	T_CHECK(expands_to("{basename}", 1, "Patient", 1, "https://h/files/", "file"), "empty basename is \"file\"");
	T_CHECK(expands_to("{basename}", 1, "Patient", 1, "https://h", "file"), "no path: host is not a basename");

	T_CHECK(hostile("{basename}", "https://h/files/..%2F..%2Fetc", "Patient"), "..%2F..%2Fetc stays inside");
	T_CHECK(hostile("{basename}", "../x", "Patient"), "../x stays inside");
	T_CHECK(hostile("{basename}", "/abs", "Patient"), "/abs stays inside");
	T_CHECK(hostile("{basename}", "https://h/a/..", "Patient"), "basename \"..\" stays inside");
	T_CHECK(hostile("{basename}", "https://h/a/.hidden", "Patient"), "no hidden files");
	T_CHECK(hostile("{type}.ndjson", "x", "../../etc/passwd"), "hostile type stays inside");
	T_CHECK(hostile("{type}/{basename}", "https://h/a/..", "/.."), "template folder with hostile values");
	T_CHECK(hostile("{exportId}/{n}", "x", "Patient"), "hostile export id");

	T_CHECK(naming_check(NULL, NULL) == 0 && naming_check("{n}.{type}.ndjson", NULL) == 0, "default is valid");
	T_CHECK(naming_check("{foo}.ndjson", &err) < 0 && err && strstr(err, "{foo}"), "unknown placeholder named");
	free(err);
	err = NULL;
	T_CHECK(naming_check("{n", &err) < 0 && err, "unbalanced {");
	free(err);
	err = NULL;
	T_CHECK(naming_check("/abs/{n}", &err) < 0 && naming_check("a//{n}", NULL) < 0 &&
		naming_check("{n}/", NULL) < 0, "empty segments refused");
	free(err);
	err = NULL;
	T_CHECK(naming_check("a/b/c/{n}", NULL) < 0 && naming_check("a/b/{n}", NULL) == 0, "at most 3 levels");
	T_CHECK(naming_check("", NULL) < 0, "empty template refused");

	s = naming_uniquify("Patient.ndjson", 7);
	T_CHECK(s && !strcmp(s, "Patient-7.ndjson"), "uniquify before the extension");
	free(s);
	s = naming_uniquify("a.b/Patient", 7);
	T_CHECK(s && !strcmp(s, "a.b/Patient-7"), "uniquify only touches the last segment");
	free(s);
	{
		char longname[260];
		struct naming_vars v = { 1, "Patient", 1, NULL, NULL };
		char *n1, *n2;

		memset(longname, 'a', 250);
		memcpy(longname + 250, ".ndjson", 8);
		v.url = longname;
		n1 = naming_expand("{basename}", &v, NULL);
		n2 = n1 ? naming_uniquify(n1, 123) : NULL;
		T_CHECK(n1 && n2 && strlen(n1) <= 200 && strlen(n2) <= 200 && strcmp(n1, n2) &&
			contained(n2), "long names stay bounded, also when made unique");
		free(n1);
		free(n2);
	}
	return t_done();
}
