/* The export engine against the Node test provider (tests/provider/server.mjs),
 * started here (fork + exec, dies with this process).  Without node or the script the test
 * prints "ok - skipped (no provider)".  Fixtures: $FIXTURES_DIR/fhir, else
 * ../shared/fixtures/fhir from the repository root. */
#include "t.h"
#include "t_provider.h"
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

/* Requests matching method and path fragment whose header `name` contains
 * `sub` (NULL: is present at all); *total gets all matching requests. */
static int log_count_header(const char *method, const char *frag, const char *origin, const char *name,
			    const char *sub, int *total)
{
	json_object *log = get_json("/__log"), *e, *v, *h;
	size_t i;
	int n = 0;

	if (total)
		*total = 0;
	for (i = 0; log && i < json_object_array_length(log); i++) {
		e = json_object_array_get_idx(log, i);
		if (method && (!json_object_object_get_ex(e, "method", &v) || strcmp(json_object_get_string(v), method)))
			continue;
		if (!json_object_object_get_ex(e, "path", &v) || !strstr(json_object_get_string(v), frag))
			continue;
		if (origin && (!json_object_object_get_ex(e, "origin", &v) || strcmp(json_object_get_string(v), origin)))
			continue;
		if (total)
			(*total)++;
		if (json_object_object_get_ex(e, "headers", &h) && json_object_object_get_ex(h, name, &v) &&
		    (!sub || strstr(json_object_get_string(v), sub)))
			n++;
	}
	json_object_put(log);
	return n;
}

/* ---- events ------------------------------------------------------------ */

struct seen {
	int kickoffs, statuses, manifests, starts, done_ok, done_bad, issues;
	int stop_after_kickoff, stop_on_start, stop_now;
	int stop_value;                 /* what should_stop returns once stopping (0: 1) */
	long long stop_after_bytes;     /* stop once a file has this many bytes */
	long long crash_after_bytes;    /* _exit(0) once a file has this many bytes */
	long long stop_delay_ms;        /* stop this long after the kick-off */
	long long stop_at;              /* monotonic ms */
	int stop_calls;
	char events[256][24];           /* on_log event names, in order */
	int nevents;
	int want_log;                   /* keep the details in logtext (seen_reset frees) */
	struct buf logtext;             /* every on_log details, one JSON per line */
	int manifest_names_ok;          /* on_manifest: every dest_name contained */
	char manifest_names[8][256];
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
	/* on_files_added (streaming) */
	int added_calls, added_total, added_ok;   /* added_ok: first/n/seq always continued */
	int starts_at_manifest;         /* on_file_start calls before on_manifest */
	int manifest_nfiles;
	int stop_after_done;            /* stop once this many files are done */
};

static long long mono_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void ev_kickoff(void *ctx, const char *url)
{
	struct seen *s = ctx;

	s->kickoffs++;
	if (s->stop_delay_ms)
		s->stop_at = mono_ms() + s->stop_delay_ms;
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
	s->manifest_names_ok = 1;
	s->starts_at_manifest = s->starts;
	s->manifest_nfiles = n;
	for (i = 0; i < n; i++) {
		const char *nm = f[i].dest_name;

		if (s->skip_type && f[i].seq == s->skip_type)
			f[i].skip = 1;
		if (!nm || !*nm || nm[0] == '.' || strstr(nm, "/.") || nm[strlen(nm) - 1] == '/')
			s->manifest_names_ok = 0;
		if (i < 8)
			snprintf(s->manifest_names[i], sizeof s->manifest_names[0], "%s", nm ? nm : "");
	}
}

static void ev_progress(void *ctx, struct export_file *f)
{
	struct seen *s = ctx;

	if (s->crash_after_bytes && f->bytes >= s->crash_after_bytes)
		_exit(0);   /* a crash: nothing cleaned up, the part file stays */
	if (s->stop_after_bytes && f->bytes >= s->stop_after_bytes)
		s->stop_now = 1;
}

static void ev_log(void *ctx, const char *event, json_object *details)
{
	struct seen *s = ctx;

	if (s->nevents < 256)
		snprintf(s->events[s->nevents++], sizeof s->events[0], "%s", event);
	if (s->want_log)
		buf_printf(&s->logtext, "%s %s\n", event,
			   json_object_to_json_string_ext(details, JSON_C_TO_STRING_PLAIN | JSON_C_TO_STRING_NOSLASHESCAPE));
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
	if (s->stop_after_done && s->done_ok + s->done_bad >= s->stop_after_done)
		s->stop_now = 1;
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
	struct seen *s = ctx;

	s->stop_calls++;
	if (s->stop_at && mono_ms() >= s->stop_at)
		s->stop_now = 1;
	if (!s->stop_now)
		return 0;
	return s->stop_value ? s->stop_value : EXPORT_STOP_CANCEL;
}

static const struct export_events EV = {
	ev_kickoff, ev_status, ev_manifest, ev_start, ev_progress, ev_done, ev_issue, ev_stop, ev_log, NULL
};

static void ev_files_added(void *ctx, struct export_file *f, int first, int n)
{
	struct seen *s = ctx;
	int i;

	if (!s->added_calls)
		s->added_ok = 1;
	s->added_calls++;
	if (first != s->added_total || n <= 0)
		s->added_ok = 0;
	for (i = first; i < first + n; i++)
		if (f[i].seq != i + 1 || !f[i].dest_name || !*f[i].dest_name)
			s->added_ok = 0;
	s->added_total += n > 0 ? n : 0;
}

/* The same events, plus on_files_added: downloads start with page 1. */
static const struct export_events EV_STREAM = {
	ev_kickoff, ev_status, ev_manifest, ev_start, ev_progress, ev_done, ev_issue, ev_stop, ev_log,
	ev_files_added
};

static void seen_reset(struct seen *s)
{
	buf_free(&s->logtext);
	memset(s, 0, sizeof *s);
}

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
	const char *dir;           /* reuse this folder (resume) instead of a new one */
	void (*tweak)(struct export_opts *o, void *arg);
	void *targ;
	int parallelism;
	const struct export_events *ev;   /* NULL: EV */
};

