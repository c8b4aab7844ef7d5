/* Throughput and memory of the streaming NDJSON validator (lib/ndjson.h).
 *
 *   ndjson_bench [--fixture FILE] [--type T] [--tmpdir DIR] [--chunk BYTES] [MB...]
 *
 * Builds one temporary file of whole copies of FILE (default: the
 * Observation fixture) large enough for the biggest size asked for (default
 * 20 and 200 MB, 1 MB = 10^6 bytes), copying in 64 KiB blocks so the
 * builder itself stays small.  Then, for each size, a fresh process (this
 * program again, exec'd, so its peak RSS starts from a clean slate) reads
 * the first copies of that file (whole copies, so whole lines) in --chunk
 * sized read()s (default 64 KiB) and
 *   1. reads them once without validating (the I/O floor, page cache warm);
 *   2. feeds every chunk to ndjson_feed, then ndjson_finish.
 * The child reports MB/s and lines/s of pass 2 and its peak RSS
 * (getrusage ru_maxrss) before validating and at the end.  A flat peak from 20 MB to 200 MB shows the validator
 * holds only the current line, not the file.  Exits 1 if any line is
 * reported invalid (the input is a valid fixture) or on I/O errors. */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "ndjson.h"

#define COPY_BLOCK (64 * 1024)
#define MAX_SIZES 8

