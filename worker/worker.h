/* Internal interfaces of bulk-import-worker (see the comment at the top of
 * worker/main.c for the lifecycle). */
#ifndef WORKER_H
#define WORKER_H
#include <pthread.h>
#include <stdatomic.h>
#include <openssl/evp.h>
#include <json-c/json.h>
#include <libpq-fe.h>
#include "config.h"
#include "export.h"

/* Stopping an export without DELETE at the provider ("abandon": drain
 * timeout, lost lease) needs engine support: should_stop returning a value
 * that means "stop now, do not contact the provider".  Until lib/export.h
 * defines EXPORT_STOP_ABANDON, should_stop returns 0 for abandon (the export
 * keeps running with every database write fenced by worker_id, and on drain
 * the process exits after releasing the lease), because returning 1 would
 * make the engine DELETE the export another worker is about to continue. */
#ifdef EXPORT_STOP_ABANDON
#define WORKER_CAN_ABANDON 1
#define WORKER_STOP_ABANDON EXPORT_STOP_ABANDON
#else
#define WORKER_CAN_ABANDON 0
#define WORKER_STOP_ABANDON 0
#endif
#ifdef EXPORT_STOP_CANCEL
#define WORKER_STOP_CANCEL EXPORT_STOP_CANCEL
#else
#define WORKER_STOP_CANCEL 1
#endif

/* The consumer's private key, loaded once at start-up; read-only afterwards. */
struct consumer_key {
	EVP_PKEY *key;          /* NULL when consumer_private_key_file is empty */
	json_object *jwk;       /* public JWK (owns the strings below) */
	const char *kid;
	const char *alg;
};
extern struct consumer_key WKEY;

/* One import thread. */
struct wslot {
	int index;
	pthread_t thread;
	char worker_id[160];    /* host:pid:tN, written to imports.worker_id */
	PGconn *db;             /* this thread's own connection */
	char import_id[128];    /* "" when idle; guarded by the registry lock */
	atomic_int cancel;      /* listener saw bulk_import_cancel for import_id */
	atomic_int abandon;     /* main: drain time is up, give the import back */
	atomic_int exited;
};

/* Shared state between the main (listener) thread and the import threads. */
struct wstate {
	pthread_mutex_t mu;
	pthread_cond_t cv;
	unsigned long work_seq; /* bumped on bulk_import_new and on the lease timer */
	int draining;           /* no more claims; idle threads exit */
	int once;               /* --once: one claim attempt per thread, then exit */
	struct wslot *slots;
	int nslots;
	int wake_fd;            /* write end of main's self-pipe */
};
extern struct wstate W;

/* claim.c ---------------------------------------------------------------- */

enum claim_kind { CLAIM_NONE = 0, CLAIM_RUN = 1, CLAIM_CANCEL_CLEANUP = 2 };

/* Claim the oldest runnable import (docs/DESIGN.md "Worker claim"); when
 * there is none, an orphaned cancellation (cancelled while a worker that has
 * since died or drained was running it) that still needs its clean-up.
 * Returns a claim_kind with *id_out (malloc'd), or -1 on database error. */
int claim_next(PGconn *db, const char *worker_id, long lease_seconds, char **id_out);
/* Extend the lease.  1 ok (*cancel_requested set from the row), 0 lease lost
 * (another worker owns the import or it was released), -1 database error. */
int lease_renew(PGconn *db, const char *id, const char *worker_id, long lease_seconds,
		int *cancel_requested);
/* Give the import back to the queue keeping its state (lease_until and
 * worker_id NULL).  `voluntary` (drain) also takes back the attempt count the
 * claim added, so restarts do not count towards worker_max_attempts. */
int lease_release(PGconn *db, const char *id, const char *worker_id, int voluntary);
/* "%ld seconds" for $n::interval parameters. */
void interval_str(char *out, size_t n, long seconds);

/* Registry of running imports (for cancel notifications and drain). */
void slot_set_import(struct wslot *s, const char *id);
void slot_clear_import(struct wslot *s);

/* Listener connection: connect and LISTEN both channels. */
PGconn *listener_connect(const char *conninfo, char **err);
/* Read pending notifications: cancels are forwarded to the slot running the
 * import, new-work notifications set *new_work.  -1 if the connection broke. */
int listener_consume(PGconn *c, int *new_work);

/* run_import.c ----------------------------------------------------------- */

/* Run one claimed import to its end (complete, failed, cancelled) or until
 * it is given back (drain) or lost (lease). */
void run_import(struct wslot *s, const char *id);
/* Clean up an orphaned cancellation: DELETE at the provider through the
 * engine, remove files if cancel_delete_files, set cancel_done. */
void run_cancel_cleanup(struct wslot *s, const char *id);

/* Shared helpers. */
double mono_now(void);
/* 1 when id is a plausible import id ([A-Za-z0-9_-], 1..100 chars), so it
 * can be used as a directory name. */
int import_id_ok(const char *id);

#endif
