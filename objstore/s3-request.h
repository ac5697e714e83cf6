/* s3-request.h: the S3 store handle and one signed S3 request with retries,
 * back-off and the mapping of HTTP/S3/transport errors to objstore errors. */
#ifndef OBOXFS_S3_REQUEST_H
#define OBOXFS_S3_REQUEST_H

#include "objstore-private.h"
#include "s3-credentials.h"
#include "s3-http.h"
#include "s3-sigv4.h"
#include "s3-url.h"

#define S3_EXTRA_HEADERS_MAX (OBJSTORE_META_MAX_PAIRS + 8)
#define S3_QUERY_MAX 8

struct s3_store {
	struct objstore store;
	struct s3_url url;
	struct s3_credentials cred;
	char *region;
	struct s3_http *http;
	unsigned int connect_timeout_ms, request_timeout_ms;
	unsigned int retry_timeout_ms;
	char list_page_keys[8];	/* max-keys of a LIST page, as text */
	bool tls_insecure;
	char *ca_file;		/* or NULL: the system's CAs */
	_Atomic bool no_multi_delete;	/* server lacks POST ?delete */
};

struct s3_request {
	enum objstore_op op;
	const char *method;
	/* "GET(key)" etc. for messages */
	const char *what;
	/* object key below the store prefix; NULL = the bucket itself */
	const char *key;
	struct s3_query_param query[S3_QUERY_MAX];
	unsigned int query_count;
	/* signed headers besides host, x-amz-date, x-amz-content-sha256 */
	struct s3_header headers[S3_EXTRA_HEADERS_MAX];
	unsigned int header_count;
	const struct objstore_source *body;
	const char *payload_hash;	/* NULL = hash of no body */
	struct objstore_sink *sink;
	uint64_t range_skip, range_length;
	/* 404 counts as success (DELETE) */
	bool not_found_ok;
	/* 416 counts as success (ranged GET past the end) */
	bool range_not_satisfiable_ok;
	/* the probe at init: an unreachable store is not retried */
	bool init_probe;
	/* a 200 reply may carry an <Error> body (CopyObject) */
	bool check_copy_result;

	/* results: the last HTTP status (0 = none) and, on success, the
	   reply */
	long status;

	/* result */
	struct s3_http_response resp;
};

/* Zero req and set what every request has (key NULL = the bucket). */
void s3_request_init(struct s3_request *req, enum objstore_op op,
		     const char *method, const char *what, const char *key);
/* Send the request, retrying transient errors and throttling with
   exponential back-off and full jitter within retry_timeout_ms.  Returns 0
   on a 2xx (or allowed 404/416) reply, with req->resp filled (free it with
   s3_request_free()), else -1 with the objstore error set. */
int s3_request_run(struct s3_store *s3, struct s3_request *req);
void s3_request_free(struct s3_request *req);

/* Build the object path "/bucket/prefix/key" (encoded) for key, or the
   bucket path for NULL; malloc()ed. */
char *s3_request_path(const struct s3_store *s3, const char *key,
		      bool encoded);

/* backend operations implemented outside objstore-s3.c */
int s3_delete(struct objstore *store, const char *key);
int s3_delete_many(struct objstore *store, const char *const *keys,
		   unsigned int count);

#endif
