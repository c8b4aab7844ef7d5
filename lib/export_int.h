/* Private to lib/export*.c: the state of one export_run() shared by
 *   export.c        run, kick-off, status polling, manifest pages, DELETE
 *   export_dl.c     parallel downloads (validation, gzip, ranges, retries)
 *   export_state.c  resume state file, manifest.json, file names
 *   export_log.c    on_log events
 * Nothing here is thread-safe: one run per thread. */
#ifndef EXPORT_INT_H
#define EXPORT_INT_H
#include "export.h"
#include "attach.h"
#include "http.h"
#include <json-c/json.h>
#include <openssl/evp.h>
#include <zlib.h>

/* Manifest arrays, in the order files are numbered. */
enum xkind { XK_OUTPUT, XK_DELETED, XK_ERROR, XK_OUTCOME, XK_N };
extern const char *const xkind_key[XK_N];   /* "output", "deleted", "error", "outcome" */

/* The resume state file and the manifest, at the destination's top level.
 * Names must pass dest_safe_name(), hence no leading '.'. */
#define XSTATE_NAME "bulk-data-state.json"
#define XMANIFEST_NAME "manifest.json"

enum dl_state { DL_WAITING, DL_ACTIVE, DL_DONE };
/* What the state file says about a file. */
enum xf_state { XF_PENDING, XF_PARTIAL, XF_DONE, XF_FAILED };

/* Download concurrency for one origin: lowered on 429, raised slowly. */
struct xhost {
	char *origin;
	int limit, max;               /* current and configured parallel downloads */
	int active, streak;           /* transfers now; files done since the last change */
	int min_limit, throttled;     /* lowest limit seen, 429 answers */
};

/* One manifest file on its way into the destination. */
struct dl {
	struct run *r;
	struct export_file *f;
	enum xkind karr;              /* manifest array and index (manifest.json) */
	size_t kidx;
	int page;
	enum xf_state xst;
	int from_state;               /* done in an earlier run (resume) */
	const char *expect;           /* resourceType every line must have */
	int want_token;               /* requiresAccessToken */
	struct xhost *host;
	enum dl_state st;
	long long not_before;         /* monotonic ms; retry back-off */
	char *first_url;              /* the manifest's URL, resolved */
	char *url;                    /* current hop */
	int redirects, attempt, refreshed, started, logged;
	CURL *e;
	struct curl_slist *hdrs;
	struct http_resp resp;        /* headers; body only for error answers */
	long status;
	int begun;                    /* this response's body handling decided */
	int abort_why;                /* DL_ABORT_*: why dl_write stopped the transfer */
	struct dest_file *df;
	struct ndjson *nd;
	EVP_MD_CTX *sha;
	/* gzip recognised by its magic bytes (no Content-Encoding) */
	z_stream *z;
	unsigned char *zout;
	int zdone;
	unsigned char magic[2];
	int nmagic, sniffed;          /* sniffed: 0 undecided, 1 plain, 2 gzip */
	/* ranges: wire counts the bytes of the representation received, which
	 * are the bytes stored while `exact` */
	long long wire, range_from;
	int exact, no_range, ranges_none, resume_tried, resumed;
	char *etag;                   /* strong ETag of an identity 200, for If-Range */
	/* line mode (SKIP_LINE, attachments): stored line by line */
	int line_mode;
	long long cur_line;           /* physical line being stored (issues) */
	char *obuf;                   /* output buffer in line mode */
	size_t olen;
	int store_failed;
	char *store_err;
	long long line_issues, reported_line;
	long long last_progress;
	unsigned token_serial;        /* which token went out */
	int sent_bearer;
	char errbuf[CURL_ERROR_SIZE];
};

struct run {
	const struct export_opts *o;
	const struct export_events *ev;
	struct export_result *res;
	struct http_conf conf;
	struct smart_client *smart;   /* NULL when the provider is open */
	char *auth_origin;            /* origin of fhir_base: where the token goes */
	char **trusted;               /* token_origins as url_origin()s, NULL-terminated */
	char *status_url;
	char *manifest_url;           /* where the (first) manifest page came from */
	json_object *manifest;        /* merged pages, no `link` once paging is done */
	char *last_auth_err;          /* transient token failure, for retry messages */
	int stopped;                  /* should_stop's value once it asked to stop */
	long long last_stop_check;
	int retries;
	long max_wait_ms, default_wait_ms;
	unsigned seed;                /* jitter */
	char *export_id;
	long long t0_ms;
	int fatal;                    /* invalid_policy FAIL hit: stop everything */
	int complete;                 /* every file tried (the state says so) */

	/* manifest page (1-based) of every entry, per array, parallel to the
	 * merged manifest's arrays */
	struct { int *page; size_t n, cap; } pages[XK_N];
	int npages;

