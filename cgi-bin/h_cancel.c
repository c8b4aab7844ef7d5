/* DELETE /imports/{id}: cancel an import of the requesting client.  The
 * import disappears from the API at once (404 afterwards); the worker is
 * notified and stops the export at the provider. */
#include "handlers.h"
#include "db.h"
#include "log.h"
#include "web.h"

int import_cancel(PGconn *db, const char *id, const char *client_id)
{
	PGresult *r;
	int n;

	if (!web_id_ok(id))
		return 0;
	/* update and notify in one statement (one transaction) */
	r = db_q(db,
		 "WITH u AS (UPDATE imports SET cancel_requested = true, state = 'cancelled', updated_at = now(),"
		 "                              finished_at = coalesce(finished_at, now())"
		 "            WHERE id = $1 AND ($2::text IS NULL OR client_id = $2) AND state <> 'cancelled'"
		 "            RETURNING id)"
		 " SELECT pg_notify('bulk_import_cancel', id) FROM u",
		 2, id, client_id);
	if (!r)
		return -1;
	n = PQntuples(r);
	PQclear(r);
	return n == 1;
}

int h_cancel(struct request *rq, struct reply *rp)
{
	const char *id = rq->path_params[0];
	int rc = import_cancel(rq->db, id, rq->client_id);

	if (rc < 0)
		return -1;
	if (rc == 1) {
		reply_oo(rp, 202, "information", "informational", "Import cancelled");
		log_info("import %.6s... cancelled by %s", id, rq->client_id ? rq->client_id : "(tokenless)");
	} else {
		reply_oo(rp, 404, "error", "not-found", "no such import");
	}
	return 0;
}
