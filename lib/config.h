/* Configuration: one file of `key = value` lines plus BULK_IMPORT_<KEY>
 * environment overrides, described by lib/config_table.h. */
#ifndef CONFIG_H
#define CONFIG_H
#include <stdio.h>
#include "config_table.h"

#define CFG_STR  char *
#define CFG_ENUM char *   /* one of the choices listed in its default, "a|b|c" (a is the default) */
#define CFG_INT  long
#define CFG_BOOL int
#define CFG_FIELD(type, name, def, desc) CFG_##type name;
struct config {
	CONFIG_TABLE(CFG_FIELD)
};
#undef CFG_FIELD

/* The active configuration (never NULL after config_load succeeded).
 * A reload replaces the pointer; the old struct is kept alive, so borrowed
 * strings stay valid for the life of the process. */
extern const struct config *CFG;

/* Load defaults, then `path` (NULL: $BULK_IMPORT_CONFIG, none if unset),
 * then the environment; on success installs it as CFG.  Returns 0, or -1 and
 * *err (malloc'd) naming the file, line and problem. */
int config_load(const char *path, char **err);
/* Write the configuration reference (Markdown table) to `out`. */
void config_write_doc(FILE *out);
#endif
