/* bulk-import.fcgi: the FastCGI front end.  One loop accepts requests, one
 * function (dispatch) matches the route table, enforces authentication and
 * calls the handler; the buffered reply is written at the end.
 *
 * Usage: bulk-import.fcgi [-c config] [-l socket-path|:port]
 * Without -l the listening socket is fd 0 (mod_fcgid, spawn-fcgi). */
#include "auth.h"
#include "config.h"
#include "db.h"
#include "log.h"
#include "request.h"
#include "routes.h"
#include "ui.h"
#include "web.h"
#include <fcgiapp.h>
#include <curl/curl.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static PGconn *conn;   /* one connection per process */
static volatile sig_atomic_t stopping;

/* SIGTERM/SIGINT (mod_fcgid stops idle processes with SIGTERM): finish the
 * current request, then leave the accept loop and exit cleanly. */
static void on_term(int sig)
{
	(void)sig;
	stopping = 1;
	FCGX_ShutdownPending();
}

static void on_notice(void *arg, const char *msg)
{
	size_t n = strlen(msg);

	while (n && msg[n - 1] == '\n')
		n--;
	log_warn("postgres: %.*s", (int)n, msg);
}

/* Usable connection or NULL; connects lazily and reconnects when broken. */
static PGconn *get_db(void)
{
	char *err = NULL;

	/* notice a connection the server closed while we were idle (never blocks) */
	if (conn && PQstatus(conn) == CONNECTION_OK) {
		int i;
		/* a terminated backend sends an error message, then EOF: read both */
		for (i = 0; i < 3 && PQconsumeInput(conn); i++)
			(void)PQisBusy(conn);
	}
	if (conn && db_ensure(conn) == 0)
		return conn;
	if (conn) {
		PQfinish(conn);
		conn = NULL;
	}
	conn = db_connect(CFG->db_conninfo, &err);
	if (!conn) {
		log_error("%s", err);
		free(err);
		return NULL;
	}
	PQsetNoticeProcessor(conn, on_notice, NULL);
	return conn;
}

static void add_allow(struct buf *allow, const char *m)
{
	const char *p = buf_str(allow);
	size_t n = strlen(m);

	for (;;) {   /* skip duplicates */
		if (!strncmp(p, m, n) && (p[n] == ',' || p[n] == '\0'))
			return;
		p = strchr(p, ',');
		if (!p)
			break;
		p += 2;
	}
	if (allow->len)
		buf_puts(allow, ", ");
	buf_puts(allow, m);
}

/* 1 for /admin and everything under /admin/ (the HTML UI). */
static int admin_path(const char *path)
{
	return !strncmp(path, "/admin", 6) && (path[6] == '\0' || path[6] == '/');
}

/* Cross-site request forgery.  Browsers send the cached Basic credentials
 * with every request to this origin, also with requests another site makes
 * them send (a hidden auto-submitting form, a no-cors fetch).  So every
 * state-changing admin request must show that it comes from our own pages,
 * and this is the one place that checks it:
 *
 *  - HTML form posts (routes flagged ROUTE_FORM) carry a synchronizer token
 *    in the field "csrf": base64url(HMAC-SHA256(secret, REMOTE_USER)) with a
 *    random server secret kept in PostgreSQL (ui_secrets, created on first
 *    use).  It needs no session or cookie, is the same in every FastCGI
 *    process, differs per user, and a foreign page cannot read it (CSP
 *    frame-ancestors 'none', no CORS).  Missing or wrong: 403.
 *  - Any other admin write (the JSON API POST /auth/register, used with curl)
 *    must be sent as application/json: a cross-site page can only send that
 *    with a CORS preflight, which we never grant.  Otherwise: 415.
 *
 * GET requests never change state, so they need no token.
 * Returns 0 to go on, 1 when `rp` holds the refusal, -1 on internal errors. */
static int admin_write_ok(struct request *rq, struct reply *rp)
{
	char *err = NULL;
	int ok;

	if (!(rq->route->flags & ROUTE_FORM)) {
		if (web_media_type_is(rq->content_type, "application/json") ||
		    web_media_type_is(rq->content_type, "application/fhir+json"))
			return 0;
		reply_oo(rp, 415, "error", "not-supported", "Content-Type must be application/json");
		return 1;
	}
	if (!web_media_type_is(rq->content_type, "application/x-www-form-urlencoded") ||
	    form_parse(rq->body, rq->body_len, &rq->form, &err) < 0) {
		free(err);
		return ui_error(rq, rp, 400, "The form could not be read. Go back, reload the page and try again.") < 0 ? -1 : 1;
	}
	ok = ui_csrf_ok(rq);
	if (ok < 0)
		return -1;
	if (!ok) {
		log_warn("admin form post to %s by %s without a valid CSRF token refused", rq->route->pattern,
			 rq->remote_user);
		return ui_error(rq, rp, 403, "This form has expired or did not come from this server "
				"(missing or wrong CSRF token). Reload the page and try again.") < 0 ? -1 : 1;
	}
	return 0;
}

