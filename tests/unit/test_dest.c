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

struct acc {
	struct buf b;
	int calls;
	size_t max_chunk;
	int stop_after;   /* >0: return 7 on that call */
};

static int acc_fn(void *ctx, const void *data, size_t len)
{
	struct acc *a = ctx;

	a->calls++;
	if (len > a->max_chunk)
		a->max_chunk = len;
	buf_append(&a->b, data, len);
	return a->stop_after && a->calls == a->stop_after ? 7 : 0;
}

/* dest_put/dest_get, sub-folders, the resume API on a folder */
static void test_folder_extras(const char *root)
{
	char path[512], *err = NULL, *s;
	struct buf b = BUF_INIT;
	struct acc a = { BUF_INIT, 0, 0, 0 };
	struct dest *d;
	struct dest_file *f;
	long long have = -1;
	struct stat st;
	size_t len, i;
	char *big;

	snprintf(path, sizeof path, "%s/extras", root);
	d = dest_open_conf(path, NULL, &err);
	T_CHECK(d != NULL, "dest_open_conf folder, NULL conf");
	if (!d)
		return;
	T_CHECK(dest_can_resume(d) == 1, "folder can resume");

	/* put / get */
	T_CHECK(dest_get(d, "state.json", &b, &err) == -1 && err == NULL, "get absent: -1, err NULL");
	T_CHECK(dest_put(d, "state.json", "{\"v\":1}", 7, NULL, &err) == 0, "put");
	T_CHECK(dest_put(d, "state.json", "{\"v\":22}", 8, "application/json", &err) == 0, "put replaces");
	T_CHECK(dest_get(d, "state.json", &b, &err) == 0 && b.len == 8 && !memcmp(b.data, "{\"v\":22}", 8), "get returns last put");
	snprintf(path, sizeof path, "%s/extras/.state.json.part", root);
	T_CHECK(stat(path, &st) < 0, "put leaves no part file");
	T_CHECK(dest_put(d, "../state.json", "x", 1, NULL, &err) == -1 && err, "put refuses unsafe name");
	free(err);
	err = NULL;
	buf_reset(&b);
	T_CHECK(dest_put(d, "empty.json", "", 0, NULL, &err) == 0 && dest_get(d, "empty.json", &b, &err) == 0 && b.len == 0,
		"put/get empty object");
	snprintf(path, sizeof path, "%s/extras/link.json", root);
	T_CHECK(symlink("/etc/passwd", path) == 0, "plant symlink at a final name");
	T_CHECK(dest_get(d, "link.json", &b, &err) == -1 && err != NULL, "get does not follow a symlink");
	free(err);
	err = NULL;

	/* sub-folders */
	T_CHECK(dest_put(d, "attachments/a.pdf", "%PDF", 4, NULL, &err) == 0, "put into a sub-folder");
	snprintf(path, sizeof path, "%s/extras/attachments/a.pdf", root);
	s = slurp(path, &len);
	T_CHECK(s && len == 4 && !memcmp(s, "%PDF", 4), "sub-folder file content");
	free(s);
	T_CHECK(dest_file_open(d, "attachments/../x", &err) == NULL, "refuse .. segment");
	free(err);
	err = NULL;
	T_CHECK(dest_file_open(d, "a//b", &err) == NULL, "refuse empty segment");
	free(err);
	err = NULL;
	T_CHECK(dest_file_open(d, "a/", &err) == NULL, "refuse trailing slash");
	free(err);
	err = NULL;
	T_CHECK(dest_file_open(d, "a/b/c/d", &err) == NULL, "refuse too deep");
	free(err);
	err = NULL;
	snprintf(path, sizeof path, "%s/extras/evil", root);
	T_CHECK(symlink("/tmp", path) == 0, "plant symlinked folder");
	T_CHECK(dest_file_open(d, "evil/x.ndjson", &err) == NULL && err, "symlinked sub-folder not followed");
	free(err);
	err = NULL;

	/* resume: nothing partial yet */
	T_CHECK(dest_file_read_partial(d, "5.Obs.ndjson", acc_fn, &a, &err) == 0 && a.calls == 0, "read_partial without part: 0, no calls");
	f = dest_file_reopen(d, "5.Obs.ndjson", &have, &err);
	T_CHECK(f && have == 0, "reopen without part: have 0");
	big = malloc(200000);
	for (i = 0; i < 200000; i++)
		big[i] = (char)('a' + i % 26);
	T_CHECK(f && dest_file_write(f, big, 150000, &err) == 0, "write 150000");
	/* "crash": the handle is lost without commit/abort; close via a second reopen */
	{
		struct dest_file *g = dest_file_reopen(d, "5.Obs.ndjson", &have, &err);

		T_CHECK(g && have == 150000, "reopen sees the partial size");
		T_CHECK(dest_file_read_partial(d, "5.Obs.ndjson", acc_fn, &a, &err) == 0 && a.b.len == 150000 &&
			!memcmp(a.b.data, big, 150000) && a.max_chunk <= 65536 && a.calls >= 3,
			"read_partial streams the bytes in bounded chunks");
		T_CHECK(g && dest_file_truncate(g, 150001, &err) == -1 && err, "truncate cannot extend");
		free(err);
		err = NULL;
		T_CHECK(g && dest_file_truncate(g, 100000, &err) == 0, "truncate");
		T_CHECK(g && dest_file_write(g, big + 100000, 100000, &err) == 0, "append after truncate");
		T_CHECK(g && dest_file_commit(g, &err) == 0, "commit resumed file");
	}
	dest_file_abort(f);   /* the old handle: its part is gone already */
	snprintf(path, sizeof path, "%s/extras/5.Obs.ndjson", root);
	{
		FILE *fp = fopen(path, "rb");
		char *got = malloc(200001);

		len = fp ? fread(got, 1, 200001, fp) : 0;
		if (fp)
			fclose(fp);
		T_CHECK(len == 200000 && !memcmp(got, big, 200000), "resumed file is byte-identical");
		free(got);
	}
	a.calls = 0;
	a.stop_after = 1;
	buf_reset(&a.b);
	f = dest_file_reopen(d, "6.Obs.ndjson", &have, &err);
	T_CHECK(f && dest_file_write(f, big, 200000, &err) == 0, "write another partial");
	T_CHECK(dest_file_read_partial(d, "6.Obs.ndjson", acc_fn, &a, &err) == 7 && a.calls == 1, "callback's non-zero stops and is returned");
	dest_file_abort(f);
	f = dest_file_reopen(d, "attachments/7.bin", &have, &err);
	T_CHECK(f && have == 0 && dest_file_write(f, "xy", 2, &err) == 0, "reopen in a sub-folder");
	dest_file_abort(f);
	/* another writer (a worker that took over) replaced our part file:
	 * commit must not publish theirs, abort must not delete it */
	{
		char part[600], other[600];
		FILE *fp;

		f = dest_file_open(d, "9.Obs.ndjson", &err);
		T_CHECK(f && dest_file_write(f, "mine\n", 5, &err) == 0, "write before a takeover");
		snprintf(part, sizeof part, "%s/extras/.9.Obs.ndjson.part", root);
		snprintf(other, sizeof other, "%s/extras/other.tmp", root);
		fp = fopen(other, "w");
		if (fp) {
			fputs("theirs\n", fp);
			fclose(fp);
		}
		T_CHECK(rename(other, part) == 0, "part replaced by another writer");
		free(err);
		err = NULL;
		T_CHECK(dest_file_commit(f, &err) < 0 && err && strstr(err, "another writer"), "commit refuses a replaced part");
		T_CHECK(stat(part, &st) == 0 && st.st_size == 7, "the other writer's part is left alone");
		f = dest_file_open(d, "10.Obs.ndjson", &err);
		T_CHECK(f != NULL, "open another");
		snprintf(part, sizeof part, "%s/extras/.10.Obs.ndjson.part", root);
		fp = fopen(other, "w");
		if (fp)
			fclose(fp);
		rename(other, part);
		dest_file_abort(f);
		T_CHECK(stat(part, &st) == 0, "abort does not unlink a part it no longer owns");
		unlink(part);
		snprintf(part, sizeof part, "%s/extras/.9.Obs.ndjson.part", root);
		unlink(part);
	}
	/* suspend keeps the part for the next run; abort removes it */
	f = dest_file_open(d, "8.Obs.ndjson", &err);
	T_CHECK(f && dest_file_write(f, "abc\n", 4, &err) == 0, "write before suspend");
	dest_file_suspend(f);
	f = dest_file_reopen(d, "8.Obs.ndjson", &have, &err);
	T_CHECK(f && have == 4, "suspended part survives for reopen");
	dest_file_abort(f);
	f = dest_file_reopen(d, "8.Obs.ndjson", &have, &err);
	T_CHECK(f && have == 0, "aborted part is gone");
	dest_file_abort(f);
	free(big);

	/* remove_all recurses into sub-folders */
	snprintf(path, sizeof path, "%s/extras", root);
	T_CHECK(dest_remove_all(d, &err) == 0 && stat(path, &st) < 0, "remove_all with sub-folders");
	T_CHECK(stat("/tmp", &st) == 0, "symlinked folder target untouched");
	dest_close(d);
	buf_free(&a.b);
	buf_free(&b);
	free(err);
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
	T_CHECK(dest_open("ftp://bucket/x", &err) == NULL && err, "unsupported spec refused");
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
	T_CHECK(dest_put(d, "state.json", "{}", 2, NULL, &err) == 0, "none put succeeds");
	{
		struct buf b = BUF_INIT;
		long long have = -1;

		T_CHECK(dest_get(d, "state.json", &b, &err) == -1 && err == NULL, "none get: absent");
		T_CHECK(dest_can_resume(d) == 0, "none cannot resume");
		f = dest_file_reopen(d, "1.Patient.ndjson", &have, &err);
		T_CHECK(f && have == 0 && dest_file_write(f, "ab", 2, &err) == 0, "none reopen acts like open");
		T_CHECK(f && dest_file_truncate(f, 1, &err) == -1 && err, "none truncate refused");
		free(err);
		err = NULL;
		T_CHECK(f && dest_file_truncate(f, 2, &err) == 0, "none truncate to current size ok");
		T_CHECK(f && dest_file_commit(f, &err) == 0, "none commit after reopen");
		T_CHECK(dest_file_read_partial(d, "1.Patient.ndjson", acc_fn, NULL, &err) == 0, "none read_partial: nothing");
		buf_free(&b);
	}
	T_CHECK(dest_remove_all(d, &err) == 0, "none remove_all");
	dest_close(d);

	test_folder_extras(tmpl);

	snprintf(path, sizeof path, "%s/sub", tmpl);
	rmdir(path);
	rmdir(tmpl);
	return t_done();
}
