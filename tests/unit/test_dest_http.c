/* HTTP destination against tests/receiver/server.mjs: PUT and POST, content
 * types, custom headers, retry after a 500, a 400 failing the file, a flat
 * spool file, query strings kept but not shown in messages. */
#include "t.h"
#include "t_node.h"
#include "dest.h"
#include "http.h"
#include <dirent.h>
#include <json-c/json.h>
#include <openssl/evp.h>
#include <sys/socket.h>
#include <netinet/in.h>

static struct t_node srv;
static char base[128];

static void clear_err(char **err)
{
	free(*err);
	*err = NULL;
}

/* The entry of /__received for path (a new reference) or NULL. */
static json_object *received(const char *path)
{
	struct buf b = BUF_INIT;
	char url[256];
	json_object *all, *hit = NULL;
	size_t i;

	snprintf(url, sizeof url, "%s/__received", base);
	t_http("GET", url, NULL, 0, &b, NULL);
	all = json_tokener_parse(buf_str(&b));
	for (i = 0; all && i < json_object_array_length(all); i++) {
		json_object *e = json_object_array_get_idx(all, i), *p;

		if (json_object_object_get_ex(e, "path", &p) && !strcmp(json_object_get_string(p), path))
			hit = json_object_get(e);   /* the last one wins */
	}
	json_object_put(all);
	buf_free(&b);
	return hit;
}

static const char *field(json_object *e, const char *name)
{
	json_object *v;

	return e && json_object_object_get_ex(e, name, &v) ? json_object_get_string(v) : "";
}

static const char *header(json_object *e, const char *name)
{
	json_object *h, *v;

	return e && json_object_object_get_ex(e, "headers", &h) && json_object_object_get_ex(h, name, &v)
		? json_object_get_string(v) : "";
}

static long attempts(const char *path)
{
	struct buf b = BUF_INIT;
	char url[256];
	json_object *o, *paths, *n;
	long v = 0;

	snprintf(url, sizeof url, "%s/__attempts", base);
	t_http("GET", url, NULL, 0, &b, NULL);
	o = json_tokener_parse(buf_str(&b));
	if (o && json_object_object_get_ex(o, "paths", &paths) && json_object_object_get_ex(paths, path, &n))
		v = json_object_get_int64(n);
	json_object_put(o);
	buf_free(&b);
	return v;
}

static void sha256_hex(const void *p, size_t len, char out[65])
{
	unsigned char md[32];
	unsigned int n = 0;
	int i;

	EVP_Digest(p, len, md, &n, EVP_sha256(), NULL);
	for (i = 0; i < 32; i++)
		snprintf(out + 2 * i, 3, "%02x", md[i]);
}

