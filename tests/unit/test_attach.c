/* Attachments against the Node test provider (tests/provider/server.mjs,
 * started here with fork + exec; "ok - skipped (no provider)" without node
 * or the script).  DocumentReference lines come from the provider's static
 * export with `attachments: true`; the content is compared with the fixture
 * files in $FIXTURES_DIR/attachments, else ../shared/fixtures/attachments
 * (run from the repository root).  Which requests carried the token and the
 * extra headers is read from the provider's request log. */
#include "t.h"
#include "t_provider.h"
#include "attach.h"
#include "b64.h"
#include "buf.h"
#include "dest.h"
#include "http.h"
#include "jose.h"
#include "log.h"
#include "pdftotext.h"
#include "smart_client.h"
#include "url.h"
#include <dirent.h>
#include <errno.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <openssl/evp.h>

static int port, other_port;
static char fixtures[512];
static int verbose;

#define diag(...) do { if (verbose) { printf("# "); printf(__VA_ARGS__); } } while (0)

struct blob {
	char *p;
	size_t n;
};
static struct blob pdf, jpg, dicom, patients;

/* ---- provider ------------------------------------------------------------ */

static pid_t start_provider(const char *script)
{
	char *argv[] = { "node", (char *)script, "--port", "0", "--fixtures", fixtures, NULL };
	char line[512];
	pid_t pid;
	FILE *f;
	int p[2];

	if (pipe(p) < 0)
		return -1;
	pid = fork();
	if (pid < 0)
		return -1;
	if (pid == 0) {
		prctl(PR_SET_PDEATHSIG, SIGTERM);   /* dies with us, even after a sanitizer abort */
		dup2(p[1], 1);
		close(p[0]);
		close(p[1]);
		execvp("node", argv);
		_exit(127);
	}
	close(p[1]);
	f = fdopen(p[0], "r");
	while (f && fgets(line, sizeof line, f)) {
		char *s = strstr(line, "LISTENING ");

		if (s && sscanf(s, "LISTENING {\"port\":%d,\"otherPort\":%d", &port, &other_port) == 2)
			break;
	}
	if (f)
		fclose(f);
	if (!port) {
		kill(pid, SIGTERM);
		waitpid(pid, NULL, 0);
		return -1;
	}
	return pid;
}

static char *base_for(int on_port, const char *cfg_json)
{
	char *b = b64url_encode(cfg_json, strlen(cfg_json)), *out = NULL;

	if (asprintf(&out, "http://127.0.0.1:%d/sim/%s/fhir", on_port, b) < 0)
		out = NULL;
	free(b);
	return out;
}

static int get(const char *url, const char *accept, struct buf *out)
{
	const char *hdrs[] = { accept, NULL };
	struct http_req rq = { 0 };
	struct http_resp rs = { 0 };
	int ok;

	rq.url = url;
	rq.headers = accept ? hdrs : NULL;
	rq.max_body = 8u << 20;
	ok = http_request(NULL, &rq, &rs) == 0 && rs.status == 200;
	if (ok)
		buf_append(out, rs.body.data, rs.body.len);
	http_resp_free(&rs);
	return ok ? 0 : -1;
}

static void clear_log(void)
{
	struct http_req rq = { 0 };
	struct http_resp rs = { 0 };
	char url[128];

	snprintf(url, sizeof url, "http://127.0.0.1:%d/__log", port);
	rq.url = url;
	rq.method = "DELETE";
	http_request(NULL, &rq, &rs);
	http_resp_free(&rs);
}

/* Logged requests whose path contains frag, from origin ("main"/"other",
 * NULL: both); *with counts those carrying header `hdr` (lower case) whose
 * value contains `contains` (NULL: any value). */
static int log_count_v(const char *frag, const char *origin, const char *hdr, const char *contains, int *with)
{
	struct buf b = BUF_INIT;
	json_object *log = NULL, *e, *v, *h;
	char url[128];
	size_t i;
	int n = 0;

	*with = 0;
	snprintf(url, sizeof url, "http://127.0.0.1:%d/__log", port);
	if (get(url, NULL, &b) == 0)
		log = json_tokener_parse(buf_str(&b));
	for (i = 0; log && i < json_object_array_length(log); i++) {
		e = json_object_array_get_idx(log, i);
		if (!json_object_object_get_ex(e, "path", &v) || !strstr(json_object_get_string(v), frag))
			continue;
		if (origin && (!json_object_object_get_ex(e, "origin", &v) || strcmp(json_object_get_string(v), origin)))
			continue;
		n++;
		if (json_object_object_get_ex(e, "headers", &h) && json_object_object_get_ex(h, hdr, &v) &&
		    (!contains || strstr(json_object_get_string(v), contains)))
			(*with)++;
	}
	json_object_put(log);
	buf_free(&b);
	return n;
}

static int log_count(const char *frag, const char *origin, const char *hdr, int *with)
{
	return log_count_v(frag, origin, hdr, NULL, with);
}

/* The provider's NDJSON for `type` in the static export under base. */
static int export_lines(const char *base, const char *type, struct buf *out)
{
	struct buf b = BUF_INIT;
	json_object *m = NULL, *arr, *e, *v;
	char url[1024];
	size_t i;
	int rc = -1;

	snprintf(url, sizeof url, "%s/static/manifest.json", base);
	if (get(url, "Accept: application/json", &b) < 0 || !(m = json_tokener_parse(buf_str(&b))) ||
	    !json_object_object_get_ex(m, "output", &arr))
		goto out;
	for (i = 0; i < json_object_array_length(arr); i++) {
		e = json_object_array_get_idx(arr, i);
		if (json_object_object_get_ex(e, "type", &v) && !strcmp(json_object_get_string(v), type) &&
		    json_object_object_get_ex(e, "url", &v)) {
			rc = get(json_object_get_string(v), NULL, out);
			break;
		}
	}
out:
	json_object_put(m);
	buf_free(&b);
	return rc;
}

