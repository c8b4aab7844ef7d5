/* "none": files are discarded (the engine still validates and counts them);
 * nothing can be read back, so dest_get says absent. */
#include "dest_int.h"
#include "buf.h"
#include <stdlib.h>

static struct dest *none_open(const char *spec, const struct dest_conf *conf, char **err)
{
	struct dest *d = calloc(1, sizeof *d);

	if (!d) {
		err_set(err, "out of memory");
		return NULL;
	}
	d->ops = &dest_none_ops;
	return d;
}

static void none_close(struct dest *d)
{
	free(d);
}

static struct dest_file *none_file_open(struct dest *d, const char *name, char **err)
{
	struct dest_file *f = calloc(1, sizeof *f);

	if (!f) {
		err_set(err, "out of memory");
		return NULL;
	}
	if (dest_file_init(f, d, name, err) < 0) {
		free(f);
		return NULL;
	}
	return f;
}

static int none_file_write(struct dest_file *f, const void *data, size_t len, char **err)
{
	return 0;
}

static void none_file_abort(struct dest_file *f)
{
	dest_file_fini(f);
	free(f);
}

static int none_file_commit(struct dest_file *f, char **err)
{
	none_file_abort(f);
	return 0;
}

static int none_put(struct dest *d, const char *name, const void *data, size_t len,
		    const char *content_type, char **err)
{
	return 0;
}

static int none_remove_all(struct dest *d, char **err)
{
	return 0;
}

const struct dest_ops dest_none_ops = {
	.kind = "none",
	.open = none_open,
	.close = none_close,
	.file_open = none_file_open,
	.file_write = none_file_write,
	.file_commit = none_file_commit,
	.file_abort = none_file_abort,
	.remove_all = none_remove_all,
	.put = none_put,
};
