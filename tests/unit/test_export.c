/* The export engine against the Node test provider (tests/provider/server.mjs),
 * started here (fork + exec, dies with this process).  Without node or the script the test
 * prints "ok - skipped (no provider)".  Fixtures: $FIXTURES_DIR/fhir, else
 * ../shared/fixtures/fhir from the repository root. */
#include "t.h"
#include "b64.h"
#include "buf.h"
#include "dest.h"
#include "export.h"
#include "http.h"
#include "jose.h"
#include "log.h"
#include "url.h"
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <sys/prctl.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <openssl/evp.h>

static int port, other_port;
static int verbose;   /* TEST_VERBOSE=1: engine logs and per-run details */

#define diag(...) do { if (verbose) { printf("# "); printf(__VA_ARGS__); } } while (0)
static char fixtures[512];

/* ---- provider process -------------------------------------------------- */

static pid_t start_provider(const char *script)
{
	char *argv[] = { "node", (char *)script, "--port", "0", NULL };
	char line[512];
	pid_t pid;
	FILE *f;
	int p[2];

	if (pipe(p) < 0)
		return -1;
	/* fork rather than posix_spawn: the provider must die with us even
	 * when a sanitizer aborts this test */
	pid = fork();
	if (pid < 0)
		return -1;
	if (pid == 0) {
		prctl(PR_SET_PDEATHSIG, SIGTERM);
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
		fclose(f);   /* the server writes nothing more to stdout */
	if (!port) {
		kill(pid, SIGTERM);
		waitpid(pid, NULL, 0);
		return -1;
	}
	return pid;
}

/* FHIR base for a simulation config. */
static char *base_for(const char *cfg_json)
{
	char *b = b64url_encode(cfg_json, strlen(cfg_json)), *out = NULL;

	if (asprintf(&out, "http://127.0.0.1:%d/sim/%s/fhir", port, b) < 0)
		out = NULL;
	free(b);
	return out;
}

static json_object *get_json(const char *path)
{
	struct http_req rq = { 0 };
	struct http_resp rs = { 0 };
	json_object *o = NULL;
	char url[256];

	snprintf(url, sizeof url, "http://127.0.0.1:%d%s", port, path);
	rq.url = url;
	if (http_request(NULL, &rq, &rs) == 0 && rs.status == 200)
		o = json_tokener_parse(buf_str(&rs.body));
	http_resp_free(&rs);
	return o;
}

static void clear_log(void)
{
	struct http_req rq = { 0 };
	struct http_resp rs = { 0 };
	char url[256];

	snprintf(url, sizeof url, "http://127.0.0.1:%d/__log", port);
	rq.url = url;
	rq.method = "DELETE";
	http_request(NULL, &rq, &rs);
	http_resp_free(&rs);
}

/* Requests in the provider's log matching method and a path fragment;
 * *with_auth counts those that carried an Authorization header. */
static int log_count(const char *method, const char *frag, const char *origin, int *with_auth)
{
	json_object *log = get_json("/__log"), *e, *v, *h;
	size_t i;
	int n = 0;

	if (with_auth)
		*with_auth = 0;
	for (i = 0; log && i < json_object_array_length(log); i++) {
		e = json_object_array_get_idx(log, i);
		if (!json_object_object_get_ex(e, "method", &v) || strcmp(json_object_get_string(v), method))
			continue;
		if (!json_object_object_get_ex(e, "path", &v) || !strstr(json_object_get_string(v), frag))
			continue;
		if (origin && (!json_object_object_get_ex(e, "origin", &v) || strcmp(json_object_get_string(v), origin)))
			continue;
		n++;
		if (with_auth && json_object_object_get_ex(e, "headers", &h) &&
		    json_object_object_get_ex(h, "authorization", &v))
			(*with_auth)++;
	}
	json_object_put(log);
	return n;
}

/* ---- events ------------------------------------------------------------ */

struct seen {
	int kickoffs, statuses, manifests, starts, done_ok, done_bad, issues;
	int stop_after_kickoff, stop_on_start, stop_now;
	long long issue_lines[64];
	char issue_codes[64][24];
	char last_issue[512];
	char status_url[512];
	struct fcopy {
		char kind[16], type[64], dest_name[256], sha256[65];
		long long bytes, lines;
		int ok;
	} files[64];                    /* copies at on_file_done */
	int nfiles;
	int skip_type;                  /* on_manifest: skip files of this seq */
};

static void ev_kickoff(void *ctx, const char *url)
{
	struct seen *s = ctx;

	s->kickoffs++;
	snprintf(s->status_url, sizeof s->status_url, "%s", url);
	if (s->stop_after_kickoff)
		s->stop_now = 1;
}

static void ev_status(void *ctx, const char *p)
{
	((struct seen *)ctx)->statuses++;
}

static void ev_manifest(void *ctx, json_object *m, struct export_file *f, int n)
{
	struct seen *s = ctx;
	int i;

	s->manifests++;
	for (i = 0; i < n; i++)
		if (s->skip_type && f[i].seq == s->skip_type)
			f[i].skip = 1;
}

static void ev_start(void *ctx, struct export_file *f)
{
	struct seen *s = ctx;

	s->starts++;
	if (s->stop_on_start)
		s->stop_now = 1;
}

static void ev_done(void *ctx, struct export_file *f, int ok)
{
	struct seen *s = ctx;

	if (ok)
		s->done_ok++;
	else
		s->done_bad++;
	if (s->nfiles < 64) {
		struct fcopy *c = &s->files[s->nfiles++];

		snprintf(c->kind, sizeof c->kind, "%s", f->kind);
		snprintf(c->type, sizeof c->type, "%s", f->type);
		snprintf(c->dest_name, sizeof c->dest_name, "%s", f->dest_name);
		memcpy(c->sha256, f->sha256, sizeof c->sha256);
		c->bytes = f->bytes;
		c->lines = f->lines;
		c->ok = ok;
	}
}

static void ev_issue(void *ctx, const struct export_issue *iss)
{
	struct seen *s = ctx;

	if (s->issues < 64) {
		s->issue_lines[s->issues] = iss->line;
		snprintf(s->issue_codes[s->issues], sizeof s->issue_codes[0], "%s", iss->code);
	}
	s->issues++;
	snprintf(s->last_issue, sizeof s->last_issue, "%s", iss->message);
	diag("  issue: %s %s line %lld: %s\n", iss->severity, iss->code, iss->line, iss->message);
}

static int ev_stop(void *ctx)
{
	return ((struct seen *)ctx)->stop_now;
}

static const struct export_events EV = {
	ev_kickoff, ev_status, ev_manifest, ev_start, NULL, ev_done, ev_issue, ev_stop, NULL
};

/* ---- helpers ----------------------------------------------------------- */

static char *slurp(const char *path, size_t *len)
{
	FILE *f = fopen(path, "rb");
	struct buf b = BUF_INIT;
	char chunk[65536];
	size_t n;

	if (!f)
		return NULL;
	while ((n = fread(chunk, 1, sizeof chunk, f)) > 0)
		buf_append(&b, chunk, n);
	fclose(f);
	*len = b.len;
	if (!b.data)
		buf_append(&b, "", 0);
	return buf_detach(&b);
}

static void sha_hex(const char *p, size_t n, char out[65])
{
	unsigned char md[32];
	unsigned len = 0;
	char *h;

	EVP_Digest(p, n, md, &len, EVP_sha256(), NULL);
	h = hex_encode(md, len);
	snprintf(out, 65, "%s", h);
	free(h);
}

/* Every committed file equals its fixture; returns the number compared or
 * -1 on a mismatch. */
static int files_match(const struct seen *s, const char *dir)
{
	char path[1024], want_sha[65];
	size_t gl, wl;
	int i, n = 0;

	for (i = 0; i < s->nfiles; i++) {
		const struct fcopy *f = &s->files[i];
		char *got, *want;

		if (strcmp(f->kind, "output"))
			continue;
		snprintf(path, sizeof path, "%s/%s", dir, f->dest_name);
		got = slurp(path, &gl);
		snprintf(path, sizeof path, "%s/%s.ndjson", fixtures, f->type);
		want = slurp(path, &wl);
		if (!got || !want || gl != wl || memcmp(got, want, gl)) {
			diag("%s differs from fixture (%zu vs %zu bytes)\n", f->dest_name, gl, wl);
			free(got);
			free(want);
			return -1;
		}
		sha_hex(want, wl, want_sha);
		if (strcmp(want_sha, f->sha256) || f->bytes != (long long)wl) {
			diag("%s: sha or byte count wrong\n", f->dest_name);
			free(got);
			free(want);
			return -1;
		}
		free(got);
		free(want);
		n++;
	}
	return n;
}

static int count_dir(const char *dir)
{
	DIR *d = opendir(dir);
	struct dirent *de;
	int n = 0;

	if (!d)
		return -1;
	while ((de = readdir(d)))
		if (de->d_name[0] != '.')
			n++;
	closedir(d);
	return n;
}

static void rm_dir(const char *dir)
{
	char *err = NULL;
	struct dest *d = dest_open(dir, &err);

	if (d) {
		dest_remove_all(d, &err);
		dest_close(d);
	}
	free(err);
}

struct run_args {
	const char *cfg;
	const char *path;          /* under the base: "/$export" */
	enum export_kind kind;
	int get;
	json_object *params;
	long deadline_in;
	long poll_max;
	struct export_auth auth;
	const char *base_override;
};

static int run_export(const struct run_args *a, struct seen *s, struct export_result *res, char *dir)
{
	struct export_opts o = { 0 };
	char url[1024], *base, *err = NULL;
	int rc;

	strcpy(dir, "/tmp/test_export.XXXXXX");
	if (!mkdtemp(dir))
		return -2;
	base = a->base_override ? strdup(a->base_override) : base_for(a->cfg);
	snprintf(url, sizeof url, "%s%s", base, a->path ? a->path : "/$export");
	o.kind = a->kind;
	o.url = url;
	o.fhir_base = base;
	o.params = a->params;
	o.kickoff_get = a->get;
	o.auth = a->auth;
	if (!a->auth.client_id)
		o.auth.open = 1;
	o.user_agent = "bulk-import-test/1";
	o.connect_timeout = 5;
	o.idle_timeout = 10;
	o.retries = 2;
	o.parallelism = 3;
	o.max_line_bytes = 1 << 20;
	o.poll_default_wait = 1;
	o.poll_max_wait = a->poll_max ? a->poll_max : 2;
	o.deadline = time(NULL) + (a->deadline_in ? a->deadline_in : 120);
	o.dest = dest_open(dir, &err);
	o.ctx = s;
	rc = export_run(&o, &EV, res);
	diag("rc=%d ok=%d failed=%d cancelled=%d status=%d code=%s msg=%s\n", rc, res->ok, res->files_failed,
	       res->cancelled, res->http_status, res->error_code ? res->error_code : "-",
	       res->error_message ? res->error_message : "-");
	dest_close(o.dest);
	free(base);
	free(err);
	return rc;
}

static int has_issue_code(const struct seen *s, const char *code, long long line)
{
	int i;

	for (i = 0; i < s->issues && i < 64; i++)
		if (!strcmp(s->issue_codes[i], code) && (line < 0 || s->issue_lines[i] == line))
			return 1;
	return 0;
}

static int file_ok(const struct seen *s, const char *type, int want_ok, const char *dir)
{
	char path[1024];
	struct stat st;
	int i;

	for (i = 0; i < s->nfiles; i++) {
		if (strcmp(s->files[i].type, type))
			continue;
		snprintf(path, sizeof path, "%s/%s", dir, s->files[i].dest_name);
		return (stat(path, &st) == 0) == want_ok;
	}
	return 0;
}

/* ---- scenarios --------------------------------------------------------- */

static void t_open_post(void)
{
	struct run_args a = { .cfg = "{\"auth\":false,\"polls\":2}" };
	struct export_result res;
	struct seen s = { 0 };
	char dir[64];
	int rc, n;

	rc = run_export(&a, &s, &res, dir);
	T_CHECK(rc == 0 && res.ok && res.files_failed == 0, "open POST export completes");
	T_CHECK(s.kickoffs == 1 && s.statuses >= 2 && s.manifests == 1, "kickoff, status and manifest events");
	T_CHECK(res.transaction_time != NULL, "transaction time from manifest");
	n = files_match(&s, dir);
	diag("%d files compared\n", n);
	T_CHECK(n >= 17 && s.done_ok == n && s.starts == n, "every file equals its fixture byte for byte, sha256 right");
	T_CHECK(count_dir(dir) == n, "no part files left");
	export_result_free(&res);
	rm_dir(dir);
}

static void t_get_params(void)
{
	json_object *p = json_tokener_parse(
		"{\"resourceType\":\"Parameters\",\"parameter\":["
		"{\"name\":\"_type\",\"valueString\":\"Patient\"},"
		"{\"name\":\"_type\",\"valueString\":\"Device\"},"
		"{\"name\":\"_since\",\"valueInstant\":\"2020-01-01T00:00:00Z\"}]}");
	struct run_args a = { .cfg = "{\"auth\":false}", .get = 1, .params = p };
	struct export_result res;
	struct seen s = { 0 };
	char dir[64];
	int rc;

	clear_log();
	rc = run_export(&a, &s, &res, dir);
	T_CHECK(rc == 0 && s.done_ok == 2 && files_match(&s, dir) == 2, "GET kick-off with repeated _type");
	T_CHECK(log_count("GET", "/$export", NULL, NULL) == 1, "kick-off was a GET");
	export_result_free(&res);
	rm_dir(dir);
	json_object_put(p);

	p = json_tokener_parse("{\"resourceType\":\"Parameters\",\"parameter\":["
			       "{\"name\":\"_type\",\"valueString\":\"Patient,Organization\"}]}");
	a.get = 0;
	a.params = p;
	memset(&s, 0, sizeof s);
	rc = run_export(&a, &s, &res, dir);
	T_CHECK(rc == 0 && s.done_ok == 2 && files_match(&s, dir) == 2, "POST kick-off with Parameters body");
	export_result_free(&res);
	rm_dir(dir);
	json_object_put(p);
}

static void t_validation(void)
{
	struct run_args a = { .cfg = "{\"auth\":false,\"types\":[\"Patient\",\"Device\",\"Organization\",\"Practitioner\"],"
				     "\"malformedLine\":{\"type\":\"Patient\",\"line\":3},"
				     "\"wrongType\":{\"type\":\"Device\",\"line\":2},"
				     "\"countDelta\":{\"type\":\"Organization\",\"delta\":1}}" };
	struct export_result res;
	struct seen s = { 0 };
	char dir[64];
	int rc;

	rc = run_export(&a, &s, &res, dir);
	T_CHECK(rc == 0 && res.ok && res.files_failed == 3 && s.done_ok == 1, "bad files fail, others stored (partial)");
	T_CHECK(has_issue_code(&s, "structure", 3), "malformed line reported with its line");
	T_CHECK(has_issue_code(&s, "value", 2), "wrong type reported with its line");
	T_CHECK(has_issue_code(&s, "value", 0), "count mismatch reported");
	T_CHECK(file_ok(&s, "Patient", 0, dir) && file_ok(&s, "Device", 0, dir) &&
		file_ok(&s, "Organization", 0, dir) && file_ok(&s, "Practitioner", 1, dir),
		"only the valid file is under its final name");
	T_CHECK(count_dir(dir) == 1, "failed files leave nothing behind");
	export_result_free(&res);
	rm_dir(dir);
}

static void t_transfer_faults(void)
{
	struct run_args a = { .cfg = "{\"auth\":false,\"types\":[\"Patient\",\"Observation\",\"Device\",\"Claim\"],"
				     "\"cutFile\":{\"type\":\"Observation\",\"afterBytes\":100000,\"times\":1},"
				     "\"fileStatus\":{\"type\":\"Claim\",\"status\":503,\"times\":1},"
				     "\"gzip\":\"header\"}" };
	struct export_result res;
	struct seen s = { 0 };
	char dir[64];
	int rc;

	rc = run_export(&a, &s, &res, dir);
	T_CHECK(rc == 0 && res.files_failed == 0 && files_match(&s, dir) == 4,
		"cut connection and 503 retried from scratch; gzip decoded");
	export_result_free(&res);
	rm_dir(dir);

	a.cfg = "{\"auth\":false,\"types\":[\"Patient\",\"Device\"],\"fileStatus\":{\"type\":\"Device\",\"status\":404}}";
	memset(&s, 0, sizeof s);
	rc = run_export(&a, &s, &res, dir);
	T_CHECK(rc == 0 && res.files_failed == 1 && s.done_ok == 1 && has_issue_code(&s, "exception", 0),
		"404 on a file fails only that file");
	export_result_free(&res);
	rm_dir(dir);

	a.cfg = "{\"auth\":false,\"types\":[\"Device\"],\"fileStatus\":{\"type\":\"Device\",\"status\":500}}";
	memset(&s, 0, sizeof s);
	rc = run_export(&a, &s, &res, dir);
	T_CHECK(rc == 0 && res.files_failed == 1 && has_issue_code(&s, "transient", 0),
		"file still failing after retries: transient issue");
	export_result_free(&res);
	rm_dir(dir);
}

static void t_export_errors(void)
{
	struct run_args a = { .cfg = "{\"auth\":false,\"exportError\":{\"status\":500,\"code\":\"exception\",\"message\":\"disk on fire\"}}" };
	struct export_result res;
	struct seen s = { 0 };
	char dir[64];
	int rc;

	rc = run_export(&a, &s, &res, dir);
	T_CHECK(rc == -1 && res.http_status == 502 && res.error_message && strstr(res.error_message, "disk on fire") &&
		!strcmp(res.error_code, "exception"), "provider export error fails the export with diagnostics");
	export_result_free(&res);
	rm_dir(dir);

	a.cfg = "{\"auth\":false,\"kickoffFault\":{\"status\":429,\"times\":1,\"retryAfter\":{\"value\":1}},"
		"\"statusFault\":{\"status\":503,\"times\":1},\"types\":[\"Device\"]}";
	memset(&s, 0, sizeof s);
	rc = run_export(&a, &s, &res, dir);
	T_CHECK(rc == 0 && s.done_ok == 1, "429 kick-off and 503 status retried");
	export_result_free(&res);
	rm_dir(dir);

	a.cfg = "{\"auth\":false,\"kickoffFault\":{\"status\":400,\"times\":1,\"message\":\"bad _since\"}}";
	memset(&s, 0, sizeof s);
	rc = run_export(&a, &s, &res, dir);
	T_CHECK(rc == -1 && res.error_message && strstr(res.error_message, "bad _since"), "400 kick-off fails with diagnostics");
	export_result_free(&res);
	rm_dir(dir);

	a.base_override = "http://127.0.0.1:1/fhir";
	memset(&s, 0, sizeof s);
	rc = run_export(&a, &s, &res, dir);
	T_CHECK(rc == -1 && res.error_message && strstr(res.error_message, "could not connect to provider at http://127.0.0.1:1/fhir"),
		"unreachable provider: clear message");
	export_result_free(&res);
	rm_dir(dir);
}

static void t_waits(void)
{
	static const char *styles[] = { "date", "garbage", "huge", "negative", "none" };
	struct export_result res;
	struct seen s;
	char dir[64], cfg[256];
	size_t i;
	time_t t0;
	int rc;

	for (i = 0; i < sizeof styles / sizeof styles[0]; i++) {
		struct run_args a = { .cfg = cfg, .poll_max = 2 };

		snprintf(cfg, sizeof cfg, "{\"auth\":false,\"polls\":2,\"types\":[\"Device\"],"
			 "\"retryAfter\":{\"style\":\"%s\",\"value\":1}}", styles[i]);
		memset(&s, 0, sizeof s);
		t0 = time(NULL);
		rc = run_export(&a, &s, &res, dir);
		diag("%s took %lds\n", styles[i], (long)(time(NULL) - t0));
		T_CHECK(rc == 0 && s.done_ok == 1 && time(NULL) - t0 <= 8, styles[i]);
		export_result_free(&res);
		rm_dir(dir);
	}
	{
		struct run_args a = { .cfg = "{\"auth\":false,\"polls\":1000}", .deadline_in = 3 };

		memset(&s, 0, sizeof s);
		t0 = time(NULL);
		rc = run_export(&a, &s, &res, dir);
		T_CHECK(rc == -1 && res.http_status == 504 && !strcmp(res.error_code, "transient") &&
			strstr(res.error_message, "deadline") && time(NULL) - t0 <= 6, "deadline: 504 transient");
		export_result_free(&res);
		rm_dir(dir);
	}
}

static void t_stop(void)
{
	struct run_args a = { .cfg = "{\"auth\":false,\"polls\":50}" };
	struct export_result res;
	struct seen s = { 0 };
	char dir[64];
	int rc;

	clear_log();
	s.stop_after_kickoff = 1;
	rc = run_export(&a, &s, &res, dir);
	T_CHECK(rc == -1 && res.cancelled == 1, "should_stop cancels");
	T_CHECK(log_count("DELETE", "/status/", NULL, NULL) == 1, "DELETE sent to the status URL");
	export_result_free(&res);
	rm_dir(dir);

	/* stop in the middle of slow downloads */
	a.cfg = "{\"auth\":false,\"types\":[\"Observation\",\"Claim\"],\"slowFileMs\":50}";
	memset(&s, 0, sizeof s);
	clear_log();
	s.stop_on_start = 1;
	rc = run_export(&a, &s, &res, dir);
	T_CHECK(rc == -1 && res.cancelled == 1 && s.done_ok == 0, "stop during downloads");
	T_CHECK(count_dir(dir) == 0, "stopped downloads leave no files");
	T_CHECK(log_count("DELETE", "/status/", NULL, NULL) == 1, "DELETE sent after stopping downloads");
	export_result_free(&res);
	rm_dir(dir);
}

static void t_paging_static(void)
{
	struct run_args a = { .cfg = "{\"auth\":false,\"pageSize\":3,\"deleted\":true,\"errorFile\":true}" };
	struct export_result res;
	struct seen s = { 0 };
	char dir[64];
	int rc, i, deleted = 0, errors = 0;

	rc = run_export(&a, &s, &res, dir);
	for (i = 0; i < s.nfiles; i++) {
		deleted += !strcmp(s.files[i].kind, "deleted");
		errors += !strcmp(s.files[i].kind, "error");
	}
	diag("files %d deleted %d error %d\n", s.nfiles, deleted, errors);
	T_CHECK(rc == 0 && res.files_failed == 0 && files_match(&s, dir) >= 17, "paged manifest merged, all files");
	T_CHECK(deleted == 1 && errors >= 1, "deleted (Bundle) and error (OperationOutcome) files validated");
	export_result_free(&res);
	rm_dir(dir);

	{
		json_object *p = json_tokener_parse("{\"resourceType\":\"Parameters\",\"parameter\":["
						    "{\"name\":\"allowPartialManifests\",\"valueBoolean\":true}]}");

		a.cfg = "{\"auth\":false,\"pageSize\":5,\"partialStatus\":200,\"polls\":2}";
		a.params = p;
		memset(&s, 0, sizeof s);
		rc = run_export(&a, &s, &res, dir);
		T_CHECK(rc == 0 && res.files_failed == 0 && files_match(&s, dir) == 17,
			"partial manifest: later page answers 202 first");
		export_result_free(&res);
		rm_dir(dir);
		a.params = NULL;
		json_object_put(p);
	}

	a.cfg = "{\"auth\":false}";
	a.kind = EXPORT_STATIC;
	a.path = "/static/manifest.json";
	memset(&s, 0, sizeof s);
	rc = run_export(&a, &s, &res, dir);
	T_CHECK(rc == 0 && res.files_failed == 0 && files_match(&s, dir) >= 17 && s.kickoffs == 0, "static manifest");
	export_result_free(&res);
	rm_dir(dir);

	a.kind = EXPORT_DYNAMIC;
	a.path = NULL;
	memset(&s, 0, sizeof s);
	s.skip_type = 1;
	rc = run_export(&a, &s, &res, dir);
	T_CHECK(rc == 0 && s.done_ok == s.starts && s.nfiles >= 16 && !file_ok(&s, "AllergyIntolerance", 1, dir),
		"on_manifest skip honoured");
	export_result_free(&res);
	rm_dir(dir);
}

static char *register_client(EVP_PKEY *key, const char *alg)
{
	json_object *jwk = jose_pkey_to_jwk(key, alg, 0), *body = json_object_new_object(), *keys, *jwks, *r, *v;
	struct http_req rq = { 0 };
	struct http_resp rs = { 0 };
	char url[256], *cid = NULL;
	static const char *const hdrs[] = { "Content-Type: application/json", NULL };

	jwks = json_object_new_object();
	keys = json_object_new_array();
	json_object_array_add(keys, jwk);
	json_object_object_add(jwks, "keys", keys);
	json_object_object_add(body, "jwks", jwks);
	snprintf(url, sizeof url, "http://127.0.0.1:%d/register", port);
	rq.url = url;
	rq.method = "POST";
	rq.headers = hdrs;
	rq.body = json_object_to_json_string(body);
	rq.body_len = strlen(rq.body);
	if (http_request(NULL, &rq, &rs) == 0 && rs.status == 201 && (r = json_tokener_parse(buf_str(&rs.body)))) {
		if (json_object_object_get_ex(r, "client_id", &v))
			cid = strdup(json_object_get_string(v));
		json_object_put(r);
	}
	http_resp_free(&rs);
	json_object_put(body);
	return cid;
}

static char *kid_of(EVP_PKEY *key, const char *alg)
{
	json_object *jwk = jose_pkey_to_jwk(key, alg, 0), *v;
	char *kid = NULL;

	if (jwk && json_object_object_get_ex(jwk, "kid", &v))
		kid = strdup(json_object_get_string(v));
	json_object_put(jwk);
	return kid;
}

/* http_request's own redirect handling: the token stays on its origin. */
static void t_http_redirect(void)
{
	static const char *const hdrs[] = { "Accept: application/json", NULL };
	char *base = base_for("{\"auth\":false,\"redirectFiles\":true}"), url[1024], *origin;
	struct http_req rq = { 0 };
	struct http_resp rs = { 0 };
	json_object *m = NULL, *out, *v;
	int n, with_auth = 0;

	snprintf(url, sizeof url, "%s/static/manifest.json", base);
	rq.url = url;
	rq.headers = hdrs;
	rq.max_body = 1 << 20;
	if (http_request(NULL, &rq, &rs) == 0 && rs.status == 200)
		m = json_tokener_parse(buf_str(&rs.body));
	T_CHECK(m && json_object_object_get_ex(m, "output", &out) &&
		json_object_object_get_ex(json_object_array_get_idx(out, 0), "url", &v), "static manifest fetched");
	if (!m) {
		free(base);
		return;
	}
	snprintf(url, sizeof url, "%s", json_object_get_string(v));
	origin = url_origin(base);
	clear_log();
	rq.url = url;
	rq.bearer = "not-a-real-token";
	rq.auth_origin = origin;
	rq.max_body = 16 << 20;
	T_CHECK(http_request(NULL, &rq, &rs) == 0 && rs.status == 200 && rs.body.len > 100 &&
		strstr(rs.url, "127.0.0.1") && !url_same_origin(rs.url, base), "http_request followed the redirect");
	n = log_count("GET", "/files/", "main", &with_auth);
	T_CHECK(n == 1 && with_auth == 1, "token sent on the first hop");
	n = log_count("GET", "/files/", "other", &with_auth);
	T_CHECK(n == 1 && with_auth == 0, "token dropped on the cross-origin hop");
	http_resp_free(&rs);
	json_object_put(m);
	free(origin);
	free(base);
}

static void t_auth(void)
{
	char *err = NULL, *cid, *kid, dir[64];
	EVP_PKEY *key = jose_keygen("ES384", 0, &err);
	struct export_result res;
	struct seen s = { 0 };
	int rc, with_auth = 0, n;

	cid = key ? register_client(key, "ES384") : NULL;
	kid = key ? kid_of(key, "ES384") : NULL;
	T_CHECK(cid && kid, "registered a client at the provider");
	if (!cid || !kid)
		goto out;
	{
		struct run_args a = { .cfg = "{\"types\":[\"Patient\",\"Device\"],\"expireTokenOnce\":true}",
				      .auth = { 0, cid, key, "ES384", kid, "system/*.read", NULL } };

		clear_log();
		rc = run_export(&a, &s, &res, dir);
		T_CHECK(rc == 0 && res.files_failed == 0 && files_match(&s, dir) == 2,
			"SMART auth export; 401 on a download refreshes the token");
		n = log_count("POST", "/auth/token", NULL, NULL);
		diag("token requests: %d\n", n);
		T_CHECK(n == 2, "two token requests (initial + one refresh)");
		export_result_free(&res);
		rm_dir(dir);
	}
	{
		struct run_args a = { .cfg = "{\"types\":[\"Patient\",\"Device\"],\"redirectFiles\":true,\"noWellKnown\":true}",
				      .auth = { 0, cid, key, "ES384", kid, NULL, NULL } };

		clear_log();
		memset(&s, 0, sizeof s);
		rc = run_export(&a, &s, &res, dir);
		T_CHECK(rc == 0 && res.files_failed == 0 && files_match(&s, dir) == 2,
			"redirected downloads to another origin; token endpoint from /metadata");
		n = log_count("GET", "/files/", "other", &with_auth);
		T_CHECK(n == 2 && with_auth == 0, "no bearer token sent to the other origin");
		n = log_count("GET", "/files/", "main", &with_auth);
		T_CHECK(n == 2 && with_auth == 2, "bearer token sent to the provider origin");
		export_result_free(&res);
		rm_dir(dir);
	}
	{
		struct run_args a = { .cfg = "{\"types\":[\"Device\"]}",
				      .auth = { 0, "no-such-client", key, "ES384", kid, NULL, NULL } };

		memset(&s, 0, sizeof s);
		rc = run_export(&a, &s, &res, dir);
		T_CHECK(rc == -1 && res.error_message && strstr(res.error_message, "SMART authorization failed: 401 invalid_client"),
			"failed auth: clear message");
		export_result_free(&res);
		rm_dir(dir);
	}
out:
	free(cid);
	free(kid);
	free(err);
	EVP_PKEY_free(key);
}

static void t_retry_after(void)
{
	time_t now = 1700000000;   /* Tue, 14 Nov 2023 22:13:20 GMT */

	T_CHECK(http_retry_after("5", now) == 5, "Retry-After seconds");
	T_CHECK(http_retry_after(" 120 ", now) == 120, "Retry-After seconds with spaces");
	T_CHECK(http_retry_after("0", now) == 0, "Retry-After zero (caller clamps to 1)");
	T_CHECK(http_retry_after("Tue, 14 Nov 2023 22:13:50 GMT", now) == 30, "Retry-After HTTP-date");
	T_CHECK(http_retry_after("Tue, 14 Nov 2023 22:13:00 GMT", now) == -1, "Retry-After date in the past");
	T_CHECK(http_retry_after("-5", now) == -1, "Retry-After negative");
	T_CHECK(http_retry_after("soon", now) == -1, "Retry-After garbage");
	T_CHECK(http_retry_after("1.5", now) == -1, "Retry-After decimal");
	T_CHECK(http_retry_after("999999999", now) == -1, "Retry-After absurd");
	T_CHECK(http_retry_after(NULL, now) == -1 && http_retry_after("", now) == -1, "Retry-After absent");
}

int main(void)
{
	const char *script = getenv("PROVIDER_SCRIPT") ? getenv("PROVIDER_SCRIPT") : "tests/provider/server.mjs";
	const char *fx = getenv("FIXTURES_DIR");
	struct stat st;
	pid_t pid;

	signal(SIGPIPE, SIG_IGN);
	verbose = getenv("TEST_VERBOSE") && *getenv("TEST_VERBOSE") == '1';
	log_set_level(verbose ? "debug" : "error");
	t_retry_after();
	if (fx)
		snprintf(fixtures, sizeof fixtures, "%s/fhir", fx);
	else
		snprintf(fixtures, sizeof fixtures, "../shared/fixtures/fhir");
	if (stat(script, &st) < 0 || stat(fixtures, &st) < 0 || (pid = start_provider(script)) < 0) {
		printf("ok - skipped (no provider)\n");
		return t_done();
	}
	http_global_init();
	t_open_post();
	t_get_params();
	t_validation();
	t_transfer_faults();
	t_export_errors();
	t_waits();
	t_stop();
	t_paging_static();
	t_http_redirect();
	t_auth();
	kill(pid, SIGTERM);
	waitpid(pid, NULL, 0);
	return t_done();
}
