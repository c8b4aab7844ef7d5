/* Logging to stderr (Apache's error log for the FastCGI app, the journal or
 * a file for the worker).  Never pass tokens or keys to these functions. */
#ifndef LOG_H
#define LOG_H

enum log_level { LOG_DEBUG, LOG_INFO, LOG_WARN, LOG_ERROR };

void log_set_level(const char *name);      /* "debug", "info", "warn", "error" */
void log_set_prog(const char *prog);       /* prefix, e.g. "worker" (borrowed, keep alive) */
void log_msg(enum log_level lvl, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

#define log_debug(...) log_msg(LOG_DEBUG, __VA_ARGS__)
#define log_info(...)  log_msg(LOG_INFO, __VA_ARGS__)
#define log_warn(...)  log_msg(LOG_WARN, __VA_ARGS__)
#define log_error(...) log_msg(LOG_ERROR, __VA_ARGS__)

#endif
