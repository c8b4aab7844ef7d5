/* S3 destination against a local s3rver (tests/s3/start.mjs, which also
 * verifies SigV4 signatures).  Objects are checked by reading them back
 * over plain HTTP. */
#include "t.h"
#include "t_node.h"
#include "dest.h"
#include "http.h"
#include <stdint.h>
#include <sys/socket.h>
#include <netinet/in.h>

#define MIB (1L << 20)

static struct t_node srv;
static char base[128];     /* http://127.0.0.1:P */

static long get_obj(const char *key, struct buf *out, struct buf *hdrs)
{
	char url[512];

	snprintf(url, sizeof url, "%s/bulk-test/%s", base, key);
	buf_reset(out);
	if (hdrs)
		buf_reset(hdrs);
	return t_http("GET", url, NULL, 0, out, hdrs);
}

static void control(const char *path_and_query)
{
	char url[512];

	snprintf(url, sizeof url, "%s%s", base, path_and_query);
	t_http("POST", url, "", 0, NULL, NULL);
}

/* A number from /__stats: "name":N */
static long stat_num(const char *name)
{
	struct buf b = BUF_INIT;
	char url[256], pat[64];
	const char *p;
	long v = -1;

	snprintf(url, sizeof url, "%s/__stats", base);
	t_http("GET", url, NULL, 0, &b, NULL);
	snprintf(pat, sizeof pat, "\"%s\":", name);
	if ((p = strstr(buf_str(&b), pat)))
		v = strtol(p + strlen(pat), NULL, 10);
	buf_free(&b);
	return v;
}

static char *stats_json(void)
{
	struct buf b = BUF_INIT;
	char url[256];

	snprintf(url, sizeof url, "%s/__stats", base);
	t_http("GET", url, NULL, 0, &b, NULL);
	return buf_detach(&b);
}

static long aborts(void)
{
	struct buf b = BUF_INIT;
	char url[256];
	const char *p;
	long n = 0;

	snprintf(url, sizeof url, "%s/__stats", base);
	t_http("GET", url, NULL, 0, &b, NULL);
	for (p = buf_str(&b); (p = strstr(p, "\"uploadId\"")); p++)
		n++;
	buf_free(&b);
	return n;
}

/* Deterministic bytes for position i. */
static unsigned char pat_byte(size_t i)
{
	return (unsigned char)((i * 2654435761u) >> 13);
}

/* Writes `total` pattern bytes in uneven chunks; 0 or -1. */
static int write_pattern(struct dest_file *f, size_t total, char **err)
{
	static unsigned char chunk[70001];
	size_t off = 0, i;

	while (off < total) {
		size_t n = total - off < sizeof chunk ? total - off : sizeof chunk;

		for (i = 0; i < n; i++)
			chunk[i] = pat_byte(off + i);
		if (dest_file_write(f, chunk, n, err) < 0)
			return -1;
		off += n;
	}
	return 0;
}

static int is_pattern(const struct buf *b, size_t total)
{
	size_t i;

	if (b->len != total)
		return 0;
	for (i = 0; i < total; i++)
		if ((unsigned char)b->data[i] != pat_byte(i))
			return 0;
	return 1;
}

static void clear_err(char **err)
{
	free(*err);
	*err = NULL;
}

static int free_port(void)
{
	struct sockaddr_in a = { 0 };
	socklen_t al = sizeof a;
	int s = socket(AF_INET, SOCK_STREAM, 0), port = 0;

	a.sin_family = AF_INET;
	a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	if (s >= 0 && bind(s, (struct sockaddr *)&a, sizeof a) == 0 && getsockname(s, (struct sockaddr *)&a, &al) == 0)
		port = ntohs(a.sin_port);
	if (s >= 0)
		close(s);
	return port;
}

