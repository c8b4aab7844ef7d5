#include "t.h"
#include "ndjson.h"
#include <stdlib.h>
#include <string.h>

struct rec {
	int n;
	long long line[64];
	char code[64][16];
	char msg[64][256];
};

static void on_issue(void *ctx, long long line, const char *code, const char *msg)
{
	struct rec *r = ctx;

	if (r->n < 64) {
		r->line[r->n] = line;
		snprintf(r->code[r->n], sizeof r->code[0], "%s", code);
		snprintf(r->msg[r->n], sizeof r->msg[0], "%s", msg);
	}
	r->n++;
}

/* Runs `data` through a validator in one go; returns lines, fills r. */
static long long run(const char *type, size_t max, const char *data, size_t len, struct rec *r,
		     long long *errors)
{
	struct ndjson *v = ndjson_new(type, max, on_issue, r);
	long long n;

	memset(r, 0, sizeof *r);
	ndjson_feed(v, data, len);
	ndjson_finish(v);
	n = ndjson_lines(v);
	if (errors)
		*errors = ndjson_errors(v);
	ndjson_free(v);
	return n;
}

static int one_issue(const char *type, const char *line, long long want_line, const char *want_code)
{
	struct rec r;
	long long errs;
	char data[512];
	int ok;

	snprintf(data, sizeof data, "{\"resourceType\":\"Patient\",\"id\":\"1\"}\n%s\n", line);
	run(type, 0, data, strlen(data), &r, &errs);
	ok = r.n == 1 && errs == 1 && r.line[0] == want_line && !strcmp(r.code[0], want_code);
	if (!ok)
		printf("# issues=%d errs=%lld line=%lld code=%s msg=%s\n", r.n, errs, r.n ? r.line[0] : 0,
		       r.n ? r.code[0] : "", r.n ? r.msg[0] : "");
	return ok;
}

static const char SAMPLE[] =
	"{\"resourceType\":\"Patient\",\"id\":\"a\",\"name\":[{\"family\":\"M\\u00fcller\"}]}\n"
	"\n"
	"{\"resourceType\":\"Patient\",\"id\":\"b\",\"text\":\"caf\xc3\xa9 \xe2\x82\xac \xf0\x9f\x98\x80\"}\r\n"
	"   \r\n"
	"{ \"resourceType\" : \"Patient\" , \"id\" : \"c\", \"n\": -1.5e3, \"b\": [true,false,null] }";

/* Line callback: what a caller storing only valid lines would write. */
struct kept {
	char out[1024];
	size_t len;
	int bad, lines;
};

static void keep_line(void *ctx, const char *data, size_t len, int nl, int ok)
{
	struct kept *k = ctx;

	k->lines++;
	if (!ok) {
		k->bad++;
		return;
	}
	memcpy(k->out + k->len, data, len);
	k->len += len;
	if (nl)
		k->out[k->len++] = '\n';
}

static void t_line_fn(void)
{
	static const char in[] =
		"{\"resourceType\":\"Patient\",\"id\":\"1\"}\r\n"
		"\n"
		"{\"resourceType\":\"Patient\", broken\n"
		"{\"resourceType\":\"Device\"}\n"
		"{\"resourceType\":\"Patient\",\"id\":\"2\"}";
	static const char want[] =
		"{\"resourceType\":\"Patient\",\"id\":\"1\"}\r\n"
		"\n"
		"{\"resourceType\":\"Patient\",\"id\":\"2\"}";
	struct kept k = { .len = 0 };
	struct rec r = { 0 };
	struct ndjson *v = ndjson_new("Patient", 0, on_issue, &r);
	size_t i;

	ndjson_set_line_fn(v, keep_line, &k);
	for (i = 0; i < sizeof in - 1; i += 7)   /* odd chunks: lines cross them */
		ndjson_feed(v, in + i, sizeof in - 1 - i < 7 ? sizeof in - 1 - i : 7);
	ndjson_finish(v);
	T_CHECK(k.lines == 5 && k.bad == 2 && r.n == 2, "line callback: every physical line, bad ones flagged");
	T_CHECK(k.len == sizeof want - 1 && !memcmp(k.out, want, k.len),
		"line callback: valid lines byte for byte (CR, blank line, last line without newline)");
	ndjson_free(v);

	memset(&k, 0, sizeof k);
	memset(&r, 0, sizeof r);
	v = ndjson_new(NULL, 24, on_issue, &r);
	ndjson_set_line_fn(v, keep_line, &k);
	{
		static const char two[] = "{\"resourceType\":\"Patient\",\"id\":\"12345678\"}\n{\"resourceType\":\"X\"}\n";

		ndjson_feed(v, two, sizeof two - 1);
	}
	ndjson_finish(v);
	T_CHECK(k.bad == 1 && k.lines == 2 && !strcmp(k.out, "{\"resourceType\":\"X\"}\n"),
		"line callback: an over-long line is flagged, never kept");
	ndjson_free(v);
}

