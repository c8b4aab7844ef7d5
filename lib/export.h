/* The Bulk Data export engine: kick-off (or attach to a status URL, or read a
 * static manifest), poll, then download every manifest file in parallel while
 * validating it line by line, into a destination.  Shared by the worker and
 * the `bulk-data` command; both observe it through `struct export_events`.
 *
 * Threading: one export_run() per thread; the engine itself uses one libcurl
 * multi handle for its parallel downloads.  Callbacks run on the calling
 * thread. */
#ifndef EXPORT_H
#define EXPORT_H
#include <stddef.h>
#include <stdint.h>
#include <json-c/json.h>
#include <openssl/evp.h>

struct dest;   /* lib/dest.h */

enum export_kind { EXPORT_DYNAMIC, EXPORT_STATIC };

/* What a file with invalid lines (or a line count that differs from the
 * manifest's) does. */
enum export_invalid_policy {
	EXPORT_INVALID_DROP_FILE = 0, /* file not stored, outcome errors, other files go on (worker default) */
	EXPORT_INVALID_FAIL,          /* stop the whole export at the first invalid line: export_run
	                               * fails with "invalid line N in <file URL>: <reason>" */
	EXPORT_INVALID_SKIP_LINE,     /* store the file without the invalid lines (every stored line
	                               * byte-identical, blank lines kept), one issue per skipped line;
	                               * a count mismatch is an error issue, the file is still stored */
};

/* Return values of should_stop (any other non-zero value means cancel).
 * The value is kept even when it arrives through a transfer it aborted. */
#define EXPORT_STOP_CANCEL  1     /* stop and DELETE the export at the provider */
#define EXPORT_STOP_ABANDON 2     /* stop now, no provider call, no commit (drain, lost lease);
                                   * part files are dropped, the resume state stays */

/* SMART Backend Services credentials for the data provider. */
struct export_auth {
	int open;                 /* 1: provider needs no auth */
	const char *client_id;    /* our client_id at the provider */
	EVP_PKEY *key;            /* borrowed private key */
	const char *alg;          /* RS384, ES384, ... */
	const char *kid;
	const char *scope;        /* NULL: "system/" "*.read" (all types, read) */
	const char *token_url;    /* NULL: discover from {base}/.well-known/smart-configuration, then /metadata */
};

struct export_opts {
	enum export_kind kind;
	const char *url;          /* dynamic: kick-off URL ({base}/$export, /Patient/$export, /Group/x/$export);
	                           * static: the manifest URL */
	const char *fhir_base;    /* provider FHIR base (token discovery, relative URLs, token origin) */
	json_object *params;      /* borrowed Parameters resource for the kick-off (NULL: none) */
	int kickoff_get;          /* 1: GET with query parameters instead of POST Parameters */
	const char *status_url;   /* non-NULL: skip kick-off and attach to this export (resume / takeover) */
	json_object *manifest;    /* non-NULL: skip polling; manifest already known (resume / takeover) */
	struct export_auth auth;
	const char *const *extra_headers; /* "Name: value" strings, NULL-terminated, may be NULL; sent
	                           * with every request to the FHIR base's origin (kick-off,
	                           * status, pages, downloads, attachments), never elsewhere */
	const char *user_agent;
	long connect_timeout;     /* seconds */
	long idle_timeout;        /* seconds without data before a transfer is aborted */
	int retries;              /* per request, for connection errors, 429, 5xx */
	int parallelism;          /* parallel downloads, default 4 */
	size_t max_line_bytes;
	long poll_default_wait;   /* seconds, first wait when Retry-After is absent/unusable */
	long poll_max_wait;       /* seconds, cap for any single wait */
	long deadline;            /* absolute unix time after which the export fails */
	struct dest *dest;        /* where files go */
	void *ctx;                /* passed to every event callback */

	/* ---- bulk-data client features (issue 3); zero values keep the worker's behaviour ---- */
	const char *name_template;    /* "{n}.{type}.ndjson" when NULL; also {page}, {basename}, {exportId}.
	                               * Values never add a '/', only the template does (2 at most);
	                               * see lib/naming.h.  Clashing names get "-<n>". */
	const char *export_id;        /* for {exportId}; NULL: the resume state's, else a random one */
	enum export_invalid_policy invalid_policy;
	const char *const *token_origins; /* more origins (scheme://host[:port]) allowed to get the bearer
	                               * token (downloads, attachments, redirects); no extra headers */
	const char *ca_file;          /* CA bundle for TLS, NULL: system default */
	int insecure;                 /* 1: do not verify TLS certificates */
	const char *proxy;            /* libcurl proxy URL or NULL */
	int lenient;                  /* send "Prefer: handling=lenient" with the kick-off */
	int save_manifest;            /* when no file failed, write "manifest.json" last: the merged
	                               * manifest without `link`, each entry with destination, size,
	                               * sha256, lines; else an export-level warning issue */
	int resume;                   /* destinations that can resume: keep "bulk-data-state.json"
	                               * and continue from it (status URL, manifest, done files, part
	                               * files with Range).  Files done earlier arrive with skip = 1,
	                               * bytes/lines/sha256 set, and are reported through
	                               * on_file_done(ok = 1) right after on_manifest (or
	                               * on_files_added). */
	struct export_attach_opts {
		int enabled;              /* process DocumentReference / DiagnosticReport.presentedForm attachments
		                           * (lib/attach.h): the only case where stored lines differ from
		                           * the received ones */
		const char *const *inline_types; /* MIME types put inline (NULL-terminated) */
		long inline_max;          /* bytes; larger ones are saved under attachments/ */
		int pdf_to_text;          /* inline PDFs become text/plain via pdftotext */
		long pdftotext_timeout;   /* seconds, default 10 */
		long pdftotext_max_mem;   /* bytes of address space for the child, default 512 MiB */
	} attach;
};

