/* Options of `bulk-data`: one table drives getopt_long, the --config JSON
 * keys (the long option names) and --help, so the three cannot drift apart.
 * The config file is read first; the command line overrides it (a list
 * option given on the command line replaces the config file's list). */
#include "bulk_data.h"
#include "buf.h"
#include <errno.h>
#include <getopt.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define OF_LIST  1u   /* repeatable */
#define OF_COMMA 2u   /* values are also split at commas */

struct opt_def {
	const char *name;
	int has_arg;          /* no_argument or required_argument */
	unsigned flags;
	int shortc;
	const char *metavar;
	const char *deflt;    /* shown by --help; numeric ones are also the value when unset */
	const char *help;
	const char *section;  /* starts a --help section */
};

static const struct opt_def DEFS[O_COUNT] = {
	[O_FHIR_URL] = { "fhir-url", required_argument, 0, 0, "URL", NULL,
		"FHIR server base URL (required unless --status)", "Export" },
	[O_GROUP] = { "group", required_argument, 0, 0, "ID", NULL, "export a Group: {base}/Group/ID/$export", NULL },
	[O_PATIENT_LEVEL] = { "patient-level", no_argument, 0, 0, NULL, NULL,
		"export all patients: {base}/Patient/$export (default: system level, {base}/$export)", NULL },
	[O_TYPE] = { "type", required_argument, OF_LIST | OF_COMMA, 0, "TYPE[,TYPE]", "all types",
		"_type: resource types to export (repeatable)", NULL },
	[O_SINCE] = { "since", required_argument, 0, 0, "INSTANT", NULL, "_since, e.g. 2024-01-01T00:00:00Z", NULL },
	[O_UNTIL] = { "until", required_argument, 0, 0, "INSTANT", NULL, "_until", NULL },
	[O_ELEMENTS] = { "elements", required_argument, OF_LIST | OF_COMMA, 0, "EL[,EL]", NULL,
		"_elements (repeatable)", NULL },
	[O_PATIENT] = { "patient", required_argument, OF_LIST | OF_COMMA, 0, "ID", NULL,
		"patient: export only this patient (repeatable; Patient or Group level; implies --post)", NULL },
	[O_TYPE_FILTER] = { "type-filter", required_argument, OF_LIST, 0, "TYPE?QUERY", NULL,
		"_typeFilter (repeatable)", NULL },
	[O_INCLUDE_ASSOCIATED] = { "include-associated-data", required_argument, OF_LIST | OF_COMMA, 0, "CODE", NULL,
		"includeAssociatedData, e.g. LatestProvenanceResources (repeatable)", NULL },
	[O_OUTPUT_FORMAT] = { "output-format", required_argument, 0, 0, "MIME", NULL,
		"_outputFormat (server default: application/fhir+ndjson)", NULL },
	[O_POST] = { "post", no_argument, 0, 0, NULL, NULL,
		"kick off with POST and a Parameters body (default: GET with query parameters)", NULL },
	[O_LENIENT] = { "lenient", no_argument, 0, 0, NULL, NULL, "send Prefer: handling=lenient", NULL },
	[O_CUSTOM] = { "custom", required_argument, OF_LIST, 0, "NAME=VALUE", NULL,
		"extra kick-off parameter (repeatable; the value may contain '=')", NULL },
	[O_STATUS] = { "status", required_argument, 0, 0, "URL", NULL,
		"attach to an export already started at this status URL (no kick-off)", NULL },
	[O_RESUME] = { "resume", no_argument, 0, 0, NULL, NULL,
		"keep state in the destination and continue an interrupted run from it", NULL },

	[O_DESTINATION] = { "destination", required_argument, 0, 0, "DEST", "./downloads",
		"folder, s3://BUCKET/PREFIX, http(s)://URL (one upload per file) or none (validate and count only)",
		"Output" },
	[O_NAME_TEMPLATE] = { "name-template", required_argument, 0, 0, "T", "{n}.{type}.ndjson",
		"file names; also {page}, {basename}, {exportId}", NULL },
	[O_SAVE_MANIFEST] = { "save-manifest", no_argument, 0, 0, NULL, NULL,
		"write manifest.json (with destination, size, sha256, lines per file) after every file is stored", NULL },
	[O_ON_INVALID] = { "on-invalid", required_argument, 0, 0, "POLICY", "fail",
		"invalid lines: fail (stop the export), skip (drop the line, keep going) or drop-file", NULL },
	[O_MAX_LINE_BYTES] = { "max-line-bytes", required_argument, 0, 0, "N", "16777216",
		"longest accepted NDJSON line", NULL },
	[O_S3_REGION] = { "s3-region", required_argument, 0, 0, "REGION", "$AWS_REGION or us-east-1",
		"S3 region (credentials from AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY)", NULL },
	[O_S3_ENDPOINT] = { "s3-endpoint", required_argument, 0, 0, "URL", "AWS", "S3-compatible endpoint (path style)", NULL },
	[O_HTTP_METHOD] = { "http-method", required_argument, 0, 0, "PUT|POST", "PUT",
		"method for an http(s) destination", NULL },

	[O_ATTACHMENTS] = { "attachments", no_argument, 0, 0, NULL, NULL,
		"fetch DocumentReference / DiagnosticReport attachments and save them under attachments/",
		"Attachments" },
	[O_INLINE_ATTACHMENTS] = { "inline-attachments", required_argument, OF_LIST | OF_COMMA, 0, "MIME", NULL,
		"put attachments of this type inline (repeatable; implies --attachments)", NULL },
	[O_INLINE_MAX] = { "inline-max", required_argument, 0, 0, "BYTES", "1048576",
		"largest attachment put inline", NULL },
	[O_PDF_TO_TEXT] = { "pdf-to-text", no_argument, 0, 0, NULL, NULL,
		"inline PDFs become text/plain (pdftotext; implies --attachments)", NULL },

	[O_CLIENT_ID] = { "client-id", required_argument, 0, 0, "ID", NULL,
		"SMART Backend Services client_id (open servers need no auth options)", "Authorization" },
	[O_PRIVATE_KEY] = { "private-key", required_argument, 0, 0, "FILE", NULL, "private key: JWK, JWKS or PEM", NULL },
	[O_ALG] = { "alg", required_argument, 0, 0, "ALG", "the key's alg",
		"RS256, RS384, RS512, ES256, ES384 or ES512", NULL },
	[O_SCOPE] = { "scope", required_argument, 0, 0, "SCOPE", "system/*.read", "scope to request", NULL },
	[O_TOKEN_URL] = { "token-url", required_argument, 0, 0, "URL", "discovered",
		"token endpoint (else from .well-known/smart-configuration or metadata)", NULL },
	[O_TOKEN_ORIGIN] = { "token-origin", required_argument, OF_LIST | OF_COMMA, 0, "ORIGIN", NULL,
		"another scheme://host:port allowed to receive the access token (repeatable)", NULL },

	[O_HEADER] = { "header", required_argument, OF_LIST, 'H', "'NAME: VALUE'", NULL,
		"extra header on every request to the server (repeatable)", "Requests" },
	[O_CONNECT_TIMEOUT] = { "connect-timeout", required_argument, 0, 0, "S", "10", "seconds to connect", NULL },
	[O_IDLE_TIMEOUT] = { "idle-timeout", required_argument, 0, 0, "S", "60",
		"abort a transfer that moves no data for this long (there is no total timeout)", NULL },
	[O_CA_FILE] = { "ca-file", required_argument, 0, 0, "FILE", "system CAs", "CA bundle for TLS", NULL },
	[O_INSECURE] = { "insecure", no_argument, 0, 0, NULL, NULL, "do not verify TLS certificates", NULL },
	[O_PROXY] = { "proxy", required_argument, 0, 0, "URL", "$https_proxy etc.", "proxy for every request", NULL },
	[O_USER_AGENT] = { "user-agent", required_argument, 0, 0, "UA", BD_PROG "/" BD_VERSION, "User-Agent", NULL },
	[O_PARALLEL] = { "parallel", required_argument, 0, 0, "N", "4", "parallel downloads", NULL },
	[O_RETRIES] = { "retries", required_argument, 0, 0, "N", "3",
		"retries of a request (connection errors, 429, 5xx, cut bodies)", NULL },
	[O_POLL_MAX_WAIT] = { "poll-max-wait", required_argument, 0, 0, "S", "60",
		"longest single wait between status polls", NULL },
	[O_DEADLINE] = { "deadline", required_argument, 0, 0, "S", "86400", "give up after this many seconds (0: never)", NULL },

	[O_REPORTER] = { "reporter", required_argument, 0, 0, "cli|text|json", "cli on a terminal, else text",
		"progress output on stdout", "Reporting" },
	[O_LOG_FILE] = { "log-file", required_argument, 0, 0, "FILE", NULL,
		"append NDJSON export events (kickoff, status_progress, download_complete, ...)", NULL },
	[O_CANCEL_ON_INTERRUPT] = { "cancel-on-interrupt", required_argument, 0, 0, "ask|yes|no",
		"ask on a terminal, else no", "on Ctrl-C, send DELETE to the server's status URL", NULL },
	[O_VERBOSE] = { "verbose", no_argument, 0, 'v', NULL, NULL, "engine diagnostics on stderr", NULL },
	[O_CONFIG] = { "config", required_argument, 0, 0, "FILE", NULL,
		"JSON object of options by long name, e.g. {\"fhir-url\":\"...\",\"type\":[\"Patient\"]}", NULL },
	[O_HELP] = { "help", no_argument, 0, 'h', NULL, NULL, "this help", NULL },
};

