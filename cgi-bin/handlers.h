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

/* Admin UI (ui_*.c), all under /admin/ and AUTH_ADMIN. */
int ui_admin_root(struct request *rq, struct reply *rp);     /* GET /admin -> /admin/ */
int ui_home(struct request *rq, struct reply *rp);           /* GET /admin/ (server info) */
int ui_clients(struct request *rq, struct reply *rp);        /* GET /admin/clients[?q=] */
int ui_client_new(struct request *rq, struct reply *rp);     /* GET /admin/clients/new[?jwks=] */
int ui_client_create(struct request *rq, struct reply *rp);  /* POST /admin/clients/new */
int ui_client(struct request *rq, struct reply *rp);         /* GET /admin/clients/{id} */
int ui_client_update(struct request *rq, struct reply *rp);  /* POST /admin/clients/{id} */
int ui_client_keys(struct request *rq, struct reply *rp);    /* POST /admin/clients/{id}/keys */
int ui_client_state(struct request *rq, struct reply *rp);   /* POST /admin/clients/{id}/state */
int ui_client_delete_ask(struct request *rq, struct reply *rp); /* GET /admin/clients/{id}/delete */
int ui_client_delete(struct request *rq, struct reply *rp);  /* POST /admin/clients/{id}/delete */
int ui_keys(struct request *rq, struct reply *rp);           /* GET /admin/keys */
int ui_keys_generate(struct request *rq, struct reply *rp);  /* POST /admin/keys */
int ui_imports(struct request *rq, struct reply *rp);        /* GET /admin/imports */
int ui_imports_json(struct request *rq, struct reply *rp);   /* GET /admin/imports.json */
int ui_import(struct request *rq, struct reply *rp);         /* GET /admin/imports/{id} */
int ui_import_cancel(struct request *rq, struct reply *rp);  /* POST /admin/imports/{id}/cancel */

#endif
