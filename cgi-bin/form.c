#include "form.h"
#include "buf.h"
#include <stdlib.h>
#include <string.h>

static int hexval(int c)
{
	if (c >= '0' && c <= '9') return c - '0';
	if (c >= 'a' && c <= 'f') return c - 'a' + 10;
	if (c >= 'A' && c <= 'F') return c - 'A' + 10;
	return -1;
}

/* Decode [s, s+n) into a malloc'd string; NULL on bad input. */
static char *decode(const char *s, size_t n)
{
	struct buf b = BUF_INIT;
	size_t i;

	for (i = 0; i < n; i++) {
		char c = s[i];
		if (c == '+') {
			c = ' ';
		} else if (c == '%') {
			int hi, lo;
			if (i + 2 >= n)
				goto bad;
			hi = hexval((unsigned char)s[i + 1]);
			lo = hexval((unsigned char)s[i + 2]);
			if (hi < 0 || lo < 0)
				goto bad;
			c = (char)(hi * 16 + lo);
			i += 2;
		}
		if (c == '\0')
			goto bad;
		buf_putc(&b, c);
	}
	return buf_detach(&b);
bad:
	buf_free(&b);
	return NULL;
}

int form_parse(const char *body, size_t len, struct form *out, char **err)
{
	const char *p = body, *end = body + len;

	out->f = NULL;
	out->n = 0;
	*err = NULL;
	while (p < end) {
		const char *amp = memchr(p, '&', (size_t)(end - p)), *eq;
		struct form_field fld;

		if (!amp)
			amp = end;
		if (amp == p) {
			p++;
			continue;
		}
		eq = memchr(p, '=', (size_t)(amp - p));
		fld.name = decode(p, (size_t)((eq ? eq : amp) - p));
		fld.value = eq ? decode(eq + 1, (size_t)(amp - eq - 1)) : strdup("");
		if (!fld.name || !fld.value) {
			free(fld.name);
			free(fld.value);
			*err = strdup("malformed form encoding");
			return -1;
		}
		out->f = realloc(out->f, (out->n + 1) * sizeof *out->f);
		if (!out->f)
			abort();
		out->f[out->n++] = fld;
		p = amp + 1;
	}
	return 0;
}

const char *form_get(const struct form *f, const char *name)
{
	size_t i;

	for (i = 0; i < f->n; i++)
		if (!strcmp(f->f[i].name, name))
			return f->f[i].value;
	return NULL;
}

int form_count(const struct form *f, const char *name)
{
	size_t i;
	int c = 0;

	for (i = 0; i < f->n; i++)
		c += !strcmp(f->f[i].name, name);
	return c;
}

void form_free(struct form *f)
{
	size_t i;

	for (i = 0; i < f->n; i++) {
		free(f->f[i].name);
		free(f->f[i].value);
	}
	free(f->f);
	f->f = NULL;
	f->n = 0;
}
