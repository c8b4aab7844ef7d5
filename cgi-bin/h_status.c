/* GET /imports/{id}: status of an import for the client that started it
 * (others and cancelled imports: 404).  Polling faster than half of
 * status_retry_after gets 429. */
#include "handlers.h"
#include "auth.h"
#include "config.h"
#include "db.h"
#include "oo.h"
#include "web.h"
#include <stdlib.h>
#include <string.h>

#define MAX_PROGRESS 99

static int running(const char *state)
{
	return !strcmp(state, "queued") || !strcmp(state, "kickoff") || !strcmp(state, "exporting") ||
	       !strcmp(state, "downloading");
}

static void manifest(struct request *rq, struct reply *rp, const PGresult *r, const char *id)
{
	json_object *m = json_object_new_object(), *oc = json_object_new_object(), *a;
	struct buf b = BUF_INIT;
	const char *tt = db_get(r, 0, "tt");

	json_object_object_add(m, "transactionTime", json_object_new_string(tt ? tt : ""));
	buf_printf(&b, "%s/$import", web_base());
	json_object_object_add(m, "request", json_object_new_string(buf_str(&b)));
	json_object_object_add(m, "requiresAccessToken", json_object_new_boolean(!CFG->status_allow_tokenless));
	buf_reset(&b);
	buf_printf(&b, "%s/imports/%s/outcome.ndjson", web_base(), id);
	json_object_object_add(oc, "type", json_object_new_string("OperationOutcome"));
	json_object_object_add(oc, "url", json_object_new_string(buf_str(&b)));
	json_object_object_add(oc, "count", json_object_new_int64(atoll(db_get(r, 0, "n_outcomes"))));
	a = json_object_new_array();
	json_object_array_add(a, oc);
	json_object_object_add(m, "outcome", a);
	json_object_object_add(m, "output", json_object_new_array());
	json_object_object_add(m, "error", json_object_new_array());
	reply_json(rp, 200, "application/json", m);
	json_object_put(m);
	buf_free(&b);
}

int h_status(struct request *rq, struct reply *rp)
{
	const char *id = rq->path_params[0], *state;
	char rabuf[32];
	PGresult *r = NULL;
	int rc = -1, visible;

	if (!web_id_ok(id)) {
		reply_oo(rp, 404, "error", "not-found", "no such import");
		goto done;
	}
	snprintf(rabuf, sizeof rabuf, "%ld", CFG->status_retry_after > 0 ? CFG->status_retry_after : 0);
	r = db_q(rq->db,
		 "UPDATE imports SET last_poll_at = clock_timestamp()"
		 " WHERE id = $1 AND ($2::text IS NULL OR client_id = $2)"
		 "   AND state <> 'cancelled' AND NOT cancel_requested"
		 "   AND (last_poll_at IS NULL OR $3::double precision <= 0"
		 "        OR clock_timestamp() - last_poll_at >= make_interval(secs => $3::double precision / 2))"
		 " RETURNING state, progress, error_status, error_code, error_message,"
		 "   coalesce(transaction_time, " SQL_INSTANT("finished_at") ", " SQL_INSTANT("updated_at") ") AS tt,"
		 "   (SELECT count(*) FROM outcomes o WHERE o.import_id = imports.id) AS n_outcomes",
		 3, id, rq->client_id, rabuf);
	if (!r)
		goto out;
	if (PQntuples(r) != 1) {
		PQclear(r);
		r = NULL;
		visible = auth_import_visible(rq, id);
		if (visible < 0)
			goto out;
		if (visible) {
			reply_oo(rp, 429, "error", "throttled", "polling too fast; wait %s seconds between requests", rabuf);
			reply_header(rp, "Retry-After", "%s", rabuf);
		} else {
			reply_oo(rp, 404, "error", "not-found", "no such import");
		}
		goto done;
	}
	state = db_get(r, 0, "state");
	if (running(state)) {
		const char *p = db_get(r, 0, "progress");
		rp->status = 202;
		reply_header(rp, "X-Progress", "%.*s", MAX_PROGRESS, p && *p ? p : state);
		reply_header(rp, "Retry-After", "%s", CFG->status_retry_after > 0 ? rabuf : "1");
	} else if (!strcmp(state, "complete")) {
		manifest(rq, rp, r, id);
	} else {   /* failed */
		const char *es = db_get(r, 0, "error_status"), *ec = db_get(r, 0, "error_code");
		const char *em = db_get(r, 0, "error_message");
		int st = es ? atoi(es) : 500;
		if (st < 400 || st > 599)
			st = 500;
		reply_oo(rp, st, "error", oo_code_valid(ec) ? ec : "exception", "%s", em && *em ? em : "import failed");
	}
	reply_header(rp, "Cache-Control", "no-store");
done:
	rc = 0;
out:
	PQclear(r);
	return rc;
}
