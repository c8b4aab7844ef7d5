/* Attachments of DocumentReference (content[].attachment) and
 * DiagnosticReport (presentedForm[]) resources, one NDJSON line at a time.
 *
 * Every attachment with a `url` and no `data` is fetched: relative URLs are
 * resolved against the FHIR base, redirects are followed here (at most
 * HTTP_MAX_REDIRECTS) so that every hop gets its own headers: the bearer
 * token only to the FHIR base's origin and env->token_origins, the user's
 * extra headers only to the FHIR base's origin.  A FHIR `Binary` answered
 * as application/fhir+json or application/json is unwrapped (its
 * contentType and base64 `data`).
 *
 * The MIME type is attachment.contentType, else Binary.contentType, else
 * the response's Content-Type.  When it is one of o->inline_types and the
 * content has at most o->inline_max bytes, the attachment is put inline:
 * `data` (base64), `size`, `hash` (base64 SHA-1, as FHIR R4 defines it) and
 * `url` removed.  Anything else is streamed (not held in memory, except a
 * Binary JSON answer, which must be parsed whole) to
 * "<dir>/<sha256-hex of the absolute URL>.<ext>" beside the NDJSON file in
 * env->dest and `url` is rewritten to that relative path, `size` and
 * `hash` set.  A missing
 * contentType is filled in.  With o->pdf_to_text an inline application/pdf
 * becomes text/plain through pdftotext (lib/pdftotext.h); when that fails
 * the PDF stays inline and an issue says why.
 *
 * Problems with one attachment (HTTP errors, caps, a failed conversion,
 * a size or hash that does not match what arrived) are reported through
 * env->on_issue and leave that attachment as it was (a mismatch keeps the
 * new content); the other attachments of the line are still processed.
 *
 * Threading: no global state; one call at a time per env (env->stats).  The
 * call blocks while it downloads. */
#ifndef ATTACH_H
#define ATTACH_H
#include <stddef.h>
#include "export.h"   /* struct export_attach_opts */
#include "http.h"     /* struct http_conf */

struct dest;

/* Counters, added to by every call (optional). */
struct attach_stats {
	long long fetched;      /* attachments downloaded successfully */
	long long inlined;      /* put inline */
	long long saved;        /* saved as files */
	long long converted;    /* PDFs turned into text */
	long long failed;       /* left unchanged with an issue */
	long long bytes;        /* content bytes received (after Binary unwrapping) */
};

/* Everything is borrowed and must outlive the call. */
struct attach_env {
	const struct http_conf *conf;       /* timeouts, user agent, TLS, stop check; NULL: defaults */
	const char *fhir_base;              /* relative URLs resolve against it; its origin gets token and headers */
	const char *const *headers;         /* the user's extra "Name: value" headers, NULL-terminated or NULL;
	                                     * sent only to the FHIR base's origin */
	const char *bearer;                 /* access token, or NULL when the manifest's requiresAccessToken is false */
	const char *const *token_origins;   /* more origins ("scheme://host:port") that may get the token */
	const char *accept;                 /* Accept header value; NULL: "<contentType>, *\/\*;q=0.1" */
	struct dest *dest;                  /* where saved attachments go (NULL: nothing is saved; an issue) */
	const char *dir;                    /* folder for attachments; NULL: "attachments" */
	const char *file_dir;               /* folder of the NDJSON file inside dest; NULL or "": top level.
	                                     * Files go to <file_dir>/<dir>/<name>; the url written is
	                                     * "<dir>/<name>", relative to the NDJSON file */
	long long max_bytes;                /* cap per attachment; 0: none */
	size_t max_json;                    /* cap for a Binary JSON response (held in memory); 0: 64 MiB */
	int retries;                        /* more attempts after 429, 5xx and network failures (Retry-After
	                                     * honoured, at most 30 s per wait) */
	const char *pdftotext;              /* program; NULL: PDFTOTEXT_PROGRAM */
	/* Optional: one attachment could not be processed or looks wrong.
	 * severity "warning", code a FHIR issue type ("not-found", "transient",
	 * "security", "too-costly", "processing", "value", "not-supported",
	 * "exception");
	 * message borrowed, no tokens in it, URLs without their query. */
	void (*on_issue)(void *ctx, const char *severity, const char *code, const char *message);
	/* Optional: after a 401 to a request that carried the token, a fresh
	 * token (borrowed until the next call), or NULL to give up.  Called at
	 * most once per attachment. */
	const char *(*renew_bearer)(void *ctx);
	void *ctx;
	struct attach_stats *stats;         /* optional */
};

/* Cheap test without parsing: 0 when the line cannot hold an attachment to
 * fetch (no DocumentReference / DiagnosticReport, no "url"), so the caller
 * may skip attach_process_line. */
int attach_line_may_have(const char *line, size_t len);

/* Processes one resource line (`len` bytes, no trailing newline; need not
 * be NUL-terminated).  Returns 0 and *out = a malloc'd replacement line
 * (no newline, caller frees, *outlen its length) or *out = NULL when
 * nothing changed (the caller keeps the original bytes).  Returns -1 with
 * *err (malloc'd) when the line as a whole could not be processed: it
 * passes attach_line_may_have() but is not a JSON object, out of memory, or stopped by conf->should_stop (*err
 * "stopped"); the caller keeps the original line.  o->enabled is not
 * looked at: the caller decides whether to call. */
int attach_process_line(const struct export_attach_opts *o, const struct attach_env *env,
			const char *line, size_t len, char **out, size_t *outlen, char **err);

/* The file name (no folder) an attachment fetched from absolute `url` gets:
 * lower-case hex SHA-256 of the URL, '.', an extension for `content_type`
 * (parameters ignored; "bin" when unknown or NULL).  malloc'd. */
char *attach_file_name(const char *url, const char *content_type);

/* 1 when `mime` (parameters and case ignored) matches one of `types`
 * (NULL-terminated; entries like "image/\*" match a whole type), else 0. */
int attach_type_listed(const char *const *types, const char *mime);

#endif
