/* pdftotext in a sandboxed child process; see pdftotext.h. */
#include "pdftotext.h"
#include "buf.h"
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/wait.h>

#define DEFAULT_TIMEOUT_S  10
#define DEFAULT_MAX_MEM    (512L << 20)
#define DEFAULT_MAX_OUTPUT ((size_t)16 << 20)
#define STDERR_KEEP        1024   /* enough for the error line we quote */
#define CHUNK              65536

static long long now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

int pdftotext_available(const char *program)
{
	struct stat st;
	const char *p = program ? program : PDFTOTEXT_PROGRAM;

	return stat(p, &st) == 0 && S_ISREG(st.st_mode) && access(p, X_OK) == 0;
}

/* In the child, between fork and exec: async-signal-safe calls only.  fds:
 * stdin, stdout, stderr for the child, and `xw`, where an exec failure's
 * errno goes (close-on-exec, so the parent reads EOF when exec worked). */
static void __attribute__((noreturn))
child(const char *prog, char *const argv[], char *const envp[], int in, int out, int errfd, int xw,
      const struct rlimit *as, const struct rlimit *cpu, long maxfd)
{
	static const struct rlimit zero = { 0, 0 };
	struct sigaction sa;
	sigset_t none;
	int a, b, c, d, e;
	long fd;

	memset(&sa, 0, sizeof sa);
	sa.sa_handler = SIG_DFL;
	sigaction(SIGPIPE, &sa, NULL);   /* the engine may ignore it; exec keeps SIG_IGN */
	sigemptyset(&none);
	sigprocmask(SIG_SETMASK, &none, NULL);
	/* move everything above the target slots first: a daemon with closed
	 * stdio may have been given fds 0..3 for the pipes */
	a = fcntl(in, F_DUPFD_CLOEXEC, 10);
	b = fcntl(out, F_DUPFD_CLOEXEC, 10);
	c = fcntl(errfd, F_DUPFD_CLOEXEC, 10);
	d = fcntl(xw, F_DUPFD_CLOEXEC, 10);
	if (a < 0 || b < 0 || c < 0 || d < 0 || dup2(a, 0) < 0 || dup2(b, 1) < 0 || dup2(c, 2) < 0 ||
	    dup3(d, 3, O_CLOEXEC) < 0)
		_exit(126);
	/* nothing of the engine's (sockets, files) may reach the child */
	if (close_range(4, ~0U, 0) < 0)
		for (fd = 4; fd < maxfd; fd++)
			close((int)fd);
	if (setrlimit(RLIMIT_AS, as) < 0 || setrlimit(RLIMIT_CPU, cpu) < 0 ||
	    setrlimit(RLIMIT_FSIZE, &zero) < 0 || setrlimit(RLIMIT_CORE, &zero) < 0)
		_exit(126);
	execve(prog, argv, envp);
	e = errno;
	if (write(3, &e, sizeof e) < 0)
		_exit(127);
	_exit(127);
}

/* The line of pdftotext's stderr worth quoting: the first mentioning an
 * error, else the first; control characters blanked, length bounded. */
static void quote_stderr(const struct buf *eb, char *out, size_t outsz)
{
	const char *s = buf_str(eb), *line = NULL, *p, *nl;
	size_t n, i;

	out[0] = '\0';
	for (p = s; *p; p = nl + 1) {
		nl = strchr(p, '\n');
		if (!nl)
			nl = p + strlen(p);
		if (!line && nl > p)
			line = p;
		if (memmem(p, (size_t)(nl - p), "rror", 4)) {
			line = p;
			break;
		}
		if (!*nl)
			break;
	}
	if (!line)
		return;
	nl = strchr(line, '\n');
	n = nl ? (size_t)(nl - line) : strlen(line);
	if (n > outsz - 3)
		n = outsz - 3;
	out[0] = ':';
	out[1] = ' ';
	for (i = 0; i < n; i++)
		out[2 + i] = (unsigned char)line[i] < 0x20 ? ' ' : line[i];
	out[2 + n] = '\0';
}