int main(void)
{
	struct buf b = BUF_INIT, h = BUF_INIT;
	struct dest_conf c = { 0 };
	struct dest *d, *d2;
	struct dest_file *f;
	char script[PATH_MAX + 64], why[256], mods[PATH_MAX + 64], *err = NULL, *s;
	struct stat st;
	long faults0;

	snprintf(script, sizeof script, "%s/tests/s3/start.mjs", t_root());
	snprintf(mods, sizeof mods, "%s/tests/s3/node_modules/s3rver", t_root());
	if (stat(mods, &st) < 0) {
		printf("ok - skipped (tests/s3/node_modules missing: run npm ci in tests/s3)\n");
		return t_done();
	}
	if (t_node_start(&srv, script, NULL, why, sizeof why) < 0) {
		printf("not ok - start s3rver: %s\n", why);
		t_fail++;
		return t_done();
	}
	http_global_init();
	snprintf(base, sizeof base, "http://127.0.0.1:%d", srv.port);

	c.s3_endpoint = base;
	c.s3_region = "us-east-1";
	c.s3_access_key = "S3RVER";
	c.s3_secret_key = "S3RVER";
	c.s3_part_size = 5 * MIB;
	c.retries = 2;

	d = dest_open_conf("s3://bulk-test/exports//run1/", &c, &err);
	T_CHECK(d != NULL, "open s3 destination");
	if (!d) {
		printf("# %s\n", err ? err : "");
		goto done;
	}
	T_CHECK(dest_can_resume(d) == 0, "s3 cannot resume");

	/* small file: one PutObject on commit */
	f = dest_file_open(d, "1.Patient.ndjson", &err);
	T_CHECK(f && dest_file_write(f, "{\"resourceType\":\"Patient\"}\n", 27, &err) == 0 &&
		dest_file_write(f, "{\"resourceType\":\"Patient\",\"id\":\"2\"}\n", 36, &err) == 0, "small file written");
	T_CHECK(get_obj("exports/run1/1.Patient.ndjson", &b, NULL) == 404, "not visible before commit");
	T_CHECK(f && dest_file_commit(f, &err) == 0, "small file committed");
	T_CHECK(get_obj("exports/run1/1.Patient.ndjson", &b, &h) == 200 && b.len == 63 &&
		!memcmp(b.data, "{\"resourceType\":\"Patient\"}\n{\"resourceType\":\"Patient\",\"id\":\"2\"}\n", 63),
		"small file bytes exact, key = prefix/name without double slashes");
	s = t_header(&h, "Content-Type");
	T_CHECK(s && !strcmp(s, "application/fhir+ndjson"), "small file content type");
	free(s);

	/* empty file */
	f = dest_file_open(d, "2.Empty.ndjson", &err);
	T_CHECK(f && dest_file_commit(f, &err) == 0 && get_obj("exports/run1/2.Empty.ndjson", &b, NULL) == 200 && b.len == 0,
		"empty file stored");

	/* multipart: 12 MiB in 5 MiB parts, with a 500 on part 2 retried */
	control("/__fault?status=500&match=partNumber%3D2&count=1");
	faults0 = stat_num("faults");
	f = dest_file_open(d, "3.Observation.ndjson", &err);
	T_CHECK(f && write_pattern(f, 12 * MIB, &err) == 0, "12 MiB written (parts sent while writing)");
	T_CHECK(get_obj("exports/run1/3.Observation.ndjson", &b, NULL) == 404, "multipart object not visible before commit");
	T_CHECK(f && dest_file_commit(f, &err) == 0, "multipart committed");
	if (err)
		printf("# %s\n", err);
	T_CHECK(stat_num("faults") == faults0 + 1, "a part failed once with 500 and was retried");
	T_CHECK(get_obj("exports/run1/3.Observation.ndjson", &b, &h) == 200 && is_pattern(&b, 12 * MIB),
		"multipart object bytes and size exact");
	s = stats_json();
	T_CHECK(strstr(s, "\"partSizes\":[5242880,5242880,2097152]"), "parts of 5, 5 and 2 MiB (the failed one not counted)");
	free(s);

	/* a part rejected with 4xx fails the file; abort releases the upload */
	control("/__fault?status=400&match=partNumber%3D1&count=1");
	{
		long a0 = aborts();
		int w;

		f = dest_file_open(d, "4.Bad.ndjson", &err);
		w = f ? write_pattern(f, 6 * MIB, &err) : 0;
		T_CHECK(f && w == -1 && err && strstr(err, "UploadPart") && strstr(err, "HTTP 400 InvalidRequest") &&
			strstr(err, "exports/run1/4.Bad.ndjson"), "4xx on a part fails the write with the S3 error code");
		if (err)
			printf("# %s\n", err);
		clear_err(&err);
		T_CHECK(f && dest_file_write(f, "x", 1, &err) == -1 && err, "failed file stays failed");
		clear_err(&err);
		T_CHECK(f && dest_file_commit(f, &err) == -1 && err && strstr(err, "UploadPart"), "commit of a failed file fails");
		clear_err(&err);
		T_CHECK(aborts() == a0 + 1, "failed upload aborted");
		T_CHECK(get_obj("exports/run1/4.Bad.ndjson", &b, NULL) == 404, "failed file leaves no object");

		/* abort in the middle of a multipart upload */
		f = dest_file_open(d, "5.Aborted.ndjson", &err);
		T_CHECK(f && write_pattern(f, 6 * MIB, &err) == 0, "6 MiB written (one part sent)");
		dest_file_abort(f);
		T_CHECK(aborts() == a0 + 2, "abort sends AbortMultipartUpload");
		T_CHECK(get_obj("exports/run1/5.Aborted.ndjson", &b, NULL) == 404, "abort leaves no object");
		f = dest_file_open(d, "6.Aborted.ndjson", &err);
		T_CHECK(f && dest_file_write(f, "abc", 3, &err) == 0, "small write");
		dest_file_abort(f);
		T_CHECK(aborts() == a0 + 2 && get_obj("exports/run1/6.Aborted.ndjson", &b, NULL) == 404,
			"abort of a small file sends nothing, leaves nothing");
	}

	/* 5xx beyond the retries fails the file */
	control("/__fault?status=503&match=7.Down&count=10");
	f = dest_file_open(d, "7.Down.ndjson", &err);
	T_CHECK(f && dest_file_write(f, "{}\n", 3, &err) == 0 && dest_file_commit(f, &err) == -1 && err &&
		strstr(err, "PutObject") && strstr(err, "HTTP 503 InternalError"), "503 after all retries fails the commit");
	if (err)
		printf("# %s\n", err);
	clear_err(&err);
	T_CHECK(stat_num("faults") == faults0 + 1 + 1 + 3, "put tried 1 + retries (2) times");
	control("/__fault?count=0");

	/* dest_put / dest_get, sub-folder names */
	T_CHECK(dest_put(d, "state.json", "{\"v\":1}", 7, NULL, &err) == 0, "dest_put");
	T_CHECK(dest_put(d, "state.json", "{\"v\":22}", 8, NULL, &err) == 0, "dest_put replaces");
	buf_reset(&b);
	T_CHECK(dest_get(d, "state.json", &b, &err) == 0 && b.len == 8 && !memcmp(b.data, "{\"v\":22}", 8), "dest_get");
	T_CHECK(get_obj("exports/run1/state.json", &b, &h) == 200, "put object visible");
	s = t_header(&h, "Content-Type");
	T_CHECK(s && !strcmp(s, "application/json"), "put content type from the name");
	free(s);
	buf_reset(&b);
	T_CHECK(dest_get(d, "missing.json", &b, &err) == -1 && err == NULL, "dest_get absent: -1, err NULL");
	T_CHECK(dest_put(d, "attachments/a.pdf", "%PDF-1.4", 8, "application/pdf", &err) == 0 &&
		get_obj("exports/run1/attachments/a.pdf", &b, NULL) == 200 && b.len == 8, "sub-folder name becomes key path");

	/* session token is sent (and signed: the front checks every x-amz-* header is) */
	{
		struct dest_conf c2 = c;
		long tok0 = stat_num("withToken"), sig0 = stat_num("sigFailures");

		c2.s3_session_token = "FwoGZXIvYXdzEXAMPLETOKEN";
		d2 = dest_open_conf("s3://bulk-test/other", &c2, &err);
		T_CHECK(d2 && dest_put(d2, "keep.txt", "keep", 4, NULL, &err) == 0, "put with a session token");
		T_CHECK(stat_num("withToken") == tok0 + 1 && stat_num("sigFailures") == sig0, "token header sent and signed");
		dest_close(d2);
	}

	/* wrong secret / wrong key: clear errors, no secret in them */
	{
		struct dest_conf c2 = c;

		c2.s3_secret_key = "not-the-secret-xyz";
		d2 = dest_open_conf("s3://bulk-test/x", &c2, &err);
		T_CHECK(d2 && dest_put(d2, "a.json", "{}", 2, NULL, &err) == -1 && err &&
			strstr(err, "SignatureDoesNotMatch") && !strstr(err, "not-the-secret-xyz"),
			"wrong secret: SignatureDoesNotMatch, secret not in the message");
		if (err)
			printf("# %s\n", err);
		clear_err(&err);
		f = d2 ? dest_file_open(d2, "b.ndjson", &err) : NULL;
		T_CHECK(f && dest_file_write(f, "{}\n", 3, &err) == 0 && dest_file_commit(f, &err) == -1 && err &&
			strstr(err, "SignatureDoesNotMatch"), "wrong secret fails the file at commit");
		clear_err(&err);
		dest_close(d2);
		c2.s3_secret_key = "S3RVER";
		c2.s3_access_key = "NOSUCHKEY";
		d2 = dest_open_conf("s3://bulk-test/x", &c2, &err);
		T_CHECK(d2 && dest_put(d2, "a.json", "{}", 2, NULL, &err) == -1 && err && strstr(err, "InvalidAccessKeyId"),
			"unknown access key: InvalidAccessKeyId");
		clear_err(&err);
		dest_close(d2);
	}

	/* remove_all: paginated list (2 keys a page) and delete, other prefixes kept */
	control("/__listmaxkeys?n=2");
	{
		long pages0 = stat_num("listPages");

		T_CHECK(dest_remove_all(d, &err) == 0, "remove_all");
		T_CHECK(stat_num("listPages") - pages0 == 3, "5 keys listed in 3 pages");
	}
	if (err)
		printf("# %s\n", err);
	control("/__listmaxkeys?n=0");
	{
		char url[256];

		snprintf(url, sizeof url, "%s/bulk-test?list-type=2&prefix=exports%%2F", base);
		buf_reset(&b);
		T_CHECK(t_http("GET", url, NULL, 0, &b, NULL) == 200 && strstr(buf_str(&b), "<KeyCount>0</KeyCount>"),
			"nothing left under the prefix");
		T_CHECK(get_obj("other/keep.txt", &b, NULL) == 200, "other prefix untouched");
	}
	dest_close(d);

	/* settings from the environment */
	setenv("AWS_ACCESS_KEY_ID", "S3RVER", 1);
	setenv("AWS_SECRET_ACCESS_KEY", "S3RVER", 1);
	setenv("AWS_REGION", "eu-west-1", 1);
	setenv("AWS_ENDPOINT_URL", "http://127.0.0.1:1", 1);
	setenv("AWS_ENDPOINT_URL_S3", base, 1);   /* the service-specific one wins */
	unsetenv("AWS_SESSION_TOKEN");
	d = dest_open_conf("s3://bulk-test/envtest", NULL, &err);
	T_CHECK(d && dest_put(d, "e.json", "{\"e\":1}", 7, NULL, &err) == 0 && get_obj("envtest/e.json", &b, NULL) == 200 &&
		b.len == 7, "credentials, region and endpoint from AWS_* variables");
	if (err)
		printf("# %s\n", err);
	dest_close(d);
	unsetenv("AWS_ENDPOINT_URL_S3");
	unsetenv("AWS_ENDPOINT_URL");

	/* a dead endpoint: transport error after the retries */
	{
		struct dest_conf c2 = c;
		char dead[64];

		snprintf(dead, sizeof dead, "http://127.0.0.1:%d", free_port());
		c2.s3_endpoint = dead;
		c2.retries = 1;
		d = dest_open_conf("s3://bulk-test/x", &c2, &err);
		T_CHECK(d && dest_put(d, "a.json", "{}", 2, NULL, &err) == -1 && err && strstr(err, "PutObject s3://bulk-test/x/a.json"),
			"unreachable endpoint fails with a transport error");
		if (err)
			printf("# %s\n", err);
		clear_err(&err);
		dest_close(d);
	}

	/* bad settings */
	unsetenv("AWS_ACCESS_KEY_ID");
	T_CHECK(dest_open_conf("s3://bulk-test/x", NULL, &err) == NULL && err && strstr(err, "AWS_ACCESS_KEY_ID") &&
		!strstr(err, "S3RVER"), "missing credentials refused, secret not echoed");
	clear_err(&err);
	T_CHECK(dest_open("s3://", &err) == NULL && err, "s3:// without bucket refused");
	clear_err(&err);
	T_CHECK(dest_open_conf("s3://bad bucket/x", &c, &err) == NULL && err, "bad bucket name refused");
	clear_err(&err);
	{
		struct dest_conf c2 = c;

		c2.s3_part_size = 1 * MIB;
		T_CHECK(dest_open_conf("s3://bulk-test/x", &c2, &err) == NULL && err && strstr(err, "5 MiB"), "part size below 5 MiB refused");
		clear_err(&err);
		c2.s3_part_size = 0;
		c2.s3_region = "us-east-1:evil";
		T_CHECK(dest_open_conf("s3://bulk-test/x", &c2, &err) == NULL && err, "bad region refused");
		clear_err(&err);
		c2.s3_region = NULL;
		c2.s3_endpoint = "ftp://x";
		T_CHECK(dest_open_conf("s3://bulk-test/x", &c2, &err) == NULL && err, "non-http endpoint refused");
		clear_err(&err);
	}
	T_CHECK(stat_num("sigFailures") == 3, "only the wrong-secret and wrong-key requests failed the signature check");
done:
	free(err);
	buf_free(&b);
	buf_free(&h);
	t_node_stop(&srv);
	return t_done();
}
