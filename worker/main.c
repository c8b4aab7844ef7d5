/* bulk-import-worker: runs the imports that the FastCGI app queued.
 *
 *   bulk-import-worker [-c CONFIG] [-p PIDFILE] [--once]
 *
 * Lifecycle
 *   Start-up (the only place with fatal exits, status 1): load the
 *   configuration (-c, else $BULK_IMPORT_CONFIG; BULK_IMPORT_<KEY>
 *   overrides), set the log level, load the consumer private key
 *   (consumer_private_key_file; if empty only 'open' providers work), open
 *   the listener connection (LISTEN bulk_import_new, bulk_import_cancel) and
 *   one connection per import thread, write the pid file.
 *
 *   Threads: `worker_threads` import threads wait on a condition variable.
 *   The main thread is the listener: it poll()s the listener socket and a
 *   self-pipe written by the signal handlers.  A bulk_import_new notification
 *   or the lease timer (every worker_lease_seconds, to pick up imports whose
 *   worker died) bumps a work counter and wakes the idle threads, which
 *   claim (worker/claim.c, FOR UPDATE SKIP LOCKED + lease) until nothing is
 *   left.  A bulk_import_cancel notification flags the thread running that
 *   import.
 *
 *   An import thread (worker/run_import.c) runs the export engine; from its
 *   callbacks it renews the lease every lease/3 seconds, records progress and
 *   outcomes and notices cancels.  Cancel: the engine DELETEs at the provider,
 *   files are removed if cancel_delete_files, cancel_done is set.  Lost lease:
 *   it stops writing (every write is fenced by worker_id) and never touches
 *   the provider.  A dead worker's imports are continued by whoever claims
 *   them after the lease ran out (provider status URL, manifest and files
 *   already 'done' are reused).
 *
 *   SIGHUP: reload the configuration (new CFG pointer; running imports keep
 *   the settings they started with; worker_threads, db_conninfo of open
 *   connections and the key need a restart).
 *
 *   SIGTERM/SIGINT (drain): stop claiming at once; running imports may finish
 *   for up to worker_drain_seconds.  Then they are abandoned: their lease is
 *   released (worker_id and lease_until NULL, state and provider export
 *   kept, the attempt not counted) so another worker, or this one after a
 *   restart, continues them; nothing is DELETEd at the provider.  With engine
 *   support for EXPORT_STOP_ABANDON the threads stop themselves (5 s grace);
 *   otherwise the main thread releases the leases and the process exits at
 *   once with _exit(0) (crash-equivalent for the engine, which is safe: files
 *   become visible only on commit).  A second signal abandons immediately.
 *
 *   --once: a single thread makes one claim attempt, runs that import (if
 *   any) and the process exits 0 (also at once when nothing is queued).
 */
#include "worker.h"
#include "db.h"
#include "jose.h"
#include "log.h"
#include <curl/curl.h>
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <openssl/crypto.h>

#define ABANDON_GRACE 5.0     /* seconds for threads to stop after abandon */
#define KEY_FILE_MAX (1 << 20)

struct consumer_key WKEY;
struct wstate W = { PTHREAD_MUTEX_INITIALIZER, PTHREAD_COND_INITIALIZER, 1, 0, 0, NULL, 0, -1 };

static volatile sig_atomic_t sig_term, sig_hup;
static int sigpipe_fds[2] = { -1, -1 };
static const char *pid_file;

static void on_signal(int sig)
{
	int e = errno;
	ssize_t w;

	if (sig == SIGHUP)
		sig_hup = 1;
	else
		sig_term = sig_term + 1;
	w = write(sigpipe_fds[1], "s", 1);
	(void)w;
	errno = e;
}

static void wake_main(void)
{
	ssize_t w = write(sigpipe_fds[1], "w", 1);
	(void)w;
}

static void usage(FILE *f)
{
	fprintf(f, "usage: bulk-import-worker [-c CONFIG] [-p PIDFILE] [--once]\n"
		   "  -c, --config FILE   configuration file (default: $BULK_IMPORT_CONFIG)\n"
		   "  -p, --pidfile FILE  write the process id to FILE\n"
		   "      --once          run at most one queued import, then exit\n");
}

static void die(const char *what, const char *detail)
{
	log_error("%s%s%s", what, detail ? ": " : "", detail ? detail : "");   /* stderr */
	exit(1);
}

