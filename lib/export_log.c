/* on_log events, named and shaped like the SMART bulk-data client's export
 * log (kickoff, status_progress, status_complete, status_error,
 * status_page_complete, manifest_complete, download_request,
 * download_complete, download_error, export_complete, client_error).
 * Details never hold tokens or keys: request headers are never logged, and
 * of the response headers only Content-Location is. */
#include "export_int.h"
#include "ndjson.h"
#include <stdlib.h>
#include <string.h>

#define BODY_MAX 2000   /* bytes of a provider body kept in an event */

int xlog_on(const struct run *r)
{
	return r->ev && r->ev->on_log;
}

void xlog(struct run *r, const char *event, json_object *details)
{
	if (!details)
		details = json_object_new_object();
	if (xlog_on(r))
		r->ev->on_log(r->o->ctx, event, details);
	json_object_put(details);
}

json_object *xlog_str(const char *s)
{
	return s ? json_object_new_string(s) : NULL;
}

/* A provider body as JSON when it is JSON, else as clipped text; NULL when
 * there is none. */
static json_object *body_json(const struct http_resp *resp)
{
	json_object *doc = NULL;
	char *text;

	if (!resp || !resp->body.len)
		return NULL;
	if (!resp->body_truncated && (doc = json_tokener_parse(resp->body.data)) &&
	    json_object_is_type(doc, json_type_object))
		return doc;
	if (!resp->body_truncated)
		json_object_put(doc);
	text = xp_clip(resp->body.data, BODY_MAX);
	doc = xlog_str(text);
	free(text);
	return doc;
}

void xlog_kickoff(struct run *r, const char *url, const struct http_resp *resp, const char *error)
{
	json_object *d, *h;

	if (!xlog_on(r))
		return;
	d = json_object_new_object();
	json_object_object_add(d, "exportUrl", xlog_str(url));
	json_object_object_add(d, "method", json_object_new_string(r->o->kickoff_get ? "GET" : "POST"));
	json_object_object_add(d, "requestParameters",
			       r->o->params ? json_object_get(r->o->params) : json_object_new_object());
	json_object_object_add(d, "status", resp && resp->status ? json_object_new_int64(resp->status) : NULL);
	json_object_object_add(d, "errorCode",
			       resp && resp->status >= 400 ? json_object_new_int64(resp->status) : NULL);
	json_object_object_add(d, "errorBody", resp && resp->status >= 400 ? body_json(resp) : NULL);
	if (error)
		json_object_object_add(d, "error", json_object_new_string(error));
	h = json_object_new_object();
	if (resp && resp->content_location)
		json_object_object_add(h, "content-location", json_object_new_string(resp->content_location));
	json_object_object_add(d, "responseHeaders", h);
	xlog(r, "kickoff", d);
}

void xlog_status_progress(struct run *r, const struct http_resp *resp)
{
	json_object *d;

	if (!xlog_on(r))
		return;
	d = json_object_new_object();
	json_object_object_add(d, "body", body_json(resp));
	json_object_object_add(d, "xProgress", xlog_str(resp->x_progress));
	json_object_object_add(d, "retryAfter", xlog_str(resp->retry_after));
	xlog(r, "status_progress", d);
}

void xlog_status_error(struct run *r, const struct http_resp *resp, const char *message)
{
	json_object *d;

	if (!xlog_on(r))
		return;
	d = json_object_new_object();
	json_object_object_add(d, "body", body_json(resp));
	json_object_object_add(d, "code", resp && resp->status ? json_object_new_int64(resp->status) : NULL);
	json_object_object_add(d, "message", xlog_str(message));
	xlog(r, "status_error", d);
}

static json_object *ttime(json_object *m)
{
	return xlog_str(xp_get_str(m, "transactionTime"));
}

static int count(json_object *m, enum xkind k)
{
	json_object *a;

	if (!json_object_object_get_ex(m, xkind_key[k], &a) || !json_object_is_type(a, json_type_array))
		return 0;
	return (int)json_object_array_length(a);
}

void xlog_status_complete(struct run *r, json_object *page)
{
	json_object *d;

	if (!xlog_on(r))
		return;
	d = json_object_new_object();
	json_object_object_add(d, "transactionTime", ttime(page));
	xlog(r, "status_complete", d);
}

void xlog_page_complete(struct run *r, json_object *page)
{
	json_object *d;

	if (!xlog_on(r))
		return;
	d = json_object_new_object();
	json_object_object_add(d, "transactionTime", ttime(page));
	json_object_object_add(d, "outputFileCount", json_object_new_int(count(page, XK_OUTPUT)));
	json_object_object_add(d, "deletedFileCount", json_object_new_int(count(page, XK_DELETED)));
	json_object_object_add(d, "errorFileCount",
			       json_object_new_int(count(page, XK_ERROR) + count(page, XK_OUTCOME)));
	xlog(r, "status_page_complete", d);
}

void xlog_manifest_complete(struct run *r)
{
	json_object *d;

	if (!xlog_on(r))
		return;
	d = json_object_new_object();
	json_object_object_add(d, "transactionTime", ttime(r->manifest));
	json_object_object_add(d, "totalOutputFileCount", json_object_new_int(count(r->manifest, XK_OUTPUT)));
	json_object_object_add(d, "totalDeletedFileCount", json_object_new_int(count(r->manifest, XK_DELETED)));
	json_object_object_add(d, "totalErrorFileCount",
			       json_object_new_int(count(r->manifest, XK_ERROR) + count(r->manifest, XK_OUTCOME)));
	json_object_object_add(d, "totalManifests", json_object_new_int(r->npages > 0 ? r->npages : 1));
	xlog(r, "manifest_complete", d);
}

void xlog_client_error(struct run *r)
{
	json_object *d;

	if (!xlog_on(r))
		return;
	d = json_object_new_object();
	json_object_object_add(d, "error", xlog_str(r->res->error_message));
	json_object_object_add(d, "code", xlog_str(r->res->error_code));
	xlog(r, "client_error", d);
}

void xlog_export_complete(struct run *r)
{
	json_object *d;

	if (!xlog_on(r))
		return;
	d = json_object_new_object();
	json_object_object_add(d, "files", json_object_new_int64(r->done_files));
	json_object_object_add(d, "resources", json_object_new_int64(r->done_lines));
	json_object_object_add(d, "bytes", json_object_new_int64(r->done_bytes));
	json_object_object_add(d, "attachments", json_object_new_int64(r->attach_stats.fetched));
	json_object_object_add(d, "duration", json_object_new_int64(xp_now_ms() - r->t0_ms));
	json_object_object_add(d, "failed", json_object_new_int(r->res->files_failed));
	{
		/* how the 429 handling went: answers seen, lowest concurrency */
		int i, throttled = 0, minc = 0;

		for (i = 0; i < r->nhosts; i++) {
			throttled += r->hosts[i]->throttled;
			if (!minc || r->hosts[i]->min_limit < minc)
				minc = r->hosts[i]->min_limit;
		}
		json_object_object_add(d, "throttled", json_object_new_int(throttled));
		if (minc)
			json_object_object_add(d, "minConcurrency", json_object_new_int(minc));
	}
	xlog(r, "export_complete", d);
}
