/* Admin UI helpers (cgi-bin/ui_util.c): CSRF tokens, byte/duration/rate
 * formatting and the dashboard's progress percentage.  The FastCGI sources
 * are not in libbulk, so the file under test is compiled in here. */
#include "t.h"
#include "../../cgi-bin/ui_util.c"
#include <stdlib.h>

static int eq(const char *got, const char *want)
{
	if (strcmp(got, want))
		printf("# got \"%s\", want \"%s\"\n", got, want);
	return !strcmp(got, want);
}

static void csrf(void)
{
	const unsigned char k1[] = "0123456789abcdef0123456789abcdef", k2[] = "0123456789abcdef0123456789abcdeF";
	char a[UI_CSRF_LEN + 1], b[UI_CSRF_LEN + 1], c[UI_CSRF_LEN + 1], bad[UI_CSRF_LEN + 1];
	size_t i;
	int ok = 1;

	T_CHECK(ui_csrf_token(k1, 32, "admin", a) == 0, "csrf: token for admin");
	T_CHECK(strlen(a) == UI_CSRF_LEN, "csrf: token is 43 characters");
	for (i = 0; a[i]; i++)
		ok &= (a[i] >= 'A' && a[i] <= 'Z') || (a[i] >= 'a' && a[i] <= 'z') || (a[i] >= '0' && a[i] <= '9') ||
		      a[i] == '-' || a[i] == '_';
	T_CHECK(ok, "csrf: token is base64url");
	T_CHECK(ui_csrf_token(k1, 32, "admin", b) == 0 && !strcmp(a, b), "csrf: deterministic per user and secret");
	T_CHECK(ui_csrf_token(k1, 32, "admin2", c) == 0 && strcmp(a, c), "csrf: other user, other token");
	T_CHECK(ui_csrf_token(k2, 32, "admin", c) == 0 && strcmp(a, c), "csrf: other secret, other token");
	T_CHECK(ui_csrf_check(k1, 32, "admin", a) == 1, "csrf: own token accepted");
	T_CHECK(ui_csrf_check(k1, 32, "admin2", a) == 0, "csrf: token of another user refused");
	T_CHECK(ui_csrf_check(k2, 32, "admin", a) == 0, "csrf: token under another secret refused");
	memcpy(bad, a, sizeof bad);
	bad[10] = bad[10] == 'A' ? 'B' : 'A';
	T_CHECK(ui_csrf_check(k1, 32, "admin", bad) == 0, "csrf: one changed character refused");
	bad[UI_CSRF_LEN - 1] = '\0';
	T_CHECK(ui_csrf_check(k1, 32, "admin", bad) == 0, "csrf: truncated token refused");
	T_CHECK(ui_csrf_check(k1, 32, "admin", "") == 0, "csrf: empty token refused");
	T_CHECK(ui_csrf_check(k1, 32, "admin", NULL) == 0, "csrf: missing token refused");
	T_CHECK(ui_csrf_token(k1, 32, "", c) == -1 && c[0] == '\0', "csrf: no token without a user");
	T_CHECK(ui_csrf_check(k1, 32, NULL, a) == 0, "csrf: no user, nothing accepted");
	T_CHECK(ui_csrf_token(k1, 0, "admin", c) == -1, "csrf: no token without a secret");
	T_CHECK(ui_csrf_check(NULL, 0, "admin", a) == 0, "csrf: no secret, nothing accepted");
	{
		/* a known answer: HMAC-SHA256(key "k", "bulk-import csrf v1\0u") in base64url */
		char kat[UI_CSRF_LEN + 1];
		unsigned char md[32];
		unsigned int n = 0;
		const unsigned char msg[] = "bulk-import csrf v1\0u";
		char want[UI_CSRF_LEN + 1];
		HMAC(EVP_sha256(), "k", 1, msg, sizeof msg - 1, md, &n);
		b64url32(md, want);
		T_CHECK(ui_csrf_token((const unsigned char *)"k", 1, "u", kat) == 0 && eq(kat, want),
			"csrf: HMAC over label NUL user");
	}
	{
		char *long_user = malloc(300);
		memset(long_user, 'u', 299);
		long_user[299] = '\0';
		T_CHECK(ui_csrf_token(k1, 32, long_user, c) == -1, "csrf: absurdly long user gets no token");
		free(long_user);
	}
}