static int count_entries(const char *dir)
{
	DIR *d = opendir(dir);
	struct dirent *de;
	int n = 0;

	if (!d)
		return -1;
	while ((de = readdir(d)))
		if (strcmp(de->d_name, ".") && strcmp(de->d_name, ".."))
			n++;
	closedir(d);
	return n;
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
	char script[PATH_MAX + 64], why[256], spec[256], tmpd[] = "/tmp/test_dest_http.XXXXXX", *err = NULL;
	char hex[65], url[256];
	struct dest_conf c = { 0 };
	struct buf b = BUF_INIT;
	struct dest *d;
	struct dest_file *f;
	json_object *e;
	char *big;
	size_t i, big_len = 3 * 1024 * 1024 + 17;

	snprintf(script, sizeof script, "%s/tests/receiver/server.mjs", t_root());
	if (t_node_start(&srv, script, NULL, why, sizeof why) < 0) {
		printf("not ok - start receiver: %s\n", why);
		t_fail++;
		return t_done();
	}
	http_global_init();
	snprintf(base, sizeof base, "http://127.0.0.1:%d", srv.port);
	T_CHECK(mkdtemp(tmpd) != NULL, "mkdtemp");
	setenv("TMPDIR", tmpd, 1);

	/* PUT (default), content types, large file through the spool */
	snprintf(spec, sizeof spec, "%s/upload/run1/", base);
	c.retries = 2;
	d = dest_open_conf(spec, &c, &err);
	T_CHECK(d != NULL, "open http destination");
	if (!d)
		goto done;
	T_CHECK(dest_can_resume(d) == 0, "http cannot resume");
	f = dest_file_open(d, "1.Patient.ndjson", &err);
	T_CHECK(f && dest_file_write(f, "{\"resourceType\":\"Patient\"}\n", 27, &err) == 0, "write");
	T_CHECK(count_entries(tmpd) == 0, "spool file is unlinked");
	T_CHECK(received("/upload/run1/1.Patient.ndjson") == NULL, "nothing sent before commit");
	T_CHECK(f && dest_file_commit(f, &err) == 0, "commit");
	e = received("/upload/run1/1.Patient.ndjson");
	sha256_hex("{\"resourceType\":\"Patient\"}\n", 27, hex);
	T_CHECK(e && !strcmp(field(e, "method"), "PUT") && !strcmp(field(e, "contentType"), "application/fhir+ndjson") &&
		!strcmp(field(e, "size"), "27") && !strcmp(field(e, "sha256"), hex),
		"PUT to base/name with application/fhir+ndjson, bytes exact");
	json_object_put(e);

	big = malloc(big_len);
	for (i = 0; i < big_len; i++)
		big[i] = (char)(i * 7919 >> 3);
	f = dest_file_open(d, "2.Observation.ndjson", &err);
	for (i = 0; f && i < big_len; i += 65536)
		dest_file_write(f, big + i, big_len - i < 65536 ? big_len - i : 65536, &err);
	T_CHECK(f && dest_file_commit(f, &err) == 0, "large file committed");
	snprintf(url, sizeof url, "%s/upload/run1/2.Observation.ndjson", base);
	T_CHECK(t_http("GET", url, NULL, 0, &b, NULL) == 200 && b.len == big_len && !memcmp(b.data, big, big_len),
		"large file bytes exact");
	free(big);

	T_CHECK(dest_put(d, "manifest.json", "{}", 2, NULL, &err) == 0, "dest_put");
	e = received("/upload/run1/manifest.json");
	T_CHECK(e && !strcmp(field(e, "contentType"), "application/json") && !strcmp(field(e, "size"), "2"),
		".json as application/json");
	json_object_put(e);
	T_CHECK(dest_put(d, "attachments/x.bin", "\x01\x02", 2, NULL, &err) == 0, "dest_put in a sub-path");
	e = received("/upload/run1/attachments/x.bin");
	T_CHECK(e && !strcmp(field(e, "contentType"), "application/octet-stream"), "other names as application/octet-stream");
	json_object_put(e);
	T_CHECK(dest_put(d, "p.txt", "x", 1, "text/x-custom", &err) == 0, "dest_put with a content type");
	e = received("/upload/run1/p.txt");
	T_CHECK(e && !strcmp(field(e, "contentType"), "text/x-custom"), "given content type used");
	json_object_put(e);
	buf_reset(&b);
	T_CHECK(dest_get(d, "manifest.json", &b, &err) == -1 && err == NULL, "dest_get says absent");
	T_CHECK(dest_remove_all(d, &err) == 0, "remove_all does nothing, succeeds");
	f = dest_file_open(d, "3.Aborted.ndjson", &err);
	T_CHECK(f && dest_file_write(f, "x\n", 2, &err) == 0, "write before abort");
	dest_file_abort(f);
	T_CHECK(received("/upload/run1/3.Aborted.ndjson") == NULL, "abort sends nothing");
	dest_close(d);

	/* POST with custom headers and a query string on the base */
	{
		const char *hdrs[] = { "X-Token: s3cr3t-header", "X-Run: 7", NULL };

		c.http_method = "post";
		c.http_headers = hdrs;
		snprintf(spec, sizeof spec, "%s/post?sig=QUERYSECRET", base);
		d = dest_open_conf(spec, &c, &err);
		f = d ? dest_file_open(d, "4.Condition.ndjson", &err) : NULL;
		T_CHECK(f && dest_file_write(f, "{}\n", 3, &err) == 0 && dest_file_commit(f, &err) == 0, "POST commit");
		e = received("/post/4.Condition.ndjson");
		T_CHECK(e && !strcmp(field(e, "method"), "POST") && !strcmp(field(e, "query"), "?sig=QUERYSECRET") &&
			!strcmp(field(e, "size"), "3"), "POST to base/name, query string kept");
		T_CHECK(e && !strcmp(header(e, "x-token"), "s3cr3t-header") && !strcmp(header(e, "x-run"), "7"),
			"custom headers sent");
		T_CHECK(e && !strcmp(header(e, "content-type"), "application/fhir+ndjson"), "POST content type");
		json_object_put(e);
		dest_close(d);
		c.http_method = NULL;

		/* a 400 fails the file: status and a short excerpt, no secrets */
		snprintf(spec, sizeof spec, "%s/reject?sig=QUERYSECRET", base);
		d = dest_open_conf(spec, &c, &err);
		f = d ? dest_file_open(d, "5.Bad.ndjson", &err) : NULL;
		T_CHECK(f && dest_file_write(f, "{}\n", 3, &err) == 0 && dest_file_commit(f, &err) == -1, "400 fails the commit");
		T_CHECK(err && strstr(err, "status 400") && strstr(err, "rejected: this receiver") &&
			strstr(err, "/reject/5.Bad.ndjson") && strlen(err) < 400, "message: status, URL, short excerpt");
		T_CHECK(err && !strstr(err, "QUERYSECRET") && !strstr(err, "s3cr3t-header"), "no query string or header in the message");
		if (err)
			printf("# %s\n", err);
		T_CHECK(attempts("/reject/5.Bad.ndjson") == 1, "4xx not retried");
		clear_err(&err);
		dest_close(d);
		c.http_headers = NULL;
	}

	/* a 500 is retried, the file arrives once */
	snprintf(spec, sizeof spec, "%s/fail500once", base);
	d = dest_open_conf(spec, &c, &err);
	f = d ? dest_file_open(d, "6.Retry.ndjson", &err) : NULL;
	T_CHECK(f && dest_file_write(f, "{\"a\":1}\n", 8, &err) == 0 && dest_file_commit(f, &err) == 0, "commit after a 500");
	T_CHECK(attempts("/fail500once/6.Retry.ndjson") == 2, "sent twice");
	e = received("/fail500once/6.Retry.ndjson");
	T_CHECK(e && !strcmp(field(e, "size"), "8"), "full body on the retry");
	json_object_put(e);
	T_CHECK(dest_put(d, "state.json", "{}", 2, NULL, &err) == 0 && attempts("/fail500once/state.json") == 2, "dest_put retried");
	dest_close(d);

	/* 500 every time: fails after 1 + retries */
	c.retries = 1;
	snprintf(spec, sizeof spec, "%s/fail500always", base);
	d = dest_open_conf(spec, &c, &err);
	f = d ? dest_file_open(d, "7.Down.ndjson", &err) : NULL;
	T_CHECK(f && dest_file_write(f, "{}\n", 3, &err) == 0 && dest_file_commit(f, &err) == -1 && err &&
		strstr(err, "status 500"), "persistent 500 fails the file");
	T_CHECK(attempts("/fail500always/7.Down.ndjson") == 2, "tried 1 + retries times");
	clear_err(&err);
	dest_close(d);

	/* unreachable receiver */
	snprintf(spec, sizeof spec, "http://127.0.0.1:%d/x", free_port());
	d = dest_open_conf(spec, &c, &err);
	T_CHECK(d && dest_put(d, "a.json", "{}", 2, NULL, &err) == -1 && err && strstr(err, "HTTP PUT http://127.0.0.1"),
		"connection refused fails with a transport error");
	if (err)
		printf("# %s\n", err);
	clear_err(&err);
	dest_close(d);

	/* bad settings */
	{
		const char *bad[] = { "X-Evil: a\r\nInjected: b", NULL }, *nocolon[] = { "NoColon", NULL };

		c.http_method = "DELETE";
		T_CHECK(dest_open_conf(spec, &c, &err) == NULL && err, "method other than PUT/POST refused");
		clear_err(&err);
		c.http_method = NULL;
		c.http_headers = bad;
		T_CHECK(dest_open_conf(spec, &c, &err) == NULL && err, "header with CR/LF refused");
		clear_err(&err);
		c.http_headers = nocolon;
		T_CHECK(dest_open_conf(spec, &c, &err) == NULL && err, "header without a colon refused");
		clear_err(&err);
		c.http_headers = NULL;
		T_CHECK(dest_open_conf("http:///nohost", &c, &err) == NULL && err, "URL without a host refused");
		clear_err(&err);
	}
	T_CHECK(count_entries(tmpd) == 0, "no spool files left");
done:
	rmdir(tmpd);
	free(err);
	buf_free(&b);
	t_node_stop(&srv);
	return t_done();
}