int main(void)
{
	struct rec r;
	long long errs, n;
	size_t len = strlen(SAMPLE), cut, i;
	int all_ok = 1;

	/* every split position, two chunks */
	for (cut = 0; cut <= len; cut++) {
		struct ndjson *v = ndjson_new("Patient", 0, on_issue, &r);

		memset(&r, 0, sizeof r);
		ndjson_feed(v, SAMPLE, cut);
		ndjson_feed(v, SAMPLE + cut, len - cut);
		ndjson_finish(v);
		if (ndjson_lines(v) != 3 || ndjson_errors(v) != 0 || r.n != 0) {
			printf("# cut %zu: lines=%lld errors=%lld issues=%d %s\n", cut, ndjson_lines(v),
			       ndjson_errors(v), r.n, r.n ? r.msg[0] : "");
			all_ok = 0;
		}
		ndjson_free(v);
	}
	T_CHECK(all_ok, "sample valid at every chunk boundary");

	/* one byte at a time */
	{
		struct ndjson *v = ndjson_new("Patient", 0, on_issue, &r);

		memset(&r, 0, sizeof r);
		for (i = 0; i < len; i++)
			ndjson_feed(v, SAMPLE + i, 1);
		ndjson_finish(v);
		T_CHECK(ndjson_lines(v) == 3 && ndjson_errors(v) == 0 && r.n == 0, "sample valid byte by byte");
		/* reset and reuse */
		ndjson_reset(v);
		ndjson_feed(v, "{\"resourceType\":\"Patient\"}\n", 27);
		ndjson_finish(v);
		T_CHECK(ndjson_lines(v) == 1 && ndjson_errors(v) == 0, "reset starts over");
		ndjson_free(v);
	}

	/* empty input, blank lines only */
	T_CHECK(run("Patient", 0, "", 0, &r, &errs) == 0 && errs == 0, "empty input: 0 lines");
	T_CHECK(run("Patient", 0, "\n\r\n  \t\n", 7, &r, &errs) == 0 && errs == 0 && r.n == 0, "blank lines not counted");
	n = run("Patient", 0, "{\"resourceType\":\"Patient\"}", 26, &r, &errs);
	T_CHECK(n == 1 && errs == 0, "final line without newline counts");
	n = run("Patient", 0, "{\"resourceType\":\"Patient\"}\r\n{\"resourceType\":\"Patient\"}\r\n", 56, &r, &errs);
	T_CHECK(n == 2 && errs == 0, "CRLF line ends");
	{
		const char *d = "{\"resourceType\":\"Patient\"}\n{\"resourceType\":\"Observation\"}\n";

		n = run(NULL, 0, d, strlen(d), &r, &errs);
	}
	T_CHECK(n == 2 && errs == 0, "NULL expected type accepts any");

	/* line numbers count blank lines too (physical lines) */
	{
		const char *d = "{\"resourceType\":\"Patient\"}\n\n\n{\"resourceType\":\"Device\"}\n";

		n = run("Patient", 0, d, strlen(d), &r, &errs);
		T_CHECK(n == 2 && errs == 1 && r.n == 1 && r.line[0] == 4, "issue line is the physical line");
	}

	/* bad UTF-8 */
	T_CHECK(one_issue("Patient", "{\"resourceType\":\"Patient\",\"x\":\"\xc0\xaf\"}", 2, "structure"), "utf8 overlong 2-byte");
	T_CHECK(one_issue("Patient", "{\"resourceType\":\"Patient\",\"x\":\"\xe0\x80\xaf\"}", 2, "structure"), "utf8 overlong 3-byte");
	T_CHECK(one_issue("Patient", "{\"resourceType\":\"Patient\",\"x\":\"\xf0\x80\x80\xaf\"}", 2, "structure"), "utf8 overlong 4-byte");
	T_CHECK(one_issue("Patient", "{\"resourceType\":\"Patient\",\"x\":\"\xed\xa0\x80\"}", 2, "structure"), "utf8 surrogate");
	T_CHECK(one_issue("Patient", "{\"resourceType\":\"Patient\",\"x\":\"\xf4\x90\x80\x80\"}", 2, "structure"), "utf8 above U+10FFFF");
	T_CHECK(one_issue("Patient", "{\"resourceType\":\"Patient\",\"x\":\"\x80\"}", 2, "structure"), "utf8 lone continuation");
	T_CHECK(one_issue("Patient", "{\"resourceType\":\"Patient\",\"x\":\"\xe2\x82\"}", 2, "structure"), "utf8 truncated sequence");
	T_CHECK(one_issue("Patient", "{\"resourceType\":\"Patient\",\"x\":\"\xff\"}", 2, "structure"), "utf8 0xff");
	T_CHECK(utf8_valid_prefix((const unsigned char *)"ab\xf4\x8f\xbf\xbf", 6) == 6, "utf8 U+10FFFF ok");
	T_CHECK(utf8_valid_prefix((const unsigned char *)"ab\xef\xbf\xbd", 5) == 5, "utf8 U+FFFD ok");
	T_CHECK(utf8_valid_prefix((const unsigned char *)"ab\xe2\x82", 4) == 2, "utf8 prefix stops at truncation");

	/* bad JSON */
	T_CHECK(one_issue("Patient", "{\"resourceType\":\"Patient\",}", 2, "structure"), "json trailing comma");
	T_CHECK(one_issue("Patient", "{\"resourceType\":\"Patient\"", 2, "structure"), "json unterminated");
	T_CHECK(one_issue("Patient", "{\"resourceType\":\"Patient\"}{}", 2, "structure"), "json two values");
	T_CHECK(one_issue("Patient", "{\"resourceType\":\"Patient\"} x", 2, "structure"), "json trailing garbage");
	T_CHECK(one_issue("Patient", "{'resourceType':'Patient'}", 2, "structure"), "json single quotes");
	T_CHECK(one_issue("Patient", "{\"resourceType\":\"Patient\",\"v\":NaN}", 2, "structure"), "json NaN");
	T_CHECK(one_issue("Patient", "{\"resourceType\":\"Patient\",\"v\":1.}", 2, "structure"), "json 1.");
	T_CHECK(one_issue("Patient", "{\"resourceType\":\"Patient\",\"v\":\"a\tb\"}", 2, "structure"), "json raw tab in string");
	T_CHECK(one_issue("Patient", "[{\"resourceType\":\"Patient\"}]", 2, "structure"), "json array not object");
	T_CHECK(one_issue("Patient", "{\"id\":\"x\"}", 2, "structure"), "missing resourceType");
	T_CHECK(one_issue("Patient", "{\"resourceType\":7}", 2, "structure"), "resourceType not a string");
	T_CHECK(one_issue("Patient", "{\"resourceType\":\"Observation\"}", 2, "value"), "wrong resourceType");
	T_CHECK(one_issue("Patient", "{\"resourceType\":\"\xc3\xa9\xc3\xa9\xc3\xa9\"}", 2, "value"), "wrong unicode resourceType");
	T_CHECK(one_issue("Patient", "{\"resourceType\":\"Patient\",\"e\":1e5,\"f\":2E-3}\n{\"resourceType\":\"X\"}", 3, "value"),
		"exponents accepted");

	/* over-long line: reported once, skipped, following lines fine */
	{
		char big[400];
		struct ndjson *v = ndjson_new("Patient", 60, on_issue, &r);
		const char *head = "{\"resourceType\":\"Patient\"}\n{\"resourceType\":\"Patient\",\"x\":\"";
		const char *tail = "\"}\n{\"resourceType\":\"Patient\"}\n";

		memset(&r, 0, sizeof r);
		memset(big, 'x', sizeof big);
		ndjson_feed(v, head, strlen(head));
		for (i = 0; i < 10; i++)
			ndjson_feed(v, big, sizeof big);
		ndjson_feed(v, tail, strlen(tail));
		ndjson_finish(v);
		T_CHECK(r.n == 1 && r.line[0] == 2 && !strcmp(r.code[0], "too-long"), "over-long line reported once");
		T_CHECK(ndjson_lines(v) == 3 && ndjson_errors(v) == 1, "over-long line counted as bad line");
		ndjson_free(v);
		n = run("Patient", 26, "{\"resourceType\":\"Patient\"}\n", 27, &r, &errs);
		T_CHECK(n == 1 && errs == 0, "line of exactly max bytes accepted");
		n = run("Patient", 25, "{\"resourceType\":\"Patient\"}", 26, &r, &errs);
		T_CHECK(n == 1 && errs == 1 && r.n == 1, "final over-long line without newline");
	}

	/* many bad lines: each reported with its line */
	{
		const char *d = "x\ny\n{\"resourceType\":\"Patient\"}\nz";

		n = run("Patient", 0, d, strlen(d), &r, &errs);
		T_CHECK(n == 4 && errs == 3 && r.n == 3 && r.line[0] == 1 && r.line[1] == 2 && r.line[2] == 4,
			"several bad lines with numbers");
	}
	t_line_fn();
	return t_done();
}