static int dispatch(struct request *rq, struct reply *rp)
{
	const struct route *r = NULL;
	struct buf allow = BUF_INIT;
	const char *method = rq->method;
	size_t i;
	int rc = 0;

	if (!strcmp(method, "HEAD")) {
		rq->head = 1;
		method = "GET";
	}
	for (i = 0; i < NROUTES; i++) {
		if (!route_match(ROUTES[i].pattern, rq->path, NULL))
			continue;
		add_allow(&allow, ROUTES[i].method);
		if (!strcmp(ROUTES[i].method, "GET"))
			add_allow(&allow, "HEAD");
		if (!r && !strcmp(ROUTES[i].method, method))
			r = &ROUTES[i];
	}
	if (!r) {
		if (allow.len) {
			reply_oo(rp, 405, "error", "not-supported", "method %.16s is not allowed here; allowed: %s",
				 rq->method, buf_str(&allow));
			reply_header(rp, "Allow", "%s", buf_str(&allow));
		} else if (admin_path(rq->path)) {
			rc = ui_error(rq, rp, 404, "There is no such page.");
		} else {
			reply_oo(rp, 404, "error", "not-found", "no such endpoint");
		}
		goto out;
	}
	rq->route = r;
	route_match(r->pattern, rq->path, rq);
	if (rq->body_too_large) {
		reply_oo(rp, 413, "error", "too-long", "request body larger than %ld bytes", CFG->max_request_body);
		goto out;
	}
	if (r->flags & ROUTE_DB) {
		rq->db = get_db();
		if (!rq->db) {
			reply_oo(rp, 503, "error", "transient", "database unavailable; try again later");
			reply_header(rp, "Retry-After", "5");
			goto out;
		}
	}
	switch (r->auth) {
	case AUTH_NONE:
		rc = 0;
		break;
	case AUTH_ADMIN:
		rc = auth_admin(rq, rp);
		break;
	case AUTH_BEARER:
		rc = auth_bearer(rq, rp, 0);
		break;
	case AUTH_BEARER_OR_TOKENLESS:
		rc = auth_bearer(rq, rp, CFG->status_allow_tokenless);
		break;
	default:
		rc = -1;   /* unknown auth kind: refuse */
	}
	if (rc == 0 && r->auth == AUTH_ADMIN && strcmp(r->method, "GET"))
		rc = admin_write_ok(rq, rp);
	if (rc != 0)
		goto out;
	rc = r->handler(rq, rp);
	if (rc == 0 && rp->status == 0)
		rc = -1;
out:
	buf_free(&allow);
	/* never leave a transaction open for the next request */
	if (rq->db && PQtransactionStatus(rq->db) != PQTRANS_IDLE) {
		PGresult *x = PQexec(rq->db, "ROLLBACK");
		PQclear(x);
	}
	return rc < 0 ? -1 : 0;
}

int main(int argc, char **argv)
{
	const char *cfg_path = NULL, *listen_on = NULL;
	char *err = NULL;
	FCGX_Request fr;
	struct request rq;
	struct reply rp;
	struct sigaction sa;
	int opt, sock = 0, cfg_ok;

	while ((opt = getopt(argc, argv, "c:l:")) != -1) {
		switch (opt) {
		case 'c': cfg_path = optarg; break;
		case 'l': listen_on = optarg; break;
		default:
			fprintf(stderr, "usage: %s [-c config] [-l socket-path|:port]\n", argv[0]);
			return 2;
		}
	}
	memset(&sa, 0, sizeof sa);
	sa.sa_handler = on_term;   /* no SA_RESTART: a blocked accept() returns */
	sigaction(SIGTERM, &sa, NULL);
	sigaction(SIGINT, &sa, NULL);
	signal(SIGPIPE, SIG_IGN);
	log_set_prog("bulk-import.fcgi");
	cfg_ok = config_load(cfg_path, &err) == 0;
	if (!cfg_ok) {
		log_error("configuration: %s", err ? err : "cannot load");
		free(err);
	} else {
		log_set_level(CFG->log_level);
	}
	curl_global_init(CURL_GLOBAL_DEFAULT);
	if (FCGX_Init() != 0) {
		log_error("FCGX_Init failed");
		return 1;
	}
	if (listen_on && *listen_on == ':') {
		/* ":port" would listen on every interface, and whoever reaches the
		 * socket can claim any REMOTE_USER: say the host explicitly */
		log_error("-l %s: give a host (e.g. 127.0.0.1%s) or a socket path", listen_on, listen_on);
		return 1;
	}
	if (listen_on) {
		sock = FCGX_OpenSocket(listen_on, 64);
		if (sock < 0) {
			log_error("cannot listen on %s", listen_on);
			return 1;
		}
	} else if (FCGX_IsCGI()) {
		log_error("not started as a FastCGI application (use mod_fcgid, spawn-fcgi or -l)");
		return 1;
	}
	FCGX_InitRequest(&fr, sock, 0);
	reply_init(&rp);
	while (!stopping && FCGX_Accept_r(&fr) >= 0) {
		if (!cfg_ok) {
			/* keep answering so the failure is visible; details are in the log */
			request_read(&rq, &fr, 0);
			reply_oo(&rp, 500, "fatal", "exception", "server configuration error");
		} else {
			request_read(&rq, &fr, (size_t)CFG->max_request_body);
			if (dispatch(&rq, &rp) < 0) {
				log_error("internal error handling %.16s %.200s", rq.method,
					  rq.route ? rq.route->pattern : "?");
				reply_reset(&rp);
				if (rq.db && PQstatus(rq.db) != CONNECTION_OK) {
					reply_oo(&rp, 503, "error", "transient", "database unavailable; try again later");
					reply_header(&rp, "Retry-After", "5");
				} else {
					reply_oo(&rp, 500, "error", "exception", "internal server error");
				}
			}
		}
		reply_header(&rp, "X-Content-Type-Options", "nosniff");
		if (admin_path(rq.path))
			ui_security_headers(&rp);
		if (reply_send(&rp, fr.out, rq.head) < 0)
			log_debug("client went away");
		if (cfg_ok)
			log_debug("%.16s %s -> %d", rq.method, rq.route ? rq.route->pattern : "(no route)", rp.status);
		request_reset(&rq);
		reply_reset(&rp);
		FCGX_Finish_r(&fr);
	}
	reply_free(&rp);
	if (conn)
		PQfinish(conn);
	curl_global_cleanup();
	return 0;
}
