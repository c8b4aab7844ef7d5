/* Private header of the `bulk-data` command: option store (options.c),
 * kick-off request (request.c), the run context that receives the engine's
 * events (events.c), the reporters (reporter_*.c) and the NDJSON log file
 * (log_file.c).
 *
 * Ownership: strings handed out by the option store live until opts_free();
 * everything else returned as char * or json_object * belongs to the caller
 * unless the comment says "borrowed". */
#ifndef BULK_DATA_H
#define BULK_DATA_H
#include "export.h"
#include <stdio.h>
#include <json-c/json.h>

#define BD_PROG "bulk-data"
#define BD_VERSION "0.1"

/* ---- options (options.c) ---------------------------------------------- */

enum opt_id {
	/* export */
	O_FHIR_URL, O_GROUP, O_PATIENT_LEVEL, O_TYPE, O_SINCE, O_UNTIL, O_ELEMENTS, O_PATIENT,
	O_TYPE_FILTER, O_INCLUDE_ASSOCIATED, O_OUTPUT_FORMAT, O_POST, O_LENIENT, O_CUSTOM,
	O_STATUS, O_RESUME,
	/* output */
	O_DESTINATION, O_NAME_TEMPLATE, O_SAVE_MANIFEST, O_ON_INVALID, O_MAX_LINE_BYTES,
	O_S3_REGION, O_S3_ENDPOINT, O_HTTP_METHOD,
	/* attachments */
	O_ATTACHMENTS, O_INLINE_ATTACHMENTS, O_INLINE_MAX, O_PDF_TO_TEXT,
	/* auth */
	O_CLIENT_ID, O_PRIVATE_KEY, O_ALG, O_SCOPE, O_TOKEN_URL, O_TOKEN_ORIGIN,
	/* requests */
	O_HEADER, O_CONNECT_TIMEOUT, O_IDLE_TIMEOUT, O_CA_FILE, O_INSECURE, O_PROXY, O_USER_AGENT,
	O_PARALLEL, O_RETRIES, O_POLL_MAX_WAIT, O_DEADLINE,
	/* reporting and control */
	O_REPORTER, O_LOG_FILE, O_CANCEL_ON_INTERRUPT, O_VERBOSE, O_CONFIG, O_HELP,
	O_COUNT
};

struct opt_store {
	char *val[O_COUNT];          /* scalar value, or "1" for a set flag; NULL: not given */
	char **list[O_COUNT];        /* repeatable options: NULL-terminated, NULL when empty */
	size_t nlist[O_COUNT];
	unsigned char from_cli[O_COUNT]; /* a list already replaced by the command line */
};

/* Parses argv, reading --config FILE first so the command line overrides
 * it.  Returns 0, 1 when --help was asked for (usage printed), or -1 with
 * *err (malloc'd) for a usage error. */
int opts_parse(struct opt_store *st, int argc, char **argv, char **err);
void opts_free(struct opt_store *st);
void opts_usage(FILE *f);

/* Borrowed views. */
const char *opt_str(const struct opt_store *st, enum opt_id id);
const char *const *opt_list(const struct opt_store *st, enum opt_id id); /* NULL when empty */
size_t opt_count(const struct opt_store *st, enum opt_id id);
int opt_flag(const struct opt_store *st, enum opt_id id);
const char *opt_name(enum opt_id id);
const char *opt_default(enum opt_id id);   /* the documented default or NULL */
/* The option (or its default) as a number in [min, max]; -1 with *err. */
int opt_long(const struct opt_store *st, enum opt_id id, long long min, long long max,
	     long long *out, char **err);

/* ---- kick-off request (request.c) ------------------------------------- */

/* Kick-off URL for the export level: {base}/$export, {base}/Patient/$export
 * or {base}/Group/{id}/$export.  NULL + *err on a bad group id. */
char *req_kickoff_url(const char *base, const char *group, int patient_level, char **err);
/* The Parameters resource for the kick-off (never NULL except on OOM);
 * -1 from the caller's view when *err is set: bad --custom. */
json_object *req_parameters(const struct opt_store *st, char **err);
/* 0 when `h` is a usable "Name: value" header line, else -1 + *err. */
int req_check_header(const char *h, char **err);

/* ---- run context (events.c) ------------------------------------------- */

enum bd_cancel { BD_CANCEL_ASK, BD_CANCEL_YES, BD_CANCEL_NO };

enum bd_file_state { BF_WAITING, BF_ACTIVE, BF_DONE, BF_FAILED, BF_SKIPPED };

/* One manifest file as the command tracks it (outlives the engine's). */
struct bd_file {
	int seq;
	char *kind, *type, *url;
	char *name;                  /* name in the destination, once known */
	long long count;             /* manifest count, -1 when absent */
	long long lines, bytes;
	char sha256[65];
	enum bd_file_state state;
	char *reason;                /* first error reported for it */
};

