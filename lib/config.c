#include "config.h"
#include "buf.h"
#include <ctype.h>
#include <stdarg.h>
#include <errno.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

const struct config *CFG;

enum ctype { T_STR, T_INT, T_BOOL, T_ENUM };

struct key {
	const char *name;
	enum ctype type;
	const char *def;
	const char *desc;
	size_t off;
};

#define CFG_KEY(type, name, def, desc) \
	{ #name, T_##type, def, desc, offsetof(struct config, name) },
static const struct key keys[] = {
	CONFIG_TABLE(CFG_KEY)
};
#undef CFG_KEY
#define NKEYS (sizeof keys / sizeof keys[0])

static int set(struct config *c, const struct key *k, const char *val, char **err)
{
	char *end;
	long n;

	switch (k->type) {
	case T_ENUM: {   /* def is "first|second|...": the value must be one of them */
		size_t vlen = strlen(val);
		const char *p = k->def;

		for (;;) {
			const char *bar = strchr(p, '|');
			size_t len = bar ? (size_t)(bar - p) : strlen(p);
			if (len == vlen && !strncmp(p, val, vlen))
				break;
			if (!bar)
				return -1;
			p = bar + 1;
		}
	}
	/* fall through */
	case T_STR: {
		char **p = (char **)((char *)c + k->off);
		free(*p);
		*p = strdup(val);
		return 0;
	}
	case T_INT:
		errno = 0;
		n = strtol(val, &end, 10);
		if (errno || end == val || *end) {
			*err = NULL;
			return -1;
		}
		*(long *)((char *)c + k->off) = n;
		return 0;
	case T_BOOL:
		if (!strcasecmp(val, "true") || !strcmp(val, "1") || !strcasecmp(val, "yes") || !strcasecmp(val, "on"))
			*(int *)((char *)c + k->off) = 1;
		else if (!strcasecmp(val, "false") || !strcmp(val, "0") || !strcasecmp(val, "no") || !strcasecmp(val, "off"))
			*(int *)((char *)c + k->off) = 0;
		else
			return -1;
		return 0;
	}
	return -1;
}

/* The default of an ENUM key is its first choice. */
static const char *first_choice(const char *choices, char *out, size_t size)
{
	snprintf(out, size, "%.*s", (int)strcspn(choices, "|"), choices);
	return out;
}

/* Frees a struct that never became CFG (error paths). */
static void discard(struct config *c)
{
	size_t i;

	for (i = 0; i < NKEYS; i++)
		if (keys[i].type == T_STR || keys[i].type == T_ENUM)
			free(*(char **)((char *)c + keys[i].off));
	free(c);
}

static const struct key *find(const char *name)
{
	size_t i;

	for (i = 0; i < NKEYS; i++)
		if (!strcmp(keys[i].name, name))
			return &keys[i];
	return NULL;
}

static char *trim(char *s)
{
	char *e;

	while (isspace((unsigned char)*s))
		s++;
	e = s + strlen(s);
	while (e > s && isspace((unsigned char)e[-1]))
		*--e = '\0';
	return s;
}

static int fail(char **err, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static int fail(char **err, const char *fmt, ...)
{
	struct buf m = BUF_INIT;
	va_list ap;

	va_start(ap, fmt);
	buf_vprintf(&m, fmt, ap);
	va_end(ap);
	*err = buf_detach(&m);
	return -1;
}

static int load_file(struct config *c, const char *path, char **err)
{
	char line[4096], *eq, *k, *v;
	const struct key *key;
	int lineno = 0;
	FILE *f = fopen(path, "r");

	if (!f)
		return fail(err, "%s: cannot open: %s", path, strerror(errno));
	while (fgets(line, sizeof line, f)) {
		lineno++;
		k = trim(line);
		if (!*k || *k == '#')
			continue;
		eq = strchr(k, '=');
		if (!eq) {
			fclose(f);
			return fail(err, "%s:%d: expected key = value, got '%s'", path, lineno, k);
		}
		*eq = '\0';
		k = trim(k);
		v = trim(eq + 1);
		key = find(k);
		if (!key) {
			fclose(f);
			return fail(err, "%s:%d: unknown key '%s'", path, lineno, k);
		}
		if (set(c, key, v, err) < 0) {
			fclose(f);
			return fail(err, "%s:%d: bad value for '%s'", path, lineno, k);
		}
	}
	fclose(f);
	return 0;
}

int config_load(const char *path, char **err)
{
	struct config *c = calloc(1, sizeof *c);
	char envname[128];
	const char *v;
	size_t i, j;
	char buf_[64];

	*err = NULL;
	if (!c)
		return -1;
	for (i = 0; i < NKEYS; i++)
		if (set(c, &keys[i], keys[i].type == T_ENUM ? first_choice(keys[i].def, buf_, sizeof buf_) : keys[i].def,
			err) < 0) {
			discard(c);
			return fail(err, "built-in default of %s is invalid", keys[i].name);
		}
	if (!path)
		path = getenv("BULK_IMPORT_CONFIG");
	if (path && *path && load_file(c, path, err) < 0)
		goto bad;
	for (i = 0; i < NKEYS; i++) {
		snprintf(envname, sizeof envname, "BULK_IMPORT_%s", keys[i].name);
		for (j = 12; envname[j]; j++)
			envname[j] = (char)toupper((unsigned char)envname[j]);
		v = getenv(envname);
		if (v && set(c, &keys[i], v, err) < 0) {
			fail(err, "environment %s: bad value '%s'", envname, v);
			goto bad;
		}
	}
	/* the previous struct is deliberately kept: threads may hold borrowed
	 * strings; they see the new one whole (release/acquire on the pointer) */
	__atomic_store_n(&CFG, c, __ATOMIC_RELEASE);
	return 0;
bad:
	discard(c);
	return -1;
}

void config_write_doc(FILE *out)
{
	static const char *tn[] = { "string", "integer", "boolean", "one of" };
	char first[64];
	size_t i;

	fprintf(out, "| key | type | default | description |\n|---|---|---|---|\n");
	for (i = 0; i < NKEYS; i++) {
		const char *def = keys[i].def;

		if (keys[i].type == T_ENUM) {
			fprintf(out, "| `%s` | one of `", keys[i].name);
			for (const char *p = def; *p; p++)
				fputs(*p == '|' ? "`, `" : (char[]){ *p, 0 }, out);
			fprintf(out, "` | `%s` | %s |\n", first_choice(def, first, sizeof first), keys[i].desc);
			continue;
		}
		fprintf(out, "| `%s` | %s | %s%s%s | %s |\n", keys[i].name, tn[keys[i].type],
		        *def ? "`" : "", *def ? def : "(empty)", *def ? "`" : "", keys[i].desc);
	}
}
