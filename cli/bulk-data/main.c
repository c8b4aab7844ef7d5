/* bulk-data: download a FHIR Bulk Data export from any Bulk Data server to
 * a folder, S3, an HTTP endpoint or nowhere, validating every line.
 *
 * main() turns the options into export_opts, runs the engine with the
 * reporter and log file attached, and maps the result to the exit status:
 * 0 done, 1 export or file failures, 2 bad options, 130 interrupted.
 * Fatal exits happen only here, before the export starts. */
#include "bulk_data.h"
#include "buf.h"
#include "dest.h"
#include "http.h"
#include "jose.h"
#include "log.h"
#include "url.h"
#include <errno.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <unistd.h>
#include <openssl/crypto.h>
#include <openssl/rand.h>

/* Everything main owns; released in one place. */
struct cli {
	struct opt_store st;
	struct export_opts o;
	struct dest_conf dc;
	struct bd b;
	json_object *params, *jwk;
	EVP_PKEY *key;
	char *kick_url, *export_id, *http_method;
	char **origins;              /* normalised --token-origin values, NULL-terminated */
	struct dest *dest;
	const char *reporter;
};

/* 16 hex digits from the CSPRNG (malloc'd). */
static char *new_export_id(void)
{
	unsigned char r[8];
	char *out = malloc(17);

	if (!out)
		return NULL;
	if (RAND_bytes(r, sizeof r) != 1) {
		free(out);
		return NULL;
	}
	for (size_t i = 0; i < sizeof r; i++)
		snprintf(out + 2 * i, 3, "%02x", r[i]);
	return out;
}

static int one_of(const char *v, const char *const *allowed)
{
	for (int i = 0; allowed[i]; i++)
		if (!strcmp(v, allowed[i]))
			return 1;
	return 0;
}

/* The exportId of the run whose resume state is in the destination (the
 * engine's XSTATE_NAME, lib/export_int.h), so a resumed export keeps one id
 * in its log and in {exportId} names.  NULL when there is none (malloc'd). */
static char *resumed_export_id(struct dest *d)
{
	struct buf b = BUF_INIT;
	json_object *doc = NULL, *v;
	char *err = NULL, *id = NULL;
	const char *s;

	if (dest_get(d, "bulk-data-state.json", &b, &err) < 0 || !b.len)
		goto out;
	doc = json_tokener_parse(b.data);
	if (!doc || !json_object_object_get_ex(doc, "exportId", &v) || !json_object_is_type(v, json_type_string))
		goto out;
	s = json_object_get_string(v);
	if (*s && strlen(s) <= 64 && strspn(s, "0123456789abcdefABCDEF-") == strlen(s))
		id = strdup(s);
out:
	json_object_put(doc);
	buf_free(&b);
	free(err);
	return id;
}

/* Key, alg and kid for SMART Backend Services.  0, or -1 with *err. */
static int setup_auth(struct cli *c, char **err)
{
	const struct opt_store *st = &c->st;
	const char *client_id = opt_str(st, O_CLIENT_ID), *path = opt_str(st, O_PRIVATE_KEY);
	const char *alg = opt_str(st, O_ALG);
	json_object *fit = NULL;
	char *text = NULL, *kerr = NULL;
	int ret = -1;

	if (!client_id && !path) {
		c->o.auth.open = 1;   /* open server: no token at all */
		return 0;
	}
	if (!client_id || !path) {
		err_set(err, "SMART authorization needs both --client-id and --private-key");
		return -1;
	}
	text = buf_read_file(path, err);
	if (!text)
		goto out;
	c->key = jose_load_key(text, 1, &c->jwk, &kerr);
	if (!c->key) {
		err_set(err, "--private-key %s: %s", path, kerr ? kerr : "not a usable private key");
		goto out;
	}
	if (!alg)
		alg = json_object_get_string(json_object_object_get(c->jwk, "alg"));
	if (!alg || !jose_alg_supported(alg)) {
		err_set(err, "--alg must be one of RS256 RS384 RS512 ES256 ES384 ES512%s",
			opt_str(st, O_ALG) ? "" : " (the key names none)");
		goto out;
	}
	fit = jose_pkey_to_jwk(c->key, alg, 0);
	if (!fit) {
		err_set(err, "--alg %s does not fit the key in %s", alg, path);
		goto out;
	}
	c->o.auth.client_id = client_id;
	c->o.auth.key = c->key;
	c->o.auth.alg = alg;
	c->o.auth.kid = json_object_get_string(json_object_object_get(c->jwk, "kid"));
	c->o.auth.scope = opt_str(st, O_SCOPE) ? opt_str(st, O_SCOPE) : opt_default(O_SCOPE);
	c->o.auth.token_url = opt_str(st, O_TOKEN_URL);
	if (c->o.auth.token_url && !url_is_http(c->o.auth.token_url)) {
		err_set(err, "--token-url must be an absolute http(s) URL");
		goto out;
	}
	ret = 0;
out:
	json_object_put(fit);
	if (text) {
		OPENSSL_cleanse(text, strlen(text));
		free(text);
	}
	free(kerr);
	return ret;
}

