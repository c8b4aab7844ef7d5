#include "strlist.h"
#include <ctype.h>
#include <stdlib.h>
#include <string.h>

char **strlist_split(const char *s, char sep)
{
	char **list = NULL, **grown;
	size_t n = 0;
	const char *p, *e, *end;

	if (!s)
		return NULL;
	for (p = s; *p; p = *end ? end + 1 : end) {
		end = strchr(p, sep);
		if (!end)
			end = p + strlen(p);
		e = end;
		while (p < e && isspace((unsigned char)*p))
			p++;
		while (e > p && isspace((unsigned char)e[-1]))
			e--;
		if (e == p)
			continue;
		grown = realloc(list, (n + 2) * sizeof *list);
		if (!grown)
			abort();
		list = grown;
		list[n] = strndup(p, (size_t)(e - p));
		if (!list[n])
			abort();
		list[++n] = NULL;
	}
	return list;
}

void strlist_free(char **list)
{
	char **p;

	for (p = list; p && *p; p++)
		free(*p);
	free(list);
}
