/* Plain text from a PDF with poppler's `pdftotext` (Debian poppler-utils)
 * run as a child process: `pdftotext -enc UTF-8 - -`, PDF on its stdin,
 * text from its stdout, no shell.
 *
 * The PDF may be hostile, so the child gets limits on address space
 * (RLIMIT_AS), CPU time and file size (0: it may only write to its pipes), no
 * core dumps, a minimal environment and no inherited descriptors; it is
 * killed (SIGKILL) when it overruns the wall-clock timeout or the output cap.
 * Pipes are served with poll(), so neither side can block the other, and the
 * calling thread never receives SIGPIPE from it.  Thread-safe; the child is
 * always reaped before returning, so the process must not ignore SIGCHLD
 * nor reap children it did not start (waitpid(-1, ...)). */
#ifndef PDFTOTEXT_H
#define PDFTOTEXT_H
#include <stddef.h>

#define PDFTOTEXT_PROGRAM "/usr/bin/pdftotext"

struct pdftotext_opts {
	const char *program;   /* NULL: PDFTOTEXT_PROGRAM; called with "-enc UTF-8 - -" */
	long timeout;          /* wall-clock seconds; <= 0: 10 */
	long timeout_ms;       /* > 0: overrides timeout (finer, for tests) */
	long max_mem;          /* bytes of address space for the child; <= 0: 512 MiB */
	size_t max_output;     /* bytes of text; 0: 16 MiB; more kills the child and fails */
};

/* Converts `len` bytes of PDF (opts may be NULL: defaults).  Returns 0 with
 * *text (malloc'd, NUL-terminated, caller frees) and *textlen; -1 with *err
 * (malloc'd) when the program cannot run, fails, is killed by a limit, times
 * out or prints too much.  The text is UTF-8 with '\f' between pages. */
int pdftotext_convert(const struct pdftotext_opts *o, const void *pdf, size_t len,
		      char **text, size_t *textlen, char **err);

/* 1 when `program` (NULL: PDFTOTEXT_PROGRAM) is an executable file. */
int pdftotext_available(const char *program);

#endif