/* Numbers with their ranges. */
static int setup_numbers(struct cli *c, char **err)
{
	const struct opt_store *st = &c->st;
	long long v;

	if (opt_long(st, O_CONNECT_TIMEOUT, 1, 3600, &v, err) < 0)
		return -1;
	c->o.connect_timeout = c->dc.connect_timeout = (long)v;
	if (opt_long(st, O_IDLE_TIMEOUT, 1, 86400, &v, err) < 0)
		return -1;
	c->o.idle_timeout = c->dc.idle_timeout = (long)v;
	if (opt_long(st, O_PARALLEL, 1, 64, &v, err) < 0)
		return -1;
	c->o.parallelism = (int)v;
	if (opt_long(st, O_RETRIES, 0, 100, &v, err) < 0)
		return -1;
	c->o.retries = c->dc.retries = (int)v;
	if (opt_long(st, O_MAX_LINE_BYTES, 1024, 1LL << 31, &v, err) < 0)
		return -1;
	c->o.max_line_bytes = (size_t)v;
	if (opt_long(st, O_POLL_MAX_WAIT, 1, 86400, &v, err) < 0)
		return -1;
	c->o.poll_max_wait = (long)v;
	if (opt_long(st, O_DEADLINE, 0, 10LL * 366 * 86400, &v, err) < 0)
		return -1;
	c->o.deadline = v ? (long)(time(NULL) + v) : 0;
	if (opt_long(st, O_INLINE_MAX, 0, 1LL << 31, &v, err) < 0)
		return -1;
	c->o.attach.inline_max = (long)v;
	return 0;
}

/* Export level, kick-off parameters, --status.  0 or -1 with *err. */
static int setup_export(struct cli *c, char **err)
{
	const struct opt_store *st = &c->st;
	const char *fhir = opt_str(st, O_FHIR_URL), *status = opt_str(st, O_STATUS);
	int post = opt_flag(st, O_POST);

	if (!fhir && !status) {
		err_set(err, "say which server: --fhir-url URL (or --status URL to attach to a running export)");
		return -1;
	}
	if (fhir && !url_is_http(fhir)) {
		err_set(err, "--fhir-url must be an absolute http(s) URL, not \"%s\"", fhir);
		return -1;
	}
	c->o.kind = EXPORT_DYNAMIC;
	c->o.fhir_base = fhir;
	if (status) {
		if (!url_is_http(status)) {
			err_set(err, "--status must be an absolute http(s) URL");
			return -1;
		}
		if (!fhir && !c->o.auth.open && !c->o.auth.token_url) {
			err_set(err, "--status with SMART authorization needs --fhir-url or --token-url to find the token endpoint");
			return -1;
		}
		c->o.status_url = status;
		c->o.url = NULL;   /* no kick-off (and no kick-off URL to match a resume state against) */
		c->b.source = status;
		c->b.status_url = strdup(status);
		return 0;
	}
	if (opt_str(st, O_GROUP) && opt_flag(st, O_PATIENT_LEVEL)) {
		err_set(err, "--group and --patient-level are different export levels; give one");
		return -1;
	}
	if (opt_list(st, O_PATIENT)) {
		if (!opt_str(st, O_GROUP) && !opt_flag(st, O_PATIENT_LEVEL)) {
			err_set(err, "--patient needs --patient-level or --group (not allowed at system level)");
			return -1;
		}
		post = 1;   /* the IG allows "patient" only in a POST body */
	}
	c->kick_url = req_kickoff_url(fhir, opt_str(st, O_GROUP), opt_flag(st, O_PATIENT_LEVEL), err);
	if (!c->kick_url)
		return -1;
	c->params = req_parameters(st, err);
	if (!c->params)
		return -1;
	c->o.url = c->kick_url;
	c->o.params = c->params;
	c->o.kickoff_get = !post;
	c->o.lenient = opt_flag(st, O_LENIENT);
	c->b.source = c->kick_url;
	return 0;
}