/* The line of `lines` whose "id" is id (malloc'd). */
static char *line_with_id(const char *lines, const char *id)
{
	char pat[128];
	const char *s, *start, *end;

	snprintf(pat, sizeof pat, "\"id\":\"%s\"", id);
	s = strstr(lines, pat);
	if (!s)
		return NULL;
	for (start = s; start > lines && start[-1] != '\n'; start--)
		;
	end = strchr(s, '\n');
	return strndup(start, end ? (size_t)(end - start) : strlen(start));
}

/* ---- helpers ------------------------------------------------------------- */

static int slurp(const char *path, struct blob *b)
{
	FILE *f = fopen(path, "rb");
	long n;

	b->p = NULL;
	b->n = 0;
	if (!f)
		return -1;
	if (fseek(f, 0, SEEK_END) == 0 && (n = ftell(f)) >= 0 && fseek(f, 0, SEEK_SET) == 0 &&
	    (b->p = malloc((size_t)n + 1)) && fread(b->p, 1, (size_t)n, f) == (size_t)n)
		b->n = (size_t)n;
	else {
		free(b->p);
		b->p = NULL;
	}
	fclose(f);
	return b->p ? 0 : -1;
}

static char *sha1_b64(const void *p, size_t n)
{
	unsigned char md[EVP_MAX_MD_SIZE];
	unsigned int len = 0;

	EVP_Digest(p, n, md, &len, EVP_sha1(), NULL);
	return b64_encode(md, len);
}

struct seen {
	int n;
	char codes[16][24];
	char msgs[16][512];
	int renewals;
	const char *fresh;   /* what renew_bearer hands out */
};

static void on_issue(void *ctx, const char *sev, const char *code, const char *msg)
{
	struct seen *s = ctx;

	diag("issue %s %s: %s\n", sev, code, msg);
	if (s->n < 16) {
		snprintf(s->codes[s->n], sizeof s->codes[0], "%s", code);
		snprintf(s->msgs[s->n], sizeof s->msgs[0], "%s", msg);
	}
	s->n++;
}

static const char *renew(void *ctx)
{
	struct seen *s = ctx;

	s->renewals++;
	return s->fresh;
}

static int stop_now(void *ctx)
{
	return 1;
}

struct result {
	int rc;
	char *out;
	size_t outlen;
	char *err;
	json_object *res;
};

static void run(const struct export_attach_opts *o, const struct attach_env *env, const char *line, struct result *r)
{
	memset(r, 0, sizeof *r);
	r->rc = line ? attach_process_line(o, env, line, strlen(line), &r->out, &r->outlen, &r->err) : -2;
	if (r->out)
		r->res = json_tokener_parse(r->out);
	diag("rc=%d err=%s out=%.300s\n", r->rc, r->err ? r->err : "-", r->out ? r->out : "(unchanged)");
}

static void result_free(struct result *r)
{
	free(r->out);
	free(r->err);
	json_object_put(r->res);
	memset(r, 0, sizeof *r);
}

/* i-th attachment of a DocumentReference or DiagnosticReport. */
static json_object *att_at(json_object *res, size_t i)
{
	json_object *arr, *el, *att;

	if (!res)
		return NULL;
	if (json_object_object_get_ex(res, "presentedForm", &arr))
		return json_object_array_get_idx(arr, i);
	if (!json_object_object_get_ex(res, "content", &arr) || !(el = json_object_array_get_idx(arr, i)) ||
	    !json_object_object_get_ex(el, "attachment", &att))
		return NULL;
	return att;
}

static const char *sget(json_object *o, const char *k)
{
	json_object *v;

	return o && json_object_object_get_ex(o, k, &v) ? json_object_get_string(v) : NULL;
}

static long long iget(json_object *o, const char *k)
{
	json_object *v;

	return o && json_object_object_get_ex(o, k, &v) ? json_object_get_int64(v) : -1;
}

/* data decodes to exactly (p, n), size is n, hash is its SHA-1, no url. */
static int inline_is(json_object *att, const char *p, size_t n)
{
	const char *d = sget(att, "data"), *h = sget(att, "hash");
	unsigned char *dec = NULL;
	char *want = sha1_b64(p, n);
	size_t dn = 0;
	int ok;

	if (d)
		dec = b64_decode(d, strlen(d), &dn);
	ok = dec && dn == n && !memcmp(dec, p, n) && iget(att, "size") == (long long)n && h && want &&
	     !strcmp(h, want) && !sget(att, "url");
	free(dec);
	free(want);
	return ok;
}

static int file_is(const char *dir, const char *rel, const char *p, size_t n)
{
	char path[1024];
	struct blob b;
	int ok;

	snprintf(path, sizeof path, "%s/%s", dir, rel);
	if (slurp(path, &b) < 0)
		return 0;
	ok = b.n == n && !memcmp(b.p, p, n);
	free(b.p);
	return ok;
}

/* url is "attachments/<sha256(abs)>.<ext>", the file there holds (p, n),
 * size and hash describe it, no data. */
static int saved_is(json_object *att, const char *dir, const char *abs, const char *ctype, const char *p, size_t n)
{
	char *name = attach_file_name(abs, ctype), *want = sha1_b64(p, n), rel[512];
	const char *u = sget(att, "url"), *h = sget(att, "hash");
	int ok;

	snprintf(rel, sizeof rel, "attachments/%s", name ? name : "?");
	ok = u && !strcmp(u, rel) && file_is(dir, rel, p, n) && iget(att, "size") == (long long)n && h &&
	     !strcmp(h, want) && !sget(att, "data");
	if (!ok)
		diag("saved_is: url=%s want %s\n", u ? u : "-", rel);
	free(name);
	free(want);
	return ok;
}

