/* `--reporter json`: one JSON object per line on stdout, in the log file's
 * envelope {exportId, timestamp, eventId, eventDetail}.  The engine's log
 * events (kickoff, status_progress, ..., export_complete) appear as they
 * are, plus "start", "progress" (export phase on each poll, download phase
 * at most once a second and after each file), "issue", "notice" and a last
 * "summary". */
#include "bulk_data.h"
#include <stdlib.h>
#include <string.h>

struct json_state {
	double last_progress;
};

static void put(struct reporter *r, struct bd *b, const char *event, json_object *details)
{
	json_object *o = bd_envelope(b->export_id, event, details);

	fprintf(r->out, "%s\n", json_object_to_json_string_ext(o, JSON_C_TO_STRING_PLAIN | JSON_C_TO_STRING_NOSLASHESCAPE));
	fflush(r->out);
	json_object_put(o);
}

static void download_progress(struct reporter *r, struct bd *b)
{
	json_object *d = json_object_new_object();
	double el = bd_now() - b->t_download, frac = bd_fraction(b), eta = bd_eta(b);

	json_object_object_add(d, "phase", json_object_new_string("download"));
	json_object_object_add(d, "filesTotal", json_object_new_int(b->nfiles));
	json_object_object_add(d, "filesDone", json_object_new_int(b->files_done));
	json_object_object_add(d, "filesFailed", json_object_new_int(b->files_failed));
	json_object_object_add(d, "filesSkipped", json_object_new_int(b->files_skipped));
	json_object_object_add(d, "filesActive", json_object_new_int(b->files_active));
	json_object_object_add(d, "resources", json_object_new_int64(b->resources));
	if (b->expected > 0)
		json_object_object_add(d, "resourcesExpected", json_object_new_int64(b->expected));
	json_object_object_add(d, "bytes", json_object_new_int64(b->bytes));
	json_object_object_add(d, "bytesPerSecond", json_object_new_int64(el > 0 ? (int64_t)((double)b->bytes / el) : 0));
	json_object_object_add(d, "percent", json_object_new_int(frac < 0 ? 0 : (int)(frac * 100 + 1e-9)));
	if (eta >= 0)
		json_object_object_add(d, "etaSeconds", json_object_new_int64((int64_t)(eta + 0.5)));
	put(r, b, "progress", d);
	json_object_put(d);
}

static void json_handle(struct reporter *r, struct bd *b, enum bd_ev ev, const void *arg)
{
	struct json_state *s = r->state;
	const struct bd_log_event *le = arg;
	const struct export_issue *iss = arg;
	json_object *d = NULL;
	double now;

	switch (ev) {
	case EV_START:
		put(r, b, "start", b->start_info);
		break;
	case EV_STATUS:
		d = json_object_new_object();
		json_object_object_add(d, "phase", json_object_new_string("export"));
		if (arg)
			json_object_object_add(d, "xProgress", json_object_new_string(arg));
		json_object_object_add(d, "polls", json_object_new_int(b->polls));
		json_object_object_add(d, "elapsedSeconds", bd_json_seconds(bd_now() - b->t_start));
		put(r, b, "progress", d);
		break;
	case EV_FILE_PROGRESS:
		now = bd_now();
		if (now - s->last_progress < 1)
			break;
		s->last_progress = now;
		download_progress(r, b);
		break;
	case EV_FILE_DONE:
		s->last_progress = bd_now();
		download_progress(r, b);
		break;
	case EV_ISSUE:
		d = json_object_new_object();
		json_object_object_add(d, "severity", json_object_new_string(iss->severity ? iss->severity : "error"));
		json_object_object_add(d, "code", json_object_new_string(iss->code ? iss->code : "exception"));
		if (iss->file) {
			json_object_object_add(d, "fileUrl", json_object_new_string(iss->file->url ? iss->file->url : ""));
			if (iss->file->type)
				json_object_object_add(d, "type", json_object_new_string(iss->file->type));
		}
		if (iss->line > 0)
			json_object_object_add(d, "line", json_object_new_int64(iss->line));
		json_object_object_add(d, "message", json_object_new_string(iss->message ? iss->message : ""));
		put(r, b, "issue", d);
		break;
	case EV_LOG:
		put(r, b, le->event, le->details);
		break;
	case EV_NOTICE:
		d = json_object_new_object();
		json_object_object_add(d, "message", json_object_new_string(arg));
		put(r, b, "notice", d);
		break;
	case EV_FINISH:
		d = bd_summary_json(b, arg);
		put(r, b, "summary", d);
		break;
	default:
		break;
	}
	json_object_put(d);
}

static void json_destroy(struct reporter *r)
{
	free(r->state);
}

struct reporter *reporter_json_new(FILE *out)
{
	struct reporter *r = calloc(1, sizeof *r);

	if (!r)
		return NULL;
	r->handle = json_handle;
	r->destroy = json_destroy;
	r->out = out;
	r->state = calloc(1, sizeof(struct json_state));
	if (!r->state) {
		free(r);
		return NULL;
	}
	return r;
}
