/* GET /imports/{id}/outcome.ndjson: the import's outcome entries, one
 * OperationOutcome per line, in the order they were recorded. */
#include "handlers.h"
#include "auth.h"
#include "db.h"
#include "oo.h"
#include "web.h"
#include <stdlib.h>

int h_outcome(struct request *rq, struct reply *rp)
{
	const char *id = rq->path_params[0];
	PGresult *r = NULL;
	int rc = -1, i, n;

	if (!web_id_ok(id)) {
		reply_oo(rp, 404, "error", "not-found", "no such import");
		goto done;
	}
	switch (auth_import_visible(rq, id)) {
	case -1:
		goto out;
	case 0:
		reply_oo(rp, 404, "error", "not-found", "no such import");
		goto done;
	}
	r = db_q(rq->db,
		 "SELECT severity, code, file_url, line, diagnostics FROM outcomes WHERE import_id = $1 ORDER BY id",
		 1, id);
	if (!r)
		goto out;
	rp->status = 200;
	rp->content_type = "application/fhir+ndjson";
	n = PQntuples(r);
	for (i = 0; i < n; i++) {
		const char *line = db_get(r, i, "line");
		json_object *oo = oo_for_line(db_get(r, i, "severity"), db_get(r, i, "code"), db_get(r, i, "file_url"),
					      line ? atoll(line) : 0, db_get(r, i, "diagnostics"));
		if (!oo)
			goto out;
		buf_puts(&rp->body, json_object_to_json_string_ext(oo, JSON_C_TO_STRING_PLAIN | JSON_C_TO_STRING_NOSLASHESCAPE));
		buf_putc(&rp->body, '\n');
		json_object_put(oo);
	}
	reply_header(rp, "Cache-Control", "no-store");
done:
	rc = 0;
out:
	PQclear(r);
	return rc;
}
