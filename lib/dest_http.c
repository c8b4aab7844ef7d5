/* http(s):// destination (not yet implemented). */
#include "dest_int.h"

const struct dest_ops dest_http_ops = { .kind = "http" };
