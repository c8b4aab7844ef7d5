#include "buf.h"
#include "t.h"
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

int main(void)
{
	struct buf b = BUF_INIT;
	char path[] = "/tmp/test_buf.XXXXXX", *s, *err = NULL;
	int fd, i;

	T_CHECK(!strcmp(buf_str(&b), ""), "empty buffer reads as empty string");
	for (i = 0; i < 1000; i++)
		buf_printf(&b, "%d,", i);
	T_CHECK(b.len == strlen(b.data) && !strncmp(b.data, "0,1,2,", 6), "printf appends and grows");
	s = buf_detach(&b);
	T_CHECK(b.data == NULL && b.len == 0 && strstr(s, "999,"), "detach hands over the string");
	free(s);

	err_set(&err, "first %d", 1);
	err_set(&err, "second %s", "message");   /* frees the first: ASan would see a leak */
	T_CHECK(err && !strcmp(err, "second message"), "err_set replaces the message");
	err_set(NULL, "ignored");
	T_CHECK(1, "err_set with NULL err does nothing");

	fd = mkstemp(path);
	T_CHECK(fd >= 0 && write(fd, "abc\0def", 7) == 7, "temp file written");
	close(fd);
	s = buf_read_file(path, &err);
	T_CHECK(s && !memcmp(s, "abc\0def", 7) && s[7] == '\0', "read_file returns the bytes, NUL-terminated");
	free(s);
	unlink(path);
	s = buf_read_file(path, &err);
	T_CHECK(!s && err && strstr(err, path), "read_file on a missing file says which");
	free(err);
	return t_done();
}
