/* `--reporter cli` (default on a terminal): one status line redrawn in
 * place with \r and ANSI clear-line.  While the server exports it shows
 * X-Progress; during downloads a bar with files, resources, bytes,
 * throughput and ETA.  Lasting messages (kick-off, manifest, failures,
 * issues) are printed above the status line. */
#include "bulk_data.h"
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <unistd.h>

#define REDRAW_EVERY 0.1      /* seconds */
#define ISSUE_LINES_MAX 20    /* a terminal is no place for thousands */
#define BAR_WIDTH 20

struct cli_state {
	int shown;                /* the status line is on screen */
	double last_draw;
	int spin;
	int issues_shown;
};

static int term_width(FILE *out)
{
	struct winsize ws;

	if (ioctl(fileno(out), TIOCGWINSZ, &ws) == 0 && ws.ws_col > 20)
		return ws.ws_col;
	return 80;
}

static void clear_line(struct reporter *r)
{
	struct cli_state *s = r->state;

	if (s->shown) {
		fputs("\r\033[K", r->out);
		s->shown = 0;
	}
}

static void status_text(struct bd *b, struct cli_state *s, char *out, size_t len)
{
	static const char spinner[] = "|/-\\";
	char t[24], by[32], rate[32], eta[24];
	double frac = bd_fraction(b), el, e;
	size_t o;

	if (frac < 0) {
		/* waiting for the server */
		bd_fmt_duration(bd_now() - b->t_start, t, sizeof t);
		if (!b->status_url)
			snprintf(out, len, "%c kick-off  %s elapsed%s", spinner[s->spin++ % 4], t,
				 b->interrupted ? "  (stopping)" : "");
		else
			snprintf(out, len, "%c server exporting: %s  (poll %d, %s elapsed)%s", spinner[s->spin++ % 4],
				 b->x_progress && *b->x_progress ? b->x_progress : "no progress reported", b->polls, t,
				 b->interrupted ? "  (stopping)" : "");
		return;
	}
	if (frac > 1)
		frac = 1;
	el = bd_now() - b->t_download;
	e = bd_eta(b);
	o = 0;
	out[o++] = '[';
	for (int i = 0; i < BAR_WIDTH && o < len - 1; i++)
		out[o++] = i < (int)(frac * BAR_WIDTH + 1e-9) ? '#' : '-';
	out[o] = '\0';
	snprintf(out + o, len - o, "] %3d%%  %d/%d files  %lld resources  %s  %s/s  ETA %s%s", (int)(frac * 100 + 1e-9),
		 b->files_done + b->files_skipped + b->files_failed, b->nfiles, b->resources,
		 bd_fmt_bytes((double)b->bytes, by, sizeof by),
		 bd_fmt_bytes(el > 0 ? (double)b->bytes / el : 0, rate, sizeof rate),
		 e >= 0 ? bd_fmt_duration(e, eta, sizeof eta) : "--:--", b->interrupted ? "  (stopping)" : "");
}

static void draw(struct reporter *r, struct bd *b)
{
	struct cli_state *s = r->state;
	char text[512];
	int w = term_width(r->out);

	status_text(b, s, text, sizeof text);
	if ((int)strlen(text) > w - 1)
		text[w - 1] = '\0';   /* a wrapped line could not be redrawn with \r */
	fprintf(r->out, "\r\033[K%s", text);
	fflush(r->out);
	s->shown = 1;
	s->last_draw = bd_now();
}

static void say(struct reporter *r, struct bd *b, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static void say(struct reporter *r, struct bd *b, const char *fmt, ...)
{
	va_list ap;

	clear_line(r);
	va_start(ap, fmt);
	vfprintf(r->out, fmt, ap);
	va_end(ap);
	fputc('\n', r->out);
	draw(r, b);
}

static void cli_handle(struct reporter *r, struct bd *b, enum bd_ev ev, const void *arg)
{
	struct cli_state *s = r->state;
	const struct bd_file *f = arg;
	const struct export_issue *iss = arg;

	switch (ev) {
	case EV_START:
		say(r, b, "Exporting %s -> %s", b->source ? b->source : "?", b->destination ? b->destination : "?");
		break;
	case EV_KICKOFF:
		say(r, b, "Kick-off accepted; status URL %s", (const char *)arg);
		break;
	case EV_STATUS:
		draw(r, b);
		break;
	case EV_MANIFEST:
		say(r, b, "Manifest: %d files%s", b->nfiles, b->files_skipped ? " (some already downloaded)" : "");
		break;
	case EV_FILE_START:
	case EV_FILE_PROGRESS:
		if (bd_now() - s->last_draw >= REDRAW_EVERY)
			draw(r, b);
		break;
	case EV_FILE_DONE:
		if (f->state == BF_FAILED)
			say(r, b, "FAILED %s (%s): %s", f->name ? f->name : f->type, f->url, f->reason ? f->reason : "failed");
		else
			draw(r, b);
		break;
	case EV_ISSUE:
		if (s->issues_shown++ < ISSUE_LINES_MAX) {
			if (iss->file && iss->line > 0)
				say(r, b, "%s: %s line %lld: %s", iss->severity, issue_file(iss), iss->line, iss->message);
			else if (iss->file)
				say(r, b, "%s: %s: %s", iss->severity, issue_file(iss), iss->message);
			else
				say(r, b, "%s: %s", iss->severity, iss->message);
		} else if (s->issues_shown == ISSUE_LINES_MAX + 1) {
			say(r, b, "(more issues are not shown; use --log-file or --reporter json)");
		}
		break;
	case EV_NOTICE:
		say(r, b, "%s", (const char *)arg);
		break;
	case EV_PROMPT:
		clear_line(r);
		fflush(r->out);
		break;
	case EV_FINISH:
		clear_line(r);
		bd_print_summary(b, arg, r->out);
		fflush(r->out);
		break;
	default:
		break;
	}
}

static void cli_destroy(struct reporter *r)
{
	clear_line(r);
	free(r->state);
}

struct reporter *reporter_cli_new(FILE *out)
{
	struct reporter *r = calloc(1, sizeof *r);

	if (!r)
		return NULL;
	r->handle = cli_handle;
	r->destroy = cli_destroy;
	r->out = out;
	r->state = calloc(1, sizeof(struct cli_state));
	if (!r->state) {
		free(r);
		return NULL;
	}
	return r;
}