/* Entries of dir/attachments (parts included). */
static int count_files(const char *dir)
{
	char path[512];
	struct dirent *de;
	DIR *d;
	int n = 0;

	snprintf(path, sizeof path, "%s/attachments", dir);
	d = opendir(path);
	while (d && (de = readdir(d)))
		if (strcmp(de->d_name, ".") && strcmp(de->d_name, ".."))
			n++;
	if (d)
		closedir(d);
	return n;
}

static void rm_tree(const char *dir)
{
	char path[1024];
	struct dirent *de;
	DIR *d;

	snprintf(path, sizeof path, "%s/attachments", dir);
	d = opendir(path);
	while (d && (de = readdir(d))) {
		char f[1300];

		if (!strcmp(de->d_name, ".") || !strcmp(de->d_name, ".."))
			continue;
		snprintf(f, sizeof f, "%s/%s", path, de->d_name);
		unlink(f);
	}
	if (d)
		closedir(d);
	rmdir(path);
	rmdir(dir);
}

static int has_code(const struct seen *s, const char *code)
{
	for (int i = 0; i < s->n && i < 16; i++)
		if (!strcmp(s->codes[i], code))
			return 1;
	return 0;
}

static const char *const types_jpg_pdf[] = { "image/jpeg", "application/pdf", NULL };
static const char *const types_jpg[] = { "image/jpeg", NULL };

/* A fresh folder destination and an env around it. */
struct fixture {
	char dir[64];
	struct dest *dest;
	struct attach_env env;
	struct attach_stats stats;
	struct seen seen;
	struct http_conf conf;
};

static int fixture_open(struct fixture *fx, const char *base)
{
	char *err = NULL;

	memset(fx, 0, sizeof *fx);
	strcpy(fx->dir, "/tmp/test_attach.XXXXXX");
	if (!mkdtemp(fx->dir))
		return -1;
	fx->dest = dest_open(fx->dir, &err);
	free(err);
	fx->conf.user_agent = "bulk-import-test/1";
	fx->conf.connect_timeout = 5;
	fx->conf.idle_timeout = 10;
	fx->env.conf = &fx->conf;
	fx->env.fhir_base = base;
	fx->env.dest = fx->dest;
	fx->env.on_issue = on_issue;
	fx->env.ctx = &fx->seen;
	fx->env.stats = &fx->stats;
	return fx->dest ? 0 : -1;
}

static void fixture_close(struct fixture *fx)
{
	dest_close(fx->dest);
	rm_tree(fx->dir);
}

/* ---- tests --------------------------------------------------------------- */

static void t_pure(void)
{
	static const char *const wild[] = { "image/*", "Text/Plain", NULL };
	char *n1 = attach_file_name("http://h/fhir/Binary/1", "application/pdf"), *n2, *hex = NULL;
	unsigned char md[32];
	unsigned int len = 0;

	T_CHECK(attach_type_listed(types_jpg_pdf, "image/jpeg"), "type listed");
	T_CHECK(attach_type_listed(types_jpg_pdf, "Application/PDF; foo=bar"), "type match ignores case and parameters");
	T_CHECK(!attach_type_listed(types_jpg_pdf, "image/png"), "unlisted type");
	T_CHECK(!attach_type_listed(types_jpg_pdf, NULL) && !attach_type_listed(NULL, "image/jpeg"), "NULLs match nothing");
	T_CHECK(attach_type_listed(wild, "image/png") && attach_type_listed(wild, "text/plain;charset=utf-8") &&
		!attach_type_listed(wild, "imagex/png") && !attach_type_listed(wild, "application/pdf"),
		"wildcard subtype");
	EVP_Digest("http://h/fhir/Binary/1", 22, md, &len, EVP_sha256(), NULL);
	hex = hex_encode(md, len);
	n2 = attach_file_name("http://h/fhir/Binary/1", "application/pdf; x=y");
	T_CHECK(n1 && hex && !strncmp(n1, hex, 64) && !strcmp(n1 + 64, ".pdf"), "file name: sha256 hex of the URL + .pdf");
	T_CHECK(n1 && n2 && !strcmp(n1, n2), "file name is deterministic");
	free(n2);
	n2 = attach_file_name("http://h/fhir/Binary/1", "x-weird/thing");
	T_CHECK(n2 && !strcmp(n2 + 64, ".bin"), "unknown type gets .bin");
	free(n1);
	free(n2);
	free(hex);
	T_CHECK(!attach_line_may_have("{\"resourceType\":\"Patient\",\"url\":\"x\"}", 36),
		"prefilter: other resource types are skipped");
	T_CHECK(!attach_line_may_have("{\"resourceType\":\"DocumentReference\"}", 36), "prefilter: no url, nothing to do");
}

static void t_unchanged(const char *base, const char *lines)
{
	struct export_attach_opts o = { .enabled = 1, .inline_types = types_jpg_pdf, .inline_max = 1 << 21 };
	struct fixture fx;
	struct result r;
	char *inl = line_with_id(lines, "docref-inline");
	const char *patient = "{\"resourceType\":\"Patient\",\"id\":\"p\"}";
	const char *nourl = "{\"resourceType\":\"DocumentReference\",\"id\":\"x\",\"content\":[{\"attachment\":"
			    "{\"contentType\":\"text/plain\",\"title\":\"url\"}}]}";
	int with;

	if (fixture_open(&fx, base) < 0) {
		T_CHECK(0, "fixture");
		return;
	}
	clear_log();
	run(&o, &fx.env, inl, &r);
	T_CHECK(r.rc == 0 && !r.out && !r.err, "an attachment with data only: unchanged");
	result_free(&r);
	run(&o, &fx.env, patient, &r);
	T_CHECK(r.rc == 0 && !r.out, "a Patient line: unchanged");
	result_free(&r);
	run(&o, &fx.env, nourl, &r);
	T_CHECK(r.rc == 0 && !r.out && fx.seen.n == 0, "a DocumentReference without url: unchanged, no issue");
	result_free(&r);
	run(&o, &fx.env, "{\"resourceType\":\"DocumentReference\",\"url\":", &r);
	T_CHECK(r.rc == -1 && r.err && !r.out, "broken JSON fails the line");
	result_free(&r);
	T_CHECK(log_count("/Binary/", NULL, "authorization", &with) == 0, "nothing was fetched for them");
	T_CHECK(fx.stats.fetched == 0 && fx.stats.failed == 0, "stats untouched");
	free(inl);
	fixture_close(&fx);
}