static double now_s(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static long maxrss_kb(void)
{
	struct rusage ru;
	getrusage(RUSAGE_SELF, &ru);
	return ru.ru_maxrss; /* KiB on Linux */
}

static void die(const char *what, const char *path)
{
	fprintf(stderr, "ndjson_bench: %s %s: %s\n", what, path ? path : "", strerror(errno));
	exit(1);
}

static void write_all(int fd, const char *p, size_t n, const char *path)
{
	while (n > 0) {
		ssize_t w = write(fd, p, n);
		if (w < 0) {
			if (errno == EINTR)
				continue;
			die("write", path);
		}
		p += w;
		n -= (size_t)w;
	}
}

/* Append `copies` whole copies of src to dst, 64 KiB at a time. */
static void build_input(const char *src, const char *dst, long copies)
{
	char *blk = malloc(COPY_BLOCK);
	int out = open(dst, O_WRONLY | O_CREAT | O_TRUNC, 0600);
	if (!blk || out < 0)
		die("create", dst);
	for (long c = 0; c < copies; c++) {
		int in = open(src, O_RDONLY);
		if (in < 0)
			die("open", src);
		for (;;) {
			ssize_t r = read(in, blk, COPY_BLOCK);
			if (r < 0 && errno == EINTR)
				continue;
			if (r < 0)
				die("read", src);
			if (r == 0)
				break;
			write_all(out, blk, (size_t)r, dst);
		}
		close(in);
	}
	if (close(out) != 0)
		die("close", dst);
	free(blk);
}

static long long issues;

static void on_issue(void *ctx, long long line, const char *code, const char *msg)
{
	(void)ctx;
	if (issues++ < 5)
		fprintf(stderr, "ndjson_bench: line %lld: %s: %s\n", line, code, msg);
}

/* One pass over the first `limit` bytes of path; v NULL = read only. */
static double pass(const char *path, long long limit, size_t chunk, struct ndjson *v)
{
	char *buf = malloc(chunk);
	int fd = open(path, O_RDONLY);
	if (!buf || fd < 0)
		die("open", path);
	long long left = limit;
	volatile unsigned char sink = 0;
	double t0 = now_s();
	while (left > 0) {
		size_t want = (long long)chunk < left ? chunk : (size_t)left;
		ssize_t r = read(fd, buf, want);
		if (r < 0 && errno == EINTR)
			continue;
		if (r < 0)
			die("read", path);
		if (r == 0)
			break;
		if (v)
			ndjson_feed(v, buf, (size_t)r);
		else
			sink ^= (unsigned char)buf[r - 1];
		left -= r;
	}
	if (v)
		ndjson_finish(v);
	double dt = now_s() - t0;
	(void)sink;
	close(fd);
	free(buf);
	if (left != 0) {
		fprintf(stderr, "ndjson_bench: %s is shorter than expected\n", path);
		exit(1);
	}
	return dt;
}

/* Runs in the exec'd child: returns its exit status. */
static int measure(const char *path, long long bytes, size_t chunk, const char *type,
		   int target_mb)
{
	long rss0 = maxrss_kb();
	double t_read = pass(path, bytes, chunk, NULL);
	struct ndjson *v = ndjson_new(type, 0, on_issue, NULL);
	if (!v) {
		fprintf(stderr, "ndjson_bench: ndjson_new failed\n");
		return 1;
	}
	double t_val = pass(path, bytes, chunk, v);
	long long lines = ndjson_lines(v);
	long long errs = ndjson_errors(v);
	ndjson_free(v);
	long rss1 = maxrss_kb();
	double mb = (double)bytes / 1e6;
	printf("  %6d MB  %7.1f MB %10lld %8.2f %10.1f %10.1f %12.0f %9.1f %9.1f\n",
	       target_mb, mb, lines, t_val, mb / t_val, mb / t_read, (double)lines / t_val,
	       rss0 / 1024.0, rss1 / 1024.0);
	fflush(stdout);
	if (errs || issues) {
		fprintf(stderr, "ndjson_bench: %lld invalid lines in a valid fixture\n", errs);
		return 1;
	}
	return 0;
}

/* Whole copies of the fixture nearest to `mb` MB (at least one). */
static long copies_for(int mb, long long fsize)
{
	long c = (long)(((long long)mb * 1000000 + fsize / 2) / fsize);
	return c > 0 ? c : 1;
}

static void usage(void)
{
	fprintf(stderr, "usage: ndjson_bench [--fixture FILE] [--type T] [--tmpdir DIR] "
			"[--chunk BYTES] [MB...]\n");
	exit(2);
}

int main(int argc, char **argv)
{
	const char *fixture = "../shared/fixtures/fhir/Observation.ndjson";
	const char *type = "Observation";
	const char *tmpdir = getenv("TMPDIR") ? getenv("TMPDIR") : "/tmp";
	size_t chunk = 64 * 1024;
	int sizes[MAX_SIZES], nsizes = 0;
	const char *m_path = NULL;
	long long m_bytes = 0;

	for (int i = 1; i < argc; i++) {
		if (!strcmp(argv[i], "--fixture") && i + 1 < argc)
			fixture = argv[++i];
		else if (!strcmp(argv[i], "--type") && i + 1 < argc)
			type = argv[++i];
		else if (!strcmp(argv[i], "--tmpdir") && i + 1 < argc)
			tmpdir = argv[++i];
		else if (!strcmp(argv[i], "--chunk") && i + 1 < argc)
			chunk = (size_t)strtoul(argv[++i], NULL, 10);
		else if (!strcmp(argv[i], "--measure") && i + 2 < argc) {
			/* internal: the child's mode, --measure PATH BYTES */
			m_path = argv[++i];
			m_bytes = strtoll(argv[++i], NULL, 10);
		} else if (argv[i][0] != '-' && nsizes < MAX_SIZES && atoi(argv[i]) > 0 &&
			 atoi(argv[i]) <= 100000)
			sizes[nsizes++] = atoi(argv[i]);
		else
			usage();
	}
	if (chunk == 0 || chunk > (64u << 20))
		usage();
	if (m_path) {
		if (m_bytes <= 0 || nsizes != 1)
			usage();
		return measure(m_path, m_bytes, chunk, type, sizes[0]);
	}
	if (nsizes == 0) {
		sizes[nsizes++] = 20;
		sizes[nsizes++] = 200;
	}

	struct stat st;
	if (stat(fixture, &st) != 0 || st.st_size <= 0)
		die("stat", fixture);
	long long fsize = st.st_size;
	int maxmb = 0;
	for (int i = 0; i < nsizes; i++)
		if (sizes[i] > maxmb)
			maxmb = sizes[i];
	long maxcopies = copies_for(maxmb, fsize);

	char path[4096];
	snprintf(path, sizeof path, "%s/ndjson_bench.XXXXXX", tmpdir);
	int tfd = mkstemp(path);
	if (tfd < 0)
		die("mkstemp", path);
	close(tfd);
	double t0 = now_s();
	build_input(fixture, path, maxcopies);
	printf("NDJSON validator: %s (%lld bytes) x %ld copies -> %s, built in %.2f s; "
	       "read() in %zu-byte chunks\n",
	       fixture, fsize, maxcopies, path, now_s() - t0, chunk);
	printf("  %9s  %10s %10s %8s %10s %10s %12s %9s %9s\n", "target", "input",
	       "lines", "time s", "MB/s", "read MB/s", "lines/s", "RSS0 MiB", "RSS MiB");
	fflush(stdout);

	int rc = 0;
	for (int i = 0; i < nsizes; i++) {
		long long bytes = (long long)copies_for(sizes[i], fsize) * fsize;
		char a_bytes[32], a_mb[32], a_chunk[32];
		snprintf(a_bytes, sizeof a_bytes, "%lld", bytes);
		snprintf(a_mb, sizeof a_mb, "%d", sizes[i]);
		snprintf(a_chunk, sizeof a_chunk, "%zu", chunk);
		char *cargv[] = { argv[0], "--measure", path, a_bytes, "--type", (char *)type,
				  "--chunk", a_chunk, a_mb, NULL };
		pid_t pid = fork();
		if (pid < 0)
			die("fork", NULL);
		if (pid == 0) {
			execv("/proc/self/exe", cargv);
			perror("ndjson_bench: exec /proc/self/exe");
			_exit(127);
		}
		int status;
		while (waitpid(pid, &status, 0) < 0)
			if (errno != EINTR)
				die("waitpid", NULL);
		if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) {
			fprintf(stderr, "ndjson_bench: child for %d MB failed\n", sizes[i]);
			rc = 1;
		}
	}
	unlink(path);
	printf("  (MB = 10^6 bytes; MB/s and lines/s: validation pass; read MB/s: same reads "
	       "without validating;\n   RSS0: the process's peak RSS before validating, RSS: its peak "
	       "at the end, from getrusage)\n");
	return rc;
}
