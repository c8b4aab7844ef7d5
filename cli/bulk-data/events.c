/* The run context of `bulk-data`: receives the engine's events, keeps the
 * counts the reporters draw, forwards log events to the log file, turns
 * Ctrl-C into a stop decision, and writes the exit summary. */
#include "bulk_data.h"
#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

static volatile sig_atomic_t g_signals, g_last_signal;

static void on_signal(int sig)
{
	/* only a flag: should_stop turns it into a decision.  A third signal
	 * means the user really wants out now. */
	g_last_signal = sig;
	if (++g_signals >= 3) {
		signal(sig, SIG_DFL);
		raise(sig);
	}
}

void bd_signals_install(void)
{
	struct sigaction sa;

	memset(&sa, 0, sizeof sa);
	sa.sa_handler = on_signal;
	sigemptyset(&sa.sa_mask);
	sa.sa_flags = 0;   /* no SA_RESTART: a second Ctrl-C interrupts the prompt's read */
	sigaction(SIGINT, &sa, NULL);
	sigaction(SIGTERM, &sa, NULL);
}

double bd_now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

void bd_init(struct bd *b)
{
	memset(b, 0, sizeof *b);
	b->t_start = bd_now();
	b->expected = -1;
}

void bd_free(struct bd *b)
{
	for (int i = 0; i < b->nfiles; i++) {
		free(b->files[i].kind);
		free(b->files[i].type);
		free(b->files[i].url);
		free(b->files[i].name);
		free(b->files[i].reason);
	}
	free(b->files);
	free(b->status_url);
	free(b->x_progress);
	b->files = NULL;
	b->status_url = b->x_progress = NULL;
}

static void emit(struct bd *b, enum bd_ev ev, const void *arg)
{
	if (b->rep)
		b->rep->handle(b->rep, b, ev, arg);
}

void bd_notice(struct bd *b, const char *fmt, ...)
{
	va_list ap;
	char *msg = NULL;

	va_start(ap, fmt);
	if (vasprintf(&msg, fmt, ap) < 0)
		msg = NULL;
	va_end(ap);
	if (msg)
		emit(b, EV_NOTICE, msg);
	free(msg);
}

/* ---- formatting ---------------------------------------------------------- */

const char *bd_fmt_bytes(double n, char *buf, size_t len)
{
	static const char *const units[] = { "KiB", "MiB", "GiB", "TiB" };
	int u = -1;

	if (n < 1024) {
		snprintf(buf, len, "%.0f B", n);
		return buf;
	}
	while (n >= 1024 && u < 3) {
		n /= 1024;
		u++;
	}
	snprintf(buf, len, "%.1f %s", n, units[u]);
	return buf;
}

const char *bd_fmt_duration(double secs, char *buf, size_t len)
{
	long s = secs < 0 ? 0 : (long)(secs + 0.5);

	if (s >= 3600)
		snprintf(buf, len, "%ld:%02ld:%02ld", s / 3600, s / 60 % 60, s % 60);
	else
		snprintf(buf, len, "%ld:%02ld", s / 60, s % 60);
	return buf;
}

const char *bd_timestamp(char *buf, size_t len)
{
	struct timeval tv;
	struct tm tm;
	char base[24];

	gettimeofday(&tv, NULL);
	gmtime_r(&tv.tv_sec, &tm);
	strftime(base, sizeof base, "%Y-%m-%dT%H:%M:%S", &tm);
	snprintf(buf, len, "%s.%03dZ", base, (int)(tv.tv_usec / 1000));
	return buf;
}

/* Server text for a terminal: control characters (escape sequences) become '?'.
 * Returns a malloc'd copy. */
static char *clean_dup(const char *s)
{
	char *c = strdup(s ? s : "");

	for (char *p = c; p && *p; p++)
		if ((unsigned char)*p < 0x20 || *p == 0x7f)
			*p = '?';
	return c;
}

/* ---- progress ------------------------------------------------------------ */

