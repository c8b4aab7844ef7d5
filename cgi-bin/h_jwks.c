/* GET /jwks: the consumer's public keys (config consumer_jwks_file), so
 * providers can verify the assertions the worker signs.  The file is parsed
 * and re-serialised; a file holding private key material is never served. */
#include "handlers.h"
#include "buf.h"
#include "config.h"
#include "log.h"
#include "web.h"
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define MAX_JWKS_FILE (1024 * 1024)

static const char *const PRIVATE[] = { "d", "p", "q", "dp", "dq", "qi", "oth", "k", NULL };

static int has_private(json_object *key)
{
	int i;

	for (i = 0; PRIVATE[i]; i++)
		if (json_object_object_get_ex(key, PRIVATE[i], NULL))
			return 1;
	return 0;
}

int h_jwks(struct request *rq, struct reply *rp)
{
	const char *path = CFG->consumer_jwks_file;
	struct buf text = BUF_INIT;
	json_object *o = NULL, *keys, *wrap = NULL;
	char chunk[8192], *err = NULL;
	size_t n, i;
	FILE *f = NULL;
	int rc = -1;

	if (!path || !*path) {
		reply_oo(rp, 404, "error", "not-found", "no consumer JWKS is configured");
		rc = 0;
		goto out;
	}
	f = fopen(path, "r");
	if (!f) {
		log_error("consumer_jwks_file %s: %s", path, strerror(errno));
		goto out;
	}
	while ((n = fread(chunk, 1, sizeof chunk, f)) > 0 && text.len <= MAX_JWKS_FILE)
		buf_append(&text, chunk, n);
	o = web_parse_json(text.data ? text.data : "", text.len, &err);
	if (!o || !json_object_is_type(o, json_type_object)) {
		log_error("consumer_jwks_file %s: not a JSON object%s%s", path, err ? ": " : "", err ? err : "");
		goto out;
	}
	if (!json_object_object_get_ex(o, "keys", &keys)) {
		/* a single JWK: serve it as a set */
		wrap = json_object_new_object();
		keys = json_object_new_array();
		json_object_array_add(keys, json_object_get(o));
		json_object_object_add(wrap, "keys", keys);
		json_object_put(o);
		o = wrap;
		wrap = NULL;
	}
	if (!json_object_is_type(keys, json_type_array)) {
		log_error("consumer_jwks_file %s: \"keys\" is not an array", path);
		goto out;
	}
	for (i = 0; i < json_object_array_length(keys); i++) {
		json_object *k = json_object_array_get_idx(keys, i);
		if (!json_object_is_type(k, json_type_object) || has_private(k)) {
			log_error("consumer_jwks_file %s: keys[%zu] is not a public JWK; refusing to serve it", path, i);
			goto out;
		}
	}
	reply_json(rp, 200, "application/json", o);
	reply_header(rp, "Cache-Control", "max-age=300");
	rc = 0;
out:
	if (f)
		fclose(f);
	json_object_put(o);
	json_object_put(wrap);
	buf_free(&text);
	free(err);
	return rc;
}
