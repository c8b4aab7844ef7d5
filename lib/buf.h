/* Growable byte buffer; always NUL-terminated so it can be used as a string. */
#ifndef BUF_H
#define BUF_H
#include <stddef.h>
#include <stdarg.h>

struct buf {
	char *data;   /* owned; NULL until first append */
	size_t len;
	size_t cap;
};

#define BUF_INIT { NULL, 0, 0 }

void buf_append(struct buf *b, const void *p, size_t n);
void buf_puts(struct buf *b, const char *s);
void buf_putc(struct buf *b, char c);
void buf_printf(struct buf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
void buf_vprintf(struct buf *b, const char *fmt, va_list ap);
void buf_reset(struct buf *b);          /* len = 0, keeps memory */
void buf_free(struct buf *b);
/* Returns the string and gives up ownership (caller frees); never NULL. */
char *buf_detach(struct buf *b);
/* Borrowed view: "" when empty. */
const char *buf_str(const struct buf *b);

/* Replaces *err (freed first) with a malloc'd formatted message; does
 * nothing when err is NULL.  The caller owns and frees *err. */
/* Whole file as a NUL-terminated malloc'd string (caller frees), or NULL
 * with *err.  The stack buffer is wiped: key files pass through here. */
char *buf_read_file(const char *path, char **err);

void err_set(char **err, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

#endif