static int setup_requests(struct cli *c, char **err)
{
	const struct opt_store *st = &c->st;
	const char *const *h = opt_list(st, O_HEADER), *const *org = opt_list(st, O_TOKEN_ORIGIN);
	size_t n = opt_count(st, O_TOKEN_ORIGIN);

	for (size_t i = 0; h && h[i]; i++)
		if (req_check_header(h[i], err) < 0)
			return -1;
	c->o.extra_headers = h;
	c->o.user_agent = opt_str(st, O_USER_AGENT) ? opt_str(st, O_USER_AGENT) : opt_default(O_USER_AGENT);
	c->o.ca_file = c->dc.ca_file = opt_str(st, O_CA_FILE);
	if (c->o.ca_file && access(c->o.ca_file, R_OK) < 0) {
		err_set(err, "--ca-file %s: %s", c->o.ca_file, strerror(errno));
		return -1;
	}
	c->o.insecure = c->dc.insecure = opt_flag(st, O_INSECURE);
	c->o.proxy = opt_str(st, O_PROXY);
	if (n) {
		c->origins = calloc(n + 1, sizeof *c->origins);
		if (!c->origins)
			return -1;
		for (size_t i = 0; i < n; i++) {
			c->origins[i] = url_origin(org[i]);
			if (!c->origins[i] || !url_is_http(org[i])) {
				err_set(err, "--token-origin \"%s\" is not an http(s) origin such as https://files.example:443",
					org[i]);
				return -1;
			}
		}
		c->o.token_origins = (const char *const *)c->origins;
	}
	return 0;
}

static int setup_output(struct cli *c, char **err)
{
	static const char *const policies[] = { "fail", "skip", "drop-file", NULL };
	const struct opt_store *st = &c->st;
	const char *pol = opt_str(st, O_ON_INVALID) ? opt_str(st, O_ON_INVALID) : opt_default(O_ON_INVALID);
	const char *m = opt_str(st, O_HTTP_METHOD), *tpl = opt_str(st, O_NAME_TEMPLATE);
	const char *dest = opt_str(st, O_DESTINATION) ? opt_str(st, O_DESTINATION) : opt_default(O_DESTINATION);

	if (!one_of(pol, policies)) {
		err_set(err, "--on-invalid must be fail, skip or drop-file, not \"%s\"", pol);
		return -1;
	}
	c->o.invalid_policy = !strcmp(pol, "fail") ? EXPORT_INVALID_FAIL
			      : !strcmp(pol, "skip") ? EXPORT_INVALID_SKIP_LINE : EXPORT_INVALID_DROP_FILE;
	if (tpl && !*tpl) {
		err_set(err, "--name-template must not be empty");
		return -1;
	}
	c->o.name_template = tpl;
	c->o.save_manifest = opt_flag(st, O_SAVE_MANIFEST);
	c->o.resume = c->b.resume = opt_flag(st, O_RESUME);
	if (!*dest) {
		err_set(err, "--destination must not be empty");
		return -1;
	}
	if (c->o.resume && !strcmp(dest, "none")) {
		err_set(err, "--resume needs a destination that keeps state (not none)");
		return -1;
	}
	c->b.destination = dest;
	if (m) {
		if (strcasecmp(m, "PUT") && strcasecmp(m, "POST")) {
			err_set(err, "--http-method must be PUT or POST, not \"%s\"", m);
			return -1;
		}
		c->http_method = strdup(!strcasecmp(m, "PUT") ? "PUT" : "POST");
	}
	c->dc.http_method = c->http_method;
	c->dc.s3_region = opt_str(st, O_S3_REGION);
	c->dc.s3_endpoint = opt_str(st, O_S3_ENDPOINT);
	/* attachments */
	c->o.attach.inline_types = opt_list(st, O_INLINE_ATTACHMENTS);
	c->o.attach.pdf_to_text = opt_flag(st, O_PDF_TO_TEXT);
	c->o.attach.enabled = opt_flag(st, O_ATTACHMENTS) || c->o.attach.inline_types || c->o.attach.pdf_to_text;
	return 0;
}