static void bytes(void)
{
	char o[UI_FMT_MAX];

	T_CHECK(eq(ui_fmt_bytes(0, o), "0 B"), "bytes: 0");
	T_CHECK(eq(ui_fmt_bytes(999, o), "999 B"), "bytes: 999");
	T_CHECK(eq(ui_fmt_bytes(1000, o), "1.0 kB"), "bytes: 1000");
	T_CHECK(eq(ui_fmt_bytes(1234567, o), "1.2 MB"), "bytes: 1234567");
	T_CHECK(eq(ui_fmt_bytes(99949, o), "99.9 kB"), "bytes: 99949");
	T_CHECK(eq(ui_fmt_bytes(123456, o), "123 kB"), "bytes: 123456");
	T_CHECK(eq(ui_fmt_bytes(999499, o), "999 kB"), "bytes: 999499");
	T_CHECK(eq(ui_fmt_bytes(999500, o), "1.0 MB"), "bytes: 999500 rounds up to the next unit");
	T_CHECK(eq(ui_fmt_bytes(10123456789LL, o), "10.1 GB"), "bytes: 10 GB");
	T_CHECK(eq(ui_fmt_bytes(-5, o), "0 B"), "bytes: negative clamps to 0");
	T_CHECK(eq(ui_fmt_bytes(9223372036854775807LL, o), "9223 PB"), "bytes: LLONG_MAX stays in PB");
}

static void durations(void)
{
	char o[UI_FMT_MAX];

	T_CHECK(eq(ui_fmt_duration(0, o), "0 s"), "duration: 0");
	T_CHECK(eq(ui_fmt_duration(0.4, o), "0 s"), "duration: 0.4 rounds down");
	T_CHECK(eq(ui_fmt_duration(59.4, o), "59 s"), "duration: 59 s");
	T_CHECK(eq(ui_fmt_duration(59.6, o), "1 min 00 s"), "duration: 59.6 rounds to a minute");
	T_CHECK(eq(ui_fmt_duration(65, o), "1 min 05 s"), "duration: 65 s");
	T_CHECK(eq(ui_fmt_duration(3599, o), "59 min 59 s"), "duration: under an hour");
	T_CHECK(eq(ui_fmt_duration(3600 * 2 + 180, o), "2 h 03 min"), "duration: hours");
	T_CHECK(eq(ui_fmt_duration(86400 * 3 + 3600 * 4 + 59, o), "3 d 4 h"), "duration: days");
	T_CHECK(eq(ui_fmt_duration(-1, o), "\xe2\x80\x93"), "duration: negative is a dash");
	T_CHECK(eq(ui_fmt_duration(NAN, o), "\xe2\x80\x93"), "duration: NaN is a dash");
}

static void rates(void)
{
	char o[UI_FMT_MAX];

	T_CHECK(eq(ui_fmt_rate(3000000, 2, o), "1.5 MB/s"), "rate: 1.5 MB/s");
	T_CHECK(eq(ui_fmt_rate(500, 1, o), "500 B/s"), "rate: bytes per second");
	T_CHECK(eq(ui_fmt_rate(100, 0, o), "\xe2\x80\x93"), "rate: no time yet is a dash");
	T_CHECK(eq(ui_fmt_rate(100, -3, o), "\xe2\x80\x93"), "rate: negative time is a dash");
}

static void progress(void)
{
	T_CHECK(ui_progress_pct("queued", 0, 0, 0, 0) == 0, "pct: queued 0");
	T_CHECK(ui_progress_pct("kickoff", 0, 0, 0, 0) == 2, "pct: kickoff 2");
	T_CHECK(ui_progress_pct("exporting", 0, 0, 0, 0) == 5, "pct: exporting 5");
	T_CHECK(ui_progress_pct("downloading", 0, 0, 0, 0) == 10, "pct: downloading, nothing known yet");
	T_CHECK(ui_progress_pct("downloading", 1, 4, 0, 0) == 32, "pct: by files when counts are unknown");
	T_CHECK(ui_progress_pct("downloading", 1, 4, 500, 1000) == 54, "pct: by resources when counts are known");
	T_CHECK(ui_progress_pct("downloading", 4, 4, 1200, 1000) == 99, "pct: never 100 before complete");
	T_CHECK(ui_progress_pct("complete", 0, 0, 0, 0) == 100, "pct: complete 100");
	T_CHECK(ui_progress_pct("failed", 0, 0, 0, 0) == 0, "pct: failed before downloading 0");
	T_CHECK(ui_progress_pct("cancelled", 2, 4, 0, 0) == 54, "pct: cancelled keeps what files reached");
	T_CHECK(ui_progress_pct(NULL, 2, 4, 0, 0) == 0, "pct: no state 0");
	T_CHECK(ui_state_running("exporting") && !ui_state_running("complete") && !ui_state_running(NULL),
		"running states");
}

int main(void)
{
	csrf();
	bytes();
	durations();
	rates();
	progress();
	return t_done();
}