static void t_inline_and_saved(const char *base, const char *lines)
{
	struct export_attach_opts o = { .enabled = 1, .inline_types = types_jpg_pdf, .inline_max = 2 << 20 };
	char *lpdf = line_with_id(lines, "docref-pdf"), *ljpg = line_with_id(lines, "docref-jpg");
	char *ldicom = line_with_id(lines, "docref-dicom"), abs[1024];
	struct fixture fx;
	struct result r;
	json_object *a;

	T_CHECK(lpdf && ljpg && ldicom, "provider export has the DocumentReference lines");
	if (!lpdf || !ljpg || !ldicom || fixture_open(&fx, base) < 0)
		goto out;

	/* relative "Binary/jpg" resolved against the base (no trailing slash) */
	run(&o, &fx.env, ljpg, &r);
	a = att_at(r.res, 0);
	T_CHECK(r.rc == 0 && r.out && r.outlen == strlen(r.out), "jpg line rewritten");
	T_CHECK(inline_is(a, jpg.p, jpg.n), "relative URL resolved; jpg inline: bytes, size and SHA-1 hash exact, url gone");
	T_CHECK(a && !strcmp(sget(a, "contentType"), "image/jpeg") && !strcmp(sget(a, "title"), "Patient portrait"),
		"other attachment fields kept");
	T_CHECK(r.res && !strcmp(sget(r.res, "id"), "docref-jpg") && strstr(r.out, "\"date\":\"2020-01-01T00:00:00Z\""),
		"rest of the resource kept");
	T_CHECK(fx.seen.n == 0, "no issue: the provider's size and hash agree with the content");
	result_free(&r);

	run(&o, &fx.env, lpdf, &r);
	T_CHECK(r.rc == 0 && inline_is(att_at(r.res, 0), pdf.p, pdf.n), "1 MiB PDF inline with inline_max 2 MiB");
	result_free(&r);

	/* the line need not be NUL-terminated (ASan sees any read past it) */
	{
		size_t n = strlen(ljpg);
		char *copy = malloc(n);

		memcpy(copy, ljpg, n);
		memset(&r, 0, sizeof r);
		r.rc = attach_process_line(&o, &fx.env, copy, n, &r.out, &r.outlen, &r.err);
		r.res = r.out ? json_tokener_parse(r.out) : NULL;
		T_CHECK(r.rc == 0 && inline_is(att_at(r.res, 0), jpg.p, jpg.n), "a line without a terminating NUL");
		result_free(&r);
		free(copy);
	}

	/* inline type, over the limit: buffered to inline_max, then continued into a file */
	o.inline_max = 100000;
	snprintf(abs, sizeof abs, "%s/Binary/dicom", base);
	run(&o, &fx.env, ldicom, &r);
	T_CHECK(r.rc == 0 && saved_is(att_at(r.res, 0), fx.dir, abs, "image/jpeg", dicom.p, dicom.n),
		"190 KB jpeg over inline_max saved under attachments/, url rewritten, bytes identical");
	result_free(&r);

	/* type not inline: straight to a file */
	o.inline_types = types_jpg;
	o.inline_max = 2 << 20;
	snprintf(abs, sizeof abs, "%s/Binary/pdf", base);
	run(&o, &fx.env, lpdf, &r);
	T_CHECK(r.rc == 0 && saved_is(att_at(r.res, 0), fx.dir, abs, "application/pdf", pdf.p, pdf.n),
		"PDF (type not inline) saved, bytes identical");
	result_free(&r);
	T_CHECK(count_files(fx.dir) == 2, "exactly the two files, no part files left");
	T_CHECK(fx.stats.fetched == 5 && fx.stats.inlined == 3 && fx.stats.saved == 2 && fx.stats.failed == 0 &&
		fx.stats.bytes == (long long)(2 * pdf.n + 2 * jpg.n + dicom.n), "stats count fetched, inlined, saved, bytes");

	/* nothing inline at all when inline_max is 0 */
	o.inline_types = types_jpg_pdf;
	o.inline_max = 0;
	snprintf(abs, sizeof abs, "%s/Binary/jpg", base);
	run(&o, &fx.env, ljpg, &r);
	T_CHECK(r.rc == 0 && saved_is(att_at(r.res, 0), fx.dir, abs, "image/jpeg", jpg.p, jpg.n), "inline_max 0: saved");
	result_free(&r);

	/* NDJSON file in a sub-folder: attachments beside it, url relative to it */
	fx.env.file_dir = "exp1";
	run(&o, &fx.env, ljpg, &r);
	{
		const char *u = sget(att_at(r.res, 0), "url");
		char rel[1024];

		snprintf(rel, sizeof rel, "exp1/%s", u ? u : "?");
		T_CHECK(r.rc == 0 && u && !strncmp(u, "attachments/", 12) && file_is(fx.dir, rel, jpg.p, jpg.n),
			"file_dir: saved in exp1/attachments/, url relative to the NDJSON file");
		snprintf(rel, sizeof rel, "%s/exp1/%s", fx.dir, u ? u : "?");
		unlink(rel);
		snprintf(rel, sizeof rel, "%s/exp1/attachments", fx.dir);
		rmdir(rel);
		snprintf(rel, sizeof rel, "%s/exp1", fx.dir);
		rmdir(rel);
	}
	result_free(&r);
	fx.env.file_dir = NULL;

	/* another folder name */
	fx.env.dir = "att";
	run(&o, &fx.env, ljpg, &r);
	{
		const char *u = sget(att_at(r.res, 0), "url");

		T_CHECK(r.rc == 0 && u && !strncmp(u, "att/", 4) && file_is(fx.dir, u, jpg.p, jpg.n), "env->dir respected");
		if (u) {
			char p[1024];

			snprintf(p, sizeof p, "%s/%s", fx.dir, u);
			unlink(p);
			snprintf(p, sizeof p, "%s/att", fx.dir);
			rmdir(p);
		}
	}
	result_free(&r);
	fixture_close(&fx);
out:
	free(lpdf);
	free(ljpg);
	free(ldicom);
}