struct reporter;
struct log_file;

struct bd {
	/* set by main before the run (borrowed) */
	const char *source;          /* kick-off or status URL shown to the user */
	const char *destination;
	const char *export_id;
	enum bd_cancel cancel;
	struct reporter *rep;
	struct log_file *log;        /* NULL without --log-file */
	json_object *start_info;     /* what is being run, secrets scrubbed (json "start" event) */
	/* progress */
	double t_start, t_download;  /* monotonic seconds */
	char *status_url;
	char *x_progress;
	int polls;
	struct bd_file *files;
	int nfiles;
	int files_done, files_failed, files_skipped, files_active;
	long long resources, bytes, expected; /* expected: sum of manifest counts, -1 when unknown */
	int issues;                  /* issues reported so far */
	int stop;                    /* EXPORT_STOP_* once decided */
	int resume;                  /* --resume: the destination keeps state */
	int interrupted;
};

/* Engine callbacks wired to b (ctx) and its reporter/log. */
extern const struct export_events bd_events;

void bd_init(struct bd *b);
void bd_free(struct bd *b);
double bd_now(void);
/* Fraction done in [0,1] (resources against manifest counts when every file
 * has one, else files), or -1 before the manifest. */
double bd_fraction(const struct bd *b);
/* Seconds left by the throughput so far, -1 when unknown. */
double bd_eta(const struct bd *b);
/* Install SIGINT/SIGTERM handlers that only set a flag. */
void bd_signals_install(void);
/* A notice from the command itself (goes to the reporter). */
void bd_notice(struct bd *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* How to name an issue's file to a person: its destination name, else its
 * URL (borrowed). */
const char *issue_file(const struct export_issue *iss);
/* Human summary (cli and text reporters). */
void bd_print_summary(const struct bd *b, const struct export_result *res, FILE *f);
/* The summary as JSON (json reporter); caller puts. */
json_object *bd_summary_json(const struct bd *b, const struct export_result *res);

/* "12.3 MiB" into buf. */
const char *bd_fmt_bytes(double n, char *buf, size_t len);
/* "1:02:03" / "2:03" into buf. */
const char *bd_fmt_duration(double secs, char *buf, size_t len);
/* "2024-05-01T12:00:00.123Z" into buf (>= 32 bytes). */
const char *bd_timestamp(char *buf, size_t len);

/* Seconds as a JSON number with millisecond precision. */
json_object *bd_json_seconds(double secs);
/* One log envelope {exportId, timestamp, eventId, eventDetail} with the
 * details deep-copied and scrubbed of secrets; caller puts. */
json_object *bd_envelope(const char *export_id, const char *event, json_object *details);
/* Deep copy of j with credentials removed (Authorization headers, bearer
 * tokens, access_token, client_assertion, private key members); caller puts. */
json_object *bd_scrub(json_object *j);
/* Header line with its value replaced when it carries credentials (malloc'd). */
char *bd_scrub_header(const char *h);

/* ---- reporters (reporter_*.c) ----------------------------------------- */

enum bd_ev {
	EV_START,                    /* arg: NULL */
	EV_KICKOFF,                  /* arg: status URL */
	EV_STATUS,                   /* arg: X-Progress or NULL */
	EV_MANIFEST,                 /* arg: the manifest (json_object *) */
	EV_FILE_START,               /* arg: struct bd_file * */
	EV_FILE_PROGRESS,            /* arg: struct bd_file * */
	EV_FILE_DONE,                /* arg: struct bd_file * (state DONE, FAILED or SKIPPED) */
	EV_ISSUE,                    /* arg: const struct export_issue * */
	EV_LOG,                      /* arg: const struct bd_log_event * */
	EV_NOTICE,                   /* arg: message text */
	EV_PROMPT,                   /* arg: NULL; about to ask on the terminal */
	EV_FINISH,                   /* arg: const struct export_result * */
};

struct bd_log_event {
	const char *event;
	json_object *details;        /* borrowed, not scrubbed yet */
};

struct reporter {
	void (*handle)(struct reporter *r, struct bd *b, enum bd_ev ev, const void *arg);
	void (*destroy)(struct reporter *r);
	FILE *out;
	void *state;
};

/* kind: "cli", "text" or "json".  NULL for an unknown kind. */
struct reporter *reporter_new(const char *kind, FILE *out);
struct reporter *reporter_cli_new(FILE *out);
struct reporter *reporter_text_new(FILE *out);
struct reporter *reporter_json_new(FILE *out);
void reporter_free(struct reporter *r);

/* ---- log file (log_file.c) -------------------------------------------- */

/* Opens (appends to) an NDJSON event log.  NULL + *err. */
struct log_file *log_file_open(const char *path, const char *export_id, char **err);
/* Writes one scrubbed envelope line and flushes it. */
void log_file_event(struct log_file *l, const char *event, json_object *details);
void log_file_close(struct log_file *l);

#endif
