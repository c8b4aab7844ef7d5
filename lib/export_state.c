/* Files of the manifest (numbering, names), the resume state file and
 * manifest.json.
 *
 * The state file (XSTATE_NAME, JSON, written with dest_put so it is always
 * whole) holds what a later run with o->resume needs: the kick-off URL it
 * belongs to, the status URL, the merged manifest with the page of every
 * entry (once every page is in: until then a resume pages again and finds
 * the files by URL), and per file its name, state
 * (pending/partial/done/failed), bytes, lines and SHA-256.  It is written at milestones (kick-off,
 * manifest, end) and at most every 2 s while files download. */
#include "export_int.h"
#include "buf.h"
#include "dest.h"
#include "log.h"
#include "naming.h"
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define STATE_VERSION 1
#define SAVE_EVERY_MS 2000

static const char *const xf_name[] = { "pending", "partial", "done", "failed" };

int xst_page_add(struct run *r, enum xkind k, int page)
{
	if (r->pages[k].n == r->pages[k].cap) {
		size_t cap = r->pages[k].cap ? r->pages[k].cap * 2 : 16;
		int *grown = realloc(r->pages[k].page, cap * sizeof *grown);

		if (!grown)
			return -1;
		r->pages[k].page = grown;
		r->pages[k].cap = cap;
	}
	r->pages[k].page[r->pages[k].n++] = page;
	return 0;
}

static int page_of(const struct run *r, enum xkind k, size_t i)
{
	return i < r->pages[k].n ? r->pages[k].page[i] : 1;
}

/* ---- state file -------------------------------------------------------- */

json_object *xst_file_state(struct run *r, int i)
{
	json_object *files, *it, *v;
	const struct export_file *f = &r->files[i];
	size_t k, n;

	if (!r->state || !json_object_object_get_ex(r->state, "files", &files) ||
	    !json_object_is_type(files, json_type_array))
		return NULL;
	n = json_object_array_length(files);
	/* usually at the same index; else search */
	for (k = 0; k <= n; k++) {
		it = json_object_array_get_idx(files, k == 0 ? (size_t)i : k - 1);
		if (!it || !json_object_object_get_ex(it, "seq", &v) || json_object_get_int(v) != f->seq)
			continue;
		if (!xp_get_str(it, "url") || strcmp(xp_get_str(it, "url"), f->url))
			continue;
		return it;
	}
	/* numbered otherwise (a state written before files were numbered in
	 * page order): the URL alone, which a manifest lists once */
	for (k = 0; *f->url && k < n; k++) {
		it = json_object_array_get_idx(files, k);
		if (it && xp_get_str(it, "url") && !strcmp(xp_get_str(it, "url"), f->url))
			return it;
	}
	return NULL;
}

