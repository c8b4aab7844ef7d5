/* Base64 (standard and URL-safe, unpadded) and hex helpers. */
#ifndef B64_H
#define B64_H
#include <stddef.h>

/* Returns a malloc'd NUL-terminated string (caller frees). */
char *b64url_encode(const void *data, size_t len);
char *b64_encode(const void *data, size_t len);
/* Decodes base64url or standard base64, padding optional. Returns malloc'd
 * bytes (NUL-terminated as a convenience) and sets *outlen; NULL on bad input. */
unsigned char *b64_decode(const char *s, size_t slen, size_t *outlen);
/* Lower-case hex; malloc'd. */
char *hex_encode(const void *data, size_t len);
/* `nbytes` random bytes from OpenSSL as base64url (malloc'd); NULL on failure. */
char *random_token(size_t nbytes);

#endif
