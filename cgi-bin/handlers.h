/* One handler per endpoint file (h_*.c), registered in routes.c.
 * Contract: see handler_fn in routes.h. */
#ifndef HANDLERS_H
#define HANDLERS_H
#include "request.h"

int h_register(struct request *rq, struct reply *rp);   /* POST /auth/register */
int h_token(struct request *rq, struct reply *rp);      /* POST /auth/token */
int h_wellknown(struct request *rq, struct reply *rp);  /* GET /.well-known/smart-configuration */
int h_jwks(struct request *rq, struct reply *rp);       /* GET /jwks */
int h_metadata(struct request *rq, struct reply *rp);   /* GET /metadata */
int h_import(struct request *rq, struct reply *rp);     /* POST /$import */
int h_status(struct request *rq, struct reply *rp);     /* GET /imports/{id} */
int h_cancel(struct request *rq, struct reply *rp);     /* DELETE /imports/{id} */
int h_outcome(struct request *rq, struct reply *rp);    /* GET /imports/{id}/outcome.ndjson */

/* Cancel import `id` (of `client_id`, or of anyone when NULL): the one
 * cancel path of DELETE /imports/{id} and the admin UI.  Sets
 * cancel_requested and state 'cancelled' and notifies bulk_import_cancel.
 * 1 cancelled, 0 no such (not yet cancelled) import, -1 database error. */
int import_cancel(PGconn *db, const char *id, const char *client_id);

#endif