int xst_load(struct run *r)
{
	const struct export_opts *o = r->o;
	struct buf b = BUF_INIT;
	json_object *doc = NULL, *v, *pages, *arr;
	const char *s;
	char *err = NULL;
	int ret = -1, k;
	size_t i;

	if (!o->resume)
		return 0;
	if (!dest_can_resume(o->dest)) {
		struct export_issue iss = { "warning", "not-supported", NULL, 0,
					    "this destination cannot resume: the export starts from scratch "
					    "and keeps no state" };

		log_warn("export: %s", iss.message);
		if (r->ev && r->ev->on_issue)
			r->ev->on_issue(r->o->ctx, &iss);
		return 0;
	}
	if (dest_get(o->dest, XSTATE_NAME, &b, &err) < 0) {
		if (err) {
			xp_fail(r, 500, "exception", "cannot read the resume state %s: %s", XSTATE_NAME, err);
			goto out;
		}
		r->resume = 1;   /* nothing yet: this run starts it */
		ret = 0;
		goto out;
	}
	doc = b.len ? json_tokener_parse(b.data) : NULL;
	if (!doc || !json_object_is_type(doc, json_type_object) ||
	    !json_object_object_get_ex(doc, "version", &v) || json_object_get_int(v) != STATE_VERSION) {
		xp_fail(r, 500, "exception", "%s in the destination is not a resume state this program wrote",
			XSTATE_NAME);
		goto out;
	}
	s = xp_get_str(doc, "kickoffUrl");
	if (o->url && s && strcmp(s, o->url)) {
		xp_fail(r, 400, "invalid", "the destination holds the state of another export (%s); "
			"use another destination or remove %s", s, XSTATE_NAME);
		goto out;
	}
	if (json_object_object_get_ex(doc, "cancelled", &v) && json_object_get_boolean(v)) {
		xp_fail(r, 400, "invalid", "the export in this destination was cancelled; it cannot be resumed");
		goto out;
	}
	if (!o->export_id && (s = xp_get_str(doc, "exportId")))
		r->export_id = strdup(s);
	if ((s = xp_get_str(doc, "statusUrl")))
		r->status_url = strdup(s);
	if ((s = xp_get_str(doc, "manifestUrl")))
		r->manifest_url = strdup(s);
	if (json_object_object_get_ex(doc, "manifest", &v) && json_object_is_type(v, json_type_object)) {
		r->manifest = json_object_get(v);
		if (json_object_object_get_ex(doc, "pages", &pages))
			for (k = 0; k < XK_N; k++) {
				if (!json_object_object_get_ex(pages, xkind_key[k], &arr) ||
				    !json_object_is_type(arr, json_type_array))
					continue;
				for (i = 0; i < json_object_array_length(arr); i++)
					if (xst_page_add(r, (enum xkind)k,
							 json_object_get_int(json_object_array_get_idx(arr, i))) < 0) {
						xp_fail(r, 500, "exception", "out of memory");
						goto out;
					}
			}
		if (json_object_object_get_ex(doc, "npages", &v))
			r->npages = json_object_get_int(v);
	}
	log_info("export: resuming from %s (%s)", XSTATE_NAME,
		 r->manifest ? "manifest known" : r->status_url ? "status URL known" : "not kicked off");
	r->state = doc;
	doc = NULL;
	r->resume = 1;
	ret = 0;
out:
	json_object_put(doc);
	buf_free(&b);
	free(err);
	return ret;
}

static json_object *utc_now(void)
{
	char when[32] = "";
	time_t t = time(NULL);
	struct tm tm;

	if (gmtime_r(&t, &tm))
		strftime(when, sizeof when, "%Y-%m-%dT%H:%M:%SZ", &tm);
	return json_object_new_string(when);
}