#define LONG_BASE 1000

static void list_clear(struct opt_store *st, enum opt_id id)
{
	for (size_t i = 0; i < st->nlist[id]; i++)
		free(st->list[id][i]);
	free(st->list[id]);
	st->list[id] = NULL;
	st->nlist[id] = 0;
}

static void list_add1(struct opt_store *st, enum opt_id id, const char *v, size_t n)
{
	char **l = realloc(st->list[id], (st->nlist[id] + 2) * sizeof *l);

	if (!l)
		abort();   /* start-up only: nothing to clean up */
	st->list[id] = l;
	l[st->nlist[id]] = strndup(v, n);
	if (!l[st->nlist[id]])
		abort();
	l[++st->nlist[id]] = NULL;
}

static void list_add(struct opt_store *st, enum opt_id id, const char *v)
{
	const char *p = v, *c;

	if (!(DEFS[id].flags & OF_COMMA)) {
		list_add1(st, id, v, strlen(v));
		return;
	}
	for (;;) {
		size_t n;

		c = strchr(p, ',');
		n = c ? (size_t)(c - p) : strlen(p);
		while (n && (*p == ' ' || *p == '\t')) {
			p++;
			n--;
		}
		while (n && (p[n - 1] == ' ' || p[n - 1] == '\t'))
			n--;
		if (n)
			list_add1(st, id, p, n);
		if (!c)
			break;
		p = c + 1;
	}
}

