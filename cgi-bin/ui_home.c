/* GET /admin/: what a provider needs (URLs, the consumer's public key as
 * JWK and PEM), where imports are stored, and what the workers are doing. */
#include "handlers.h"
#include "buf.h"
#include "config.h"
#include "db.h"
#include "jose.h"
#include "log.h"
#include "ui.h"
#include "ui_util.h"
#include "web.h"
#include <stdlib.h>
#include <string.h>

int ui_admin_root(struct request *rq, struct reply *rp)
{
	ui_redirect(rp, "/admin/");
	return 0;
}

static void endpoint(HDF *h, int i, const char *label, const char *path, const char *note)
{
	struct buf u = BUF_INIT;

	buf_printf(&u, "%s%s", web_base(), path);
	ui_set(h, label, "Endpoints.%d.Label", i);
	ui_set(h, buf_str(&u), "Endpoints.%d.Url", i);
	ui_set(h, note, "Endpoints.%d.Note", i);
	buf_free(&u);
}

/* The consumer's public keys: JWK (pretty) and PEM, for providers that
 * cannot fetch the JWKS URL. */
static void consumer_keys(HDF *h)
{
	char *err = NULL;
	json_object *jwks = web_consumer_jwks(&err), *keys;
	size_t i, n;

	if (!jwks) {
		ui_set(h, err ? "The consumer JWKS file cannot be read; see the server log." :
				"No consumer key is configured (consumer_jwks_file).", "Keys.Problem");
		if (err)
			log_error("%s", err);
		free(err);
		return;
	}
	json_object_object_get_ex(jwks, "keys", &keys);
	n = json_object_array_length(keys);
	for (i = 0; i < n; i++) {
		json_object *k = json_object_array_get_idx(keys, i), *v;
		EVP_PKEY *pk = jose_jwk_to_pkey(k, 0, &err);
		char *pem = pk ? jose_pkey_to_pem(pk, 0) : NULL;

		if (json_object_object_get_ex(k, "kid", &v))
			ui_set(h, json_object_get_string(v), "Keys.%zu.Kid", i);
		if (json_object_object_get_ex(k, "alg", &v))
			ui_set(h, json_object_get_string(v), "Keys.%zu.Alg", i);
		ui_set(h, json_object_to_json_string_ext(k, JSON_C_TO_STRING_PRETTY | JSON_C_TO_STRING_NOSLASHESCAPE),
		       "Keys.%zu.Jwk", i);
		ui_set(h, pem ? pem : "(this key cannot be converted to PEM)", "Keys.%zu.Pem", i);
		if (!pk) {
			log_warn("consumer_jwks_file keys[%zu]: %s", i, err ? err : "unusable");
			free(err);
			err = NULL;
		}
		free(pem);
		EVP_PKEY_free(pk);
	}
	json_object_put(jwks);
}

int ui_home(struct request *rq, struct reply *rp)
{
	HDF *h = ui_hdf(rq, "Server", "home");
	char lease[24];
	PGresult *r = NULL;
	int i, rc = -1;

	endpoint(h, 0, "Bulk Data import ($import, the ping)", "/$import", "POST, SMART Bearer token");
	endpoint(h, 1, "Token endpoint", "/auth/token", "SMART Backend Services, private_key_jwt");
	endpoint(h, 2, "Registration (administrators)", "/auth/register", "POST application/json, Basic auth");
	endpoint(h, 3, "Consumer JWKS (our public keys)", "/jwks", "register it at the provider as our jwks_url");
	endpoint(h, 4, "SMART configuration", "/.well-known/smart-configuration", "discovery");
	endpoint(h, 5, "CapabilityStatement", "/metadata", NULL);
	endpoint(h, 6, "Import status", "/imports/{id}", "the Content-Location of a ping");
	consumer_keys(h);

	ui_set(h, CFG->storage_dir, "Storage.Dir");
	ui_set(h, CFG->cancel_delete_files ? "deleted" : "kept", "Storage.CancelledFiles");
	ui_set_int(h, CFG->export_deadline, "Storage.Deadline");

	snprintf(lease, sizeof lease, "%ld", CFG->worker_lease_seconds);
	/* Workers refresh their row every worker_lease_seconds (sql/003); a row
	 * older than two periods belongs to a process that died.  Busy threads
	 * are those holding a live lease. */
	r = db_q(rq->db,
		 "SELECT (SELECT count(*) FROM workers"
		 "         WHERE seen_at > now() - make_interval(secs => 2 * $1::int + 5)) AS alive,"
		 "       (SELECT count(*) FROM workers"
		 "         WHERE draining AND seen_at > now() - make_interval(secs => 2 * $1::int + 5)) AS draining,"
		 "       (SELECT count(*) FROM imports"
		 "         WHERE worker_id IS NOT NULL AND lease_until > now()) AS busy",
		 1, lease);
	if (!r)
		goto out;
	ui_set(h, db_get(r, 0, "alive"), "Workers.Processes");
	ui_set(h, db_get(r, 0, "draining"), "Workers.Draining");
	ui_set(h, db_get(r, 0, "busy"), "Workers.Busy");
	PQclear(r);
	r = db_q(rq->db,
		 "SELECT count(*) FILTER (WHERE state = 'queued' AND NOT cancel_requested) AS queued,"
		 "       count(*) FILTER (WHERE state IN ('kickoff', 'exporting', 'downloading')) AS running,"
		 "       coalesce(extract(epoch FROM now() - min(created_at) FILTER (WHERE state = 'queued'"
		 "                AND NOT cancel_requested)), -1) AS oldest,"
		 "       count(*) FILTER (WHERE state = 'complete') AS complete,"
		 "       count(*) FILTER (WHERE state = 'failed') AS failed,"
		 "       count(*) FILTER (WHERE state = 'cancelled') AS cancelled,"
		 "       (SELECT count(*) FROM clients) AS clients,"
		 "       (SELECT count(*) FROM clients WHERE enabled) AS enabled"
		 "  FROM imports",
		 0);
	if (!r)
		goto out;
	for (i = 0; i < PQnfields(r); i++)
		ui_set(h, PQgetvalue(r, 0, i), "Stats.%s", PQfname(r, i));
	if (atof(db_get(r, 0, "oldest")) >= 0) {
		char d[UI_FMT_MAX];
		ui_set(h, ui_fmt_duration(atof(db_get(r, 0, "oldest")), d), "Stats.OldestQueued");
	}
	ui_set_int(h, CFG->worker_threads, "Workers.ThreadsEach");
	ui_set_int(h, CFG->worker_lease_seconds, "Workers.Lease");
	rc = ui_render(rp, h, 200, "home");
	h = NULL;
out:
	if (h)
		hdf_destroy(&h);
	PQclear(r);
	return rc;
}
