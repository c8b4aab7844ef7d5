/* Clients in the admin UI: list and search, register, edit, replace keys,
 * enable/disable, delete (after a confirmation page).  Every form is turned
 * into the JSON object POST /auth/register takes and checked by the same
 * client_validate (client_validate_parts for the edit and keys forms). */
#include "handlers.h"
#include "client_store.h"
#include "db.h"
#include "jose.h"
#include "log.h"
#include "ui.h"
#include "web.h"
#include <ctype.h>
#include <stdlib.h>
#include <string.h>

#define MAX_LIST 500
#define CLIENT_IMPORTS 50

/* Imports that still need a worker: running, leased, or cancelled after a
 * worker had started them and not yet cleaned up (see worker/claim.c). */
#define SQL_BUSY                                                                                   \
	"(i.state IN ('queued', 'kickoff', 'exporting', 'downloading') OR i.lease_until > now()"     \
	" OR (i.state = 'cancelled' AND NOT i.cancel_done"                                          \
	"     AND (i.provider_status_url IS NOT NULL OR i.started_at IS NOT NULL)))"

static const char *const META_FIELDS[] = { "name", "fhir_base_url", "provider_client_id", "provider_auth", "scope",
					   "kickoff_method", NULL };
static const char *const KEY_FIELDS[] = { "jwks", "jwks_uri", NULL };

/* Field names of client_validate and how the forms label them. */
static const char *const LABELS[][2] = {
	{ "name", "Name" },
	{ "fhir_base_url", "Provider FHIR base URL" },
	{ "jwks", "Public key" },
	{ "jwks_uri", "JWKS URL" },
	{ "provider_client_id", "Consumer's client_id at the provider" },
	{ "provider_auth", "Provider authentication" },
	{ "scope", "Scope" },
	{ "kickoff_method", "Kick-off method" },
	{ NULL, NULL },
};

/* Copy of `s` without surrounding white space; NULL when nothing is left. */
static char *trimmed(const char *s)
{
	size_t n;

	if (!s)
		return NULL;
	while (isspace((unsigned char)*s))
		s++;
	n = strlen(s);
	while (n && isspace((unsigned char)s[n - 1]))
		n--;
	return n ? strndup(s, n) : NULL;
}

/* The pasted public key: a JWKS goes through as text; a single JWK is
 * wrapped into a set, with its RFC 7638 thumbprint as kid when it has none.
 * Anything else goes through as text for client_validate to explain. */
static json_object *jwks_value(const char *text)
{
	char *e = NULL;
	json_object *o = web_parse_json(text, strlen(text), &e), *set, *keys;

	free(e);
	if (!o || !json_object_is_type(o, json_type_object) || json_object_object_get_ex(o, "keys", NULL) ||
	    !json_object_object_get_ex(o, "kty", NULL)) {
		json_object_put(o);
		return json_object_new_string(text);
	}
	if (!json_object_object_get_ex(o, "kid", NULL)) {
		char *kid = jose_jwk_thumbprint(o, &e);
		free(e);
		if (kid)
			json_object_object_add(o, "kid", json_object_new_string(kid));
		free(kid);
	}
	set = json_object_new_object();
	keys = json_object_new_array();
	json_object_array_add(keys, o);
	json_object_object_add(set, "keys", keys);
	return set;
}

/* The client_validate input for the posted form (only fields with text). */
static json_object *form_json(const struct form *f, unsigned parts)
{
	json_object *in = json_object_new_object();
	int i;

	for (i = 0; (parts & CV_META) && META_FIELDS[i]; i++) {
		char *v = trimmed(form_get(f, META_FIELDS[i]));
		if (v)
			json_object_object_add(in, META_FIELDS[i], json_object_new_string(v));
		free(v);
	}
	for (i = 0; (parts & CV_KEYS) && KEY_FIELDS[i]; i++) {
		char *v = trimmed(form_get(f, KEY_FIELDS[i]));
		if (v)
			json_object_object_add(in, KEY_FIELDS[i],
					       !strcmp(KEY_FIELDS[i], "jwks") ? jwks_value(v) : json_object_new_string(v));
		free(v);
	}
	return in;
}

/* Echo the posted values into Form.<form>.<field>, and the validation error
 * into Errors.<form>.<field> (or .general for a field the form lacks). */