void xst_save(struct run *r, int force)
{
	const struct export_opts *o = r->o;
	json_object *doc, *files, *pages, *arr, *it;
	const char *text;
	char *err = NULL;
	long long now = xp_now_ms();
	size_t i;
	int k;

	if (!r->resume)
		return;
	if (!force && now - r->state_saved_ms < SAVE_EVERY_MS)
		return;
	r->state_saved_ms = now;
	doc = json_object_new_object();
	json_object_object_add(doc, "version", json_object_new_int(STATE_VERSION));
	json_object_object_add(doc, "exportId", xlog_str(r->export_id));
	json_object_object_add(doc, "kickoffUrl", xlog_str(o->url));
	json_object_object_add(doc, "kind", json_object_new_string(o->kind == EXPORT_STATIC ? "static" : "dynamic"));
	json_object_object_add(doc, "statusUrl", xlog_str(r->status_url));
	json_object_object_add(doc, "manifestUrl", xlog_str(r->manifest_url));
	json_object_object_add(doc, "updated", utc_now());
	json_object_object_add(doc, "complete", json_object_new_boolean(r->complete));
	if (r->stopped && r->stopped != EXPORT_STOP_ABANDON)
		json_object_object_add(doc, "cancelled", json_object_new_boolean(1));
	/* lines were filtered or rewritten: partial files are no byte ranges
	 * of the server's files */
	json_object_object_add(doc, "filtered", json_object_new_boolean(
		o->invalid_policy == EXPORT_INVALID_SKIP_LINE || o->attach.enabled));
	if (r->files && !r->pg.next) {
		/* the manifest is only kept once it is complete; until then a
		 * resume gets it again and finds its files by URL */
		json_object_object_add(doc, "manifest", json_object_get(r->manifest));
		json_object_object_add(doc, "npages", json_object_new_int(r->npages > 0 ? r->npages : 1));
		pages = json_object_new_object();
		for (k = 0; k < XK_N; k++) {
			if (!r->pages[k].n)
				continue;
			arr = json_object_new_array_ext((int)r->pages[k].n);
			for (i = 0; i < r->pages[k].n; i++)
				json_object_array_add(arr, json_object_new_int(r->pages[k].page[i]));
			json_object_object_add(pages, xkind_key[k], arr);
		}
		json_object_object_add(doc, "pages", pages);
	}
	if (r->files) {
		files = json_object_new_array_ext(r->nfiles);
		for (k = 0; k < r->nfiles; k++) {
			const struct export_file *f = &r->files[k];
			const struct dl *d = r->dls[k];

			it = json_object_new_object();
			json_object_object_add(it, "seq", json_object_new_int(f->seq));
			json_object_object_add(it, "url", xlog_str(f->url));
			json_object_object_add(it, "name", xlog_str(f->dest_name));
			json_object_object_add(it, "state", json_object_new_string(xf_name[d->xst]));
			json_object_object_add(it, "bytes", json_object_new_int64(f->bytes));
			json_object_object_add(it, "lines", json_object_new_int64(f->lines));
			if (d->xst == XF_DONE && f->sha256[0])
				json_object_object_add(it, "sha256", json_object_new_string(f->sha256));
			if (d->xst == XF_PARTIAL && !d->exact)
				json_object_object_add(it, "exact", json_object_new_boolean(0));
			if (d->xst == XF_PARTIAL && d->etag)
				json_object_object_add(it, "etag", json_object_new_string(d->etag));
			json_object_array_add(files, it);
		}
		json_object_object_add(doc, "files", files);
	}
	text = json_object_to_json_string_ext(doc, JSON_C_TO_STRING_PLAIN | JSON_C_TO_STRING_NOSLASHESCAPE);
	if (dest_put(o->dest, XSTATE_NAME, text, strlen(text), "application/json", &err) < 0)
		log_warn("export: cannot write %s: %s", XSTATE_NAME, err ? err : "error");
	free(err);
	json_object_put(doc);
}

/* ---- files and names --------------------------------------------------- */

/* A name from an earlier run's state is used only when it is one we could
 * have made: safe segments, nothing else. */
static int name_is_ours(const char *name)
{
	const char *seg = name;
	int depth = 0;

	if (!name || !*name)
		return 0;
	for (;;) {
		const char *slash = strchr(seg, '/');
		char *part = slash ? strndup(seg, (size_t)(slash - seg)) : strdup(seg);
		char *safe = part ? dest_safe_name(part) : NULL;
		int same = part && safe && *part && !strcmp(part, safe);

		free(part);
		free(safe);
		if (!same || ++depth > 3)
			return 0;
		if (!slash)
			return 1;
		seg = slash + 1;
	}
}

static int reserved(const char *name)
{
	return !strcmp(name, XSTATE_NAME) || !strcmp(name, XMANIFEST_NAME);
}

/* Makes a name unique among the names given so far (taken: a set): first
 * "<stem>-<seq>", then "<stem>-<seq>-<k>".  Never hands out a taken name:
 * two files under one name would lose one of them.  NULL when no free name
 * is found (the caller fails the file). */
static char *unique_name(char *name, int seq, json_object *taken)
{
	char *base, *cand = NULL;
	int k;

	if (!name || (!reserved(name) && !json_object_object_get_ex(taken, name, NULL)))
		goto ok;
	base = naming_uniquify(name, seq);
	free(name);
	name = NULL;
	for (k = 1; base && k <= 10000; k++) {
		if (!reserved(base) && !json_object_object_get_ex(taken, base, NULL)) {
			name = base;
			base = NULL;
			break;
		}
		free(cand);
		cand = naming_uniquify(base, k);
		if (cand && !reserved(cand) && !json_object_object_get_ex(taken, cand, NULL)) {
			name = cand;
			cand = NULL;
			break;
		}
	}
	free(base);
	free(cand);
ok:
	if (name)
		json_object_object_add(taken, name, NULL);
	return name;
}

