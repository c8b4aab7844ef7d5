/* The route table: every URL the FastCGI binary answers, with its handler
 * and the authentication main.c enforces before calling it. */
#ifndef ROUTES_H
#define ROUTES_H
#include <stddef.h>
#include "request.h"

/* Authentication, checked only in main.c (dispatch). */
enum route_auth {
	AUTH_NONE,                 /* public */
	AUTH_ADMIN,                /* REMOTE_USER must be set (Apache Basic auth; defence in depth) */
	AUTH_BEARER,               /* valid unexpired access token; rq->client_id set */
	AUTH_BEARER_OR_TOKENLESS,  /* bearer, or no Authorization at all when status_allow_tokenless */
};

/* Route flags. */
#define ROUTE_DB 1   /* handler needs the database (503 when it is down) */
#define ROUTE_FORM 2 /* AUTH_ADMIN HTML form post: dispatch parses the body into
                      * rq->form and refuses it (403) without the CSRF token;
                      * an AUTH_ADMIN write without this flag must be JSON */

/* Handlers fill `rp` and return 0, or return -1 for an internal error, in
 * which case main.c discards whatever is in `rp` and answers 500. */
typedef int (*handler_fn)(struct request *rq, struct reply *rp);

struct route {
	const char *method;     /* "GET", "POST", "DELETE" */
	const char *pattern;    /* literal segments; "{id}" matches one non-empty segment */
	handler_fn handler;
	enum route_auth auth;
	unsigned flags;
};

extern const struct route ROUTES[];
extern const size_t NROUTES;

/* 1 when `path` matches `pattern`; captured {..} segments are appended to
 * rq->path_params (malloc'd, freed by request_reset) when rq is non-NULL. */
int route_match(const char *pattern, const char *path, struct request *rq);

#endif