static int setup_reporting(struct cli *c, char **err)
{
	static const char *const reporters[] = { "cli", "text", "json", NULL };
	static const char *const cancels[] = { "ask", "yes", "no", NULL };
	const struct opt_store *st = &c->st;
	const char *r = opt_str(st, O_REPORTER), *ci = opt_str(st, O_CANCEL_ON_INTERRUPT);

	if (!r)
		r = isatty(STDOUT_FILENO) ? "cli" : "text";
	if (!one_of(r, reporters)) {
		err_set(err, "--reporter must be cli, text or json, not \"%s\"", r);
		return -1;
	}
	c->reporter = r;
	if (!ci)
		ci = isatty(STDIN_FILENO) && isatty(STDERR_FILENO) ? "ask" : "no";
	if (!one_of(ci, cancels)) {
		err_set(err, "--cancel-on-interrupt must be ask, yes or no, not \"%s\"", ci);
		return -1;
	}
	c->b.cancel = !strcmp(ci, "yes") ? BD_CANCEL_YES : !strcmp(ci, "no") ? BD_CANCEL_NO : BD_CANCEL_ASK;
	return 0;
}

/* What the run is, for the json reporter's "start" event; no secrets. */
static json_object *start_info(struct cli *c)
{
	const char *const *h = c->o.extra_headers;
	json_object *o = json_object_new_object(), *hs = json_object_new_array();

	json_object_object_add(o, "software", json_object_new_string(BD_PROG "/" BD_VERSION));
	if (c->o.status_url) {
		json_object_object_add(o, "statusUrl", json_object_new_string(c->o.status_url));
	} else {
		json_object_object_add(o, "kickoffUrl", json_object_new_string(c->kick_url));
		json_object_object_add(o, "method", json_object_new_string(c->o.kickoff_get ? "GET" : "POST"));
		json_object_object_add(o, "parameters", json_object_get(c->params));
	}
	for (size_t i = 0; h && h[i]; i++) {
		char *s = bd_scrub_header(h[i]);
		if (s)
			json_object_array_add(hs, json_object_new_string(s));
		free(s);
	}
	json_object_object_add(o, "headers", hs);
	json_object_object_add(o, "destination", json_object_new_string(c->b.destination));
	json_object_object_add(o, "auth", json_object_new_string(c->o.auth.open ? "open" : "smart"));
	if (!c->o.auth.open) {
		json_object_object_add(o, "clientId", json_object_new_string(c->o.auth.client_id));
		json_object_object_add(o, "alg", json_object_new_string(c->o.auth.alg));
		json_object_object_add(o, "scope", json_object_new_string(c->o.auth.scope));
	}
	json_object_object_add(o, "parallel", json_object_new_int(c->o.parallelism));
	json_object_object_add(o, "resume", json_object_new_boolean(c->o.resume));
	return o;
}

