#include "log.h"
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <sys/time.h>

static enum log_level min_level = LOG_INFO;
static const char *prog = "bulk-import";

void log_set_level(const char *name)
{
	if (!name) return;
	if (!strcmp(name, "debug")) min_level = LOG_DEBUG;
	else if (!strcmp(name, "info")) min_level = LOG_INFO;
	else if (!strcmp(name, "warn")) min_level = LOG_WARN;
	else if (!strcmp(name, "error")) min_level = LOG_ERROR;
}

void log_set_prog(const char *p)
{
	prog = p;
}

void log_msg(enum log_level lvl, const char *fmt, ...)
{
	static const char *names[] = { "debug", "info", "warn", "error" };
	char line[2048], ts[32];
	struct timeval tv;
	struct tm tm;
	va_list ap;
	int n;

	if (lvl < min_level)
		return;
	gettimeofday(&tv, NULL);
	gmtime_r(&tv.tv_sec, &tm);
	strftime(ts, sizeof ts, "%Y-%m-%dT%H:%M:%S", &tm);
	n = snprintf(line, sizeof line, "%s.%03dZ %s[%d] %s: ", ts,
	             (int)(tv.tv_usec / 1000), prog, (int)getpid(), names[lvl]);
	va_start(ap, fmt);
	if (n > 0 && (size_t)n < sizeof line)
		vsnprintf(line + n, sizeof line - (size_t)n, fmt, ap);
	va_end(ap);
	/* one write per line so concurrent threads do not interleave */
	fprintf(stderr, "%s\n", line);
}