static struct bd_file *find_file(struct bd *b, int seq)
{
	if (seq >= 1 && seq <= b->nfiles && b->files[seq - 1].seq == seq)
		return &b->files[seq - 1];
	for (int i = 0; i < b->nfiles; i++)
		if (b->files[i].seq == seq)
			return &b->files[i];
	return NULL;
}

static void tally(struct bd *b)
{
	b->resources = b->bytes = 0;
	b->files_done = b->files_failed = b->files_skipped = b->files_active = 0;
	for (int i = 0; i < b->nfiles; i++) {
		const struct bd_file *f = &b->files[i];

		b->resources += f->lines;
		b->bytes += f->bytes;
		switch (f->state) {
		case BF_DONE: b->files_done++; break;
		case BF_FAILED: b->files_failed++; break;
		case BF_SKIPPED: b->files_skipped++; break;
		case BF_ACTIVE: b->files_active++; break;
		default: break;
		}
	}
}

double bd_fraction(const struct bd *b)
{
	double got = 0;

	if (b->t_download <= 0)
		return -1;
	if (!b->nfiles)
		return 1;
	if (b->expected > 0) {
		for (int i = 0; i < b->nfiles; i++) {
			const struct bd_file *f = &b->files[i];

			if (f->state == BF_FAILED || f->state == BF_SKIPPED || f->state == BF_DONE)
				got += (double)f->count;   /* finished: its share is done */
			else
				got += (double)(f->lines < f->count ? f->lines : f->count);
		}
		return got / (double)b->expected;
	}
	return (double)(b->files_done + b->files_failed + b->files_skipped) / b->nfiles;
}

double bd_eta(const struct bd *b)
{
	double f = bd_fraction(b), el;

	if (f <= 0.001 || f >= 1 || b->t_download <= 0)
		return -1;
	el = bd_now() - b->t_download;
	if (el < 1)
		return -1;
	return el * (1 - f) / f;
}

const char *issue_file(const struct export_issue *iss)
{
	if (!iss->file)
		return "";
	if (iss->file->dest_name && *iss->file->dest_name)
		return iss->file->dest_name;
	return iss->file->url ? iss->file->url : "";
}

/* ---- engine callbacks ---------------------------------------------------- */

static void ev_kickoff(void *ctx, const char *status_url)
{
	struct bd *b = ctx;

	free(b->status_url);
	b->status_url = clean_dup(status_url);
	emit(b, EV_KICKOFF, b->status_url);
}

static void ev_status(void *ctx, const char *x_progress)
{
	struct bd *b = ctx;

	b->polls++;
	free(b->x_progress);
	b->x_progress = x_progress ? clean_dup(x_progress) : NULL;
	emit(b, EV_STATUS, b->x_progress);
}

/* A manifest page: its files start downloading while later pages are
 * still produced, so the list grows page by page. */
static void ev_files_added(void *ctx, struct export_file *files, int first, int n)
{
	struct bd *b = ctx;
	struct bd_file *grown = realloc(b->files, (size_t)(b->nfiles + n + 1) * sizeof *b->files);

	if (!grown)
		return;
	b->files = grown;
	memset(b->files + b->nfiles, 0, (size_t)(n + 1) * sizeof *b->files);
	for (int i = first; i < first + n; i++) {
		struct bd_file *f = &b->files[b->nfiles++];

		f->seq = files[i].seq;
		f->kind = clean_dup(files[i].kind ? files[i].kind : "output");
		f->type = clean_dup(files[i].type);
		f->url = clean_dup(files[i].url);
		f->name = files[i].dest_name ? clean_dup(files[i].dest_name) : NULL;
		f->count = files[i].manifest_count;
		f->state = BF_WAITING;
	}
	if (!b->t_download)
		b->t_download = bd_now();
	tally(b);
}

/* The last page is in: totals for the ETA, and the manifest event. */
static void ev_manifest(void *ctx, json_object *manifest, struct export_file *files, int nfiles)
{
	struct bd *b = ctx;
	long long expected = 0;

	(void)files;
	for (int i = 0; i < b->nfiles && expected >= 0; i++)
		expected = b->files[i].count >= 0 ? expected + b->files[i].count : -1;
	b->expected = nfiles && expected > 0 ? expected : -1;
	tally(b);
	emit(b, EV_MANIFEST, manifest);
}

