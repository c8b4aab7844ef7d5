/* Streaming NDJSON validator.  Feed it the bytes of one file in chunks of any
 * size; it checks each line as soon as the line is complete and reports
 * problems through a callback.  Memory is constant apart from the current
 * line, which is buffered only up to max_line_bytes: a longer line is
 * reported once and skipped without being kept.
 *
 * Per line: valid UTF-8 (no overlongs, surrogates or code points above
 * U+10FFFF), one JSON object (strict json-c parse, only whitespace after
 * it), a string "resourceType" equal to the expected type (any string when
 * the expected type is NULL).  Lines holding only whitespace (including a
 * '\r') are skipped and not counted; a last line without '\n' counts.
 * Not thread-safe; one validator per file. */
#ifndef NDJSON_H
#define NDJSON_H
#include <stddef.h>

struct ndjson;

/* One problem: `line` is 1-based among all lines of the file (blank ones
 * included, so editors show the same number), `code` a FHIR issue type
 * ("structure", "value", "too-long"), `msg` borrowed for the call only. */
typedef void (*ndjson_issue_fn)(void *ctx, long long line, const char *code, const char *msg);

/* expected_type is copied (NULL: any resourceType).  max_line_bytes 0
 * means 16 MiB.  NULL on allocation failure. */
struct ndjson *ndjson_new(const char *expected_type, size_t max_line_bytes,
			  ndjson_issue_fn cb, void *ctx);
void ndjson_feed(struct ndjson *v, const void *data, size_t len);

/* Optional: called for every physical line once it is complete and checked,
 * after any issue about it.  `data` holds the line's bytes without its '\n'
 * (NULL for a line over the limit, which is never kept), `nl` says whether a
 * '\n' ended it, ok = 0 when the line had a problem.  Blank lines are ok.
 * The bytes are borrowed for the call.  Lets a caller store only the valid
 * lines, byte for byte, without a second line buffer. */
typedef void (*ndjson_line_fn)(void *ctx, const char *data, size_t len, int nl, int ok);
void ndjson_set_line_fn(struct ndjson *v, ndjson_line_fn fn, void *ctx);
/* End of input: checks a final line that has no '\n'.  Call once. */
void ndjson_finish(struct ndjson *v);
/* Forget everything fed so far (a download restarted from scratch). */
void ndjson_reset(struct ndjson *v);
void ndjson_free(struct ndjson *v);

long long ndjson_lines(const struct ndjson *v);    /* non-blank lines seen */
long long ndjson_errors(const struct ndjson *v);   /* lines with a problem */

/* Length of the longest valid UTF-8 prefix of s[0..n) (n when all valid). */
size_t utf8_valid_prefix(const unsigned char *s, size_t n);

#endif