int pdftotext_convert(const struct pdftotext_opts *o, const void *pdf, size_t len,
		      char **text, size_t *textlen, char **err)
{
	static const struct pdftotext_opts defaults = { 0 };
	const char *prog;
	char *argv[6], *envp[] = { "PATH=/usr/bin:/bin", "LC_ALL=C", NULL }, quoted[320];
	int in[2] = { -1, -1 }, out[2] = { -1, -1 }, ep[2] = { -1, -1 }, xp[2] = { -1, -1 };
	int rc = -1, status = 0, timed_out = 0, too_big = 0, reaped = 0, exec_errno = 0, sigs_blocked = 0;
	int sigpipe_was_pending = 0;
	long timeout_ms, maxfd;
	long long deadline;
	size_t max_out, off = 0;
	struct rlimit as, cpu, nofile;
	struct buf ob = BUF_INIT, eb = BUF_INIT;
	sigset_t pipe_set, old_set, pend;
	pid_t pid = -1;
	char chunk[CHUNK];

	*text = NULL;
	*textlen = 0;
	if (!o)
		o = &defaults;
	prog = o->program ? o->program : PDFTOTEXT_PROGRAM;
	timeout_ms = o->timeout_ms > 0 ? o->timeout_ms : (o->timeout > 0 ? o->timeout : DEFAULT_TIMEOUT_S) * 1000;
	max_out = o->max_output ? o->max_output : DEFAULT_MAX_OUTPUT;
	as.rlim_cur = as.rlim_max = (rlim_t)(o->max_mem > 0 ? o->max_mem : DEFAULT_MAX_MEM);
	/* CPU: a backstop in case we are not there to kill it; soft limit sends
	 * SIGXCPU, the hard one SIGKILL */
	cpu.rlim_cur = (rlim_t)(timeout_ms / 1000 + 1);
	cpu.rlim_max = cpu.rlim_cur + 1;
	maxfd = getrlimit(RLIMIT_NOFILE, &nofile) == 0 && nofile.rlim_cur != RLIM_INFINITY &&
		nofile.rlim_cur < 65536 ? (long)nofile.rlim_cur : 65536;
	argv[0] = (char *)prog;
	argv[1] = "-enc";
	argv[2] = "UTF-8";
	argv[3] = "-";
	argv[4] = "-";
	argv[5] = NULL;

	if (pipe2(in, O_CLOEXEC) < 0 || pipe2(out, O_CLOEXEC) < 0 || pipe2(ep, O_CLOEXEC) < 0 ||
	    pipe2(xp, O_CLOEXEC) < 0) {
		err_set(err, "pdftotext: cannot create pipes: %s", strerror(errno));
		goto out;
	}
	/* Writing to a child that quit raises SIGPIPE, which would kill the
	 * engine unless it ignores it; block it on this thread (SIGPIPE from a
	 * write is thread-directed) and drop what we caused afterwards. */
	sigemptyset(&pipe_set);
	sigaddset(&pipe_set, SIGPIPE);
	sigemptyset(&pend);
	sigpending(&pend);
	sigpipe_was_pending = sigismember(&pend, SIGPIPE);
	if (pthread_sigmask(SIG_BLOCK, &pipe_set, &old_set) == 0)
		sigs_blocked = 1;

	deadline = now_ms() + timeout_ms;
	pid = fork();
	if (pid < 0) {
		err_set(err, "pdftotext: cannot fork: %s", strerror(errno));
		goto out;
	}
	if (pid == 0)
		child(prog, argv, envp, in[0], out[1], ep[1], xp[1], &as, &cpu, maxfd);
	close(in[0]);
	close(out[1]);
	close(ep[1]);
	close(xp[1]);
	in[0] = out[1] = ep[1] = xp[1] = -1;
	fcntl(in[1], F_SETFL, O_NONBLOCK);
	fcntl(out[0], F_SETFL, O_NONBLOCK);
	fcntl(ep[0], F_SETFL, O_NONBLOCK);
	if (!len) {
		close(in[1]);
		in[1] = -1;
	}

	/* Feed stdin while draining stdout and stderr: a child that writes
	 * before it has read everything must never block us, nor we it. */
	while (out[0] >= 0 || ep[0] >= 0) {
		struct pollfd pf[3];
		int nfds = 0, i_in = -1, i_out = -1, i_err = -1, left;
		ssize_t n;

		left = (int)(deadline - now_ms());
		if (left <= 0) {
			timed_out = 1;
			break;
		}
		if (in[1] >= 0) {
			pf[nfds] = (struct pollfd){ .fd = in[1], .events = POLLOUT };
			i_in = nfds++;
		}
		if (out[0] >= 0) {
			pf[nfds] = (struct pollfd){ .fd = out[0], .events = POLLIN };
			i_out = nfds++;
		}
		if (ep[0] >= 0) {
			pf[nfds] = (struct pollfd){ .fd = ep[0], .events = POLLIN };
			i_err = nfds++;
		}
		if (poll(pf, (nfds_t)nfds, left) < 0) {
			if (errno == EINTR)
				continue;
			err_set(err, "pdftotext: poll: %s", strerror(errno));
			goto out;
		}
		if (i_in >= 0 && pf[i_in].revents) {
			n = write(in[1], (const char *)pdf + off, len - off < CHUNK ? len - off : CHUNK);
			if (n > 0)
				off += (size_t)n;
			/* EPIPE: it stopped reading (it will say why); stop feeding */
			if ((n < 0 && errno != EAGAIN && errno != EINTR) || off == len) {
				close(in[1]);
				in[1] = -1;
			}
		}
		if (i_out >= 0 && pf[i_out].revents) {
			n = read(out[0], chunk, sizeof chunk);
			if (n > 0) {
				if (ob.len + (size_t)n > max_out) {
					too_big = 1;
					break;
				}
				buf_append(&ob, chunk, (size_t)n);
			} else if (n == 0 || (errno != EAGAIN && errno != EINTR)) {
				close(out[0]);
				out[0] = -1;
			}
		}
		if (i_err >= 0 && pf[i_err].revents) {
			n = read(ep[0], chunk, sizeof chunk);
			if (n > 0) {
				if (eb.len < STDERR_KEEP)
					buf_append(&eb, chunk, (size_t)n < STDERR_KEEP - eb.len ? (size_t)n : STDERR_KEEP - eb.len);
			} else if (n == 0 || (errno != EAGAIN && errno != EINTR)) {
				close(ep[0]);
				ep[0] = -1;
			}
		}
	}
	if (in[1] >= 0) {
		close(in[1]);
		in[1] = -1;
	}
	/* Both outputs closed: it normally exits at once, but a child may close
	 * them and linger, so the deadline still applies while we wait. */
	while (!timed_out && !too_big) {
		pid_t w = waitpid(pid, &status, WNOHANG);

		if (w == pid) {
			reaped = 1;
			break;
		}
		if (w < 0 && errno != EINTR) {
			err_set(err, "pdftotext: waitpid: %s", strerror(errno));
			pid = -1;
			goto out;
		}
		if (now_ms() >= deadline) {
			timed_out = 1;
			break;
		}
		poll(NULL, 0, 5);
	}
	if (!reaped) {
		kill(pid, SIGKILL);
		while (waitpid(pid, &status, 0) < 0 && errno == EINTR)
			;
	}
	pid = -1;
	if (read(xp[0], &exec_errno, sizeof exec_errno) != (ssize_t)sizeof exec_errno)
		exec_errno = 0;
	quote_stderr(&eb, quoted, sizeof quoted);
	if (exec_errno) {
		err_set(err, "cannot run %s: %s", prog, strerror(exec_errno));
	} else if (timed_out) {
		err_set(err, "pdftotext did not finish within %ld ms and was killed", timeout_ms);
	} else if (too_big) {
		err_set(err, "pdftotext printed more than %zu bytes and was killed", max_out);
	} else if (WIFSIGNALED(status)) {
		err_set(err, "pdftotext was killed by signal %d (%s; a memory or CPU limit?)%s", WTERMSIG(status),
			strsignal(WTERMSIG(status)), quoted);
	} else if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) {
		err_set(err, "pdftotext failed with exit status %d%s", WEXITSTATUS(status), quoted);
	} else {
		*textlen = ob.len;
		*text = buf_detach(&ob);   /* "" when it printed nothing */
		rc = 0;
	}
out:
	if (pid > 0) {
		kill(pid, SIGKILL);
		while (waitpid(pid, NULL, 0) < 0 && errno == EINTR)
			;
	}
	for (int i = 0; i < 2; i++) {
		if (in[i] >= 0)
			close(in[i]);
		if (out[i] >= 0)
			close(out[i]);
		if (ep[i] >= 0)
			close(ep[i]);
		if (xp[i] >= 0)
			close(xp[i]);
	}
	if (sigs_blocked) {
		struct timespec zero = { 0, 0 };

		sigemptyset(&pend);
		if (!sigpipe_was_pending && sigpending(&pend) == 0 && sigismember(&pend, SIGPIPE))
			while (sigtimedwait(&pipe_set, NULL, &zero) < 0 && errno == EINTR)
				;
		pthread_sigmask(SIG_SETMASK, &old_set, NULL);
	}
	buf_free(&ob);
	buf_free(&eb);
	return rc;
}