static void cli_free(struct cli *c)
{
	if (c->dest)
		dest_close(c->dest);
	reporter_free(c->b.rep);
	log_file_close(c->b.log);
	json_object_put(c->b.start_info);
	bd_free(&c->b);
	json_object_put(c->params);
	json_object_put(c->jwk);
	EVP_PKEY_free(c->key);
	for (size_t i = 0; c->origins && c->origins[i]; i++)
		free(c->origins[i]);
	free(c->origins);
	free(c->kick_url);
	free(c->export_id);
	free(c->http_method);
	opts_free(&c->st);
}

int main(int argc, char **argv)
{
	struct cli c;
	struct export_result res;
	char *err = NULL;
	int rc = 2, prc, run;

	memset(&c, 0, sizeof c);
	memset(&res, 0, sizeof res);
	bd_init(&c.b);
	signal(SIGPIPE, SIG_IGN);   /* `| head` must not kill a run mid-file */
	log_set_prog(BD_PROG);

	prc = opts_parse(&c.st, argc, argv, &err);
	if (prc == 1) {
		rc = 0;
		goto out;
	}
	if (prc < 0 || setup_reporting(&c, &err) < 0 || setup_auth(&c, &err) < 0 || setup_export(&c, &err) < 0 ||
	    setup_requests(&c, &err) < 0 || setup_numbers(&c, &err) < 0 || setup_output(&c, &err) < 0)
		goto usage;
	if (c.o.status_url && (opt_list(&c.st, O_TYPE) || opt_str(&c.st, O_SINCE) || opt_list(&c.st, O_CUSTOM) ||
			       opt_list(&c.st, O_TYPE_FILTER) || opt_str(&c.st, O_GROUP)))
		fprintf(stderr, BD_PROG ": kick-off options are ignored with --status\n");
	log_set_level(opt_flag(&c.st, O_VERBOSE) ? "info" : !strcmp(c.reporter, "cli") ? "error" : "warn");

	http_global_init();
	c.dest = dest_open_conf(c.b.destination, &c.dc, &err);
	if (!c.dest)
		goto usage;
	if (c.o.resume)
		c.export_id = resumed_export_id(c.dest);
	if (!c.export_id)
		c.export_id = new_export_id();
	if (!c.export_id) {
		err_set(&err, "no randomness for an export id");
		goto fatal;
	}
	c.o.export_id = c.export_id;
	c.b.export_id = c.export_id;
	if (opt_str(&c.st, O_LOG_FILE)) {
		c.b.log = log_file_open(opt_str(&c.st, O_LOG_FILE), c.export_id, &err);
		if (!c.b.log)
			goto usage;
	}
	c.b.rep = reporter_new(c.reporter, stdout);
	if (!c.b.rep) {
		err_set(&err, "out of memory");
		goto fatal;
	}
	c.o.dest = c.dest;
	c.o.ctx = &c.b;
	c.b.start_info = start_info(&c);

	bd_signals_install();
	c.b.rep->handle(c.b.rep, &c.b, EV_START, NULL);
	run = export_run(&c.o, &bd_events, &res);
	c.b.rep->handle(c.b.rep, &c.b, EV_FINISH, &res);

	if (c.b.interrupted || res.cancelled) {
		rc = 130;
	} else if (run < 0) {
		rc = 1;
		if (!strcmp(c.reporter, "json"))   /* the other reporters said it on stdout */
			fprintf(stderr, BD_PROG ": export failed: %s\n", res.error_message ? res.error_message : "unknown error");
	} else if (c.b.files_failed || res.files_failed) {
		int n = c.b.files_failed ? c.b.files_failed : res.files_failed;

		rc = 1;
		if (!strcmp(c.reporter, "json"))
			fprintf(stderr, BD_PROG ": %d file%s failed\n", n, n == 1 ? "" : "s");
	} else {
		rc = 0;
	}
	export_result_free(&res);
	goto out;

usage:
	fprintf(stderr, BD_PROG ": %s\nTry '" BD_PROG " --help'.\n", err ? err : "bad options");
	rc = 2;
	goto out;
fatal:
	fprintf(stderr, BD_PROG ": %s\n", err ? err : "failed");
	rc = 1;
out:
	free(err);
	cli_free(&c);
	return rc;
}
