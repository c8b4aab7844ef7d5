/* --log-file: one JSON object per line in the SMART bulk-data client's
 * export log format, {"exportId", "timestamp" (UTC), "eventId",
 * "eventDetail"}.  Appends, so several runs can share a file; every line is
 * flushed at once so a crash loses nothing written before it.  Details are
 * scrubbed of credentials before they are written. */
#include "bulk_data.h"
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

struct log_file {
	FILE *f;
	char *export_id;
	int failed;   /* warned once about a write error */
};

struct log_file *log_file_open(const char *path, const char *export_id, char **err)
{
	struct log_file *l = calloc(1, sizeof *l);
	int fd = -1;

	if (!l) {
		*err = strdup("out of memory");
		goto fail;
	}
	/* 0600: event details may name internal URLs */
	fd = open(path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0600);
	if (fd < 0 || !(l->f = fdopen(fd, "a"))) {
		if (asprintf(err, "cannot open log file %s: %s", path, strerror(errno)) < 0)
			*err = NULL;
		goto fail;
	}
	l->export_id = strdup(export_id ? export_id : "");
	return l;
fail:
	if (fd >= 0 && (!l || !l->f))
		close(fd);
	free(l);
	return NULL;
}

void log_file_event(struct log_file *l, const char *event, json_object *details)
{
	json_object *o;

	if (!l)
		return;
	o = bd_envelope(l->export_id, event, details);
	if (fprintf(l->f, "%s\n", json_object_to_json_string_ext(o, JSON_C_TO_STRING_PLAIN |
								  JSON_C_TO_STRING_NOSLASHESCAPE)) < 0 ||
	    fflush(l->f) != 0) {
		if (!l->failed)
			fprintf(stderr, BD_PROG ": writing the log file failed: %s\n", strerror(errno));
		l->failed = 1;
	}
	json_object_put(o);
}

void log_file_close(struct log_file *l)
{
	if (!l)
		return;
	fclose(l->f);
	free(l->export_id);
	free(l);
}