static int run_export(const struct run_args *a, struct seen *s, struct export_result *res, char *dir)
{
	struct export_opts o = { 0 };
	char url[1024], *base, *err = NULL;
	int rc;

	if (a->dir) {
		if (dir != a->dir)
			strcpy(dir, a->dir);
	} else {
		strcpy(dir, "/tmp/test_export.XXXXXX");
		if (!mkdtemp(dir))
			return -2;
	}
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
	o.parallelism = a->parallelism ? a->parallelism : 3;
	o.max_line_bytes = 1 << 20;
	o.poll_default_wait = 1;
	o.poll_max_wait = a->poll_max ? a->poll_max : 2;
	o.deadline = time(NULL) + (a->deadline_in ? a->deadline_in : 120);
	o.dest = dest_open(dir, &err);
	o.ctx = s;
	if (a->tweak)
		a->tweak(&o, a->targ);
	rc = export_run(&o, a->ev ? a->ev : &EV, res);
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

struct tweaks {
	const char *name_template;
	enum export_invalid_policy policy;
	const char *const *extra_headers;
	const char *const *token_origins;
	const char *proxy;
	int lenient, save_manifest, resume, retries0;
	json_object *manifest;
	const char *export_id;
};

static void apply_tweaks(struct export_opts *o, void *arg)
{
	const struct tweaks *t = arg;

	o->name_template = t->name_template;
	o->invalid_policy = t->policy;
	o->extra_headers = t->extra_headers;
	o->token_origins = t->token_origins;
	o->proxy = t->proxy;
	o->lenient = t->lenient;
	o->save_manifest = t->save_manifest;
	o->resume = t->resume;
	if (t->retries0)
		o->retries = 0;
	if (t->manifest)
		o->manifest = t->manifest;
	o->export_id = t->export_id;
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

	cid = key ? t_register_client(port, key, "ES384") : NULL;
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
		char other[64];
		const char *origins[] = { other, NULL };
		struct tweaks tw = { .token_origins = origins };
		struct run_args a = { .cfg = "{\"types\":[\"Patient\",\"Device\"],\"redirectFiles\":true}",
				      .auth = { 0, cid, key, "ES384", kid, NULL, NULL },
				      .tweak = apply_tweaks, .targ = &tw };
		const char *log;

		snprintf(other, sizeof other, "http://127.0.0.1:%d", other_port);
		clear_log();
		seen_reset(&s);
		s.want_log = 1;
		rc = run_export(&a, &s, &res, dir);
		T_CHECK(rc == 0 && res.files_failed == 0 && files_match(&s, dir) == 2, "export with token_origins");
		n = log_count("GET", "/files/", "other", &with_auth);
		T_CHECK(n == 2 && with_auth == 2, "bearer token also sent to an origin listed in token_origins");
		log = buf_str(&s.logtext);
		T_CHECK(s.nevents > 5 && !strcasestr(log, "bearer") && !strcasestr(log, "authorization") &&
			!strstr(log, "access_token") && !strstr(log, "client_assertion") && !strstr(log, "\"d\":"),
			"no token, assertion or key in the log events");
		export_result_free(&res);
		rm_dir(dir);
		seen_reset(&s);
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

/* ---- issue 3: client features ------------------------------------------ */

static long long elapsed_ms(long long t0)
{
	return mono_ms() - t0;
}

static void t_stop_values(void)
{
	struct run_args a = { .cfg = "{\"auth\":false,\"polls\":50,\"tag\":\"stop-values\"}" };
	struct export_result res;
	struct seen s = { 0 };
	char dir[64];
	long long t0;
	int rc;

	clear_log();
	s.stop_after_kickoff = 1;
	s.stop_value = EXPORT_STOP_ABANDON;
	rc = run_export(&a, &s, &res, dir);
	T_CHECK(rc == -1 && res.cancelled == 1, "abandon while polling stops the export");
	T_CHECK(log_count("DELETE", "/status/", NULL, NULL) == 0, "abandon sends no DELETE");
	export_result_free(&res);
	rm_dir(dir);

	/* the stop arrives while a slow status request is in flight: libcurl's
	 * progress callback aborts it, and the value (abandon) must survive */
	a.cfg = "{\"auth\":false,\"polls\":50,\"slowMs\":2500,\"tag\":\"stop-inflight\"}";
	seen_reset(&s);
	s.stop_delay_ms = 400;
	s.stop_value = EXPORT_STOP_ABANDON;
	clear_log();
	t0 = mono_ms();
	rc = run_export(&a, &s, &res, dir);
	diag("in-flight abandon took %lld ms\n", elapsed_ms(t0));
	T_CHECK(rc == -1 && res.cancelled == 1 && elapsed_ms(t0) < 4500,
		"a stop during a slow request aborts that request");
	T_CHECK(log_count("DELETE", "/status/", NULL, NULL) == 0, "stop value abandon kept through the aborted request");
	export_result_free(&res);
	rm_dir(dir);

	seen_reset(&s);
	s.stop_delay_ms = 400;
	s.stop_value = EXPORT_STOP_CANCEL;
	clear_log();
	rc = run_export(&a, &s, &res, dir);
	T_CHECK(rc == -1 && res.cancelled == 1 && log_count("DELETE", "/status/", NULL, NULL) == 1,
		"stop value cancel kept through the aborted request: DELETE sent");
	export_result_free(&res);
	rm_dir(dir);

	/* abandon in the middle of downloads: nothing committed, no DELETE */
	a.cfg = "{\"auth\":false,\"types\":[\"Observation\",\"Claim\"],\"slowFileMs\":30,\"tag\":\"stop-dl\"}";
	seen_reset(&s);
	s.stop_after_bytes = 100000;
	s.stop_value = EXPORT_STOP_ABANDON;
	clear_log();
	rc = run_export(&a, &s, &res, dir);
	T_CHECK(rc == -1 && res.cancelled == 1 && s.done_ok == 0 && count_dir(dir) == 0,
		"abandon during downloads commits nothing");
	T_CHECK(log_count("DELETE", "/status/", NULL, NULL) == 0, "abandon during downloads sends no DELETE");
	export_result_free(&res);
	rm_dir(dir);
}

static int starts_with(const char *s, const char *p)
{
	return !strncmp(s, p, strlen(p));
}

static void t_names(void)
{
	struct tweaks tw = { .name_template = "p{page}/{n}-{type}.ndjson" };
	struct run_args a = { .cfg = "{\"auth\":false,\"pageSize\":3,\"types\":[\"Patient\",\"Device\",\"Organization\","
				     "\"Practitioner\",\"CarePlan\",\"CareTeam\",\"Condition\"]}",
			      .tweak = apply_tweaks, .targ = &tw };
	struct export_result res;
	struct seen s = { 0 };
	char dir[64];
	int rc;

	rc = run_export(&a, &s, &res, dir);
	diag("names: %s %s %s %s %s %s %s\n", s.manifest_names[0], s.manifest_names[1], s.manifest_names[2],
	     s.manifest_names[3], s.manifest_names[4], s.manifest_names[5], s.manifest_names[6]);
	T_CHECK(rc == 0 && res.files_failed == 0 && files_match(&s, dir) == 7, "template with a folder: files stored");
	T_CHECK(starts_with(s.manifest_names[0], "p1/1-") && starts_with(s.manifest_names[2], "p1/3-") &&
		starts_with(s.manifest_names[3], "p2/4-") && starts_with(s.manifest_names[5], "p2/6-") &&
		starts_with(s.manifest_names[6], "p3/7-"), "{page} follows the manifest pages, {n} runs across them");
	export_result_free(&res);
	rm_dir(dir);

	tw.name_template = "{type}.ndjson";
	a.cfg = "{\"auth\":false,\"types\":[\"Patient\",\"Observation\"],\"filesPerType\":2}";
	seen_reset(&s);
	rc = run_export(&a, &s, &res, dir);
	diag("names: %s %s %s %s\n", s.manifest_names[0], s.manifest_names[1], s.manifest_names[2], s.manifest_names[3]);
	T_CHECK(rc == 0 && s.done_ok == 4 && strcmp(s.manifest_names[0], s.manifest_names[1]) &&
		file_ok(&s, "Patient", 1, dir) && count_dir(dir) == 4, "colliding names made unique");
	export_result_free(&res);
	rm_dir(dir);

	tw.name_template = "{basename}";
	a.cfg = "{\"auth\":false,\"types\":[\"Patient\",\"Device\"]}";
	seen_reset(&s);
	rc = run_export(&a, &s, &res, dir);
	diag("basename: %s %s done %d\n", s.manifest_names[0], s.manifest_names[1], s.done_ok);
	T_CHECK(rc == 0 && s.done_ok == 2 && !strcmp(s.manifest_names[0], "1.Device.ndjson") &&
		!strcmp(s.manifest_names[1], "1.Patient.ndjson") &&
		files_match(&s, dir) == 2, "{basename} is the file URL's last segment");
	export_result_free(&res);
	rm_dir(dir);

	/* hostile file URLs: names stay inside, with no folder */
	tw.manifest = json_tokener_parse(
		"{\"transactionTime\":\"2024-01-01T00:00:00Z\",\"requiresAccessToken\":false,\"output\":["
		"{\"type\":\"Patient\",\"url\":\"http://127.0.0.1:1/files/..%2F..%2Fetc\"},"
		"{\"type\":\"Patient\",\"url\":\"../x\"},"
		"{\"type\":\"Patient\",\"url\":\"/abs\"},"
		"{\"type\":\"../..\",\"url\":\"http://127.0.0.1:1/a/..\"},"
		"{\"type\":\"Patient\",\"url\":\"http://127.0.0.1:1/a/.hidden?x=/../y\"}]}");
	tw.retries0 = 1;
	seen_reset(&s);
	rc = run_export(&a, &s, &res, dir);
	diag("hostile: %s | %s | %s | %s | %s\n", s.manifest_names[0], s.manifest_names[1], s.manifest_names[2],
	     s.manifest_names[3], s.manifest_names[4]);
	T_CHECK(rc == 0 && s.manifests == 1 && s.manifest_names_ok && !strchr(s.manifest_names[0], '/') &&
		!strchr(s.manifest_names[1], '/') && !strchr(s.manifest_names[2], '/') &&
		!strchr(s.manifest_names[3], '/') && !strchr(s.manifest_names[4], '/') &&
		strcmp(s.manifest_names[3], s.manifest_names[1]), "hostile basenames stay inside the destination");
	export_result_free(&res);
	rm_dir(dir);
	json_object_put(tw.manifest);

	tw = (struct tweaks){ .name_template = "{nope}.ndjson" };
	seen_reset(&s);
	rc = run_export(&a, &s, &res, dir);
	T_CHECK(rc == -1 && res.error_message && strstr(res.error_message, "{nope}") && s.kickoffs == 0,
		"a bad template fails before the kick-off");
	export_result_free(&res);
	rm_dir(dir);
}

/* The fixture of `type` without its line `line` (1-based; 0: all of it); malloc'd. */
static char *fixture_without(const char *type, int line, size_t *len)
{
	char path[1024], *all, *p, *start, *end;
	size_t n;
	int i;

	snprintf(path, sizeof path, "%s/%s.ndjson", fixtures, type);
	all = slurp(path, &n);
	if (!all)
		return NULL;
	*len = n;
	if (line <= 0)
		return all;   /* the whole fixture */
	for (p = all, i = 1; i < line && p; i++) {
		p = memchr(p, '\n', n - (size_t)(p - all));
		if (p)
			p++;
	}
	if (!p)
		return all;
	start = p;
	end = memchr(start, '\n', n - (size_t)(start - all));
	end = end ? end + 1 : all + n;
	memmove(start, end, n - (size_t)(end - all));
	*len = n - (size_t)(end - start);
	return all;
}

static int stored_equals(const char *dir, const struct seen *s, const char *type, const char *want, size_t wl)
{
	char path[1024];
	size_t gl;
	char *got;
	int i, ok = 0;

	for (i = 0; i < s->nfiles; i++) {
		if (strcmp(s->files[i].type, type))
			continue;
		snprintf(path, sizeof path, "%s/%s", dir, s->files[i].dest_name);
		got = slurp(path, &gl);
		ok = got && gl == wl && !memcmp(got, want, wl) && s->files[i].bytes == (long long)wl;
		if (!ok)
			diag("%s: %zu bytes stored, %zu expected\n", type, got ? gl : 0, wl);
		free(got);
		break;
	}
	return ok;
}

static long long lines_of(const struct seen *s, const char *type)
{
	int i;

	for (i = 0; i < s->nfiles; i++)
		if (!strcmp(s->files[i].type, type))
			return s->files[i].lines;
	return -1;
}

static void t_policies(void)
{
	struct tweaks tw = { .policy = EXPORT_INVALID_FAIL };
	struct run_args a = { .cfg = "{\"auth\":false,\"types\":[\"Patient\",\"Device\"],"
				     "\"malformedLine\":{\"type\":\"Patient\",\"line\":3}}",
			      .tweak = apply_tweaks, .targ = &tw };
	struct export_result res;
	struct seen s = { 0 };
	char dir[64], *want;
	size_t wl = 0;
	int rc;

	rc = run_export(&a, &s, &res, dir);
	T_CHECK(rc == -1 && !res.cancelled && res.error_message && strstr(res.error_message, "line 3") &&
		strstr(res.error_message, "Patient.ndjson"), "fail policy: the export fails, saying file and line");
	T_CHECK(file_ok(&s, "Patient", 0, dir) && !file_ok(&s, "Patient", 1, dir), "fail policy: the bad file is not stored");
	export_result_free(&res);
	rm_dir(dir);

	tw.policy = EXPORT_INVALID_SKIP_LINE;
	a.cfg = "{\"auth\":false,\"types\":[\"Patient\",\"Device\",\"Organization\",\"Practitioner\"],"
		"\"malformedLine\":{\"type\":\"Patient\",\"line\":3},"
		"\"wrongType\":{\"type\":\"Device\",\"line\":2},"
		"\"countDelta\":{\"type\":\"Organization\",\"delta\":1}}";
	seen_reset(&s);
	rc = run_export(&a, &s, &res, dir);
	T_CHECK(rc == 0 && res.files_failed == 0 && s.done_ok == 4, "skip policy: every file stored");
	want = fixture_without("Patient", 3, &wl);
	T_CHECK(want && stored_equals(dir, &s, "Patient", want, wl) && lines_of(&s, "Patient") == 24,
		"skip policy: the file without the bad line, other lines byte for byte");
	free(want);
	want = fixture_without("Device", 2, &wl);
	T_CHECK(want && stored_equals(dir, &s, "Device", want, wl), "skip policy: wrong resourceType line left out");
	free(want);
	T_CHECK(has_issue_code(&s, "structure", 3) && has_issue_code(&s, "value", 2) && strstr(s.last_issue, "count"),
		"skip policy: skipped lines and the count mismatch reported");
	T_CHECK(files_match(&s, dir) == -1 && file_ok(&s, "Organization", 1, dir) && file_ok(&s, "Practitioner", 1, dir),
		"skip policy: count mismatch still stored");
	export_result_free(&res);
	rm_dir(dir);
}

static void t_request_custom(void)
{
	static const char *const extra[] = { "X-Trace: abc-123", NULL };
	struct tweaks tw = { .extra_headers = extra, .lenient = 1 };
	struct run_args a = { .cfg = "{\"auth\":false,\"types\":[\"Patient\",\"Device\"],\"redirectFiles\":true}",
			      .tweak = apply_tweaks, .targ = &tw };
	struct export_result res;
	struct seen s = { 0 };
	char dir[64];
	int rc, n, total;

	clear_log();
	rc = run_export(&a, &s, &res, dir);
	T_CHECK(rc == 0 && s.done_ok == 2 && files_match(&s, dir) == 2, "export with extra headers and lenient");
	T_CHECK(log_count_header("POST", "/$export", NULL, "x-trace", "abc-123", &total) == 1 && total == 1,
		"extra header on the kick-off");
	T_CHECK(log_count_header("POST", "/$export", NULL, "prefer", "handling=lenient", NULL) == 1,
		"lenient: Prefer handling=lenient on the kick-off");
	n = log_count_header("GET", "/status/", NULL, "x-trace", "abc-123", &total);
	T_CHECK(n >= 1 && n == total, "extra header on every status request");
	n = log_count_header("GET", "/files/", "main", "x-trace", "abc-123", &total);
	T_CHECK(n == 2 && total == 2, "extra header on downloads from the server");
	n = log_count_header("GET", "/files/", "other", "x-trace", NULL, &total);
	T_CHECK(n == 0 && total == 2, "no extra header after a redirect to another origin");
	T_CHECK(log_count_header("GET", "/files/", NULL, "user-agent", "bulk-import-test/1", &total) == total &&
		total == 4, "user agent on every download hop");
	export_result_free(&res);
	rm_dir(dir);

	tw = (struct tweaks){ .proxy = "http://127.0.0.1:1", .retries0 = 1 };
	seen_reset(&s);
	rc = run_export(&a, &s, &res, dir);
	T_CHECK(rc == -1 && res.error_message && strstr(res.error_message, "could not connect"),
		"proxy setting used for requests");
	export_result_free(&res);
	rm_dir(dir);
}

static void t_gzip(void)
{
	struct run_args a = { .cfg = "{\"auth\":false,\"types\":[\"Patient\",\"Observation\",\"Device\"],\"gzip\":\"noheader\"}" };
	struct export_result res;
	struct seen s = { 0 };
	char dir[64];
	int rc;

	rc = run_export(&a, &s, &res, dir);
	T_CHECK(rc == 0 && res.files_failed == 0 && files_match(&s, dir) == 3,
		"gzip body without Content-Encoding recognised and decoded");
	export_result_free(&res);
	rm_dir(dir);

	a.cfg = "{\"auth\":false,\"types\":[\"Patient\",\"Observation\"],\"gzip\":\"header\"}";
	seen_reset(&s);
	clear_log();
	rc = run_export(&a, &s, &res, dir);
	T_CHECK(rc == 0 && res.files_failed == 0 && files_match(&s, dir) == 2 &&
		log_count_header("GET", "/files/", NULL, "accept-encoding", "gzip", NULL) == 2,
		"Content-Encoding gzip asked for and decoded");
	export_result_free(&res);
	rm_dir(dir);
}

/* Smallest and largest "concurrency" of download_request events, and
 * whether it went up again after its lowest point. */
static void concurrency_seen(const struct seen *s, int *min, int *max_after_min)
{
	const char *p = buf_str(&s->logtext);
	int c, minpos = -1, i = 0;

	*min = 1000;
	*max_after_min = 0;
	while ((p = strstr(p, "download_request "))) {
		const char *q = strstr(p, "\"concurrency\":");

		if (q && sscanf(q, "\"concurrency\":%d", &c) == 1) {
			if (c < *min) {
				*min = c;
				minpos = i;
				*max_after_min = 0;
			} else if (minpos >= 0 && c > *max_after_min) {
				*max_after_min = c;
			}
		}
		p++;
		i++;
	}
}

static void t_throttle(void)
{
	struct run_args a = { .cfg = "{\"auth\":false,\"types\":[\"Device\",\"Patient\",\"Organization\","
				     "\"Practitioner\",\"CarePlan\",\"CareTeam\",\"Condition\",\"Immunization\",\"Procedure\"],"
				     "\"fileStatus\":{\"type\":\"Device\",\"status\":429,\"times\":2}}" };
	struct export_result res;
	struct seen s = { .want_log = 1 };
	char dir[64];
	int rc, min, up;

	clear_log();
	rc = run_export(&a, &s, &res, dir);
	concurrency_seen(&s, &min, &up);
	diag("concurrency min %d, after that up to %d\n", min, up);
	T_CHECK(rc == 0 && res.files_failed == 0 && files_match(&s, dir) == 9, "429 on a file: retried, every file arrives");
	T_CHECK(log_count("GET", "1.Device.ndjson", NULL, NULL) == 3, "the 429 file was asked for three times");
	T_CHECK(min == 1, "repeated 429: concurrency lowered to 1");
	T_CHECK(up >= 2, "concurrency raised again after good files");
	T_CHECK(strstr(buf_str(&s.logtext), "\"throttled\":2") != NULL, "export_complete counts the 429 answers");
	export_result_free(&res);
	rm_dir(dir);
	seen_reset(&s);
}

static void t_outcome_array(void)
{
	char *base = base_for("{\"auth\":false,\"types\":[\"Patient\"],\"errorFile\":true}"), url[1024], sha[65];
	struct tweaks tw = { 0 };
	struct run_args a = { .kind = EXPORT_STATIC, .path = "/static/manifest.json", .tweak = apply_tweaks, .targ = &tw };
	struct http_req rq = { 0 };
	struct http_resp rs = { 0 };
	json_object *m = NULL, *err;
	struct export_result res;
	struct seen s = { 0 };
	char dir[64];
	int rc, i, found = 0;

	a.cfg = "{\"auth\":false,\"types\":[\"Patient\"],\"errorFile\":true}";
	snprintf(url, sizeof url, "%s/static/manifest.json", base);
	rq.url = url;
	rq.max_body = 1 << 20;
	if (http_request(NULL, &rq, &rs) == 0 && rs.status == 200)
		m = json_tokener_parse(buf_str(&rs.body));
	http_resp_free(&rs);
	T_CHECK(m && json_object_object_get_ex(m, "error", &err), "static manifest with an error file");
	if (!m) {
		free(base);
		return;
	}
	json_object_get(err);
	json_object_object_del(m, "error");
	json_object_object_add(m, "outcome", err);
	/* the file's bytes as the server sends them */
	snprintf(url, sizeof url, "%s", json_object_get_string(json_object_object_get(json_object_array_get_idx(err, 0), "url")));
	memset(&rq, 0, sizeof rq);
	rq.url = url;
	rq.max_body = 1 << 20;
	sha[0] = '\0';
	if (http_request(NULL, &rq, &rs) == 0 && rs.status == 200)
		sha_hex(rs.body.data, rs.body.len, sha);
	http_resp_free(&rs);
	tw.manifest = m;
	rc = run_export(&a, &s, &res, dir);
	for (i = 0; i < s.nfiles; i++)
		if (!strcmp(s.files[i].kind, "error") && s.files[i].ok && !strcmp(s.files[i].sha256, sha))
			found++;
	T_CHECK(rc == 0 && res.files_failed == 0 && s.done_ok == 2 && found == 1,
		"\"outcome\" array downloaded like an error file (OperationOutcome)");
	export_result_free(&res);
	rm_dir(dir);
	json_object_put(m);
	free(base);
}

static int event_index(const struct seen *s, const char *name, int from)
{
	int i;

	for (i = from; i < s->nevents; i++)
		if (!strcmp(s->events[i], name))
			return i;
	return -1;
}

static int event_count(const struct seen *s, const char *name)
{
	int i, n = 0;

	for (i = 0; i < s->nevents; i++)
		n += !strcmp(s->events[i], name);
	return n;
}

static void t_log_events(void)
{
	struct run_args a = { .cfg = "{\"auth\":false,\"polls\":2,\"types\":[\"Patient\",\"Device\"]}" };
	struct export_result res;
	struct seen s = { .want_log = 1 };
	const char *log;
	char dir[64], want[128];
	int rc, k, sc, pc, mc, last_req, first_done;

	rc = run_export(&a, &s, &res, dir);
	log = buf_str(&s.logtext);
	diag("log:\n%s", log);
	k = event_index(&s, "kickoff", 0);
	sc = event_index(&s, "status_complete", 0);
	pc = event_index(&s, "status_page_complete", 0);
	mc = event_index(&s, "manifest_complete", 0);
	first_done = event_index(&s, "download_complete", 0);
	last_req = event_index(&s, "download_request", first_done < 0 ? 0 : first_done);
	T_CHECK(rc == 0 && k == 0 && event_count(&s, "status_progress") == 2 &&
		event_index(&s, "status_progress", 0) > k && sc > event_index(&s, "status_progress", 2) &&
		pc > sc && mc > pc, "log: kickoff, status_progress x2, status_complete, status_page_complete, manifest_complete");
	T_CHECK(event_count(&s, "download_request") == 2 && event_count(&s, "download_complete") == 2 &&
		event_index(&s, "download_request", 0) > mc && first_done > mc,
		"log: download_request and download_complete per file, after the manifest");
	T_CHECK(!strcmp(s.events[s.nevents - 1], "export_complete") && event_count(&s, "export_complete") == 1 &&
		event_count(&s, "download_error") == 0 && event_count(&s, "client_error") == 0 &&
		event_count(&s, "status_error") == 0, "log: export_complete last, no errors");
	(void)last_req;
	T_CHECK(strstr(log, "kickoff {\"exportUrl\":\"http://127.0.0.1:") && strstr(log, "\"status\":202"),
		"log: kickoff details");
	T_CHECK(strstr(log, "\"resourceCount\":25") && strstr(log, "\"fileSize\":"), "log: download_complete details");
	snprintf(want, sizeof want, "\"files\":2,\"resources\":27");
	T_CHECK(strstr(log, want) && strstr(log, "\"duration\":") && strstr(log, "\"bytes\":"),
		"log: export_complete totals");
	T_CHECK(strstr(log, "\"totalOutputFileCount\":2") && strstr(log, "\"totalManifests\":1"),
		"log: manifest_complete totals");
	export_result_free(&res);
	rm_dir(dir);

	a.cfg = "{\"auth\":false,\"exportError\":{\"status\":500,\"code\":\"exception\",\"message\":\"disk on fire\"}}";
	seen_reset(&s);
	s.want_log = 1;
	rc = run_export(&a, &s, &res, dir);
	T_CHECK(rc == -1 && event_index(&s, "status_error", 0) > 0 &&
		!strcmp(s.events[s.nevents - 1], "client_error") && strstr(buf_str(&s.logtext), "disk on fire"),
		"log: status_error then client_error for a failed export");
	export_result_free(&res);
	rm_dir(dir);
	seen_reset(&s);
}

static long long mtime_ns(const char *path)
{
	struct stat st;

	if (stat(path, &st) < 0)
		return -1;
	return (long long)st.st_mtim.tv_sec * 1000000000LL + st.st_mtim.tv_nsec;
}

/* manifest.json in dir against the files and what was stored; -1 when
 * absent or wrong, else the number of entries checked. */
static int check_manifest(const char *dir)
{
	static const char *const kinds[] = { "output", "deleted", "error" };
	char path[1024], sha[65];
	json_object *m, *arr, *it, *v;
	long long mt, newest = 0;
	size_t i, k, len;
	int n = 0;

	snprintf(path, sizeof path, "%s/manifest.json", dir);
	mt = mtime_ns(path);
	{
		char *text = slurp(path, &len);

		m = text ? json_tokener_parse(text) : NULL;
		free(text);
	}
	if (!m || json_object_object_get_ex(m, "link", NULL)) {
		json_object_put(m);
		return -1;
	}
	for (k = 0; k < 3; k++) {
		if (!json_object_object_get_ex(m, kinds[k], &arr))
			continue;
		for (i = 0; i < json_object_array_length(arr); i++) {
			const char *dest;
			char *data;
			size_t dl;

			it = json_object_array_get_idx(arr, i);
			dest = json_object_object_get_ex(it, "destination", &v) ? json_object_get_string(v) : NULL;
			snprintf(path, sizeof path, "%s/%s", dir, dest ? dest : "-");
			data = dest ? slurp(path, &dl) : NULL;
			if (!data) {
				json_object_put(m);
				return -1;
			}
			sha_hex(data, dl, sha);
			free(data);
			if (mtime_ns(path) > newest)
				newest = mtime_ns(path);
			if (!json_object_object_get_ex(it, "size", &v) || json_object_get_int64(v) != (long long)dl ||
			    !json_object_object_get_ex(it, "sha256", &v) || strcmp(json_object_get_string(v), sha) ||
			    !json_object_object_get_ex(it, "lines", &v) || json_object_get_int64(v) <= 0) {
				diag("manifest entry for %s is wrong\n", dest);
				json_object_put(m);
				return -1;
			}
			n++;
		}
	}
	json_object_put(m);
	return mt >= newest ? n : -1;
}

static void t_save_manifest(void)
{
	struct tweaks tw = { .save_manifest = 1 };
	struct run_args a = { .cfg = "{\"auth\":false,\"pageSize\":2,\"deleted\":true,\"errorFile\":true,"
				     "\"types\":[\"Patient\",\"Device\",\"Organization\",\"Practitioner\",\"CarePlan\"]}",
			      .tweak = apply_tweaks, .targ = &tw };
	struct export_result res;
	struct seen s = { 0 };
	char dir[64];
	int rc, n;

	rc = run_export(&a, &s, &res, dir);
	n = check_manifest(dir);
	diag("manifest entries %d, files %d\n", n, s.nfiles);
	T_CHECK(rc == 0 && res.files_failed == 0 && n == s.nfiles && n == 7,
		"manifest.json: merged pages, no link, destination/size/sha256/lines right, written last");
	export_result_free(&res);
	rm_dir(dir);

	a.cfg = "{\"auth\":false,\"types\":[\"Patient\",\"Device\"],\"fileStatus\":{\"type\":\"Device\",\"status\":404}}";
	seen_reset(&s);
	rc = run_export(&a, &s, &res, dir);
	T_CHECK(rc == 0 && res.files_failed == 1 && check_manifest(dir) == -1 && strstr(s.last_issue, "not written"),
		"manifest.json not written when a file failed, and said so");
	export_result_free(&res);
	rm_dir(dir);
}

static int part_files(const char *dir)
{
	DIR *d = opendir(dir);
	struct dirent *de;
	int n = 0;

	if (!d)
		return -1;
	while ((de = readdir(d)))
		n += strstr(de->d_name, ".part") != NULL;
	closedir(d);
	return n;
}

static int state_says_complete(const char *dir)
{
	char path[1024], *text;
	json_object *st, *v;
	size_t len;
	int ok;

	snprintf(path, sizeof path, "%s/bulk-data-state.json", dir);
	text = slurp(path, &len);
	st = text ? json_tokener_parse(text) : NULL;
	ok = st && json_object_object_get_ex(st, "complete", &v) && json_object_get_boolean(v);
	json_object_put(st);
	free(text);
	return ok;
}

/* First run in a child that dies (_exit) once a file has `crash_at` bytes;
 * 0 when it died as planned. */
static int crashing_run(const struct run_args *a, long long crash_at)
{
	struct export_result res;
	struct seen s = { 0 };
	char dir[64];
	pid_t pid;
	int status = -1;

	fflush(stdout);
	pid = fork();
	if (pid == 0) {
		s.crash_after_bytes = crash_at;
		run_export(a, &s, &res, dir);
		_exit(3);   /* finished without crashing */
	}
	if (pid < 0 || waitpid(pid, &status, 0) < 0)
		return -1;
	return WIFEXITED(status) && WEXITSTATUS(status) == 0 ? 0 : -1;
}

static void t_resume(void)
{
	struct tweaks tw = { .resume = 1 };
	struct run_args a = { .tweak = apply_tweaks, .targ = &tw };
	struct export_result res;
	struct seen s = { 0 };
	char dir[64], cfg[256];
	int rc, ranged, total, range_on;

	for (range_on = 1; range_on >= 0; range_on--) {
		snprintf(cfg, sizeof cfg, "{\"auth\":false,\"types\":[\"Patient\",\"Observation\",\"Claim\"],"
			 "\"slowFileMs\":30,\"range\":%s,\"tag\":\"resume-crash-%d\"}", range_on ? "true" : "false",
			 range_on);
		a.cfg = cfg;
		strcpy(dir, "/tmp/test_export.XXXXXX");
		if (!mkdtemp(dir))
			return;
		a.dir = dir;
		rc = crashing_run(&a, 1500000);
		T_CHECK(rc == 0 && part_files(dir) >= 1, range_on ? "crash mid-download leaves part files (range on)"
								 : "crash mid-download leaves part files (range off)");
		clear_log();
		seen_reset(&s);
		rc = run_export(&a, &s, &res, dir);
		ranged = log_count_header("GET", "/files/", NULL, "range", "bytes=", &total);
		diag("resume: %d of %d downloads with Range\n", ranged, total);
		T_CHECK(rc == 0 && res.files_failed == 0 && files_match(&s, dir) == 3 && s.done_ok == 3,
			range_on ? "resumed export byte-identical to the fixtures (range on)"
				 : "resumed export byte-identical to the fixtures (range off: restarted)");
		T_CHECK(s.kickoffs == 0 && log_count("POST", "/$export", NULL, NULL) == 0,
			"resume polls the recorded status URL instead of kicking off");
		T_CHECK(log_count("GET", "1.Patient.ndjson", NULL, NULL) == 0, "resume skips files already done");
		if (range_on)
			T_CHECK(ranged >= 1, "resume asks for the rest of a partial file with Range");
		T_CHECK(part_files(dir) == 0 && state_says_complete(dir), "no part files left, state complete");
		export_result_free(&res);
		rm_dir(dir);
	}

	/* stopped with abandon, resumed */
	a.cfg = "{\"auth\":false,\"types\":[\"Patient\",\"Observation\",\"Claim\"],\"slowFileMs\":30,\"range\":true,"
		"\"tag\":\"resume-abandon\"}";
	strcpy(dir, "/tmp/test_export.XXXXXX");
	if (!mkdtemp(dir))
		return;
	a.dir = dir;
	seen_reset(&s);
	s.stop_after_bytes = 300000;
	s.stop_value = EXPORT_STOP_ABANDON;
	rc = run_export(&a, &s, &res, dir);
	T_CHECK(rc == -1 && res.cancelled && s.done_ok == 1, "abandoned after the first file");
	export_result_free(&res);
	clear_log();
	seen_reset(&s);
	rc = run_export(&a, &s, &res, dir);
	T_CHECK(rc == 0 && files_match(&s, dir) == 3 && s.done_ok == 3 && log_count("GET", "1.Patient.ndjson", NULL, NULL) == 0,
		"abandoned export resumed: done file reported, not fetched again, all byte-identical");
	export_result_free(&res);
	rm_dir(dir);

	/* a destination that holds another export's state */
	a.cfg = "{\"auth\":false,\"types\":[\"Device\"],\"tag\":\"resume-other\"}";
	strcpy(dir, "/tmp/test_export.XXXXXX");
	if (!mkdtemp(dir))
		return;
	{
		char path[1024];
		FILE *f;

		snprintf(path, sizeof path, "%s/bulk-data-state.json", dir);
		f = fopen(path, "w");
		if (f) {
			fputs("{\"version\":1,\"kickoffUrl\":\"http://elsewhere.example/fhir/$export\"}", f);
			fclose(f);
		}
	}
	seen_reset(&s);
	rc = run_export(&a, &s, &res, dir);
	T_CHECK(rc == -1 && res.error_message && strstr(res.error_message, "another export") && s.kickoffs == 0,
		"resume refuses a destination with another export's state");
	export_result_free(&res);
	rm_dir(dir);
}

static void attach_tweak(struct export_opts *o, void *arg)
{
	o->attach = *(const struct export_attach_opts *)arg;
}

/* Attachments hook: DocumentReference lines go through lib/attach.h. */
static void t_attachments(void)
{
	static const char *const inline_types[] = { "image/jpeg", NULL };
	struct export_attach_opts at = { .enabled = 1, .inline_types = inline_types, .inline_max = 1 << 20 };
	struct run_args a = { .cfg = "{\"auth\":false,\"types\":[\"Patient\",\"DocumentReference\"],\"attachments\":true}",
			      .tweak = attach_tweak, .targ = &at };
	struct export_result res;
	struct seen s = { .want_log = 1 };
	char dir[64], path[1024], *text = NULL, *line, *save = NULL, *want;
	json_object *res_doc, *content, *att, *v;
	int rc, i, inl = 0, saved = 0, files_there = 0, lines = 0;
	size_t len = 0, wl = 0;

	rc = run_export(&a, &s, &res, dir);
	for (i = 0; i < s.nfiles; i++)
		if (!strcmp(s.files[i].type, "DocumentReference")) {
			snprintf(path, sizeof path, "%s/%s", dir, s.files[i].dest_name);
			text = slurp(path, &len);
		}
	for (line = text ? strtok_r(text, "\n", &save) : NULL; line; line = strtok_r(NULL, "\n", &save)) {
		lines++;
		res_doc = json_tokener_parse(line);
		if (res_doc && json_object_object_get_ex(res_doc, "content", &content))
			for (i = 0; i < (int)json_object_array_length(content); i++) {
				if (!json_object_object_get_ex(json_object_array_get_idx(content, i), "attachment", &att))
					continue;
				if (json_object_object_get_ex(att, "data", &v) && !json_object_object_get_ex(att, "url", NULL))
					inl++;
				if (json_object_object_get_ex(att, "url", &v) &&
				    starts_with(json_object_get_string(v), "attachments/")) {
					struct stat st;

					saved++;
					snprintf(path, sizeof path, "%s/%s", dir, json_object_get_string(v));
					files_there += stat(path, &st) == 0 && st.st_size > 0;
				}
			}
		json_object_put(res_doc);
	}
	diag("attachments: %d lines, %d inline, %d saved, %d files\n", lines, inl, saved, files_there);
	T_CHECK(rc == 0 && res.files_failed == 0 && s.done_ok == 2, "export with the attachments hook");
	T_CHECK(lines == 4 && inl == 3 && saved == 1 && files_there == 1,
		"DocumentReference attachments inline (jpeg) or saved under attachments/ (pdf), url rewritten");
	T_CHECK(strstr(buf_str(&s.logtext), "\"attachments\":3") != NULL, "export_complete counts fetched attachments");
	want = fixture_without("Patient", 0, &wl);
	T_CHECK(want && stored_equals(dir, &s, "Patient", want, wl), "other files untouched by the hook");
	free(want);
	free(text);
	export_result_free(&res);
	rm_dir(dir);
	seen_reset(&s);
}

/* A body cut short is continued with a Range when the stored bytes are the
 * server's identity bytes, else fetched again from the start. */
static void t_cut_range(void)
{
	static const char *const cfgs[] = {
		"{\"auth\":false,\"types\":[\"Observation\"],\"range\":true,"
		"\"cutFile\":{\"type\":\"Observation\",\"afterBytes\":100000,\"times\":1}}",
		"{\"auth\":false,\"types\":[\"Observation\"],\"range\":true,\"gzip\":\"header\","
		"\"cutFile\":{\"type\":\"Observation\",\"afterBytes\":100000,\"times\":1}}",
		"{\"auth\":false,\"types\":[\"Observation\"],\"range\":true,\"gzip\":\"noheader\","
		"\"cutFile\":{\"type\":\"Observation\",\"afterBytes\":100000,\"times\":1}}",
	};
	static const char *const names[] = {
		"cut body continued with Range",
		"cut gzip (Content-Encoding) body continued with an identity Range",
		"cut gzip body without header fetched again from the start",
	};
	struct export_result res;
	struct seen s = { 0 };
	char dir[64];
	int i, rc, ranged, total, identity;

	for (i = 0; i < 3; i++) {
		struct run_args a = { .cfg = cfgs[i] };

		clear_log();
		seen_reset(&s);
		rc = run_export(&a, &s, &res, dir);
		ranged = log_count_header("GET", "/files/", NULL, "range", "bytes=", &total);
		identity = log_count_header("GET", "/files/", NULL, "accept-encoding", "identity", NULL);
		diag("%s: %d of %d with Range, %d identity\n", names[i], ranged, total, identity);
		T_CHECK(rc == 0 && res.files_failed == 0 && files_match(&s, dir) == 1 && total == 2 &&
			(i < 2 ? ranged == 1 : ranged == 0) && (i == 1 ? identity == 1 : 1), names[i]);
		export_result_free(&res);
		rm_dir(dir);
	}
}

/* TLS settings of struct http_conf against `openssl s_server -www` with a
 * self-signed certificate for 127.0.0.1 (skipped without openssl). */
static void t_tls(void)
{
	char dir[64] = "/tmp/test_export_tls.XXXXXX", cmd[512], cert[128], key[128], line[256], url[64];
	struct http_conf c = { .connect_timeout = 5, .idle_timeout = 5 };
	struct http_req rq = { 0 };
	struct http_resp rs = { 0 };
	FILE *out = NULL;
	pid_t pid = -1;
	int p[2], tport = 0, rc;

	if (!mkdtemp(dir))
		return;
	snprintf(cert, sizeof cert, "%s/c.pem", dir);
	snprintf(key, sizeof key, "%s/k.pem", dir);
	snprintf(cmd, sizeof cmd, "openssl req -x509 -newkey rsa:2048 -nodes -keyout %s -out %s -days 1 "
		 "-subj /CN=127.0.0.1 -addext subjectAltName=IP:127.0.0.1 >/dev/null 2>&1", key, cert);
	if (system(cmd) != 0 || pipe(p) < 0) {
		printf("ok - skipped TLS checks (no openssl)\n");
		goto out;
	}
	fflush(stdout);
	pid = fork();
	if (pid == 0) {
		prctl(PR_SET_PDEATHSIG, SIGTERM);
		dup2(p[1], 1);
		close(p[0]);
		close(p[1]);
		{
			int nul = open("/dev/null", O_WRONLY);

			if (nul >= 0)
				dup2(nul, 2);   /* its TLS alerts are expected here */
		}
		execlp("openssl", "openssl", "s_server", "-accept", "127.0.0.1:0", "-cert", cert, "-key", key,
		       "-www", (char *)NULL);
		_exit(127);
	}
	close(p[1]);
	out = fdopen(p[0], "r");
	while (out && fgets(line, sizeof line, out))
		if (sscanf(line, "ACCEPT 127.0.0.1:%d", &tport) == 1)
			break;
	if (!tport) {
		printf("ok - skipped TLS checks (s_server did not start)\n");
		goto out;
	}
	snprintf(url, sizeof url, "https://127.0.0.1:%d/", tport);
	rq.url = url;
	rc = http_request(&c, &rq, &rs);
	T_CHECK(rc < 0 && rs.curl_code == CURLE_PEER_FAILED_VERIFICATION, "TLS: an unknown certificate is refused");
	c.ca_file = cert;
	rc = http_request(&c, &rq, &rs);
	T_CHECK(rc == 0 && rs.status == 200, "TLS: ca_file makes the certificate trusted");
	c.ca_file = NULL;
	c.insecure = 1;
	rc = http_request(&c, &rq, &rs);
	T_CHECK(rc == 0 && rs.status == 200, "TLS: insecure skips verification");
	http_resp_free(&rs);
out:
	if (pid > 0) {
		kill(pid, SIGTERM);
		waitpid(pid, NULL, 0);
	}
	if (out)
		fclose(out);
	unlink(cert);
	unlink(key);
	rmdir(dir);
}

/* From the provider's log: the position and time of the first file GET
 * and of the last manifest page (…/page/N) answered 200, and how many page
 * requests were answered 202.  -1 when there is none. */
static void page_log(int *first_file, int *last_page, int *page_202, char ff_time[40], char lp_time[40])
{
	json_object *log = get_json("/__log"), *e, *v;
	const char *path, *method;
	size_t i;
	int status;

	*first_file = *last_page = -1;
	*page_202 = 0;
	ff_time[0] = lp_time[0] = '\0';
	for (i = 0; log && i < json_object_array_length(log); i++) {
		e = json_object_array_get_idx(log, i);
		method = json_object_object_get_ex(e, "method", &v) ? json_object_get_string(v) : "";
		path = json_object_object_get_ex(e, "path", &v) ? json_object_get_string(v) : "";
		status = json_object_object_get_ex(e, "status", &v) ? json_object_get_int(v) : 0;
		if (strcmp(method, "GET"))
			continue;
		if (strstr(path, "/files/") && *first_file < 0) {
			*first_file = (int)i;
			if (json_object_object_get_ex(e, "time", &v))
				snprintf(ff_time, 40, "%s", json_object_get_string(v));
		}
		if (strstr(path, "/status/") && strstr(path, "/page/")) {
			if (status == 202)
				(*page_202)++;
			if (status == 200) {
				*last_page = (int)i;
				if (json_object_object_get_ex(e, "time", &v))
					snprintf(lp_time, 40, "%s", json_object_get_string(v));
			}
		}
	}
	json_object_put(log);
}

/* on_files_added: the files of page 1 download while later pages of a
 * partial manifest are still answered 202. */
static void t_paging_streaming(void)
{
	json_object *p = json_tokener_parse("{\"resourceType\":\"Parameters\",\"parameter\":["
					    "{\"name\":\"allowPartialManifests\",\"valueBoolean\":true}]}");
	struct tweaks tw = { .save_manifest = 1 };
	struct run_args a = { .cfg = "{\"auth\":false,\"pageSize\":5,\"partialStatus\":200,\"polls\":3,"
				     "\"deleted\":true,\"errorFile\":true,\"tag\":\"stream-1\"}",
			      .params = p, .ev = &EV_STREAM, .tweak = apply_tweaks, .targ = &tw };
	struct export_result res;
	struct seen s = { 0 };
	char dir[64], fft[40], lpt[40];
	int rc, ff, lp, p202, first_done, gets;

	clear_log();
	rc = run_export(&a, &s, &res, dir);
	page_log(&ff, &lp, &p202, fft, lpt);
	diag("streaming: first file #%d %s, last page #%d %s, %d page 202s, %d on_files_added, %d files, "
	     "%d starts before on_manifest\n", ff, fft, lp, lpt, p202, s.added_calls, s.added_total,
	     s.starts_at_manifest);
	T_CHECK(rc == 0 && res.files_failed == 0 && files_match(&s, dir) == 17 && s.done_ok == 19,
		"streaming pages: every file stored byte-exact");
	T_CHECK(p202 >= 2 && ff >= 0 && lp > ff && strcmp(fft, lpt) < 0,
		"streaming pages: first download before the last page was answered 200");
	T_CHECK(s.added_calls >= 2 && s.added_ok && s.added_total == 19 && s.manifests == 1 &&
		s.manifest_nfiles == 19 && s.starts_at_manifest > 0,
		"on_files_added per page ({n} continues), on_manifest once at the end with all files");
	T_CHECK(check_manifest(dir) == 19, "streaming pages: manifest.json merged and right");
	export_result_free(&res);
	rm_dir(dir);

	/* cancelled while a later page is still polled: DELETE, no manifest */
	a.cfg = "{\"auth\":false,\"pageSize\":5,\"partialStatus\":200,\"polls\":30,\"tag\":\"stream-2\"}";
	tw.save_manifest = 0;
	seen_reset(&s);
	clear_log();
	s.stop_after_done = 1;
	rc = run_export(&a, &s, &res, dir);
	page_log(&ff, &lp, &p202, fft, lpt);
	T_CHECK(rc == -1 && res.cancelled && s.manifests == 0 && lp < 0 && p202 >= 1 &&
		log_count("DELETE", "/status/", NULL, NULL) == 1, "streaming pages: cancel while polling a page sends DELETE");
	export_result_free(&res);
	rm_dir(dir);

	/* abandoned while a later page is polled, then resumed */
	a.cfg = "{\"auth\":false,\"pageSize\":5,\"partialStatus\":200,\"polls\":3,\"tag\":\"stream-3\"}";
	tw.save_manifest = 1;
	tw.resume = 1;
	strcpy(dir, "/tmp/test_export.XXXXXX");
	if (!mkdtemp(dir))
		goto out;
	a.dir = dir;
	seen_reset(&s);
	s.stop_after_done = 2;
	s.stop_value = EXPORT_STOP_ABANDON;
	rc = run_export(&a, &s, &res, dir);
	first_done = s.done_ok;
	T_CHECK(rc == -1 && res.cancelled && s.manifests == 0 && first_done >= 2,
		"streaming pages: abandoned before the manifest was complete");
	export_result_free(&res);
	clear_log();
	seen_reset(&s);
	rc = run_export(&a, &s, &res, dir);
	gets = log_count("GET", "/files/", NULL, NULL);
	diag("resume: %d done before, %d downloads now\n", first_done, gets);
	T_CHECK(rc == 0 && res.files_failed == 0 && files_match(&s, dir) == 17 && s.done_ok == 17 &&
		gets == 17 - first_done && check_manifest(dir) == 17 && state_says_complete(dir),
		"streaming pages: resumed, files done before not fetched again, manifest.json right");
	export_result_free(&res);
	rm_dir(dir);
out:
	json_object_put(p);
}

/* TEST_ONLY=name,name runs only those scenarios. */
static int wanted(const char *name)
{
	const char *only = getenv("TEST_ONLY");

	return !only || !*only || strstr(only, name) != NULL;
}

#define RUN(fn) do { if (wanted(#fn)) fn(); } while (0)

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
	RUN(t_open_post);
	RUN(t_get_params);
	RUN(t_validation);
	RUN(t_transfer_faults);
	RUN(t_export_errors);
	RUN(t_waits);
	RUN(t_stop);
	RUN(t_paging_static);
	RUN(t_paging_streaming);
	RUN(t_http_redirect);
	RUN(t_auth);
	RUN(t_stop_values);
	RUN(t_names);
	RUN(t_policies);
	RUN(t_request_custom);
	RUN(t_gzip);
	RUN(t_throttle);
	RUN(t_outcome_array);
	RUN(t_log_events);
	RUN(t_save_manifest);
	RUN(t_resume);
	RUN(t_attachments);
	RUN(t_cut_range);
	RUN(t_tls);
	kill(pid, SIGTERM);
	waitpid(pid, NULL, 0);
	return t_done();
}