/* Start-up ------------------------------------------------------------------ */

static char *read_file(const char *path, char **err)
{
	FILE *f = fopen(path, "rb");
	char *text;
	size_t n;

	if (!f) {
		if (asprintf(err, "%s: %s", path, strerror(errno)) < 0)
			*err = NULL;
		return NULL;
	}
	text = malloc(KEY_FILE_MAX + 1);
	if (!text)
		abort();
	n = fread(text, 1, KEY_FILE_MAX + 1, f);
	fclose(f);
	if (n > KEY_FILE_MAX) {
		OPENSSL_cleanse(text, KEY_FILE_MAX + 1);
		free(text);
		if (asprintf(err, "%s: larger than %d bytes", path, KEY_FILE_MAX) < 0)
			*err = NULL;
		return NULL;
	}
	text[n] = '\0';
	return text;
}

static void load_key(void)
{
	const char *path = CFG->consumer_private_key_file;
	json_object *v;
	char *text, *err = NULL;

	if (!path || !*path) {
		log_warn("consumer_private_key_file is not set: only providers with provider_auth 'open' can be used");
		return;
	}
	text = read_file(path, &err);
	if (!text)
		die("cannot read consumer_private_key_file", err);
	WKEY.key = jose_load_key(text, 1, &WKEY.jwk, &err);
	OPENSSL_cleanse(text, strlen(text));
	free(text);
	if (!WKEY.key) {
		char *m = NULL;
		if (asprintf(&m, "%s: %s", path, err ? err : "not a private key") < 0)
			m = NULL;
		die("bad consumer_private_key_file", m);
	}
	if (WKEY.jwk && json_object_object_get_ex(WKEY.jwk, "kid", &v))
		WKEY.kid = json_object_get_string(v);
	if (WKEY.jwk && json_object_object_get_ex(WKEY.jwk, "alg", &v))
		WKEY.alg = json_object_get_string(v);
	if (CFG->consumer_key_alg && *CFG->consumer_key_alg && !jose_alg_supported(CFG->consumer_key_alg))
		die("consumer_key_alg is not a supported algorithm", CFG->consumer_key_alg);
	if (!WKEY.alg && !(CFG->consumer_key_alg && *CFG->consumer_key_alg))
		die("cannot tell the consumer key's algorithm; set consumer_key_alg", NULL);
	log_info("consumer key loaded (kid %s, alg %s)", WKEY.kid ? WKEY.kid : "-",
		 CFG->consumer_key_alg && *CFG->consumer_key_alg ? CFG->consumer_key_alg : WKEY.alg);
}

static void write_pid_file(void)
{
	FILE *f;

	if (!pid_file)
		return;
	f = fopen(pid_file, "w");
	if (!f || fprintf(f, "%d\n", (int)getpid()) < 0 || fclose(f) != 0)
		die("cannot write the pid file", pid_file);
}

static void remove_pid_file(void)
{
	char buf[32] = "";
	FILE *f;

	if (!pid_file || !(f = fopen(pid_file, "r")))
		return;
	if (!fgets(buf, sizeof buf, f))
		buf[0] = '\0';
	fclose(f);
	if (atoi(buf) == (int)getpid())
		unlink(pid_file);
}

static void setup_signals(void)
{
	struct sigaction sa;

	if (pipe(sigpipe_fds) < 0)
		die("pipe", strerror(errno));
	fcntl(sigpipe_fds[0], F_SETFL, O_NONBLOCK);
	fcntl(sigpipe_fds[1], F_SETFL, O_NONBLOCK);
	fcntl(sigpipe_fds[0], F_SETFD, FD_CLOEXEC);
	fcntl(sigpipe_fds[1], F_SETFD, FD_CLOEXEC);
	W.wake_fd = sigpipe_fds[1];
	memset(&sa, 0, sizeof sa);
	sa.sa_handler = on_signal;
	sigemptyset(&sa.sa_mask);
	sa.sa_flags = SA_RESTART;
	sigaction(SIGTERM, &sa, NULL);
	sigaction(SIGINT, &sa, NULL);
	sigaction(SIGHUP, &sa, NULL);
	sa.sa_handler = SIG_IGN;
	sigaction(SIGPIPE, &sa, NULL);
}