static void t_binary_json(const char *base, const char *lines)
{
	struct export_attach_opts o = { .enabled = 1, .inline_types = types_jpg_pdf, .inline_max = 2 << 20 };
	char *ljpg = line_with_id(lines, "docref-jpg"), abs[1024];
	const char *accepts[] = { "application/fhir+json", "application/json" };
	struct fixture fx;
	struct result r;
	int with, n;

	if (!ljpg || fixture_open(&fx, base) < 0) {
		T_CHECK(0, "fixture");
		free(ljpg);
		return;
	}
	for (int i = 0; i < 2; i++) {
		char name[128];

		clear_log();
		fx.env.accept = accepts[i];
		run(&o, &fx.env, ljpg, &r);
		snprintf(name, sizeof name, "Binary JSON (%s) unwrapped: inline bytes are the jpg", accepts[i]);
		T_CHECK(r.rc == 0 && inline_is(att_at(r.res, 0), jpg.p, jpg.n), name);
		result_free(&r);
		n = log_count_v("/Binary/jpg", "main", "accept", accepts[i], &with);
		T_CHECK(n == 1 && with == 1, "one request, asking for that JSON type");
	}
	/* a JSON answer saved: the file holds the decoded bytes, not the JSON */
	o.inline_max = 1000;
	snprintf(abs, sizeof abs, "%s/Binary/jpg", base);
	run(&o, &fx.env, ljpg, &r);
	T_CHECK(r.rc == 0 && saved_is(att_at(r.res, 0), fx.dir, abs, "image/jpeg", jpg.p, jpg.n),
		"Binary JSON over inline_max saved decoded");
	result_free(&r);
	/* without a declared type the Binary's contentType decides */
	{
		char *line = NULL;

		if (asprintf(&line, "{\"resourceType\":\"DocumentReference\",\"content\":[{\"attachment\":{\"url\":\"%s\"}}]}",
			     abs) < 0)
			line = NULL;
		o.inline_max = 2 << 20;
		run(&o, &fx.env, line, &r);
		T_CHECK(r.rc == 0 && inline_is(att_at(r.res, 0), jpg.p, jpg.n) &&
			!strcmp(sget(att_at(r.res, 0), "contentType"), "image/jpeg"),
			"type from Binary.contentType: inline, contentType filled in");
		result_free(&r);
		/* and from the response's Content-Type for raw bytes */
		fx.env.accept = NULL;
		run(&o, &fx.env, line, &r);
		T_CHECK(r.rc == 0 && inline_is(att_at(r.res, 0), jpg.p, jpg.n) &&
			!strcmp(sget(att_at(r.res, 0), "contentType"), "image/jpeg"),
			"type from the response Content-Type: inline, contentType filled in");
		result_free(&r);
		free(line);
	}
	T_CHECK(fx.seen.n == 0, "no issues");
	fixture_close(&fx);
	free(ljpg);
}

static void t_pdf_to_text(const char *base, const char *lines)
{
	struct export_attach_opts o = { .enabled = 1, .inline_types = types_jpg_pdf, .inline_max = 2 << 20,
					.pdf_to_text = 1 };
	char *lpdf = line_with_id(lines, "docref-pdf"), *ljpg = line_with_id(lines, "docref-jpg");
	struct fixture fx;
	struct result r;
	json_object *a;
	unsigned char *dec = NULL;
	size_t dn = 0;
	char *h = NULL;

	if (!pdftotext_available(NULL)) {
		printf("ok - skipped (no %s)\n", PDFTOTEXT_PROGRAM);
		goto out0;
	}
	if (!lpdf || !ljpg || fixture_open(&fx, base) < 0) {
		T_CHECK(0, "fixture");
		goto out0;
	}
	run(&o, &fx.env, lpdf, &r);
	a = att_at(r.res, 0);
	if (sget(a, "data"))
		dec = b64_decode(sget(a, "data"), strlen(sget(a, "data")), &dn);
	if (dec)
		h = sha1_b64(dec, dn);
	T_CHECK(r.rc == 0 && a && !strcmp(sget(a, "contentType"), "text/plain") && !sget(a, "url"),
		"pdf_to_text: inline PDF becomes text/plain");
	T_CHECK(dec && strstr((char *)dec, "CNS Vital Signs Clinical Report Sample") &&
		strstr((char *)dec, "Neurocognitive Domain Dashboard"), "the data is the PDF's text");
	T_CHECK(dec && iget(a, "size") == (long long)dn && h && !strcmp(h, sget(a, "hash")), "size and hash are the text's");
	T_CHECK(fx.stats.converted == 1 && fx.seen.n == 0, "counted as converted, no issue");
	free(dec);
	free(h);
	result_free(&r);

	run(&o, &fx.env, ljpg, &r);
	T_CHECK(r.rc == 0 && inline_is(att_at(r.res, 0), jpg.p, jpg.n), "pdf_to_text leaves other types alone");
	result_free(&r);

	fx.env.pdftotext = "/nonexistent/pdftotext";
	run(&o, &fx.env, lpdf, &r);
	a = att_at(r.res, 0);
	T_CHECK(r.rc == 0 && inline_is(a, pdf.p, pdf.n) && !strcmp(sget(a, "contentType"), "application/pdf"),
		"failed conversion: the PDF stays inline");
	T_CHECK(fx.seen.n == 1 && has_code(&fx.seen, "processing") && strstr(fx.seen.msgs[0], "cannot run"),
		"and an issue says why");
	result_free(&r);
	fixture_close(&fx);
out0:
	free(lpdf);
	free(ljpg);
}

