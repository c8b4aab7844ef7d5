/* libcurl helpers for talking to providers.
 *
 * Redirects are followed here, not by libcurl, so that the bearer token
 * goes only to the origins it was issued for: every hop rebuilds its headers
 * and attaches "Authorization" only when the hop's origin is auth_origin or
 * one of trusted_origins, and the caller's extra headers only when it is
 * auth_origin (the server they were configured for).  No total timeout: a
 * transfer is aborted only when it moves less than 1 byte/s for
 * idle_timeout seconds, or when should_stop says so.
 *
 * Ownership: strings in struct http_resp are malloc'd and released by
 * http_resp_free(); request fields are borrowed.  Never log tokens. */
#ifndef HTTP_H
#define HTTP_H
#include <stddef.h>
#include <time.h>
#include <curl/curl.h>
#include "buf.h"

#define HTTP_MAX_REDIRECTS 5

/* Settings shared by all requests of one export (borrowed). */
struct http_conf {
	const char *user_agent;
	long connect_timeout;            /* seconds; <= 0: 10 */
	long idle_timeout;               /* seconds; <= 0: 60 */
	int (*should_stop)(void *ctx);   /* polled during transfers; non-zero aborts */
	void *stop_ctx;
	int *stop_value;                 /* when set, receives the non-zero should_stop
	                                  * value that aborted a transfer */
	const char *ca_file;             /* CURLOPT_CAINFO; NULL: system default */
	int insecure;                    /* 1: no TLS peer/host verification */
	const char *proxy;               /* CURLOPT_PROXY; NULL: libcurl's default (env) */
	time_t deadline;                 /* absolute time no transfer may outlive; 0: none */
};

struct http_req {
	const char *method;              /* NULL: GET, or POST when body is set */
	const char *url;
	const char *const *headers;      /* "Name: value", NULL-terminated; every hop */
	const char *const *extra_headers; /* only to auth_origin; with no auth_origin, only
	                                  * while on the first URL's origin */
	const char *body;                /* request body or NULL */
	size_t body_len;
	const char *bearer;              /* access token or NULL */
	const char *auth_origin;         /* url_origin() the token belongs to */
	const char *const *trusted_origins; /* more url_origin()s for the token, NULL-terminated */
	size_t max_body;                 /* response body cap; 0: 1 MiB */
};

struct http_resp {
	long status;                     /* 0 when no response arrived */
	struct buf body;                 /* up to max_body bytes */
	int body_truncated;
	char *url;                       /* URL of the last hop */
	/* selected headers of the last response, trimmed, NULL when absent */
	char *content_location, *retry_after, *x_progress, *content_type, *location, *expires;
	char *etag, *content_range, *content_encoding, *accept_ranges;
	int sent_bearer;                 /* the last hop carried the token */
	int curl_code;                   /* CURLcode of the failure, 0 when a response arrived */
	int stopped;                     /* aborted by should_stop: the value it returned */
	char *error;                     /* transport error text, NULL when a response arrived */
};

/* curl_global_init() exactly once; safe to call from any thread. */
void http_global_init(void);

/* Performs the request, following up to HTTP_MAX_REDIRECTS redirects (303,
 * and 301/302 after POST, turn into GET).  Returns 0 when a final response
 * arrived (any status), -1 on transport failure, too many redirects or stop
 * (resp->error says why).  resp must be zeroed or freed before. */
int http_request(const struct http_conf *c, const struct http_req *r, struct http_resp *resp);
void http_resp_free(struct http_resp *resp);

/* Retry-After as delta-seconds or HTTP-date: seconds to wait from `now`,
 * or -1 when absent, unparseable, in the past or absurd (> 7 days).
 * Callers clamp usable values to [1, their maximum]. */
long http_retry_after(const char *value, time_t now);

/* 1 for a status http_request follows (301 302 303 307 308). */
int http_is_redirect(long status);

/* Lower-level pieces for callers that run their own transfers (the
 * download multi handle). */
/* Common options: protocols http/https, no signals, no libcurl redirects,
 * Accept-Encoding decoding (all libcurl knows), connect/idle timeouts, user
 * agent, CA file / TLS verification, proxy, stop check. */
void http_apply_conf(CURL *e, const struct http_conf *c);
/* 1 when url's origin is auth_origin or one of trusted (NULL-terminated,
 * may be NULL), else 0.  Origins as url_origin() spells them. */
int http_origin_trusted(const char *url, const char *auth_origin, const char *const *trusted);
/* Header list for one hop to `url`: headers, then extra_headers when
 * extra_ok, then the bearer when http_origin_trusted(url, auth_origin,
 * trusted) (*sent tells).  Caller frees with curl_slist_free_all(); NULL
 * when empty. */
struct curl_slist *http_hop_headers(const char *url, const char *const *headers,
				    const char *const *extra_headers, int extra_ok,
				    const char *bearer, const char *auth_origin,
				    const char *const *trusted, int *sent);
/* CURLOPT_HEADERFUNCTION that fills the selected header fields of the
 * struct http_resp given as userdata (reset at each new status line). */
size_t http_header_cb(char *p, size_t size, size_t n, void *userdata);
/* Drops everything in resp but keeps it reusable. */
void http_resp_reset(struct http_resp *resp);

#endif
