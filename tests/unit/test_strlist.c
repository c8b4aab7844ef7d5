#include "strlist.h"
#include "t.h"
#include <string.h>

int main(void)
{
	char **l = strlist_split(" image/jpeg, application/pdf ,,text/plain ", ',');

	T_CHECK(l && !strcmp(l[0], "image/jpeg"), "first item trimmed");
	T_CHECK(l && !strcmp(l[1], "application/pdf"), "second item trimmed");
	T_CHECK(l && !strcmp(l[2], "text/plain"), "empty items dropped");
	T_CHECK(l && l[3] == NULL, "NULL-terminated");
	strlist_free(l);
	T_CHECK(strlist_split("", ',') == NULL, "empty string gives no list");
	T_CHECK(strlist_split(" , ,", ',') == NULL, "only separators give no list");
	T_CHECK(strlist_split(NULL, ',') == NULL, "NULL gives no list");
	l = strlist_split("one", ',');
	T_CHECK(l && !strcmp(l[0], "one") && !l[1], "single item");
	strlist_free(l);
	return t_done();
}