/* Stores one value; from_cli lists replace what the config file gave. */
static void apply(struct opt_store *st, enum opt_id id, const char *v, int from_cli)
{
	if (DEFS[id].flags & OF_LIST) {
		if (from_cli && !st->from_cli[id]) {
			list_clear(st, id);
			st->from_cli[id] = 1;
		}
		list_add(st, id, v);
		return;
	}
	free(st->val[id]);
	st->val[id] = v ? strdup(v) : NULL;
}

static int find_def(const char *name)
{
	for (int i = 0; i < O_COUNT; i++)
		if (!strcmp(DEFS[i].name, name))
			return i;
	return -1;
}

/* A scalar JSON value as option text (malloc'd) or NULL when it is not one. */
static char *scalar_text(json_object *v)
{
	switch (json_object_get_type(v)) {
	case json_type_string:
		return strdup(json_object_get_string(v));
	case json_type_int:
	case json_type_double:
		return strdup(json_object_to_json_string_ext(v, JSON_C_TO_STRING_PLAIN));
	default:
		return NULL;
	}
}

static int load_config(struct opt_store *st, const char *path, char **err)
{
	enum json_tokener_error jerr = json_tokener_success;
	json_object *doc = NULL;
	char *text = buf_read_file(path, err), *s = NULL;
	int ret = -1;

	if (!text)
		goto out;
	doc = json_tokener_parse_verbose(text, &jerr);
	if (!doc || !json_object_is_type(doc, json_type_object)) {
		err_set(err, "config %s: %s", path,
			doc ? "must be a JSON object of options" : json_tokener_error_desc(jerr));
		goto out;
	}
	json_object_object_foreach(doc, key, val) {
		int id = find_def(key);
		const struct opt_def *d;

		if (id < 0 || id == O_CONFIG || id == O_HELP) {
			err_set(err, "config %s: unknown option \"%s\"", path, key);
			goto out;
		}
		d = &DEFS[id];
		if (!val)
			continue;   /* null: leave unset */
		if (d->has_arg == no_argument) {
			if (!json_object_is_type(val, json_type_boolean)) {
				err_set(err, "config %s: \"%s\" must be true or false", path, key);
				goto out;
			}
			apply(st, id, json_object_get_boolean(val) ? "1" : NULL, 0);
			continue;
		}
		if (json_object_is_type(val, json_type_array)) {
			if (!(d->flags & OF_LIST)) {
				err_set(err, "config %s: \"%s\" takes one value, not a list", path, key);
				goto out;
			}
			for (size_t i = 0; i < json_object_array_length(val); i++) {
				s = scalar_text(json_object_array_get_idx(val, i));
				if (!s) {
					err_set(err, "config %s: \"%s\"[%zu] must be a string or number", path, key, i);
					goto out;
				}
				apply(st, id, s, 0);
				free(s);
				s = NULL;
			}
			continue;
		}
		s = scalar_text(val);
		if (!s) {
			err_set(err, "config %s: \"%s\" must be a string or number%s", path, key,
				d->flags & OF_LIST ? " (or a list of them)" : "");
			goto out;
		}
		apply(st, id, s, 0);
		free(s);
		s = NULL;
	}
	ret = 0;
out:
	free(s);
	free(text);
	json_object_put(doc);
	return ret;
}