static void form_back(HDF *h, const char *form, const struct form *f, unsigned parts, const char *field,
		      const char *msg)
{
	const char *const *lists[] = { META_FIELDS, KEY_FIELDS };
	const char *label = NULL;
	int i, l;

	for (l = 0; l < 2; l++) {
		if (!(parts & (l ? CV_KEYS : CV_META)))
			continue;
		for (i = 0; lists[l][i]; i++)
			ui_set(h, form_get(f, lists[l][i]), "Form.%s.%s", form, lists[l][i]);
	}
	if (!field)
		return;
	for (i = 0; LABELS[i][0] && !label; i++)
		if (!strcmp(LABELS[i][0], field))
			label = LABELS[i][1];
	{
		struct buf m = BUF_INIT;
		/* client_validate's messages are predicates ("is required") or
		 * statements ("keys[0]: RSA key is 1024 bits ...") */
		int predicate = !strncmp(msg, "is ", 3) || !strncmp(msg, "must ", 5) || !strncmp(msg, "longer ", 7) ||
				!strncmp(msg, "contains ", 9);
		buf_printf(&m, "%s%s%s", label ? label : "The request", predicate ? " " : ": ", msg);
		ui_set(h, buf_str(&m), "Errors.%s.%s", form, label ? field : "general");
		ui_set(h, buf_str(&m), "Errors.%s.Any", form);
		buf_free(&m);
	}
}

/* ------------------------------------------------------------ list */

int ui_clients(struct request *rq, struct reply *rp)
{
	HDF *h = ui_hdf(rq, "Clients", "clients");
	char *q = trimmed(ui_query(rq, "q"));
	char lim[16];
	PGresult *r;
	int i, n;

	snprintf(lim, sizeof lim, "%d", MAX_LIST + 1);
	r = db_q(rq->db,
		 "SELECT c.id, c.name, c.fhir_base_url,"
		 "       CASE WHEN c.jwks_uri IS NULL THEN 'JWKS' ELSE 'JWKS URL' END AS key_source,"
		 "       " UI_TIME("c.created_at") " AS created,"
		 "       (SELECT " UI_TIME("max(i.created_at)") " FROM imports i WHERE i.client_id = c.id) AS last_import,"
		 "       c.enabled"
		 "  FROM clients c"
		 " WHERE $1::text IS NULL"
		 "    OR strpos(lower(concat_ws(' ', c.name, c.fhir_base_url, c.id, c.provider_client_id, c.jwks_uri)),"
		 "              lower($1)) > 0"
		 " ORDER BY c.created_at DESC, c.id LIMIT $2::int",
		 2, q, lim);
	if (!r) {
		free(q);
		hdf_destroy(&h);
		return -1;
	}
	n = PQntuples(r);
	for (i = 0; i < n && i < MAX_LIST; i++)
		ui_set_row(h, r, i, "Clients.%d", i);
	ui_set_int(h, n > MAX_LIST ? MAX_LIST : n, "Count");
	if (n > MAX_LIST)
		ui_set_int(h, MAX_LIST, "Cut");
	ui_set(h, q, "Query");
	PQclear(r);
	free(q);
	return ui_render(rp, h, 200, "clients");
}

/* ------------------------------------------------------------ register */

static int register_page(struct request *rq, struct reply *rp, const struct form *f, const char *field,
			 const char *msg, int status)
{
	HDF *h = ui_hdf(rq, "Register a client", "clients");

	if (f)
		form_back(h, "reg", f, CV_ALL, field, msg);
	return ui_render(rp, h, status, "client_new");
}

int ui_client_new(struct request *rq, struct reply *rp)
{
	/* "use this public key" on the key generator sends the public JWKS */
	return register_page(rq, rp, ui_query_form(rq), NULL, NULL, 200);
}

int ui_client_create(struct request *rq, struct reply *rp)
{
	struct client_input ci;
	json_object *in = form_json(&rq->form, CV_ALL);
	char *field = NULL, *msg = NULL, *id = NULL;
	long long issued = 0;
	int rc = -1;

	if (client_validate(in, &ci, &field, &msg) < 0) {
		rc = register_page(rq, rp, &rq->form, field, msg, 422);
		goto out;
	}
	if (client_insert(rq->db, &ci, &id, &issued) < 0)
		goto out;
	log_info("client %s registered by %s for %s (admin UI)", id, rq->remote_user, ci.fhir_base_url);
	ui_redirect(rp, "/admin/clients/%s?done=created", id);
	rc = 0;
out:
	client_input_free(&ci);
	json_object_put(in);
	free(field);
	free(msg);
	free(id);
	return rc;
}

/* ------------------------------------------------------------ one client */

static const char SQL_CLIENT[] =
	"SELECT c.id, c.name, c.fhir_base_url, c.provider_client_id, c.provider_auth, c.scope, c.kickoff_method,"
	"       c.enabled, c.jwks_uri, coalesce(c.jwks, c.jwks_cache)::text AS keyset,"
	"       " UI_TIME("c.jwks_fetched_at") " AS jwks_fetched,"
	"       " UI_TIME("c.created_at") " AS created, " UI_TIME("c.updated_at") " AS updated,"
	"       (SELECT count(*) FROM imports i WHERE i.client_id = c.id) AS n_imports,"
	"       (SELECT count(*) FROM imports i WHERE i.client_id = c.id AND " SQL_BUSY ") AS n_busy"
	"  FROM clients c WHERE c.id = $1";

