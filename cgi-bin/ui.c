#include "ui.h"
#include "buf.h"
#include "b64.h"
#include "db.h"
#include "form.h"
#include "log.h"
#include "ui_util.h"
#include "web.h"
#include <limits.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <openssl/crypto.h>
#include <openssl/rand.h>

/* ------------------------------------------------------------ templates */

static int readable(const char *dir)
{
	struct buf p = BUF_INIT;
	int ok;

	buf_printf(&p, "%s/layout.cs", dir);
	ok = access(buf_str(&p), R_OK) == 0;
	buf_free(&p);
	return ok;
}

/* The templates directory: $BULK_IMPORT_TEMPLATES (set by the Apache
 * block), else next to the binary: build/bin -> ../../templates (source
 * tree) or lib/bulk-import/cgi-bin -> ../../../share/bulk-import/templates
 * (make install).  Looked up once per process. */
static const char *template_dir(void)
{
	static char *dir;
	static const char *const rel[] = { "/../../templates", "/../../../share/bulk-import/templates", NULL };
	const char *env = getenv("BULK_IMPORT_TEMPLATES");
	char exe[PATH_MAX];
	ssize_t n;
	int i;

	if (dir)
		return dir;
	if (env && *env) {
		dir = strdup(env);
	} else if ((n = readlink("/proc/self/exe", exe, sizeof exe - 1)) > 0) {
		exe[n] = '\0';
		*strrchr(exe, '/') = '\0';
		for (i = 0; rel[i] && !dir; i++) {
			struct buf p = BUF_INIT;
			buf_printf(&p, "%s%s", exe, rel[i]);
			if (readable(buf_str(&p)))
				dir = buf_detach(&p);
			else
				buf_free(&p);
		}
	}
	if (!dir)
		dir = strdup("templates");
	if (!dir)
		abort();
	return dir;
}

static void set_v(HDF *h, const char *name, const char *value)
{
	NEOERR *err = hdf_set_value(h, name, value);

	if (err != STATUS_OK) {
		nerr_ignore(&err);
		abort();   /* out of memory */
	}
}

void ui_set(HDF *h, const char *value, const char *namefmt, ...)
{
	struct buf name = BUF_INIT;
	va_list ap;

	if (!value)
		return;
	va_start(ap, namefmt);
	buf_vprintf(&name, namefmt, ap);
	va_end(ap);
	set_v(h, buf_str(&name), value);
	buf_free(&name);
}

void ui_set_int(HDF *h, long long v, const char *namefmt, ...)
{
	struct buf name = BUF_INIT;
	char num[32];
	va_list ap;

	va_start(ap, namefmt);
	buf_vprintf(&name, namefmt, ap);
	va_end(ap);
	snprintf(num, sizeof num, "%lld", v);
	set_v(h, buf_str(&name), num);
	buf_free(&name);
}

/* Path part of base_url ("" for a server root), so links work when the
 * consumer is published under a prefix. */
static const char *root_path(void)
{
	const char *b = web_base(), *p = strstr(b, "://");

	if (!p)
		return "";
	p = strchr(p + 3, '/');
	return p ? p : "";
}

/* Messages after a redirect (?done=...): fixed texts, never request data. */
static const char *const DONE_KEYS[] = { "created", "saved", "keys", "enabled", "disabled", "deleted", "cancelled",
					 NULL };
static const char *const DONE_TEXT[] = {
	"Client registered. Hand the values below to the provider.",
	"Changes saved.",
	"Keys replaced.",
	"Client enabled: it can get tokens and start imports again.",
	"Client disabled: it cannot get tokens or start imports.",
	"Client deleted.",
	"Import cancelled.",
};

int ui_one_of(const char *v, const char *const *allowed)
{
	int i;

	for (i = 0; v && allowed[i]; i++)
		if (!strcmp(v, allowed[i]))
			return i;
	return -1;
}

