/* Drives one import: reads the import and client rows, runs the export engine
 * (lib/export.h) and records what its callbacks report in PostgreSQL.
 *
 * Fencing: every write to `imports` carries `AND worker_id = <ours>`, and
 * every transaction starts with such an UPDATE (which also row-locks the
 * import), so a worker that lost its lease can never overwrite the work of
 * the worker that took the import over.  State changes also keep a
 * cancellation made by the API (`state` stays 'cancelled').
 *
 * Database writes for progress are throttled to FLUSH_INTERVAL per import;
 * state changes, finished files and outcomes are written at once. */
#include "worker.h"
#include "buf.h"
#include "db.h"
#include "dest.h"
#include "log.h"
#include "strlist.h"
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

#define FLUSH_INTERVAL 0.5      /* seconds between progress writes (2/s) */
#define PROGRESS_MAX   99       /* X-Progress must stay under 100 characters */

enum fstate { F_PENDING, F_DOWNLOADING, F_DONE, F_FAILED };
static const char *const fstate_name[] = { "pending", "downloading", "done", "failed" };

struct wfile {
	int seq;
	char *kind, *type, *url;
	long long lines, bytes;
	char sha256[65];
	char *dest_path;        /* <import id>/<dest name>, relative to storage_dir */
	enum fstate state;
	int dirty;
	long issues;
	char *last_error;
};

struct run {
	struct wslot *slot;
	const struct config *cfg;   /* snapshot: a SIGHUP does not change a running import */
	PGconn *db;
	const char *id, *wid;
	struct dest *dest;
	struct wfile *files;
	int nfiles;
	int dirty;                  /* totals/progress need writing */
	char progress[PROGRESS_MAX + 1];
	double next_flush, next_renew, last_renew_ok, renew_every;
	int cancel;                 /* confirmed cancel_requested: stop and DELETE at the provider */
	int abandon;                /* drain: give the import back untouched */
	int lease_lost;             /* someone else owns the import now: hands off */
};

/* Helpers ------------------------------------------------------------------ */

static void lost(struct run *r)
{
	if (!r->lease_lost)
		log_warn("import %s: lease lost; leaving it to its new owner", r->id);
	r->lease_lost = 1;
}

static char *xstrdup(const char *s)
{
	char *d = strdup(s ? s : "");

	if (!d)
		abort();
	return d;
}

/* Rows affected, or -1 on error (already logged by db_exec). */
static int exec_rows(PGconn *db, const char *sql, int n, const char *const *p)
{
	PGresult *res = db_exec(db, sql, n, p);
	int rows;

	if (!res)
		return -1;
	rows = atoi(PQcmdTuples(res));
	PQclear(res);
	return rows;
}
#define ROWS(db, sql, ...) \
	exec_rows((db), (sql), (int)(sizeof((const char *[]){ __VA_ARGS__ }) / sizeof(const char *)), \
		  (const char *const[]){ __VA_ARGS__ })

static int tx_begin(struct run *r) { return db_cmd(r->db, "BEGIN", 0); }
static int tx_commit(struct run *r) { return db_cmd(r->db, "COMMIT", 0); }
static void tx_rollback(struct run *r) { db_cmd(r->db, "ROLLBACK", 0); }

/* Drop a trailing incomplete UTF-8 sequence after a byte cut. */
static void utf8_trim_tail(char *s)
{
	size_t n = strlen(s), i = n, need;
	unsigned char c;

	while (i > 0 && ((unsigned char)s[i - 1] & 0xC0) == 0x80)
		i--;
	if (i == 0)
		return;
	c = (unsigned char)s[i - 1];
	if (c < 0xC0)
		return;
	need = c >= 0xF0 ? 4 : c >= 0xE0 ? 3 : 2;
	if (n - (i - 1) < need)
		s[i - 1] = '\0';
}

/* Copy `s` into out (size PROGRESS_MAX+1): control characters become spaces
 * and a cut never splits a UTF-8 sequence. */
static void progress_copy(char *out, const char *s)
{
	size_t n = 0;

	for (; s && *s && n < PROGRESS_MAX; s++, n++)
		out[n] = ((unsigned char)*s < 0x20 || *s == 0x7f) ? ' ' : *s;
	out[n] = '\0';
	if (s && *s)
		utf8_trim_tail(out);
}

