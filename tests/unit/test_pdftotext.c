/* pdftotext child process: real conversions of the fixture PDF, garbage,
 * limits (memory, output, time) and pipe handling, the last ones with small
 * shell scripts standing in for pdftotext.  Run from the repository root;
 * the fixture is ../shared/fixtures/attachments/document.pdf (or
 * $FIXTURES_DIR/attachments/document.pdf).  SIGPIPE keeps its default
 * action here on purpose: the module must not let it reach us. */
#include "t.h"
#include "pdftotext.h"
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <sys/stat.h>

static char tmpdir[64];

static char *slurp(const char *path, size_t *len)
{
	FILE *f = fopen(path, "rb");
	char *p = NULL;
	long n;

	if (!f)
		return NULL;
	if (fseek(f, 0, SEEK_END) == 0 && (n = ftell(f)) >= 0 && fseek(f, 0, SEEK_SET) == 0 &&
	    (p = malloc((size_t)n + 1)) && fread(p, 1, (size_t)n, f) == (size_t)n) {
		p[n] = '\0';
		*len = (size_t)n;
	} else {
		free(p);
		p = NULL;
	}
	fclose(f);
	return p;
}

/* An executable script in tmpdir; returns its path (static buffer per slot). */
static const char *script(int slot, const char *body)
{
	static char paths[8][128];
	FILE *f;

	snprintf(paths[slot], sizeof paths[slot], "%s/s%d.sh", tmpdir, slot);
	f = fopen(paths[slot], "w");
	if (!f)
		return "/nonexistent";
	fprintf(f, "#!/bin/sh\n%s\n", body);
	fclose(f);
	chmod(paths[slot], 0700);
	return paths[slot];
}

static long long ms_now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void t_real(const char *pdf, size_t len)
{
	struct pdftotext_opts o = { 0 };
	char *text = NULL, *err = NULL, *half;
	size_t tl = 0;
	int rc;

	rc = pdftotext_convert(NULL, pdf, len, &text, &tl, &err);
	T_CHECK(rc == 0 && text && !err, "document.pdf converts with defaults");
	T_CHECK(text && strstr(text, "CNS Vital Signs Clinical Report Sample"), "text has the report title");
	T_CHECK(text && strstr(text, "Neurocognitive Domain Dashboard"), "text has a heading from page 1");
	T_CHECK(text && tl == strlen(text) && tl > 1000 && tl < 10000, "text length is plausible and NUL-free");
	T_CHECK(text && strchr(text, '\f'), "pages are separated by form feeds");
	free(text);
	free(err);
	text = err = NULL;

	rc = pdftotext_convert(NULL, "this is not a PDF\n", 18, &text, &tl, &err);
	T_CHECK(rc == -1 && !text && err && strstr(err, "exit status 1"), "garbage fails with pdftotext's exit status");
	T_CHECK(err && strstr(err, "Error"), "the failure quotes pdftotext's error line");
	free(err);
	err = NULL;

	half = malloc(2000);
	memcpy(half, pdf, 2000);
	rc = pdftotext_convert(NULL, half, 2000, &text, &tl, &err);
	T_CHECK(rc == -1 && !text && err, "a truncated PDF fails cleanly");
	free(half);
	free(err);
	err = NULL;

	rc = pdftotext_convert(NULL, "", 0, &text, &tl, &err);
	T_CHECK(rc == -1 && err, "empty input fails cleanly");
	free(err);
	err = NULL;

	o.max_mem = 16L << 20;    /* too little even to map poppler's libraries */
	rc = pdftotext_convert(&o, pdf, len, &text, &tl, &err);
	T_CHECK(rc == -1 && !text && err, "an absurdly small memory limit makes the conversion fail");
	free(err);
	err = NULL;
	o.max_mem = 0;

	o.max_output = 100;
	rc = pdftotext_convert(&o, pdf, len, &text, &tl, &err);
	T_CHECK(rc == -1 && err && strstr(err, "more than 100 bytes"), "output over the cap kills the child");
	free(err);
	err = NULL;
}