/* Import threads ------------------------------------------------------------ */

static void *thread_main(void *arg)
{
	struct wslot *s = arg;
	unsigned long seen = 0;
	int attempted = 0, stop;

	for (;;) {
		pthread_mutex_lock(&W.mu);
		while (!W.draining && W.work_seq == seen && !(W.once && attempted))
			pthread_cond_wait(&W.cv, &W.mu);
		stop = W.draining || (W.once && attempted);
		seen = W.work_seq;
		pthread_mutex_unlock(&W.mu);
		if (stop)
			break;
		attempted = 1;
		for (;;) {   /* claim until nothing is left */
			char *id = NULL;
			int k, draining;

			pthread_mutex_lock(&W.mu);
			draining = W.draining;
			pthread_mutex_unlock(&W.mu);
			if (draining)
				break;
			k = claim_next(s->db, s->worker_id, CFG->worker_lease_seconds, &id);
			if (k < 0)
				log_warn("claim failed (database unavailable?); retrying at the next wake-up");
			if (k <= 0)
				break;
			if (k == CLAIM_RUN)
				run_import(s, id);
			else
				run_cancel_cleanup(s, id);
			free(id);
			if (W.once)
				break;
		}
	}
	atomic_store(&s->exited, 1);
	wake_main();
	return NULL;
}

static void bump_work(void)
{
	pthread_mutex_lock(&W.mu);
	W.work_seq++;
	pthread_cond_broadcast(&W.cv);
	pthread_mutex_unlock(&W.mu);
}

static int live_threads(void)
{
	int i, n = 0;

	for (i = 0; i < W.nslots; i++)
		n += !atomic_load(&W.slots[i].exited);
	return n;
}

/* Drain ended: give back what is still running (no DELETE at the provider). */
/* Presence for the admin UI: one row per process, refreshed at every timer
 * tick; rows of processes gone for a day are swept. */
static void heartbeat(PGconn *lc, const char *host, int nthreads, int draining)
{
	char id[300], pid[16], th[16];

	if (!lc)
		return;
	snprintf(id, sizeof id, "%s:%d", host, (int)getpid());
	snprintf(pid, sizeof pid, "%d", (int)getpid());
	snprintf(th, sizeof th, "%d", nthreads);
	db_cmd(lc, "INSERT INTO workers (id, host, pid, threads, draining) VALUES ($1, $2, $3::int, $4::int, $5::boolean)"
		   " ON CONFLICT (id) DO UPDATE SET seen_at = now(), threads = EXCLUDED.threads,"
		   " draining = EXCLUDED.draining",
	       5, id, host, pid, th, draining ? "true" : "false");
	db_cmd(lc, "DELETE FROM workers WHERE seen_at < now() - interval '1 day'", 0);
}

static void heartbeat_gone(PGconn *lc, const char *host)
{
	char id[300];

	if (!lc)
		return;
	snprintf(id, sizeof id, "%s:%d", host, (int)getpid());
	db_cmd(lc, "DELETE FROM workers WHERE id = $1", 1, id);
}

static void release_running(PGconn **lc)
{
	struct held { char id[128], wid[160]; } *h = calloc((size_t)W.nslots + 1, sizeof *h);
	char *err = NULL;
	int i, n = 0;

	if (!h)
		return;
	pthread_mutex_lock(&W.mu);
	for (i = 0; i < W.nslots; i++)
		if (W.slots[i].import_id[0] && !atomic_load(&W.slots[i].exited)) {
			snprintf(h[n].id, sizeof h[n].id, "%s", W.slots[i].import_id);
			snprintf(h[n].wid, sizeof h[n].wid, "%s", W.slots[i].worker_id);
			n++;
		}
	pthread_mutex_unlock(&W.mu);
	if (n && !*lc && !(*lc = db_connect(CFG->db_conninfo, &err))) {
		log_error("cannot release leases (%s); they will expire", err ? err : "no connection");
		free(err);
		n = 0;
	}
	for (i = 0; i < n; i++)
		if (lease_release(*lc, h[i].id, h[i].wid, 1) == 0)
			log_info("import %s: given back to the queue (drain)", h[i].id);
	free(h);
}

