/* Test helpers for destination tests: start a Node test server
 * (tests/s3/start.mjs, tests/receiver/server.mjs) and talk plain HTTP to it.
 *
 * The server gets a pipe as stdin and exits when it closes, so it cannot
 * outlive a crashed test; readiness is its `LISTENING {"port":P}` line,
 * read with a timeout (no sleeps). */
#ifndef T_NODE_H
#define T_NODE_H
#include <errno.h>
#include <limits.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <curl/curl.h>
#include "buf.h"

#define T_NODE_FN static __attribute__((unused))

struct t_node {
	pid_t pid;
	int in_fd;      /* write end of the server's stdin */
	int port;
};

/* Repository root: the current directory when it has tests/, else two
 * levels above the binary (BUILD/unit/test_x).  Static buffer. */
T_NODE_FN const char *t_root(void)
{
	static char root[PATH_MAX];
	struct stat st;
	char exe[PATH_MAX];
	ssize_t n;
	int i;

	if (stat("tests/unit/t.h", &st) == 0)
		return ".";
	n = readlink("/proc/self/exe", exe, sizeof exe - 1);
	if (n <= 0)
		return ".";
	exe[n] = '\0';
	for (i = 0; i < 3; i++) {
		char *s = strrchr(exe, '/');

		if (s)
			*s = '\0';
	}
	snprintf(root, sizeof root, "%s", exe);
	return root;
}

/* 0 and n filled, or -1 with a reason in why.  env: extra "NAME=value"
 * strings (NULL-terminated) or NULL. */
T_NODE_FN int t_node_start(struct t_node *n, const char *script, const char *const *env, char *why, size_t whylen)
{
	int in[2] = { -1, -1 }, out[2] = { -1, -1 };
	char line[512], *p;
	size_t len = 0;
	pid_t pid;

	memset(n, 0, sizeof *n);
	n->in_fd = -1;
	if (pipe(in) < 0 || pipe(out) < 0) {
		snprintf(why, whylen, "pipe: %s", strerror(errno));
		goto fail;
	}
	pid = fork();
	if (pid < 0) {
		snprintf(why, whylen, "fork: %s", strerror(errno));
		goto fail;
	}
	if (pid == 0) {
		dup2(in[0], 0);
		dup2(out[1], 1);
		close(in[0]);
		close(in[1]);
		close(out[0]);
		close(out[1]);
		for (; env && *env; env++)
			putenv((char *)*env);
		execlp("node", "node", script, (char *)NULL);
		_exit(127);
	}
	close(in[0]);
	close(out[1]);
	in[0] = out[1] = -1;
	n->pid = pid;
	n->in_fd = in[1];
	for (;;) {
		struct pollfd pf = { out[0], POLLIN, 0 };
		ssize_t r;

		if (poll(&pf, 1, 20000) <= 0) {
			snprintf(why, whylen, "%.150s did not start within 20 s", script);
			goto fail;
		}
		r = read(out[0], line + len, sizeof line - 1 - len);
		if (r <= 0) {
			snprintf(why, whylen, "%.150s exited before listening (node missing or npm packages not installed?)", script);
			goto fail;
		}
		len += (size_t)r;
		line[len] = '\0';
		if ((p = strstr(line, "LISTENING {\"port\":")) && strchr(p, '\n')) {
			n->port = atoi(p + strlen("LISTENING {\"port\":"));
			break;
		}
		if (len == sizeof line - 1) {
			snprintf(why, whylen, "%.150s: unexpected output", script);
			goto fail;
		}
	}
	close(out[0]);
	return 0;
fail:
	if (in[0] >= 0)
		close(in[0]);
	if (out[0] >= 0)
		close(out[0]);
	if (out[1] >= 0)
		close(out[1]);
	if (n->pid > 0) {
		kill(n->pid, SIGTERM);
		waitpid(n->pid, NULL, 0);
	}
	if (n->in_fd >= 0)
		close(n->in_fd);
	n->pid = 0;
	n->in_fd = -1;
	return -1;
}

T_NODE_FN void t_node_stop(struct t_node *n)
{
	if (n->in_fd >= 0)
		close(n->in_fd);   /* the server exits on EOF */
	if (n->pid > 0) {
		kill(n->pid, SIGTERM);
		waitpid(n->pid, NULL, 0);
	}
	n->pid = 0;
	n->in_fd = -1;
}

T_NODE_FN size_t t_http_body(char *p, size_t size, size_t nm, void *ud)
{
	buf_append(ud, p, size * nm);
	return size * nm;
}

T_NODE_FN size_t t_http_hdr(char *p, size_t size, size_t nm, void *ud)
{
	buf_append(ud, p, size * nm);
	return size * nm;
}

/* Plain (unsigned) request; returns the status (0 on transport error).
 * out and hdrs (raw header lines) may be NULL. */
T_NODE_FN long t_http(const char *method, const char *url, const void *body, size_t len,
		   struct buf *out, struct buf *hdrs)
{
	struct buf ignore = BUF_INIT, ih = BUF_INIT;
	CURL *e = curl_easy_init();
	long status = 0;

	curl_easy_setopt(e, CURLOPT_URL, url);
	curl_easy_setopt(e, CURLOPT_NOSIGNAL, 1L);
	curl_easy_setopt(e, CURLOPT_TIMEOUT, 30L);
	curl_easy_setopt(e, CURLOPT_CUSTOMREQUEST, method);
	curl_easy_setopt(e, CURLOPT_WRITEFUNCTION, t_http_body);
	curl_easy_setopt(e, CURLOPT_WRITEDATA, out ? out : &ignore);
	curl_easy_setopt(e, CURLOPT_HEADERFUNCTION, t_http_hdr);
	curl_easy_setopt(e, CURLOPT_HEADERDATA, hdrs ? hdrs : &ih);
	if (body) {
		curl_easy_setopt(e, CURLOPT_POSTFIELDS, body);
		curl_easy_setopt(e, CURLOPT_POSTFIELDSIZE, (long)len);
	}
	if (curl_easy_perform(e) == CURLE_OK)
		curl_easy_getinfo(e, CURLINFO_RESPONSE_CODE, &status);
	curl_easy_cleanup(e);
	buf_free(&ignore);
	buf_free(&ih);
	return status;
}

/* Value of header `name` in raw header lines (case-insensitive), malloc'd or NULL. */
T_NODE_FN char *t_header(const struct buf *hdrs, const char *name)
{
	const char *p = buf_str(hdrs);
	size_t n = strlen(name);

	while (p && *p) {
		if (!strncasecmp(p, name, n) && p[n] == ':') {
			const char *v = p + n + 1, *e = strpbrk(v, "\r\n");

			while (*v == ' ')
				v++;
			return strndup(v, e ? (size_t)(e - v) : strlen(v));
		}
		p = strchr(p, '\n');
		if (p)
			p++;
	}
	return NULL;
}
#endif
