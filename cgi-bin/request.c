#include "request.h"
#include "oo.h"
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

#define DRAIN_LIMIT (64u * 1024 * 1024)

static int hexval(char c)
{
	if (c >= '0' && c <= '9') return c - '0';
	if (c >= 'a' && c <= 'f') return c - 'a' + 10;
	if (c >= 'A' && c <= 'F') return c - 'A' + 10;
	return -1;
}

const char *request_env(const struct request *rq, const char *name)
{
	return rq->fcgx ? FCGX_GetParam(name, rq->fcgx->envp) : NULL;
}

/* Path of REQUEST_URI (before '?') %-decoded, for servers that do not set
 * PATH_INFO; NUL escapes are kept encoded.  malloc'd. */
static char *path_from_uri(const char *uri)
{
	struct buf b = BUF_INIT;
	size_t i, n = strcspn(uri, "?#");
	int hi, lo;

	for (i = 0; i < n; i++) {
		if (uri[i] == '%' && i + 2 < n &&
		    (hi = hexval(uri[i + 1])) >= 0 && (lo = hexval(uri[i + 2])) >= 0 && (hi || lo)) {
			buf_putc(&b, (char)(hi * 16 + lo));
			i += 2;
		} else {
			buf_putc(&b, uri[i]);
		}
	}
	if (!b.len)
		buf_putc(&b, '/');
	return buf_detach(&b);
}

static const char *nz(const char *s)
{
	return s && *s ? s : NULL;
}

int request_read(struct request *rq, FCGX_Request *fcgx, size_t max_body)
{
	struct buf body = BUF_INIT;
	char chunk[16384];
	const char *pi;
	size_t total = 0;
	int n, rc = 0;

	memset(rq, 0, sizeof *rq);
	rq->fcgx = fcgx;
	rq->method = request_env(rq, "REQUEST_METHOD");
	if (!rq->method)
		rq->method = "";
	pi = request_env(rq, "PATH_INFO");
	if (pi && *pi)
		rq->path = strdup(pi);
	else if ((pi = request_env(rq, "REQUEST_URI")) && *pi == '/')
		rq->path = path_from_uri(pi);
	else
		rq->path = strdup("/");
	rq->query = request_env(rq, "QUERY_STRING");
	if (!rq->query)
		rq->query = "";
	rq->accept = nz(request_env(rq, "HTTP_ACCEPT"));
	rq->prefer = nz(request_env(rq, "HTTP_PREFER"));
	rq->authorization = nz(request_env(rq, "HTTP_AUTHORIZATION"));
	rq->content_type = nz(request_env(rq, "CONTENT_TYPE"));
	rq->remote_user = nz(request_env(rq, "REMOTE_USER"));

	/* Read the whole body; past the cap keep draining (up to a limit) so
	 * the server is not left blocked writing stdin, but keep nothing. */
	while ((n = FCGX_GetStr(chunk, sizeof chunk, fcgx->in)) > 0) {
		total += (size_t)n;
		if (total > max_body) {
			rq->body_too_large = 1;
			buf_free(&body);
			if (total > DRAIN_LIMIT)
				break;
			continue;
		}
		buf_append(&body, chunk, (size_t)n);
	}
	if (FCGX_GetError(fcgx->in) != 0)
		rc = -1;
	if (rq->body_too_large)
		buf_free(&body);
	rq->body_len = body.len;
	rq->body = buf_detach(&body);
	if (!rq->path || !rq->body)
		abort();
	return rc;
}

void request_reset(struct request *rq)
{
	int i;

	free(rq->path);
	free(rq->body);
	for (i = 0; i < rq->nparams; i++)
		free(rq->path_params[i]);
	free(rq->client_id);
	free(rq->scope);
	form_free(&rq->form);
	form_free(&rq->qs);
	memset(rq, 0, sizeof *rq);
}

void reply_init(struct reply *rp)
{
	memset(rp, 0, sizeof *rp);
}

void reply_reset(struct reply *rp)
{
	rp->status = 0;
	rp->content_type = NULL;
	buf_reset(&rp->headers);
	buf_reset(&rp->body);
}

