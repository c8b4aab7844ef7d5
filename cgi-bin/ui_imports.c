/* Imports in the admin UI: the dashboard (GET /admin/imports, refreshed by
 * static/ui.js from GET /admin/imports.json every 2 s while anything runs),
 * one import with its files and outcome entries (GET /admin/imports/{id})
 * and cancelling (POST /admin/imports/{id}/cancel, the cancel path of
 * DELETE /imports/{id}). */
#include "handlers.h"
#include "db.h"
#include "log.h"
#include "ui.h"
#include "ui_util.h"
#include "web.h"
#include <stdlib.h>
#include <string.h>

#define DASHBOARD_ROWS 100
#define MAX_FILES 1000
#define MAX_OUTCOMES 500

static long long num(const PGresult *r, int row, const char *col)
{
	const char *v = db_get(r, row, col);

	return v ? atoll(v) : 0;
}

static void add(json_object *o, const char *key, const char *v)
{
	if (v)
		json_object_object_add(o, key, json_object_new_string(v));
}

json_object *ui_import_row(const PGresult *r, int row)
{
	json_object *o = json_object_new_object();
	const char *state = db_get(r, row, "state"), *secs_s = db_get(r, row, "secs");
	double secs = secs_s ? atof(secs_s) : -1;
	long long bytes = num(r, row, "bytes");
	char b[UI_FMT_MAX], files[64];

	add(o, "id", db_get(r, row, "id"));
	add(o, "client_id", db_get(r, row, "client_id"));
	add(o, "client", db_get(r, row, "client"));
	add(o, "type", db_get(r, row, "export_type"));
	add(o, "state", state);
	json_object_object_add(o, "running", json_object_new_boolean(ui_state_running(state)));
	json_object_object_add(o, "pct", json_object_new_int(ui_progress_pct(state, num(r, row, "files_done"),
		num(r, row, "files_total"), num(r, row, "resources"), num(r, row, "expected"))));
	snprintf(files, sizeof files, "%lld/%lld", num(r, row, "files_done"), num(r, row, "files_total"));
	add(o, "files", files);
	snprintf(files, sizeof files, "%lld", num(r, row, "resources"));
	add(o, "resources", files);
	add(o, "bytes", ui_fmt_bytes(bytes, b));
	add(o, "throughput", ui_fmt_rate(bytes, secs, b));
	add(o, "created", db_get(r, row, "created"));
	add(o, "started", db_get(r, row, "started") ? db_get(r, row, "started") : "\xe2\x80\x93");
	add(o, "duration", ui_fmt_duration(secs, b));
	add(o, "error", db_get(r, row, "error_message"));
	return o;
}

/* The dashboard rows (newest first, running ones on top) as JSON objects;
 * *running counts the running ones.  NULL on a database error. */
static json_object *dashboard_rows(PGconn *db, int *running)
{
	char lim[16];
	PGresult *r;
	json_object *a;
	int i;

	snprintf(lim, sizeof lim, "%d", DASHBOARD_ROWS);
	r = db_q(db, "SELECT " UI_IMPORT_COLUMNS UI_IMPORT_FROM
		 " ORDER BY i.state IN ('queued', 'kickoff', 'exporting', 'downloading') DESC, i.created_at DESC"
		 " LIMIT $1::int",
		 1, lim);
	if (!r)
		return NULL;
	a = json_object_new_array();
	*running = 0;
	for (i = 0; i < PQntuples(r); i++) {
		json_object *o = ui_import_row(r, i), *v;
		if (json_object_object_get_ex(o, "running", &v) && json_object_get_boolean(v))
			(*running)++;
		json_object_array_add(a, o);
	}
	PQclear(r);
	return a;
}

int ui_imports(struct request *rq, struct reply *rp)
{
	HDF *h = ui_hdf(rq, "Imports", "imports");
	int running = 0;
	size_t i;
	json_object *a = dashboard_rows(rq->db, &running);

	if (!a) {
		hdf_destroy(&h);
		return -1;
	}
	for (i = 0; i < json_object_array_length(a); i++)
		ui_set_flat(h, json_object_array_get_idx(a, i), "Imports.%zu", i);
	ui_set_int(h, running, "Running");
	ui_set_int(h, DASHBOARD_ROWS, "Limit");
	json_object_put(a);
	return ui_render(rp, h, 200, "imports");
}

