/* Admin UI plumbing shared by the ui_*.c handlers: ClearSilver rendering
 * with one layout, the CSRF secret and check, security headers, redirects
 * and small HDF helpers.
 *
 * Rendering rules (see ui_render): every page is templates/<page>.cs,
 * which only defines the macro content(); templates/layout.cs is the one
 * layout and calls it.  Config.VarEscapeMode is "html", so every var: is
 * HTML-escaped.  Only data goes into the HDF tree - never template names,
 * include paths or secrets (the one exception is the freshly generated
 * private key on the key generator page, which is shown once and never
 * stored). */
#ifndef UI_H
#define UI_H
#include "request.h"
#include <ClearSilver.h>

/* New HDF with what the layout needs: Page.Title, Page.Nav (the current
 * navigation entry), User, Root (path prefix of base_url), Csrf (the
 * user's form token; needs rq->db) and Done (a fixed message chosen by the
 * "done" query parameter).  Never NULL (aborts on out of memory). */
HDF *ui_hdf(struct request *rq, const char *title, const char *nav);
/* hdf_set_value with a formatted name; a NULL value leaves the node unset. */
void ui_set(HDF *h, const char *value, const char *namefmt, ...) __attribute__((format(printf, 3, 4)));
void ui_set_int(HDF *h, long long v, const char *namefmt, ...) __attribute__((format(printf, 3, 4)));

/* Render templates/<page>.cs inside the layout into `rp` with `status`
 * (text/html).  Destroys `h`.  0 ok, -1 on a template error (logged). */
int ui_render(struct reply *rp, HDF *h, int status, const char *page);
/* A small HTML error page (status 4xx/5xx) with a fixed message. */
int ui_error(struct request *rq, struct reply *rp, int status, const char *msg);
/* 303 See Other to Root + `path` (a path we built from validated ids). */
void ui_redirect(struct reply *rp, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* Headers on every response under /admin: CSP without inline script,
 * no framing, no referrer, no caching (the key generator's private key
 * must never be cached, and the other pages show administrative data). */
void ui_security_headers(struct reply *rp);

/* CSRF check for an admin form post: rq->form holds the parsed body and
 * its "csrf" field must be the token of rq->remote_user.  1 ok, 0 refused,
 * -1 when the secret cannot be read (database). */
int ui_csrf_ok(struct request *rq);

/* The query string parsed (GET pages; a malformed one counts as empty),
 * and the value of `name` in it or NULL.  Borrowed from the request. */
const struct form *ui_query_form(struct request *rq);
const char *ui_query(struct request *rq, const char *name);

/* Index of `v` in the NULL-terminated list `allowed`, or -1. */
int ui_one_of(const char *v, const char *const *allowed);

/* Copy the members of a flat JSON object into the HDF under the formatted
 * prefix: strings and numbers as text, true as "1" (false and null are left
 * unset, so "if:" is false). */
void ui_set_flat(HDF *h, json_object *o, const char *prefixfmt, ...) __attribute__((format(printf, 3, 4)));

/* Every non-NULL column of result row `row` into <prefix>.<column name>. */
void ui_set_row(HDF *h, const PGresult *r, int row, const char *prefixfmt, ...) __attribute__((format(printf, 4, 5)));

/* SQL: a timestamptz column as "YYYY-MM-DD HH:MM:SS" in UTC (NULL stays NULL). */
#define UI_TIME(col) "to_char(" col " AT TIME ZONE 'UTC', 'YYYY-MM-DD HH24:MI:SS')"

/* Imports as the pages and the dashboard's JSON show them (ui_imports.c):
 * "SELECT " UI_IMPORT_COLUMNS [more columns] UI_IMPORT_FROM [WHERE ...]
 * gives the rows ui_import_row turns into a flat object of display strings:
 * id, client_id, client, type, state, running, pct, files, resources, bytes,
 * throughput, created, started, duration, error. */
#define UI_IMPORT_COLUMNS                                                                             \
	"i.id, i.client_id, c.name AS client, i.export_type, i.state, i.files_done, i.files_total,"    \
	" i.resources, i.bytes, i.error_message,"                                                     \
	" (SELECT CASE WHEN count(*) > 0 AND bool_and(f.manifest_count IS NOT NULL)"                  \
	"              THEN sum(f.manifest_count) ELSE 0 END"                                         \
	"    FROM import_files f WHERE f.import_id = i.id AND f.kind = 'output') AS expected,"        \
	" " UI_TIME("i.created_at") " AS created, " UI_TIME("i.started_at") " AS started,"             \
	" extract(epoch FROM coalesce(i.finished_at, now()) - i.started_at) AS secs"
#define UI_IMPORT_FROM " FROM imports i JOIN clients c ON c.id = i.client_id"
json_object *ui_import_row(const PGresult *r, int row);

#endif
