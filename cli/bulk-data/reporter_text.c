/* `--reporter text`: plain timestamped lines, one per event and one every
 * 5 % of the download, suitable for log files and CI output.  Also holds
 * the reporter factory. */
#include "bulk_data.h"
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

#define ISSUE_LINES_MAX 200   /* the log file (or json) has them all */

struct text_state {
	int last_step;            /* 5 % steps printed so far */
	int issues_shown;
};

static void line(struct reporter *r, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void line(struct reporter *r, const char *fmt, ...)
{
	char ts[40];
	va_list ap;

	/* seconds are enough here: drop the milliseconds */
	bd_timestamp(ts, sizeof ts);
	memmove(ts + 19, ts + 23, strlen(ts + 23) + 1);
	fprintf(r->out, "%s ", ts);
	va_start(ap, fmt);
	vfprintf(r->out, fmt, ap);
	va_end(ap);
	fputc('\n', r->out);
	fflush(r->out);
}

static void progress_line(struct reporter *r, struct bd *b, double frac)
{
	char by[32], rate[32], eta[32] = "";
	double el = bd_now() - b->t_download, e = bd_eta(b);

	bd_fmt_bytes((double)b->bytes, by, sizeof by);
	bd_fmt_bytes(el > 0 ? (double)b->bytes / el : 0, rate, sizeof rate);
	if (e >= 0) {
		char d[24];
		snprintf(eta, sizeof eta, ", ETA %s", bd_fmt_duration(e, d, sizeof d));
	}
	line(r, "progress %3d%%: %d/%d files, %lld resources, %s, %s/s%s", (int)(frac * 100 + 1e-9),
	     b->files_done + b->files_skipped + b->files_failed, b->nfiles, b->resources, by, rate, eta);
}

static void maybe_progress(struct reporter *r, struct bd *b)
{
	struct text_state *s = r->state;
	double frac = bd_fraction(b);
	int step;

	if (frac < 0)
		return;
	if (frac > 1)
		frac = 1;
	step = (int)(frac * 20 + 1e-9);
	if (step > s->last_step) {
		s->last_step = step;
		progress_line(r, b, frac);
	}
}

static void text_handle(struct reporter *r, struct bd *b, enum bd_ev ev, const void *arg)
{
	struct text_state *s = r->state;
	const struct bd_file *f = arg;
	const struct export_issue *iss = arg;

	switch (ev) {
	case EV_START:
		line(r, "export from %s to %s", b->source ? b->source : "?", b->destination ? b->destination : "?");
		break;
	case EV_KICKOFF:
		line(r, "kick-off accepted; status URL %s", (const char *)arg);
		break;
	case EV_STATUS:
		line(r, "export in progress: %s", arg ? (const char *)arg : "(no X-Progress)");
		break;
	case EV_MANIFEST: {
		int out = 0, del = 0, err = 0;

		for (int i = 0; i < b->nfiles; i++) {
			if (!strcmp(b->files[i].kind, "deleted"))
				del++;
			else if (!strcmp(b->files[i].kind, "error"))
				err++;
			else
				out++;
		}
		line(r, "manifest: %d files (%d output, %d deleted, %d error)%s", b->nfiles, out, del, err,
		     b->files_skipped ? "; some already downloaded" : "");
		if (b->expected > 0)
			line(r, "manifest: %lld resources expected", b->expected);
		break;
	}
	case EV_FILE_PROGRESS:
		maybe_progress(r, b);
		break;
	case EV_FILE_DONE:
		if (f->state == BF_DONE)
			line(r, "stored %s: %lld resources, %lld bytes (%d/%d files)", f->name ? f->name : f->url, f->lines,
			     f->bytes, b->files_done + b->files_skipped + b->files_failed, b->nfiles);
		else if (f->state == BF_FAILED)
			line(r, "FAILED %s (%s): %s", f->name ? f->name : f->type, f->url, f->reason ? f->reason : "failed");
		maybe_progress(r, b);
		break;
	case EV_ISSUE:
		if (s->issues_shown++ >= ISSUE_LINES_MAX) {
			if (s->issues_shown == ISSUE_LINES_MAX + 2)
				line(r, "(more issues are not shown here; use --log-file or --reporter json)");
			break;
		}
		if (iss->file && iss->line > 0)
			line(r, "%s: %s line %lld: %s", iss->severity, issue_file(iss), iss->line, iss->message);
		else if (iss->file)
			line(r, "%s: %s: %s", iss->severity, issue_file(iss), iss->message);
		else
			line(r, "%s: %s", iss->severity, iss->message);
		break;
	case EV_NOTICE:
		line(r, "%s", (const char *)arg);
		break;
	case EV_FINISH:
		bd_print_summary(b, arg, r->out);
		fflush(r->out);
		break;
	default:
		break;
	}
}

static void text_destroy(struct reporter *r)
{
	free(r->state);
}

struct reporter *reporter_text_new(FILE *out)
{
	struct reporter *r = calloc(1, sizeof *r);

	if (!r)
		return NULL;
	r->handle = text_handle;
	r->destroy = text_destroy;
	r->out = out;
	r->state = calloc(1, sizeof(struct text_state));
	if (!r->state) {
		free(r);
		return NULL;
	}
	return r;
}

struct reporter *reporter_new(const char *kind, FILE *out)
{
	if (!strcmp(kind, "cli"))
		return reporter_cli_new(out);
	if (!strcmp(kind, "text"))
		return reporter_text_new(out);
	if (!strcmp(kind, "json"))
		return reporter_json_new(out);
	return NULL;
}

void reporter_free(struct reporter *r)
{
	if (!r)
		return;
	if (r->destroy)
		r->destroy(r);
	free(r);
}
