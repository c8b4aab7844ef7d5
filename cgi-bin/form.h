/* application/x-www-form-urlencoded bodies (the token endpoint). */
#ifndef FORM_H
#define FORM_H
#include <stddef.h>

struct form_field {
	char *name;    /* owned, decoded */
	char *value;   /* owned, decoded */
};

struct form {
	struct form_field *f;   /* owned */
	size_t n;
};

/* Decode `len` bytes ('+' is a space, %XX escapes).  0 ok; -1 and *err
 * (malloc'd) on a bad escape or an embedded NUL.  *out is always valid for
 * form_free. */
int form_parse(const char *body, size_t len, struct form *out, char **err);
/* First value of `name` (borrowed) or NULL. */
const char *form_get(const struct form *f, const char *name);
/* How often `name` occurs. */
int form_count(const struct form *f, const char *name);
void form_free(struct form *f);

#endif