static void copy_progress(struct bd_file *bf, const struct export_file *f)
{
	bf->lines = f->lines > 0 ? f->lines : 0;
	bf->bytes = f->bytes > 0 ? f->bytes : 0;
	if (f->dest_name && (!bf->name || strcmp(bf->name, f->dest_name))) {
		free(bf->name);
		bf->name = clean_dup(f->dest_name);
	}
}

static void ev_file_start(void *ctx, struct export_file *f)
{
	struct bd *b = ctx;
	struct bd_file *bf = find_file(b, f->seq);

	if (!bf)
		return;
	bf->state = BF_ACTIVE;
	copy_progress(bf, f);
	tally(b);
	emit(b, EV_FILE_START, bf);
}

static void ev_file_progress(void *ctx, struct export_file *f)
{
	struct bd *b = ctx;
	struct bd_file *bf = find_file(b, f->seq);

	if (!bf)
		return;
	copy_progress(bf, f);
	tally(b);
	emit(b, EV_FILE_PROGRESS, bf);
}

static void ev_file_done(void *ctx, struct export_file *f, int ok)
{
	struct bd *b = ctx;
	struct bd_file *bf = find_file(b, f->seq);

	if (!bf)
		return;
	copy_progress(bf, f);
	memcpy(bf->sha256, f->sha256, sizeof bf->sha256);
	bf->sha256[sizeof bf->sha256 - 1] = '\0';
	bf->state = ok ? BF_DONE : BF_FAILED;
	if (!ok && !bf->reason)
		bf->reason = strdup("download failed");
	tally(b);
	emit(b, EV_FILE_DONE, bf);
}

static void ev_issue(void *ctx, const struct export_issue *iss)
{
	struct bd *b = ctx;
	struct bd_file *bf = iss->file ? find_file(b, iss->file->seq) : NULL;

	b->issues++;
	if (bf && !bf->reason && iss->severity && !strcmp(iss->severity, "error")) {
		if (iss->line > 0) {
			if (asprintf(&bf->reason, "line %lld: %s", iss->line, iss->message ? iss->message : "invalid") < 0)
				bf->reason = NULL;
		} else {
			bf->reason = strdup(iss->message ? iss->message : "error");
		}
	}
	emit(b, EV_ISSUE, iss);
}

/* Asks on the terminal; EXPORT_STOP_CANCEL for yes.  Reads /dev/tty so
 * piped stdin does not answer for the user. */
static int ask_delete(struct bd *b)
{
	char ans[16] = "";
	char *q = NULL;
	ssize_t n;
	int fd, rc = EXPORT_STOP_ABANDON;

	emit(b, EV_PROMPT, NULL);
	fd = open("/dev/tty", O_RDWR | O_CLOEXEC | O_NOCTTY);
	if (fd < 0)
		return rc;
	if (asprintf(&q, "\nInterrupted. Delete the export at the server (%s)? [y/N] ", b->status_url) < 0)
		q = NULL;
	if (q && write(fd, q, strlen(q)) < 0)
		goto out;
	n = read(fd, ans, sizeof ans - 1);   /* EINTR (another Ctrl-C): no */
	if (n > 0 && (ans[0] == 'y' || ans[0] == 'Y'))
		rc = EXPORT_STOP_CANCEL;
out:
	free(q);
	close(fd);
	return rc;
}

static int ev_should_stop(void *ctx)
{
	struct bd *b = ctx;

	if (!g_signals || b->stop)
		return b->stop;
	b->interrupted = 1;
	switch (b->cancel) {
	case BD_CANCEL_YES:
		b->stop = EXPORT_STOP_CANCEL;
		break;
	case BD_CANCEL_NO:
		b->stop = EXPORT_STOP_ABANDON;
		break;
	default:
		/* nothing to delete before the kick-off answered; SIGTERM comes
		 * from a program, not from someone who could answer */
		b->stop = b->status_url && g_last_signal != SIGTERM ? ask_delete(b) : EXPORT_STOP_ABANDON;
		break;
	}
	bd_notice(b, b->stop == EXPORT_STOP_CANCEL ? "interrupted: stopping and deleting the export at the server"
						 : "interrupted: stopping (the export stays at the server)");
	return b->stop;
}