void ui_set_flat(HDF *h, json_object *o, const char *prefixfmt, ...)
{
	struct buf prefix = BUF_INIT;
	va_list ap;

	va_start(ap, prefixfmt);
	buf_vprintf(&prefix, prefixfmt, ap);
	va_end(ap);
	json_object_object_foreach(o, key, v) {
		if (json_object_is_type(v, json_type_boolean))
			ui_set(h, json_object_get_boolean(v) ? "1" : NULL, "%s.%s", buf_str(&prefix), key);
		else if (v)
			ui_set(h, json_object_get_string(v), "%s.%s", buf_str(&prefix), key);
	}
	buf_free(&prefix);
}

void ui_set_row(HDF *h, const PGresult *r, int row, const char *prefixfmt, ...)
{
	struct buf prefix = BUF_INIT;
	va_list ap;
	int c;

	va_start(ap, prefixfmt);
	buf_vprintf(&prefix, prefixfmt, ap);
	va_end(ap);
	for (c = 0; c < PQnfields(r); c++)
		if (!PQgetisnull(r, row, c))
			ui_set(h, PQgetvalue(r, row, c), "%s.%s", buf_str(&prefix), PQfname(r, c));
	buf_free(&prefix);
}

const struct form *ui_query_form(struct request *rq)
{
	char *err = NULL;

	if (!rq->qs_parsed) {
		rq->qs_parsed = 1;
		if (form_parse(rq->query, strlen(rq->query), &rq->qs, &err) < 0) {
			form_free(&rq->qs);
			free(err);
		}
	}
	return &rq->qs;
}

const char *ui_query(struct request *rq, const char *name)
{
	return form_get(ui_query_form(rq), name);
}

/* ------------------------------------------------------------ CSRF */

/* The CSRF secret: 32 random bytes (hex) in ui_secrets, created by whichever
 * process needs it first and cached for the life of the process.  Deleting
 * the row (and restarting Apache) rotates it. */
static char *csrf_secret(PGconn *db)
{
	static char *secret;
	PGresult *r = NULL;
	char *fresh = NULL;
	unsigned char raw[32];
	int i;

	if (secret || !db)
		return secret;
	for (i = 0; i < 2 && !secret; i++) {
		r = db_q(db, "SELECT value FROM ui_secrets WHERE name = 'csrf'", 0);
		if (!r)
			break;
		if (PQntuples(r) == 1) {
			secret = strdup(db_get(r, 0, "value"));
			if (!secret)
				abort();
		} else if (!fresh) {
			if (RAND_bytes(raw, sizeof raw) != 1)
				break;
			fresh = hex_encode(raw, sizeof raw);
			OPENSSL_cleanse(raw, sizeof raw);
			if (db_cmd(db, "INSERT INTO ui_secrets (name, value) VALUES ('csrf', $1) ON CONFLICT (name) DO NOTHING",
				   1, fresh) < 0)
				break;
		}
		PQclear(r);
		r = NULL;
	}
	PQclear(r);
	if (fresh) {
		OPENSSL_cleanse(fresh, strlen(fresh));
		free(fresh);
	}
	if (!secret)
		log_error("cannot read or create the CSRF secret (table ui_secrets)");
	return secret;
}

int ui_csrf_ok(struct request *rq)
{
	const char *s = csrf_secret(rq->db);

	if (!s)
		return -1;
	return ui_csrf_check((const unsigned char *)s, strlen(s), rq->remote_user, form_get(&rq->form, "csrf"));
}

/* ------------------------------------------------------------ pages */

