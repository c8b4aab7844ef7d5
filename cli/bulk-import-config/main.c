/* bulk-import-config: print the configuration reference generated from
 * lib/config_table.h, or check a configuration file. */
#include "config.h"
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int main(int argc, char **argv)
{
	char *err = NULL;

	if (argc == 2 && !strcmp(argv[1], "--doc")) {
		config_write_doc(stdout);
		return 0;
	}
	if (argc == 3 && !strcmp(argv[1], "--check")) {
		if (config_load(argv[2], &err) < 0) {
			fprintf(stderr, "%s\n", err ? err : "cannot load configuration");
			free(err);
			return 1;
		}
		printf("%s: ok\n", argv[2]);
		return 0;
	}
	fprintf(stderr, "usage: bulk-import-config --doc | --check FILE\n");
	return 2;
}