static void ev_log(void *ctx, const char *event, json_object *details)
{
	struct bd *b = ctx;
	struct bd_log_event le = { event, details };

	if (b->log)
		log_file_event(b->log, event, details);
	emit(b, EV_LOG, &le);
}

const struct export_events bd_events = {
	.on_kickoff = ev_kickoff,
	.on_status = ev_status,
	.on_manifest = ev_manifest,
	.on_files_added = ev_files_added,
	.on_file_start = ev_file_start,
	.on_file_progress = ev_file_progress,
	.on_file_done = ev_file_done,
	.on_issue = ev_issue,
	.should_stop = ev_should_stop,
	.on_log = ev_log,
};

/* ---- secrets --------------------------------------------------------------- */

static int sensitive_key(const char *k)
{
	static const char *const keys[] = {
		"authorization", "proxy-authorization", "access_token", "accesstoken", "refresh_token",
		"id_token", "token", "bearer", "client_assertion", "clientassertion", "assertion",
		"private_key", "privatekey", "password", "secret", "client_secret", "cookie", "set-cookie",
		"x-api-key", "api-key", "apikey", NULL
	};

	for (int i = 0; keys[i]; i++)
		if (!strcasecmp(k, keys[i]))
			return 1;
	return 0;
}

static int b64url_char(int c)
{
	return isalnum(c) || c == '-' || c == '_';
}

static int token_char(int c)
{
	return isalnum(c) || strchr("-._~+/=", c);
}

/* Copy of s with bearer tokens, JWTs, secret query parameters and PEM
 * private keys replaced; NULL when nothing had to change. */
static char *scrub_string(const char *s)
{
	static const char *const qnames[] = { "access_token=", "client_assertion=", "token=", NULL };
	const char *p = s;
	char *out;
	size_t o = 0, len = strlen(s);
	int changed = 0;

	if (strstr(s, "PRIVATE KEY-----"))
		return strdup("[redacted]");
	if (!strncasecmp(s, "authorization:", 14) || !strncasecmp(s, "proxy-authorization:", 20)) {
		const char *c = strchr(s, ':');
		if (asprintf(&out, "%.*s: [redacted]", (int)(c - s), s) < 0)
			return NULL;
		return out;
	}
	out = malloc(len * 3 + 16);   /* a replacement turns >= 6 bytes into <= 16 */
	if (!out)
		return NULL;
	while (*p) {
		size_t n = 0;
		int q;

		if (!strncasecmp(p, "bearer ", 7)) {
			memcpy(out + o, p, 7);
			o += 7;
			p += 7;
			while (*p == ' ')
				p++;
			while (token_char((unsigned char)p[n]))
				n++;
			if (n) {
				memcpy(out + o, "[redacted]", 10);
				o += 10;
				p += n;
				changed = 1;
			}
			continue;
		}
		if (!strncmp(p, "eyJ", 3)) {
			/* header.payload.signature, base64url */
			int dots = 0;
			while (b64url_char((unsigned char)p[n]) || (p[n] == '.' && dots < 2 && ++dots))
				n++;
			if (dots == 2 && n >= 20) {
				memcpy(out + o, "[redacted]", 10);
				o += 10;
				p += n;
				changed = 1;
				continue;
			}
			n = 0;
		}
		for (q = 0; qnames[q]; q++) {
			size_t ql = strlen(qnames[q]);
			if ((p == s || p[-1] == '?' || p[-1] == '&' || p[-1] == ' ') && !strncasecmp(p, qnames[q], ql)) {
				memcpy(out + o, p, ql);
				o += ql;
				p += ql;
				while (p[n] && p[n] != '&' && p[n] != ' ' && p[n] != '"')
					n++;
				memcpy(out + o, "[redacted]", 10);
				o += 10;
				p += n;
				changed = 1;
				break;
			}
		}
		if (qnames[q])
			continue;
		out[o++] = *p++;
	}
	out[o] = '\0';
	if (!changed) {
		free(out);
		return NULL;
	}
	return out;
}