int ui_imports_json(struct request *rq, struct reply *rp)
{
	int running = 0;
	json_object *a = dashboard_rows(rq->db, &running), *o;

	if (!a)
		return -1;
	o = json_object_new_object();
	json_object_object_add(o, "running", json_object_new_int(running));
	json_object_object_add(o, "imports", a);
	reply_json(rp, 200, "application/json", o);
	json_object_put(o);
	return 0;
}

static const char SQL_IMPORT[] =
	"SELECT " UI_IMPORT_COLUMNS ", i.export_url, jsonb_pretty(i.params) AS params, i.provider_status_url,"
	"       i.provider_progress, i.progress, i.transaction_time, i.error_status, i.error_code, i.worker_id,"
	"       i.attempts, i.cancel_requested, " UI_TIME("i.finished_at") " AS finished,"
	"       " UI_TIME("i.lease_until") " AS lease_until,"
	"       (SELECT count(*) FROM outcomes o WHERE o.import_id = i.id) AS n_outcomes"
	UI_IMPORT_FROM " WHERE i.id = $1";

static const char SQL_FILES[] =
	"SELECT f.seq, f.kind, f.type, f.url, f.manifest_count, f.state, f.lines, f.bytes, f.error,"
	"       count(o.id) FILTER (WHERE o.severity IN ('error', 'fatal')) AS errors,"
	"       count(o.id) FILTER (WHERE o.severity = 'warning') AS warnings"
	"  FROM import_files f LEFT JOIN outcomes o ON o.import_id = f.import_id AND o.file_url = f.url"
	" WHERE f.import_id = $1 GROUP BY f.id ORDER BY f.seq LIMIT $2::int";

static const char SQL_OUTCOMES[] =
	"SELECT severity, code, file_url, line, diagnostics FROM outcomes WHERE import_id = $1 ORDER BY id LIMIT $2::int";

int ui_import(struct request *rq, struct reply *rp)
{
	const char *id = rq->path_params[0];
	char lim[16], b[UI_FMT_MAX];
	PGresult *r = NULL;
	HDF *h = NULL;
	json_object *row;
	int i, rc = -1;

	if (!web_id_ok(id))
		return ui_error(rq, rp, 404, "There is no such import.");
	r = db_q(rq->db, SQL_IMPORT, 1, id);
	if (!r)
		goto out;
	if (PQntuples(r) != 1) {
		rc = ui_error(rq, rp, 404, "There is no such import.");
		goto out;
	}
	h = ui_hdf(rq, "Import", "imports");
	row = ui_import_row(r, 0);
	ui_set_flat(h, row, "Import");
	json_object_put(row);
	ui_set_row(h, r, 0, "Raw");
	{
		struct buf u = BUF_INIT;
		buf_printf(&u, "%s/imports/%s", web_base(), id);
		ui_set(h, buf_str(&u), "Import.StatusUrl");
		buf_puts(&u, "/outcome.ndjson");
		ui_set(h, buf_str(&u), "Import.OutcomeUrl");
		buf_free(&u);
	}
	PQclear(r);

	snprintf(lim, sizeof lim, "%d", MAX_FILES + 1);
	r = db_q(rq->db, SQL_FILES, 2, id, lim);
	if (!r)
		goto out;
	for (i = 0; i < PQntuples(r) && i < MAX_FILES; i++) {
		ui_set_row(h, r, i, "Files.%d", i);
		ui_set(h, ui_fmt_bytes(atoll(db_get(r, i, "bytes")), b), "Files.%d.bytes_h", i);
	}
	if (PQntuples(r) > MAX_FILES)
		ui_set_int(h, MAX_FILES, "FilesCut");
	PQclear(r);

	snprintf(lim, sizeof lim, "%d", MAX_OUTCOMES);
	r = db_q(rq->db, SQL_OUTCOMES, 2, id, lim);
	if (!r)
		goto out;
	for (i = 0; i < PQntuples(r); i++)
		ui_set_row(h, r, i, "Outcomes.%d", i);
	ui_set_int(h, PQntuples(r), "OutcomesShown");
	rc = ui_render(rp, h, 200, "import");
	h = NULL;
out:
	if (h)
		hdf_destroy(&h);
	PQclear(r);
	return rc;
}

int ui_import_cancel(struct request *rq, struct reply *rp)
{
	const char *id = rq->path_params[0];
	int rc = import_cancel(rq->db, id, NULL);

	if (rc < 0)
		return -1;
	if (rc == 0)
		return ui_error(rq, rp, 404, "There is no such import, or it was cancelled already.");
	log_info("import %.6s... cancelled by administrator %s", id, rq->remote_user);
	ui_redirect(rp, "/admin/imports/%s?done=cancelled", id);
	return 0;
}