	/* manifest paging (export.c): `next` is set while pages are left */
	struct xpager {
		char *next;               /* resolved URL of the next page, NULL: manifest complete */
		char *base;               /* URL the last page came from (relative links) */
		char **seen;              /* page URLs asked for (loops) */
		int nseen;
		long long not_before;     /* monotonic ms: the next request's time */
		int attempt;
		long backoff;             /* ms, 202 without a usable Retry-After */
	} pg;
	int streaming;                /* ev->on_files_added: downloads start before the last page */

	/* files: files[] is contiguous (on_manifest) and may move as pages
	 * add files; every dl is allocated on its own and never moves (libcurl
	 * holds pointers to it) */
	struct export_file *files;
	struct dl **dls;
	char **names;
	int nfiles, files_cap;
	size_t built[XK_N];           /* entries per manifest array that have a file */
	json_object *taken;           /* names given so far (a set) */
	struct xhost **hosts;         /* one per origin; files point at them */
	int nhosts;

	/* resume */
	int resume;                   /* state file in use */
	json_object *state;           /* what an earlier run left (NULL: none) */
	long long state_saved_ms;

	/* totals for export_complete */
	long long done_files, done_lines, done_bytes;
	struct attach_stats attach_stats;
};

/* ---- export.c ---- */
long long xp_now_ms(void);
int xp_stop(struct run *r);
int xp_past_deadline(const struct run *r);
void xp_fail(struct run *r, int http_status, const char *code, const char *fmt, ...)
	__attribute__((format(printf, 4, 5)));
void xp_fail_deadline(struct run *r);
long xp_retry_ms(struct run *r, const char *retry_after, int attempt);
const char *xp_token(struct run *r, int *failed);
char *xp_status_text(const struct http_resp *resp, const char **code, json_object **doc);
char *xp_clip(const char *s, size_t max);
int xp_busy_status(long s);
const char *xp_get_str(json_object *o, const char *key);

/* Manifest paging.  xp_pages_begin: the first page (r->manifest) is
 * deduplicated and its `next` link noted; 0 or -1 (recorded).
 * xp_pages_step: when r->pg.next is set and its time has come, one request
 * for it: 1 a page was merged into r->manifest (the last one removes
 * `link`), 0 nothing new (waiting, 202, retry scheduled), -1 failed
 * (recorded) or stopped.  Never sleeps. */
int xp_pages_begin(struct run *r);
int xp_pages_step(struct run *r);
void xp_pages_free(struct run *r);

/* ---- export_dl.c ---- */
/* Downloads every file of r->manifest; while r->pg.next is set (streaming)
 * it also gets the remaining pages and downloads their files as they come.
 * 0 when all were tried (some may have failed: r->res->files_failed), -1
 * when the run is over (stopped, deadline, invalid_policy FAIL, a page
 * failed; recorded). */
int xdl_all(struct run *r);

/* ---- export_state.c ---- */
/* Appends to r->files / r->names / r->dls the entries of r->manifest that
 * have no file yet, numbered in page order (the state of an earlier run
 * gives names and done files): the number of files added, -1 on failure
 * (recorded). */
int xst_build_files(struct run *r);
void xst_free_files(struct run *r);
/* Loads an earlier run's state when o->resume and the destination can
 * resume: 0 (r->state set or not), -1 when it belongs to another export or
 * cannot be read (recorded). */
int xst_load(struct run *r);
/* Writes the state file; force = 0 throttles to one write per 2 s. */
void xst_save(struct run *r, int force);
/* State of an earlier run for file i (borrowed from r->state), or NULL. */
json_object *xst_file_state(struct run *r, int i);
/* Writes manifest.json (o->save_manifest): 0, or -1 (recorded). */
int xst_write_manifest(struct run *r);
/* Records the page of every entry of `page_doc` appended to the merged
 * arrays (after dedupe): called with the entries actually added. */
int xst_page_add(struct run *r, enum xkind k, int page);

/* ---- export_log.c ---- */
int xlog_on(const struct run *r);
/* Hands `details` (consumed) to on_log as `event`. */
void xlog(struct run *r, const char *event, json_object *details);
void xlog_kickoff(struct run *r, const char *url, const struct http_resp *resp, const char *error);
void xlog_status_progress(struct run *r, const struct http_resp *resp);
void xlog_status_error(struct run *r, const struct http_resp *resp, const char *message);
void xlog_status_complete(struct run *r, json_object *page);
void xlog_page_complete(struct run *r, json_object *page);
void xlog_manifest_complete(struct run *r);
void xlog_client_error(struct run *r);
void xlog_export_complete(struct run *r);
json_object *xlog_str(const char *s);   /* json string or null */

#endif
