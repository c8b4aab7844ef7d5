/* One HTTP request as the FastCGI environment presents it, and the buffered
 * reply.  Both are filled/reset once per request by main.c.
 *
 * Ownership: `char *` members are owned by the struct and freed by
 * request_reset()/reply_reset(); `const char *` members are borrowed from
 * the FastCGI environment and valid until the request finishes. */
#ifndef REQUEST_H
#define REQUEST_H
#include <stddef.h>
#include <fcgiapp.h>
#include <libpq-fe.h>
#include <json-c/json.h>
#include "buf.h"
#include "form.h"

#define REQ_MAX_PARAMS 4

struct route;

struct request {
	FCGX_Request *fcgx;            /* borrowed */
	PGconn *db;                    /* borrowed; usable connection or NULL */
	const char *method;            /* REQUEST_METHOD; "" when absent */
	char *path;                    /* PATH_INFO (%-decoded by the server), else the decoded path of REQUEST_URI */
	const char *query;             /* QUERY_STRING; "" when absent */
	const char *accept;            /* HTTP_ACCEPT; NULL when absent */
	const char *prefer;            /* HTTP_PREFER */
	const char *authorization;     /* HTTP_AUTHORIZATION (Apache: CGIPassAuth On) */
	const char *content_type;      /* CONTENT_TYPE */
	const char *remote_user;       /* REMOTE_USER set by Apache authentication */
	char *body;                    /* NUL-terminated, body_len bytes; never NULL after request_read */
	size_t body_len;
	int body_too_large;            /* body exceeded the cap; body is then empty */
	int head;                      /* HEAD served as GET without a body */
	const struct route *route;     /* matched route (borrowed from the table) */
	char *path_params[REQ_MAX_PARAMS]; /* {id} segments captured by the route */
	int nparams;
	char *client_id;               /* bearer token's client; NULL: none (tokenless) */
	char *scope;                   /* bearer token's scope */
	struct form form;              /* admin form posts: the parsed body (dispatch fills it) */
	struct form qs;                /* the parsed query string (ui_query fills it on first use) */
	int qs_parsed;
};

/* Fill `rq` from the accepted FastCGI request: environment and the whole
 * body (up to max_body bytes; a larger body sets body_too_large and is
 * drained and dropped).  0 ok, -1 when the input stream failed. */
int request_read(struct request *rq, FCGX_Request *fcgx, size_t max_body);
/* Free everything owned and zero the struct. */
void request_reset(struct request *rq);
/* Environment variable of the request (borrowed) or NULL. */
const char *request_env(const struct request *rq, const char *name);

/* The reply is buffered and written only by reply_send, so a handler error
 * at any point can still become a clean 500. */
struct reply {
	int status;                    /* 0 until a handler sets it */
	const char *content_type;      /* static string or NULL (no body type) */
	struct buf headers;            /* extra header lines "Name: value\r\n" */
	struct buf body;
};

void reply_init(struct reply *rp);
/* Drop status, headers and body (keeps buffers for the next request). */
void reply_reset(struct reply *rp);
void reply_free(struct reply *rp);
/* Add a header.  `name` must be a literal token; the formatted value has
 * CR, LF and other control characters replaced by spaces. */
void reply_header(struct reply *rp, const char *name, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
/* Body = compact json-c serialisation of `o` (borrowed). */
void reply_json(struct reply *rp, int status, const char *content_type, json_object *o);
/* FHIR error/information: OperationOutcome with one issue, application/fhir+json. */
void reply_oo(struct reply *rp, int status, const char *severity, const char *code, const char *fmt, ...)
	__attribute__((format(printf, 5, 6)));
/* OAuth 2.0 error (RFC 6749 5.2 / RFC 7591 3.2.2): {"error","error_description"},
 * application/json, Cache-Control: no-store. */
void reply_oauth_error(struct reply *rp, int status, const char *error, const char *fmt, ...)
	__attribute__((format(printf, 4, 5)));
/* Write status line, headers and body (no body when head_only). 0 ok, -1 when the client went away. */
int reply_send(struct reply *rp, FCGX_Stream *out, int head_only);

#endif