static void scrub_in_place(json_object *j)
{
	switch (json_object_get_type(j)) {
	case json_type_object: {
		int jwk = json_object_object_get_ex(j, "kty", NULL);

		json_object_object_foreach(j, key, val) {
			if (sensitive_key(key) ||
			    (jwk && (!strcmp(key, "d") || !strcmp(key, "p") || !strcmp(key, "q") || !strcmp(key, "dp") ||
				     !strcmp(key, "dq") || !strcmp(key, "qi") || !strcmp(key, "k")))) {
				if (val)
					json_object_object_add(j, key, json_object_new_string("[redacted]"));
				continue;
			}
			scrub_in_place(val);
		}
		break;
	}
	case json_type_array:
		for (size_t i = 0; i < json_object_array_length(j); i++)
			scrub_in_place(json_object_array_get_idx(j, i));
		break;
	case json_type_string: {
		char *s = scrub_string(json_object_get_string(j));

		if (s)
			json_object_set_string(j, s);
		free(s);
		break;
	}
	default:
		break;
	}
}

json_object *bd_scrub(json_object *j)
{
	json_object *copy = NULL;

	if (!j)
		return NULL;
	if (json_object_deep_copy(j, &copy, NULL) < 0)
		return json_object_new_string("[details could not be copied]");
	scrub_in_place(copy);
	return copy;
}

char *bd_scrub_header(const char *h)
{
	const char *c = strchr(h, ':');
	char name[128];
	char *out = NULL;
	size_t n;

	if (!c)
		return strdup("[redacted]");
	n = (size_t)(c - h) < sizeof name - 1 ? (size_t)(c - h) : sizeof name - 1;
	memcpy(name, h, n);
	name[n] = '\0';
	if (sensitive_key(name) || strcasestr(name, "token") || strcasestr(name, "secret") ||
	    strcasestr(name, "auth") || strcasestr(name, "key") || strcasestr(name, "cookie")) {
		if (asprintf(&out, "%s: [redacted]", name) < 0)
			out = NULL;
		return out;
	}
	out = scrub_string(h);
	return out ? out : strdup(h);
}

json_object *bd_json_seconds(double secs)
{
	char s[32];

	snprintf(s, sizeof s, "%.3f", secs);
	return json_object_new_double_s(secs, s);
}

json_object *bd_envelope(const char *export_id, const char *event, json_object *details)
{
	json_object *o = json_object_new_object();
	char ts[40];

	json_object_object_add(o, "exportId", json_object_new_string(export_id ? export_id : ""));
	json_object_object_add(o, "timestamp", json_object_new_string(bd_timestamp(ts, sizeof ts)));
	json_object_object_add(o, "eventId", json_object_new_string(event));
	json_object_object_add(o, "eventDetail", details ? bd_scrub(details) : json_object_new_object());
	return o;
}

/* ---- summary --------------------------------------------------------------- */

static const char *outcome(const struct bd *b, const struct export_result *res, int rc_ok)
{
	if (b->interrupted || res->cancelled)
		return "interrupted";
	if (!rc_ok)
		return "failed";
	return b->files_failed || res->files_failed ? "partial" : "complete";
}