void reply_free(struct reply *rp)
{
	buf_free(&rp->headers);
	buf_free(&rp->body);
	reply_init(rp);
}

void reply_header(struct reply *rp, const char *name, const char *fmt, ...)
{
	struct buf v = BUF_INIT;
	va_list ap;
	size_t i;

	va_start(ap, fmt);
	buf_vprintf(&v, fmt, ap);
	va_end(ap);
	for (i = 0; i < v.len; i++)
		if ((unsigned char)v.data[i] < 0x20 || v.data[i] == 0x7f)
			v.data[i] = ' ';
	buf_printf(&rp->headers, "%s: %s\r\n", name, buf_str(&v));
	buf_free(&v);
}

void reply_json(struct reply *rp, int status, const char *content_type, json_object *o)
{
	rp->status = status;
	rp->content_type = content_type;
	buf_reset(&rp->body);
	buf_puts(&rp->body, json_object_to_json_string_ext(o, JSON_C_TO_STRING_PLAIN | JSON_C_TO_STRING_NOSLASHESCAPE));
}

void reply_oo(struct reply *rp, int status, const char *severity, const char *code, const char *fmt, ...)
{
	struct buf d = BUF_INIT;
	json_object *oo;
	va_list ap;

	va_start(ap, fmt);
	buf_vprintf(&d, fmt, ap);
	va_end(ap);
	oo = oo_new(severity, code, buf_str(&d));
	if (!oo)
		abort();
	reply_json(rp, status, "application/fhir+json", oo);
	json_object_put(oo);
	buf_free(&d);
}

void reply_oauth_error(struct reply *rp, int status, const char *error, const char *fmt, ...)
{
	struct buf d = BUF_INIT;
	json_object *o = json_object_new_object();
	va_list ap;

	va_start(ap, fmt);
	buf_vprintf(&d, fmt, ap);
	va_end(ap);
	json_object_object_add(o, "error", json_object_new_string(error));
	if (d.len)
		json_object_object_add(o, "error_description", json_object_new_string(buf_str(&d)));
	reply_json(rp, status, "application/json", o);
	reply_header(rp, "Cache-Control", "no-store");
	reply_header(rp, "Pragma", "no-cache");
	json_object_put(o);
	buf_free(&d);
}

static const char *reason(int status)
{
	switch (status) {
	case 200: return "OK";
	case 201: return "Created";
	case 202: return "Accepted";
	case 204: return "No Content";
	case 303: return "See Other";
	case 400: return "Bad Request";
	case 401: return "Unauthorized";
	case 403: return "Forbidden";
	case 404: return "Not Found";
	case 405: return "Method Not Allowed";
	case 406: return "Not Acceptable";
	case 409: return "Conflict";
	case 410: return "Gone";
	case 411: return "Length Required";
	case 413: return "Payload Too Large";
	case 415: return "Unsupported Media Type";
	case 422: return "Unprocessable Entity";
	case 429: return "Too Many Requests";
	case 500: return "Internal Server Error";
	case 501: return "Not Implemented";
	case 502: return "Bad Gateway";
	case 503: return "Service Unavailable";
	case 504: return "Gateway Timeout";
	default: return "Status";
	}
}

int reply_send(struct reply *rp, FCGX_Stream *out, int head_only)
{
	int status = rp->status ? rp->status : 500;

	FCGX_FPrintF(out, "Status: %d %s\r\n", status, reason(status));
	if (rp->content_type)
		FCGX_FPrintF(out, "Content-Type: %s\r\n", rp->content_type);
	FCGX_FPrintF(out, "Content-Length: %lu\r\n", (unsigned long)rp->body.len);
	if (rp->headers.len)
		FCGX_PutStr(rp->headers.data, (int)rp->headers.len, out);
	FCGX_PutS("\r\n", out);
	if (!head_only && rp->body.len)
		FCGX_PutStr(rp->body.data, (int)rp->body.len, out);
	return FCGX_GetError(out) ? -1 : 0;
}