/* One manifest file as the engine sees it. */
struct export_file {
	int seq;                  /* 1-based, in manifest page order and within a page output, deleted,
	                           * error, outcome; continues across pages (entries with a URL seen
	                           * on an earlier page left out) */
	const char *kind;         /* "output", "deleted", "error" (also for `outcome` entries) */
	const char *type;         /* manifest type */
	const char *url;
	long long manifest_count; /* -1 when absent */
	/* filled as the download goes: */
	long long lines;          /* non-empty lines seen (SKIP_LINE: stored) */
	long long bytes;          /* bytes stored (decoded; exactly as received unless SKIP_LINE or
	                           * attachments changed lines) */
	char sha256[65];          /* hex, when done */
	const char *dest_name;    /* name inside the destination (borrowed) */
	int skip;                 /* set by on_manifest: already done, do not download */
};

/* A validation or transfer problem, reported before the file finishes. */
struct export_issue {
	const char *severity;     /* "error" or "warning" */
	const char *code;         /* FHIR issue type: "invalid", "structure", "value", "transient", "exception", ... */
	const struct export_file *file; /* NULL for export-level issues */
	long long line;           /* 1-based line, 0 when not about a line */
	const char *message;      /* human readable */
};

struct export_events {
	/* Dynamic kick-off accepted: the provider's status URL. */
	void (*on_kickoff)(void *ctx, const char *status_url);
	/* Status poll answered 202: provider's X-Progress (may be NULL). */
	void (*on_status)(void *ctx, const char *x_progress);
	/* Manifest complete; files[] lists every file; callback may set files[i].skip
	 * (unless on_files_added is set: see there). */
	void (*on_manifest)(void *ctx, json_object *manifest, struct export_file *files, int nfiles);
	void (*on_file_start)(void *ctx, struct export_file *f);
	/* Throttled (at most every ~250 ms per file) progress. */
	void (*on_file_progress)(void *ctx, struct export_file *f);
	/* ok=1: stored and valid.  ok=0: failed; the issues were already reported. */
	void (*on_file_done)(void *ctx, struct export_file *f, int ok);
	void (*on_issue)(void *ctx, const struct export_issue *iss);
	/* Polled often; EXPORT_STOP_CANCEL (1) or EXPORT_STOP_ABANDON (2) to stop. */
	int (*should_stop)(void *ctx);
	/* Structured log events named as in the SMART bulk-data client's export
	 * log; `details` is borrowed, never holds tokens or keys:
	 *   kickoff              {exportUrl, method, requestParameters, status, errorCode, errorBody,
	 *                         error?, responseHeaders: {content-location}}
	 *   status_progress      {body, xProgress, retryAfter}
	 *   status_complete      {transactionTime}
	 *   status_error         {body, code, message}
	 *   status_page_complete {transactionTime, outputFileCount, deletedFileCount, errorFileCount}
	 *   manifest_complete    {transactionTime, totalOutputFileCount, totalDeletedFileCount,
	 *                         totalErrorFileCount, totalManifests}
	 *   download_request     {fileUrl, itemType, resourceType, attempt, concurrency, rangeFrom?}
	 *   download_complete    {fileUrl, itemType, resourceCount, fileSize, destination, skippedLines?}
	 *   download_error       {fileUrl, itemType, code, message, issueCode}
	 *   export_complete      {files, resources, bytes, attachments, duration (ms), failed,
	 *                         throttled (429 answers), minConcurrency}
	 *   client_error         {error, code}   (the export failed as a whole) */
	void (*on_log)(void *ctx, const char *event, json_object *details);
	/* Optional; setting it lets downloads start before the manifest is
	 * complete.  Called for every manifest page (first: the whole manifest
	 * when it is known from the start) with the files that page adds:
	 * files[first .. first + n - 1] (`files` holds every file so far and is
	 * only valid during the call); the callback may set their skip.  Files
	 * done by an earlier run (resume) are reported through on_file_done(ok = 1)
	 * right after it.  Downloads of these files start at once while later
	 * pages are polled; on_manifest still comes once, when the last page
	 * is in, with all files (skip is no longer read there).  Without it the
	 * engine gets every page first, then calls on_manifest, then downloads. */
	void (*on_files_added)(void *ctx, struct export_file *files, int first, int n);
};

/* Result of a whole export. */
struct export_result {
	int ok;                   /* 1: every file stored (possibly with per-file failures -> partial) */
	int files_failed;
	int cancelled;            /* stopped by should_stop */
	int http_status;          /* for a failed export: status to report (e.g. 502, 504) */
	char *error_code;         /* FHIR issue code for a failed export ("transient", "exception", ...) */
	char *error_message;      /* malloc'd, NULL on success */
	char *transaction_time;   /* malloc'd, from the manifest */
};

/* Runs the whole export.  Returns 0 when the export completed (some files may
 * have failed: see res->files_failed), -1 when it failed as a whole or was
 * stopped.  Caller frees res strings with export_result_free(). */
int export_run(const struct export_opts *o, const struct export_events *ev, struct export_result *res);
void export_result_free(struct export_result *res);

#endif