/* getopt tables from DEFS (longs: static storage, start-up only). */
static const struct option *long_opts(void)
{
	static struct option lo[O_COUNT + 1];

	for (int i = 0; i < O_COUNT; i++) {
		lo[i].name = DEFS[i].name;
		lo[i].has_arg = DEFS[i].has_arg;
		lo[i].flag = NULL;
		lo[i].val = LONG_BASE + i;
	}
	memset(&lo[O_COUNT], 0, sizeof lo[O_COUNT]);
	return lo;
}

static int short_id(int c)
{
	for (int i = 0; i < O_COUNT; i++)
		if (DEFS[i].shortc && DEFS[i].shortc == c)
			return i;
	return -1;
}

int opts_parse(struct opt_store *st, int argc, char **argv, char **err)
{
	const struct option *lo = long_opts();
	const char *config = NULL;
	int c, id;

	memset(st, 0, sizeof *st);
	/* pass 1: --help and --config only, so the command line can override the file */
	opterr = 0;
	optind = 0;
	while ((c = getopt_long(argc, argv, ":H:vh", lo, NULL)) != -1) {
		id = c >= LONG_BASE ? c - LONG_BASE : short_id(c);
		if (id == O_HELP) {
			opts_usage(stdout);
			return 1;
		}
		if (id == O_CONFIG)
			config = optarg;
	}
	if (config && load_config(st, config, err) < 0)
		return -1;
	/* pass 2: everything, in order */
	optind = 0;
	while ((c = getopt_long(argc, argv, ":H:vh", lo, NULL)) != -1) {
		if (c == '?') {
			if (optopt >= LONG_BASE)
				err_set(err, "option --%s takes no value", DEFS[optopt - LONG_BASE].name);
			else if (optopt)
				err_set(err, "unknown option -%c", optopt);
			else
				err_set(err, "unknown option %s", argv[optind - 1]);
			return -1;
		}
		if (c == ':') {
			err_set(err, "option %s needs a value", argv[optind - 1]);
			return -1;
		}
		id = c >= LONG_BASE ? c - LONG_BASE : short_id(c);
		if (id < 0 || id == O_CONFIG)
			continue;
		apply(st, id, DEFS[id].has_arg == no_argument ? "1" : optarg, 1);
	}
	if (optind < argc) {
		err_set(err, "unexpected argument \"%s\"", argv[optind]);
		return -1;
	}
	return 0;
}

