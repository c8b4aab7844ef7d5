#include "t.h"
#include "dest.h"
#include <dirent.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <sys/stat.h>

static int name_is(const char *in, const char *want)
{
	char *got = dest_safe_name(in);
	int ok = got && !strcmp(got, want);

	if (!ok)
		printf("# safe_name(%s) = %s, want %s\n", in ? in : "(null)", got ? got : "(null)", want);
	free(got);
	return ok;
}

/* A safe name: non-empty, bounded, only [A-Za-z0-9._-], no leading '.'. */
static int safe(const char *in)
{
	char *got = dest_safe_name(in);
	int ok = got && *got && got[0] != '.' && strlen(got) <= 200 &&
		 strspn(got, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789._-") == strlen(got);

	free(got);
	return ok;
}

static char *slurp(const char *path, size_t *len)
{
	FILE *f = fopen(path, "rb");
	char *b;

	if (!f)
		return NULL;
	b = calloc(1, 1 << 16);
	*len = fread(b, 1, (1 << 16) - 1, f);
	fclose(f);
	return b;
}

static int count_entries(const char *dir)
{
	DIR *d = opendir(dir);
	struct dirent *de;
	int n = 0;

	if (!d)
		return -1;
	while ((de = readdir(d)))
		if (strcmp(de->d_name, ".") && strcmp(de->d_name, ".."))
			n++;
	closedir(d);
	return n;
}

int main(void)
{
	char tmpl[] = "/tmp/test_dest.XXXXXX", path[512], *err = NULL, *s;
	struct dest *d;
	struct dest_file *f, *g;

	struct stat st;
	size_t len;
	char longname[1000];

	/* dest_safe_name */
	T_CHECK(name_is("1.Patient.ndjson", "1.Patient.ndjson"), "safe name keeps a good name");
	T_CHECK(name_is("../../etc/passwd", "___.._etc_passwd"), "safe name ../../etc/passwd");
	T_CHECK(name_is("/abs", "_abs"), "safe name /abs");
	T_CHECK(name_is("..", "__"), "safe name ..");
	T_CHECK(name_is(".", "_"), "safe name .");
	T_CHECK(name_is(".hidden", "_hidden"), "safe name leading dot");
	T_CHECK(name_is("", "_"), "safe name empty");
	T_CHECK(name_is(NULL, "_"), "safe name NULL");
	T_CHECK(name_is("a b\\c:d", "a_b_c_d"), "safe name spaces and separators");
	T_CHECK(name_is("1.Pati\xc3\xa9nt.ndjson", "1.Pati__nt.ndjson"), "safe name unicode bytes replaced");
	T_CHECK(safe("\xe2\x82\xac\xf0\x9f\x98\x80"), "safe name all unicode");
	memset(longname, 'a', sizeof longname - 1);
	longname[sizeof longname - 1] = '\0';
	memcpy(longname + sizeof longname - 8, ".ndjson", 7);
	s = dest_safe_name(longname);
	T_CHECK(s && strlen(s) == 200 && !strcmp(s + 193, ".ndjson") && safe(longname), "safe name very long bounded, keeps extension");
	longname[0] = 'b';
	{
		char *s2 = dest_safe_name(longname);

		T_CHECK(s2 && strcmp(s, s2), "long names stay distinct");
		free(s2);
	}
	free(s);

	/* filesystem destination */
	T_CHECK(mkdtemp(tmpl) != NULL, "mkdtemp");
	snprintf(path, sizeof path, "%s/sub/dir", tmpl);
	d = dest_open(path, &err);
	T_CHECK(d != NULL && stat(path, &st) == 0 && S_ISDIR(st.st_mode), "dest_open creates nested folder");

	f = dest_file_open(d, "1.Patient.ndjson", &err);
	T_CHECK(f != NULL, "open file");
	T_CHECK(dest_file_write(f, "{\"a\":1}\n", 8, &err) == 0 && dest_file_write(f, "{\"b\":2}\n", 8, &err) == 0, "write");
	snprintf(path, sizeof path, "%s/sub/dir/1.Patient.ndjson", tmpl);
	T_CHECK(stat(path, &st) < 0, "final name not visible before commit");
	snprintf(path, sizeof path, "%s/sub/dir/.1.Patient.ndjson.part", tmpl);
	T_CHECK(stat(path, &st) == 0, "part file exists while writing");
	T_CHECK(dest_file_commit(f, &err) == 0, "commit");
	T_CHECK(stat(path, &st) < 0, "part file gone after commit");
	snprintf(path, sizeof path, "%s/sub/dir/1.Patient.ndjson", tmpl);
	s = slurp(path, &len);
	T_CHECK(s && len == 16 && !memcmp(s, "{\"a\":1}\n{\"b\":2}\n", 16), "committed content exact");
	free(s);

	/* abort leaves nothing */
	f = dest_file_open(d, "2.Obs.ndjson", &err);
	T_CHECK(f && dest_file_write(f, "x", 1, &err) == 0, "open second");
	dest_file_abort(f);
	snprintf(path, sizeof path, "%s/sub/dir", tmpl);
	T_CHECK(count_entries(path) == 1, "abort removes part file");

	/* stale part left by a crash is replaced */
	snprintf(path, sizeof path, "%s/sub/dir/.3.X.ndjson.part", tmpl);
	{
		FILE *stale = fopen(path, "w");

		T_CHECK(stale && fputs("stale", stale) >= 0 && fclose(stale) == 0, "plant stale part");
	}
	g = dest_file_open(d, "3.X.ndjson", &err);
	T_CHECK(g != NULL, "open over a stale part");
	T_CHECK(g && dest_file_write(g, "yz", 2, &err) == 0 && dest_file_commit(g, &err) == 0, "commit after stale part");
	snprintf(path, sizeof path, "%s/sub/dir/3.X.ndjson", tmpl);
	s = slurp(path, &len);
	T_CHECK(s && len == 2 && !memcmp(s, "yz", 2), "stale content gone");
	free(s);

	/* unsafe names refused */
	T_CHECK(dest_file_open(d, "../x", &err) == NULL, "refuse ../x");
	T_CHECK(err != NULL, "error message set");
	free(err);
	err = NULL;
	T_CHECK(dest_file_open(d, "/etc/passwd", &err) == NULL, "refuse absolute");
	free(err);
	err = NULL;
	T_CHECK(dest_file_open(d, "..", &err) == NULL, "refuse ..");
	free(err);
	err = NULL;
	T_CHECK(dest_file_open(d, "", &err) == NULL, "refuse empty");
	free(err);
	err = NULL;

	/* symlink planted at the part name is not followed */
	snprintf(path, sizeof path, "%s/sub/dir/.4.Y.ndjson.part", tmpl);
	T_CHECK(symlink("/tmp/should-not-be-written-by-test-dest", path) == 0, "plant symlink");
	f = dest_file_open(d, "4.Y.ndjson", &err);
	T_CHECK(f != NULL && stat("/tmp/should-not-be-written-by-test-dest", &st) < 0, "symlink replaced, not followed");
	if (f) {
		dest_file_write(f, "q", 1, &err);
		dest_file_commit(f, &err);
	}
	T_CHECK(stat("/tmp/should-not-be-written-by-test-dest", &st) < 0, "nothing written through symlink");

	/* remove_all */
	snprintf(path, sizeof path, "%s/sub/dir", tmpl);
	T_CHECK(dest_remove_all(d, &err) == 0, "remove_all");
	T_CHECK(stat(path, &st) < 0, "folder gone");
	dest_close(d);

	/* bad specs */
	T_CHECK(dest_open("", &err) == NULL && err, "empty spec refused");
	free(err);
	err = NULL;
	T_CHECK(dest_open("s3://bucket/x", &err) == NULL && err, "unsupported spec refused");
	free(err);
	err = NULL;
	T_CHECK(dest_open("/proc/definitely/not/creatable", &err) == NULL && err, "uncreatable folder refused");
	free(err);
	err = NULL;

	/* none */
	d = dest_open("none", &err);
	T_CHECK(d != NULL, "none opens");
	f = dest_file_open(d, "1.Patient.ndjson", &err);
	T_CHECK(f && dest_file_write(f, "abc", 3, &err) == 0 && dest_file_commit(f, &err) == 0, "none write+commit");
	f = dest_file_open(d, "2.Patient.ndjson", &err);
	dest_file_abort(f);
	T_CHECK(dest_remove_all(d, &err) == 0, "none remove_all");
	dest_close(d);

	snprintf(path, sizeof path, "%s/sub", tmpl);
	rmdir(path);
	rmdir(tmpl);
	return t_done();
}