static void t_problems(const char *base)
{
	struct export_attach_opts o = { .enabled = 1, .inline_types = types_jpg_pdf, .inline_max = 50000 };
	struct fixture fx;
	struct result r;
	char *line = NULL, abs[1024];
	json_object *a;
	int nfiles;

	if (fixture_open(&fx, base) < 0) {
		T_CHECK(0, "fixture");
		return;
	}
	/* DiagnosticReport.presentedForm: one inline, one saved, one 404, one urn */
	if (asprintf(&line,
		     "{\"resourceType\":\"DiagnosticReport\",\"id\":\"dr\",\"presentedForm\":["
		     "{\"contentType\":\"image/jpeg\",\"url\":\"%s/Binary/jpg?x=secret\"},"
		     "{\"contentType\":\"application/pdf\",\"url\":\"Binary/pdf\"},"
		     "{\"contentType\":\"application/pdf\",\"url\":\"Binary/nope\"},"
		     "{\"url\":\"urn:uuid:1234\"}]}", base) < 0)
		line = NULL;
	run(&o, &fx.env, line, &r);
	snprintf(abs, sizeof abs, "%s/Binary/pdf", base);
	T_CHECK(r.rc == 0 && inline_is(att_at(r.res, 0), jpg.p, jpg.n), "DiagnosticReport.presentedForm[0] inline");
	T_CHECK(r.rc == 0 && saved_is(att_at(r.res, 1), fx.dir, abs, "application/pdf", pdf.p, pdf.n),
		"presentedForm[1] (relative) saved");
	a = att_at(r.res, 2);
	T_CHECK(a && sget(a, "url") && strstr(sget(a, "url"), "Binary/nope") && !sget(a, "data"),
		"the 404 one is left as it was");
	a = att_at(r.res, 3);
	T_CHECK(a && !strcmp(sget(a, "url"), "urn:uuid:1234"), "the urn one is left as it was");
	T_CHECK(fx.seen.n == 2 && has_code(&fx.seen, "not-found") && has_code(&fx.seen, "not-supported"),
		"issues: not-found and not-supported");
	T_CHECK(fx.stats.failed == 2 && fx.stats.inlined == 1 && fx.stats.saved == 1, "stats: 2 failed, 1 inline, 1 saved");
	result_free(&r);
	free(line);

	/* a line whose only attachment fails is unchanged */
	memset(&fx.seen, 0, sizeof fx.seen);
	if (asprintf(&line, "{\"resourceType\":\"DocumentReference\",\"content\":[{\"attachment\":"
			    "{\"url\":\"%s/Binary/nope?token=abc\"}}]}", base) < 0)
		line = NULL;
	run(&o, &fx.env, line, &r);
	T_CHECK(r.rc == 0 && !r.out && fx.seen.n == 1, "only attachment failing: line unchanged, one issue");
	T_CHECK(!strstr(fx.seen.msgs[0], "token=abc") && strstr(fx.seen.msgs[0], "HTTP 404"),
		"the issue names the status, not the query string");
	result_free(&r);
	free(line);

	/* claims that do not match what arrived */
	memset(&fx.seen, 0, sizeof fx.seen);
	if (asprintf(&line, "{\"resourceType\":\"DocumentReference\",\"content\":[{\"attachment\":"
			    "{\"contentType\":\"image/jpeg\",\"url\":\"%s/Binary/jpg\",\"size\":5,"
			    "\"hash\":\"AAAAAAAAAAAAAAAAAAAAAAAAAAA=\"}}]}", base) < 0)
		line = NULL;
	run(&o, &fx.env, line, &r);
	T_CHECK(r.rc == 0 && inline_is(att_at(r.res, 0), jpg.p, jpg.n), "wrong size/hash replaced by the real ones");
	T_CHECK(fx.seen.n == 2 && !strcmp(fx.seen.codes[0], "value") && !strcmp(fx.seen.codes[1], "value"),
		"and both mismatches reported");
	result_free(&r);
	free(line);

	/* a size cap: the partial file is dropped */
	memset(&fx.seen, 0, sizeof fx.seen);
	nfiles = count_files(fx.dir);
	fx.env.max_bytes = 100000;
	if (asprintf(&line, "{\"resourceType\":\"DocumentReference\",\"content\":[{\"attachment\":"
			    "{\"contentType\":\"application/pdf\",\"url\":\"%s/Binary/pdf\"}}]}", base) < 0)
		line = NULL;
	run(&o, &fx.env, line, &r);
	T_CHECK(r.rc == 0 && !r.out && fx.seen.n == 1 && has_code(&fx.seen, "too-costly"),
		"max_bytes: not saved, too-costly issue");
	T_CHECK(count_files(fx.dir) == nfiles, "no partial file left behind");
	result_free(&r);
	fx.env.max_bytes = 0;

	/* should_stop fails the whole line */
	fx.conf.should_stop = stop_now;
	run(&o, &fx.env, line, &r);
	T_CHECK(r.rc == -1 && r.err && !strcmp(r.err, "stopped") && !r.out, "should_stop: the line fails with \"stopped\"");
	result_free(&r);
	fx.conf.should_stop = NULL;

	/* no FHIR base: relative URLs cannot be resolved */
	memset(&fx.seen, 0, sizeof fx.seen);
	fx.env.fhir_base = NULL;
	run(&o, &fx.env, "{\"resourceType\":\"DocumentReference\",\"content\":[{\"attachment\":{\"url\":\"Binary/jpg\"}}]}", &r);
	T_CHECK(r.rc == 0 && !r.out && has_code(&fx.seen, "not-supported"), "relative URL without a base: issue");
	result_free(&r);
	free(line);
	fixture_close(&fx);
}

