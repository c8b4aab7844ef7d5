/* GET /jwks: the consumer's public keys (config consumer_jwks_file), so
 * providers can verify the assertions the worker signs.  The file is read
 * by web_consumer_jwks, which never returns private key material. */
#include "handlers.h"
#include "log.h"
#include "web.h"
#include <stdlib.h>

int h_jwks(struct request *rq, struct reply *rp)
{
	char *err = NULL;
	json_object *o = web_consumer_jwks(&err);

	if (!o && !err) {
		reply_oo(rp, 404, "error", "not-found", "no consumer JWKS is configured");
		return 0;
	}
	if (!o) {
		log_error("%s", err);
		free(err);
		return -1;
	}
	reply_json(rp, 200, "application/json", o);
	reply_header(rp, "Cache-Control", "max-age=300");
	json_object_put(o);
	return 0;
}
