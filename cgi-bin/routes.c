#include "routes.h"
#include "handlers.h"
#include <stdlib.h>
#include <string.h>

const struct route ROUTES[] = {
	/* method    pattern                              handler       auth                      flags */
	{ "POST",   "/auth/register",                     h_register,  AUTH_ADMIN,               ROUTE_DB },
	{ "POST",   "/auth/token",                        h_token,     AUTH_NONE,                ROUTE_DB },
	{ "GET",    "/.well-known/smart-configuration",   h_wellknown, AUTH_NONE,                0 },
	{ "GET",    "/jwks",                              h_jwks,      AUTH_NONE,                0 },
	{ "GET",    "/metadata",                          h_metadata,  AUTH_NONE,                0 },
	{ "POST",   "/$import",                           h_import,    AUTH_BEARER,              ROUTE_DB },
	{ "GET",    "/imports/{id}",                      h_status,    AUTH_BEARER_OR_TOKENLESS, ROUTE_DB },
	{ "DELETE", "/imports/{id}",                      h_cancel,    AUTH_BEARER_OR_TOKENLESS, ROUTE_DB },
	{ "GET",    "/imports/{id}/outcome.ndjson",       h_outcome,   AUTH_BEARER_OR_TOKENLESS, ROUTE_DB },

	/* admin UI: every POST is an HTML form whose CSRF token dispatch checks */
	{ "GET",    "/admin",                             ui_admin_root,       AUTH_ADMIN, 0 },
	{ "GET",    "/admin/",                            ui_home,             AUTH_ADMIN, ROUTE_DB },
	{ "GET",    "/admin/clients",                     ui_clients,          AUTH_ADMIN, ROUTE_DB },
	{ "GET",    "/admin/clients/new",                 ui_client_new,       AUTH_ADMIN, ROUTE_DB },
	{ "POST",   "/admin/clients/new",                 ui_client_create,    AUTH_ADMIN, ROUTE_DB | ROUTE_FORM },
	{ "GET",    "/admin/clients/{id}",                ui_client,           AUTH_ADMIN, ROUTE_DB },
	{ "POST",   "/admin/clients/{id}",                ui_client_update,    AUTH_ADMIN, ROUTE_DB | ROUTE_FORM },
	{ "POST",   "/admin/clients/{id}/keys",           ui_client_keys,      AUTH_ADMIN, ROUTE_DB | ROUTE_FORM },
	{ "POST",   "/admin/clients/{id}/state",          ui_client_state,     AUTH_ADMIN, ROUTE_DB | ROUTE_FORM },
	{ "GET",    "/admin/clients/{id}/delete",         ui_client_delete_ask, AUTH_ADMIN, ROUTE_DB },
	{ "POST",   "/admin/clients/{id}/delete",         ui_client_delete,    AUTH_ADMIN, ROUTE_DB | ROUTE_FORM },
	{ "GET",    "/admin/keys",                        ui_keys,             AUTH_ADMIN, ROUTE_DB },
	{ "POST",   "/admin/keys",                        ui_keys_generate,    AUTH_ADMIN, ROUTE_DB | ROUTE_FORM },
	{ "GET",    "/admin/imports",                     ui_imports,          AUTH_ADMIN, ROUTE_DB },
	{ "GET",    "/admin/imports.json",                ui_imports_json,     AUTH_ADMIN, ROUTE_DB },
	{ "GET",    "/admin/imports/{id}",                ui_import,           AUTH_ADMIN, ROUTE_DB },
	{ "POST",   "/admin/imports/{id}/cancel",         ui_import_cancel,    AUTH_ADMIN, ROUTE_DB | ROUTE_FORM },
};
const size_t NROUTES = sizeof ROUTES / sizeof ROUTES[0];

int route_match(const char *pattern, const char *path, struct request *rq)
{
	const char *p = pattern, *s = path;
	char *caught[REQ_MAX_PARAMS];
	int ncaught = 0, i;

	while (*p) {
		if (p[0] == '{') {
			size_t n = strcspn(s, "/");
			const char *close = strchr(p, '}');
			if (!close || n == 0 || ncaught == REQ_MAX_PARAMS)
				goto no;
			caught[ncaught] = strndup(s, n);
			if (!caught[ncaught])
				abort();
			ncaught++;
			s += n;
			p = close + 1;
			continue;
		}
		if (*p != *s)
			goto no;
		p++;
		s++;
	}
	if (*s)
		goto no;
	if (rq) {
		for (i = 0; i < ncaught && rq->nparams < REQ_MAX_PARAMS; i++)
			rq->path_params[rq->nparams++] = caught[i];
	} else {
		for (i = 0; i < ncaught; i++)
			free(caught[i]);
	}
	return 1;
no:
	for (i = 0; i < ncaught; i++)
		free(caught[i]);
	return 0;
}
