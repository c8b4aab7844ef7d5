/* Pure helpers of the admin UI (no I/O, no globals): CSRF tokens and the
 * human-readable numbers shown on the pages.  Unit-tested in
 * tests/unit/test_ui_util.c, which compiles ui_util.c directly.
 *
 * Returned strings are written into caller buffers (at least UI_FMT_MAX
 * bytes) and also returned for convenience. */
#ifndef UI_UTIL_H
#define UI_UTIL_H
#include <stddef.h>

#define UI_FMT_MAX 32
#define UI_CSRF_LEN 43          /* base64url of 32 bytes, unpadded */

/* CSRF synchronizer token of `user`: base64url(HMAC-SHA256(secret,
 * "bulk-import csrf v1" NUL user)).  `out` holds UI_CSRF_LEN + 1 bytes.
 * 0 ok, -1 when the secret or user is empty. */
int ui_csrf_token(const unsigned char *secret, size_t secret_len, const char *user, char *out);
/* 1 when `token` is the CSRF token of `user` (constant-time compare). */
int ui_csrf_check(const unsigned char *secret, size_t secret_len, const char *user, const char *token);

/* 1234567 -> "1.2 MB" (SI units: B, kB, MB, GB, TB; 3 significant digits). */
char *ui_fmt_bytes(long long bytes, char *out);
/* Seconds -> "0 s", "59 s", "1 min 05 s", "2 h 03 min", "3 d 4 h"; negative
 * or not a number -> "–" (an en dash). */
char *ui_fmt_duration(double seconds, char *out);
/* Bytes over seconds -> "1.5 MB/s"; "–" when seconds <= 0. */
char *ui_fmt_rate(long long bytes, double seconds, char *out);

/* Progress of an import in percent (0..100) for the dashboard's bar:
 * queued 0, kickoff 2, exporting 5, then downloading 10..99 by resources
 * against the manifest counts (or files when the counts are unknown), complete
 * 100.  Failed and cancelled imports keep what their files reached. */
int ui_progress_pct(const char *state, long long files_done, long long files_total, long long resources,
		    long long expected_resources);

/* 1 for the states in which the worker still has something to do. */
int ui_state_running(const char *state);

#endif