/* Token and extra headers only where they belong, with auth off at the
 * provider (its log still says what was sent). */
static void t_origins(void)
{
	struct export_attach_opts o = { .enabled = 1, .inline_types = types_jpg_pdf, .inline_max = 2 << 20 };
	static const char *const hdrs[] = { "X-Custom: yes", NULL };
	char *cfg = "{\"auth\":false,\"redirectFiles\":true,\"tag\":\"origins\"}";
	char *base = base_for(port, cfg), *other = base_for(other_port, cfg), *line = NULL, other_origin[64];
	const char *token_origins[] = { other_origin, NULL };
	struct fixture fx;
	struct result r;
	int n, with, hn, hwith;

	snprintf(other_origin, sizeof other_origin, "http://127.0.0.1:%d", other_port);
	if (fixture_open(&fx, base) < 0) {
		T_CHECK(0, "fixture");
		goto out;
	}
	fx.env.bearer = "not-a-real-token";
	fx.env.headers = hdrs;
	if (asprintf(&line, "{\"resourceType\":\"DocumentReference\",\"content\":["
			    "{\"attachment\":{\"contentType\":\"image/jpeg\",\"url\":\"Binary/jpg\"}},"
			    "{\"attachment\":{\"contentType\":\"image/jpeg\",\"url\":\"%s/Binary/jpg\"}}]}", other) < 0)
		line = NULL;
	clear_log();
	run(&o, &fx.env, line, &r);
	T_CHECK(r.rc == 0 && inline_is(att_at(r.res, 0), jpg.p, jpg.n) && inline_is(att_at(r.res, 1), jpg.p, jpg.n),
		"attachments from both origins inline");
	n = log_count("/Binary/jpg", "main", "authorization", &with);
	log_count("/Binary/jpg", "main", "x-custom", &hwith);
	T_CHECK(n == 1 && with == 1 && hwith == 1, "FHIR origin: token and extra headers sent");
	n = log_count("/Binary/jpg", "other", "authorization", &with);
	hn = log_count("/Binary/jpg", "other", "x-custom", &hwith);
	T_CHECK(n == 1 && with == 0 && hn == 1 && hwith == 0, "other origin: neither token nor extra headers");
	result_free(&r);

	clear_log();
	fx.env.token_origins = token_origins;
	run(&o, &fx.env, line, &r);
	n = log_count("/Binary/jpg", "other", "authorization", &with);
	log_count("/Binary/jpg", "other", "x-custom", &hwith);
	T_CHECK(r.rc == 0 && n == 1 && with == 1 && hwith == 0,
		"other origin in token_origins: token sent, extra headers still not");
	result_free(&r);
	free(line);
	fx.env.token_origins = NULL;

	/* a redirect to the other origin drops the token */
	if (asprintf(&line, "{\"resourceType\":\"DocumentReference\",\"content\":[{\"attachment\":"
			    "{\"contentType\":\"application/fhir+ndjson\",\"url\":\"files/static/1.Patient.ndjson\"}}]}") < 0)
		line = NULL;
	clear_log();
	run(&o, &fx.env, line, &r);
	{
		char *abs = NULL;

		if (asprintf(&abs, "%s/files/static/1.Patient.ndjson", base) < 0)
			abs = NULL;
		T_CHECK(r.rc == 0 && saved_is(att_at(r.res, 0), fx.dir, abs, "application/fhir+ndjson", patients.p, patients.n),
			"redirected download saved, bytes identical to the fixture");
		free(abs);
	}
	n = log_count("/files/static/1.Patient.ndjson", "main", "authorization", &with);
	T_CHECK(n == 1 && with == 1, "first hop (FHIR origin) had the token");
	n = log_count("/files/static/1.Patient.ndjson", "other", "authorization", &with);
	hn = log_count("/files/static/1.Patient.ndjson", "other", "x-custom", &hwith);
	T_CHECK(n == 1 && with == 0 && hwith == 0, "redirect to the other origin: no token, no extra headers");
	result_free(&r);
	fixture_close(&fx);
out:
	free(line);
	free(base);
	free(other);
}

/* 503 then success: retried after Retry-After; without retries an issue. */
static void t_retry(void)
{
	struct export_attach_opts o = { .enabled = 1, .inline_types = types_jpg, .inline_max = 1000 };
	char *base1 = base_for(port, "{\"auth\":false,\"fileStatus\":{\"type\":\"Patient\",\"status\":503,\"times\":1},\"tag\":\"r1\"}");
	char *base2 = base_for(port, "{\"auth\":false,\"fileStatus\":{\"type\":\"Patient\",\"status\":503,\"times\":1},\"tag\":\"r2\"}");
	const char *line = "{\"resourceType\":\"DocumentReference\",\"content\":[{\"attachment\":"
			   "{\"url\":\"files/static/1.Patient.ndjson\"}}]}";
	struct fixture fx;
	struct result r;
	int n, with;

	if (fixture_open(&fx, base1) < 0) {
		T_CHECK(0, "fixture");
		goto out;
	}
	run(&o, &fx.env, line, &r);
	T_CHECK(r.rc == 0 && !r.out && has_code(&fx.seen, "transient") && strstr(fx.seen.msgs[0], "HTTP 503"),
		"503 without retries: transient issue");
	result_free(&r);
	fx.env.fhir_base = base2;
	fx.env.retries = 2;
	clear_log();
	run(&o, &fx.env, line, &r);
	n = log_count("/files/static/1.Patient.ndjson", "main", "authorization", &with);
	T_CHECK(r.rc == 0 && r.out && n == 2 && file_is(fx.dir, sget(att_at(r.res, 0), "url"), patients.p, patients.n),
		"503 then 200 with retries: saved after one retry");
	T_CHECK(r.res && !strcmp(sget(att_at(r.res, 0), "contentType"), "application/fhir+ndjson"),
		"contentType filled in from the response");
	result_free(&r);
	fixture_close(&fx);
out:
	free(base1);
	free(base2);
}