static void t_fake(const char *pdf, size_t len)
{
	struct pdftotext_opts o = { 0 };
	char *text = NULL, *err = NULL, *big, body[256];
	size_t tl = 0, i, n = 3u << 20;
	long long t0;
	int rc, fd;

	o.program = "/nonexistent/pdftotext";
	rc = pdftotext_convert(&o, pdf, len, &text, &tl, &err);
	T_CHECK(rc == -1 && err && strstr(err, "cannot run /nonexistent/pdftotext"), "missing program is reported");
	free(err);
	err = NULL;
	T_CHECK(!pdftotext_available("/nonexistent/pdftotext"), "pdftotext_available says no for a missing program");

	/* a child that reads nothing and exits: our writes hit EPIPE, and
	 * SIGPIPE (default action here) must not kill this process */
	big = malloc(n);
	for (i = 0; i < n; i++)
		big[i] = (char)('a' + i % 26);
	o.program = script(0, "exit 0");
	rc = pdftotext_convert(&o, big, n, &text, &tl, &err);
	T_CHECK(rc == 0 && text && tl == 0 && !*text, "child exiting without reading: no SIGPIPE, empty text");
	free(text);
	text = NULL;

	/* echoes while we still write: without poll on both pipes this deadlocks */
	o.program = script(1, "exec cat");
	o.timeout = 20;
	rc = pdftotext_convert(&o, big, n, &text, &tl, &err);
	T_CHECK(rc == 0 && tl == n && text && !memcmp(text, big, n), "3 MiB through a child that echoes as it reads");
	free(text);
	text = NULL;
	free(big);

	o.program = script(2, "exec sleep 30");
	o.timeout_ms = 300;
	t0 = ms_now();
	rc = pdftotext_convert(&o, pdf, len, &text, &tl, &err);
	T_CHECK(rc == -1 && err && strstr(err, "did not finish within 300 ms"), "a hanging child times out");
	T_CHECK(ms_now() - t0 < 5000, "and is killed rather than waited for");
	free(err);
	err = NULL;

	/* closes its pipes and lingers: the deadline still applies */
	o.program = script(3, "exec >&- 2>&- <&-; sleep 30");
	t0 = ms_now();
	rc = pdftotext_convert(&o, pdf, len, &text, &tl, &err);
	T_CHECK(rc == -1 && err && strstr(err, "did not finish"), "a child that closes its pipes and lingers times out");
	T_CHECK(ms_now() - t0 < 5000, "and is killed as well");
	free(err);
	err = NULL;
	o.timeout_ms = 0;

	o.program = script(4, "kill -SEGV $$");
	rc = pdftotext_convert(&o, "x", 1, &text, &tl, &err);
	T_CHECK(rc == -1 && err && strstr(err, "signal 11"), "a crashing child is reported with its signal");
	free(err);
	err = NULL;

	/* no descriptor of ours reaches the child, and the environment is minimal */
	fd = open("/dev/null", O_RDONLY);   /* deliberately without O_CLOEXEC */
	if (fd >= 0 && dup2(fd, 50) == 50) {
		snprintf(body, sizeof body,
			 "if [ -e /proc/self/fd/50 ]; then echo leaked; else echo clean; fi; echo \"home=$HOME\"");
		o.program = script(5, body);
		rc = pdftotext_convert(&o, "x", 1, &text, &tl, &err);
		T_CHECK(rc == 0 && text && strstr(text, "clean"), "inherited descriptors are closed in the child");
		T_CHECK(text && strstr(text, "home=\n"), "the child gets a minimal environment");
		free(text);
		text = NULL;
		close(50);
	}
	if (fd >= 0)
		close(fd);

	o.program = script(6, "ulimit -v; ulimit -t; ulimit -f; ulimit -c");
	o.max_mem = 64L << 20;
	o.timeout = 7;
	rc = pdftotext_convert(&o, "x", 1, &text, &tl, &err);
	T_CHECK(rc == 0 && text && !strcmp(text, "65536\n8\n0\n0\n"), "limits: address space, CPU, file size, core");
	free(text);
	text = NULL;
	free(err);
}

int main(void)
{
	const char *fx = getenv("FIXTURES_DIR");
	char path[512];
	size_t len = 0;
	char *pdf;

	snprintf(path, sizeof path, "%s/attachments/document.pdf", fx ? fx : "../shared/fixtures");
	pdf = slurp(path, &len);
	T_CHECK(pdf && len > 100000, "fixture document.pdf is readable");
	strcpy(tmpdir, "/tmp/test_pdftotext.XXXXXX");
	if (!mkdtemp(tmpdir)) {
		T_CHECK(0, "temporary folder");
		return t_done();
	}
	if (!pdftotext_available(NULL))
		printf("ok - skipped (no %s)\n", PDFTOTEXT_PROGRAM);
	else if (pdf)
		t_real(pdf, len);
	if (pdf)
		t_fake(pdf, len);
	for (int i = 0; i < 8; i++) {
		snprintf(path, sizeof path, "%s/s%d.sh", tmpdir, i);
		unlink(path);
	}
	rmdir(tmpdir);
	free(pdf);
	return t_done();
}