void opts_free(struct opt_store *st)
{
	for (int i = 0; i < O_COUNT; i++) {
		free(st->val[i]);
		list_clear(st, i);
	}
	memset(st, 0, sizeof *st);
}

const char *opt_str(const struct opt_store *st, enum opt_id id)
{
	return st->val[id];
}

const char *const *opt_list(const struct opt_store *st, enum opt_id id)
{
	return (const char *const *)st->list[id];
}

size_t opt_count(const struct opt_store *st, enum opt_id id)
{
	return st->nlist[id];
}

int opt_flag(const struct opt_store *st, enum opt_id id)
{
	return st->val[id] != NULL;
}

const char *opt_name(enum opt_id id)
{
	return DEFS[id].name;
}

const char *opt_default(enum opt_id id)
{
	return DEFS[id].deflt;
}

int opt_long(const struct opt_store *st, enum opt_id id, long long min, long long max,
	     long long *out, char **err)
{
	const char *s = st->val[id] ? st->val[id] : DEFS[id].deflt;
	char *end;
	long long v;

	if (!s) {
		err_set(err, "--%s needs a value", DEFS[id].name);
		return -1;
	}
	errno = 0;
	v = strtoll(s, &end, 10);
	if (errno || end == s || *end || v < min || v > max) {
		err_set(err, "--%s must be a whole number from %lld to %lld, not \"%s\"", DEFS[id].name, min, max, s);
		return -1;
	}
	*out = v;
	return 0;
}

/* Help text and default from column 41, wrapped before column 100. */
static void wrap(FILE *f, const char *help, const char *deflt)
{
	enum { INDENT = 41, WIDTH = 100 };
	char text[512];
	const char *p = text;
	int col = INDENT;

	if (deflt)
		snprintf(text, sizeof text, "%s [default: %s]", help, deflt);
	else
		snprintf(text, sizeof text, "%s", help);
	while (*p) {
		size_t n = strcspn(p, " ");

		if (col > INDENT && col + 1 + (int)n > WIDTH) {
			fprintf(f, "\n%*s", INDENT - 1, "");
			col = INDENT;
		}
		fprintf(f, " %.*s", (int)n, p);
		col += 1 + (int)n;
		p += n;
		while (*p == ' ')
			p++;
	}
	fputc('\n', f);
}

void opts_usage(FILE *f)
{
	fprintf(f,
		"usage: " BD_PROG " --fhir-url URL [options]      start an export and download it\n"
		"       " BD_PROG " --status URL [options]        download an export already started\n"
		"\n"
		"Downloads a FHIR Bulk Data export to a folder, S3, an HTTP endpoint or nowhere,\n"
		"validating every line.  Exit status: 0 done, 1 export or file failures,\n"
		"2 bad options, 130 interrupted.\n");
	for (int i = 0; i < O_COUNT; i++) {
		const struct opt_def *d = &DEFS[i];
		char left[64];

		if (d->section)
			fprintf(f, "\n%s:\n", d->section);
		if (d->shortc)
			snprintf(left, sizeof left, "-%c, --%s%s%s", d->shortc, d->name, d->metavar ? " " : "",
				 d->metavar ? d->metavar : "");
		else
			snprintf(left, sizeof left, "    --%s%s%s", d->name, d->metavar ? " " : "",
				 d->metavar ? d->metavar : "");
		fprintf(f, "  %-38s", left);
		wrap(f, d->help, d->deflt);
	}
	fprintf(f,
		"\nExamples:\n"
		"  " BD_PROG " --fhir-url https://bulk-data.smarthealthit.org/fhir --type Patient,Condition\n"
		"  " BD_PROG " --fhir-url https://ehr.example/fhir --group 42 --client-id ID --private-key key.jwk \\\n"
		"            --destination s3://bucket/exports --save-manifest --log-file export.log\n");
}
