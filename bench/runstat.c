/* runstat OUT TIMEOUT_S CMD [ARGS...]
 *
 * Runs CMD (stdin, stdout and stderr inherited), waits for it with wait4()
 * and writes one line to OUT:
 *
 *   <wall seconds, CLOCK_MONOTONIC> <user s> <sys s> <max RSS KiB> <exit status>
 *
 * The exit status is 128+signal when CMD was killed.  CMD runs in its own
 * process group; after TIMEOUT_S seconds that group gets SIGTERM (SIGKILL
 * 5 s later), so a benchmark can never hang, and a SIGINT/SIGTERM/SIGHUP to
 * runstat is passed on to the group as SIGTERM.  Exits with CMD's status.  Used by bench/run.sh for the wall clock,
 * and for the peak RSS when GNU time (/usr/bin/time) is not installed. */
#define _GNU_SOURCE
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/time.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

static volatile sig_atomic_t alarms, stops;

static void on_signal(int sig)
{
	if (sig == SIGALRM)
		alarms++;
	else
		stops++;
}

int main(int argc, char **argv)
{
	if (argc < 4) {
		fprintf(stderr, "usage: runstat OUT TIMEOUT_S CMD [ARGS...]\n");
		return 2;
	}
	FILE *out = fopen(argv[1], "w");
	if (!out) {
		fprintf(stderr, "runstat: %s: %s\n", argv[1], strerror(errno));
		return 2;
	}
	int timeout = atoi(argv[2]);
	if (timeout <= 0)
		timeout = 300;

	struct sigaction sa;
	memset(&sa, 0, sizeof sa);
	sa.sa_handler = on_signal; /* no SA_RESTART: wait4 returns EINTR */
	sigaction(SIGALRM, &sa, NULL);
	sigaction(SIGINT, &sa, NULL);
	sigaction(SIGTERM, &sa, NULL);
	sigaction(SIGHUP, &sa, NULL);

	struct timespec t0, t1;
	clock_gettime(CLOCK_MONOTONIC, &t0);
	pid_t pid = fork();
	if (pid < 0) {
		perror("runstat: fork");
		return 2;
	}
	if (pid == 0) {
		setpgid(0, 0);
		execvp(argv[3], argv + 3);
		fprintf(stderr, "runstat: %s: %s\n", argv[3], strerror(errno));
		_exit(127);
	}
	setpgid(pid, pid); /* also here: no race with the first kill() */
	alarm((unsigned)timeout);

	int status = 0, phase = 0; /* 0 running, 1 sent SIGTERM, 2 sent SIGKILL */
	struct rusage ru;
	memset(&ru, 0, sizeof ru);
	for (;;) {
		if (wait4(pid, &status, 0, &ru) == pid)
			break;
		if (errno != EINTR) {
			perror("runstat: wait4");
			return 2;
		}
		if (phase == 0 && (stops || alarms)) {
			if (alarms)
				fprintf(stderr, "runstat: %s still running after %d s, stopping it\n",
					argv[3], timeout);
			kill(-pid, SIGTERM);
			phase = 1;
			alarms = 0;
			alarm(5);
		} else if (phase == 1 && alarms) {
			kill(-pid, SIGKILL);
			phase = 2;
		}
	}
	clock_gettime(CLOCK_MONOTONIC, &t1);
	alarm(0);

	double wall = (double)(t1.tv_sec - t0.tv_sec) + (double)(t1.tv_nsec - t0.tv_nsec) / 1e9;
	int rc = WIFEXITED(status) ? WEXITSTATUS(status)
				   : 128 + (WIFSIGNALED(status) ? WTERMSIG(status) : 0);
	fprintf(out, "%.3f %ld.%06ld %ld.%06ld %ld %d\n", wall, (long)ru.ru_utime.tv_sec,
		(long)ru.ru_utime.tv_usec, (long)ru.ru_stime.tv_sec, (long)ru.ru_stime.tv_usec,
		ru.ru_maxrss, rc);
	fclose(out);
	return rc;
}
