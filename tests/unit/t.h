/* Minimal unit-test harness: TAP-like lines plus a closing count.
 * Usage: T_CHECK(cond, "name"); ... return t_done(); */
#ifndef T_H
#define T_H
#include <stdio.h>

static int t_pass, t_fail;

#define T_CHECK(cond, name) do {                                        \
	if (cond) { t_pass++; printf("ok - %s\n", name); }              \
	else { t_fail++; printf("not ok - %s  (%s:%d: %s)\n", name,     \
	                        __FILE__, __LINE__, #cond); }           \
} while (0)

static inline int t_done(void)
{
	printf("# %d passed, %d failed\n", t_pass, t_fail);
	return t_fail ? 1 : 0;
}
#endif