static void reload_config(const char *config_path)
{
	const struct config *old = CFG;
	long threads = CFG->worker_threads;
	char *err = NULL;

	if (config_load(config_path, &err) < 0) {
		log_error("configuration reload failed, keeping the old one: %s", err ? err : "?");
		free(err);
		return;
	}
	if (CFG->worker_lease_seconds < 3 || CFG->export_deadline <= 0) {
		log_error("configuration reload refused: worker_lease_seconds must be at least 3"
			  " and export_deadline positive; keeping the old one");
		__atomic_store_n(&CFG, old, __ATOMIC_RELEASE);
		return;
	}
	log_set_level(CFG->log_level);
	log_info("configuration reloaded");
	if (CFG->worker_threads != threads)
		log_warn("worker_threads changes take effect after a restart");
}

int main(int argc, char **argv)
{
	static const struct option longopts[] = {
		{ "config", required_argument, NULL, 'c' },
		{ "pidfile", required_argument, NULL, 'p' },
		{ "once", no_argument, NULL, 'o' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	const char *config_path = NULL;
	char host[64] = "localhost", *err = NULL;
	PGconn *lc;
	sigset_t block, old;
	double t, next_timer, drain_deadline = 0, abandon_deadline = 0, reconnect_at = 0;
	int opt, i, once = 0, nthreads, draining = 0, abandoning = 0;
	sig_atomic_t term_seen = 0;

	while ((opt = getopt_long(argc, argv, "c:p:h", longopts, NULL)) != -1) {
		switch (opt) {
		case 'c': config_path = optarg; break;
		case 'p': pid_file = optarg; break;
		case 'o': once = 1; break;
		case 'h': usage(stdout); return 0;
		default: usage(stderr); return 2;
		}
	}
	if (optind != argc) {
		usage(stderr);
		return 2;
	}

	log_set_prog("worker");
	if (config_load(config_path, &err) < 0)
		die("configuration", err ? err : "cannot load");
	log_set_level(CFG->log_level);
	if (CFG->worker_lease_seconds < 3)
		die("worker_lease_seconds must be at least 3", NULL);
	if (CFG->export_deadline <= 0)
		die("export_deadline must be positive", NULL);
	load_key();
	if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK)
		die("libcurl initialisation failed", NULL);
	if (!PQisthreadsafe())
		die("libpq is not thread-safe", NULL);

	nthreads = once ? 1 : (int)(CFG->worker_threads > 0 ? CFG->worker_threads : 1);
	if (nthreads > 256)
		nthreads = 256;
	W.once = once;
	lc = listener_connect(CFG->db_conninfo, &err);
	if (!lc)
		die("PostgreSQL (db_conninfo)", err);
	W.slots = calloc((size_t)nthreads, sizeof *W.slots);
	if (!W.slots)
		abort();
	W.nslots = nthreads;
	gethostname(host, sizeof host - 1);
	host[sizeof host - 1] = '\0';
	for (i = 0; i < nthreads; i++) {
		struct wslot *s = &W.slots[i];
		s->index = i;
		snprintf(s->worker_id, sizeof s->worker_id, "%s:%d:t%d", host, (int)getpid(), i + 1);
		if (!(s->db = db_connect(CFG->db_conninfo, &err)))
			die("PostgreSQL (db_conninfo)", err);
	}
	setup_signals();
	heartbeat(lc, host, nthreads, 0);
	write_pid_file();   /* the readiness signal for scripts/services.sh */

	/* threads never see the signals; the main thread handles them */
	sigemptyset(&block);
	sigaddset(&block, SIGTERM);
	sigaddset(&block, SIGINT);
	sigaddset(&block, SIGHUP);
	pthread_sigmask(SIG_BLOCK, &block, &old);
	for (i = 0; i < nthreads; i++)
		if ((errno = pthread_create(&W.slots[i].thread, NULL, thread_main, &W.slots[i])) != 0)
			die("cannot start a thread", strerror(errno));
	pthread_sigmask(SIG_SETMASK, &old, NULL);
	log_info("started: %d thread%s%s, lease %lds, drain %lds", nthreads, nthreads == 1 ? "" : "s",
		 once ? " (--once)" : "", CFG->worker_lease_seconds, CFG->worker_drain_seconds);

	next_timer = mono_now() + (double)CFG->worker_lease_seconds;
	for (;;) {
		struct pollfd pfd[2];
		double wake;
		int nfds = 1, timeout_ms;
		char drainbuf[64];

		if (sig_hup) {
			sig_hup = 0;
			reload_config(config_path);
		}
		t = mono_now();
		if (sig_term != term_seen) {
			term_seen = sig_term;
			if (!draining) {
				draining = 1;
				drain_deadline = t + (double)(CFG->worker_drain_seconds > 0 ? CFG->worker_drain_seconds : 0);
				pthread_mutex_lock(&W.mu);
				W.draining = 1;
				pthread_cond_broadcast(&W.cv);
				pthread_mutex_unlock(&W.mu);
				log_info("stopping: no new claims; running imports have %lds to finish",
					 CFG->worker_drain_seconds);
				heartbeat(lc, host, nthreads, 1);
			} else if (!abandoning) {
				drain_deadline = t;
				log_info("second signal: giving running imports back now");
			}
		}
		if (live_threads() == 0)
			break;
		if (draining && !abandoning && t >= drain_deadline) {
			abandoning = 1;
			abandon_deadline = t + (WORKER_CAN_ABANDON ? ABANDON_GRACE : 0);
			for (i = 0; i < W.nslots; i++)
				atomic_store(&W.slots[i].abandon, 1);
		}
		if (abandoning && t >= abandon_deadline) {
			release_running(&lc);
			heartbeat_gone(lc, host);
			log_info("exiting with imports given back to the queue");
			remove_pid_file();
			fflush(NULL);
			_exit(0);   /* threads may be inside the engine: no atexit clean-up */
		}
		if (!draining && t >= next_timer) {
			int new_work = 0;
			heartbeat(lc, host, nthreads, 0);
			/* notifications that arrived during the heartbeat's queries */
			if (lc && listener_consume(lc, &new_work) == 0 && new_work)
				bump_work();
			bump_work();   /* lease-expiry recovery */
			next_timer = t + (double)CFG->worker_lease_seconds;
		}
		if (!lc && t >= reconnect_at) {
			if ((lc = listener_connect(CFG->db_conninfo, &err))) {
				log_info("listener reconnected");
				if (!draining)
					bump_work();   /* notifications may have been missed */
			} else {
				log_warn("listener: %s; retrying in 5s", err ? err : "cannot connect");
				free(err);
				err = NULL;
				reconnect_at = t + 5;
			}
		}

		wake = t + 60;
		if (!draining && next_timer < wake)
			wake = next_timer;
		if (draining && !abandoning && drain_deadline < wake)
			wake = drain_deadline;
		if (abandoning && abandon_deadline < wake)
			wake = abandon_deadline;
		if (!lc && reconnect_at < wake)
			wake = reconnect_at;
		timeout_ms = wake > t ? (int)((wake - t) * 1000) + 1 : 0;

		pfd[0].fd = sigpipe_fds[0];
		pfd[0].events = POLLIN;
		pfd[0].revents = 0;
		if (lc) {
			pfd[1].fd = PQsocket(lc);
			pfd[1].events = POLLIN;
			pfd[1].revents = 0;
			nfds = 2;
		}
		if (poll(pfd, (nfds_t)nfds, timeout_ms) < 0) {
			if (errno != EINTR)
				log_warn("poll: %s", strerror(errno));
			continue;
		}
		if (pfd[0].revents)
			while (read(sigpipe_fds[0], drainbuf, sizeof drainbuf) > 0)
				;
		if (lc && pfd[1].revents) {
			int new_work = 0;
			if (listener_consume(lc, &new_work) < 0) {
				log_warn("listener connection lost: %s", PQerrorMessage(lc));
				PQfinish(lc);
				lc = NULL;
				reconnect_at = mono_now() + 1;
			}
			if (new_work && !draining)
				bump_work();
		}
	}

	for (i = 0; i < W.nslots; i++) {
		pthread_join(W.slots[i].thread, NULL);
		PQfinish(W.slots[i].db);
	}
	heartbeat_gone(lc, host);
	if (lc)
		PQfinish(lc);
	log_info("stopped");
	remove_pid_file();
	free(W.slots);
	if (WKEY.key)
		EVP_PKEY_free(WKEY.key);
	if (WKEY.jwk)
		json_object_put(WKEY.jwk);
	curl_global_cleanup();
	return 0;
}