void xst_free_files(struct run *r)
{
	int i;

	for (i = 0; r->dls && i < r->nfiles; i++) {
		if (!r->dls[i])
			continue;
		free(r->dls[i]->first_url);
		free(r->dls[i]->url);
		free(r->dls[i]->etag);
		free(r->dls[i]->store_err);
		free(r->dls[i]);
	}
	for (i = 0; r->names && i < r->nfiles; i++)
		free(r->names[i]);
	for (i = 0; i < r->nhosts; i++) {
		free(r->hosts[i]->origin);
		free(r->hosts[i]);
	}
	free(r->hosts);
	free(r->names);
	free(r->files);
	free(r->dls);
	json_object_put(r->taken);
	r->taken = NULL;
	r->hosts = NULL;
	r->names = NULL;
	r->files = NULL;
	r->dls = NULL;
	r->nfiles = r->nhosts = r->files_cap = 0;
	memset(r->built, 0, sizeof r->built);
}

static size_t arr_len(json_object *m, enum xkind k)
{
	json_object *arr;

	if (json_object_object_get_ex(m, xkind_key[k], &arr) && json_object_is_type(arr, json_type_array))
		return json_object_array_length(arr);
	return 0;
}

/* Room for `more` files; files[] may move (the dls follow it). */
static int grow_files(struct run *r, int more)
{
	int cap = r->files_cap, i;
	struct export_file *files;
	struct dl **dls;
	char **names;

	if (r->files && r->nfiles + more <= cap)
		return 0;
	while (cap < r->nfiles + more || cap < 1)
		cap = cap ? cap * 2 : 16;
	files = realloc(r->files, (size_t)cap * sizeof *files);
	if (!files)
		return -1;
	r->files = files;
	dls = realloc(r->dls, (size_t)cap * sizeof *dls);
	if (!dls)
		return -1;
	r->dls = dls;
	names = realloc(r->names, (size_t)cap * sizeof *names);
	if (!names)
		return -1;
	r->names = names;
	memset(r->files + r->files_cap, 0, (size_t)(cap - r->files_cap) * sizeof *files);
	memset(r->dls + r->files_cap, 0, (size_t)(cap - r->files_cap) * sizeof *dls);
	memset(r->names + r->files_cap, 0, (size_t)(cap - r->files_cap) * sizeof *names);
	r->files_cap = cap;
	for (i = 0; i < r->nfiles; i++)
		r->dls[i]->f = &r->files[i];
	return 0;
}

/* File n for entry i of manifest array k. */
static int add_file(struct run *r, enum xkind k, size_t i, char **err)
{
	const struct export_opts *o = r->o;
	json_object *arr, *it, *cnt, *st, *v;
	struct naming_vars nv;
	const char *type, *u, *sname;
	int n = r->nfiles;
	struct export_file *f = &r->files[n];
	struct dl *d = calloc(1, sizeof *d);

	if (!d)
		return -1;
	r->dls[n] = d;
	r->nfiles = n + 1;
	json_object_object_get_ex(r->manifest, xkind_key[k], &arr);
	it = json_object_array_get_idx(arr, i);
	type = xp_get_str(it, "type");
	u = xp_get_str(it, "url");
	f->seq = n + 1;
	/* "outcome" entries are error files to everyone outside */
	f->kind = xkind_key[k == XK_OUTCOME ? XK_ERROR : k];
	f->type = type ? type : "";
	f->url = u ? u : "";
	f->manifest_count = json_object_object_get_ex(it, "count", &cnt) &&
			    json_object_is_type(cnt, json_type_int) ? json_object_get_int64(cnt) : -1;
	d->karr = k;
	d->kidx = i;
	d->page = page_of(r, k, i);
	d->f = f;
	d->r = r;
	st = xst_file_state(r, n);
	sname = xp_get_str(st, "name");
	if (sname && name_is_ours(sname)) {
		r->names[n] = strdup(sname);   /* names stay what the first run chose */
	} else {
		nv.n = f->seq;
		nv.type = f->type;
		nv.page = d->page;
		nv.url = f->url;
		nv.export_id = r->export_id;
		r->names[n] = naming_expand(o->name_template, &nv, err);
	}
	r->names[n] = unique_name(r->names[n], f->seq, r->taken);
	if (!r->names[n])
		return -1;
	f->dest_name = r->names[n];
	if (st && !strcmp(xp_get_str(st, "state") ?: "", "done") && xp_get_str(st, "sha256") &&
	    !strcmp(xp_get_str(st, "name") ?: "", f->dest_name)) {
		/* stored by an earlier run */
		f->skip = 1;
		d->from_state = 1;
		d->xst = XF_DONE;
		d->st = DL_DONE;
		f->bytes = json_object_object_get_ex(st, "bytes", &v) ? json_object_get_int64(v) : 0;
		f->lines = json_object_object_get_ex(st, "lines", &v) ? json_object_get_int64(v) : 0;
		snprintf(f->sha256, sizeof f->sha256, "%s", xp_get_str(st, "sha256"));
	}
	return 0;
}