static void set_progress(struct run *r, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void set_progress(struct run *r, const char *fmt, ...)
{
	struct buf b = BUF_INIT;
	va_list ap;

	va_start(ap, fmt);
	buf_vprintf(&b, fmt, ap);
	va_end(ap);
	progress_copy(r->progress, buf_str(&b));
	buf_free(&b);
	r->dirty = 1;
}

static struct wfile *file_by_seq(struct run *r, int seq)
{
	int i;

	if (seq >= 1 && seq <= r->nfiles && r->files[seq - 1].seq == seq)
		return &r->files[seq - 1];
	for (i = 0; i < r->nfiles; i++)
		if (r->files[i].seq == seq)
			return &r->files[i];
	return NULL;
}

struct totals { int done, finished; long long resources, bytes; };

static struct totals totals(const struct run *r)
{
	struct totals t = { 0, 0, 0, 0 };
	int i;

	for (i = 0; i < r->nfiles; i++) {
		const struct wfile *f = &r->files[i];
		if (f->state == F_DONE)
			t.done++;
		if (f->state == F_DONE || f->state == F_FAILED)
			t.finished++;
		if (f->state == F_FAILED)
			continue;
		t.bytes += f->bytes;
		if (!strcmp(f->kind, "output"))
			t.resources += f->lines;
	}
	return t;
}

static void downloading_progress(struct run *r)
{
	struct totals t = totals(r);

	if (t.bytes >= 1000000)
		set_progress(r, "downloading %d/%d files, %lld MB", t.finished, r->nfiles, t.bytes / 1000000);
	else
		set_progress(r, "downloading %d/%d files, %lld kB", t.finished, r->nfiles, t.bytes / 1000);
}

/* State change (kept as is when the API cancelled the import meanwhile).
 * Returns rows affected: 0 means the lease was lost. */
static int set_state(struct run *r, const char *state, const char *progress)
{
	int rows;

	progress_copy(r->progress, progress);
	rows = ROWS(r->db,
		    "UPDATE imports SET state = CASE WHEN cancel_requested THEN state ELSE $3 END,"
		    " progress = CASE WHEN cancel_requested THEN progress ELSE $4 END, updated_at = now()"
		    " WHERE id = $1 AND worker_id = $2",
		    r->id, r->wid, state, r->progress);
	if (rows == 0)
		lost(r);
	return rows;
}

/* Write dirty file rows and the totals.  `force` ignores the throttle. */
static void flush(struct run *r, int force)
{
	char done[16], res[24], bytes[24], seq[16], lines[24], fbytes[24];
	double t = mono_now();
	struct totals tt;
	int i, rows, anyfile = 0;

	if (!force && t < r->next_flush)
		return;
	r->next_flush = t + FLUSH_INTERVAL;
	for (i = 0; i < r->nfiles; i++)
		anyfile |= r->files[i].dirty;
	if ((!r->dirty && !anyfile) || r->lease_lost)
		return;
	tt = totals(r);
	snprintf(done, sizeof done, "%d", tt.done);
	snprintf(res, sizeof res, "%lld", tt.resources);
	snprintf(bytes, sizeof bytes, "%lld", tt.bytes);
	if (tx_begin(r) < 0)
		return;
	rows = ROWS(r->db,
		    "UPDATE imports SET files_done = $3, resources = $4, bytes = $5,"
		    " progress = CASE WHEN cancel_requested THEN progress ELSE $6 END, updated_at = now()"
		    " WHERE id = $1 AND worker_id = $2",
		    r->id, r->wid, done, res, bytes, r->progress);
	if (rows <= 0) {
		tx_rollback(r);
		if (rows == 0)
			lost(r);
		return;
	}
	for (i = 0; i < r->nfiles; i++) {
		struct wfile *f = &r->files[i];
		if (!f->dirty)
			continue;
		snprintf(seq, sizeof seq, "%d", f->seq);
		snprintf(lines, sizeof lines, "%lld", f->lines);
		snprintf(fbytes, sizeof fbytes, "%lld", f->bytes);
		if (ROWS(r->db,
			 "UPDATE import_files SET state = $3, lines = $4, bytes = $5, dest_path = $6,"
			 " sha256 = $7, error = $8, updated_at = now() WHERE import_id = $1 AND seq = $2",
			 r->id, seq, fstate_name[f->state], lines, fbytes,
			 f->state == F_FAILED ? NULL : f->dest_path,   /* a failed file is not stored */
			 f->state == F_DONE && f->sha256[0] ? f->sha256 : NULL,
			 f->state == F_FAILED ? (f->last_error ? f->last_error : "download failed") : NULL) < 0) {
			tx_rollback(r);
			return;
		}
	}
	if (tx_commit(r) < 0)
		return;
	r->dirty = 0;
	for (i = 0; i < r->nfiles; i++)
		r->files[i].dirty = 0;
}

/* Lease renewal, cancel confirmation and throttled progress: cheap unless a
 * time limit has passed. */
static void tick(struct run *r)
{
	double t = mono_now();
	int cancel_req = 0, rc;

	if (atomic_load(&r->slot->abandon))
		r->abandon = 1;
	if (atomic_load(&r->slot->cancel) && !r->cancel && !r->lease_lost) {
		/* confirm against the row, so a stray NOTIFY cannot kill an export */
		PGresult *q = db_q(r->db, "SELECT cancel_requested FROM imports WHERE id = $1", 1, r->id);
		const char *v = q && PQntuples(q) == 1 ? db_get(q, 0, "cancel_requested") : NULL;
		if (v && v[0] == 't')
			r->cancel = 1;
		else if (q)
			atomic_store(&r->slot->cancel, 0);
		/* no answer (database trouble): ask again at the next tick rather
		 * than DELETE an export nobody cancelled */
		if (q)
			PQclear(q);
	}
	if (!r->lease_lost && t >= r->next_renew) {
		rc = lease_renew(r->db, r->id, r->wid, r->cfg->worker_lease_seconds, &cancel_req);
		if (rc == 1) {
			r->last_renew_ok = t;
			r->next_renew = t + r->renew_every;
			if (cancel_req && !r->cancel) {
				log_info("import %s: cancel requested (seen at lease renewal)", r->id);
				r->cancel = 1;
			}
		} else if (rc == 0) {
			lost(r);
		} else {
			r->next_renew = t + 1;
			if (t - r->last_renew_ok >= (double)r->cfg->worker_lease_seconds) {
				log_warn("import %s: could not renew the lease in time; giving it up", r->id);
				r->lease_lost = 1;
			}
		}
	}
	flush(r, 0);
}

static void add_outcome(struct run *r, const char *severity, const char *code, const char *file_url,
			long long line, const char *msg)
{
	char lbuf[24];

	if (r->lease_lost)
		return;
	if (line > 0)
		snprintf(lbuf, sizeof lbuf, "%lld", line);
	ROWS(r->db,
	     "INSERT INTO outcomes (import_id, severity, code, file_url, line, diagnostics)"
	     " SELECT $1, $3, $4, $5, $6::bigint, $7"
	     " WHERE EXISTS (SELECT 1 FROM imports WHERE id = $1 AND worker_id = $2)",
	     r->id, r->wid, severity, code, file_url, line > 0 ? lbuf : NULL, msg);
}

/* Engine callbacks ---------------------------------------------------------- */

static void ev_kickoff(void *ctx, const char *status_url)
{
	struct run *r = ctx;
	int rows;

	if (r->lease_lost)
		return;
	progress_copy(r->progress, "exporting");
	/* the status URL is recorded even when the API cancelled meanwhile:
	 * it is what the cancel clean-up DELETEs */
	/* losing this URL would make a takeover kick off a second export at the
	 * provider: ride out a short database hiccup (reconnecting) */
	for (int attempt = 0; attempt < 3; attempt++) {
		rows = ROWS(r->db,
			    "UPDATE imports SET provider_status_url = $3,"
			    " state = CASE WHEN cancel_requested THEN state ELSE 'exporting' END,"
			    " progress = CASE WHEN cancel_requested THEN progress ELSE $4 END, updated_at = now()"
			    " WHERE id = $1 AND worker_id = $2",
			    r->id, r->wid, status_url, r->progress);
		if (rows >= 0 || db_ensure(r->db) < 0)
			break;
	}
	if (rows == 0)
		lost(r);
	else if (rows < 0)
		log_error("import %s: could not record the provider's status URL", r->id);
	log_info("import %s: export kicked off at the provider", r->id);
	tick(r);
}

static void ev_status(void *ctx, const char *x_progress)
{
	struct run *r = ctx;
	char pp[1001];

	if (x_progress && *x_progress)
		set_progress(r, "exporting: %s", x_progress);
	else
		set_progress(r, "exporting");
	snprintf(pp, sizeof pp, "%s", x_progress ? x_progress : "");
	utf8_trim_tail(pp);
	if (!r->lease_lost)
		ROWS(r->db, "UPDATE imports SET provider_progress = $3 WHERE id = $1 AND worker_id = $2",
		     r->id, r->wid, x_progress ? pp : NULL);
	tick(r);
}

/* A manifest page arrived (the engine already downloads its files while it
 * polls for the next): record files[first..first+n-1], keeping those an
 * earlier attempt stored (skip=1). */
static void ev_files_added(void *ctx, struct export_file *files, int first, int n)
{
	struct run *r = ctx;
	char seq[16], cnt[24], total[16];
	struct wfile *grown;
	PGresult *ex = NULL;
	int i, rows = -1, skipped = 0;

	grown = realloc(r->files, (size_t)(r->nfiles + n + 1) * sizeof *r->files);
	if (!grown)
		abort();
	r->files = grown;
	memset(r->files + r->nfiles, 0, (size_t)(n + 1) * sizeof *r->files);
	for (i = first; i < first + n; i++) {
		struct wfile *f = &r->files[r->nfiles++];
		f->seq = files[i].seq;
		f->kind = xstrdup(files[i].kind);
		f->type = xstrdup(files[i].type);
		f->url = xstrdup(files[i].url);
		f->state = F_PENDING;
	}
	if (r->lease_lost)
		return;
	snprintf(total, sizeof total, "%d", r->nfiles);
	progress_copy(r->progress, "downloading");
	if (tx_begin(r) < 0)
		return;
	rows = ROWS(r->db,
		    "UPDATE imports SET state = CASE WHEN cancel_requested THEN state ELSE 'downloading' END,"
		    " files_total = $3, updated_at = now() WHERE id = $1 AND worker_id = $2",
		    r->id, r->wid, total);
	if (rows <= 0)
		goto fail;
	for (i = first; i < first + n; i++) {
		struct wfile *f = file_by_seq(r, files[i].seq);
		const char *eurl = NULL, *estate = NULL;

		snprintf(seq, sizeof seq, "%d", f->seq);
		ex = db_q(r->db, "SELECT url, state, lines, bytes, dest_path, sha256"
				 " FROM import_files WHERE import_id = $1 AND seq = $2::int", 2, r->id, seq);
		if (!ex)
			goto fail;
		if (PQntuples(ex) == 1) {
			eurl = db_get(ex, 0, "url");
			estate = db_get(ex, 0, "state");
		}
		if (eurl && !strcmp(eurl, f->url) && estate && !strcmp(estate, "done")) {
			/* stored by an earlier attempt: keep it */
			const char *dp = db_get(ex, 0, "dest_path"), *sh = db_get(ex, 0, "sha256");
			files[i].skip = 1;
			f->state = F_DONE;
			f->lines = atoll(db_get(ex, 0, "lines"));
			f->bytes = atoll(db_get(ex, 0, "bytes"));
			/* the engine's manifest.json describes it from these */
			files[i].lines = f->lines;
			files[i].bytes = f->bytes;
			snprintf(files[i].sha256, sizeof files[i].sha256, "%s", sh ? sh : "");
			f->dest_path = dp ? xstrdup(dp) : NULL;
			snprintf(f->sha256, sizeof f->sha256, "%s", sh ? sh : "");
			skipped++;
			PQclear(ex);
			ex = NULL;
			continue;
		}
		if (files[i].manifest_count >= 0)
			snprintf(cnt, sizeof cnt, "%lld", files[i].manifest_count);
		/* issues reported by an interrupted attempt at this file would be
		 * reported again by this one */
		if (eurl && ROWS(r->db, "DELETE FROM outcomes WHERE import_id = $1 AND file_url = $2"
					" AND severity <> 'information'", r->id, eurl) < 0)
			goto fail;
		PQclear(ex);
		ex = NULL;
		if (ROWS(r->db,
			 "INSERT INTO import_files (import_id, seq, kind, type, url, manifest_count)"
			 " VALUES ($1, $2, $3, $4, $5, $6::bigint)"
			 " ON CONFLICT (import_id, seq) DO UPDATE SET kind = EXCLUDED.kind, type = EXCLUDED.type,"
			 " url = EXCLUDED.url, manifest_count = EXCLUDED.manifest_count, state = 'pending',"
			 " lines = 0, bytes = 0, dest_path = NULL, sha256 = NULL, error = NULL, updated_at = now()",
			 r->id, seq, f->kind, f->type, f->url,
			 files[i].manifest_count >= 0 ? cnt : NULL) < 0)
			goto fail;
	}
	if (tx_commit(r) < 0)
		return;
	log_info("import %s: %d more files (%d in all)%s", r->id, n, r->nfiles,
		 skipped ? ", some already stored by an earlier attempt" : "");
	downloading_progress(r);
	flush(r, 1);
	return;
fail:
	if (ex)
		PQclear(ex);
	tx_rollback(r);
	if (rows == 0)
		lost(r);
}

/* The last page is in: keep the merged manifest and drop rows of an
 * earlier, different manifest.  The files were recorded page by page. */
static void ev_manifest(void *ctx, json_object *manifest, struct export_file *files, int nfiles)
{
	struct run *r = ctx;
	json_object *tt;
	const char *ttime = NULL, *mtext;
	char nbuf[16];
	int rows = -1;

	(void)files;
	if (r->lease_lost)
		return;
	if (manifest && json_object_object_get_ex(manifest, "transactionTime", &tt) &&
	    json_object_is_type(tt, json_type_string))
		ttime = json_object_get_string(tt);
	mtext = manifest ? json_object_to_json_string_ext(manifest, JSON_C_TO_STRING_PLAIN) : NULL;
	snprintf(nbuf, sizeof nbuf, "%d", nfiles);
	if (tx_begin(r) < 0)
		return;
	rows = ROWS(r->db,
		    "UPDATE imports SET manifest = COALESCE($3::jsonb, manifest),"
		    " transaction_time = COALESCE($4, transaction_time), files_total = $5, updated_at = now()"
		    " WHERE id = $1 AND worker_id = $2",
		    r->id, r->wid, mtext, ttime, nbuf);
	if (rows <= 0)
		goto fail;
	if (ROWS(r->db, "DELETE FROM outcomes WHERE import_id = $1 AND severity <> 'information' AND file_url IN"
			" (SELECT url FROM import_files WHERE import_id = $1 AND seq > $2::int)", r->id, nbuf) < 0 ||
	    ROWS(r->db, "DELETE FROM import_files WHERE import_id = $1 AND seq > $2::int", r->id, nbuf) < 0)
		goto fail;
	if (tx_commit(r) < 0)
		return;
	log_info("import %s: manifest complete, %d files", r->id, nfiles);
	return;
fail:
	tx_rollback(r);
	if (rows == 0)
		lost(r);
}

static void ev_file_start(void *ctx, struct export_file *ef)
{
	struct run *r = ctx;
	struct wfile *f = file_by_seq(r, ef->seq);
	struct buf b = BUF_INIT;

	if (f) {
		f->state = F_DOWNLOADING;
		f->lines = f->bytes = 0;
		f->issues = 0;
		free(f->last_error);
		f->last_error = NULL;
		free(f->dest_path);
		f->dest_path = NULL;
		if (ef->dest_name) {
			buf_printf(&b, "%s/%s", r->id, ef->dest_name);
			f->dest_path = buf_detach(&b);
		}
		f->dirty = 1;
	}
	tick(r);
}

static void ev_file_progress(void *ctx, struct export_file *ef)
{
	struct run *r = ctx;
	struct wfile *f = file_by_seq(r, ef->seq);

	if (f) {
		f->lines = ef->lines;
		f->bytes = ef->bytes;
		f->dirty = 1;
		downloading_progress(r);
	}
	tick(r);
}

static void ev_file_done(void *ctx, struct export_file *ef, int ok)
{
	struct run *r = ctx;
	struct wfile *f = file_by_seq(r, ef->seq);
	struct buf b = BUF_INIT;

	if (f) {
		f->lines = ef->lines;
		f->bytes = ef->bytes;
		f->state = ok ? F_DONE : F_FAILED;
		snprintf(f->sha256, sizeof f->sha256, "%s", ok ? ef->sha256 : "");
		if (ef->dest_name && !f->dest_path) {
			buf_printf(&b, "%s/%s", r->id, ef->dest_name);
			f->dest_path = buf_detach(&b);
		}
		f->dirty = 1;
		downloading_progress(r);
		if (!ok)
			log_warn("import %s: file %d (%s) failed", r->id, f->seq, f->type);
	}
	flush(r, 1);   /* a 'done' row is what a takeover relies on */
	tick(r);
}

static void ev_issue(void *ctx, const struct export_issue *iss)
{
	struct run *r = ctx;
	struct wfile *f = iss->file ? file_by_seq(r, iss->file->seq) : NULL;
	const char *sev = iss->severity, *code = iss->code && *iss->code ? iss->code : "processing";
	const char *msg = iss->message && *iss->message ? iss->message : "(no details)";
	long cap = r->cfg->worker_max_issues_per_file;
	struct buf b = BUF_INIT;

	if (!sev || (strcmp(sev, "information") && strcmp(sev, "warning") && strcmp(sev, "error") &&
		     strcmp(sev, "fatal")))
		sev = "error";
	if (f) {
		f->issues++;
		if (strcmp(sev, "information") && strcmp(sev, "warning")) {
			free(f->last_error);
			f->last_error = xstrdup(msg);
		}
		if (cap > 0 && f->issues > cap) {
			if (f->issues == cap + 1) {
				buf_printf(&b, "More than %ld issues in this file; further issues are not recorded.", cap);
				add_outcome(r, "warning", "too-costly", f->url, 0, buf_str(&b));
				buf_free(&b);
			}
			return;
		}
	}
	add_outcome(r, sev, code, iss->file ? iss->file->url : NULL, iss->line, msg);
}

static int ev_should_stop(void *ctx)
{
	struct run *r = ctx;

	tick(r);
	if (r->lease_lost)
		return WORKER_STOP_ABANDON;
	if (r->cancel)
		return WORKER_STOP_CANCEL;
	if (r->abandon)
		return WORKER_STOP_ABANDON;
	return 0;
}

static const struct export_events EVENTS = {
	.on_kickoff = ev_kickoff,
	.on_status = ev_status,
	.on_manifest = ev_manifest,
	.on_files_added = ev_files_added,
	.on_file_start = ev_file_start,
	.on_file_progress = ev_file_progress,
	.on_file_done = ev_file_done,
	.on_issue = ev_issue,
	.should_stop = ev_should_stop,
};

/* Endings ---------------------------------------------------------------- */

static void finish_cancel(struct run *r)
{
	char *err = NULL;

	if (r->lease_lost)
		return;
	if (r->cfg->cancel_delete_files && r->dest && dest_remove_all(r->dest, &err) < 0) {
		log_warn("import %s: removing files after cancel: %s", r->id, err ? err : "failed");
		free(err);
	}
	ROWS(r->db,
	     "UPDATE imports SET cancel_done = true, lease_until = NULL, progress = 'cancelled',"
	     " finished_at = COALESCE(finished_at, now()), updated_at = now()"
	     " WHERE id = $1 AND worker_id = $2",
	     r->id, r->wid);
	log_info("import %s: cancelled", r->id);
}

/* After a fenced final UPDATE hit no row: was it cancelled, or is the lease gone? */
static int cancelled_meanwhile(struct run *r)
{
	PGresult *q = db_q(r->db, "SELECT cancel_requested FROM imports WHERE id = $1 AND worker_id = $2",
			   2, r->id, r->wid);
	const char *v = q && PQntuples(q) == 1 ? db_get(q, 0, "cancel_requested") : NULL;
	int c = v && v[0] == 't';

	if (q && PQntuples(q) == 0)
		lost(r);
	if (q)
		PQclear(q);
	return c;
}

static void finish_complete(struct run *r, const struct export_result *res)
{
	struct totals t = totals(r);
	char done[16], resources[24], bytes[24];
	struct buf prog = BUF_INIT, msg = BUF_INIT;
	int i, rows, failed = t.finished - t.done;

	snprintf(done, sizeof done, "%d", t.done);
	snprintf(resources, sizeof resources, "%lld", t.resources);
	snprintf(bytes, sizeof bytes, "%lld", t.bytes);
	if (failed > 0)
		buf_printf(&prog, "complete: %d of %d files failed", failed, r->nfiles);
	else
		buf_puts(&prog, "complete");
	progress_copy(r->progress, buf_str(&prog));
	buf_free(&prog);

	if (tx_begin(r) < 0)
		return;
	rows = ROWS(r->db,
		    "UPDATE imports SET state = 'complete', progress = $3, transaction_time = COALESCE($4, transaction_time),"
		    " files_done = $5, resources = $6, bytes = $7, lease_until = NULL,"
		    " finished_at = now(), updated_at = now()"
		    " WHERE id = $1 AND worker_id = $2 AND NOT cancel_requested",
		    r->id, r->wid, r->progress, res->transaction_time, done, resources, bytes);
	if (rows <= 0) {
		tx_rollback(r);
		if (rows == 0 && cancelled_meanwhile(r))
			finish_cancel(r);   /* cancelled just as it finished */
		return;
	}
	for (i = 0; i < r->nfiles; i++) {
		struct wfile *f = &r->files[i];
		if (f->state == F_FAILED) {
			/* every failed file is in the outcome, even if recording its
			 * issues failed earlier (a database hiccup) */
			if (ROWS(r->db,
				 "INSERT INTO outcomes (import_id, severity, code, file_url, diagnostics)"
				 " SELECT $1, 'error', 'exception', $2::text, $3"
				 "  WHERE NOT EXISTS (SELECT 1 FROM outcomes WHERE import_id = $1 AND file_url = $2::text"
				 "                     AND severity IN ('error', 'fatal'))",
				 r->id, f->url, f->last_error ? f->last_error : "the file could not be imported") < 0) {
				buf_free(&msg);
				tx_rollback(r);
				return;
			}
			continue;
		}
		if (f->state != F_DONE)
			continue;
		buf_reset(&msg);
		/* the outcome line already names the file URL (file_url) */
		if (!strcmp(f->kind, "output"))
			buf_printf(&msg, "Imported %lld resources of type %s as %s", f->lines, f->type,
				   f->dest_path ? f->dest_path : "(not stored)");
		else if (!strcmp(f->kind, "deleted"))
			buf_printf(&msg, "Imported %lld deleted-resource entries of type %s", f->lines, f->type);
		else
			buf_printf(&msg, "Imported %lld provider error entries of type %s", f->lines, f->type);
		if (ROWS(r->db,
			 "INSERT INTO outcomes (import_id, severity, code, file_url, diagnostics)"
			 " VALUES ($1, 'information', 'informational', $2, $3)",
			 r->id, f->url, buf_str(&msg)) < 0) {
			buf_free(&msg);
			tx_rollback(r);
			return;
		}
	}
	buf_free(&msg);
	if (tx_commit(r) == 0)
		log_info("import %s: complete (%d files, %d failed, %lld resources, %lld bytes)", r->id,
			 r->nfiles, failed, t.resources, t.bytes);
}

static void finish_failed(struct run *r, int status, const char *code, const char *message)
{
	char st[16];
	int rows;

	if (r->lease_lost)
		return;
	snprintf(st, sizeof st, "%d", status > 0 ? status : 500);
	if (!code || !*code)
		code = "exception";
	if (!message || !*message)
		message = "The export failed.";
	if (tx_begin(r) < 0)
		return;
	rows = ROWS(r->db,
		    "UPDATE imports SET state = 'failed', progress = 'failed', error_status = $3::int,"
		    " error_code = $4, error_message = $5, lease_until = NULL, finished_at = now(), updated_at = now()"
		    " WHERE id = $1 AND worker_id = $2 AND NOT cancel_requested",
		    r->id, r->wid, st, code, message);
	if (rows <= 0) {
		tx_rollback(r);
		if (rows == 0 && cancelled_meanwhile(r))
			finish_cancel(r);
		return;
	}
	if (ROWS(r->db, "INSERT INTO outcomes (import_id, severity, code, diagnostics) VALUES ($1, 'error', $2, $3)",
		 r->id, code, message) < 0) {
		tx_rollback(r);
		return;
	}
	if (tx_commit(r) == 0)
		log_warn("import %s: failed (%s): %s", r->id, st, message);
}

/* The import ------------------------------------------------------------- */

static void mkdir_p(const char *path)
{
	char *p = xstrdup(path), *s;

	for (s = p + 1; *s; s++)
		if (*s == '/') {
			*s = '\0';
			if (mkdir(p, 0750) < 0 && errno != EEXIST)
				break;
			*s = '/';
		}
	if (mkdir(p, 0750) < 0 && errno != EEXIST)
		log_warn("cannot create %s: %s", p, strerror(errno));
	free(p);
}

static struct dest *open_dest(struct run *r, char **err)
{
	const char *dir = r->cfg->storage_dir;
	struct dest_conf dconf = { 0 };
	struct buf spec = BUF_INIT;
	struct dest *d;

	if (!dir || !*dir)
		return dest_open("none", err);
	if (!strstr(dir, "://"))
		mkdir_p(dir);
	buf_printf(&spec, "%s/%s", dir, r->id);
	dconf.s3_region = *r->cfg->s3_region ? r->cfg->s3_region : NULL;
	dconf.s3_endpoint = *r->cfg->s3_endpoint ? r->cfg->s3_endpoint : NULL;
	dconf.http_method = r->cfg->http_destination_method;
	dconf.retries = (int)r->cfg->http_retries;
	dconf.connect_timeout = r->cfg->http_connect_timeout;
	dconf.idle_timeout = r->cfg->http_idle_timeout;
	dconf.user_agent = r->cfg->user_agent;
	/* long uploads (S3 parts, HTTP spool files) keep the lease renewed */
	dconf.should_stop = ev_should_stop;
	dconf.stop_ctx = r;
	d = dest_open_conf(buf_str(&spec), &dconf, err);
	buf_free(&spec);
	return d;
}

static const char SQL_ROW[] =
	"SELECT i.export_url, i.export_type, i.params::text AS params, i.state, i.cancel_requested,"
	"       i.provider_status_url, i.manifest::text AS manifest, i.attempts,"
	"       extract(epoch FROM i.created_at)::bigint AS created_epoch,"
	"       c.fhir_base_url, c.provider_client_id, c.provider_auth, c.provider_token_url,"
	"       c.scope, c.kickoff_method"
	"  FROM imports i JOIN clients c ON c.id = i.client_id"
	" WHERE i.id = $1 AND i.worker_id = $2";

static void run(struct wslot *s, const char *id, int cleanup)
{
	struct run r;
	struct export_opts o;
	struct export_result res;
	PGresult *row = NULL;
	json_object *params = NULL, *manifest = NULL;
	const char *v, *status_url, *state;
	char *err = NULL, **token_origins = NULL, **inline_types = NULL, **headers = NULL;
	int rc, dynamic, cancel_requested;
	long attempts;

	memset(&r, 0, sizeof r);
	memset(&o, 0, sizeof o);
	memset(&res, 0, sizeof res);
	r.slot = s;
	r.cfg = CFG;
	r.db = s->db;
	r.id = id;
	r.wid = s->worker_id;
	r.renew_every = (double)r.cfg->worker_lease_seconds / 3.0;
	if (r.renew_every < 1)
		r.renew_every = 1;
	r.last_renew_ok = mono_now();
	r.next_renew = r.last_renew_ok + r.renew_every;
	slot_set_import(s, id);   /* before reading the row: a cancel from now on is seen */

	if (!import_id_ok(id)) {
		log_error("import with unusable id claimed; releasing it");
		lease_release(r.db, id, r.wid, 0);
		goto out;
	}
	row = db_q(r.db, SQL_ROW, 2, id, r.wid);
	if (!row || PQntuples(row) != 1) {
		log_warn("import %s: claimed but not readable (lease lost?)", id);
		goto out;
	}
	status_url = db_get(row, 0, "provider_status_url");
	state = db_get(row, 0, "state");
	dynamic = !strcmp(db_get(row, 0, "export_type"), "dynamic");
	v = db_get(row, 0, "cancel_requested");
	cancel_requested = v && v[0] == 't';
	attempts = atol(db_get(row, 0, "attempts"));

	r.dest = open_dest(&r, &err);
	if (!r.dest) {
		log_error("import %s: destination: %s", id, err ? err : "cannot open");
		free(err);
		err = NULL;
		if (!cancel_requested && !cleanup) {
			finish_failed(&r, 500, "exception", "The import's storage cannot be opened.");
			goto out;
		}
		/* a cancel still has to reach the provider; nothing to remove */
		if (!(r.dest = dest_open("none", &err))) {
			free(err);
			goto out;
		}
	}

	if (cancel_requested || cleanup) {
		/* Cancel clean-up: the engine only has to DELETE the provider's
		 * status URL (should_stop answers "cancel" at once). */
		log_info("import %s: finishing a cancellation", id);
		r.cancel = 1;
		if (!dynamic || !status_url) {
			finish_cancel(&r);
			goto out;
		}
	} else if (r.cfg->worker_max_attempts > 0 && attempts > r.cfg->worker_max_attempts) {
		struct buf m = BUF_INIT;
		buf_printf(&m, "Gave up after %ld attempts: the worker running it stopped or lost it each time.",
			   attempts - 1);
		finish_failed(&r, 500, "exception", buf_str(&m));
		buf_free(&m);
		goto out;
	}

	/* export options */
	o.kind = dynamic ? EXPORT_DYNAMIC : EXPORT_STATIC;
	o.url = db_get(row, 0, "export_url");
	o.fhir_base = db_get(row, 0, "fhir_base_url");
	if ((v = db_get(row, 0, "params"))) {
		params = json_tokener_parse(v);
		if (params && (!json_object_is_type(params, json_type_object) ||
			       json_object_object_length(params) == 0)) {
			json_object_put(params);
			params = NULL;
		}
	}
	o.params = params;
	v = db_get(row, 0, "kickoff_method");
	o.kickoff_get = v && !strcmp(v, "get");
	o.status_url = dynamic ? status_url : NULL;
	if (!r.cancel && (v = db_get(row, 0, "manifest")))
		manifest = json_tokener_parse(v);
	o.manifest = manifest;

	v = db_get(row, 0, "provider_auth");
	o.auth.open = v && !strcmp(v, "open");
	o.auth.client_id = db_get(row, 0, "provider_client_id");
	o.auth.key = WKEY.key;
	o.auth.alg = r.cfg->consumer_key_alg && *r.cfg->consumer_key_alg ? r.cfg->consumer_key_alg : WKEY.alg;
	o.auth.kid = WKEY.kid;
	v = db_get(row, 0, "scope");
	o.auth.scope = v && *v ? v : r.cfg->default_scope;
	o.auth.token_url = db_get(row, 0, "provider_token_url");
	if (!o.auth.open && (!WKEY.key || !o.auth.client_id || !*o.auth.client_id)) {
		const char *why = !WKEY.key
			? "The consumer has no private key configured (consumer_private_key_file); it cannot authenticate to the provider."
			: "The client registration has no provider_client_id; the consumer cannot authenticate to the provider.";
		log_error("import %s: %s", id, why);
		if (r.cancel)
			finish_cancel(&r);
		else
			finish_failed(&r, 500, "security", why);
		goto out;
	}
	o.user_agent = r.cfg->user_agent;
	o.connect_timeout = r.cfg->http_connect_timeout;
	o.idle_timeout = r.cfg->http_idle_timeout;
	o.retries = (int)r.cfg->http_retries;
	o.parallelism = (int)r.cfg->download_parallelism;
	o.max_line_bytes = r.cfg->max_line_bytes > 0 ? (size_t)r.cfg->max_line_bytes : 0;
	o.poll_default_wait = r.cfg->poll_default_wait;
	o.poll_max_wait = r.cfg->poll_max_wait;
	o.deadline = atol(db_get(row, 0, "created_epoch")) + r.cfg->export_deadline;
	o.dest = r.dest;
	o.ctx = &r;
	o.export_id = id;
	o.name_template = r.cfg->name_template;
	v = r.cfg->invalid_policy;
	o.invalid_policy = !strcmp(v, "skip") ? EXPORT_INVALID_SKIP_LINE
		: !strcmp(v, "fail") ? EXPORT_INVALID_FAIL : EXPORT_INVALID_DROP_FILE;
	o.save_manifest = r.cfg->save_manifest;
	o.resume = r.cfg->resume_downloads && dest_can_resume(r.dest);   /* folders only */
	headers = strlist_split(r.cfg->provider_headers, '|');
	o.extra_headers = (const char *const *)headers;
	o.ca_file = *r.cfg->ca_file ? r.cfg->ca_file : NULL;
	o.insecure = r.cfg->tls_insecure;
	o.proxy = *r.cfg->http_proxy ? r.cfg->http_proxy : NULL;
	o.lenient = r.cfg->kickoff_lenient;
	token_origins = strlist_split(r.cfg->token_origins, ',');
	o.token_origins = (const char *const *)token_origins;
	inline_types = strlist_split(r.cfg->inline_attachment_types, ',');
	if (inline_types) {
		o.attach.enabled = 1;
		o.attach.inline_types = (const char *const *)inline_types;
		o.attach.inline_max = r.cfg->inline_attachment_max;
		o.attach.pdf_to_text = r.cfg->pdf_to_text;
	}

	if (!r.cancel) {
		int rows;
		if (manifest)
			rows = set_state(&r, "downloading", "downloading (resumed)");
		else if (dynamic && status_url)
			rows = set_state(&r, "exporting", "exporting");
		else if (dynamic)
			rows = set_state(&r, "kickoff", "kickoff");
		else
			rows = set_state(&r, "exporting", "fetching manifest");
		if (rows <= 0)
			goto out;
		log_info("import %s: started (attempt %ld, was %s)", id, attempts, state ? state : "?");
	}

	rc = export_run(&o, &EVENTS, &res);
	flush(&r, 1);

	if (r.lease_lost)
		log_warn("import %s: stopped working on it; the lease belongs to another worker", id);
	else if (r.cancel)
		finish_cancel(&r);
	else if (rc == 0)
		finish_complete(&r, &res);
	else if (r.abandon || res.cancelled) {
		/* drain (or a stop we did not ask to be a cancel): hand it back */
		if (lease_release(r.db, id, r.wid, 1) == 0)
			log_info("import %s: given back to the queue", id);
	} else
		finish_failed(&r, res.http_status, res.error_code, res.error_message);
	export_result_free(&res);

out:
	slot_clear_import(s);
	if (r.dest)
		dest_close(r.dest);
	for (int i = 0; i < r.nfiles; i++) {
		free(r.files[i].kind);
		free(r.files[i].type);
		free(r.files[i].url);
		free(r.files[i].dest_path);
		free(r.files[i].last_error);
	}
	free(r.files);
	strlist_free(token_origins);
	strlist_free(inline_types);
	strlist_free(headers);
	if (params)
		json_object_put(params);
	if (manifest)
		json_object_put(manifest);
	if (row)
		PQclear(row);
}

void run_import(struct wslot *s, const char *id)
{
	run(s, id, 0);
}

void run_cancel_cleanup(struct wslot *s, const char *id)
{
	run(s, id, 1);
}
