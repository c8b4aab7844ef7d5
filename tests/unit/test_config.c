#include "config.h"
#include "t.h"
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* Every configuration that became CFG stays allocated on purpose (threads
 * may hold its strings across a SIGHUP reload); error paths free theirs. */
const char *__lsan_default_suppressions(void);
const char *__lsan_default_suppressions(void)
{
	return "leak:config_load\n";
}

static int load_text(const char *text, char **err)
{
	char path[] = "/tmp/test_config.XXXXXX";
	int fd = mkstemp(path), rc;

	if (fd < 0 || write(fd, text, strlen(text)) != (ssize_t)strlen(text))
		return -2;
	close(fd);
	rc = config_load(path, err);
	unlink(path);
	return rc;
}

int main(void)
{
	char *err = NULL;
	FILE *doc;
	char *text = NULL;
	size_t len = 0;

	unsetenv("BULK_IMPORT_CONFIG");
	T_CHECK(config_load(NULL, &err) == 0 && !strcmp(CFG->invalid_policy, "drop-file") &&
		!strcmp(CFG->log_level, "info") && CFG->max_running_imports == 3, "defaults (enum: first choice)");
	T_CHECK(load_text("# comment\ninvalid_policy = skip\nmax_running_imports = 7\nsave_manifest = off\n", &err) == 0 &&
		!strcmp(CFG->invalid_policy, "skip") && CFG->max_running_imports == 7 && !CFG->save_manifest,
		"file values of each type");
	T_CHECK(load_text("invalid_policy = sideways\n", &err) < 0 && err && strstr(err, ":1:") && strstr(err, "invalid_policy"),
		"enum value outside its choices is refused with file and line");
	free(err);
	err = NULL;
	T_CHECK(load_text("max_running_imports = 3x\n", &err) < 0 && err && strstr(err, "max_running_imports"), "bad integer refused");
	free(err);
	err = NULL;
	T_CHECK(load_text("no_such_key = 1\n", &err) < 0 && err && strstr(err, "unknown key"), "unknown key refused");
	free(err);
	err = NULL;
	setenv("BULK_IMPORT_HTTP_DESTINATION_METHOD", "POST", 1);
	T_CHECK(config_load(NULL, &err) == 0 && !strcmp(CFG->http_destination_method, "POST"), "environment override");
	setenv("BULK_IMPORT_HTTP_DESTINATION_METHOD", "PATCH", 1);
	T_CHECK(config_load(NULL, &err) < 0 && err && strstr(err, "BULK_IMPORT_HTTP_DESTINATION_METHOD"),
		"environment value outside the choices refused");
	free(err);
	unsetenv("BULK_IMPORT_HTTP_DESTINATION_METHOD");
	doc = open_memstream(&text, &len);
	config_write_doc(doc);
	fclose(doc);
	T_CHECK(text && strstr(text, "| `invalid_policy` | one of `drop-file`, `skip`, `fail` | `drop-file` |"),
		"reference lists the choices and the default");
	free(text);
	return t_done();
}