void bd_print_summary(const struct bd *b, const struct export_result *res, FILE *f)
{
	const char *oc = outcome(b, res, res->ok);
	char t[32], by[32];
	int shown = 0;

	if (!strcmp(oc, "complete"))
		fprintf(f, "Export complete: every file stored.\n");
	else if (!strcmp(oc, "partial"))
		fprintf(f, "Export finished, but %d of %d files failed.\n", b->files_failed, b->nfiles);
	else if (!strcmp(oc, "interrupted"))
		fprintf(f, "Export interrupted%s.\n", b->stop == EXPORT_STOP_CANCEL ? "; the export was deleted at the server"
					     : b->status_url ? "; the export was left at the server" : "");
	else
		fprintf(f, "Export failed: %s\n", res->error_message ? res->error_message : "unknown error");
	fprintf(f, "  files:       %d stored, %d failed", b->files_done, b->files_failed);
	if (b->files_skipped)
		fprintf(f, ", %d already there", b->files_skipped);
	fprintf(f, " (of %d)\n", b->nfiles);
	fprintf(f, "  resources:   %lld\n", b->resources);
	fprintf(f, "  bytes:       %lld (%s)\n", b->bytes, bd_fmt_bytes((double)b->bytes, by, sizeof by));
	fprintf(f, "  duration:    %s\n", bd_fmt_duration(bd_now() - b->t_start, t, sizeof t));
	fprintf(f, "  destination: %s\n", b->destination ? b->destination : "");
	if (res->transaction_time)
		fprintf(f, "  transactionTime: %s\n", res->transaction_time);
	if (!strcmp(oc, "interrupted") && b->stop != EXPORT_STOP_CANCEL && b->status_url) {
		if (b->resume)
			fprintf(f, "  continue with: the same command (the state is in the destination), or\n"
				   "                 " BD_PROG " --status '%s' --resume [same destination]\n", b->status_url);
		else
			fprintf(f, "  continue with: " BD_PROG " --status '%s' [same options]\n", b->status_url);
	}
	for (int i = 0; i < b->nfiles; i++) {
		const struct bd_file *bf = &b->files[i];

		if (bf->state != BF_FAILED)
			continue;
		if (!shown++)
			fprintf(f, "Failed files:\n");
		fprintf(f, "  %s (%s %s): %s\n", bf->name ? bf->name : "(not stored)", bf->type, bf->url,
			bf->reason ? bf->reason : "failed");
	}
}

json_object *bd_summary_json(const struct bd *b, const struct export_result *res)
{
	json_object *o = json_object_new_object(), *files = json_object_new_object(), *failed = json_object_new_array();

	json_object_object_add(o, "outcome", json_object_new_string(outcome(b, res, res->ok)));
	json_object_object_add(files, "total", json_object_new_int(b->nfiles));
	json_object_object_add(files, "stored", json_object_new_int(b->files_done));
	json_object_object_add(files, "failed", json_object_new_int(b->files_failed));
	json_object_object_add(files, "skipped", json_object_new_int(b->files_skipped));
	json_object_object_add(o, "files", files);
	json_object_object_add(o, "resources", json_object_new_int64(b->resources));
	json_object_object_add(o, "bytes", json_object_new_int64(b->bytes));
	json_object_object_add(o, "durationSeconds", bd_json_seconds(bd_now() - b->t_start));
	json_object_object_add(o, "destination", json_object_new_string(b->destination ? b->destination : ""));
	if (b->status_url)
		json_object_object_add(o, "statusUrl", json_object_new_string(b->status_url));
	if (res->transaction_time)
		json_object_object_add(o, "transactionTime", json_object_new_string(res->transaction_time));
	if (res->error_message && !res->ok)
		json_object_object_add(o, "error", json_object_new_string(res->error_message));
	if (b->interrupted)
		json_object_object_add(o, "deletedAtServer", json_object_new_boolean(b->stop == EXPORT_STOP_CANCEL));
	for (int i = 0; i < b->nfiles; i++) {
		const struct bd_file *bf = &b->files[i];
		json_object *e;

		if (bf->state != BF_FAILED)
			continue;
		e = json_object_new_object();
		if (bf->name)
			json_object_object_add(e, "name", json_object_new_string(bf->name));
		json_object_object_add(e, "type", json_object_new_string(bf->type));
		json_object_object_add(e, "url", json_object_new_string(bf->url));
		json_object_object_add(e, "reason", json_object_new_string(bf->reason ? bf->reason : "failed"));
		json_object_array_add(failed, e);
	}
	json_object_object_add(o, "failedFiles", failed);
	return o;
}
