/* s3://bucket/prefix destination (not yet implemented). */
#include "dest_int.h"

const struct dest_ops dest_s3_ops = { .kind = "s3" };