int xst_build_files(struct run *r)
{
	size_t len[XK_N];
	char *err = NULL;
	int k, more = 0, first = r->nfiles, page;

	for (k = 0; k < XK_N; k++) {
		len[k] = arr_len(r->manifest, (enum xkind)k);
		if (len[k] > r->built[k])
			more += (int)(len[k] - r->built[k]);
	}
	if (!r->taken && !(r->taken = json_object_new_object()))
		goto oom;
	if (grow_files(r, more) < 0)
		goto oom;
	/* page by page; within a page output, deleted, error, outcome.  Every
	 * array lists its entries in page order. */
	for (;;) {
		page = 0;
		for (k = 0; k < XK_N; k++)
			if (r->built[k] < len[k] &&
			    (!page || page_of(r, (enum xkind)k, r->built[k]) < page))
				page = page_of(r, (enum xkind)k, r->built[k]);
		if (!page)
			break;
		for (k = 0; k < XK_N; k++)
			while (r->built[k] < len[k] && page_of(r, (enum xkind)k, r->built[k]) == page) {
				if (add_file(r, (enum xkind)k, r->built[k], &err) < 0)
					goto oom;
				r->built[k]++;
			}
	}
	return r->nfiles - first;
oom:
	xp_fail(r, 500, "exception", "%s", err ? err : "out of memory");
	free(err);
	return -1;
}

/* ---- manifest.json ----------------------------------------------------- */

int xst_write_manifest(struct run *r)
{
	json_object *copy = NULL, *arr, *it;
	const char *text;
	char *err = NULL;
	int i, ret = -1;

	if (json_object_deep_copy(r->manifest, &copy, NULL) < 0 || !copy) {
		xp_fail(r, 500, "exception", "out of memory");
		goto out;
	}
	json_object_object_del(copy, "link");
	for (i = 0; i < r->nfiles; i++) {
		const struct export_file *f = &r->files[i];
		const struct dl *d = r->dls[i];

		if (!json_object_object_get_ex(copy, xkind_key[d->karr], &arr) ||
		    !(it = json_object_array_get_idx(arr, d->kidx)) || !json_object_is_type(it, json_type_object))
			continue;
		/* relative to manifest.json, which sits at the top */
		json_object_object_add(it, "destination", xlog_str(f->dest_name));
		json_object_object_add(it, "size", json_object_new_int64(f->bytes));
		if (f->sha256[0])
			json_object_object_add(it, "sha256", json_object_new_string(f->sha256));
		json_object_object_add(it, "lines", json_object_new_int64(f->lines));
	}
	text = json_object_to_json_string_ext(copy, JSON_C_TO_STRING_PRETTY | JSON_C_TO_STRING_SPACED |
						    JSON_C_TO_STRING_NOSLASHESCAPE);
	if (dest_put(r->o->dest, XMANIFEST_NAME, text, strlen(text), "application/json", &err) < 0) {
		xp_fail(r, 500, "exception", "cannot write %s: %s", XMANIFEST_NAME, err ? err : "error");
		goto out;
	}
	ret = 0;
out:
	free(err);
	json_object_put(copy);
	return ret;
}
