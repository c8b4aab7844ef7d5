/* Claiming imports, leases, and the LISTEN connection. */
#include "worker.h"
#include "db.h"
#include "log.h"
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

void interval_str(char *out, size_t n, long seconds)
{
	snprintf(out, n, "%ld seconds", seconds > 0 ? seconds : 1);
}

double mono_now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

int import_id_ok(const char *id)
{
	size_t i;

	if (!id || !*id)
		return 0;
	for (i = 0; id[i]; i++) {
		char c = id[i];
		if (i >= 100)
			return 0;
		if (!((c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
		      c == '_' || c == '-'))
			return 0;
	}
	return 1;
}

/* The claim of docs/DESIGN.md; started_at records the first claim. */
static const char SQL_CLAIM[] =
	"UPDATE imports SET worker_id = $1, lease_until = now() + $2::interval,"
	"       attempts = attempts + 1, updated_at = now(),"
	"       started_at = COALESCE(started_at, now())"
	" WHERE id = (SELECT id FROM imports"
	"              WHERE state IN ('queued', 'kickoff', 'exporting', 'downloading')"
	"                AND NOT cancel_requested"
	"                AND (lease_until IS NULL OR lease_until < now())"
	"              ORDER BY created_at FOR UPDATE SKIP LOCKED LIMIT 1)"
	" RETURNING id";

/* Cancelled after a worker had started it (it has a provider status URL or
 * was claimed before; this includes imports cancelled after they completed
 * or failed), but nobody is running it: its worker died or drained, or it had
 * ended.  Somebody still has to DELETE at the provider and remove the files. */
static const char SQL_CLAIM_CLEANUP[] =
	"UPDATE imports SET worker_id = $1, lease_until = now() + $2::interval, updated_at = now()"
	" WHERE id = (SELECT id FROM imports"
	"              WHERE state = 'cancelled' AND cancel_requested AND NOT cancel_done"
	"                AND (provider_status_url IS NOT NULL OR started_at IS NOT NULL)"
	"                AND (lease_until IS NULL OR lease_until < now())"
	"              ORDER BY updated_at FOR UPDATE SKIP LOCKED LIMIT 1)"
	" RETURNING id";

static int claim_one(PGconn *db, const char *sql, const char *worker_id, const char *iv, char **id_out)
{
	PGresult *r = db_q(db, sql, 2, worker_id, iv);
	const char *id;

	if (!r)
		return -1;
	if (PQntuples(r) != 1 || !(id = db_get(r, 0, "id"))) {
		PQclear(r);
		return 0;
	}
	*id_out = strdup(id);
	PQclear(r);
	return *id_out ? 1 : -1;
}

int claim_next(PGconn *db, const char *worker_id, long lease_seconds, char **id_out)
{
	char iv[48];
	int rc;

	*id_out = NULL;
	if (db_ensure(db) < 0)
		return -1;
	interval_str(iv, sizeof iv, lease_seconds);
	rc = claim_one(db, SQL_CLAIM, worker_id, iv, id_out);
	if (rc < 0 && PQstatus(db) != CONNECTION_OK && db_ensure(db) == 0)
		rc = claim_one(db, SQL_CLAIM, worker_id, iv, id_out);   /* server restarted */
	if (rc != 0)
		return rc < 0 ? -1 : CLAIM_RUN;
	rc = claim_one(db, SQL_CLAIM_CLEANUP, worker_id, iv, id_out);
	if (rc != 0)
		return rc < 0 ? -1 : CLAIM_CANCEL_CLEANUP;
	return CLAIM_NONE;
}

int lease_renew(PGconn *db, const char *id, const char *worker_id, long lease_seconds,
		int *cancel_requested)
{
	char iv[48];
	PGresult *r;
	const char *c;

	*cancel_requested = 0;
	if (db_ensure(db) < 0)
		return -1;
	interval_str(iv, sizeof iv, lease_seconds);
	r = db_q(db, "UPDATE imports SET lease_until = now() + $3::interval"
		     " WHERE id = $1 AND worker_id = $2 RETURNING cancel_requested",
		 3, id, worker_id, iv);
	if (!r)
		return -1;
	if (PQntuples(r) != 1) {
		PQclear(r);
		return 0;
	}
	c = db_get(r, 0, "cancel_requested");
	*cancel_requested = c && c[0] == 't';
	PQclear(r);
	return 1;
}

int lease_release(PGconn *db, const char *id, const char *worker_id, int voluntary)
{
	if (db_ensure(db) < 0)
		return -1;
	return db_cmd(db, voluntary
		      ? "UPDATE imports SET worker_id = NULL, lease_until = NULL,"
			" attempts = GREATEST(attempts - 1, 0), updated_at = now()"
			" WHERE id = $1 AND worker_id = $2"
		      : "UPDATE imports SET worker_id = NULL, lease_until = NULL, updated_at = now()"
			" WHERE id = $1 AND worker_id = $2",
		      2, id, worker_id);
}

/* Registry ---------------------------------------------------------------- */

void slot_set_import(struct wslot *s, const char *id)
{
	pthread_mutex_lock(&W.mu);
	snprintf(s->import_id, sizeof s->import_id, "%s", id);
	atomic_store(&s->cancel, 0);
	atomic_store(&s->abandon, 0);
	pthread_mutex_unlock(&W.mu);
}

void slot_clear_import(struct wslot *s)
{
	pthread_mutex_lock(&W.mu);
	s->import_id[0] = '\0';
	atomic_store(&s->cancel, 0);
	pthread_mutex_unlock(&W.mu);
}

static void notify_cancel(const char *id)
{
	int i, found = 0;

	pthread_mutex_lock(&W.mu);
	for (i = 0; i < W.nslots; i++)
		if (W.slots[i].import_id[0] && !strcmp(W.slots[i].import_id, id)) {
			atomic_store(&W.slots[i].cancel, 1);
			found = 1;
		}
	pthread_mutex_unlock(&W.mu);
	if (found)
		log_info("import %s: cancel requested", id);
}

/* Listener ---------------------------------------------------------------- */

PGconn *listener_connect(const char *conninfo, char **err)
{
	PGconn *c = db_connect(conninfo, err);

	if (!c)
		return NULL;
	if (db_cmd(c, "LISTEN bulk_import_new", 0) < 0 || db_cmd(c, "LISTEN bulk_import_cancel", 0) < 0) {
		*err = strdup("LISTEN failed");
		PQfinish(c);
		return NULL;
	}
	return c;
}

int listener_consume(PGconn *c, int *new_work)
{
	PGnotify *n;
	int rc = 0;

	if (!PQconsumeInput(c) || PQstatus(c) != CONNECTION_OK)
		rc = -1;
	while ((n = PQnotifies(c))) {
		if (!strcmp(n->relname, "bulk_import_new"))
			*new_work = 1;
		else if (!strcmp(n->relname, "bulk_import_cancel") && n->extra && import_id_ok(n->extra))
			notify_cancel(n->extra);
		PQfreemem(n);
	}
	return rc;
}
