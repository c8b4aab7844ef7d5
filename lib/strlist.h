/* NULL-terminated string lists from comma-separated configuration values. */
#ifndef STRLIST_H
#define STRLIST_H

/* Splits `s` at `sep`, trimming blanks and dropping empty items.  Returns a
 * malloc'd NULL-terminated array (free with strlist_free), or NULL when
 * there are no items. */
char **strlist_split(const char *s, char sep);
void strlist_free(char **list);
#endif