/* The client of the path as one row of SQL_CLIENT: 1 and *out, 0 when `rp`
 * holds a 404 page, -1 on a database error. */
static int client_row(struct request *rq, struct reply *rp, PGresult **out)
{
	const char *id = rq->path_params[0];
	PGresult *r;

	*out = NULL;
	if (!web_id_ok(id))
		return ui_error(rq, rp, 404, "There is no such client.") < 0 ? -1 : 0;
	r = db_q(rq->db, SQL_CLIENT, 1, id);
	if (!r)
		return -1;
	if (PQntuples(r) != 1) {
		PQclear(r);
		return ui_error(rq, rp, 404, "There is no such client.") < 0 ? -1 : 0;
	}
	*out = r;
	return 1;
}

/* The keys of a stored JWKS (text) as Client.Keys.<n>.{kid,kty,alg}. */
static void key_list(HDF *h, const char *text)
{
	char *e = NULL;
	json_object *o = text ? web_parse_json(text, strlen(text), &e) : NULL, *keys;
	size_t i;

	free(e);
	if (o && json_object_object_get_ex(o, "keys", &keys) && json_object_is_type(keys, json_type_array)) {
		for (i = 0; i < json_object_array_length(keys); i++) {
			json_object *k = json_object_array_get_idx(keys, i), *v;
			const char *m[] = { "kid", "kty", "crv", "alg", NULL };
			int j;
			for (j = 0; m[j]; j++)
				if (json_object_object_get_ex(k, m[j], &v) && json_object_is_type(v, json_type_string))
					ui_set(h, json_object_get_string(v), "Client.Keys.%zu.%s", i, m[j]);
		}
		ui_set(h, json_object_to_json_string_ext(o, JSON_C_TO_STRING_PRETTY | JSON_C_TO_STRING_NOSLASHESCAPE),
		       "Client.JwksPretty");
	}
	json_object_put(o);
}

static void url(HDF *h, const char *name, const char *path)
{
	struct buf u = BUF_INIT;

	buf_printf(&u, "%s%s", web_base(), path);
	ui_set(h, buf_str(&u), "%s", name);
	buf_free(&u);
}

/* The client page; `form` names the form whose posted values and error are
 * shown again ("edit" or "keys"), or NULL.  A missing client is a 404. */
static int client_page(struct request *rq, struct reply *rp, const char *form, const char *field, const char *msg,
		       int status)
{
	const char *id = rq->path_params[0];
	char lim[16];
	PGresult *r = NULL;
	HDF *h = NULL;
	int i, rc = -1;

	rc = client_row(rq, rp, &r);
	if (rc <= 0)
		goto out;
	rc = -1;
	h = ui_hdf(rq, "Client", "clients");
	ui_set_row(h, r, 0, "Client");
	key_list(h, db_get(r, 0, "keyset"));
	/* the edit form starts from the stored values */
	for (i = 0; META_FIELDS[i]; i++)
		ui_set(h, db_get(r, 0, META_FIELDS[i]), "Form.edit.%s", META_FIELDS[i]);
	url(h, "Hand.TokenUrl", "/auth/token");
	url(h, "Hand.ImportUrl", "/$import");
	url(h, "Hand.JwksUrl", "/jwks");
	url(h, "Hand.SmartConfig", "/.well-known/smart-configuration");
	if (form)
		form_back(h, form, &rq->form, strcmp(form, "keys") ? CV_META : CV_KEYS, field, msg);
	PQclear(r);

	snprintf(lim, sizeof lim, "%d", CLIENT_IMPORTS);
	r = db_q(rq->db, "SELECT " UI_IMPORT_COLUMNS UI_IMPORT_FROM " WHERE i.client_id = $1"
		 " ORDER BY i.created_at DESC LIMIT $2::int", 2, id, lim);
	if (!r)
		goto out;
	for (i = 0; i < PQntuples(r); i++) {
		json_object *o = ui_import_row(r, i);
		ui_set_flat(h, o, "Imports.%d", i);
		json_object_put(o);
	}
	ui_set_int(h, CLIENT_IMPORTS, "ImportsLimit");
	rc = ui_render(rp, h, status, "client");
	h = NULL;
out:
	if (h)
		hdf_destroy(&h);
	PQclear(r);
	return rc;
}

