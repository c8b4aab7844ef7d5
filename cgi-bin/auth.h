/* Authentication and ownership checks: main.c's dispatch and the import handlers. */
#ifndef AUTH_H
#define AUTH_H
#include "request.h"

/* Bearer access token from the Authorization header, looked up by SHA-256
 * in access_tokens.  Returns 0 when authenticated (rq->client_id and
 * rq->scope set) or when there is no Authorization header and allow_none;
 * 1 when `rp` now holds a 401; -1 on an internal (database) error. */
int auth_bearer(struct request *rq, struct reply *rp, int allow_none);

/* Admin pages and registration: Apache authenticated the user (REMOTE_USER).
 * 0 ok, 1 when `rp` holds a 401. */
int auth_admin(struct request *rq, struct reply *rp);

/* 1 when the token's scope lets the client write (start imports):
 * system/ *.write, *.*, or a SMART v2 permission string with "c". */
int auth_scope_can_write(const char *scope);

/* Ownership of an import: 1 when `id` exists, is not cancelled and belongs
 * to rq->client_id (to anyone in token-less mode, client_id NULL); 0 when
 * not (answer 404, never 403: no existence leak); -1 on a database error. */
int auth_import_visible(struct request *rq, const char *id);

#endif