HDF *ui_hdf(struct request *rq, const char *title, const char *nav)
{
	HDF *h = NULL;
	NEOERR *err = hdf_init(&h);
	const char *s;
	char tok[UI_CSRF_LEN + 1];
	int i;

	if (err != STATUS_OK) {
		nerr_ignore(&err);
		abort();
	}
	ui_set(h, title, "Page.Title");
	ui_set(h, nav, "Page.Nav");
	ui_set(h, rq->remote_user, "User");
	ui_set(h, root_path(), "Root");
	ui_set(h, web_base(), "Base");
	s = csrf_secret(rq->db);
	if (s && ui_csrf_token((const unsigned char *)s, strlen(s), rq->remote_user, tok) == 0)
		ui_set(h, tok, "Csrf");
	i = ui_one_of(ui_query(rq, "done"), DONE_KEYS);
	if (i >= 0)
		ui_set(h, DONE_TEXT[i], "Done");
	return h;
}

static NEOERR *collect(void *ctx, char *s)
{
	buf_puts(ctx, s);
	return STATUS_OK;
}

static int cs_failed(NEOERR *err, const char *what)
{
	STRING str;

	string_init(&str);
	nerr_error_string(err, &str);
	log_error("template %s: %s", what, str.buf ? str.buf : "error");
	string_clear(&str);
	nerr_ignore(&err);
	return -1;
}

int ui_render(struct reply *rp, HDF *h, int status, const char *page)
{
	const char *files[] = { "macros", page, "layout", NULL };
	const char *dir = template_dir();
	struct buf out = BUF_INIT, path = BUF_INIT;
	CSPARSE *cs = NULL;
	NEOERR *err;
	const char *start;
	int i, rc = -1;

	/* before cs_init and any parsing: every var: is HTML-escaped */
	set_v(h, "Config.VarEscapeMode", "html");
	err = cs_init(&cs, h);
	if (err != STATUS_OK) {
		cs_failed(err, page);
		goto out;
	}
	err = cgi_register_strfuncs(cs);
	if (err != STATUS_OK) {
		cs_failed(err, page);
		goto out;
	}
	for (i = 0; files[i]; i++) {
		buf_reset(&path);
		buf_printf(&path, "%s/%s.cs", dir, files[i]);
		err = cs_parse_file(cs, buf_str(&path));
		if (err != STATUS_OK) {
			cs_failed(err, buf_str(&path));
			goto out;
		}
	}
	err = cs_render(cs, &out, collect);
	if (err != STATUS_OK) {
		cs_failed(err, page);
		goto out;
	}
	/* the page file's text outside its macro is only whitespace */
	start = buf_str(&out);
	while (*start && *start != '<')
		start++;
	rp->status = status;
	rp->content_type = "text/html; charset=utf-8";
	buf_reset(&rp->body);
	buf_puts(&rp->body, start);
	rc = 0;
out:
	cs_destroy(&cs);
	hdf_destroy(&h);
	buf_free(&out);
	buf_free(&path);
	return rc;
}

int ui_error(struct request *rq, struct reply *rp, int status, const char *msg)
{
	HDF *h = ui_hdf(rq, status == 404 ? "Not found" : "Error", "");

	ui_set_int(h, status, "Error.Status");
	ui_set(h, msg, "Error.Message");
	return ui_render(rp, h, status, "error");
}

void ui_redirect(struct reply *rp, const char *fmt, ...)
{
	struct buf p = BUF_INIT;
	va_list ap;

	va_start(ap, fmt);
	buf_vprintf(&p, fmt, ap);
	va_end(ap);
	rp->status = 303;
	rp->content_type = NULL;
	buf_reset(&rp->body);
	/* relative (RFC 9110): stays on the host name the browser used, which
	 * CSP form-action 'self' also requires for redirects after a post */
	reply_header(rp, "Location", "%s%s", root_path(), buf_str(&p));
	buf_free(&p);
}

void ui_security_headers(struct reply *rp)
{
	reply_header(rp, "Content-Security-Policy",
		     "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self'; connect-src 'self';"
		     " object-src 'none'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'");
	reply_header(rp, "X-Frame-Options", "DENY");
	reply_header(rp, "Referrer-Policy", "no-referrer");
	reply_header(rp, "Cache-Control", "no-store");
}