int ui_client(struct request *rq, struct reply *rp)
{
	return client_page(rq, rp, NULL, NULL, NULL, 200);
}

/* Shared by the edit and keys forms: validate `parts` of the posted form,
 * then store with `save` (1 saved, 0 no such client, -1 error). */
static int client_post(struct request *rq, struct reply *rp, unsigned parts,
		       int (*save)(PGconn *, const char *, const struct client_input *), const char *done)
{
	const char *id = rq->path_params[0];
	struct client_input ci;
	json_object *in = form_json(&rq->form, parts);
	char *field = NULL, *msg = NULL;
	int rc = -1, n;

	memset(&ci, 0, sizeof ci);
	if (!web_id_ok(id)) {
		rc = ui_error(rq, rp, 404, "There is no such client.");
		goto out;
	}
	if (client_validate_parts(in, parts, &ci, &field, &msg) < 0) {
		rc = client_page(rq, rp, parts == CV_KEYS ? "keys" : "edit", field, msg, 422);
		goto out;
	}
	n = save(rq->db, id, &ci);
	if (n < 0)
		goto out;
	if (n == 0) {
		rc = ui_error(rq, rp, 404, "There is no such client.");
		goto out;
	}
	log_info("client %s: %s by %s (admin UI)", id, parts == CV_KEYS ? "keys replaced" : "settings changed",
		 rq->remote_user);
	ui_redirect(rp, "/admin/clients/%s?done=%s", id, done);
	rc = 0;
out:
	client_input_free(&ci);
	json_object_put(in);
	free(field);
	free(msg);
	return rc;
}

int ui_client_update(struct request *rq, struct reply *rp)
{
	return client_post(rq, rp, CV_META, client_update_meta, "saved");
}

int ui_client_keys(struct request *rq, struct reply *rp)
{
	return client_post(rq, rp, CV_KEYS, client_replace_keys, "keys");
}

int ui_client_state(struct request *rq, struct reply *rp)
{
	static const char *const VALUES[] = { "0", "1", NULL };
	const char *id = rq->path_params[0];
	int on = ui_one_of(form_get(&rq->form, "enabled"), VALUES);
	PGresult *r;
	int n;

	if (on < 0)
		return ui_error(rq, rp, 400, "The form did not say whether to enable or disable the client.");
	if (!web_id_ok(id))
		return ui_error(rq, rp, 404, "There is no such client.");
	r = db_q(rq->db, "UPDATE clients SET enabled = $2::boolean, updated_at = now() WHERE id = $1 RETURNING id", 2, id,
		 on ? "true" : "false");
	if (!r)
		return -1;
	n = PQntuples(r);
	PQclear(r);
	if (n != 1)
		return ui_error(rq, rp, 404, "There is no such client.");
	log_info("client %s %s by %s (admin UI)", id, on ? "enabled" : "disabled", rq->remote_user);
	ui_redirect(rp, "/admin/clients/%s?done=%s", id, on ? "enabled" : "disabled");
	return 0;
}

/* ------------------------------------------------------------ delete */

static int delete_page(struct request *rq, struct reply *rp, int status, const char *problem)
{
	PGresult *r;
	HDF *h;
	int rc = client_row(rq, rp, &r);

	if (rc <= 0)
		return rc;
	h = ui_hdf(rq, "Delete client", "clients");
	ui_set_row(h, r, 0, "Client");
	ui_set(h, problem, "Problem");
	PQclear(r);
	return ui_render(rp, h, status, "client_delete");
}

int ui_client_delete_ask(struct request *rq, struct reply *rp)
{
	return delete_page(rq, rp, 200, NULL);
}

int ui_client_delete(struct request *rq, struct reply *rp)
{
	const char *id = rq->path_params[0];
	PGresult *r;
	int n;

	if (!web_id_ok(id))
		return ui_error(rq, rp, 404, "There is no such client.");
	/* tokens, imports, files and outcome records go with it (ON DELETE
	 * CASCADE); refused while a worker still needs one of its imports */
	r = db_q(rq->db,
		 "DELETE FROM clients c WHERE c.id = $1"
		 "   AND NOT EXISTS (SELECT 1 FROM imports i WHERE i.client_id = c.id AND " SQL_BUSY ")"
		 " RETURNING c.id",
		 1, id);
	if (!r)
		return -1;
	n = PQntuples(r);
	PQclear(r);
	if (n != 1)   /* busy, or gone: the page tells which */
		return delete_page(rq, rp, 409, "This client still has imports that are running or being cleaned up. "
						"Cancel them or wait until they end, or disable the client instead.");
	log_info("client %s deleted by %s (admin UI)", id, rq->remote_user);
	ui_redirect(rp, "/admin/clients?done=deleted");
	return 0;
}