/* With auth on: a real token works, none gets 401, an expired one is
 * renewed once through renew_bearer. */
static void t_auth(void)
{
	struct export_attach_opts o = { .enabled = 1, .inline_types = types_jpg, .inline_max = 1 << 20 };
	char *base = base_for(port, "{\"auth\":true,\"tag\":\"auth\"}"), *err = NULL, *cid = NULL, *kid = NULL;
	const char *line = "{\"resourceType\":\"DocumentReference\",\"content\":[{\"attachment\":{\"url\":\"Binary/jpg\"}}]}";
	EVP_PKEY *key = jose_keygen("ES384", 0, &err);
	struct smart_client *sc = NULL;
	struct export_auth auth = { 0 };
	struct http_conf conf = { 0 };
	struct fixture fx;
	struct result r;
	json_object *jwk;
	const char *token = NULL;

	cid = key ? t_register_client(port, key, "ES384") : NULL;
	if (key && (jwk = jose_pkey_to_jwk(key, "ES384", 0))) {
		json_object *v;

		if (json_object_object_get_ex(jwk, "kid", &v))
			kid = strdup(json_object_get_string(v));
		json_object_put(jwk);
	}
	auth.client_id = cid;
	auth.key = key;
	auth.alg = "ES384";
	auth.kid = kid;
	auth.scope = "system/*.read";
	if (cid && kid && (sc = smart_new(&auth, base, &conf)))
		token = smart_token(sc, &err, NULL);
	T_CHECK(token != NULL, "token from the provider's token endpoint");
	if (!token || fixture_open(&fx, base) < 0)
		goto out;

	fx.env.bearer = token;
	run(&o, &fx.env, line, &r);
	T_CHECK(r.rc == 0 && inline_is(att_at(r.res, 0), jpg.p, jpg.n), "auth on: with the token, inline");
	result_free(&r);

	fx.env.bearer = NULL;
	run(&o, &fx.env, line, &r);
	T_CHECK(r.rc == 0 && !r.out && has_code(&fx.seen, "security"), "auth on: without a token, 401 -> security issue");
	result_free(&r);

	memset(&fx.seen, 0, sizeof fx.seen);
	fx.env.bearer = "expired-or-revoked";
	fx.env.renew_bearer = renew;
	fx.seen.fresh = token;
	run(&o, &fx.env, line, &r);
	T_CHECK(r.rc == 0 && inline_is(att_at(r.res, 0), jpg.p, jpg.n) && fx.seen.renewals == 1 && fx.seen.n == 0,
		"401 with a stale token: renewed once, then inline");
	result_free(&r);

	fx.seen.fresh = "still-bad";
	fx.seen.renewals = 0;
	run(&o, &fx.env, line, &r);
	T_CHECK(r.rc == 0 && !r.out && fx.seen.renewals == 1 && has_code(&fx.seen, "security"),
		"renewal that does not help: asked once, then an issue");
	result_free(&r);
	fixture_close(&fx);
out:
	free(err);
	smart_free(sc);
	EVP_PKEY_free(key);
	free(cid);
	free(kid);
	free(base);
}

int main(void)
{
	const char *script = getenv("PROVIDER_SCRIPT") ? getenv("PROVIDER_SCRIPT") : "tests/provider/server.mjs";
	const char *fx = getenv("FIXTURES_DIR");
	char path[700], *base;
	struct buf lines = BUF_INIT;
	struct stat st;
	pid_t pid;

	verbose = getenv("TEST_VERBOSE") && *getenv("TEST_VERBOSE") == '1';
	log_set_level(verbose ? "debug" : "error");
	snprintf(fixtures, sizeof fixtures, "%s", fx ? fx : "../shared/fixtures");
	t_pure();
	snprintf(path, sizeof path, "%s/attachments/document.pdf", fixtures);
	slurp(path, &pdf);
	snprintf(path, sizeof path, "%s/attachments/portrait-1.jpg", fixtures);
	slurp(path, &jpg);
	snprintf(path, sizeof path, "%s/attachments/DICOM.jpg", fixtures);
	slurp(path, &dicom);
	snprintf(path, sizeof path, "%s/fhir/Patient.ndjson", fixtures);
	slurp(path, &patients);
	if (stat(script, &st) < 0 || !pdf.p || !jpg.p || !dicom.p || !patients.p || (pid = start_provider(script)) < 0) {
		printf("ok - skipped (no provider)\n");
		return t_done();
	}
	http_global_init();
	base = base_for(port, "{\"auth\":false,\"attachments\":true}");
	T_CHECK(export_lines(base, "DocumentReference", &lines) == 0 && lines.len, "DocumentReference NDJSON from the provider");
	if (lines.len) {
		t_unchanged(base, buf_str(&lines));
		t_inline_and_saved(base, buf_str(&lines));
		t_binary_json(base, buf_str(&lines));
		t_pdf_to_text(base, buf_str(&lines));
		t_problems(base);
		t_origins();
		t_retry();
		t_auth();
	}
	buf_free(&lines);
	free(base);
	kill(pid, SIGTERM);
	waitpid(pid, NULL, 0);
	free(pdf.p);
	free(jpg.p);
	free(dicom.p);
	free(patients.p);
	return t_done();
}
